"""Held-out MLM evaluation as counts per (kind, token): never stored logits.

Used by chapter 1 (training curves) and chapter 2 (APT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .masking import KIND_NAMES


@dataclass
class TokenCounts:
    """correct[k, t], total[k, t]: modified positions of kind k+1 (masked, replaced, unchanged)
    whose true token is t, and how many of them were predicted right. Shapes [3, vocab]."""

    correct: np.ndarray
    total: np.ndarray
    loss_sum: float = 0.0

    @property
    def accuracy(self) -> float:
        """Token-weighted accuracy over all modified positions."""
        return float(self.correct.sum() / max(self.total.sum(), 1))

    @property
    def loss(self) -> float:
        """Mean cross-entropy per modified position (nats)."""
        return self.loss_sum / max(float(self.total.sum()), 1.0)

    def apt(self, kind: str | None = None) -> np.ndarray:
        """APT(t) for all kinds together or one kind; NaN where t never occurs. Shape [vocab]."""
        if kind is None:
            correct, total = self.correct.sum(0), self.total.sum(0)
        else:
            row = list(KIND_NAMES.values()).index(kind)
            correct, total = self.correct[row], self.total[row]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, correct / np.maximum(total, 1), np.nan)

    def mean_apt(self, kind: str | None = None) -> float:
        """<APT>: the plain mean of APT(t) over the tokens that occur (each token weighs the same)."""
        values = self.apt(kind)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


@torch.no_grad()
def heldout_counts(model, inputs: np.ndarray, labels: np.ndarray, kinds: np.ndarray,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> TokenCounts:
    """Count right predictions per (kind, true token) over a masked held-out set.

    inputs, labels, kinds: [N, L] arrays as made by `mask_tokens`; the head runs only on the
    modified positions.
    """
    vocab = model.config.vocab_size
    correct = torch.zeros(3 * vocab, dtype=torch.long)
    total = torch.zeros(3 * vocab, dtype=torch.long)
    loss_sum = 0.0
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    pad_id = model.config.pad_token_id
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(np.array(inputs[start:start + batch_size])).long().to(device)
        target = torch.as_tensor(np.array(labels[start:start + batch_size])).long().to(device)
        kind = torch.as_tensor(np.array(kinds[start:start + batch_size])).long().to(device)
        with autocast:
            out = model(input_ids=batch, attention_mask=(batch != pad_id).long(), labels=target)
        picked = target != -100
        truth = target[picked]
        slot = ((kind[picked] - 1) * vocab + truth).cpu()
        total += torch.bincount(slot, minlength=3 * vocab)
        hits = (out.logits.max(-1).indices == truth).cpu()
        correct += torch.bincount(slot[hits], minlength=3 * vocab)
        loss_sum += float(out.loss) * int(picked.sum())
    model.train(was_training)
    return TokenCounts(correct.view(3, vocab).numpy(), total.view(3, vocab).numpy(), loss_sum)
