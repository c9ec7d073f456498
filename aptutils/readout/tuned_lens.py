"""The tuned lens: per block b below the last, an affine translator h -> A_b h + c_b into the last
block's residual space (identity at the start), trained so that the model's own MLM head on the
translated block matches the model's own output distribution at the last block:
KL(p_last || p_b) over the vocabulary at the modified positions of W_S, `model.cls` frozen.
The last block's translator is the identity. Read through `readers.TunedLensReader`.

Trained through the one loop (`training.heads.train_until_stop`) on the cached W_S features and
the held-out split the probe uses (`readout.probes.TrainingPositions`). Used by chapters 2-4 and 6
(they read block counts).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import autocast
from ..readout.probes import TrainingPositions
from ..training.heads import HeadCurves, HeadPlan, train_until_stop


def new_translators(hidden: int, blocks: int) -> nn.ModuleList:
    """[blocks] translators: Linear(hidden, hidden) = identity, bias 0, for blocks 0..blocks-2,
    and nn.Identity for the last block."""
    translators = nn.ModuleList()
    for _ in range(blocks - 1):
        linear = nn.Linear(hidden, hidden)
        with torch.no_grad():
            linear.weight.copy_(torch.eye(hidden))
            linear.bias.zero_()
        translators.append(linear)
    translators.append(nn.Identity())
    return translators


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Within the block, no parameter of `module` asks for a gradient; afterwards each asks as
    before (the model's head is shared with the model, its decoder tied to the embeddings)."""
    before = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in before:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, wanted in before:
            p.requires_grad_(wanted)


def kl_to_last_block(translators: nn.ModuleList, head: nn.Module, features: torch.Tensor,
                     device: str = "cpu"):
    """losses(picked [B], blocks k) -> mean KL(p_last || p_k) (nats) of each block k over the
    positions `picked`: p = softmax of the head's logits [B, vocab] (fp32), p_last on the last
    block's features as they are, p_k on translator k's image of block k's. features: [blocks, N,
    hidden] (cached, bf16). Computed as H(p_last, p_k) - H(p_last), the cross-entropy against
    the soft target p_last less its entropy, which is shared by all blocks and computed once."""
    last = len(translators) - 1

    def losses(picked: torch.Tensor, active: Sequence[int]) -> list[torch.Tensor]:
        with autocast(device, True):
            with torch.no_grad():
                log_target = F.log_softmax(head(features[last][picked].to(device)).float(), -1)
                target = log_target.exp()
                entropy = -(target * log_target).sum(-1).mean()
            return [F.cross_entropy(head(translators[k](features[k][picked].to(device))).float(),
                                    target) - entropy
                    for k in active]

    return losses


def train_tuned_lens(translators: nn.ModuleList, head: nn.Module, positions: TrainingPositions,
                     plan: HeadPlan, device: str = "cpu", progress: bool = False) -> HeadCurves:
    """Train translators 0..blocks-2 (the last is the identity) on W_S's training positions until
    each one's held-out KL stops falling; each keeps its best state. head: the model's own MLM
    head (`model.cls`), frozen meanwhile. Returns the held-out curves (KL in nats)."""
    translators.to(device)
    trained = nn.ModuleList(translators[:-1])
    losses = kl_to_last_block(translators, head, positions.features.features, device)
    with frozen(head):
        return train_until_stop(trained, losses, positions.train, positions.held_out, plan,
                                progress, "tuned lens")
