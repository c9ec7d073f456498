"""Strong-match clusters of a confusion matrix, one rule for chapters 3 and 4 (tokens) and
chapter 7 (image labels), and the within-row shuffle null the cluster verdicts are tested against.

The rule (`ClusterRule`), on counts C [T, T] (rows: true token, columns: predicted token):

1. noise filter: token i is kept when its row holds at least `min_row_count` predictions and its
   diagonal C(i, i) is *strictly* larger than every other entry of its row. A tie does not pass:
   a token predicted as `the` exactly as often as it is predicted as itself is not recognised.
2. normalise: M(i, j) = C(i, j) / C(i, i) over the kept tokens, so M(i, i) = 1 and M(i, j) < 1.
3. strong match, `mutual` (the default): i and j are joined when M(i, j) >= t *and* M(j, i) >= t.
   A token i that is right a share a_i of its n_i occurrences has at most (1 - a_i) / (a_i t)
   mutual partners (its partners j each take C(i, j) >= t C(i, i) of its n_i - C(i, i) errors),
   so a frequent sink such as `the`, predicted right most of the time, has none, however many
   rare rows fall into it: it cannot chain them into one component. `one-way` (M(i, j) >= t
   either way, the paper's literal reading) joins every row that falls into the sink to it: on
   the first book's run it made one cluster of 186 of 247 kept tokens at thresholds 0.2-0.8.
   Mutual matching is the paper's own "symmetric" option and keeps its M. A symmetric
   normalisation C(i, j) / sqrt(C(i, i) C(j, j)) would also starve the sink, but it changes M,
   and one chance confusion between two rare tokens (C(i, j) = 1, diagonals 2) reaches 0.5;
   a mutual match needs two confusions, one each way.
4. clusters: the connected components of the strong-match graph (singletons included).

Nothing here builds a dense T x T array: a 30k-token confusion stays sparse.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..core.recipes import Recipe

MATCHES = ("mutual", "one-way")
_COSINE_CHUNK = 100_000  # pairs whose cosines are computed at once
_SWAP_TRIES = 100  # random partners tried per self-prediction left by the shuffle


@dataclass(frozen=True)
class ClusterRule(Recipe):
    """How a confusion matrix becomes clusters (see the module docstring).

    threshold: strong match at M(i, j) >= threshold, in (0, 1]; match: "mutual" or "one-way";
    min_row_count: predictions a row needs to pass the filter; ties_pass: the first book's filter
    (a tie between the diagonal and another entry keeps the token), kept to show what it did.
    """

    threshold: float
    match: str = "mutual"
    min_row_count: int = 1
    ties_pass: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.match not in MATCHES:
            raise ValueError(f"match must be one of {MATCHES}, got {self.match!r}")

    def describe(self) -> str:
        """E.g. "threshold 0.5, mutual, rows of >= 5 predictions, strict filter"."""
        return (f"threshold {self.threshold:g}, {self.match}, rows of >= {self.min_row_count} "
                f"prediction{'s' * (self.min_row_count != 1)}, "
                f"{'ties pass the filter' if self.ties_pass else 'strict filter'}")


def first_book_rule(threshold: float) -> ClusterRule:
    """The rule of the book's first edition: ties pass, no minimum count, one-way matches."""
    return ClusterRule(threshold, "one-way", 1, ties_pass=True)


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


def filter_and_normalise(confusion, min_row_count: int = 1,
                         ties_pass: bool = False) -> tuple[np.ndarray, sp.csr_matrix]:
    """The noise filter, then normalisation by the diagonal.

    confusion: counts [T, T], rows = true token, columns = predicted token (sparse or dense).
    A token is kept when its row sums to >= min_row_count, its diagonal is > 0 and every other
    entry of its row is smaller (with ties_pass, no larger). Rows and columns are then restricted
    to the kept tokens and each row divided by its diagonal, so M(i, i) = 1.
    Returns (kept token ids [K], normalised csr [K, K]).
    """
    counts = _csr(confusion)
    diagonal = counts.diagonal()
    row, col, value = _off_diagonal(counts)
    off_max = np.zeros(counts.shape[0])
    np.maximum.at(off_max, row, value)
    beats = diagonal >= off_max if ties_pass else diagonal > off_max
    totals = np.asarray(counts.sum(axis=1)).ravel()
    kept = np.flatnonzero((diagonal > 0) & beats & (totals >= min_row_count))
    restricted = counts[kept][:, kept]
    return kept, sp.csr_matrix(sp.diags(1.0 / diagonal[kept]) @ restricted)


def strong_match_graph(normalised: sp.spmatrix, threshold: float,
                       match: str = "mutual") -> sp.csr_matrix:
    """Undirected graph [K, K] (symmetric bool csr) of strong matches: off-diagonal M(i, j) >=
    threshold in both directions (mutual) or in either (one-way)."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if match not in MATCHES:
        raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
    size = normalised.shape[0]
    row, col, value = _off_diagonal(normalised)
    strong = value >= threshold
    directed = sp.csr_matrix((np.ones(strong.sum(), bool), (row[strong], col[strong])),
                             shape=(size, size))
    undirected = directed.multiply(directed.T) if match == "mutual" else directed + directed.T
    return sp.csr_matrix(undirected, dtype=bool)


def strong_match_clusters(normalised: sp.spmatrix, threshold: float,
                          match: str = "mutual") -> np.ndarray:
    """Cluster label per kept token, shape [K]: the connected components of the strong-match
    graph. A token without strong matches is a cluster of size 1."""
    graph = strong_match_graph(normalised, threshold, match)
    return connected_components(graph, directed=False)[1]


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """Size of every cluster (singletons included), largest first."""
    return np.sort(np.unique(labels, return_counts=True)[1])[::-1]


def threshold_scan(confusion, thresholds, rule: ClusterRule) -> pd.DataFrame:
    """Cluster statistics of counts [T, T] per threshold, under `rule` at each threshold.

    Columns: threshold, kept_tokens (K, past the filter), clusters (size >= 2), clustered_tokens
    (in them), largest (the largest cluster, 1 if none has 2 tokens, 0 if K = 0), largest_share
    (largest / K), mean_size (of clusters >= 2; NaN if none).
    """
    kept, normalised = filter_and_normalise(confusion, rule.min_row_count, rule.ties_pass)
    rows = []
    for threshold in thresholds:
        sizes = cluster_sizes(strong_match_clusters(normalised, threshold, rule.match))
        multi = sizes[sizes >= 2]
        largest = int(sizes[0]) if len(sizes) else 0
        rows.append((threshold, len(kept), len(multi), int(multi.sum()), largest,
                     largest / len(kept) if len(kept) else np.nan,
                     multi.mean() if len(multi) else np.nan))
    return pd.DataFrame(rows, columns=["threshold", "kept_tokens", "clusters", "clustered_tokens",
                                       "largest", "largest_share", "mean_size"])


def share_of_errors_in_cluster(confusion, kept: np.ndarray, labels: np.ndarray,
                               clustered_only: bool = True) -> float:
    """Share of wrong predictions that land on a token of the true token's own cluster.

    confusion: the unfiltered counts [T, T]; kept [K], labels [K]: from `filter_and_normalise`
    and `strong_match_clusters`. Wrong predictions are the off-diagonal counts. With
    clustered_only (C10) only those whose true token is in a cluster of size >= 2 count; without
    it (C6, C11) all of them, dropped true tokens included. A prediction of a dropped token is
    never in-cluster. NaN if there are no such errors.
    """
    counts = _csr(confusion)
    label_of = np.full(counts.shape[0], -1)
    label_of[kept] = labels
    size_of_label = np.bincount(labels, minlength=1)
    row, col, value = _off_diagonal(counts)
    true_label = label_of[row]
    in_cluster = (true_label >= 0) & (label_of[col] == true_label)
    counted = np.ones(len(row), bool)
    if clustered_only:
        counted = (true_label >= 0) & (size_of_label[np.maximum(true_label, 0)] >= 2)
    errors = value[counted].sum()
    return float(value[in_cluster].sum() / errors) if errors > 0 else float("nan")


def shuffled_errors(confusion, rng: np.random.Generator) -> sp.csr_matrix:
    """The within-row shuffle null of integer counts [T, T] (csr).

    Every row keeps its total and its diagonal; its wrong predictions are dealt out again by a
    random permutation of all wrong predictions of the matrix, so each predicted token also keeps
    how often it is predicted wrongly (a sink such as `the` stays a sink) while who is confused
    with whom is destroyed. A wrong prediction dealt back to its own row is swapped with a random
    other one; if no swap fits in `_SWAP_TRIES` tries, it moves to a uniformly drawn other column.
    """
    counts = _csr(confusion)
    row, col, value = _off_diagonal(counts)
    if not np.allclose(value, np.round(value)):
        raise ValueError("the shuffle null needs integer counts")
    repeats = np.round(value).astype(np.int64)
    rows, cols = np.repeat(row, repeats), rng.permutation(np.repeat(col, repeats))
    size = counts.shape[0]
    for k in np.flatnonzero(rows == cols):
        for m in rng.integers(0, len(rows), _SWAP_TRIES):
            if cols[m] != rows[k] and cols[k] != rows[m]:
                cols[k], cols[m] = cols[m], cols[k]
                break
        else:
            cols[k] = (rows[k] + rng.integers(1, size)) % size
    errors = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=counts.shape)
    return sp.csr_matrix(errors + sp.diags(counts.diagonal()))


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
