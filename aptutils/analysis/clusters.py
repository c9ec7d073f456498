"""Strong-match clusters of a confusion matrix: the noise filter, the thresholded graph, its
connected components, and the statistics of chapters 3 (symmetry breaking), 4 (clustering) and
7 (image analogy).

Works alike for a 30k x 30k token confusion matrix held sparse and a 10 x 10 label confusion
matrix: no function builds a dense T x T array.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

_COSINE_CHUNK = 100_000  # pairs whose cosines are computed at once


def _csr(confusion) -> sp.csr_matrix:
    """A square sparse copy of a [T, T] confusion matrix (sparse or dense), explicit zeros gone."""
    matrix = sp.csr_matrix(confusion, dtype=float, copy=True)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {matrix.shape}")
    matrix.eliminate_zeros()
    return matrix


def _off_diagonal(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, value) of the stored off-diagonal entries."""
    coo = sp.coo_matrix(matrix)
    off = coo.row != coo.col
    return coo.row[off], coo.col[off], coo.data[off]


def filter_and_normalise(confusion) -> tuple[np.ndarray, sp.csr_matrix]:
    """The paper's noise filter, then normalisation by the diagonal.

    confusion: counts [T, T], rows = true token, columns = predicted token (sparse or dense).
    A token is kept when its diagonal count is > 0 and no entry of its full row is larger (a tie
    with an off-diagonal count keeps it). Rows and columns are then restricted to the kept tokens
    and each row divided by its diagonal, so M(i, i) = 1 and off-diagonal entries are <= 1.
    Returns (kept token ids [K], normalised csr [K, K]).
    """
    counts = _csr(confusion)
    diagonal = counts.diagonal()
    row_max = counts.max(axis=1).toarray().ravel()
    kept = np.flatnonzero((diagonal > 0) & (diagonal >= row_max))
    restricted = counts[kept][:, kept]
    normalised = sp.diags(1.0 / diagonal[kept]) @ restricted
    return kept, sp.csr_matrix(normalised)


def strong_match_graph(normalised: sp.spmatrix, threshold: float,
                       mutual: bool = False) -> sp.csr_matrix:
    """Undirected graph [K, K] (symmetric bool csr) of strong matches: off-diagonal M(i, j) >=
    threshold. mutual=False joins i and j when either direction reaches the threshold;
    mutual=True only when both do."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    size = normalised.shape[0]
    row, col, value = _off_diagonal(normalised)
    strong = value >= threshold
    directed = sp.csr_matrix((np.ones(strong.sum(), bool), (row[strong], col[strong])),
                             shape=(size, size))
    undirected = directed.multiply(directed.T) if mutual else directed + directed.T
    return sp.csr_matrix(undirected, dtype=bool)


def strong_match_clusters(normalised: sp.spmatrix, threshold: float,
                          mutual: bool = False) -> np.ndarray:
    """Cluster label per kept token, shape [K]: the connected components of the strong-match
    graph. A token without strong matches is a cluster of size 1."""
    graph = strong_match_graph(normalised, threshold, mutual)
    return connected_components(graph, directed=False)[1]


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """Size of every cluster (singletons included), largest first."""
    return np.sort(np.unique(labels, return_counts=True)[1])[::-1]


def threshold_scan(normalised: sp.spmatrix, thresholds, mutual: bool = False) -> pd.DataFrame:
    """Cluster statistics per threshold. Columns: threshold, clusters (size >= 2),
    clustered_tokens (in them), largest (size of the largest cluster, 1 if none has 2 tokens),
    largest_share (largest / K kept tokens), mean_size (of clusters >= 2; NaN if none)."""
    kept_count = normalised.shape[0]
    rows = []
    for threshold in thresholds:
        sizes = cluster_sizes(strong_match_clusters(normalised, threshold, mutual))
        multi = sizes[sizes >= 2]
        largest = int(sizes[0]) if len(sizes) else 0
        rows.append((threshold, len(multi), int(multi.sum()), largest,
                     largest / kept_count if kept_count else np.nan,
                     multi.mean() if len(multi) else np.nan))
    return pd.DataFrame(rows, columns=["threshold", "clusters", "clustered_tokens", "largest",
                                       "largest_share", "mean_size"])


def share_of_errors_in_cluster(confusion, kept: np.ndarray, labels: np.ndarray,
                               clustered_only: bool = True) -> float:
    """Share of wrong predictions that land on a token of the true token's own cluster (C10).

    confusion: the unfiltered counts [T, T]; kept, labels: from `filter_and_normalise` and
    `strong_match_clusters`. Wrong predictions are the off-diagonal counts whose true token is
    kept; with clustered_only (default) only true tokens in a cluster of size >= 2 count,
    otherwise all kept true tokens (singletons then add errors that can never be in-cluster).
    A prediction of a dropped token is never in-cluster. NaN if there are no such errors.
    """
    counts = _csr(confusion)
    label_of = np.full(counts.shape[0], -1)
    label_of[kept] = labels
    size_of_label = np.bincount(labels, minlength=1)
    row, col, value = _off_diagonal(counts)
    true_label = label_of[row]
    counted = true_label >= 0
    if clustered_only:
        counted &= size_of_label[np.maximum(true_label, 0)] >= 2
    in_cluster = counted & (label_of[col] == true_label)
    errors = value[counted].sum()
    return float(value[in_cluster].sum() / errors) if errors > 0 else float("nan")


def cluster_signal_to_noise(normalised: sp.spmatrix, labels: np.ndarray) -> pd.DataFrame:
    """Per kept token (row of M): off-diagonal mass inside and outside its cluster.

    Columns: cluster, cluster_size, in_cluster (sum of M(i, j), j != i in i's cluster),
    off_cluster (sum of M(i, j), j in another cluster), snr = in_cluster / off_cluster, which is
    inf when off_cluster = 0 < in_cluster and NaN when both are 0. One row per kept token, in
    the order of `labels`.
    """
    size = normalised.shape[0]
    row, col, value = _off_diagonal(normalised)
    same = labels[row] == labels[col]
    in_cluster = np.bincount(row, weights=value * same, minlength=size)
    off_cluster = np.bincount(row, weights=value * ~same, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = in_cluster / off_cluster
    return pd.DataFrame({"cluster": labels, "cluster_size": np.bincount(labels)[labels],
                         "in_cluster": in_cluster, "off_cluster": off_cluster, "snr": snr})


def row_entropy(confusion) -> np.ndarray:
    """Entropy in bits of each row's count distribution (counts / row total), shape [T];
    NaN for an all-zero row."""
    counts = _csr(confusion)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    p = coo.data / totals[coo.row]
    entropy = np.bincount(coo.row, weights=-p * np.log2(p), minlength=counts.shape[0])
    return np.where(totals > 0, entropy, np.nan)


def _mean_cosine(unit: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    """Mean cosine of the pairs (first[k], second[k]) of unit-norm rows; NaN if no pairs."""
    if len(first) == 0:
        return float("nan")
    total = sum(np.einsum("ij,ij->i", unit[first[s:s + _COSINE_CHUNK]],
                          unit[second[s:s + _COSINE_CHUNK]]).sum()
                for s in range(0, len(first), _COSINE_CHUNK))
    return float(total / len(first))


def _within_pairs(labels: np.ndarray, max_pairs: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j in the same cluster, or max_pairs of them drawn uniformly (with
    replacement) when there are more."""
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pair_counts = sizes * (sizes - 1) // 2
    if pair_counts.sum() <= max_pairs:
        pairs = [np.triu_indices(size, 1) for size in sizes]
        first = [order[start + i] for start, (i, _) in zip(starts, pairs)]
        second = [order[start + j] for start, (_, j) in zip(starts, pairs)]
        return np.concatenate([[], *first]).astype(int), np.concatenate([[], *second]).astype(int)
    cluster = rng.choice(len(sizes), max_pairs, p=pair_counts / pair_counts.sum())
    a = rng.integers(0, sizes[cluster])
    b = rng.integers(0, sizes[cluster] - 1)
    b += b >= a
    return order[starts[cluster] + a], order[starts[cluster] + b]


def _across_pairs(labels: np.ndarray, max_pairs: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j in different clusters, or about max_pairs of them drawn uniformly (with
    replacement) when all pairs together exceed max_pairs."""
    count = len(labels)
    if count * (count - 1) // 2 <= max_pairs:
        first, second = np.triu_indices(count, 1)
    else:
        first = rng.integers(0, count, max_pairs)
        second = rng.integers(0, count - 1, max_pairs)
        second += second >= first
    across = labels[first] != labels[second]
    return first[across], second[across]


def cosine_within_across(vectors: np.ndarray, labels: np.ndarray, max_pairs: int = 1_000_000,
                         seed: int = 0) -> tuple[float, float]:
    """Mean cosine similarity of token vectors [K, d] for pairs inside one cluster (clusters of
    size >= 2) and for pairs in different clusters (singletons included).

    Exact when the pairs fit in max_pairs; otherwise a seeded uniform sample of max_pairs pairs
    (the across sample keeps only the drawn pairs that are in different clusters).
    Returns (within_mean, across_mean); NaN where there are no such pairs.
    """
    vectors = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("cosine similarity is undefined for a zero vector")
    unit = vectors / norms
    rng = np.random.default_rng(seed)
    within = _mean_cosine(unit, *_within_pairs(labels, max_pairs, rng))
    across = _mean_cosine(unit, *_across_pairs(labels, max_pairs, rng))
    return within, across
