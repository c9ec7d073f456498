"""Noise filter, strong-match clusters and their statistics on hand-made confusion matrices whose
answers are worked out in the comments; one large sparse matrix checks nothing goes dense."""
import numpy as np
import pytest
import scipy.sparse as sp

from aptutils.analysis.clusters import (
    cluster_signal_to_noise,
    cluster_sizes,
    cosine_within_across,
    filter_and_normalise,
    row_entropy,
    share_of_errors_in_cluster,
    strong_match_clusters,
    strong_match_graph,
    threshold_scan,
)

# rows = true token, columns = predicted token
CONFUSION = np.array([
    [5, 2, 0, 1, 0],  # diagonal largest: kept
    [3, 6, 0, 0, 3],  # kept
    [0, 4, 2, 0, 0],  # 4 > 2: dropped
    [0, 0, 0, 0, 0],  # never right: dropped
    [0, 4, 1, 0, 4],  # tie 4 = 4: kept
])
# kept 0, 1, 4; rows / diagonal, columns 0, 1, 4 only (column 3 of row 0, column 2 of row 4 go)
NORMALISED = np.array([
    [1.0, 0.4, 0.0],
    [0.5, 1.0, 0.5],
    [0.0, 1.0, 1.0],
])


def partition(labels) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)}


def six_tokens() -> sp.csr_matrix:
    """0 <-> 1 strong both ways (0.7, 0.65); 1 -> 2 weak one way (0.4, back 0.1);
    3 <-> 4 weak both ways (0.5, 0.35); 4 -> 5 strong one way (0.8, back 0.2); noise 5 -> 0 0.1,
    2 -> 3 0.25."""
    entries = {(0, 1): 0.7, (1, 0): 0.65, (1, 2): 0.4, (2, 1): 0.1, (3, 4): 0.5, (4, 3): 0.35,
               (4, 5): 0.8, (5, 4): 0.2, (5, 0): 0.1, (2, 3): 0.25}
    matrix = sp.lil_matrix(np.eye(6))
    for (i, j), value in entries.items():
        matrix[i, j] = value
    return matrix.tocsr()


@pytest.mark.parametrize("as_sparse", [True, False])
def test_filter_and_normalise_by_hand(as_sparse):
    confusion = sp.csr_matrix(CONFUSION) if as_sparse else CONFUSION
    kept, normalised = filter_and_normalise(confusion)
    assert kept.tolist() == [0, 1, 4]
    assert sp.issparse(normalised)
    np.testing.assert_allclose(normalised.toarray(), NORMALISED)


@pytest.mark.parametrize("threshold, mutual, expected", [
    (0.3, False, [{0, 1, 2}, {3, 4, 5}]),
    (0.3, True, [{0, 1}, {3, 4}, {2}, {5}]),
    (0.6, False, [{0, 1}, {4, 5}, {2}, {3}]),
    (0.6, True, [{0, 1}, {2}, {3}, {4}, {5}]),
    (0.65, True, [{0, 1}, {2}, {3}, {4}, {5}]),  # M(1, 0) = 0.65 reaches the threshold
    (0.66, True, [{0}, {1}, {2}, {3}, {4}, {5}]),
])
def test_clusters_of_six_tokens(threshold, mutual, expected):
    labels = strong_match_clusters(six_tokens(), threshold, mutual)
    assert partition(labels) == {frozenset(group) for group in expected}


def test_graph_is_symmetric_without_self_loops():
    graph = strong_match_graph(six_tokens(), 0.6)
    assert graph.dtype == bool
    assert sorted(zip(*graph.nonzero())) == [(0, 1), (1, 0), (4, 5), (5, 4)]
    with pytest.raises(ValueError, match="threshold"):
        strong_match_graph(six_tokens(), 0.0)


def test_cluster_sizes_largest_first():
    assert cluster_sizes(np.array([2, 0, 2, 1, 2, 0])).tolist() == [3, 2, 1]


def test_threshold_scan_of_six_tokens():
    scan = threshold_scan(six_tokens(), [0.3, 0.6, 0.9])
    assert scan["clusters"].tolist() == [2, 2, 0]
    assert scan["clustered_tokens"].tolist() == [6, 4, 0]
    assert scan["largest"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(scan["largest_share"], [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(scan["mean_size"], [3.0, 2.0, np.nan])
    mutual = threshold_scan(six_tokens(), [0.3], mutual=True)
    assert mutual.loc[0, ["clusters", "clustered_tokens", "largest"]].tolist() == [2, 4, 2]


def test_share_of_errors_in_cluster_by_hand():
    kept, normalised = filter_and_normalise(CONFUSION)
    # at 0.45 mutual only 1 <-> 4 (0.5 and 1.0) is strong: clusters {1, 4}, {0}
    labels = strong_match_clusters(normalised, 0.45, mutual=True)
    assert partition(labels) == {frozenset({0}), frozenset({1, 2})}
    # errors of 1: 3 (->0) + 3 (->4); of 4: 4 (->1) + 1 (->2, dropped); in-cluster 3 + 4
    assert share_of_errors_in_cluster(CONFUSION, kept, labels) == pytest.approx(7 / 11)
    # all kept true tokens: token 0 adds 2 (->1) + 1 (->3), none in-cluster
    assert share_of_errors_in_cluster(CONFUSION, kept, labels,
                                      clustered_only=False) == pytest.approx(7 / 14)
    # one-way at 0.45: {0, 1, 4} one cluster; only the predictions of dropped 2 and 3 miss
    one_way = strong_match_clusters(normalised, 0.45)
    assert share_of_errors_in_cluster(CONFUSION, kept, one_way) == pytest.approx(12 / 14)


def test_signal_to_noise_by_hand():
    matrix = six_tokens()
    table = cluster_signal_to_noise(matrix, strong_match_clusters(matrix, 0.3))  # {012}, {345}
    np.testing.assert_allclose(table["in_cluster"], [0.7, 1.05, 0.1, 0.5, 1.15, 0.2])
    np.testing.assert_allclose(table["off_cluster"], [0, 0, 0.25, 0, 0, 0.1])
    np.testing.assert_allclose(table["snr"], [np.inf, np.inf, 0.4, np.inf, np.inf, 2.0])
    assert table["cluster_size"].tolist() == [3] * 6
    mutual = cluster_signal_to_noise(matrix, strong_match_clusters(matrix, 0.6, mutual=True))
    np.testing.assert_allclose(mutual["snr"], [np.inf, 0.65 / 0.4, 0, 0, 0, 0])


def test_signal_to_noise_is_nan_without_off_diagonal_mass():
    table = cluster_signal_to_noise(sp.identity(2, format="csr"), np.array([0, 1]))
    assert table["snr"].isna().all()


def test_row_entropy_in_bits():
    entropy = row_entropy(sp.csr_matrix(CONFUSION))
    # row 0: 5/8, 2/8, 1/8; row 1: 1/4, 1/2, 1/4; row 2: 2/3, 1/3; row 4: 4/9, 1/9, 4/9
    expected = [5 / 8 * np.log2(8 / 5) + 2 / 8 * 2 + 1 / 8 * 3, 1.5,
                np.log2(3) - 2 / 3, np.nan, np.log2(9) - 8 / 9 * 2]
    np.testing.assert_allclose(entropy, expected)


def test_large_sparse_token_matrix_stays_sparse():
    size = 50_000
    confusion = sp.lil_matrix((size, size))
    confusion.setdiag(10)
    confusion[7, 8] = 20  # token 7 mostly predicted as 8: dropped
    confusion[100, 101] = confusion[101, 100] = 6  # 0.6 both ways: one cluster
    confusion[100, 5] = 2
    confusion = confusion.tocsr()
    kept, normalised = filter_and_normalise(confusion)
    assert len(kept) == size - 1 and 7 not in kept
    assert sp.issparse(normalised) and normalised.nnz == size - 1 + 3
    labels = strong_match_clusters(normalised, 0.5, mutual=True)
    scan = threshold_scan(normalised, [0.5])
    assert scan.loc[0, ["clusters", "clustered_tokens", "largest"]].tolist() == [1, 2, 2]
    assert share_of_errors_in_cluster(confusion, kept, labels) == pytest.approx(12 / 14)
    assert row_entropy(confusion).shape == (size,)


def test_cosine_within_and_across_by_hand():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    within, across = cosine_within_across(vectors, np.array([1, 0, 1]))
    # within: (1,0)·(1,1) = 1/sqrt2; across: (1,0)·(0,2) = 0 and (0,2)·(1,1) = 1/sqrt2
    assert within == pytest.approx(1 / np.sqrt(2))
    assert across == pytest.approx(1 / (2 * np.sqrt(2)))


def test_cosine_leaves_singletons_out_of_within():
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    within, across = cosine_within_across(vectors, np.array([0, 0, 1, 2]))
    # across pairs: 0, -1, 0, -1, 0
    assert (within, across) == pytest.approx((1.0, -0.4))
    within, _ = cosine_within_across(vectors, np.array([0, 1, 2, 3]))
    assert np.isnan(within)
    with pytest.raises(ValueError, match="zero vector"):
        cosine_within_across(np.zeros((2, 2)), np.array([0, 0]))


def test_sampled_cosines_approach_the_exact_ones():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    vectors = rng.normal(size=(10, 8))[labels] + rng.normal(size=(300, 8))
    exact = cosine_within_across(vectors, labels)
    sampled = cosine_within_across(vectors, labels, max_pairs=2000, seed=1)
    assert exact[0] > exact[1] + 0.3
    assert sampled == pytest.approx(exact, abs=0.03)


def test_threshold_scan_of_an_empty_matrix_reports_no_clusters():
    scan = threshold_scan(sp.csr_matrix((0, 0)), [0.5])
    assert scan.loc[0, "clusters"] == 0 and scan.loc[0, "largest"] == 0
    assert np.isnan(scan.loc[0, "largest_share"])


def test_no_clusters_give_nan_statistics_not_errors():
    empty = np.array([], dtype=int)
    assert np.isnan(share_of_errors_in_cluster(sp.csr_matrix(np.eye(3)), empty, empty))
    within, across = cosine_within_across(np.eye(3), np.array([0, 1, 2]))
    assert np.isnan(within) and across == 0.0
