"""Chapters 2-4: cluster statistics per block, their nulls, and the verdicts, on hand-made counts.
Each cluster verdict passes on planted structure and fails once the structure is shuffled away."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aptutils.analysis import structure
from aptutils.analysis.clusters import ClusterRule, first_book_rule, shuffled_errors
from aptutils.core.counts import TokenCounts
from aptutils.readout.counting import BlockCounts
from aptutils.reports import ch3_symmetry_breaking, ch4_clustering

RULE = ClusterRule(0.3, "mutual", 5)

# Tokens 0..4. Rows: true token; columns: predicted. Tokens 1 and 2 are confused with each other.
CONFUSION = np.array([
    [0, 0, 0, 0, 0],
    [0, 6, 3, 1, 0],
    [0, 4, 8, 0, 0],
    [0, 0, 0, 5, 1],
    [0, 0, 0, 3, 2],
])


def block(confusion):
    total = np.zeros((3, len(confusion)), int)
    total[0] = np.asarray(confusion).sum(1)
    correct = np.zeros((3, len(confusion)), int)
    correct[0] = np.diag(confusion)
    return BlockCounts(TokenCounts(correct, total), sp.csr_matrix(confusion))


def planted_triads(groups: int = 10) -> np.ndarray:
    """3 x groups tokens in triads: each right 10 times and 4 times mistaken for each of its two
    partners (M = 0.4 both ways)."""
    size = 3 * groups
    confusion = np.diag(np.full(size, 10))
    for token in range(size):
        for partner in range(token - token % 3, token - token % 3 + 3):
            if partner != token:
                confusion[token, partner] = 4
    return confusion


def unstructured(size: int = 30) -> np.ndarray:
    """Each token right 10 times and mistaken once for each of the next 8 (M = 0.1): no match."""
    confusion = np.diag(np.full(size, 10))
    for token in range(size):
        confusion[token, (token + np.arange(1, 9)) % size] = 1
    return confusion


def collapsed(size: int = 30) -> np.ndarray:
    """Every token falls into token 0 (`the`) 6 times in 16; token 0 is right 1,000 times."""
    confusion = np.diag(np.full(size, 10))
    confusion[:, 0] = 6
    confusion[0, 0] = 1000
    return confusion


def shuffled(confusion) -> np.ndarray:
    return shuffled_errors(confusion, np.random.default_rng(7)).toarray().astype(int)


def table(*confusions, rule=RULE) -> pd.DataFrame:
    return structure.structure_table(list(confusions), rule, 20, 0,
                                     pd.RangeIndex(len(confusions), name="block"))


def test_token_dropped_when_its_diagonal_is_not_the_row_maximum():
    part = structure.partition(sp.csr_matrix(CONFUSION), ClusterRule(0.5, "mutual", 1))
    assert part.kept.tolist() == [1, 2, 3]  # row 0 is empty; token 4's diagonal 2 < 3
    # M(1, 2) = 3/6 and M(2, 1) = 4/8: both 0.5, one cluster
    assert part.labels[0] == part.labels[1] != part.labels[2]
    assert part.clustered_tokens().tolist() == [1, 2]
    assert part.sizes.tolist() == [2, 1]
    assert part.full_labels[1] == part.full_labels[2] != part.full_labels[3]
    assert len(set(part.full_labels[[0, 3, 4]])) == 3
    assert structure.partition(CONFUSION, ClusterRule(0.5, "mutual", 11)).kept.tolist() == [2]


def test_cluster_statistics_and_the_tables_by_hand():
    part = structure.partition(CONFUSION, ClusterRule(0.5, "mutual", 1))
    stats = structure.cluster_statistics(CONFUSION, part)
    # all wrong predictions: 3 + 1 + 4 + 1 + 3 = 12, of which 3 + 4 inside {1, 2}
    assert stats == {"kept": 3, "clusters": 1, "clustered": 2, "largest": 2,
                     "in-cluster share": pytest.approx(7 / 12)}
    shares = structure.error_share_by_block([block(CONFUSION)], [part], 5, 0)
    # errors of the clustered tokens 1 and 2: 3 + 1 + 4 = 8, of which 7 inside
    assert shares.loc[0, "in own cluster"] == pytest.approx(7 / 8) and shares.loc[0, "clustered"] == 2
    by_block = structure.structure_by_block([block(CONFUSION)] * 2, ClusterRule(0.5, "mutual", 1), 5, 0)
    assert by_block.index.name == "block" and by_block.loc[1, "clustered"] == 2
    excess = by_block["in-cluster share"] - by_block["null in-cluster share (mean)"]
    np.testing.assert_allclose(by_block["excess in-cluster share"], excess)


def test_the_shuffle_null_clusters_nothing_in_planted_triads():
    result = table(planted_triads()).iloc[0]
    assert (result["clusters"], result["clustered"], result["largest"]) == (10, 30, 3)
    assert result["in-cluster share"] == 1.0  # every error names a partner
    assert result["null clustered (95%)"] == 0 and result["null in-cluster share (mean)"] < 0.1


def test_c5_holds_on_planted_clusters():
    verdict = ch3_symmetry_breaking.c5_verdict(table(planted_triads()), RULE)
    assert verdict.verdict == "holds"
    assert verdict.reason == ("10 clusters of 2-3 tokens; 30 clustered tokens against 0.0 under "
                              "the shuffled null (95th percentile 0.0)")


def test_c5_fails_once_the_clusters_are_shuffled_away():
    verdict = ch3_symmetry_breaking.c5_verdict(table(shuffled(planted_triads())), RULE)
    assert verdict.verdict == "does not hold" and "match strongly" in verdict.reason
    verdict = ch3_symmetry_breaking.c5_verdict(table(unstructured()), RULE)
    assert verdict.reason == "no two of the 30 kept tokens match strongly: no clusters"


def test_c5_refuses_a_hub():
    old = first_book_rule(0.5)  # 29 rows reach token 0 one way (M = 0.6): a star of all 30
    verdict = ch3_symmetry_breaking.c5_verdict(table(collapsed(), rule=old), old)
    assert verdict.verdict == "does not hold"
    assert "the largest cluster holds 30 of 30 kept tokens (100%): a hub" in verdict.reason


def test_c5_refuses_clusters_that_chance_makes_as_well():
    # two tokens: the shuffle can only give the matrix back, so the null clusters both as well
    verdict = ch3_symmetry_breaking.c5_verdict(table(np.array([[5, 3], [3, 5]])), RULE)
    assert verdict.verdict == "does not hold"
    assert verdict.reason.startswith("2 clustered tokens, no more than chance")


def test_c6_holds_when_planted_clusters_appear_along_the_blocks():
    verdict = ch3_symmetry_breaking.c6_verdict(table(unstructured(), planted_triads()),
                                               table(unstructured(), unstructured()))
    assert verdict.verdict == "holds" and "the excess rises from 0.00% at block 0 to 100.00%" in verdict.reason


def test_c6_fails_once_the_last_block_is_shuffled():
    verdict = ch3_symmetry_breaking.c6_verdict(table(unstructured(), shuffled(planted_triads())),
                                               table(unstructured(), unstructured()))
    assert verdict.verdict == "does not hold"
    assert verdict.reason.startswith("no block has a strong-match cluster")


def test_c6_does_not_reward_a_collapse_onto_one_token():
    verdict = ch3_symmetry_breaking.c6_verdict(table(planted_triads(), collapsed()),
                                               table(unstructured(), unstructured()))
    assert verdict.verdict == "does not hold" and "the excess falls from block 0" in verdict.reason


def test_c6_asks_for_more_than_the_untrained_model():
    verdict = ch3_symmetry_breaking.c6_verdict(table(unstructured(), planted_triads()),
                                               table(unstructured(), planted_triads()))
    assert verdict.verdict == "does not hold" and "the untrained model's last block" in verdict.reason


def test_c6_is_not_measured_without_errors():
    identity = np.diag(np.full(4, 10))
    verdict = ch3_symmetry_breaking.c6_verdict(table(identity, identity), table(identity, identity))
    assert verdict.verdict == "not measured"


def test_c7_follows_c5_and_c6_with_their_reasons():
    holds = ch3_symmetry_breaking.c5_verdict(table(planted_triads()), RULE)
    fails = ch3_symmetry_breaking.c5_verdict(table(unstructured()), RULE)
    rises = ch3_symmetry_breaking.c6_verdict(table(unstructured(), planted_triads()),
                                             table(unstructured(), unstructured()))
    assert ch3_symmetry_breaking.c7_verdict(holds, rises).verdict == "holds"
    c7 = ch3_symmetry_breaking.c7_verdict(fails, rises)
    assert c7.verdict == "does not hold" and c7.reason == f"C5 does not hold: {fails.reason}"
    empty = ch3_symmetry_breaking.c5_verdict(table(np.zeros((4, 4), int)), RULE)
    assert empty.verdict == "not measured" and "no token passes the noise filter" in empty.reason
    assert ch3_symmetry_breaking.c7_verdict(empty, rises).verdict == "not measured"


def c10(confusion, clusters_from) -> str:
    part = structure.partition(clusters_from, RULE)
    shares = structure.error_share_table([confusion], [part], 20, 0, pd.RangeIndex(1, name="block"))
    return ch4_clustering.c10_verdict(shares)


def test_c10_holds_when_errors_stay_in_the_planted_clusters():
    verdict = c10(planted_triads(), planted_triads())
    assert verdict.verdict == "holds" and verdict.reason.startswith(
        "100.0% of the clustered tokens' errors (a majority) stay in their cluster against")
    assert "above the null's 95th percentile" in verdict.reason


def test_c10_fails_when_errors_ignore_the_clusters():
    # every token mistaken once for every other: 2 of its 29 errors in its triad, whatever the labels
    uniform = np.ones((30, 30), int) + np.diag(np.full(30, 9))
    verdict = c10(uniform, planted_triads())
    assert verdict.verdict == "does not hold"
    assert verdict.reason.endswith("against 6.9% with permuted labels: not above the null's 95th "
                                   "percentile 6.9%")
    verdict = c10(planted_triads(), unstructured())
    assert verdict.verdict == "not measured" and "no strong-match cluster" in verdict.reason


def test_trend_and_counted_say_what_the_numbers_do():
    assert structure.trend(pd.Series([0.1, 0.5, 0.3])) == "rises"
    assert structure.trend(pd.Series([0.3, np.nan, 0.1])) == "falls"
    assert structure.trend(pd.Series([0.2, 0.2])) == "stays level"
    assert structure.trend(pd.Series([np.nan, 0.2])) == "is not measured"
    shares = pd.Series([np.nan, 0.9, 0.5, np.nan], index=pd.RangeIndex(4, name="block"))
    assert structure.trend_phrase(shares, "block") == "falls from block 1 to block 2"
    assert structure.trend_phrase(shares.iloc[:2], "layer") == "is not measured at two layers"
    assert structure.counted(1, "cluster") == "1 cluster" and structure.counted(1200, "token") == "1,200 tokens"


def test_ordered_matrix_divides_each_row_by_its_largest_entry():
    matrix = structure.ordered_matrix(sp.csr_matrix(CONFUSION), np.array([2, 1]), ["b", "a"])
    assert matrix.loc["b"].tolist() == [1.0, 0.5]
    assert matrix.loc["a"].tolist() == [0.5, 1.0]
