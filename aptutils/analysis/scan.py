"""The cluster verdicts' statistics across the whole threshold scan (chapters 3, 4 and 7).

The paper leaves the strong-match threshold open and suggests scanning it (0.2-0.8); a claim
that small clusters *exist* should not hinge on one value of it. So the verdicts C5, C6 and C10
read one statistic per matrix pooled over every scanned threshold, for the book's filter and
`match`, and test it against the same statistic of the within-row shuffle null
(`clusters.shuffled_errors`) — one test, whatever the number of thresholds:

- clustered (C5): tokens in clusters of size >= 2, summed over the thresholds;
- in-cluster share (C6): of all wrong predictions, the share naming a token of the true token's
  own cluster, averaged over the thresholds; its *excess* is that minus the null copies' mean;
- own-cluster share (C10): the wrong predictions of clustered true tokens that stay in their
  cluster, over all of them, both summed over the thresholds. Its null is the same shuffled
  copies, each clustered anew (a copy without clusters keeps 0 errors in them). Permuting the
  cluster labels at fixed sizes, the first books' null, is no null here: the clusters are made
  from these very errors, so chance clusters of a shuffled matrix beat their permuted labels in
  a third of the copies (measured with `analysis.power` at strength 0).

The per-threshold values of both match modes stay in the scan table, so a reader sees at which
thresholds each reading holds. Everything here is counts, sparse; nothing trains.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .clusters import (
    MATCHES,
    ClusterRule,
    cluster_sizes,
    filter_and_normalise,
    shuffled_errors,
    strong_match_clusters,
)

SCAN_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
NULL_QUANTILE = 0.95  # a statistic beats its null when it exceeds this quantile of the null
COUNTS = ["kept", "clusters", "clustered", "largest", "errors", "clustered errors",
          "in-cluster errors"]
SET_SIZES = ["strong-match set 1", "strong-match set 2", "strong-match set 3+"]


@dataclass(frozen=True)
class ScanRule:
    """The book's filter (strict, rows of >= min_row_count) and `match`, at every threshold of
    `thresholds`; `matches` are the match modes the scan table shows (the primary one first)."""

    match: str = "mutual"
    min_row_count: int = 1
    thresholds: tuple[float, ...] = SCAN_THRESHOLDS

    def __post_init__(self) -> None:
        if self.match not in MATCHES:
            raise ValueError(f"match must be one of {MATCHES}, got {self.match!r}")
        if not self.thresholds or not all(0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be in (0, 1], got {self.thresholds}")

    @classmethod
    def from_rule(cls, rule: ClusterRule) -> ScanRule:
        """The scan of the book's rule: its match and filter, the thresholds of SCAN_THRESHOLDS."""
        return cls(rule.match, rule.min_row_count)

    @property
    def matches(self) -> tuple[str, ...]:
        return (self.match, *[m for m in MATCHES if m != self.match])

    def at(self, threshold: float, match: str | None = None) -> ClusterRule:
        """The single-threshold rule of the scan at one threshold (and match)."""
        return ClusterRule(threshold, match or self.match, self.min_row_count)

    def describe(self) -> str:
        return (f"{self.match} matches at every threshold {self.thresholds[0]:g}-"
                f"{self.thresholds[-1]:g}, rows of >= {self.min_row_count} predictions, strict filter")


def _errors(counts: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coo = counts.tocoo()
    off = coo.row != coo.col
    return coo.row[off], coo.col[off], coo.data[off]


def _labelled_counts(kept: np.ndarray, labels: np.ndarray, size: int,
                     errors: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    """COUNTS of one partition: kept token ids [K], their cluster labels [K], matrix size V."""
    row, col, value = errors
    sizes = np.bincount(labels, minlength=1)
    label_of = np.full(size, -1)
    label_of[kept] = labels
    clustered_row = (label_of[row] >= 0) & (sizes[np.maximum(label_of[row], 0)] >= 2)
    inside = clustered_row & (label_of[col] == label_of[row])
    by_size = cluster_sizes(labels)
    multi = by_size[by_size >= 2]
    return {"kept": len(kept), "clusters": len(multi), "clustered": int(multi.sum()),
            "largest": int(by_size[0]) if len(by_size) else 0, "errors": float(value.sum()),
            "clustered errors": float(value[clustered_row].sum()),
            "in-cluster errors": float(value[inside].sum())}


def strong_match_sets(normalised: sp.spmatrix, threshold: float) -> dict[str, int]:
    """The image papers' per-item reading for tokens: how many kept tokens i have a strong-match
    set {j != i : M(i, j) >= threshold} of size 1, 2 and 3 or more (one-way, like a filter's
    label set)."""
    row, _, value = _errors(sp.csr_matrix(normalised))
    sizes = np.bincount(row[value >= threshold], minlength=normalised.shape[0])
    return dict(zip(SET_SIZES, (int((sizes == 1).sum()), int((sizes == 2).sum()),
                                int((sizes >= 3).sum()))))


def _table(rows: dict) -> pd.DataFrame:
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["match", "threshold"])
    return table


def scan_counts(confusion, scan: ScanRule) -> pd.DataFrame:
    """COUNTS and SET_SIZES of one [V, V] count matrix, one row per (match, threshold)."""
    counts = sp.csr_matrix(confusion)
    errors = _errors(counts)
    kept, normalised = filter_and_normalise(counts, scan.min_row_count)
    sets = {t: strong_match_sets(normalised, t) for t in scan.thresholds}
    return _table({(match, t): _labelled_counts(kept, strong_match_clusters(normalised, t, match),
                                                counts.shape[0], errors) | sets[t]
                   for match in scan.matches for t in scan.thresholds})


def in_cluster_share(table: pd.DataFrame) -> pd.Series:
    """Per row of a scan table: in-cluster errors over all errors (NaN without errors)."""
    return table["in-cluster errors"] / table["errors"].where(table["errors"] > 0)


@dataclass(frozen=True)
class Scan:
    """One matrix's scan table and its null: `observed` (COUNTS per (match, threshold)), `null`
    (one such table per shuffled copy, each clustered anew), `match` the primary match."""

    observed: pd.DataFrame
    null: tuple[pd.DataFrame, ...]
    match: str

    def primary(self, table: pd.DataFrame) -> pd.DataFrame:
        return table.xs(self.match, level="match")

    def clustered(self, table: pd.DataFrame | None = None) -> float:
        """C5's statistic: clustered tokens summed over the primary match's thresholds."""
        return float(self.primary(self.observed if table is None else table)["clustered"].sum())

    def share(self, table: pd.DataFrame | None = None) -> float:
        """C6's statistic: the in-cluster share averaged over the thresholds (NaN without errors)."""
        values = in_cluster_share(self.primary(self.observed if table is None else table))
        return float(values.mean()) if values.notna().all() else float("nan")

    def own_share(self, table: pd.DataFrame | None = None) -> float:
        """C10's statistic: in-cluster over clustered errors, both summed over the thresholds."""
        primary = self.primary(self.observed if table is None else table)
        denominator = primary["clustered errors"].sum()
        return float(primary["in-cluster errors"].sum() / denominator) if denominator else float("nan")

    def null_values(self, statistic: str) -> np.ndarray:
        """The statistic (`clustered`, `share` or `own_share`) of every null copy; a copy whose
        clustered tokens make no error keeps an own-cluster share of 0."""
        values = np.array([getattr(self, statistic)(t) for t in self.null], dtype=float)
        return np.nan_to_num(values, nan=0.0) if statistic == "own_share" else values

    def excess(self) -> float:
        """The in-cluster share minus its null copies' mean."""
        return self.share() - float(np.nanmean(self.null_values("share")))

    def with_observed(self, confusion, scan: ScanRule) -> Scan:
        """Another matrix with the same row totals and diagonals (a planted copy) read against
        this matrix's null."""
        return replace(self, observed=scan_counts(confusion, scan))


def null_quantile(values) -> float:
    """The NULL_QUANTILE of a null's finite values (NaN if none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, NULL_QUANTILE)) if len(values) else float("nan")


def shuffled_null(confusion, scan: ScanRule, repeats: int,
                  rng: np.random.Generator) -> tuple[pd.DataFrame, ...]:
    """`scan_counts` of `repeats` within-row shuffled copies of integer counts [V, V]."""
    return tuple(scan_counts(shuffled_errors(confusion, rng), scan) for _ in range(repeats))


def scan(confusion, rule: ScanRule, repeats: int, seed) -> Scan:
    """The scan of one [V, V] count matrix with its shuffled null (`repeats` copies, seeded by
    `seed`: an int or a sequence of ints)."""
    rng = np.random.default_rng(seed)
    return Scan(scan_counts(confusion, rule), shuffled_null(confusion, rule, repeats, rng),
                rule.match)


def scan_table(result: Scan) -> pd.DataFrame:
    """Per (match, threshold): kept, clusters, clustered, largest, the clustered tokens' null
    (95th percentile), the in-cluster share and its null (mean, 95th percentile), the excess, the
    own-cluster share and its null (95th percentile)."""
    table = result.observed[["kept", "clusters", "clustered", "largest"]].copy()
    null_clustered = pd.concat([t["clustered"] for t in result.null], axis=1)
    null_share = pd.concat([in_cluster_share(t) for t in result.null], axis=1)
    own = result.observed["in-cluster errors"] / result.observed["clustered errors"].where(
        result.observed["clustered errors"] > 0)
    own_null = pd.concat([(t["in-cluster errors"] / t["clustered errors"].where(
        t["clustered errors"] > 0)).fillna(0.0) for t in result.null], axis=1)
    share = in_cluster_share(result.observed)
    table["null clustered (95%)"] = null_clustered.apply(null_quantile, axis=1)
    table["in-cluster share"] = share
    table["null share (mean)"] = null_share.mean(axis=1)
    table["null share (95%)"] = null_share.apply(null_quantile, axis=1)
    table["excess share"] = share - table["null share (mean)"]
    table["own-cluster share"] = own
    table["null own-cluster share (95%)"] = own_null.apply(null_quantile, axis=1)
    return table


def set_size_table(result: Scan) -> pd.DataFrame:
    """Per threshold: kept tokens with a strong-match set of size 1, 2 and 3+, observed and as the
    shuffled null's mean (one-way sets, so the match mode plays no part)."""
    observed = result.primary(result.observed)[SET_SIZES]
    null = sum(result.primary(t)[SET_SIZES] for t in result.null) / len(result.null)
    return pd.concat({"observed": observed, "shuffled null (mean)": null}, axis=1)


def scans_by_depth(confusions: list, rule: ScanRule, repeats: int, seed: int) -> list[Scan]:
    """`scan` of every depth's count matrix (block 0 = embeddings, or conv layer), the null of
    depth d seeded by (seed, d)."""
    return [scan(confusion, rule, repeats, [seed, depth]) for depth, confusion in enumerate(confusions)]
