"""Probe heads: a fresh BERT MLM head per block, trained on the frozen block (tied or untied decoder)
through the one training loop until its held-out loss stops falling, and read through
`readers.ProbeReader`; the held-out split of W_S's cached features that the probe and the tuned
lens (`readout.tuned_lens`) share.

Used by chapters 2-4 and 6 (they read block counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from ..readout.features import BlockFeatures
from ..training.heads import (
    EarlyStopping,
    HeadCurves,
    cross_entropy_losses,
    train_until_stop,
)

HELD_OUT_SHARE = 0.05  # of the W_S samples whose modified positions decide when a reader stops


@dataclass(frozen=True)
class TrainingPositions:
    """W_S's cached block features and their split into training and held-out positions.

    features: every modified position (features.features [blocks, N, hidden]); train [N_train]
    and held_out [N_held]: position indices into it, whole samples on either side.
    """

    features: BlockFeatures
    train: torch.Tensor
    held_out: torch.Tensor


def held_out_split(positions_per_sample: np.ndarray, seed: int,
                   share: float = HELD_OUT_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) position indices, positions numbered sample by sample: the positions of a
    seeded `share` of the samples (at least one, never all when there are two) are held out.

    positions_per_sample: [S] modified positions of each sample, in the order of the features.
    """
    samples = len(positions_per_sample)
    held = max(1, min(samples - 1, round(share * samples))) if samples > 1 else 0
    chosen = np.zeros(samples, bool)
    chosen[np.random.default_rng(seed).choice(samples, held, replace=False)] = True
    of_position = np.repeat(chosen, positions_per_sample)
    return (torch.from_numpy(np.flatnonzero(~of_position)),
            torch.from_numpy(np.flatnonzero(of_position)))


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


def train_probe_heads_until_stop(heads: torch.nn.ModuleList, positions: TrainingPositions,
                                 learning_rate: float, batch_size: int, seed: int,
                                 stopping: EarlyStopping, device: str = "cpu",
                                 progress: bool = False) -> HeadCurves:
    """Train probe head b on block b's training positions (cross-entropy against the true token,
    bf16 autocast) until its held-out loss stops falling; each head keeps its best state.
    Returns the held-out curves (nats)."""
    heads.to(device)
    losses = cross_entropy_losses(heads, positions.features.features, positions.features.labels,
                                  device, bf16=True)
    return train_until_stop(heads, losses, positions.train, positions.held_out, learning_rate,
                            batch_size, seed, stopping, progress, "probe heads")
