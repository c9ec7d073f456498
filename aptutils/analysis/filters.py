"""Chapter 7's single-filter analysis: which labels each filter recognises and its SNR, the
shuffled-weights null of that SNR, C11's rule on single filters and its measured power; and,
as a secondary reading, the label clusters of each layer's confusion by chapter 3's rule.

A layer's filters are read from their mean fields F [C, L, L] (filter, image label, output label)
and their activity [C, L] (> 0: the filter fires more on that label's images than on average).

**The null.** Each filter's output weights are shuffled across labels: the columns (output
labels) of its F_c are permuted by its own seeded permutation and `filter_labels` is applied
again, with the same threshold and the same activity gating. A shuffled filter keeps its
activity, its largest field (so its normalisation) and the values of every row; it loses only
which output label it pushes on which image label. Its strong diagonal mostly moves off the
diagonal, so it recognises fewer labels, often none: label-set *size* cannot be tested against
this null (its sets are smaller by construction, so any real filter would look "large" beside
them) and is checked against a fixed bound instead. What the null can test is *specificity*: the
pooled SNR of the real filters (field inside the recognised set over field outside it) against
the same statistic when image labels meet output labels at random. The shuffled filter's few
recognised labels pass the same threshold, so both sides are selected alike.

**C11's rule** (`FilterTest`), between the first and the last conv layer: (a) small: the mean
labels per filter at the last layer (over the filters recognising any) is below half of the
labels; (b) specific: the last layer's pooled SNR is above the NULL_QUANTILE (95th percentile) of
its shuffled-weights null; (c) sharpens: the 95% bootstrap interval of SNR(last) - SNR(first),
each layer's filters resampled with replacement, lies above 0. Not measured with one conv layer.

**Power** (`filter_power`): both layers are replaced by their null (the run's own fields, columns
shuffled), then each last-layer filter gets a label set of `set_size` labels drawn among those it
fires on, with strength s: s times the filter's largest gated field added to every entry of
set x set. The rule runs unchanged on each plant; the detection rate at s = 0 is its null rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.apt import Interval, bootstrap_means, percentile_interval
from ..analysis.clusters import ClusterRule
from ..analysis.power import DETECTED, weakest_detected
from ..analysis.scan import null_quantile
from ..analysis.structure import Partition, partition, structure_table
from ..readout.layers import LayerReadout

POWER_STRENGTHS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
POWER_SET_SIZE = 2  # labels per planted set


@dataclass(frozen=True)
class FilterLabels:
    """The single filters of one layer at one threshold.

    normalised: [C, L, L] mean fields, rows of labels the filter is not more active on than on
    average (activity <= 0) and negative entries set to 0, divided by the largest remaining entry;
    active: [C, L] those rows kept; recognised: [C, L] normalised F[c, i, i] >= threshold.
    """

    normalised: np.ndarray
    active: np.ndarray
    recognised: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        """How many labels each filter recognises, [C]."""
        return self.recognised.sum(1)

    def mean_size(self) -> float:
        """Mean labels per filter over the filters recognising any (NaN if none does)."""
        sizes = self.sizes
        return float(sizes[sizes > 0].mean()) if (sizes > 0).any() else float("nan")

    def one(self, c: int) -> FilterLabels:
        """Filter c alone."""
        return FilterLabels(self.normalised[c:c + 1], self.active[c:c + 1], self.recognised[c:c + 1])

    def parts(self) -> np.ndarray:
        """Per filter [C, 4]: sum and count of normalised entries inside its set (recognised x
        recognised), then sum and count of those outside it on its active rows."""
        inside = self.recognised[:, :, None] & self.recognised[:, None, :]
        outside = self.active[:, :, None] & ~inside
        return np.stack([(self.normalised * inside).sum((1, 2)), inside.sum((1, 2)),
                         (self.normalised * outside).sum((1, 2)), outside.sum((1, 2))], axis=-1)

    def snr(self) -> float:
        """Mean normalised field inside the filters' sets over the mean outside them on active
        rows, pooled over the filters (inf if no noise, NaN if no set)."""
        return float(pooled_snr(self.parts().sum(0)))


def pooled_snr(sums: np.ndarray) -> np.ndarray:
    """SNR from `FilterLabels.parts` summed (or averaged) over filters, [..., 4] -> [...]: NaN
    where nothing is inside, inf where the noise is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        signal, noise = sums[..., 0] / sums[..., 1], sums[..., 2] / sums[..., 3]
        return np.where(noise > 0, signal / noise, np.where(np.isnan(signal), np.nan, np.inf))


def filter_labels(fields: np.ndarray, activity: np.ndarray, threshold: float) -> FilterLabels:
    """Which labels each filter of a layer recognises, from its mean fields [C, L, L] and its
    activity per label [C, L]."""
    active = activity > 0
    gated = np.clip(fields, 0, None) * active[:, :, None]
    peak = gated.max(axis=(1, 2), keepdims=True)
    normalised = np.divide(gated, peak, out=np.zeros_like(gated), where=peak > 0)
    return FilterLabels(normalised, active, np.diagonal(normalised, axis1=1, axis2=2) >= threshold)


def layer_filter_labels(readout: LayerReadout, threshold: float) -> list[FilterLabels]:
    """`filter_labels` of every conv layer, layer 1 first."""
    return [filter_labels(fields, activity, threshold)
            for fields, activity in zip(readout.filter_fields, readout.filter_activity)]


def label_set_sizes(readout: LayerReadout, threshold: float) -> dict[int, np.ndarray]:
    """Conv layer (1-based) -> how many labels each of its filters recognises, [C_k]."""
    return {k + 1: found.sizes for k, found in enumerate(layer_filter_labels(readout, threshold))}


def shuffled_columns(fields: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fields [..., C, L, L] with each filter's columns (output labels) permuted by its own
    permutation."""
    order = rng.permuted(np.broadcast_to(np.arange(fields.shape[-1]), fields.shape[:-1]), axis=-1)
    return np.take_along_axis(fields, order[..., None, :], axis=-1)


def snr_null(fields: np.ndarray, activity: np.ndarray, threshold: float, repeats: int,
             rng: np.random.Generator) -> np.ndarray:
    """Pooled SNR of `repeats` shuffled-weights copies of one layer (fields [C, L, L], activity
    [C, L]), [repeats]. A copy in which no filter recognises a label has no signal: SNR 0."""
    copies = shuffled_columns(np.broadcast_to(fields, (repeats, *fields.shape)), rng)
    found = filter_labels(copies.reshape(-1, *fields.shape[1:]), np.tile(activity, (repeats, 1)),
                          threshold)
    snr = pooled_snr(found.parts().reshape(repeats, len(fields), 4).sum(1))
    return np.where(np.isnan(snr), 0.0, snr)


def layer_snr_nulls(readout: LayerReadout, threshold: float, repeats: int,
                    seed: int) -> list[np.ndarray]:
    """`snr_null` of every conv layer, seeded by (seed, layer), layer 1 first."""
    return [snr_null(fields, activity, threshold, repeats, np.random.default_rng([seed, k + 1]))
            for k, (fields, activity)
            in enumerate(zip(readout.filter_fields, readout.filter_activity))]


def snr_rise(first: FilterLabels, last: FilterLabels, seed: int, n_boot: int = 1000) -> Interval:
    """SNR(last) - SNR(first) with its percentile bootstrap interval: each layer's filters are
    resampled with replacement, independently; n: the last layer's filters."""
    rng = np.random.default_rng(seed)
    first_snr, last_snr = (pooled_snr(bootstrap_means(found.parts(), n_boot, rng))
                           for found in (first, last))
    return percentile_interval(last.snr() - first.snr(), last_snr - first_snr, len(last.sizes))


@dataclass(frozen=True)
class FilterTest:
    """C11's rule on single filters between conv layers `first` and `last` (1-based) with
    `labels` labels. set_size: mean labels per filter at `last` over the filters recognising any;
    first_snr, snr: the pooled SNR of `first` and `last`; null: `last`'s shuffled-weights null
    [repeats]; rise: SNR(last) - SNR(first) with its bootstrap interval over filters."""

    first: int
    last: int
    labels: int
    set_size: float
    first_snr: float
    snr: float
    null: np.ndarray
    rise: Interval

    @property
    def null_top(self) -> float:
        return null_quantile(self.null)

    def small(self) -> bool:
        return bool(self.set_size < self.labels / 2)

    def specific(self) -> bool:
        return bool(self.snr > self.null_top)

    def sharpens(self) -> bool:
        return self.rise.above(0)

    def holds(self) -> bool | None:
        """(a), (b) and (c) together; None (not measured) with a single conv layer."""
        if self.last <= self.first:
            return None
        return self.small() and self.specific() and self.sharpens()


def filter_test(first: FilterLabels, last: FilterLabels, null: np.ndarray,
                layers: tuple[int, int], seed: int) -> FilterTest:
    """`FilterTest` of two layers' filters, given the last layer's null SNRs."""
    return FilterTest(*layers, last.recognised.shape[1], last.mean_size(), first.snr(), last.snr(),
                      null, snr_rise(first, last, seed))


def c11_test(readout: LayerReadout, threshold: float, repeats: int, seed: int) -> FilterTest:
    """C11's rule between the first and the last conv layer of a run; the null is the last
    layer's of `layer_snr_nulls`."""
    found, last = layer_filter_labels(readout, threshold), len(readout.filter_fields)
    null = snr_null(readout.filter_fields[-1], readout.filter_activity[-1], threshold, repeats,
                    np.random.default_rng([seed, last]))
    return filter_test(found[0], found[-1], null, (1, last), seed)


def planted_sets(activity: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """[C, L] bool: `size` labels per filter, drawn among those it fires on (all of them when
    fewer)."""
    fires = activity > 0
    rank = np.where(fires, rng.random(activity.shape), np.inf).argsort(1).argsort(1)
    return fires & (rank < size)


def planted_fields(fields: np.ndarray, activity: np.ndarray, sets: np.ndarray,
                   strength: float) -> np.ndarray:
    """Fields [C, L, L] plus `strength` x each filter's largest gated field (positive entries on
    the rows it fires on) on every entry of its set x set."""
    peak = (np.clip(fields, 0, None) * (activity > 0)[:, :, None]).max((1, 2))
    return fields + strength * peak[:, None, None] * (sets[:, :, None] & sets[:, None, :])


@dataclass(frozen=True)
class FilterPower:
    """C11's detection rate on planted label sets of `set_size` labels, by strength (index
    "strength", from 0), each over `plants` plants."""

    rate: pd.Series
    set_size: int
    plants: int

    @property
    def null_rate(self) -> float:
        """The detection rate without a planted set (strength 0)."""
        return float(self.rate.iloc[0])

    @property
    def table(self) -> pd.DataFrame:
        """The rates as a [strengths x rules] table (one rule: C11), as `analysis.power` makes."""
        return self.rate.to_frame("C11")

    def weakest(self, level: float = DETECTED) -> float:
        """The weakest strength detected in at least `level` of its plants
        (`analysis.power.weakest_detected`; NaN if none)."""
        return weakest_detected(self.rate, level)


def filter_power(readout: LayerReadout, threshold: float, repeats: int, seed: int, plants: int,
                 strengths: tuple[float, ...] = POWER_STRENGTHS,
                 set_size: int = POWER_SET_SIZE) -> FilterPower | None:
    """C11's rule (`filter_test`, `repeats` null copies) on `plants` plants per strength with the
    run's own first and last conv layers: both shuffled (`shuffled_columns`), label sets planted in
    the last (`planted_sets`, `planted_fields`). A plant keeps its shuffles, sets and seeds across
    strengths. None with a single conv layer."""
    if strengths[0] != 0:
        raise ValueError(f"strengths must start at 0 (the null rate), got {strengths[0]}")
    layers = len(readout.filter_fields)
    if layers < 2:
        return None
    first, first_activity = readout.filter_fields[0], readout.filter_activity[0]
    last, activity = readout.filter_fields[-1], readout.filter_activity[-1]
    hits = np.zeros(len(strengths))
    for plant in range(plants):
        rng = np.random.default_rng([seed, plant])
        found_first = filter_labels(shuffled_columns(first, rng), first_activity, threshold)
        base, sets = shuffled_columns(last, rng), planted_sets(activity, set_size, rng)
        for k, strength in enumerate(strengths):
            fields = planted_fields(base, activity, sets, strength)
            null = snr_null(fields, activity, threshold, repeats,
                            np.random.default_rng([seed, plant, layers]))
            test = filter_test(found_first, filter_labels(fields, activity, threshold), null,
                               (1, layers), seed + plant)
            hits[k] += bool(test.holds())
    return FilterPower(pd.Series(hits / plants, index=pd.Index(strengths, name="strength"),
                                 name="detection rate"), set_size, plants)


def confusion_partitions(readout: LayerReadout, rule: ClusterRule) -> list[Partition]:
    """Each layer's strong-match label clusters, by chapter 3's rule (`analysis.structure.partition`)."""
    return [partition(confusion, rule) for confusion in readout.confusions]


def reference_partition(partitions: list[Partition]) -> Partition:
    """The partition that orders the labels in figures: the deepest layer's that has a cluster of
    size >= 2, else the last layer's."""
    clustered = [p for p in partitions if (p.sizes >= 2).any()]
    return clustered[-1] if clustered else partitions[-1]


def layer_structure(readout: LayerReadout, rule: ClusterRule, repeats: int, seed: int) -> pd.DataFrame:
    """`analysis.structure.structure_table` of each conv layer's label confusion [L, L], indexed by
    layer (1-based): the same statistics and the same shuffle null as chapter 3's blocks."""
    return structure_table(list(readout.confusions), rule, repeats, seed,
                           pd.RangeIndex(1, len(readout.confusions) + 1, name="layer"))


def sharpest_filters(found: FilterLabels, count: int) -> np.ndarray:
    """The `count` filters with the highest own SNR among those recognising a label."""
    ratio = np.array([found.one(c).snr() for c in range(len(found.sizes))])
    return np.argsort(-np.nan_to_num(ratio, nan=-1.0, posinf=np.inf), kind="stable")[:count]
