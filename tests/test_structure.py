"""Chapter 2-4 statistics and verdicts on hand-made counts."""
import numpy as np
import pandas as pd
import scipy.sparse as sp

from aptutils.analysis import structure
from aptutils.core.counts import TokenCounts
from aptutils.core.verdicts import Verdict
from aptutils.readout.counting import BlockCounts
from aptutils.reports import ch2_apt, ch3_symmetry_breaking, ch4_clustering

# Tokens 0..4. Rows: true token; columns: predicted. Tokens 1 and 2 are confused with each other.
CONFUSION = np.array([
    [0, 0, 0, 0, 0],
    [0, 6, 3, 1, 0],
    [0, 4, 8, 0, 0],
    [0, 0, 0, 5, 1],
    [0, 0, 0, 3, 2],
])


def block(confusion):
    total = np.zeros((3, 5), int)
    total[0] = confusion.sum(1)
    correct = np.zeros((3, 5), int)
    correct[0] = np.diag(confusion)
    return BlockCounts(TokenCounts(correct, total), sp.csr_matrix(confusion))


def test_token_dropped_when_its_diagonal_is_not_the_row_maximum():
    confusion = CONFUSION.copy()
    part = structure.partition(sp.csr_matrix(confusion), threshold=0.5, mutual=False)
    assert part.kept.tolist() == [1, 2, 3]  # row 0 is empty; token 4's diagonal 2 < 3
    assert part.labels[list(part.kept).index(1)] == part.labels[list(part.kept).index(2)]
    assert part.clustered_tokens().tolist() == [1, 2]
    assert part.sizes.tolist() == [2, 1]
    assert part.full_labels[1] == part.full_labels[2] != part.full_labels[3]
    assert len(set(part.full_labels[[0, 3, 4]])) == 3


def test_structure_table_snr_and_entropy_by_hand():
    part = structure.partition(sp.csr_matrix(CONFUSION), threshold=0.5, mutual=False)
    table = structure.structure_table([block(CONFUSION)], [part], part)
    # clustered tokens 1 and 2: in-cluster 3 + 4 = 7, off-cluster 1 (token 1 -> 3)
    assert table.loc[0, "in-cluster mass"] == 7 and table.loc[0, "off-cluster mass"] == 1
    assert table.loc[0, "SNR"] == 7
    row1 = np.array([6, 3, 1]) / 10
    row2 = np.array([4, 8]) / 12
    entropy = np.mean([-(row1 * np.log2(row1)).sum(), -(row2 * np.log2(row2)).sum()])
    assert np.isclose(table.loc[0, "mean row entropy (bits)"], entropy)


def test_ordered_matrix_divides_each_row_by_its_largest_entry():
    matrix = structure.ordered_matrix(sp.csr_matrix(CONFUSION), np.array([2, 1]), ["b", "a"])
    assert matrix.loc["b"].tolist() == [1.0, 0.5]
    assert matrix.loc["a"].tolist() == [0.5, 1.0]


def test_c10_share_counts_errors_inside_the_cluster():
    part = structure.partition(sp.csr_matrix(CONFUSION), threshold=0.5, mutual=False)
    shares = structure.error_share_by_block([block(CONFUSION)], [part])
    assert shares.iloc[0] == 7 / 8  # errors of tokens 1, 2: 3 + 1 + 4 = 8, of which 7 inside
    assert ch4_clustering.c10_verdict(shares).verdict == "holds"


def test_c5_refuses_a_giant_component():
    part = structure.partition(sp.csr_matrix(CONFUSION), threshold=0.5, mutual=False)
    verdict = ch3_symmetry_breaking.c5_verdict(part, 0.5, "one-way")
    assert verdict.verdict == "does not hold"  # the largest cluster holds 2 of 4 kept tokens


def test_c2_and_c3_and_c4_verdicts_by_hand():
    assert ch2_apt.c2_verdict({100: 0.01, 200: 0.02, 400: 0.05}).verdict == "holds"
    assert ch2_apt.c2_verdict({100: 0.01, 200: 0.03, 400: 0.02}).verdict == "does not hold"
    index = pd.MultiIndex.from_product([["probe"], [0, 1, 2]], names=["protocol", "block"])
    summary = pd.DataFrame({"<APT>": [0.04, 0.10, 0.095], "APT(50) top-50": [0.2, 0.3, 0.4],
                            "APT(50) >=50 seen": [0.1, 0.2, 0.3]}, index=index)
    assert ch2_apt.c3_verdict(summary, "probe").verdict == "holds"  # dip 0.005 <= 0.01
    summary.loc[("probe", 2), "<APT>"] = 0.08
    assert ch2_apt.c3_verdict(summary, "probe").verdict == "does not hold"
    decomposition = pd.DataFrame({"protocol": ["probe", "probe"], "group": [0, 1],
                                  "contribution": [0.06, 0.04], "share": [0.6, 0.4]}).set_index(["protocol", "group"])
    assert ch2_apt.c4_verdict(decomposition, "probe").verdict == "holds"


def test_claims_on_empty_structure_are_not_measured():
    empty = structure.partition(sp.csr_matrix((5, 5)), threshold=0.5, mutual=False)
    c5 = ch3_symmetry_breaking.c5_verdict(empty, 0.5, "one-way")
    assert c5.verdict == "not measured"
    c6 = Verdict("C6", "SNR nan → nan", "SNR and entropy", "not measured")
    assert ch3_symmetry_breaking.c7_verdict(c5, c6, float("nan"), 1.0).verdict == "not measured"
