"""APT table, the two APT(50) readings, binned means, Spearman CI, the rise decomposition and
the bootstrap intervals over tokens, on hand-made inputs whose answers are worked out in the
comments; then C1-C4's verdict rules on planted structure (they hold) and on shuffled or absent
structure (they fail)."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import bootstrap, spearmanr

from aptutils.analysis.apt import (
    apt50_min_occurrences,
    apt50_most_frequent,
    apt_table,
    binned_means,
    frequency_groups,
    rise_by_frequency,
    spearman_ci,
)
from aptutils.analysis.rises import (
    low_frequency_share,
    mean_interval,
    paired_difference,
    rank_trend,
    rank_trend_beyond,
    rise_along,
)
from aptutils.core.counts import TokenCounts
from aptutils.readout.counting import BlockCounts
from aptutils.reports import ch2_apt as report

NAN = np.nan


def hand_counts() -> TokenCounts:
    """Six token ids; rows masked, replaced, unchanged.
    token 0 and 3 never occur in W_test;
    token 1: masked 2/4, unchanged 1/1       -> APT 3/5
    token 2: masked 0/2, replaced 1/1, unchanged 1/1 -> APT 2/4
    token 4: masked 1/1                      -> APT 1
    token 5: masked 0/3                      -> APT 0
    """
    correct = np.array([[0, 2, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]])
    total = np.array([[0, 4, 2, 0, 1, 3], [0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]])
    return TokenCounts(correct, total)


FREQUENCY = np.array([0, 100, 50, 70, 50, 10])  # token 3 is frequent in W_S but not in W_test


@pytest.fixture
def table() -> pd.DataFrame:
    return apt_table(hand_counts(), FREQUENCY)


def test_apt_table_rows_and_kinds(table):
    expected = pd.DataFrame({
        "token_id": [1, 2, 4, 5],
        "frequency": [100, 50, 50, 10],
        "occurrences": [5, 4, 1, 3],
        "apt": [0.6, 0.5, 1.0, 0.0],
        "apt_all": [0.6, 0.5, 1.0, 0.0],
        "apt_masked": [0.5, 0.0, 1.0, 0.0],
        "apt_replaced": [NAN, 1.0, NAN, NAN],
        "apt_unchanged": [1.0, 1.0, NAN, NAN],
    })
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_apt_table_on_the_masked_reading_with_a_minimum_of_positions():
    # masked positions: token 1: 4, token 2: 2, token 4: 1, token 5: 3; at least 2 of them
    table = apt_table(hand_counts(), FREQUENCY, "masked", min_occurrences=2)
    assert table["occurrences"].tolist() == [4, 2, 1, 3]
    np.testing.assert_array_equal(table["apt"], [0.5, 0.0, NAN, 0.0])
    np.testing.assert_array_equal(table["apt_all"], [0.6, 0.5, NAN, 0.0])  # token 4: 1 position
    np.testing.assert_array_equal(table["apt_unchanged"], [NAN, NAN, NAN, NAN])
    # APT(50) top-2 skips token 4 (no masked APT): tokens 1 and 2 -> (0.5 + 0) / 2
    assert apt50_most_frequent(table, n=2) == pytest.approx(0.25)


def test_plain_mean_of_the_table_is_mean_apt(table):
    assert table["apt"].mean() == pytest.approx(hand_counts().mean_apt()) == pytest.approx(0.525)


def test_apt_table_rejects_a_frequency_of_the_wrong_length():
    with pytest.raises(ValueError, match="one count per token id"):
        apt_table(hand_counts(), FREQUENCY[:-1])


def test_apt50_most_frequent_breaks_ties_by_token_id(table):
    # token 1 (100), then tokens 2 and 4 tie at 50: token 2 wins -> (0.6 + 0.5) / 2;
    # token 3 (70) has no APT and must not count
    assert apt50_most_frequent(table, n=2) == pytest.approx(0.55)
    assert apt50_most_frequent(table, n=3) == pytest.approx(0.7)
    assert apt50_most_frequent(table, n=10) == pytest.approx(0.525)


def test_apt50_min_occurrences_includes_the_bound(table):
    assert apt50_min_occurrences(table, min_occurrences=2) == pytest.approx(1.1 / 3)  # 1, 2, 5
    assert apt50_min_occurrences(table, min_occurrences=4) == pytest.approx(0.55)  # 1, 2
    assert np.isnan(apt50_min_occurrences(table, min_occurrences=6))


X = np.array([1, 2, 10, 20, 100, 0])
Y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 9.0])  # the point at x = 0 cannot sit on a log axis


def test_binned_means_log_edges_from_a_count():
    # edges 1, 10, 100: bin [1, 10) holds y 0, 1; bin [10, 100] holds y 2, 3, 4
    result = binned_means(X, Y, bins=2)
    np.testing.assert_allclose(result["x_low"], [1, 10])
    np.testing.assert_allclose(result["x_center"], [np.sqrt(10), np.sqrt(1000)])
    assert result["n"].tolist() == [2, 3]
    np.testing.assert_allclose(result["mean"], [0.5, 3.0])


def test_binned_means_bootstrap_interval():
    # bin 1 = {0, 1}: resampled means are 0, 0.5 or 1 (1/4, 1/2, 1/4) -> 95% CI (0, 1);
    # bin 2 = {2, 3, 4}: the CI lies inside [2, 4] around the mean 3
    result = binned_means(X, Y, bins=2)
    assert (result.loc[0, "ci_low"], result.loc[0, "ci_high"]) == (0.0, 1.0)
    assert 2 <= result.loc[1, "ci_low"] < 3 < result.loc[1, "ci_high"] <= 4
    pd.testing.assert_frame_equal(result, binned_means(X, Y, bins=2))


def test_binned_means_drops_empty_bins_and_takes_explicit_edges():
    result = binned_means(X, Y, bins=[1, 5, 8, 100])
    assert result["x_low"].tolist() == [1, 8]
    assert result["n"].tolist() == [2, 3]


def test_binned_means_linear_keeps_zero_and_uses_midpoints():
    # edges 0, 50, 100: [0, 50) holds y 9, 0, 1, 2, 3; [50, 100] holds y 4
    result = binned_means(X, Y, bins=2, log=False)
    np.testing.assert_allclose(result["x_center"], [25, 75])
    assert result["n"].tolist() == [5, 1]
    np.testing.assert_allclose(result["mean"], [3.0, 4.0])
    assert (result.loc[1, "ci_low"], result.loc[1, "ci_high"]) == (4.0, 4.0)


def test_spearman_rho_by_hand():
    # ranks of y: 2 1 4 3 5; d = -1 1 -1 1 0; rho = 1 - 6 * 4 / (5 * 24) = 0.8
    ci = spearman_ci([1, 2, 3, 4, 5, np.nan], [2, 1, 4, 3, 5, 7])
    assert ci.estimate == pytest.approx(0.8) and ci.n == 5
    assert -1 <= ci.low <= ci.high <= 1


def test_spearman_ci_of_monotone_data_is_a_point():
    x = np.arange(1.0, 21.0)
    for y, rho in ((x ** 3, 1.0), (-np.exp(x), -1.0)):
        ci = spearman_ci(x, y)
        assert (ci.estimate, ci.low, ci.high) == pytest.approx((rho, rho, rho))


def test_spearman_ci_matches_scipy_bootstrap():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    ci = spearman_ci(x, y, n_boot=2000, seed=1)
    reference = bootstrap((x, y), lambda a, b: spearmanr(a, b).statistic, paired=True,
                          vectorized=False, method="percentile", n_resamples=2000,
                          rng=np.random.default_rng(2)).confidence_interval
    assert ci.estimate == pytest.approx(spearmanr(x, y).statistic)
    assert ci.low == pytest.approx(reference.low, abs=0.04)
    assert ci.high == pytest.approx(reference.high, abs=0.04)


def test_rise_decomposition_by_hand():
    # frequency 5 100 1 50 -> low group = tokens 2, 0; high group = tokens 3, 1
    # rise per token 0.5 0 0.25 0.25: total 0.25 = 2/4 * 0.375 + 2/4 * 0.125
    first = np.array([0.0, 0.5, 0.0, 0.25, NAN])
    last = np.array([0.5, 0.5, 0.25, 0.5, NAN])
    frequency = np.array([5, 100, 1, 50, 7])
    result = rise_by_frequency(first, last, frequency)
    assert result["tokens"].tolist() == [2, 2]
    assert result["frequency_min"].tolist() == [1, 50]
    assert result["frequency_max"].tolist() == [5, 100]
    assert result["apt_first"].tolist() == [0.0, 0.375]
    assert result["apt_last"].tolist() == [0.375, 0.5]
    assert result["contribution"].tolist() == [0.1875, 0.0625]
    assert result["share"].tolist() == [0.75, 0.25]
    assert result["contribution"].sum() == np.nanmean(last) - np.nanmean(first)


def test_rise_contributions_sum_to_the_total_rise():
    rng = np.random.default_rng(0)
    first = rng.uniform(0, 0.3, 1001)
    last = first + rng.uniform(-0.1, 0.5, 1001)
    frequency = rng.zipf(1.5, 1001)
    result = rise_by_frequency(first, last, frequency, n_groups=3)
    assert result["tokens"].tolist() == [334, 334, 333]
    assert result["contribution"].sum() == pytest.approx(last.mean() - first.mean(), abs=1e-14)
    assert result["share"].sum() == pytest.approx(1.0)
    assert (result["frequency_max"].iloc[:-1].values
            <= result["frequency_min"].iloc[1:].values).all()


def test_frequency_groups_are_equal_count_and_ordered():
    groups = frequency_groups(np.array([3, 3, 1, 9, 3]), 2)
    assert [g.tolist() for g in groups] == [[2, 0, 1], [4, 3]]
    with pytest.raises(ValueError, match="n_groups"):
        frequency_groups(np.array([1, 2]), 3)


def test_bootstrap_mean_of_a_constant_is_a_point_and_of_nothing_is_nan():
    point = mean_interval(np.array([0.2, 0.2, NAN, 0.2]))
    assert point.n == 3 and (point.estimate, point.low, point.high) == pytest.approx((0.2, 0.2, 0.2))
    assert np.isnan(mean_interval(np.array([NAN])).estimate)
    assert not mean_interval(np.array([NAN])).above(-1)  # a NaN interval is never above anything


def test_paired_difference_by_hand():
    # pairs (0, 0.5), (0.5, 0.5), (NaN, 1): the third has no pair -> mean of 0.5 and 0 = 0.25;
    # resampled means of {0.5, 0} are 0, 0.25 or 0.5
    result = paired_difference([0.0, 0.5, NAN], [0.5, 0.5, 1.0])
    assert result.estimate == 0.25 and result.n == 2
    assert 0 <= result.low <= 0.25 <= result.high <= 0.5
    same = paired_difference([0.1, 0.7, 0.3], [0.1, 0.7, 0.3])
    assert (same.estimate, same.low, same.high) == (0, 0, 0) and not same.above(0)


def test_rise_along_points_by_hand():
    # three tokens, three blocks: <APT> 0.1, 0.4, 0.3 with every token moving alike
    rise = rise_along({0: [0.0, 0.1, 0.2], 1: [0.3, 0.4, 0.5], 2: [0.2, 0.3, 0.4]}, axis="block")
    assert [round(v.estimate, 9) for v in rise.levels] == [0.1, 0.4, 0.3]
    assert [round(v.estimate, 9) for v in rise.steps] == [0.3, -0.1]
    assert rise.total.above(0) and rise.steps[1].below(0)  # no token-to-token spread: points
    (a, b, dip), = rise.dips()
    assert (a, b) == (1, 2) and rise.largest_dip()[:2] == (1, 2)
    assert rise.table().index.name == "block" and rise.table()["tokens"].tolist() == [3, 3, 3]


def test_low_frequency_share_by_hand():
    # the decomposition example above: low half = tokens 2, 0 (rises 0.25, 0.5), high half =
    # tokens 3, 1 (0.25, 0): share 0.75; resampled halves give low sums 0.5-1, high sums 0-0.5
    first = np.array([0.0, 0.5, 0.0, 0.25, NAN])
    last = np.array([0.5, 0.5, 0.25, 0.5, NAN])
    share = low_frequency_share(first, last, np.array([5, 100, 1, 50, 7]))
    assert share.estimate == pytest.approx(0.75) and share.n == 4
    assert 0.5 <= share.low <= 0.75 <= share.high <= 1.0


def test_rank_trend_of_a_constant_apt_is_not_a_number():
    trend = rank_trend(np.zeros(10), np.arange(1, 11))
    assert np.isnan(trend.estimate) and trend.n == 10
    assert rank_trend(np.arange(10.0), np.arange(1, 11)).estimate == pytest.approx(1.0)


# --- C1-C4 on planted structure -------------------------------------------------------------
TOKENS = 400
PLANTED_FREQUENCY = np.arange(TOKENS, 0, -1) * 10  # token 0 is the commonest in W_S
POSITIONS = 30  # masked positions of every token in W_test
READING = report.PositionReading(("masked",), min_occurrences=5)
LOW_HALF = PLANTED_FREQUENCY < np.median(PLANTED_FREQUENCY)


def planted(p: np.ndarray, seed: int) -> TokenCounts:
    """Counts of a model right with probability p[t] on each of token t's masked positions."""
    correct, total = np.zeros((3, TOKENS), int), np.zeros((3, TOKENS), int)
    total[0] = POSITIONS
    correct[0] = np.random.default_rng(seed).binomial(POSITIONS, np.clip(p, 0, 1))
    return TokenCounts(correct, total)


def commonest_only() -> TokenCounts:
    """A model on the unigram plateau: every masked position answered with token 0."""
    return planted(np.where(np.arange(TOKENS) == 0, 1.0, 0.0), 0)


PLANTED_RULES = {"most frequent token": commonest_only(), "copy the input": planted(np.zeros(TOKENS), 0),
                 "copy, else most frequent": commonest_only()}
RISING = 0.05 + 0.4 * np.log(PLANTED_FREQUENCY) / np.log(PLANTED_FREQUENCY.max())


def blocks_of(*counts: TokenCounts) -> list[BlockCounts]:
    return [BlockCounts(c, sp.csr_matrix((TOKENS, TOKENS))) for c in counts]


def c1(counts: TokenCounts):
    return report.c1_verdict(counts, PLANTED_RULES, PLANTED_FREQUENCY, READING, "block 6", seed=0)


def test_c1_holds_when_apt_rises_with_frequency():
    verdict = c1(planted(RISING, 1))
    assert verdict.verdict == "holds" and "rises with W_S frequency" in verdict.reason


def test_c1_fails_when_apt_is_shuffled_across_tokens():
    shuffled = np.random.default_rng(5).permutation(RISING)
    verdict = c1(planted(shuffled, 1))
    assert verdict.verdict == "does not hold" and "includes 0" in verdict.reason


def test_c1_fails_on_the_unigram_plateau_though_its_rho_is_above_0():
    # APT 1 on the commonest token, 0 elsewhere: rho > 0 with an interval above 0, but no more
    # than the most-frequent-token rule's own rho
    plateau = commonest_only()
    assert rank_trend(READING.apt(plateau), PLANTED_FREQUENCY).low > 0
    verdict = c1(plateau)
    assert verdict.verdict == "does not hold"
    assert "does not clear the 'most frequent token' rule" in verdict.reason
    assert "difference +0.000 [+0.000, +0.000]" in verdict.reason and "unigram plateau" in verdict.reason


def test_c1_is_not_measured_when_every_token_has_the_same_apt():
    verdict = c1(planted(np.zeros(TOKENS), 1))
    assert verdict.verdict == "not measured" and "same masked APT" in verdict.reason


def c2(*ps: np.ndarray):
    series = {ws: planted(p, seed) for seed, (ws, p) in enumerate(zip((1000, 4000, 16000), ps))}
    rise = report.ws_rise(series, READING, seed=0)
    return report.c2_verdict(rise, series[max(series)], PLANTED_RULES, READING, seed=0)


def test_c2_holds_when_every_step_of_w_s_raises_apt():
    verdict = c2(RISING, RISING + 0.1, RISING + 0.2)
    assert verdict.verdict == "holds" and "every step" in verdict.reason


def test_c2_fails_when_a_step_adds_nothing():
    verdict = c2(RISING, RISING + 0.2, RISING + 0.2)
    assert verdict.verdict == "does not hold" and "4,000 → 16,000" in verdict.reason
    assert "1,000 → 4,000" not in verdict.reason


def test_c2_is_not_measured_with_one_w_s():
    assert c2(RISING).verdict == "not measured"


def c3(*counts: TokenCounts):
    blocks = blocks_of(*counts)
    rise = report.depth_rise(blocks, READING, seed=0)
    return report.c3_verdict(rise, blocks, PLANTED_RULES, READING, "probe", seed=0), rise


def test_c3_holds_when_apt_rises_along_the_blocks():
    verdict, _ = c3(*(planted(RISING + step, seed) for seed, step in enumerate((0, 0.05, 0.1, 0.2))))
    assert verdict.verdict == "holds" and "rises from block 0 to block 3" in verdict.reason


def test_c3_fails_on_a_significant_dip_though_the_whole_rise_is_positive():
    verdict, rise = c3(*(planted(RISING + step, seed) for seed, step in enumerate((0, 0.3, 0.1, 0.35))))
    assert rise.total.above(0)
    assert verdict.verdict == "does not hold" and "block 1 → 2 falls" in verdict.reason


def test_c3_fails_when_the_last_block_shuffles_block_0():
    # the same APT values, moved between tokens: <APT> is exactly the same, the rise exactly 0
    first = planted(RISING, 1)
    shuffled = TokenCounts(first.correct[:, np.random.default_rng(2).permutation(TOKENS)], first.total)
    verdict, rise = c3(first, planted(RISING, 3), shuffled)
    assert rise.total.estimate == pytest.approx(0, abs=1e-12)
    assert verdict.verdict == "does not hold" and "not above 0" in verdict.reason


def test_c3_fails_on_the_unigram_plateau():
    verdict, _ = c3(commonest_only(), commonest_only(), commonest_only())
    assert verdict.verdict == "does not hold" and "unigram plateau" in verdict.reason


def c4(first: np.ndarray, last: np.ndarray):
    blocks = blocks_of(planted(first, 1), planted(last, 2))
    rise = report.depth_rise(blocks, READING, seed=0)
    share = report.low_share(blocks, PLANTED_FREQUENCY, READING, seed=0)
    return report.c4_verdict(share, rise, READING, "probe"), share


def test_c4_holds_when_the_rise_comes_from_rare_tokens():
    verdict, share = c4(np.full(TOKENS, 0.1), np.where(LOW_HALF, 0.4, 0.1))
    assert verdict.verdict == "holds" and share.low > 0.8


def test_c4_fails_when_the_rise_comes_from_frequent_tokens():
    verdict, share = c4(np.full(TOKENS, 0.1), np.where(LOW_HALF, 0.1, 0.4))
    assert verdict.verdict == "does not hold" and "frequent tokens" in verdict.reason
    assert share.high < 0.2


def test_c4_fails_when_both_halves_rise_alike():
    verdict, share = c4(np.full(TOKENS, 0.1), np.full(TOKENS, 0.3))
    assert verdict.verdict == "does not hold" and share.low < 0.5 < share.high


def test_c4_is_not_measured_without_a_significant_rise():
    verdict, _ = c4(np.full(TOKENS, 0.2), np.full(TOKENS, 0.2))
    assert verdict.verdict == "not measured" and "no significant rise" in verdict.reason


def test_rank_trend_beyond_a_reference_by_hand():
    frequency = np.arange(1, 21)
    apt = np.linspace(0, 1, 20) ** 2  # rho 1
    same = rank_trend_beyond(apt, apt, frequency)
    assert (same.estimate, same.low, same.high) == (0, 0, 0)
    # a constant reference counts as rho 0: the difference is rho itself, 1 in every resample
    beyond = rank_trend_beyond(apt, np.zeros(20), frequency)
    assert (beyond.estimate, beyond.low, beyond.high) == pytest.approx((1, 1, 1))
    assert np.isnan(rank_trend_beyond(np.zeros(20), apt, frequency).estimate)


def test_readers_sentence_says_why_the_probe_trails_the_lens():
    import numpy as np

    from aptutils.analysis.rises import PositionReading
    from aptutils.core.counts import TokenCounts
    from aptutils.readout.counting import BlockCounts
    from aptutils.reports.ch2_apt import LENS_HEAD_NOTE, readers_sentence

    def block(correct_masked):  # two tokens, 2 masked positions each
        correct, total = np.zeros((3, 2), int), np.zeros((3, 2), int)
        total[0] = [2, 2]
        correct[0] = correct_masked
        return [BlockCounts(TokenCounts(correct, total), None)]

    reading = PositionReading(("masked",), 1)
    trailing = readers_sentence({"probe": block([1, 0]), "lens": block([2, 1])}, reading)
    assert "probe 0.250 / 0.250; lens 0.750 / 0.750" in trailing
    assert "below the lens by 0.500" in trailing and LENS_HEAD_NOTE in trailing
    level = readers_sentence({"probe": block([2, 1]), "lens": block([2, 1])}, reading)
    assert "at least as well as the lens" in level and LENS_HEAD_NOTE not in level
