"""The model being read or fine-tuned: one object, built once, so nothing below the chapters asks
whether it is the book's own or an external checkpoint.

`SubjectRecipe` says which model (the book's W_S series, or `model`, a local BERT checkpoint)
and which W_S is read (`analysis_ws`); `load_subject` gives the `Subject`: the model, its
tokenizer, its part of artifact keys, the device and whether it has an MLM head. Used by
chapters 2-6 (through `readout.reading` and `training.finetune`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import ParameterError
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.checkpoint import checkpoint_folder, checkpoint_params, has_mlm_head
from ..data.pretraining import PretrainingData
from ..models.bert import checkpoint_model, has_head, new_model
from .pretrain import SeriesRecipe, model_params, pretrained_model


@dataclass(frozen=True)
class SubjectRecipe(Recipe):
    """Which model chapters 2-6 read: the W_S series' model of W_S `analysis_ws` (None: the
    largest), or the external checkpoint `model` (W_S then only sizes its readers' samples)."""

    model: str | None
    analysis_ws: int | None
    series: SeriesRecipe

    @property
    def external(self) -> bool:
        """Whether an external checkpoint is read (it has no W_S series)."""
        return self.model is not None

    @property
    def ws(self) -> int:
        """The W_S read block by block: `analysis_ws`, else the largest of `ws_list`."""
        ws_list = self.series.ws_list
        ws = self.analysis_ws or max(ws_list)
        if ws not in ws_list:
            raise ParameterError(f"analysis_ws={ws}: must be one of ws_list {list(ws_list)}")
        return ws

    def with_series(self, series: SeriesRecipe) -> "SubjectRecipe":
        """The same choice of model over another series (e.g. the equal-steps one)."""
        return SubjectRecipe(self.model, self.analysis_ws, series)


@dataclass(frozen=True)
class Subject:
    """A model being read: the model (on `device`, eval mode), its tokenizer, `key` (its part of
    every artifact key made from it), whether it has its own MLM head, its W_S and whether it is
    trained (else the same architecture with seeded random weights)."""

    model: torch.nn.Module
    tokenizer: Any
    key: dict
    device: str
    has_mlm_head: bool
    ws: int
    trained: bool

    @property
    def blocks(self) -> int:
        """Blocks read: the embedding output and every transformer block."""
        return self.model.config.num_hidden_layers + 1


def subject_key(recipe: SubjectRecipe, ws: int, trained: bool, data: PretrainingData) -> dict:
    """The key of the model `load_subject` gives (its part of artifact keys), without loading it."""
    if recipe.external:
        key = checkpoint_params(recipe.model, data.samples.folder.name, ws)
    else:
        key = model_params(recipe.series.training, data, ws)
    return key if trained else {**key, "untrained": True}


def load_subject(recipe: SubjectRecipe, data: PretrainingData, trained: bool = True,
                 ws: int | None = None, store: Store | None = None) -> Subject:
    """The model of W_S `ws` (default: the recipe's) pre-trained, or its architecture untrained
    (seeded); with `model` set, the external checkpoint, or its architecture untrained."""
    ws = ws or recipe.ws
    series = recipe.series
    device = series.training.compute.torch_device
    if recipe.external:
        name = recipe.model
        model = checkpoint_model(checkpoint_folder(name), has_mlm_head(name), trained,
                                 data.tokenizer.pad_token_id, series.training.seed, device)
    elif trained:
        model = pretrained_model(series, ws, data, store or Store()).load()
    else:
        tokenizer = data.tokenizer
        model = new_model(series.architecture, len(tokenizer), tokenizer.pad_token_id, device)
    return Subject(model.to(device).eval(), data.tokenizer, subject_key(recipe, ws, trained, data),
                   device, has_head(model), ws, trained)
