"""Chapter 2's W_S series and trivial rules: whether a model beats the best trivial rule (shared by
the verdicts C1-C3), <APT> along the W_S series, its figure, table and the verdict on C2.

An external checkpoint (the `model` knob) has no W_S series: its series is empty, and C2 is not
measured, saying why. Re-exported by `reports.ch2_apt`, which chapter 2 reads.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import CONFIDENCE
from ..analysis.baselines import RULES, best_rule
from ..analysis.rises import (
    Interval,
    PositionReading,
    Rise,
    mean_interval,
    paired_difference,
    rise_along,
)
from ..core.counts import TokenCounts
from ..core.verdicts import Verdict, decide

N_BOOT = 1000
NO_SERIES = ("the model read is an external checkpoint (the `model` parameter), which has no W_S "
             "series of its own to compare")

RULE_GLOSS = {  # what it means when a model does not beat a rule on the reading
    "most frequent token": "the model has not left the unigram plateau",
    "copy the input": "the model does no more than copy its input",
    "copy, else most frequent": "the model does no more than copy its input and answer the "
                                "commonest token",
}


def beats_rules(model: TokenCounts, rules: dict[str, TokenCounts], reading: PositionReading,
                where: str, seed: int) -> tuple[bool, str]:
    """Whether the model's <APT> on the reading lies above the best trivial rule's (paired
    bootstrap over tokens), and a sentence saying so."""
    rule = best_rule(rules, reading.kinds, reading.min_occurrences)
    model_apt, rule_apt = reading.apt(model), reading.apt(rules[rule])
    level = mean_interval(model_apt, N_BOOT, seed)
    difference = paired_difference(rule_apt, model_apt, N_BOOT, seed)
    rule_level = float(np.nanmean(rule_apt)) if np.isfinite(rule_apt).any() else np.nan
    said = (f"{reading.name} ⟨APT⟩ at {where} is {level}, against {rule_level:.3f} for the "
            f"'{rule}' rule (difference {difference.text(signed=True)})")
    if difference.above(0):
        return True, said
    return False, f"{said}: {RULE_GLOSS[rule]}"


def _points(rise: Rise, label) -> str:
    return ", ".join(f"{label(p)}: {level.estimate:.3f}" for p, level in zip(rise.points, rise.levels))


def ws_rise(series: dict[int, TokenCounts], reading: PositionReading, seed: int) -> Rise | None:
    """<APT> (reading, last block, own head) along the W_S series, with paired steps; None
    without a series (an external checkpoint)."""
    if not series:
        return None
    return rise_along({ws: reading.apt(series[ws]) for ws in sorted(series)}, N_BOOT, seed,
                      "W_S")


def c2_verdict(rise: Rise, largest: TokenCounts, rules: dict[str, TokenCounts],
               reading: PositionReading, seed: int) -> Verdict:
    """C2: every step up of W_S raises <APT> (reading, last block, each model's own head): the
    paired bootstrap interval over tokens of each step's difference lies above 0."""
    statistic = (f"per step up of W_S, paired bootstrap {CONFIDENCE:.0%} CI over tokens of the "
                 f"change of ⟨APT⟩ (last block, model's own head), {reading.describe()}; holds if "
                 "every step's CI lies above 0")
    if rise is None:
        return Verdict("C2", "", statistic, decide(None), NO_SERIES)
    shown = _points(rise, lambda ws: f"{ws:,}")
    if len(rise.points) < 2:
        return Verdict("C2", shown, statistic, decide(None), "the series has a single W_S")
    steps = list(zip(rise.points, rise.points[1:], rise.steps))
    said = "; ".join(f"{a:,} → {b:,}: {step.text(signed=True)}" for a, b, step in steps)
    holds = all(step.above(0) for _, _, step in steps)
    if holds:
        return Verdict("C2", shown, statistic, decide(True),
                       f"every step up of W_S raises {reading.name} ⟨APT⟩: {said}")
    unresolved = "; ".join(f"{a:,} → {b:,} changes it by {step.text(signed=True)}"
                           for a, b, step in steps if not step.above(0))
    where = f"W_S = {rise.points[-1]:,} (last block)"
    return Verdict("C2", shown, statistic, decide(False),
                   f"not every step raises {reading.name} ⟨APT⟩ significantly: {unresolved}; "
                   + beats_rules(largest, rules, reading, where, seed)[1])


def direction(interval: Interval, rises: str = "rises", falls: str = "falls",
              flat: str = "no change resolved") -> str:
    """`rises`, `falls` or `flat`, from where the interval lies around 0."""
    return rises if interval.above(0) else falls if interval.below(0) else flat


def ws_title(rise: Rise | None, reading: PositionReading) -> str:
    if rise is None:
        return f"{reading.name} ⟨APT⟩ against W_S: {NO_SERIES}"
    if len(rise.points) < 2:
        return f"{reading.name} ⟨APT⟩ against W_S (one model)"
    return (f"{reading.name} ⟨APT⟩ against W_S: {direction(rise.total)} from "
            f"{rise.points[0]:,} to {rise.points[-1]:,}, {rise.total.text(signed=True)}")


def ws_figure_args(rise: Rise, series: dict[int, TokenCounts], rules: dict[str, TokenCounts],
                   reading: PositionReading) -> dict:
    """`metric_by_ws_figure` arguments: <APT> (reading, own head) with intervals, <APT> on all
    kinds, and the rules' <APT> on the reading (dashed); without a series, the rules alone."""
    name = f"⟨APT⟩ {reading.name}"
    levels = dict(zip(rise.points, rise.levels)) if rise is not None else {}
    curves = {name: {ws: v.estimate for ws, v in levels.items()},
              "⟨APT⟩ all": {ws: c.mean_apt(None, reading.min_occurrences) for ws, c in series.items()}}
    dashed = {f"{rule} rule, {name}": rules[rule].mean_apt(reading.kinds, reading.min_occurrences)
              for rule in RULES if rule in rules}
    return {"curves": curves, "intervals": {name: {ws: (v.low, v.high) for ws, v in levels.items()}},
            "dashed": dashed, "ylabel": "held-out ⟨APT⟩ (last block, own head)",
            "title": ws_title(rise, reading)}


def series_table(series: dict[int, TokenCounts], rules: dict[str, TokenCounts],
                 reading: PositionReading) -> pd.DataFrame:
    """Per model of the series (and per rule): <APT> and token-weighted accuracy on the reading
    and on all kinds, same W_test positions."""
    rows = {**{f"W_S = {ws:,}": c for ws, c in sorted(series.items())},
            **{f"rule: {rule}": rules[rule] for rule in RULES if rule in rules}}
    return pd.DataFrame({
        f"⟨APT⟩ {reading.name}": {k: c.mean_apt(reading.kinds, reading.min_occurrences)
                                  for k, c in rows.items()},
        "⟨APT⟩ all": {k: c.mean_apt(None, reading.min_occurrences) for k, c in rows.items()},
        f"accuracy {reading.name}": {k: c.kind_accuracy(reading.kinds) for k, c in rows.items()},
        "accuracy all": {k: c.accuracy for k, c in rows.items()}})


def largest_model(series: dict[int, TokenCounts]) -> TokenCounts | None:
    """The counts of the series' largest W_S, or None without a series."""
    return series[max(series)] if series else None
