"""The power of the token-cluster verdicts C5, C6 (chapter 3) and C10 (chapter 4): each verdict's
own scan rule run on pairs planted into the run's last-block counts (`analysis.power`).

The planted matrix keeps the run's row totals and diagonals, so the shuffled null of the
unplanted matrix stands for its null too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.clusters import filter_and_normalise
from ..analysis.power import (
    DETECTED,
    STRENGTHS,
    Planting,
    power_curve,
    strongest_detected,
    weakest_detected,
)
from ..analysis.scan import Scan, ScanRule, null_quantile
from .ch3_symmetry_breaking import c5_failures, c6_failures

CLAIMS = ("C5", "C6", "C10")
# Share of the kept tokens planted, in pairs: a modest structure, so that the curve says how strong
# a few small clusters must be to be seen (at 5% even the weakest plants were always found).
PLANTED_SHARE = 0.01


def c10_holds(last: Scan) -> bool | None:
    """C10's scan rule: the own-cluster share over the scan above its shuffled null's 95th
    percentile; None when no scanned threshold has a clustered token with a wrong prediction."""
    share = last.own_share()
    if not np.isfinite(share):
        return None
    return bool(share > null_quantile(last.null_values("own_share")))


def planting_for(kept: int, plants: int, strengths: tuple[float, ...] = STRENGTHS) -> Planting:
    """Pairs covering PLANTED_SHARE of the last block's `kept` tokens (at least one pair),
    `plants` plants per strength."""
    return Planting(size=2, clusters=max(1, round(PLANTED_SHARE * kept / 2)), plants=plants,
                    strengths=strengths)


def structural_power(confusion, last: Scan, first: Scan, untrained: Scan, rule: ScanRule,
                     plants: int, seed, claims: tuple[str, ...] = CLAIMS,
                     strengths: tuple[float, ...] = STRENGTHS
                     ) -> tuple[pd.DataFrame | None, Planting | None]:
    """Detection rate of each claim's scan rule in `claims` per planted strength ([strengths x
    claims]) and the planting: pairs (`planting_for`, `plants` per strength) planted among the
    tokens that pass the filter in the last block's counts [V, V] `confusion`, whose scan (with
    its null) is `last`. (None, None) when fewer than two tokens pass the filter."""
    kept, _ = filter_and_normalise(confusion, rule.min_row_count)
    if len(kept) < 2:
        return None, None
    planting = planting_for(len(kept), plants, strengths)

    def detect(matrix) -> dict[str, bool]:
        planted = last.with_observed(matrix, rule)
        fired = {"C5": lambda: not c5_failures(planted),
                 "C6": lambda: not c6_failures(planted, first, untrained),
                 "C10": lambda: bool(c10_holds(planted))}
        return {claim: fired[claim]() for claim in claims}

    rates = power_curve(confusion, detect, kept, planting, seed, desc=f"power of {', '.join(claims)}")
    return rates, planting


def power_title(rates: pd.DataFrame, planting: Planting) -> str:
    """The power figure's title: the strengths at which each rule finds the plants in DETECTED of
    them."""
    found = []
    for claim in rates.columns:
        weakest, strongest = weakest_detected(rates[claim]), strongest_detected(rates[claim])
        found.append(f"{claim} at {weakest:g}-{strongest:g}" if np.isfinite(weakest)
                     else f"{claim} at no strength up to {max(planting.strengths):g}")
    return (f"{planting.describe()}: found in >= {DETECTED:.0%} of plants by "
            + "; ".join(found))
