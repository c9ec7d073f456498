"""The scan verdicts C5, C6, C10 (decided over every threshold 0.2-0.8 against the shuffle null),
the strong-match sets, and the power of the rules measured on pairs planted at a run's counts."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aptutils.analysis.power import (
    Planting,
    plant_clusters,
    power_curve,
    power_phrase,
    strongest_detected,
    weakest_detected,
)
from aptutils.analysis.scan import ScanRule, scan, scan_counts, scan_table, set_size_table
from aptutils.core.verdicts import Verdict
from aptutils.reports import ch3_symmetry_breaking as ch3
from aptutils.reports import ch4_clustering as ch4
from aptutils.reports.cluster_power import c10_holds, structural_power
from test_structure import collapsed, planted_triads, shuffled, unstructured

RULE = ScanRule("mutual", 5)
SINGLE = Verdict("C5", "", "", "does not hold")  # the single-threshold reading shown beside
FLAT = pd.Series({0.0: 0.0, 0.1: 0.5, 0.2: 1.0})
POWER = pd.DataFrame({"C5": FLAT, "C6": FLAT, "C10": FLAT})
PLANTING = Planting(2, 5, 4, strengths=(0.0, 0.1, 0.2))


def run_like(tokens: int = 1500, seed: int = 0) -> sp.csr_matrix:
    """A confusion without structure, shaped like a run's: Zipf-like row counts (5 to 1,000),
    each row right 40% of the time, its errors falling on a Zipf-like sink distribution."""
    rng = np.random.default_rng(seed)
    totals = np.maximum(5, (1000 / np.arange(1, tokens + 1) ** 0.8).astype(int))
    sink = 1 / np.arange(1, tokens + 1)
    rows, cols = [], []
    for token, total in enumerate(totals):
        right = rng.binomial(total, 0.4)
        rows += [token] * total
        cols += [token] * right + rng.choice(tokens, total - right, p=sink / sink.sum()).tolist()
    return sp.csr_matrix((np.ones(len(rows), int), (rows, cols)), shape=(tokens, tokens))


def test_planting_moves_wrong_predictions_to_partners_and_keeps_rows_and_diagonals():
    counts = np.array([[5, 0, 3, 2],
                       [0, 4, 1, 1],
                       [0, 0, 7, 0],
                       [1, 1, 0, 6]])
    rng = np.random.default_rng(0)
    full = plant_clusters(counts, np.array([[0, 1]]), 1.0, rng).toarray()
    # strength 1 moves every wrong prediction of tokens 0 and 1 (5 and 2) to the partner
    assert full.tolist() == [[5, 5, 0, 0], [2, 4, 0, 0], [0, 0, 7, 0], [1, 1, 0, 6]]
    assert (plant_clusters(counts, np.array([[0, 1]]), 0.0, rng).toarray() == counts).all()
    half = plant_clusters(counts, np.array([[0, 3]]), 0.5, rng).toarray()
    assert (half.sum(1) == counts.sum(1)).all() and (np.diag(half) == np.diag(counts)).all()
    assert half[0, 3] >= counts[0, 3] and half[3, 0] >= counts[3, 0]


def test_weakest_detected_is_the_strength_from_which_every_stronger_plant_is_found():
    assert weakest_detected(FLAT) == 0.2 and strongest_detected(FLAT) == 0.2
    dip = pd.Series({0.0: 0.05, 0.1: 0.9, 0.2: 0.85, 0.3: 0.5, 0.4: 0.9})
    assert weakest_detected(dip) == 0.1 and strongest_detected(dip) == 0.2
    assert np.isnan(weakest_detected(pd.Series({0.0: 0.0, 0.1: 0.5})))
    assert "at strengths 0.2-0.2 (null rate 0%)" in power_phrase(FLAT, PLANTING)
    assert "at strengths 0.1-0.2 (null rate 5%); at 0.3 50%" in power_phrase(dip, PLANTING)
    assert "could not have seen" in power_phrase(pd.Series({0.0: 0.0, 0.1: 0.5}), PLANTING)


def test_strong_match_sets_count_one_way_partners_per_kept_token():
    # normalised rows: token 0 -> {1: 0.5, 2: 0.25}, token 1 -> {0: 0.6}, token 2 -> {}
    counts = np.array([[4, 2, 1], [3, 5, 0], [0, 0, 5]])
    table = scan_counts(counts, ScanRule("mutual", 1, (0.2, 0.4, 0.55)))
    sets = table.xs("mutual", level="match")[["strong-match set 1", "strong-match set 2"]]
    assert sets.loc[0.2].tolist() == [1, 1] and sets.loc[0.4].tolist() == [2, 0]
    assert sets.loc[0.55].tolist() == [1, 0]
    assert table.loc[("mutual", 0.4), "clustered"] == 2 and table.loc[("mutual", 0.55), "clusters"] == 0


def test_c5_and_c6_hold_on_planted_clusters_and_fail_once_they_are_shuffled_away():
    planted, first = scan(planted_triads(), RULE, 20, 0), scan(unstructured(), RULE, 20, 1)
    untrained = scan(unstructured(), RULE, 20, 2)
    assert ch3.c5_failures(planted) == [] and ch3.c6_failures(planted, first, untrained) == []
    verdict = ch3.c5_scan_verdict(planted, 6, POWER, PLANTING, SINGLE, "masked")
    assert verdict.verdict == "holds" and "at threshold alone: does not hold" in verdict.this_run
    assert "power:" in verdict.reason
    assert ch3.c6_scan_verdict(planted, first, untrained, POWER, PLANTING, SINGLE, "masked").verdict == "holds"
    gone = scan(shuffled(planted_triads()), RULE, 20, 3)
    assert ch3.c5_scan_verdict(gone, 6, POWER, PLANTING, SINGLE, "masked").verdict == "does not hold"
    assert ch3.c6_scan_verdict(gone, first, untrained, POWER, PLANTING, SINGLE, "masked").verdict == "does not hold"
    # the trained model's structure already in the untrained one: no sharpening beyond it
    assert any("untrained" in f for f in ch3.c6_failures(planted, first, planted))


def test_c5_refuses_a_hub_at_any_scanned_threshold():
    hub = scan(collapsed(), ScanRule("one-way", 1), 20, 0)
    assert any("a hub" in f for f in ch3.c5_failures(hub))


def test_c10_is_measured_wherever_a_cluster_exists_and_not_measured_without_one():
    planted = scan(planted_triads(), RULE, 20, 0)
    assert c10_holds(planted) is True
    verdict = ch4.c10_scan_verdict(planted, 6, POWER, PLANTING, SINGLE, "masked")
    assert verdict.verdict == "holds" and "a majority" in verdict.reason
    assert c10_holds(scan(np.diag(np.full(10, 5)), RULE, 5, 0)) is None


def test_scan_tables_show_every_threshold_of_both_match_modes():
    result = scan(planted_triads(), RULE, 5, 0)
    table = scan_table(result)
    assert list(table.index.get_level_values("match").unique()) == ["mutual", "one-way"]
    assert table.loc[("mutual", 0.4), "clustered"] == 30 and table.loc[("mutual", 0.5), "clustered"] == 0
    assert set_size_table(result).loc[0.4, ("observed", "strong-match set 2")] == 30


def test_power_rises_with_strength_and_its_null_rate_stays_near_five_percent():
    counts = run_like()
    last = scan(counts, RULE, 20, 0)
    rates, planting = structural_power(counts, last, last, last, RULE, 25, seed=1,
                                       strengths=(0.0, 0.02, 0.1, 0.3))
    assert planting.clusters == round(0.01 * last.observed["kept"].iloc[0] / 2) and planting.size == 2
    assert list(rates.columns) == ["C5", "C6", "C10"]
    assert (rates.loc[0.0] <= 0.16).all()  # 95th-percentile rules: about 5% of 25 plants
    assert (rates.diff().iloc[1:] >= -0.08).all().all()  # rises, up to the noise of 25 plants
    assert (rates.loc[0.3] >= 0.6).all() and (rates.loc[0.3] >= rates.loc[0.0] + 0.5).all()
    assert structural_power(np.diag([3, 0, 0]), last, last, last, RULE, 5, 0) == (None, None)


def test_power_needs_enough_candidates():
    with pytest.raises(ValueError, match="candidates"):
        power_curve(np.eye(3, dtype=int), lambda m: {"x": True}, np.arange(3), Planting(2, 2, 1), 0)


def test_figure_tokens_are_the_most_confused_frequent_ones_with_partners_side_by_side():
    from aptutils.analysis.structure import confused_tokens, loosest_partition

    # tokens 0-5: pairs {0, 3} and {1, 4} confused both ways; 2 and 5 confused with nobody
    counts = np.diag([50, 40, 30, 20, 10, 9])
    counts[0, 3], counts[3, 0], counts[1, 4], counts[4, 1] = 15, 6, 12, 3
    counts[2, 5], counts[5, 2] = 1, 1
    frequency = np.array([60, 50, 40, 30, 20, 10])
    chosen = confused_tokens(counts, frequency, 4, 1).tolist()
    assert sorted(chosen) == [0, 1, 3, 4]
    assert abs(chosen.index(0) - chosen.index(3)) == 1 and abs(chosen.index(1) - chosen.index(4)) == 1
    # M(0, 3) = 0.3, M(3, 0) = 0.3; M(1, 4) = 0.3, M(4, 1) = 0.3: clusters from 0.3 on, none at 0.4
    threshold, found = loosest_partition(counts, ScanRule("mutual", 1, (0.5, 0.4, 0.3, 0.2)))
    assert threshold == 0.2 and found.clustered_tokens().tolist() == [0, 1, 3, 4]
    threshold, found = loosest_partition(np.diag([5, 5]), ScanRule("mutual", 1, (0.3, 0.2)))
    assert threshold == 0.2 and not (found.sizes >= 2).any()


def test_per_threshold_readings_say_where_each_claim_holds():
    planted, first = scan(planted_triads(), RULE, 20, 0), scan(unstructured(), RULE, 20, 1)
    table = ch3.per_threshold_table(planted, first, scan(unstructured(), RULE, 20, 2))
    mutual = table.xs("mutual", level="match")
    # M = 0.4 both ways inside each triad: clusters up to threshold 0.4, none above
    assert mutual.loc[[0.2, 0.3, 0.4], "C5"].eq("holds").all()
    assert mutual.loc[[0.5, 0.8], "C5"].eq("does not hold").all()
    assert mutual.loc[0.4, "C10"] == "holds" and mutual.loc[0.6, "C10"] == "does not hold"
    sentence = ch3.holds_at_sentence(table)
    assert "**C5** at mutual 0.2, 0.3, 0.4;" in sentence


def test_cluster_lists_name_the_tokens_and_how_strict_a_threshold_keeps_them():
    class Names:
        def convert_ids_to_tokens(self, ids):
            return [f"t{i}" for i in ids]

    # the first triad held at 0.4 (M = 0.4); weaken the second to M = 0.2 both ways
    counts = planted_triads(2)
    counts[3:6, 3:6] = np.where(np.eye(3, dtype=bool), 10, 2)
    table = ch4.cluster_lists(counts, ScanRule("mutual", 1, (0.2, 0.3, 0.4)), Names(), np.arange(6)[::-1])
    assert table["together up to threshold"].tolist() == [0.4, 0.2]
    assert table["tokens"].tolist() == ["t0 · t1 · t2", "t3 · t4 · t5"] and table.index.name == "cluster at 0.2"
    assert ch4.cluster_lists(unstructured(), RULE, Names(), np.ones(30)).empty


def test_own_share_table_reads_each_block_against_its_null():
    scans = [scan(unstructured(), RULE, 10, 0), scan(planted_triads(), RULE, 10, 1)]
    table = ch4.own_share_table(scans)
    assert np.isnan(table.loc[0, "in own cluster"]) and table.loc[0, "clustered (scan sum)"] == 0
    # every error of a triad token names a partner: own-cluster share 1 at every threshold
    assert table.loc[1, "in own cluster"] == 1.0 and table.loc[1, "null (95%)"] < 1.0


def test_titles_name_an_interior_peak_that_a_first_to_last_trend_would_hide():
    from aptutils.analysis.structure import peak_phrase

    spike = pd.Series([0.0, 0.0, 0.014, 0.001, 0.0007], index=pd.RangeIndex(5, name="block"))
    assert peak_phrase(spike, "block") == ", highest at block 2"
    assert peak_phrase(pd.Series([0.0, 0.1, 0.2]), "block") == ""
    title = ch3.sharpening_title(pd.DataFrame({"excess": spike}))
    assert title.endswith("it rises from block 0 to block 4, highest at block 2")
