"""Chapters 3 and 4: token confusion structure block by block — symmetry breaking, strong-match
clusters, their sharpening, and the verdicts on C5, C6, C7 and C10."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..analysis.clusters import (
    cluster_signal_to_noise,
    cluster_sizes,
    cosine_within_across,
    filter_and_normalise,
    row_entropy,
    share_of_errors_in_cluster,
    strong_match_clusters,
)
from ..readout.counting import BlockCounts


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


def partition(confusion: sp.spmatrix, threshold: float, mutual: bool) -> Partition:
    """Filter, normalise and cluster one [V, V] confusion matrix."""
    kept, normalised = filter_and_normalise(confusion)
    labels = strong_match_clusters(normalised, threshold, mutual)
    full = np.arange(confusion.shape[0]) + (labels.max() + 1 if len(labels) else 0)
    full[kept] = labels
    return Partition(kept, normalised, labels, full)


def partitions_by_block(blocks: list[BlockCounts], threshold: float, mutual: bool) -> list[Partition]:
    """Each block's own clusters."""
    return [partition(block.confusion, threshold, mutual) for block in blocks]


def structure_table(blocks: list[BlockCounts], own: list[Partition], reference: Partition) -> pd.DataFrame:
    """Per block: its own clusters (kept tokens, clusters, largest) and, over the tokens clustered
    in the `reference` partition, the confusion mass inside vs outside their reference cluster
    (SNR = sum in / sum off, raw counts) and the mean row entropy (bits)."""
    tokens = reference.clustered_tokens()
    rows = []
    for block, (counts, mine) in enumerate(zip(blocks, own)):
        sizes = mine.sizes
        masses = cluster_signal_to_noise(counts.confusion, reference.full_labels).iloc[tokens]
        rows.append({
            "block": block, "kept tokens": len(mine.kept), "clusters (size >= 2)": int((sizes >= 2).sum()),
            "largest cluster": int(sizes[0]) if len(sizes) else 0,
            "in-cluster mass": masses["in_cluster"].sum(), "off-cluster mass": masses["off_cluster"].sum(),
            "SNR": _ratio(masses["in_cluster"].sum(), masses["off_cluster"].sum()),
            "mean row entropy (bits)": (float(np.nanmean(row_entropy(counts.confusion)[tokens]))
                                        if len(tokens) else np.nan),
        })
    return pd.DataFrame(rows).set_index("block")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def ordered_matrix(confusion: sp.spmatrix, tokens: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows of `confusion` for `tokens` (in that order) restricted to the same columns, each row
    divided by its largest entry (for a kept token that is its diagonal, as in M_Confus)."""
    block = confusion[tokens][:, tokens].toarray().astype(float)
    peak = np.asarray(confusion[tokens].max(axis=1).todense()).ravel().astype(float)
    values = np.divide(block, peak[:, None], out=np.zeros_like(block), where=peak[:, None] > 0)
    return pd.DataFrame(values, index=names, columns=names)


def figure_tokens(reference: Partition, frequency: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` of the most frequent clustered tokens, grouped by their reference cluster."""
    tokens = reference.clustered_tokens()
    chosen = tokens[np.argsort(-frequency[tokens], kind="stable")[:count]]
    return chosen[np.lexsort((-frequency[chosen], reference.full_labels[chosen]))]


def cosine_table(vectors_by_model: dict[str, np.ndarray], reference: Partition, seed: int) -> pd.DataFrame:
    """Mean cosine of token vectors within vs across reference clusters, per model's vectors [V, d]."""
    rows = {}
    for name, vectors in vectors_by_model.items():
        within, across = cosine_within_across(vectors[reference.kept], reference.labels, seed=seed)
        rows[name] = {"within clusters": within, "across clusters": across, "difference": within - across}
    return pd.DataFrame(rows).T


def cluster_examples(reference: Partition, tokenizer, frequency: np.ndarray, count: int = 8) -> pd.DataFrame:
    """The largest clusters and typical (median-size) ones, as token lists."""
    sizes = np.bincount(reference.labels)
    multi = np.flatnonzero(sizes >= 2)
    if not len(multi):
        return pd.DataFrame(columns=["kind", "size", "tokens"])
    by_size = multi[np.argsort(-sizes[multi], kind="stable")]
    median = np.median(sizes[multi])
    typical = multi[np.argsort(np.abs(sizes[multi] - median), kind="stable")]
    rows = []
    for kind, labels in (("largest", by_size[: count // 2]), ("typical", typical[: count // 2])):
        for label in labels:
            members = reference.kept[reference.labels == label]
            members = members[np.argsort(-frequency[members], kind="stable")]
            shown = tokenizer.convert_ids_to_tokens(members[:20].tolist())
            rows.append({"kind": kind, "size": int(sizes[label]),
                         "tokens": " · ".join(shown) + (" …" if len(members) > 20 else "")})
    return pd.DataFrame(rows)


def error_share_by_block(blocks: list[BlockCounts], own: list[Partition]) -> pd.Series:
    """C10 per block: share of wrong predictions (true token in a cluster of size >= 2) that land
    inside the true token's own strong-match cluster."""
    return pd.Series([share_of_errors_in_cluster(b.confusion, p.kept, p.labels) for b, p in zip(blocks, own)],
                     name="share of errors inside the cluster").rename_axis("block")
