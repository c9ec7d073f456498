"""APT table, the two APT(50) readings, binned means, Spearman CI and the rise decomposition,
on hand-made inputs whose answers are worked out in the comments."""
import numpy as np
import pandas as pd
import pytest
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
from aptutils.core.counts import TokenCounts

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
        "apt_masked": [0.5, 0.0, 1.0, 0.0],
        "apt_replaced": [NAN, 1.0, NAN, NAN],
        "apt_unchanged": [1.0, 1.0, NAN, NAN],
    })
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


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
    rho, low, high = spearman_ci([1, 2, 3, 4, 5, np.nan], [2, 1, 4, 3, 5, 7])
    assert rho == pytest.approx(0.8)
    assert -1 <= low <= high <= 1


def test_spearman_ci_of_monotone_data_is_a_point():
    x = np.arange(1.0, 21.0)
    assert spearman_ci(x, x ** 3) == pytest.approx((1.0, 1.0, 1.0))
    assert spearman_ci(x, -np.exp(x)) == pytest.approx((-1.0, -1.0, -1.0))


def test_spearman_ci_matches_scipy_bootstrap():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    rho, low, high = spearman_ci(x, y, n_boot=2000, seed=1)
    reference = bootstrap((x, y), lambda a, b: spearmanr(a, b).statistic, paired=True,
                          vectorized=False, method="percentile", n_resamples=2000,
                          rng=np.random.default_rng(2)).confidence_interval
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    assert low == pytest.approx(reference.low, abs=0.04)
    assert high == pytest.approx(reference.high, abs=0.04)


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
