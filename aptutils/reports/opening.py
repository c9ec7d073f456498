"""What a chapter opens with: its settings resolved once, and for chapters 2-4 the model being
read with everything read from it.

`configure` turns a chapter's parameters into Settings (with an external checkpoint's
architecture); `open_blocks` gives chapters 2-4 a `BlockRun`: the settings, the pre-training
data, the model being read (`training.subject.Subject`, trained and untrained), the reading
and the cluster rule, and the calls that read it (block counts, reader training, the W_S
series). The recipes below `reports/` are made here and in the chapter reports, from Settings.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..analysis.apt import pretraining_frequency
from ..analysis.clusters import ClusterRule
from ..analysis.rises import PositionReading
from ..core.counts import TokenCounts
from ..core.params import Settings
from ..core.params import configure as configure_parameters
from ..core.store import Store
from ..data.checkpoint import checkpoint_architecture
from ..data.extension import HeldoutRecipe
from ..data.heldout import Masking, heldout_description, recipe_maskings
from ..data.pretraining import DataRecipe, PretrainingData, pretraining_data
from ..readout.counting import BlockCounts
from ..readout.reading import (
    CountsRecipe,
    ReadersRecipe,
    block_counts,
    reader_training,
    series_counts,
    token_vectors,
)
from ..readout.series import equal_steps_counts
from ..training.pretrain import SeriesRecipe
from ..training.subject import Subject, SubjectRecipe, load_subject


def configure(namespace: dict[str, Any]) -> Settings:
    """A chapter's settings (`core.params.configure`), with an external checkpoint's architecture
    (`with_checkpoint`)."""
    return with_checkpoint(configure_parameters(namespace))


def with_checkpoint(settings: Settings) -> Settings:
    """With `model` set (an external BERT checkpoint), the settings with its architecture knobs
    (`data.checkpoint.checkpoint_architecture`); else unchanged."""
    if settings.model is None:
        return settings
    return settings.replace(**checkpoint_architecture(settings.model, settings.seq_len,
                                                      settings.protocol))


def run_data(settings: Settings, store: Store | None = None) -> PretrainingData:
    """The pre-training data of these settings (`data.pretraining.pretraining_data`)."""
    return pretraining_data(settings.recipe(DataRecipe), store)


@dataclass(frozen=True)
class BlockRun:
    """A run of chapters 2-4: its settings, data, the model being read (`subject`), the reading
    (`kinds`, `token_min_occurrences`, `test_maskings`) and the cluster rule, resolved once."""

    settings: Settings
    data: PretrainingData
    subject: Subject
    reading: PositionReading
    rule: ClusterRule
    store: Store | None = None

    @property
    def ws(self) -> int:
        """The W_S of the model read."""
        return self.subject.ws

    @functools.cached_property
    def untrained(self) -> Subject:
        """The same architecture with seeded random weights: every reading's baseline."""
        return load_subject(self.settings.recipe(SubjectRecipe), self.data, trained=False,
                            ws=self.ws, store=self.store)

    @functools.cached_property
    def frequency(self) -> np.ndarray:
        """Occurrences of every token in W_S, [vocab]."""
        return pretraining_frequency(self.data, self.ws)

    def counts(self, trained: bool = True) -> dict[str, list[BlockCounts]]:
        """Every reader's counts per block (`readout.reading.block_counts`)."""
        subject = self.subject if trained else self.untrained
        return block_counts(self.settings.recipe(CountsRecipe), subject, self.data, self.store)

    def reader_training(self) -> dict[str, dict]:
        """The trained readers' training records (`readout.reading.reader_training`)."""
        return reader_training(self.settings.recipe(ReadersRecipe), self.subject, self.data,
                               self.store)

    def maskings(self) -> Iterator[Masking]:
        """The pooled W_test maskings the block counts read (`data.heldout.recipe_maskings`)."""
        return recipe_maskings(self.settings.recipe(HeldoutRecipe), self.data, self.store)

    def heldout(self) -> dict:
        """What the pooled W_test is (`data.heldout.heldout_description`)."""
        return heldout_description(self.settings.recipe(HeldoutRecipe), self.data, self.store)

    def series_counts(self, equal_steps: bool = False) -> dict[int, TokenCounts]:
        """Last-block counts of every model of the W_S series (`equal_steps`: of the equal-steps
        series); {} for an external checkpoint."""
        read = equal_steps_counts if equal_steps else series_counts
        return read(self.settings.recipe(SeriesRecipe), self.settings.recipe(HeldoutRecipe),
                    self.data, self.store)

    def token_vectors(self, trained: bool = True) -> np.ndarray:
        """The token embedding matrix [V, hidden] of the model read (or its untrained copy)."""
        return token_vectors(self.subject if trained else self.untrained)


def open_blocks(namespace: dict[str, Any], store: Store | None = None) -> BlockRun:
    """Chapters 2-4's opening: the settings of the chapter's parameters (`configure`), its data
    and the model read (`block_run`)."""
    return block_run(configure(namespace), store)


def block_run(settings: Settings, store: Store | None = None) -> BlockRun:
    """The run of these settings: their data and the model read (loaded, or pre-trained when
    missing, after the pooled W_test is checked: a bad `test_extension` stops first)."""
    data = run_data(settings, store)
    recipe_maskings(settings.recipe(HeldoutRecipe), data, store)
    subject = load_subject(settings.recipe(SubjectRecipe), data, store=store)
    return BlockRun(settings, data, subject, settings.recipe(PositionReading),
                    settings.recipe(ClusterRule), store)
