"""Token predictions as counts per (kind, true token), never stored logits, and the one counting
engine that makes them (`count_predictions`).

Counts keep one row per kind of modified position (`core.kinds`: masked, replaced, unchanged);
every per-token number says which kinds it reads. Used by chapter 1 (held-out curves),
chapters 2-4 and 6 (block counts, APT, confusions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .kinds import KINDS, Kinds, kind_rows

IGNORE = -100  # label of a position that is not modified (no loss, not counted)
NOT_MODIFIED, MASKED, REPLACED, UNCHANGED = 0, 1, 2, 3  # kinds of a position in a masked set
KIND_NAMES = dict(zip((MASKED, REPLACED, UNCHANGED), KINDS))


@dataclass
class TokenCounts:
    """correct[k, t], total[k, t]: modified positions of kind k+1 (masked, replaced, unchanged)
    whose true token is t, and how many of them were predicted right. Shapes [3, vocab].

    Every method below takes the kinds it reads (`kinds`: None for all, one kind or several)."""

    correct: np.ndarray
    total: np.ndarray
    loss_sum: float = 0.0

    def __add__(self, other: "TokenCounts") -> "TokenCounts":
        """Counts of two sets of positions pooled (e.g. two maskings of W_test)."""
        return TokenCounts(self.correct + other.correct, self.total + other.total,
                           self.loss_sum + other.loss_sum)

    def occurrences(self, kinds: Kinds = None) -> np.ndarray:
        """Modified positions of each token in the reading. Shape [vocab]."""
        return self.total[kind_rows(kinds)].sum(0)

    @property
    def accuracy(self) -> float:
        """Token-weighted accuracy over all modified positions."""
        return self.kind_accuracy(None)

    def kind_accuracy(self, kinds: Kinds) -> float:
        """Token-weighted accuracy over the modified positions of a reading (e.g. "masked")."""
        rows = kind_rows(kinds)
        return float(self.correct[rows].sum() / max(self.total[rows].sum(), 1))

    @property
    def loss(self) -> float:
        """Mean cross-entropy per modified position (nats)."""
        return self.loss_sum / max(float(self.total.sum()), 1.0)

    def apt(self, kinds: Kinds = None, min_occurrences: int = 1) -> np.ndarray:
        """APT(t) on a reading; NaN where t has fewer than max(1, min_occurrences) positions of
        the reading. Shape [vocab]."""
        rows = kind_rows(kinds)
        correct, total = self.correct[rows].sum(0), self.total[rows].sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total >= max(1, min_occurrences), correct / np.maximum(total, 1), np.nan)

    def mean_apt(self, kinds: Kinds = None, min_occurrences: int = 1) -> float:
        """<APT>: the plain mean of APT(t) over the tokens with at least `min_occurrences`
        positions of the reading (each token weighs the same); NaN if there are none."""
        values = self.apt(kinds, min_occurrences)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def token_counts(rows: np.ndarray, vocab_size: int, special_ids: list[int]) -> np.ndarray:
    """Occurrences of every token id in `rows` [N, L], special tokens set to 0. Shape [vocab]."""
    counts = np.bincount(np.asarray(rows).ravel(), minlength=vocab_size)
    counts[special_ids] = 0
    return counts


def count_predictions(predicted: torch.Tensor, labels: torch.Tensor, kinds: torch.Tensor,
                      vocab_size: int, confusion: bool = False
                      ) -> tuple[TokenCounts, tuple[sp.csr_matrix, ...] | None]:
    """Count predictions per (kind, true token) over N modified positions.

    predicted, labels: [N] token ids; kinds: [N] in {1, 2, 3} (masked, replaced, unchanged).
    Returns the counts (correct, total: int64 [3, vocab]; loss_sum 0) and, when `confusion`, one
    sparse [vocab, vocab] (true token, predicted token) -> positions matrix per kind (masked,
    replaced, unchanged), else None.
    """
    predicted, labels, kinds = (torch.as_tensor(x).long().cpu() for x in (predicted, labels, kinds))
    slot = (kinds - 1) * vocab_size + labels
    total = torch.bincount(slot, minlength=3 * vocab_size)
    correct = torch.bincount(slot[predicted == labels], minlength=3 * vocab_size)
    counts = TokenCounts(correct.view(3, vocab_size).numpy(), total.view(3, vocab_size).numpy())
    if not confusion:
        return counts, None
    return counts, kind_confusions(predicted.numpy(), labels.numpy(), kinds.numpy(), vocab_size)


def kind_confusions(predicted: np.ndarray, labels: np.ndarray, kinds: np.ndarray,
                    vocab_size: int) -> tuple[sp.csr_matrix, ...]:
    """One sparse [V, V] (true, predicted) -> positions matrix per kind (masked, replaced,
    unchanged) from [N] arrays of predictions, true tokens and kinds in {1, 2, 3}."""
    size = np.int64(vocab_size)
    cells = ((kinds.astype(np.int64) - 1) * size + labels.astype(np.int64)) * size + predicted
    found, occurrences = np.unique(cells, return_counts=True)
    kind, pair = found // (size * size), found % (size * size)
    return tuple(sp.csr_matrix((occurrences[kind == k], (pair[kind == k] // size,
                                                         pair[kind == k] % size)),
                               shape=(vocab_size, vocab_size)) for k in range(len(KINDS)))


def summed_confusion(by_kind: tuple[sp.csr_matrix, ...], kinds: Kinds) -> sp.csr_matrix:
    """The confusion of a reading: the per-kind matrices of its kinds summed."""
    rows = kind_rows(kinds)
    total = by_kind[rows[0]].copy()
    for row in rows[1:]:
        total = total + by_kind[row]
    return sp.csr_matrix(total)
