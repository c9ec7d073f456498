"""Bootstrap intervals over tokens, the statistics C1-C4 decide on, on a `PositionReading` (the
kinds of modified position read, and the positions a token needs): a mean and a paired
difference of per-token APT, <APT> along an ordered series (blocks, or W_S) with its steps, the
share of a rise given by the low-frequency half, and the rank trend of APT with frequency, alone
and beyond a reference (a trivial rule).

Per-token arrays are [V] with NaN for tokens left out (too few positions of the reading); tokens
are the resampled units, so a token's own sampling noise is inside every interval. Used by
chapter 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.apt import (
    BOOTSTRAP_CELLS,
    NO_INTERVAL,
    Interval,
    bootstrap_means,
    frequency_groups,
    percentile_interval,
    rowwise_spearman,
    spearman_ci,
)
from ..core.counts import TokenCounts
from ..core.kinds import reading_name
from ..core.recipes import Recipe


@dataclass(frozen=True)
class PositionReading(Recipe):
    """The modified W_test positions a number reads (`kinds`), how many a token needs to count
    (`token_min_occurrences`) and how many maskings pool them (`test_maskings`)."""

    KNOB_OF = {"min_occurrences": "token_min_occurrences", "maskings": "test_maskings"}

    kinds: tuple[str, ...]
    min_occurrences: int
    maskings: int = 1

    @property
    def name(self) -> str:
        return reading_name(self.kinds)

    def apt(self, counts: TokenCounts) -> np.ndarray:
        """APT(t) on this reading, NaN for tokens with too few positions. Shape [V]."""
        return counts.apt(self.kinds, self.min_occurrences)

    def describe(self) -> str:
        return (f"{self.name} positions, tokens with ≥ {self.min_occurrences} of them in W_test "
                f"({self.maskings} masking{'s' * (self.maskings != 1)} pooled)")


def mean_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean of the finite `values` (one per token) with its bootstrap interval, tokens resampled."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return NO_INTERVAL
    samples = bootstrap_means(values, n_boot, np.random.default_rng(seed))
    return percentile_interval(float(values.mean()), samples, len(values))


def paired_difference(before: np.ndarray, after: np.ndarray, n_boot: int = 1000,
                      seed: int = 0) -> Interval:
    """mean(after - before) over the tokens where both are finite, with a paired bootstrap
    interval: tokens are resampled, each keeping its own pair."""
    return mean_interval(np.asarray(after, float) - np.asarray(before, float), n_boot, seed)


@dataclass(frozen=True)
class Rise:
    """<APT> along an ordered series (blocks, or W_S), over the same tokens at every point: each
    point's level, each step from the point before, and the whole rise from first to last."""

    points: tuple
    levels: tuple[Interval, ...]
    steps: tuple[Interval, ...]
    total: Interval
    axis: str = "point"  # what the points are: "block", "W_S"

    def dips(self) -> list[tuple[object, object, Interval]]:
        """Steps (from, to, difference) whose interval lies wholly below 0."""
        return [(a, b, step) for a, b, step in zip(self.points, self.points[1:], self.steps)
                if step.below(0)]

    def largest_dip(self) -> tuple[object, object, Interval] | None:
        """The step with the lowest estimate, when it falls; else None."""
        falls = [(step.estimate, a, b, step) for a, b, step
                 in zip(self.points, self.points[1:], self.steps) if step.estimate < 0]
        return min(falls, key=lambda f: f[0])[1:] if falls else None

    def table(self) -> pd.DataFrame:
        """One row per point: <APT> with its interval, and the step from the point before."""
        steps = [NO_INTERVAL, *self.steps]
        return pd.DataFrame({"⟨APT⟩": [v.estimate for v in self.levels],
                             "ci_low": [v.low for v in self.levels],
                             "ci_high": [v.high for v in self.levels],
                             "step": [v.estimate for v in steps],
                             "step ci_low": [v.low for v in steps],
                             "step ci_high": [v.high for v in steps],
                             "tokens": [v.n for v in self.levels]},
                            index=pd.Index(self.points, name=self.axis))


def rise_along(apt_by_point: dict, n_boot: int = 1000, seed: int = 0,
               axis: str = "point") -> Rise:
    """`Rise` of per-token APT arrays [V] (NaN where a token has too few positions), given in
    order: point (block index or W_S) -> APT; axis names the points."""
    points = tuple(apt_by_point)
    values = [np.asarray(apt_by_point[p], dtype=float) for p in points]
    return Rise(points, tuple(mean_interval(v, n_boot, seed) for v in values),
                tuple(paired_difference(a, b, n_boot, seed) for a, b in zip(values, values[1:])),
                paired_difference(values[0], values[-1], n_boot, seed), axis)


def low_frequency_share(apt_first: np.ndarray, apt_last: np.ndarray, frequency: np.ndarray,
                        n_boot: int = 1000, seed: int = 0) -> Interval:
    """Share of the rise of <APT> (first -> last) given by the lower-frequency half of the tokens
    (`frequency_groups`, 2 groups, over the tokens where both APTs are finite), with a stratified
    paired bootstrap interval: each half's tokens are resampled within the half."""
    apt_first, apt_last = np.asarray(apt_first, float), np.asarray(apt_last, float)
    present = np.isfinite(apt_first) & np.isfinite(apt_last)
    rise = (apt_last - apt_first)[present]
    if len(rise) < 2:
        return Interval(np.nan, np.nan, np.nan, len(rise))
    low, high = (rise[members] for members in frequency_groups(np.asarray(frequency)[present], 2))
    total = rise.sum()
    rng = np.random.default_rng(seed)
    low_sums = bootstrap_means(low, n_boot, rng) * len(low)
    high_sums = bootstrap_means(high, n_boot, rng) * len(high)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = low_sums / (low_sums + high_sums)
    shares[~np.isfinite(shares)] = np.nan
    if not np.isfinite(shares).any():
        return Interval(np.nan, np.nan, np.nan, len(rise))
    estimate = float(low.sum() / total) if total != 0 else np.nan
    return percentile_interval(estimate, shares, len(rise))


def rank_trend(apt: np.ndarray, frequency: np.ndarray, n_boot: int = 1000,
               seed: int = 0) -> Interval:
    """Spearman rho of APT against log W_S frequency over the tokens with a finite APT and a
    frequency > 0, with its bootstrap interval; NaN when fewer than 3 tokens or APT is constant."""
    apt, frequency = np.asarray(apt, float), np.asarray(frequency, float)
    keep = np.isfinite(apt) & (frequency > 0)
    if keep.sum() < 3 or np.ptp(apt[keep]) == 0:
        return Interval(np.nan, np.nan, np.nan, int(keep.sum()))
    return spearman_ci(np.log(frequency[keep]), apt[keep], n_boot, seed)


def rank_trend_beyond(apt: np.ndarray, reference: np.ndarray, frequency: np.ndarray,
                      n_boot: int = 1000, seed: int = 0) -> Interval:
    """rho(APT, frequency) - rho(reference APT, frequency) over the tokens where both APTs are
    finite and frequency > 0, with a paired bootstrap interval (the same tokens resampled for
    both; resamples where either APT is constant are left out). A reference constant over the
    tokens counts as rho 0."""
    apt, reference = np.asarray(apt, float), np.asarray(reference, float)
    frequency = np.asarray(frequency, float)
    keep = np.isfinite(apt) & np.isfinite(reference) & (frequency > 0)
    x, y, z = np.log(frequency[keep]), apt[keep], reference[keep]
    if len(x) < 3 or np.ptp(y) == 0:
        return Interval(np.nan, np.nan, np.nan, len(x))

    rho = rowwise_spearman
    estimate = rho(x[None], y[None])[0] - (rho(x[None], z[None])[0] if np.ptp(z) else 0.0)
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // len(x))
    samples = []
    for start in range(0, n_boot, chunk):
        pick = rng.integers(0, len(x), (min(chunk, n_boot - start), len(x)))
        base = rho(x[pick], z[pick]) if np.ptp(z) else np.zeros(len(pick))
        samples.append(rho(x[pick], y[pick]) - base)
    return percentile_interval(float(estimate), np.concatenate(samples), len(x))
