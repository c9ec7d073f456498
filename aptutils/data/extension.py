"""A larger W_test: whole articles of the training pool that no model or reader trains on.

W_test (`corpus.build_samples`) is `test_samples` samples of held-out articles. The training pool
is shuffled sample by sample, so an article's samples lie anywhere in it; the models and readers
train only on its first `trained_reach` rows. An article none of whose samples lies there is
*eligible*; `test_extension` samples of eligible articles, taken whole in a seeded order (the
last one cut, as W_test's), extend W_test without changing the samples artifact, by which the
published models are keyed. The pool is re-derived from the corpus by the code that built it
(`corpus.pool_layout`) and checked against the stored one. Used through `data.heldout` by the
block counts and baselines of chapters 2-4 and 6.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.corpus import SampleRecipe, pool_layout
from ..data.pretraining import PretrainingData

ORDER_SEED_OFFSET = 20_011  # the seeded order of the eligible articles: seed + this


@dataclass(frozen=True)
class HeldoutRecipe(Recipe):
    """The pooled W_test of the block counts and baselines: `test_maskings` maskings of W_test
    (drawn as its `samples` recipe masks) and of its `test_extension`, which stays clear of the
    pool rows some model or reader trains on (`reach`: from ws_list, model, probe_samples and
    analysis_ws)."""

    test_maskings: int
    test_extension: int
    samples: SampleRecipe
    ws_list: tuple[int, ...]
    model: str | None
    probe_samples: int
    analysis_ws: int | None

    @property
    def reach(self) -> int:
        """How many leading rows of the training pool some model or reader trains on: for the
        book's W_S series its largest W_S (every model trains on its first W_S rows, the readers
        on at most `probe_samples` of them, whatever `analysis_ws`); for an external checkpoint
        (`model`) its readers' min(probe_samples, W_S read), W_S read being `analysis_ws` or the
        largest of ws_list."""
        largest = max(self.ws_list)
        if self.model is None:
            return largest
        return min(self.probe_samples, self.analysis_ws or largest)


def extension_params(recipe: HeldoutRecipe, data: PretrainingData) -> dict:
    """Exactly what determines the extension: the samples artifact (corpus, tokenizer, sampling,
    split, seed), the rows it stays clear of and its size. Its masks are drawn when read."""
    return {"samples": data.samples.folder.name, "reach": recipe.reach,
            "test_extension": recipe.test_extension, "seed": recipe.samples.seed}


def build_extension(folder: Path, recipe: HeldoutRecipe, data: PretrainingData) -> None:
    """Write ids.npy [test_extension, seq_len] int32, pool_rows.npy [test_extension] (where each
    sample sits in `train_ids`) and stats.json (samples, articles, their ids, what was eligible)."""
    reach, wanted = recipe.reach, recipe.test_extension
    layout = pool_layout(recipe.samples, data.corpus, data.tokenizer)
    pool = layout.pool()
    if not np.array_equal(pool, data.samples.array("train_ids")):
        raise DataError(f"test_extension={wanted}: the training pool re-derived from the corpus "
                        f"differs from the stored one in {data.samples.folder}; other code or "
                        f"another corpus made it: remove that folder so it is rebuilt")
    articles = layout.pool_articles()
    first_row = np.full(len(layout.samples), len(articles))
    np.minimum.at(first_row, articles, np.arange(len(articles)))
    eligible = layout.train_articles[first_row[layout.train_articles] >= reach]
    sizes = {int(a): len(layout.samples[a]) for a in eligible}
    if sum(sizes.values()) < wanted:
        raise DataError(f"test_extension={wanted}: only {sum(sizes.values()):,} samples of the "
                        f"training pool are eligible (whole articles none of whose samples is "
                        f"among its first {reach:,} rows, which models and readers train on); "
                        f"lower test_extension to at most {sum(sizes.values())}")
    order = np.random.default_rng(recipe.samples.seed + ORDER_SEED_OFFSET).permutation(eligible)
    chosen = order[: int(np.searchsorted(np.cumsum([sizes[int(a)] for a in order]), wanted)) + 1]
    row_of = np.argsort(layout.order)  # a sample's place, training articles end to end -> pool row
    starts = np.cumsum([0] + [len(layout.samples[a]) for a in layout.train_articles])
    start_of = dict(zip(layout.train_articles.tolist(), starts.tolist()))
    rows = np.concatenate([row_of[start_of[int(a)] + np.arange(sizes[int(a)])]
                           for a in chosen])[:wanted]
    np.save(folder / "ids.npy", pool[rows])
    np.save(folder / "pool_rows.npy", rows)
    (folder / "stats.json").write_text(json.dumps({
        "samples": int(wanted), "articles": len(chosen), "reach": reach,
        "pool_samples": len(articles), "eligible_samples": sum(sizes.values()),
        "eligible_articles": len(eligible),
        "article_ids": [data.corpus.ids[a] for a in chosen]}))


@dataclass(frozen=True)
class Extension:
    """The stored extension of W_test (`build_extension`)."""

    folder: Path

    @property
    def ids(self) -> np.ndarray:
        """Its samples, [test_extension, seq_len] int32."""
        return np.load(self.folder / "ids.npy")

    @property
    def stats(self) -> dict:
        return json.loads((self.folder / "stats.json").read_text())


def heldout_extension(recipe: HeldoutRecipe, data: PretrainingData,
                      store: Store | None = None) -> Extension | None:
    """The extension of W_test of this recipe, built when missing; None for test_extension 0."""
    if not recipe.test_extension:
        return None
    store = store or Store()
    return Extension(store.get_or_build("test-extension", extension_params(recipe, data),
                                        lambda folder: build_extension(folder, recipe, data)))
