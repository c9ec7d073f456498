"""Several seeded maskings of the same held-out samples W_test, pooled as more modified positions.

The first masking is the stored one of the samples artifact (the one pre-training evaluates on,
seed `seed + 1`); masking m = 1, 2, ... draws with its own seed `masking_seed(seed, m)`, so the
samples artifact never changes. Used by chapter 2's block counts and baselines (chapters 2-4, 6).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..data.masking import mask_tokens, special_token_ids
from ..data.pretraining import PretrainingData

Masking = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, labels, kinds: each [N, L]
EXTRA_SEED_OFFSET = 10_007  # far from seed + 1 (W_test) and seed + 2 (the probes' W_S masking)


def masking_seed(seed: int, masking: int) -> int:
    """The seed of extra masking `masking` (>= 1) of W_test under the run's `seed`."""
    if masking < 1:
        raise ValueError(f"masking 0 is the stored one; extra maskings count from 1, got {masking}")
    return seed + EXTRA_SEED_OFFSET * masking


def heldout_maskings(data: PretrainingData, count: int, mask_prob: float,
                     seed: int) -> Iterator[Masking]:
    """`count` maskings of the W_test samples: the stored one, then count - 1 extra ones."""
    samples = data.samples
    yield samples.array("test_inputs"), samples.array("test_labels"), samples.array("test_kinds")
    ids = np.array(samples.array("test_ids"))
    tokenizer = data.tokenizer
    for masking in range(1, count):
        yield mask_tokens(ids, special_token_ids(tokenizer), tokenizer.mask_token_id,
                          len(tokenizer), mask_prob, seed=masking_seed(seed, masking))


def settings_maskings(settings, data: PretrainingData) -> Iterator[Masking]:
    """The `test_maskings` maskings of W_test under a run's settings (mask_prob, seed)."""
    return heldout_maskings(data, settings.test_maskings, settings.mask_prob, settings.seed)
