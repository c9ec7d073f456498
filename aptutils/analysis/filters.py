"""Chapter 7's single-filter analysis: which labels each filter recognises, its SNR, and the label
clusters of each layer's confusion, by chapter 3's rule and against chapter 3's shuffle null.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule
from ..analysis.structure import Partition, partition, structure_table
from ..readout.layers import LayerReadout


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

    def one(self, c: int) -> FilterLabels:
        """Filter c alone."""
        return FilterLabels(self.normalised[c:c + 1], self.active[c:c + 1], self.recognised[c:c + 1])

    def snr(self) -> float:
        """Mean normalised field inside the filters' clusters (recognised x recognised) over the
        mean outside them on active rows; pooled over the filters (inf if no noise, NaN if no
        cluster)."""
        inside = self.recognised[:, :, None] & self.recognised[:, None, :]
        outside = self.active[:, :, None] & ~inside
        if not inside.any():
            return float("nan")
        noise = self.normalised[outside].mean() if outside.any() else 0.0
        return float(self.normalised[inside].mean() / noise) if noise > 0 else float("inf")


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
