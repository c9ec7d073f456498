"""Chapter 4's token explorer on a hand-made vocabulary of five tokens: which tokens it lists, and
what it says of each (APT by block and reader, sparkline, strong matches, cluster, top error)."""
import numpy as np
import scipy.sparse as sp

from aptutils.analysis.clusters import ClusterRule
from aptutils.analysis.structure import partition
from aptutils.core.counts import TokenCounts
from aptutils.readout.counting import BlockCounts
from aptutils.reports.explorer import sparkline, token_table

NAMES = ["a", "b", "c", "d", "e"]


def block(correct: list[int], confusion: list[list[int]]) -> BlockCounts:
    """Masked positions only: token t has sum(confusion[t]) positions, correct[t] of them right."""
    totals = np.array(confusion).sum(1)
    zeros = np.zeros(5, dtype=int)
    counts = TokenCounts(np.array([correct, zeros, zeros]), np.array([totals, zeros, zeros]))
    return BlockCounts(counts, sp.csr_matrix(np.array(confusion)), reading=("masked",))


# a and b confuse each other (each row: 6 right, 3 to the other); c is alone; d has no position;
# e is always wrong (all to c)
LAST = [[6, 3, 1, 0, 0], [3, 6, 1, 0, 0], [0, 0, 10, 0, 0], [0, 0, 0, 0, 0], [0, 0, 4, 0, 0]]
FIRST = [[2, 0, 8, 0, 0], [0, 0, 10, 0, 0], [0, 0, 10, 0, 0], [0, 0, 0, 0, 0], [0, 0, 4, 0, 0]]


def test_sparkline_maps_zero_to_one_onto_eight_heights():
    assert sparkline([0.0, 0.5, 1.0, np.nan]) == "▁▅█·"


def test_the_table_lists_each_read_token_with_what_the_book_knows_of_it():
    probe = [block([2, 0, 10, 0, 0], FIRST), block([6, 6, 10, 0, 0], LAST)]
    lens = [block([0, 0, 10, 0, 0], FIRST), block([6, 6, 10, 0, 0], LAST)]
    rule = ClusterRule(0.5, "mutual", min_row_count=1)
    last = partition(probe[-1].confusion, rule)
    frequency = np.array([50, 40, 30, 20, 10])
    table = token_table({"probe": probe, "lens": lens}, "probe", last, 0.5, frequency, ("masked",),
                        lambda ids: [NAMES[i] for i in ids])
    assert table["token"].tolist() == ["a", "b", "c", "e"]  # d has no position; most positions first
    a = table.set_index("token").loc["a"]
    assert (a["W_S frequency"], a["positions"]) == (50, 10)
    assert (a["probe 0"], a["probe 1"], a["lens 0"]) == (0.2, 0.6, 0.0)
    assert a["APT along the blocks (probe)"] == "▂▅"
    assert a["strong matches (last block)"] == "b"  # M(a, b) = 3 / 6 = 0.5
    assert a["cluster (last block)"] == "a b"
    assert a["most frequent wrong prediction"] == "b (3)"
    c = table.set_index("token").loc["c"]
    assert (c["strong matches (last block)"], c["cluster (last block)"]) == ("", "")
    assert c["most frequent wrong prediction"] == ""  # never wrong
    e = table.set_index("token").loc["e"]
    assert e["most frequent wrong prediction"] == "c (4)" and e["probe 1"] == 0.0
