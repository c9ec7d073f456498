"""Held-out MLM evaluation as counts per (kind, token): never stored logits.

Used by chapter 1 (training curves) and chapter 2 (APT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100  # label of a position that is not modified (no loss, not counted)
NOT_MODIFIED, MASKED, REPLACED, UNCHANGED = 0, 1, 2, 3  # kinds of a position in a masked set
KIND_NAMES = {MASKED: "masked", REPLACED: "replaced", UNCHANGED: "unchanged"}



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

    def kind_accuracy(self, kind: str) -> float:
        """Token-weighted accuracy over the modified positions of one kind (masked, replaced, unchanged)."""
        row = list(KIND_NAMES.values()).index(kind)
        return float(self.correct[row].sum() / max(self.total[row].sum(), 1))

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


def token_counts(rows: np.ndarray, vocab_size: int, special_ids: list[int]) -> np.ndarray:
    """Occurrences of every token id in `rows` [N, L], special tokens set to 0. Shape [vocab]."""
    counts = np.bincount(np.asarray(rows).ravel(), minlength=vocab_size)
    counts[special_ids] = 0
    return counts
