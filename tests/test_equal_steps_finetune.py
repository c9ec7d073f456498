"""Chapter 5 reads both W_S series: equal epochs (the paper's protocol) and equal steps (answers
by hand on the smoke profile: ws_list 64, 128, batch_size 16, epochs 2, so W_S=128 trains for
ceil(2 x 128 / 16) = 16 steps and W_S=64, at 64 / 16 = 4 steps an epoch, for 16 / 4 = 4 epochs)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from aptutils.core.params import resolve
from aptutils.data.tasks import TASK_TITLES
from aptutils.plotting.task_figures import finetune_accuracy_figure, finetune_ws_figure
from aptutils.reports.ch5_finetuning import (
    accuracy_table,
    c12_equal_steps_verdict,
    c12_verdict,
    find_result,
    ws_comparisons,
    ws_headline,
)
from aptutils.training.finetune import FinetuneResult, ModelSpec, series_models, series_specs
from aptutils.training.subject import SubjectRecipe, subject_key

SETTINGS = resolve({"profile": "smoke"})
SUBJECT = SETTINGS.recipe(SubjectRecipe)
DATA = SimpleNamespace(samples=SimpleNamespace(folder=Path("samples-abc")))
TASK_NAMES = ("few_rel", "dbpedia_14")
STEPS_64 = ModelSpec(64, True, series="steps")


def test_the_profiles_the_answers_rest_on():
    assert SETTINGS.equal_steps and SETTINGS.ws_list == (64, 128)
    assert (SETTINGS.batch_size, SETTINGS.epochs) == (16, 2.0)


def test_a_steps_spec_keys_the_equal_steps_model_and_an_epochs_key_is_unchanged():
    assert STEPS_64.recipe_for(SUBJECT).series.training.epochs == 4.0
    four = SETTINGS.replace(epochs=4.0).recipe(SubjectRecipe)
    assert STEPS_64.key(SUBJECT, DATA) == subject_key(four, 64, True, DATA)
    assert STEPS_64.key(SUBJECT, DATA)["epochs"] == 4.0
    epochs_64 = ModelSpec(64, True)
    assert epochs_64.recipe_for(SUBJECT) is SUBJECT
    assert epochs_64.key(SUBJECT, DATA) == subject_key(SUBJECT, 64, True, DATA)
    assert epochs_64.key(SUBJECT, DATA)["epochs"] == 2.0
    # the largest W_S is the same model in both series; the untrained model has no series
    largest = ModelSpec(128, True).key(SUBJECT, DATA)
    assert ModelSpec(128, True, series="steps").key(SUBJECT, DATA) == largest
    untrained = ModelSpec(128, False, series="steps")
    assert untrained.recipe_for(SUBJECT) is SUBJECT and untrained.label == "untrained"
    assert (epochs_64.label, STEPS_64.label) == ("W_S=64", "W_S=64, equal steps")


def test_series_specs_add_the_equal_steps_models_but_the_shared_largest():
    assert series_specs(SUBJECT) == [ModelSpec(64, True), ModelSpec(128, True), STEPS_64,
                                     ModelSpec(128, False)]
    assert series_models(SUBJECT, "epochs") == [ModelSpec(64, True), ModelSpec(128, True)]
    assert series_models(SUBJECT, "steps") == [STEPS_64, ModelSpec(128, True)]
    three = SETTINGS.replace(ws_list=(32, 64, 128)).recipe(SubjectRecipe)  # W_S=32: 8 epochs
    assert [s.recipe_for(three).series.training.epochs
            for s in series_models(three, "steps")] == [8.0, 4.0, 2.0]
    off = SETTINGS.replace(equal_steps=False).recipe(SubjectRecipe)
    assert series_specs(off) == [ModelSpec(64, True), ModelSpec(128, True), ModelSpec(128, False)]
    assert series_models(off, "steps") == []


# C12 along both series, on hand-built results


def nested(accuracy: float, n: int = 200) -> np.ndarray:
    """The first accuracy * n test samples right: nested sets, larger is better sample by sample."""
    return np.arange(n) < round(accuracy * n)


def results(accuracy: dict[ModelSpec, float]) -> list[FinetuneResult]:
    """Frozen results at blocks 0 and 2 of both tasks: every model wrong at block 0, right on
    `nested(accuracy)` at block 2 (label 0 everywhere, predicted 0 where right)."""
    made = []
    for name in TASK_NAMES:
        task = SimpleNamespace(name=name, title=TASK_TITLES[name], label_names=["a", "b"])
        for spec, value in accuracy.items():
            correct = np.stack([nested(0.0), nested(value)])
            made.append(FinetuneResult(task, spec, "frozen", (0, 2), np.ones(correct.shape),
                                       np.where(correct, 0, 1), np.zeros(200, int),
                                       np.zeros((2, 2, 2), int)))
    return made


EPOCHS = {ModelSpec(64, True): 0.55, ModelSpec(128, True): 0.8, ModelSpec(128, False): 0.3}


def test_the_equal_epochs_verdict_ignores_the_equal_steps_models():
    alone = c12_verdict(results(EPOCHS), SETTINGS)
    assert c12_verdict(results({**EPOCHS, STEPS_64: 0.9}), SETTINGS) == alone
    assert alone.verdict == "holds" and not alone.control


def test_c12_at_equal_steps_fails_where_the_steps_not_the_data_carry_the_rise():
    both = results({**EPOCHS, STEPS_64: 0.9})  # W_S=64 given 128's steps beats W_S=128
    steps = c12_verdict(both, SETTINGS, "steps")
    assert steps.verdict == "does not hold"
    assert "on FewRel the step W_S=64, equal steps → W_S=128 falls (-0.100" in steps.reason
    assert "every W_S trained for the 16 steps of W_S=128" in steps.statistic
    control = c12_equal_steps_verdict(both, SETTINGS)
    assert (control.label, control.verdict) == ("C12 at equal steps", "does not hold")
    assert control.reason.startswith("holds only at equal epochs")
    assert control.reason.endswith(steps.reason)
    table = ws_comparisons(both, SETTINGS)
    assert table["series"].tolist()[:6] == ["equal epochs"] * 3 + ["equal steps"] * 3
    assert table["comparison"].tolist()[3:6] == ["W_S=64, equal steps − untrained",
                                                 "W_S=128 − untrained", "W_S=128 − W_S=64, equal steps"]
    assert table["gain"].round(3).tolist()[:6] == [0.25, 0.5, 0.25, 0.6, 0.5, -0.1]
    headline = ws_headline(table, SETTINGS)
    assert headline.count("W_S=128 beats it (+0.500") == 2  # once per task, not once per series
    assert "at equal steps, FewRel W_S=64 → W_S=128 falls (-0.100" in headline


def test_c12_at_equal_steps_holds_with_the_data_and_is_not_measured_without_the_series():
    rising = results({**EPOCHS, STEPS_64: 0.6})
    control = c12_equal_steps_verdict(rising, SETTINGS)
    assert control.verdict == "holds" and control.reason.startswith("holds at equal steps as at equal epochs")
    off = c12_equal_steps_verdict(results(EPOCHS), SETTINGS.replace(equal_steps=False))
    assert (off.label, off.verdict) == ("C12 at equal steps", "not measured")
    assert off.reason.startswith("equal_steps is off")


def test_tables_and_figures_tell_the_series_apart():
    made = results({**EPOCHS, STEPS_64: 0.6})
    assert find_result(made, "few_rel", "frozen", 64, series="steps").spec == STEPS_64
    assert find_result(made, "few_rel", "frozen", 64).spec == ModelSpec(64, True)
    table = accuracy_table(made)
    last = table[(table["block"] == 2) & (table["task"] == "FewRel")]
    assert last[["model", "series"]].values.tolist() == [
        ["W_S=64", "equal epochs"], ["W_S=128", "equal epochs"], ["untrained", ""],
        ["W_S=64, equal steps", "equal steps"]]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for line in finetune_ws_figure(table, 2).axes[0].get_lines()}
    assert lines["pre-trained, equal epochs, frozen"] == ([64, 128], [0.55, 0.8])
    assert lines["pre-trained, equal steps, frozen"] == ([64, 128], [0.6, 0.8])
    assert lines["untrained, frozen"][1] == [0.3, 0.3] and lines["chance"][1] == [0.5, 0.5]
    drawn = [line.get_label() for line in finetune_accuracy_figure(table).axes[0].get_lines()]
    assert not any("equal steps" in label for label in drawn)


def test_the_ws_figure_title_counts_what_each_series_shows():
    import pandas as pd

    from aptutils.core.params import resolve
    from aptutils.reports.ch5_finetuning import ws_title

    rows = [("equal epochs", "vs untrained", "rises"), ("equal epochs", "vs untrained", "rises"),
            ("equal epochs", "step", "does not change significantly"),
            ("equal steps", "vs untrained", "rises"), ("equal steps", "vs untrained", "falls"),
            ("equal steps", "step", "rises")]
    comparisons = pd.DataFrame(rows, columns=["series", "kind", "direction"])
    title = ws_title(comparisons, resolve({"profile": "smoke"}))
    assert title.endswith("equal epochs: 2 of 2 beat the untrained model, 0 of 1 W_S steps rise; "
                          "equal steps: 1 of 2 beat the untrained model, 1 of 1 W_S steps rise")
