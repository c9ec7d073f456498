"""Several seeded maskings of the held-out samples W_test, pooled as more modified positions.

The first masking is the stored one of the samples artifact (the one pre-training evaluates on,
seed `seed + 1`); masking m = 1, 2, ... draws with its own seed `masking_seed(seed, m)`, so the
samples artifact never changes. With `test_extension` > 0, every masking m of W_test is stacked
with masking m of its extension (`data.extension`: whole training-pool articles no model or
reader trains on), drawn with `extension_seed(seed, m)`. Pre-training evaluates on the stored W_test
alone. Used by chapter 2's block counts and baselines (chapters 2-4, 6).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..core.counts import MASKED
from ..core.store import Store
from ..data.extension import HeldoutRecipe, heldout_extension
from ..data.masking import mask_tokens, special_token_ids
from ..data.pretraining import PretrainingData

Masking = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, labels, kinds: each [N, L]
EXTRA_SEED_OFFSET = 10_007  # far from seed + 1 (W_test) and seed + 2 (the probes' W_S masking)
EXTENSION_SEED_OFFSET = 5_003  # the extension's masking m: half-way between W_test's m and m + 1


def masking_seed(seed: int, masking: int) -> int:
    """The seed of extra masking `masking` (>= 1) of W_test under the run's `seed`."""
    if masking < 1:
        raise ValueError(f"masking 0 is the stored one; extra maskings count from 1, got {masking}")
    return seed + EXTRA_SEED_OFFSET * masking


def extension_seed(seed: int, masking: int) -> int:
    """The seed of masking `masking` (>= 0) of W_test's extension under the run's `seed`."""
    return seed + EXTRA_SEED_OFFSET * masking + EXTENSION_SEED_OFFSET


def heldout_maskings(data: PretrainingData, count: int, mask_prob: float, seed: int,
                     extension: np.ndarray | None = None) -> Iterator[Masking]:
    """`count` maskings of the W_test samples [N, L]: the stored one, then count - 1 extra ones;
    with `extension` ([E, L] ids) each stacked over the extension's own masking: [N + E, L]."""
    samples, tokenizer = data.samples, data.tokenizer
    ids = np.array(samples.array("test_ids"))

    def masked(rows: np.ndarray, draw_seed: int) -> Masking:
        return mask_tokens(rows, special_token_ids(tokenizer), tokenizer.mask_token_id,
                           len(tokenizer), mask_prob, seed=draw_seed)

    for masking in range(count):
        own = (tuple(samples.array(n) for n in ("test_inputs", "test_labels", "test_kinds"))
               if masking == 0 else masked(ids, masking_seed(seed, masking)))
        if extension is None:
            yield own
        else:
            more = masked(extension, extension_seed(seed, masking))
            yield tuple(np.concatenate([np.asarray(a), b]) for a, b in zip(own, more))


def recipe_maskings(recipe: HeldoutRecipe, data: PretrainingData,
                    store: Store | None = None) -> Iterator[Masking]:
    """The `test_maskings` maskings of W_test and its `test_extension` of a recipe (mask_prob,
    seed). The extension is fetched (or built) at once, so a `test_extension` larger than the
    pool allows stops here, before any masking is read."""
    extension = heldout_extension(recipe, data, store)
    return heldout_maskings(data, recipe.test_maskings, recipe.samples.mask_prob,
                            recipe.samples.seed, None if extension is None else extension.ids)


def maskings_params(recipe: HeldoutRecipe) -> dict:
    """What determines the pooled maskings beyond the samples artifact (part of the keys of the
    counts over them): their number and the extension's size and reach."""
    return {"test_maskings": recipe.test_maskings, "test_extension": recipe.test_extension,
            "reach": recipe.reach if recipe.test_extension else None}


def heldout_description(recipe: HeldoutRecipe, data: PretrainingData,
                        store: Store | None = None) -> dict:
    """What the pooled W_test is, for chapters to quote: samples and articles (held out /
    extension / both), `reach` (pool rows models and readers train on; None without extension),
    `maskings` and `masked`, the masked positions of each masking (original + extension)."""
    stats = data.samples.stats
    extension = heldout_extension(recipe, data, store)
    more = extension.stats if extension is not None else {"samples": 0, "articles": 0}
    masked = [int((np.asarray(kinds) == MASKED).sum())
              for _, _, kinds in recipe_maskings(recipe, data, store)]
    return {"held_out_samples": stats["test_samples"], "held_out_articles": stats["test_articles"],
            "extension_samples": more["samples"], "extension_articles": more["articles"],
            "samples": stats["test_samples"] + more["samples"],
            "articles": stats["test_articles"] + more["articles"],
            "reach": more.get("reach"), "maskings": recipe.test_maskings, "masked": masked}
