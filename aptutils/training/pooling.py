"""How a block's token states become one vector per input: the read-outs of the fine-tuning heads.

`mean` (over the non-pad tokens) and `cls` (the [CLS] position) give a sentence vector [H];
`entity` concatenates the states at the head's and the tail's opening entity markers, [head;
tail] of width 2H, the usual relation-classification read-out (FewRel only: the marker positions
come with the task, see `data.entities`). Each task has its own knob: `fewrel_pooling` for
FewRel, `pooling` for DBpedia-14. Also the length-sorted batching and the one-pass features of
every block that the frozen-trunk heads train on. Used by chapters 5 and 6.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.device import autocast
from ..core.recipes import Recipe

FEATURE_BATCH = 64


@dataclass(frozen=True)
class PoolingRecipe(Recipe):
    """The read-out of each task: `fewrel_pooling` for FewRel, `pooling` for DBpedia-14."""

    pooling: str
    fewrel_pooling: str


def task_pooling(recipe: PoolingRecipe, task_name: str) -> str:
    """The read-out of a task: `fewrel_pooling` for FewRel, `pooling` for DBpedia-14."""
    return recipe.fewrel_pooling if task_name == "few_rel" else recipe.pooling


def pooled_width(hidden_size: int, pooling: str) -> int:
    """Width of a pooled vector: 2 x hidden for entity pooling ([head; tail]), else hidden."""
    return 2 * hidden_size if pooling == "entity" else hidden_size


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str,
         entities: torch.Tensor | None = None) -> torch.Tensor:
    """Vectors [B, H] (mean, cls) or [B, 2H] (entity) from token states [B, L, H].

    attention_mask [B, L]: 1 on the non-pad positions (mean averages over them); entities [B, 2]:
    positions of the head's and the tail's opening marker (entity only).
    """
    if pooling == "entity":
        if entities is None:
            raise ValueError("entity pooling needs the entity marker positions [B, 2]")
        rows = torch.arange(len(hidden), device=hidden.device)
        return torch.cat([hidden[rows, entities[:, 0]], hidden[rows, entities[:, 1]]], dim=-1)
    if pooling == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def length_batches(ids: np.ndarray, pad_id: int, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length (shortest first), to trim padding per batch."""
    order = np.argsort((np.asarray(ids) != pad_id).sum(1), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def trimmed_batch(ids: np.ndarray, rows: np.ndarray, pad_id: int, device: str):
    """(input_ids, attention_mask) of some rows, cut to their longest non-pad length."""
    batch = torch.as_tensor(np.asarray(ids)[rows]).long()
    mask = batch != pad_id
    width = int(mask.sum(1).max())
    return batch[:, :width].to(device), mask[:, :width].long().to(device)


def batch_entities(entities: np.ndarray | None, rows: np.ndarray, device: str) -> torch.Tensor | None:
    """The entity positions [B, 2] of some rows on `device`, or None without entities."""
    return None if entities is None else torch.as_tensor(entities[rows]).long().to(device)


@torch.no_grad()
def pooled_block_features(model, ids: np.ndarray, pooling: str, entities: np.ndarray | None = None,
                          device: str = "cpu", precision: str = "fp32",
                          batch_size: int = FEATURE_BATCH) -> torch.Tensor:
    """Pooled output of every block from one pass over ids [N, L]: float32 [blocks + 1, N, W]
    (0 = embeddings; W = `pooled_width`); entities [N, 2] for entity pooling."""
    model.eval().to(device)
    pad_id = model.config.pad_token_id
    blocks = model.config.num_hidden_layers + 1
    features = torch.zeros(blocks, len(ids), pooled_width(model.config.hidden_size, pooling))
    for rows in length_batches(ids, pad_id, batch_size):
        batch, mask = trimmed_batch(ids, rows, pad_id, device)
        positions = batch_entities(entities, rows, device)
        with autocast(device, precision):
            hidden = model.bert(input_ids=batch, attention_mask=mask,
                                output_hidden_states=True).hidden_states
        pooled = torch.stack([pool(h, mask, pooling, positions) for h in hidden])
        features[:, torch.as_tensor(rows)] = pooled.float().cpu()
    return features
