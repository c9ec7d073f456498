"""The equal-steps control of the W_S series: its step plan, its verdict rows (C2 at equal steps)
and how they travel to the verdicts page; chapter 1's plateau exits and memorisation reading."""
import json

import numpy as np
import pandas as pd
import pytest

from aptutils.core.params import resolve
from aptutils.core.verdicts import (
    CONTROLS_MIME,
    VERDICTS_MIME,
    Verdict,
    gather_controls,
    gather_verdicts,
    report,
    verdict_table,
)
from aptutils.parts import Part, part_problems, verdicts_page
from aptutils.reports.ch1_pretraining import plateau_exit
from aptutils.reports.ch2_series import named_series, series_rows
from aptutils.reports.controls import EQUAL_STEPS, data_or_steps, equal_steps_verdict
from aptutils.training.equal_steps import equal_steps_epochs, planned_steps, series_recipes
from aptutils.training.pretrain import SeriesRecipe


def test_every_ws_trains_for_the_largest_ws_steps():
    series = resolve({"profile": "cpu"}).recipe(SeriesRecipe)  # W_S 1k / 4k / 16k, batch 32, 24 epochs
    assert [planned_steps(24.0, ws, 32) for ws in (1_000, 4_000, 16_000)] == [768, 3_000, 12_000]
    assert [equal_steps_epochs(series, ws) for ws in (1_000, 4_000, 16_000)] == [375.0, 96.0, 24.0]
    steps = series_recipes(series, "steps")
    assert [planned_steps(s.training.epochs, ws, 32) for ws, s in steps.items()] == [12_000] * 3
    assert steps[16_000] == series  # the largest W_S is the same model in both series
    assert steps[1_000].training.key() == {**series.training.key(), "epochs": 375.0}
    assert series_recipes(series, "epochs") == {ws: series for ws in (1_000, 4_000, 16_000)}


@pytest.mark.parametrize("ws_list, batch, epochs, target", [
    ("1000,3333,10007", 7, 3.3, 4_719),  # ceil(3.3 x 1,430 batches)
    ("10,30,100", 3, 0.7, 24),  # ceil(0.7 x 34): 24 steps from 4 and 10 batches an epoch
])
def test_uneven_batches_still_give_exactly_the_largest_steps(ws_list, batch, epochs, target):
    settings = resolve({"profile": "cpu", "ws_list": ws_list, "batch_size": batch, "epochs": epochs})
    sizes = settings.ws_list
    assert planned_steps(epochs, max(sizes), batch) == target
    for ws in sizes:
        assert planned_steps(equal_steps_epochs(settings.recipe(SeriesRecipe), ws), ws, batch) == target


def verdict(text: str, holds: bool | None, control: str = "") -> Verdict:
    decided = "not measured" if holds is None else "holds" if holds else "does not hold"
    return Verdict("C2", text, "every step's CI above 0", decided, f"because {text}", control)


@pytest.mark.parametrize("epochs, steps, opening", [
    (True, True, "holds at equal steps as at equal epochs"),
    (True, False, "holds only at equal epochs"),
    (False, True, "holds at equal steps but not at equal epochs"),
    (False, False, "holds neither at equal epochs nor at equal steps"),
])
def test_the_pair_of_verdicts_says_data_or_steps(epochs, steps, opening):
    control = equal_steps_verdict(verdict("a", epochs), verdict("b", steps))
    assert control.control == EQUAL_STEPS and control.label == "C2 at equal steps"
    assert control.reason.startswith(opening) and control.reason.endswith("At equal steps: because b")
    assert control.verdict == ("holds" if steps else "does not hold")


def test_a_pair_with_an_unmeasured_verdict_adds_no_reading():
    assert data_or_steps(verdict("a", True), verdict("b", None)) == ""
    assert equal_steps_verdict(verdict("a", True), verdict("b", None)).reason == "because b"


def test_control_rows_follow_their_claim_and_travel_apart():
    rows = [verdict("b", False, EQUAL_STEPS), Verdict("C3", "x", "y", "holds"), verdict("a", True)]
    assert verdict_table(rows).index.tolist() == ["C2", "C2 at equal steps", "C3"]
    bundle = report(rows)._repr_mimebundle_()
    assert [r["claim"] for r in json.loads(bundle[VERDICTS_MIME])] == ["C2", "C3"]
    assert [r["label"] for r in json.loads(bundle[CONTROLS_MIME])] == ["C2 at equal steps"]
    notebook = {"cells": [{"outputs": [{"data": bundle}]}]}
    assert len(gather_verdicts({"02_apt": notebook})) == 12  # one row per claim, as before
    controls = gather_controls({"02_apt": notebook})
    assert controls.loc["C2 at equal steps", ["chapter", "verdict"]].tolist() == [
        "02_apt", "does not hold"]
    with pytest.raises(ValueError, match="C2 at equal steps given more than once"):
        verdict_table([verdict("b", False, EQUAL_STEPS), verdict("c", True, EQUAL_STEPS)])


def executed_chapter(verdicts: list[Verdict]) -> dict:
    bundle = report(verdicts)._repr_mimebundle_()
    return {"metadata": {"papermill": {"parameters": {"profile": "cpu"}}},
            "cells": [{"outputs": [{"data": bundle}]}]}


def test_the_verdicts_page_shows_the_control_row_under_its_claim(tmp_path):
    part = Part("cpu", "CPU", tmp_path / "cpu", "cpu")
    part.folder.mkdir()
    chapter = executed_chapter([verdict("0.1, 0.2", True), verdict("0.1, 0.1", False, EQUAL_STEPS)])
    (part.folder / "02_apt.ipynb").write_text(json.dumps(chapter))
    assert part_problems(part) == []
    lines = verdicts_page((part,), page_dir=part.folder).splitlines()
    c2 = next(i for i, line in enumerate(lines) if line.startswith("| C2 |"))
    control = lines[c2 + 1].split(" | ")
    assert control[0] == "| C2 at equal steps" and control[3] == "**does not hold**"
    assert lines[c2 + 2].startswith("| C3 |")

    (part.folder / "05_again.ipynb").write_text(json.dumps(
        executed_chapter([verdict("0.3", True, EQUAL_STEPS)])))
    assert "05_again: C2 at equal steps also decided in 02_apt" in part_problems(part)


class Counts:  # the `TokenCounts` stand-in series_rows needs: an identity
    def __init__(self, name):
        self.name = name


def test_the_shared_largest_model_is_one_row():
    epochs = {1_000: Counts("e1"), 16_000: Counts("e16")}
    steps = {1_000: Counts("s1"), 16_000: Counts("s16")}
    rows = series_rows(named_series(epochs, steps))
    assert {k: v.name for k, v in rows.items()} == {
        "W_S = 1,000, equal epochs": "e1", "W_S = 16,000, both series": "e16",
        "W_S = 1,000, equal steps": "s1"}
    assert list(series_rows(named_series(epochs, {}))) == ["W_S = 1,000", "W_S = 16,000"]


def test_plateau_exit_is_the_first_evaluation_at_twice_the_unigram_rule():
    record = {"baselines": {"most frequent token": {"masked_accuracy": 0.05}}}
    log = pd.DataFrame({"step": [50, 100, 250, 500, 750, 1_000],
                        "eval_masked_accuracy": [np.nan, 0.04, 0.06, 0.099, 0.10, 0.3]})
    assert plateau_exit(log, record) == 750  # 0.10 >= 2 x 0.05; 0.099 is not
    assert plateau_exit(log[log["step"] <= 500], record) is None


def test_pretrain_publishes_both_series_under_their_names(tmp_path, monkeypatch):
    from aptutils.__main__ import main
    from aptutils.training import published

    monkeypatch.setattr(published, "PUBLISHED_DIR", tmp_path / "models")
    assert main(["pretrain", "--profile", "smoke", "--publish"]) == 0
    cards = {folder.name: json.loads((folder / "card.json").read_text())
             for folder in sorted((tmp_path / "models").iterdir())}
    assert {name: (card["ws"], card["steps"], card["recipe"]["epochs"])
            for name, card in cards.items()} == {
        "smoke-ws64": (64, 8, 2.0), "smoke-ws128": (128, 16, 2.0), "smoke-ws64-steps16": (64, 16, 4.0)}
