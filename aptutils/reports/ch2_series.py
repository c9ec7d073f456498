"""Chapter 2's W_S series and trivial rules: whether a model beats the best trivial rule (shared by
the verdicts C1-C3), <APT> along the W_S series, its figure, table and the verdict on C2.

An external checkpoint (the `model` knob) has no W_S series: its series is empty, and C2 is not
measured, saying why. Re-exported by `reports.ch2_apt`, which chapter 2 reads.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import INTERVAL_LEVEL, Interval
from ..analysis.baselines import RULES, best_rule
from ..analysis.rises import (
    PositionReading,
    Rise,
    mean_interval,
    paired_difference,
    rise_along,
)
from ..core.counts import TokenCounts
from ..core.verdicts import Verdict, decide
from ..training.equal_steps import SERIES_NAMES
from .controls import EQUAL_STEPS, equal_steps_verdict

N_BOOT = 1000
NO_SERIES = ("the model read is an external checkpoint (the `model` parameter), which has no W_S "
             "series of its own to compare")
NO_EQUAL_STEPS = ("the equal-steps series was not run (`equal_steps` is off, or an external "
                  "checkpoint is read)")

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
    statistic = (f"per step up of W_S, paired bootstrap {INTERVAL_LEVEL:.0%} CI over tokens of the "
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


def c2_equal_steps_verdict(epochs: Verdict, rise: Rise | None, largest: TokenCounts | None,
                           rules: dict[str, TokenCounts], reading: PositionReading,
                           seed: int) -> Verdict:
    """C2 at equal steps: the same rule as `c2_verdict` along the equal-steps series (`rise`;
    None when it was not run), beside the verdict at equal epochs (`epochs`), saying what the two
    verdicts say together: about data or about steps."""
    if rise is None:
        return Verdict("C2", "", epochs.statistic, decide(None), NO_EQUAL_STEPS,
                       control=EQUAL_STEPS)
    return equal_steps_verdict(epochs, c2_verdict(rise, largest, rules, reading, seed))


def direction(interval: Interval, rises: str = "rises", falls: str = "falls",
              flat: str = "no change resolved") -> str:
    """`rises`, `falls` or `flat`, from where the interval lies around 0."""
    return rises if interval.above(0) else falls if interval.below(0) else flat


def _rise_clause(rise: Rise) -> str:
    return (f"{direction(rise.total)} from {rise.points[0]:,} to {rise.points[-1]:,}, "
            f"{rise.total.text(signed=True)}")


def ws_title(rises: dict[str, Rise | None], reading: PositionReading) -> str:
    """What the run computed along each series ({series name: rise}; one series: its rise alone)."""
    head = f"{reading.name} ⟨APT⟩ against W_S"
    if all(rise is None for rise in rises.values()):
        return f"{head}: {NO_SERIES}"
    shown = {name: rise for name, rise in rises.items() if rise is not None}
    if all(len(rise.points) < 2 for rise in shown.values()):
        return f"{head} (one model)"
    if len(shown) == 1:
        return f"{head}: {_rise_clause(next(iter(shown.values())))}"
    return f"{head}: " + "; ".join(f"at {name}, {_rise_clause(rise)}" for name, rise in shown.items())


def ws_figure_args(rises: dict[str, Rise | None], series: dict[str, dict[int, TokenCounts]],
                   rules: dict[str, TokenCounts], reading: PositionReading) -> dict:
    """`metric_by_ws_figure` arguments: per series ({name: ...}, e.g. "equal epochs", "equal
    steps"), <APT> (reading, own head) with intervals and <APT> on all kinds; the rules' <APT> on
    the reading (dashed); without a series, the rules alone."""
    curves, intervals = {}, {}
    several = sum(bool(counts) for counts in series.values()) > 1
    for label, rise in rises.items():
        suffix = f", {label}" if several else ""
        name = f"⟨APT⟩ {reading.name}{suffix}"
        levels = dict(zip(rise.points, rise.levels)) if rise is not None else {}
        curves[name] = {ws: v.estimate for ws, v in levels.items()}
        intervals[name] = {ws: (v.low, v.high) for ws, v in levels.items()}
    for label, counts in series.items():
        suffix = f", {label}" if several else ""
        curves[f"⟨APT⟩ all{suffix}"] = {ws: c.mean_apt(None, reading.min_occurrences)
                                        for ws, c in counts.items()}
    curves = {name: values for name, values in curves.items() if values} or {"": {}}
    dashed = {f"{rule} rule, ⟨APT⟩ {reading.name}":
              rules[rule].mean_apt(reading.kinds, reading.min_occurrences)
              for rule in RULES if rule in rules}
    return {"curves": curves, "intervals": intervals, "dashed": dashed,
            "ylabel": "held-out ⟨APT⟩ (last block, own head)", "title": ws_title(rises, reading)}


def series_rows(series: dict[str, dict[int, TokenCounts]]) -> dict[str, TokenCounts]:
    """{row name: counts} over the series ({name: {W_S: counts}}), the first series' rows first;
    the largest W_S, the same model in every series, is shown once."""
    names = [label for label, counts in series.items() if counts]
    rows, shared = {}, max(series[names[0]]) if names else None
    for label in names:
        for ws, counts in sorted(series[label].items()):
            if label != names[0] and ws == shared:
                continue
            suffix = "" if len(names) == 1 else ", both series" if ws == shared else f", {label}"
            rows[f"W_S = {ws:,}{suffix}"] = counts
    return rows


def series_table(series: dict[str, dict[int, TokenCounts]], rules: dict[str, TokenCounts],
                 reading: PositionReading) -> pd.DataFrame:
    """Per model of each series (and per rule): <APT> and token-weighted accuracy on the reading
    and on all kinds, same W_test positions."""
    rows = {**series_rows(series),
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


def named_series(epochs, steps) -> dict:
    """{"equal epochs": epochs, "equal steps": steps} (counts by W_S, or rises), the latter only
    when it was run (not empty, not None)."""
    return {SERIES_NAMES["epochs"]: epochs} | ({SERIES_NAMES["steps"]: steps} if steps else {})
