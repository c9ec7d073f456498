"""Probe heads: a fresh BERT MLM head per block, trained on the frozen block (tied or untied decoder).

Used by chapters 2-4 and 6.
"""
from __future__ import annotations

import torch
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from ..readout.features import BlockFeatures
from ..training.heads import train_heads_jointly


def new_probe_heads(config, blocks: int, seed: int,
                    embeddings: torch.Tensor | None = None) -> torch.nn.ModuleList:
    """One fresh BERT MLM head per block (transform + decoder), seeded.

    embeddings: the model's input embeddings [V, hidden]. Given, every decoder's weight is this
    one frozen matrix, as `BertForMaskedLM` ties its head to the embeddings, and a head trains its
    transform and output bias only. None: the decoders are fresh and trained too.
    """
    torch.manual_seed(seed)
    heads = torch.nn.ModuleList(BertOnlyMLMHead(config) for _ in range(blocks))
    for head in heads:
        for module in head.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=config.initializer_range)
                torch.nn.init.zeros_(module.bias)
    if embeddings is not None:
        shared = torch.nn.Parameter(embeddings.detach().clone(), requires_grad=False)
        for head in heads:
            head.predictions.decoder.weight = shared
    return heads


def _frozen_names(heads: torch.nn.Module) -> set[str]:
    """Every name of every frozen parameter, shared ones under each of their names."""
    return {name for name, p in heads.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trained_state(heads: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed (a tied probe's frozen embeddings left out)."""
    frozen = _frozen_names(heads)
    return {name: value for name, value in heads.state_dict().items() if name not in frozen}


def load_trained_state(heads: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `trained_state` saved; every other parameter must be a frozen one."""
    missing, unexpected = heads.load_state_dict(state, strict=False)
    frozen = _frozen_names(heads)
    if unexpected or set(missing) - frozen:
        raise ValueError(f"saved heads do not match: missing {sorted(set(missing) - frozen)}, "
                         f"unexpected {sorted(unexpected)}")


def train_probe_heads(heads: torch.nn.ModuleList, train: BlockFeatures, epochs: float,
                      learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
                      progress: bool = True) -> list[float]:
    """Train probe head b on block b's cached features (bf16 autocast); loss per head (nats)."""
    return train_heads_jointly(heads, train.features, train.labels, epochs, learning_rate,
                               batch_size, seed, device, bf16=True, progress=progress)
