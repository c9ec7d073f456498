"""Trivial rules every accuracy stands beside, scored on the same masked W_test as the models.

- most frequent token: always answer the commonest (non-special) token of W_S;
- copy the input: answer the token the model sees at the position (right on every *unchanged*
  position, never on a masked one);
- copy, else most frequent: copy where the input is not [MASK], else the commonest token;
- the unigram loss: cross-entropy (nats) of W_S's token frequencies (add-one smoothed) on the
  modified positions: the loss of a model that has learned frequencies and nothing else.

The fourth baseline, the untrained model, is read like the trained one (`readout.reading`).
Used by chapter 1 (the plateau and the model records) and chapter 2 (readings beside baselines).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..core.counts import TokenCounts, count_predictions
from ..core.kinds import Kinds

RULES = ("most frequent token", "copy the input", "copy, else most frequent")


def rule_predictions(inputs: np.ndarray, labels: np.ndarray, frequency: np.ndarray,
                     mask_id: int) -> dict[str, np.ndarray]:
    """Each rule's prediction at the modified positions (labels != -100), in row-major order.

    inputs, labels: [N, L] as made by `mask_tokens`; frequency: [V] token counts of W_S.
    """
    picked = np.asarray(labels) >= 0
    seen = np.asarray(inputs)[picked].astype(np.int64)
    commonest = np.full(len(seen), int(np.argmax(frequency)), dtype=np.int64)
    return {
        "most frequent token": commonest,
        "copy the input": seen,
        "copy, else most frequent": np.where(seen == mask_id, commonest, seen),
    }


def rule_counts(inputs: np.ndarray, labels: np.ndarray, kinds: np.ndarray, frequency: np.ndarray,
                mask_id: int) -> dict[str, TokenCounts]:
    """Counts per (kind, true token) of every rule over a masked set ([N, L] arrays)."""
    labels = np.asarray(labels)
    picked = labels >= 0
    truth, kind = labels[picked].astype(np.int64), np.asarray(kinds)[picked].astype(np.int64)
    return {rule: count_predictions(predicted, truth, kind, len(frequency))[0]
            for rule, predicted in rule_predictions(inputs, labels, frequency, mask_id).items()}


def pooled_rule_counts(maskings: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       frequency: np.ndarray, mask_id: int) -> dict[str, TokenCounts]:
    """`rule_counts` over several maskings (inputs, labels, kinds) of the same samples, pooled:
    the rules scored on exactly the positions the block counts pool."""
    pooled: dict[str, TokenCounts] = {}
    for inputs, labels, kinds in maskings:
        for rule, counts in rule_counts(inputs, labels, kinds, frequency, mask_id).items():
            pooled[rule] = pooled[rule] + counts if rule in pooled else counts
    return pooled


def best_rule(rules: dict[str, TokenCounts], kinds: Kinds = None,
              min_occurrences: int = 1) -> str:
    """The rule with the highest <APT> on a reading (ties: the first in `rules`): what a model
    must beat before its <APT> says more than frequencies or copying."""
    scores = {rule: counts.mean_apt(kinds, min_occurrences) for rule, counts in rules.items()}
    return max(scores, key=lambda rule: np.nan_to_num(scores[rule], nan=-1.0))


def unigram_loss(labels: np.ndarray, frequency: np.ndarray) -> float:
    """Mean cross-entropy (nats) of the add-one-smoothed W_S unigram on the modified positions."""
    labels = np.asarray(labels)
    truth = labels[labels >= 0]
    probability = (np.asarray(frequency, dtype=np.float64) + 1) / (np.sum(frequency) + len(frequency))
    return float(-np.log(probability[truth]).mean())
