"""Noise filter, strong-match clusters, the shuffle null and the statistics on hand-made confusion
matrices whose answers are worked out in the comments; one large sparse matrix checks nothing
goes dense."""
import numpy as np
import pytest
import scipy.sparse as sp

from aptutils.analysis.clusters import (
    ClusterRule,
    cluster_sizes,
    cosine_within_across,
    filter_and_normalise,
    first_book_rule,
    share_of_errors_in_cluster,
    shuffled_errors,
    strong_match_clusters,
    strong_match_graph,
    threshold_scan,
)

# rows = true token, columns = predicted token
CONFUSION = np.array([
    [5, 2, 0, 1, 0],  # diagonal largest: kept; 8 predictions
    [3, 6, 0, 0, 3],  # kept; 12 predictions
    [0, 4, 2, 0, 0],  # 4 > 2: dropped
    [0, 0, 0, 0, 0],  # never right: dropped
    [0, 4, 1, 0, 4],  # tie 4 = 4: dropped, unless ties pass
])
# ties pass: kept 0, 1, 4; rows / diagonal, columns 0, 1, 4 only
NORMALISED_TIES = np.array([
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


def planted_hub() -> np.ndarray:
    """13 tokens. 0 is a hub (`the`): right 1,000 times, and nine rows fall into it (M(i, 0) =
    0.5-0.6), while it is mistaken for token 1 only 10 times (M(0, 1) = 0.01). Planted clusters:
    {1, 2} (12 of 20 each way, M = 0.6) and the chain {3, 4, 5} (6 of 10 each way, M = 0.6).
    Tokens 6-11 are right 10 times and fall into the hub 6 times; token 12 ties 5 : 5 with it."""
    c = np.zeros((13, 13), int)
    c[0, 0], c[0, 1] = 1000, 10
    c[1, 1], c[1, 2], c[1, 0] = 20, 12, 10
    c[2, 2], c[2, 1], c[2, 0] = 20, 12, 8
    c[3, 3], c[3, 4], c[3, 0] = 10, 6, 6
    c[4, 4], c[4, 3], c[4, 5] = 10, 6, 6
    c[5, 5], c[5, 4], c[5, 0] = 10, 6, 6
    for token in range(6, 12):
        c[token, token], c[token, 0] = 10, 6
    c[12, 12], c[12, 0] = 5, 5
    return c


def clusters_of(confusion, rule: ClusterRule) -> set[frozenset[int]]:
    """The clusters of size >= 2, as sets of token ids."""
    kept, normalised = filter_and_normalise(confusion, rule.min_row_count, rule.ties_pass)
    labels = strong_match_clusters(normalised, rule.threshold, rule.match)
    return {frozenset(kept[list(group)].tolist()) for group in partition(labels) if len(group) >= 2}


def test_a_hub_makes_one_giant_component_under_the_old_rule_and_none_under_the_new():
    confusion = planted_hub()
    # old: 12 ties in; 1, 3, 5, 6-11 and 12 reach the hub one way (>= 0.5): all 13 tokens in one
    assert clusters_of(confusion, first_book_rule(0.5)) == {frozenset(range(13))}
    # the strict filter alone drops 12 but keeps the star: 12 tokens through the hub
    assert clusters_of(confusion, ClusterRule(0.5, "one-way", 5)) == {frozenset(range(12))}
    # mutual: the hub is never mistaken back (M(0, j) <= 0.01): exactly the planted clusters
    assert clusters_of(confusion, ClusterRule(0.5, "mutual", 5)) == {frozenset({1, 2}),
                                                                      frozenset({3, 4, 5})}


def test_the_threshold_scan_compares_the_rules_on_the_raw_counts():
    old = threshold_scan(planted_hub(), [0.5, 0.7], first_book_rule(0.5))
    new = threshold_scan(planted_hub(), [0.5, 0.7], ClusterRule(0.5, "mutual", 5))
    assert old["kept_tokens"].tolist() == [13, 13] and new["kept_tokens"].tolist() == [12, 12]
    # at 0.7 only 12 -> 0 (1.0) survives the old rule: {0, 12}
    assert old["largest"].tolist() == [13, 2] and old["clusters"].tolist() == [1, 1]
    assert new["clusters"].tolist() == [2, 0] and new["largest"].tolist() == [3, 1]
    np.testing.assert_allclose(new["mean_size"], [2.5, np.nan])


@pytest.mark.parametrize("as_sparse", [True, False])
def test_the_strict_filter_drops_ties(as_sparse):
    confusion = sp.csr_matrix(CONFUSION) if as_sparse else CONFUSION
    kept, normalised = filter_and_normalise(confusion)
    assert kept.tolist() == [0, 1] and sp.issparse(normalised)
    np.testing.assert_allclose(normalised.toarray(), [[1.0, 0.4], [0.5, 1.0]])
    kept, normalised = filter_and_normalise(confusion, ties_pass=True)
    assert kept.tolist() == [0, 1, 4]
    np.testing.assert_allclose(normalised.toarray(), NORMALISED_TIES)


def test_the_filter_asks_for_a_minimum_row_count():
    assert filter_and_normalise(CONFUSION, min_row_count=8)[0].tolist() == [0, 1]
    assert filter_and_normalise(CONFUSION, min_row_count=9)[0].tolist() == [1]  # row 0 has 8


@pytest.mark.parametrize("threshold, match, expected", [
    (0.3, "one-way", [{0, 1, 2}, {3, 4, 5}]),
    (0.3, "mutual", [{0, 1}, {3, 4}, {2}, {5}]),
    (0.6, "one-way", [{0, 1}, {4, 5}, {2}, {3}]),
    (0.6, "mutual", [{0, 1}, {2}, {3}, {4}, {5}]),
    (0.65, "mutual", [{0, 1}, {2}, {3}, {4}, {5}]),  # M(1, 0) = 0.65 reaches the threshold
    (0.66, "mutual", [{0}, {1}, {2}, {3}, {4}, {5}]),
])
def test_clusters_of_six_tokens(threshold, match, expected):
    labels = strong_match_clusters(six_tokens(), threshold, match)
    assert partition(labels) == {frozenset(group) for group in expected}


def test_graph_is_symmetric_without_self_loops():
    graph = strong_match_graph(six_tokens(), 0.6, "one-way")
    assert graph.dtype == bool
    assert sorted(zip(*graph.nonzero())) == [(0, 1), (1, 0), (4, 5), (5, 4)]
    with pytest.raises(ValueError, match="threshold"):
        strong_match_graph(six_tokens(), 0.0)
    with pytest.raises(ValueError, match="match must be one of"):
        strong_match_graph(six_tokens(), 0.5, "both")


def test_the_rule_checks_and_describes_itself():
    assert ClusterRule(0.5, "mutual", 5).describe() == (
        "threshold 0.5, mutual, rows of >= 5 predictions, strict filter")
    assert first_book_rule(0.3).describe() == (
        "threshold 0.3, one-way, rows of >= 1 prediction, ties pass the filter")
    with pytest.raises(ValueError, match="match"):
        ClusterRule(0.5, "sideways")
    with pytest.raises(ValueError, match="threshold"):
        ClusterRule(1.5)


def test_cluster_sizes_largest_first():
    assert cluster_sizes(np.array([2, 0, 2, 1, 2, 0])).tolist() == [3, 2, 1]


def test_threshold_scan_of_six_tokens():
    scan = threshold_scan(six_tokens(), [0.3, 0.6, 0.9], ClusterRule(0.5, "one-way"))
    assert scan["kept_tokens"].tolist() == [6, 6, 6]
    assert scan["clusters"].tolist() == [2, 2, 0]
    assert scan["clustered_tokens"].tolist() == [6, 4, 0]
    assert scan["largest"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(scan["largest_share"], [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(scan["mean_size"], [3.0, 2.0, np.nan])
    mutual = threshold_scan(six_tokens(), [0.3], ClusterRule(0.5))
    assert mutual.loc[0, ["clusters", "clustered_tokens", "largest"]].tolist() == [2, 4, 2]


def test_share_of_errors_in_cluster_by_hand():
    kept, normalised = filter_and_normalise(CONFUSION)
    labels = strong_match_clusters(normalised, 0.4)  # 0 <-> 1 (0.4 and 0.5): one cluster
    assert partition(labels) == {frozenset({0, 1})}
    # errors of 0: 2 (->1, in) + 1 (->3); of 1: 3 (->0, in) + 3 (->4, dropped): 5 of 9
    assert share_of_errors_in_cluster(CONFUSION, kept, labels) == pytest.approx(5 / 9)
    # all wrong predictions of the matrix: 3 + 6 + 4 + 0 + 5 = 18, of which 5 in-cluster
    assert share_of_errors_in_cluster(CONFUSION, kept, labels,
                                      clustered_only=False) == pytest.approx(5 / 18)
    singletons = np.array([0, 1])
    assert np.isnan(share_of_errors_in_cluster(CONFUSION, kept, singletons))
    assert share_of_errors_in_cluster(CONFUSION, kept, singletons, clustered_only=False) == 0


def test_the_shuffle_keeps_rows_diagonals_and_how_often_each_token_is_predicted_wrongly():
    rng = np.random.default_rng(0)
    confusion = rng.poisson(0.6, (40, 40)) + np.diag(rng.integers(1, 9, 40))
    shuffled = shuffled_errors(confusion, np.random.default_rng(1)).toarray()
    np.testing.assert_array_equal(shuffled.sum(1), confusion.sum(1))
    np.testing.assert_array_equal(np.diag(shuffled), np.diag(confusion))
    off = confusion - np.diag(np.diag(confusion))
    np.testing.assert_array_equal((shuffled - np.diag(np.diag(shuffled))).sum(0), off.sum(0))
    assert not np.array_equal(shuffled, confusion)
    np.testing.assert_array_equal(shuffled, shuffled_errors(confusion, np.random.default_rng(1)).toarray())


def test_the_shuffle_of_two_tokens_can_only_give_the_matrix_back():
    # 0's 3 errors can only go to 1 and 1's 2 errors only to 0; a hub (every error of 1 and 2
    # predicted as 0) stays a hub: row 0's 2 errors must take the two predictions of 1
    for confusion in ([[5, 3], [2, 4]], [[5, 2, 0], [3, 5, 0], [1, 0, 5]]):
        for seed in range(5):
            shuffled = shuffled_errors(np.array(confusion), np.random.default_rng(seed))
            np.testing.assert_array_equal(shuffled.toarray(), confusion)
    with pytest.raises(ValueError, match="integer"):
        shuffled_errors(np.array([[1.0, 0.5], [0.0, 1.0]]), np.random.default_rng(0))


def test_large_sparse_token_matrix_stays_sparse():
    size = 50_000
    confusion = sp.lil_matrix((size, size))
    confusion.setdiag(10)
    confusion[7, 8] = 20  # token 7 mostly predicted as 8: dropped
    confusion[100, 101] = confusion[101, 100] = 6  # 0.6 both ways: one cluster
    confusion[100, 5] = 2
    confusion = confusion.tocsr()
    kept, normalised = filter_and_normalise(confusion, min_row_count=5)
    assert len(kept) == size - 1 and 7 not in kept
    assert sp.issparse(normalised) and normalised.nnz == size - 1 + 3
    labels = strong_match_clusters(normalised, 0.5)
    scan = threshold_scan(confusion, [0.5], ClusterRule(0.5))
    assert scan.loc[0, ["clusters", "clustered_tokens", "largest"]].tolist() == [1, 2, 2]
    assert share_of_errors_in_cluster(confusion, kept, labels) == pytest.approx(12 / 14)
    shuffled = shuffled_errors(confusion, np.random.default_rng(0))
    assert sp.issparse(shuffled) and shuffled.sum() == confusion.sum()


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
    scan = threshold_scan(sp.csr_matrix((0, 0)), [0.5], ClusterRule(0.5))
    assert scan.loc[0, "clusters"] == 0 and scan.loc[0, "largest"] == 0
    assert np.isnan(scan.loc[0, "largest_share"])


def test_no_clusters_give_nan_statistics_not_errors():
    empty = np.array([], dtype=int)
    assert np.isnan(share_of_errors_in_cluster(sp.csr_matrix(np.eye(3)), empty, empty))
    within, across = cosine_within_across(np.eye(3), np.array([0, 1, 2]))
    assert np.isnan(within) and across == 0.0


def test_threshold_scan_figure_draws_every_rule_in_three_panels():
    from aptutils.plotting.figures import threshold_scan_figure

    scans = {name: threshold_scan(planted_hub(), [0.3, 0.5], rule)
             for name, rule in (("old", first_book_rule(0.5)), ("new", ClusterRule(0.5, "mutual", 5)))}
    figure = threshold_scan_figure(scans)
    assert [axis.get_ylabel() for axis in figure.axes] == [
        "clusters (size >= 2)", "largest cluster (tokens)", "tokens past the filter"]
    assert [line.get_ydata().tolist() for line in figure.axes[2].lines] == [[13, 13], [12, 12]]
