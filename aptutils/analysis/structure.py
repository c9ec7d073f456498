"""Chapters 3, 4 and 7: strong-match clusters depth by depth (BERT blocks, CNN layers), and the
nulls every cluster verdict is decided against.

- `partition`: one confusion matrix -> its clusters, by a `clusters.ClusterRule` (the one
  definition for tokens and image labels).
- `structure_table`: per depth, the clusters at one threshold and the share of all wrong
  predictions that stay inside them, beside the same statistics of `repeats` within-row shuffled
  copies (`clusters.shuffled_errors`, each clustered anew): the single-threshold reading of C5
  and C6, shown beside the scan verdicts (`analysis.scan`). Nothing refers to another depth's
  clusters, and nothing rewards a collapse: predictions that all fall into one sink make no
  mutual cluster, so no in-cluster share.
- `error_share_table`: per depth, the share of a clustered token's wrong predictions that land in
  its own cluster, beside the same with the cluster labels permuted at fixed sizes: the
  single-threshold reading of C10.
- figures' helpers: `confused_tokens` (which tokens a confusion heatmap shows, in which order),
  `loosest_partition`, `ordered_matrix`, `cosine_table`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from ..analysis.clusters import (
    ClusterRule,
    cluster_sizes,
    cosine_within_across,
    filter_and_normalise,
    share_of_errors_in_cluster,
    shuffled_errors,
    strong_match_clusters,
)
from ..readout.counting import BlockCounts
from .scan import ScanRule, null_quantile



@dataclass(frozen=True)
class Partition:
    """Strong-match clusters of one confusion matrix.

    kept: [K] token ids that pass the noise filter; normalised: [K, K] M_Confus; labels: [K]
    cluster per kept token; full_labels: [V] cluster per token, every dropped token a singleton.
    """

    kept: np.ndarray
    normalised: sp.csr_matrix
    labels: np.ndarray
    full_labels: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return cluster_sizes(self.labels)

    def clustered_tokens(self) -> np.ndarray:
        """Kept token ids that share a cluster with at least one other token."""
        return self.kept[np.bincount(self.labels)[self.labels] >= 2]


def partition(confusion, rule: ClusterRule) -> Partition:
    """Filter, normalise and cluster one [V, V] confusion matrix (sparse or dense counts)."""
    kept, normalised = filter_and_normalise(confusion, rule.min_row_count, rule.ties_pass)
    labels = strong_match_clusters(normalised, rule.threshold, rule.match)
    full = np.arange(confusion.shape[0]) + (labels.max() + 1 if len(labels) else 0)
    full[kept] = labels
    return Partition(kept, normalised, labels, full)


def partitions_by_block(blocks: list[BlockCounts], rule: ClusterRule) -> list[Partition]:
    """Each block's own clusters."""
    return [partition(block.confusion, rule) for block in blocks]


def cluster_statistics(confusion, part: Partition) -> dict[str, float]:
    """kept (tokens past the filter), clusters (of size >= 2), clustered (tokens in them), largest
    (cluster, 1 if none has 2 tokens, 0 if nothing is kept), in-cluster share (of all wrong
    predictions, those landing in the true token's own cluster; NaN without errors)."""
    sizes = part.sizes
    multi = sizes[sizes >= 2]
    return {"kept": len(part.kept), "clusters": len(multi), "clustered": int(multi.sum()),
            "largest": int(sizes[0]) if len(sizes) else 0,
            "in-cluster share": share_of_errors_in_cluster(confusion, part.kept, part.labels,
                                                           clustered_only=False)}


def shuffle_null(confusion, rule: ClusterRule, repeats: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """`cluster_statistics` of `repeats` within-row shuffled copies, each clustered anew by `rule`;
    one row per copy."""
    rows = []
    for _ in range(repeats):
        shuffled = shuffled_errors(confusion, rng)
        rows.append(cluster_statistics(shuffled, partition(shuffled, rule)))
    return pd.DataFrame(rows, columns=["kept", "clusters", "clustered", "largest", "in-cluster share"])


def structure_table(confusions: list, rule: ClusterRule, repeats: int, seed: int,
                    depths: pd.Index) -> pd.DataFrame:
    """Per depth (one [V, V] count matrix each, index `depths`): `cluster_statistics` of its own
    clusters, the mean and NULL_QUANTILE of clustered tokens and in-cluster share over `repeats`
    shuffled copies (seeded by (seed, depth)), and the excess in-cluster share (observed minus
    the null's mean)."""
    rows = []
    for depth, confusion in zip(depths, confusions):
        observed = cluster_statistics(confusion, partition(confusion, rule))
        null = shuffle_null(confusion, rule, repeats, np.random.default_rng([seed, int(depth)]))
        share = null["in-cluster share"]
        rows.append(observed | {
            "null clustered (mean)": null["clustered"].mean(),
            "null clustered (95%)": null_quantile(null["clustered"]),
            "null in-cluster share (mean)": share.mean(),
            "null in-cluster share (95%)": null_quantile(share),
            "excess in-cluster share": observed["in-cluster share"] - share.mean(),
        })
    return pd.DataFrame(rows, index=depths)


def structure_by_block(blocks: list[BlockCounts], rule: ClusterRule, repeats: int,
                       seed: int) -> pd.DataFrame:
    """`structure_table` of every block's confusion, indexed by block (0 = embeddings)."""
    return structure_table([b.confusion for b in blocks], rule, repeats, seed,
                           pd.RangeIndex(len(blocks), name="block"))


def error_share_table(confusions: list, partitions: list[Partition], repeats: int, seed: int,
                      depths: pd.Index) -> pd.DataFrame:
    """C10 per depth: clustered (tokens in clusters of size >= 2), the share of wrong predictions
    of clustered true tokens that land in their own cluster ("in own cluster"; NaN without such
    errors), and its mean and NULL_QUANTILE over `repeats` copies of the partition with the kept
    tokens' cluster labels permuted (cluster sizes fixed)."""
    rows = []
    for depth, confusion, part in zip(depths, confusions, partitions):
        rng = np.random.default_rng([seed, int(depth)])
        null = [share_of_errors_in_cluster(confusion, part.kept, rng.permutation(part.labels))
                for _ in range(repeats)]
        rows.append({"clustered": len(part.clustered_tokens()),
                     "in own cluster": share_of_errors_in_cluster(confusion, part.kept, part.labels),
                     "permuted labels (mean)": np.nanmean(null) if np.isfinite(null).any() else np.nan,
                     "permuted labels (95%)": null_quantile(null)})
    return pd.DataFrame(rows, index=depths)


def error_share_by_block(blocks: list[BlockCounts], own: list[Partition], repeats: int,
                         seed: int) -> pd.DataFrame:
    """`error_share_table` of every block with its own clusters, indexed by block."""
    return error_share_table([b.confusion for b in blocks], own, repeats, seed,
                             pd.RangeIndex(len(blocks), name="block"))


def counted(count: int, noun: str) -> str:
    """"1 cluster", "3 clusters" (thousands separated)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def trend(values: pd.Series) -> str:
    """"rises", "falls" or "stays level" from the first to the last finite value; "is not
    measured" with fewer than two. Figure titles say what the run computed, never an assumption."""
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if len(finite) < 2:
        return "is not measured"
    first, last = float(finite.iloc[0]), float(finite.iloc[-1])
    if np.isclose(first, last, rtol=0, atol=1e-9):
        return "stays level"
    return "rises" if last > first else "falls"


def trend_phrase(values: pd.Series, unit: str) -> str:
    """E.g. "rises from block 1 to block 6", between the first and the last finite values."""
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if len(finite) < 2:
        return f"is not measured at two {unit}s"
    return f"{trend(values)} from {unit} {finite.index[0]} to {unit} {finite.index[-1]}"


def peak_phrase(values: pd.Series, unit: str) -> str:
    """", highest at block 2" when the largest finite value lies strictly inside the curve (a
    first-to-last trend would hide it), else ""."""
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if len(finite) < 3:
        return ""
    peak = finite.idxmax()
    return "" if peak in (finite.index[0], finite.index[-1]) else f", highest at {unit} {peak}"


def ordered_matrix(confusion: sp.spmatrix, tokens: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows of `confusion` for `tokens` (in that order) restricted to the same columns, each row
    divided by its largest entry (for a kept token that is its diagonal, as in M_Confus)."""
    block = confusion[tokens][:, tokens].toarray().astype(float)
    peak = np.asarray(confusion[tokens].max(axis=1).todense()).ravel().astype(float)
    values = np.divide(block, peak[:, None], out=np.zeros_like(block), where=peak[:, None] > 0)
    return pd.DataFrame(values, index=names, columns=names)


def confused_tokens(confusion, frequency: np.ndarray, count: int, min_row_count: int,
                    pool: int = 400) -> np.ndarray:
    """Up to `count` token ids for a confusion figure, ordered so that structure shows: among the
    `pool` most frequent tokens that pass the noise filter of counts [V, V], those most confused
    with another of them (largest max(M(i, j), M(j, i))), ordered by average-linkage clustering
    of 1 - max(M(i, j), M(j, i)), so tokens confused with each other sit side by side."""
    kept, normalised = filter_and_normalise(confusion, min_row_count)
    top = np.argsort(-frequency[kept], kind="stable")[:pool]
    if len(top) < 3:
        return kept[top]
    matrix = normalised[top][:, top].toarray()
    np.fill_diagonal(matrix, 0.0)
    mutual = np.maximum(matrix, matrix.T)
    chosen = np.argsort(-mutual.max(axis=1), kind="stable")[:count]
    distance = 1.0 - mutual[np.ix_(chosen, chosen)]
    np.fill_diagonal(distance, 0.0)
    order = leaves_list(linkage(squareform(distance, checks=False), method="average"))
    return kept[top[chosen[order]]]


def loosest_partition(confusion, rule: ScanRule) -> tuple[float, Partition]:
    """The clusters of counts [V, V] at the loosest scanned threshold that has a cluster of two or
    more tokens (the rule's match and filter), else at the loosest threshold: (threshold, Partition)."""
    for threshold in sorted(rule.thresholds):
        found = partition(confusion, rule.at(threshold))
        if (found.sizes >= 2).any():
            return threshold, found
    return min(rule.thresholds), partition(confusion, rule.at(min(rule.thresholds)))


def cosine_table(vectors_by_model: dict[str, np.ndarray], reference: Partition, seed: int) -> pd.DataFrame:
    """Mean cosine of token vectors within vs across reference clusters, per model's vectors [V, d];
    the reference must have a cluster of two or more tokens (else there is no pair within)."""
    if not (reference.sizes >= 2).any():
        raise ValueError("the reference partition has no cluster of two or more tokens")
    rows = {}
    for name, vectors in vectors_by_model.items():
        within, across = cosine_within_across(vectors[reference.kept], reference.labels, seed=seed)
        rows[name] = {"within clusters": within, "across clusters": across, "difference": within - across}
    return pd.DataFrame(rows).T
