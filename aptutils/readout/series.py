"""The W_S series at equal steps, read like the equal-epochs one (`reading.series_counts`).

Kept apart from `reading` so that its artifacts' code version (and the readers already in the
store) do not change with it. Used by chapter 2.
"""
from __future__ import annotations

from ..core.counts import TokenCounts
from ..core.store import Store
from ..data.extension import HeldoutRecipe
from ..data.pretraining import PretrainingData
from ..training.equal_steps import has_equal_steps, series_recipes
from ..training.pretrain import SeriesRecipe
from .reading import last_block_counts


def equal_steps_counts(series: SeriesRecipe, heldout: HeldoutRecipe, data: PretrainingData,
                       store: Store | None = None) -> dict[int, TokenCounts]:
    """Per model of the equal-steps series (by W_S, smallest first; the largest W_S is the same
    model as in the equal-epochs series): counts per (kind, token) at the last block through its
    own MLM head, over the same W_test maskings as `series_counts`. {} when `equal_steps` is off
    or an external checkpoint (`model`) is read."""
    if not has_equal_steps(series):
        return {}
    store = store or Store()
    return {ws: last_block_counts(each, heldout, ws, data, store)
            for ws, each in series_recipes(series, "steps").items()}
