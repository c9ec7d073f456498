"""Tables, sentences and the verdicts C8 and C12 of chapter 5 (per-block fine-tuning).

Every comparison of accuracies is paired over the same test samples, with a bootstrap interval:
the rise from block 0 to the last block (C8), and each pre-trained model against the untrained one
and each W_S step (C12). With `equal_steps` every W_S comparison is made along both series, equal
epochs (the paper's protocol, which decides C12) and equal steps (the control "C12 at equal
steps": is it the data or the steps?). Headlines and verdict reasons state the direction the run
computed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import INTERVAL_LEVEL, Interval, percentile_interval
from ..core import exports
from ..core.params import Settings
from ..core.verdicts import Verdict, decide
from ..data.tasks import SUBSET_NOTES, TASK_TITLES, TASKS, Task
from ..training.equal_steps import SERIES_NAMES, has_equal_steps, planned_steps
from ..training.finetune import (
    PROTOCOL_NAMES,
    FinetuneResult,
    ModelSpec,
    analysis_spec,
    series_models,
)
from ..training.pooling import PoolingRecipe, task_pooling
from ..training.pretrain import SeriesRecipe
from ..training.subject import SubjectRecipe
from .controls import equal_steps_verdict

POOLING_NAMES = {"entity": "states at the two entity markers, [head; tail]",
                 "mean": "mean over the tokens", "cls": "the [CLS] position"}


def _spread(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def sampling_table(settings: Settings, tasks: dict[str, Task]) -> pd.DataFrame:
    """What each task used: source, labels, per-label counts asked and taken, skipped and cut rows."""
    asked = {"few_rel": (settings.few_rel_train, settings.few_rel_test),
             "dbpedia_14": (settings.dbpedia_train, settings.dbpedia_test)}
    rows = {}
    for name, task in tasks.items():
        info = task.info
        rows[task.title] = {
            "source": SUBSET_NOTES[name] if info["source"] == "mirror" else "the hub (complete)",
            "labels": len(info["label_names"]),
            "train per label (asked / taken)": f"{asked[name][0]:,} / {_spread(info['train_per_label'])}",
            "test per label (asked / taken)": f"{asked[name][1]:,} / {_spread(info['test_per_label'])}",
            "train / test samples": f"{sum(info['train_per_label']):,} / {sum(info['test_per_label']):,}",
            "rows skipped (entity outside sentence)": info["skipped_rows"],
            f"rows dropped (markers {settings.seq_len - 2}+ tokens apart)": info.get("markers_too_far", 0),
            f"inputs cut to seq_len={settings.seq_len}": info["truncated"],
            "read-out of a block": POOLING_NAMES[task_pooling(settings.recipe(PoolingRecipe), name)],
        }
    return pd.DataFrame(rows).T


def source_sentence(tasks: dict[str, Task]) -> str:
    """One Markdown sentence: where the tasks come from, and that mirror results are on subsets."""
    parts = [SUBSET_NOTES[name] if task.info["source"] == "mirror"
             else f"{task.title} from the hub" for name, task in tasks.items()]
    subset = any(task.info["source"] == "mirror" for task in tasks.values())
    return ("Data: " + "; ".join(parts) + "."
            + (" Results on the offline mirror are on subsets of the originals, so their accuracies "
               "are not the paper's." if subset else ""))


def example_sentence(tasks: dict[str, Task], tokenizer) -> str:
    """One Markdown paragraph: the first FewRel test input with its entity markers, and its encoded
    tokens with the two opening markers (the entity read-out) in bold."""
    task = tasks["few_rel"]
    ids = task.array("test_ids")[0]
    pieces = tokenizer.convert_ids_to_tokens([int(i) for i in ids if i != tokenizer.pad_token_id])
    read = set(task.entity_positions("test")[0].tolist())
    shown = " · ".join(f"**`{piece}`**" if i in read else f"`{piece}`" for i, piece in enumerate(pieces))
    return (f"A FewRel test input: *{task.info['example']}*\n\nAs encoded (the entity read-out "
            f"takes the states at the bold positions): {shown}")


def series_name(spec: ModelSpec) -> str:
    """"equal epochs" or "equal steps" for a model of the book's W_S series; "" for the untrained
    model and an external checkpoint. The largest W_S's model, shared by both series, is "equal
    epochs"."""
    return SERIES_NAMES[spec.series] if spec.pretrained and not spec.checkpoint else ""


def accuracy_table(results: list[FinetuneResult]) -> pd.DataFrame:
    """One row per (task, model, protocol, block): columns task, model, ws, series
    (`series_name`), pretrained, protocol, block, accuracy, test_samples, chance (1 / labels)."""
    rows = [(r.task.title, r.spec.label, r.spec.ws, series_name(r.spec), r.spec.pretrained,
             r.protocol, block, float(r.accuracy[i]), len(r.labels), 1 / len(r.task.label_names))
            for r in results for i, block in enumerate(r.blocks)]
    table = pd.DataFrame(rows, columns=["task", "model", "ws", "series", "pretrained", "protocol",
                                        "block", "accuracy", "test_samples", "chance"])
    exports.save_table(table, "finetuning_accuracy")
    return table


def accuracy_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy with one row per (task, protocol, model) and one column per block."""
    ordered = table.assign(model=pd.Categorical(table["model"], dict.fromkeys(table["model"])))
    return ordered.pivot_table(index=["task", "protocol", "model"], columns="block",
                               values="accuracy", observed=True)


def find_result(results: list[FinetuneResult], task: str, protocol: str, ws: int,
                pretrained: bool = True, series: str = "epochs") -> FinetuneResult:
    """The result of one task, protocol and model; series "steps" for an equal-steps model (the
    largest W_S's model and the untrained one are in "epochs")."""
    found = next((r for r in results if r.task.name == task and r.protocol == protocol
                  and r.spec.ws == ws and r.spec.pretrained == pretrained
                  and r.spec.series == series), None)
    if found is None:
        model = f"W_S={ws:,}, {SERIES_NAMES[series]}" if pretrained else "the untrained model"
        raise LookupError(f"no {protocol} result of {task} for {model}")
    return found


def paired_gain_ci(correct_after: np.ndarray, correct_before: np.ndarray, n_boot: int = 1000,
                   seed: int = 0) -> Interval:
    """Accuracy gain mean(after) - mean(before) over the same test samples (bool [N] each), with
    its percentile bootstrap interval (samples resampled in pairs; n: the samples)."""
    difference = correct_after.astype(float) - correct_before.astype(float)
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), (n_boot, len(difference)))].mean(1)
    return percentile_interval(float(difference.mean()), means, len(difference))


def _interval(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def direction(low: float, high: float, rises: str = "rises", falls: str = "falls",
              flat: str = "does not change significantly") -> str:
    """The direction a 95% CI of a difference supports: above 0, below 0, or neither."""
    return rises if low > 0 else falls if high < 0 else flat


def block_gains(results: list[FinetuneResult], settings: Settings, protocol: str = "frozen") -> pd.DataFrame:
    """Per task (the analysis model): accuracy at block 0 and at the last block, the paired gain
    with its bootstrap 95% CI, and its direction. Indexed by task title; columns pooling, first,
    last, gain, ci_low, ci_high, direction."""
    ws, last = settings.recipe(SubjectRecipe).ws, settings.num_layers
    rows = {}
    for name in TASKS:
        result = find_result(results, name, protocol, ws)
        first, final = result.correct[result.at(0)], result.correct[result.at(last)]
        gain = paired_gain_ci(final, first, seed=settings.seed)
        rows[TASK_TITLES[name]] = {"pooling": task_pooling(settings.recipe(PoolingRecipe), name),
                                   "first": first.mean(), "last": final.mean(),
                                   "gain": gain.estimate, "ci_low": gain.low, "ci_high": gain.high,
                                   "direction": direction(gain.low, gain.high)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "task"
    return table


def gains_headline(gains: pd.DataFrame, settings: Settings) -> str:
    """One sentence: the direction of the block 0 → last block change per task, with its CI."""
    parts = [f"on {task} accuracy {row.direction} from block 0 to block {settings.num_layers} "
             f"({row.first:.3f} → {row.last:.3f}, {row.gain:+.3f} {_interval(row.ci_low, row.ci_high)})"
             for task, row in gains.iterrows()]
    return "Frozen trunk: " + "; ".join(parts) + "."


def c8_verdict(results: list[FinetuneResult], settings: Settings) -> Verdict:
    """C8: accuracy at the last block above block 0 for every task (frozen protocol, the
    analysis model), decided by the paired bootstrap CI of the gain: holds if every CI lies
    above 0."""
    gains = block_gains(results, settings)
    last = settings.num_layers
    figures = [f"{task} {row.first:.3f} → {row.last:.3f} ({row.gain:+.3f} "
               f"{_interval(row.ci_low, row.ci_high)})" for task, row in gains.iterrows()]
    failing = gains[gains["ci_low"] <= 0]
    if failing.empty:
        reason = (f"accuracy rises on every task; the lowest CI bound is {gains['ci_low'].min():+.3f} "
                  f"({gains['ci_low'].idxmin()})")
    else:
        reason = "; ".join(
            f"on {task} ({POOLING_NAMES[row.pooling]}) accuracy {row.direction} from block 0 "
            f"({row.first:.3f}) to block {last} ({row.last:.3f}): its CI "
            f"{_interval(row.ci_low, row.ci_high)} does not lie above 0" for task, row in failing.iterrows())
    return Verdict("C8", f"{'; '.join(figures)} (block 0 → {last}, {analysis_spec(settings.recipe(SubjectRecipe)).label}, "
                   f"frozen trunk)",
                   f"paired bootstrap {INTERVAL_LEVEL:.0%} CI over the test samples of acc(block {last}) "
                   f"− acc(block 0); holds if every task's CI lies above 0", decide(failing.empty),
                   reason)


def c12_protocol(settings: Settings) -> str:
    """full where the whole model was fully fine-tuned (the predecessor's protocol), else frozen."""
    full = "full" in settings.finetune_protocols and settings.num_layers in settings.finetune_full_blocks
    return "full" if full else "frozen"


def measured_series(settings: Settings) -> list[str]:
    """The W_S series these settings fine-tune: "epochs", and "steps" with `equal_steps`."""
    return ["epochs", "steps"] if has_equal_steps(settings.recipe(SeriesRecipe)) else ["epochs"]


def ws_comparisons(results: list[FinetuneResult], settings: Settings,
                   series: str | None = None) -> pd.DataFrame:
    """Paired accuracy differences at the last block (C12's protocol), per task and series
    (`series`, by default every series of `measured_series`): every W_S against the untrained
    model, and every step along the series. Columns task, series ("equal epochs" or "equal
    steps"), comparison, kind ("vs untrained" or "step"), model, against (model labels; gain =
    acc(model) - acc(against)), gain, ci_low, ci_high, direction. The largest W_S's model belongs
    to both series, so its comparison with the untrained model appears in each."""
    protocol, last = c12_protocol(settings), settings.num_layers
    rows = []
    for name in TASKS:
        untrained = find_result(results, name, protocol, settings.recipe(SubjectRecipe).ws, pretrained=False)
        for each in [series] if series else measured_series(settings):
            models = [find_result(results, name, protocol, spec.ws, series=spec.series)
                      for spec in series_models(settings.recipe(SubjectRecipe), each)]
            pairs = [(model, untrained, "vs untrained") for model in models]
            pairs += [(larger, smaller, "step") for smaller, larger in zip(models, models[1:])]
            for after, before, kind in pairs:
                gain = paired_gain_ci(after.correct[after.at(last)],
                                      before.correct[before.at(last)], seed=settings.seed)
                rows.append((TASK_TITLES[name], SERIES_NAMES[each],
                             f"{after.spec.label} − {before.spec.label}", kind, after.spec.label,
                             before.spec.label, gain.estimate, gain.low, gain.high,
                             direction(gain.low, gain.high)))
    return pd.DataFrame(rows, columns=["task", "series", "comparison", "kind", "model", "against",
                                       "gain", "ci_low", "ci_high", "direction"])


def c12_verdict(results: list[FinetuneResult], settings: Settings,
                series: str = "epochs") -> Verdict:
    """C12 at the last block, for every task, by paired bootstrap CIs of accuracy differences:
    holds if the largest W_S beats the untrained model (CI above 0) and no step along the W_S
    series steps back significantly (no step's CI below 0). series "epochs": the paper's
    protocol; "steps": the same rule along the equal-steps series (not measured without it)."""
    protocol, last = c12_protocol(settings), settings.num_layers
    if settings.recipe(SubjectRecipe).external:
        return Verdict("C12", "", f"accuracy at block {last} along the W_S series",
                       decide(None), f"the model is an external checkpoint "
                       f"({analysis_spec(settings.recipe(SubjectRecipe)).label}), which has no W_S series")
    if series == "steps" and not has_equal_steps(settings.recipe(SeriesRecipe)):
        return Verdict("C12", "", f"accuracy at block {last} along the equal-steps W_S series",
                       decide(None), "equal_steps is off: the W_S series was trained at equal "
                       "epochs only (-p equal_steps True adds the equal-steps series)")
    comparisons = ws_comparisons(results, settings, series)
    largest = f"W_S={settings.ws_list[-1]:,}"
    beats = comparisons[(comparisons["kind"] == "vs untrained") & (comparisons["model"] == largest)]
    steps = comparisons[comparisons["kind"] == "step"]
    figures = [f"{task}: " + ", ".join(f"{row.comparison} {row.gain:+.3f} {_interval(row.ci_low, row.ci_high)}"
                                       for row in rows.itertuples())
               for task, rows in comparisons.groupby("task", sort=False)]
    misses = [f"on {row.task} {largest} does not beat the untrained model ({row.gain:+.3f} "
              f"{_interval(row.ci_low, row.ci_high)})" for row in beats.itertuples() if row.ci_low <= 0]
    misses += [f"on {row.task} the step {row.against} → {row.model} falls ({row.gain:+.3f} "
               f"{_interval(row.ci_low, row.ci_high)})" for row in steps.itertuples() if row.ci_high < 0]
    if misses:
        reason = "; ".join(misses)
    else:
        reason = (f"{largest} beats the untrained model on every task (lowest CI bound "
                  f"{beats['ci_low'].min():+.3f}) and " + (
                      f"no W_S step falls significantly (steps: {', '.join(steps['direction'])})"
                      if len(steps) else "the series has one W_S, so no step is compared"))
    statistic = (f"paired bootstrap {INTERVAL_LEVEL:.0%} CIs over the test samples at block {last}: "
                 f"each W_S minus the untrained model, and each W_S step; holds if {largest} "
                 f"minus untrained lies above 0 on every task and no step's CI lies below 0 "
                 f"('more so with larger W_S' read as: never significantly less)")
    if series == "steps":
        steps_taken = planned_steps(settings.epochs, max(settings.ws_list), settings.batch_size)
        statistic += (f"; along the equal-steps series, every W_S trained for the "
                      f"{steps_taken:,} steps of {largest}")
    return Verdict("C12", f"block {last}, {PROTOCOL_NAMES[protocol]}: {'; '.join(figures)}",
                   statistic, decide(not misses), reason)


def c12_equal_steps_verdict(results: list[FinetuneResult], settings: Settings) -> Verdict:
    """The control row "C12 at equal steps": C12's rule decided along the equal-steps series,
    its reason opened by what it says beside C12 at equal epochs (data or steps?); not measured,
    with the reason, where equal_steps is off or an external checkpoint is read."""
    return equal_steps_verdict(c12_verdict(results, settings),
                               c12_verdict(results, settings, "steps"))


def ws_title(comparisons: pd.DataFrame, settings: Settings) -> str:
    """The W_S figure's title: per series, how many pre-trained models beat the untrained one and
    how many W_S steps rise (paired 95% CIs, both tasks); `ws_headline` says which."""
    parts = []
    for series, rows in comparisons.groupby("series", sort=False):
        against, steps = rows[rows["kind"] == "vs untrained"], rows[rows["kind"] == "step"]
        parts.append(f"{series}: {(against['direction'] == 'rises').sum()} of {len(against)} "
                     f"beat the untrained model, {(steps['direction'] == 'rises').sum()} of "
                     f"{len(steps)} W_S steps rise")
    return (f"Block {settings.num_layers} ({PROTOCOL_NAMES[c12_protocol(settings)]}), paired 95% "
            f"CIs over both tasks. " + "; ".join(parts))


def ws_headline(comparisons: pd.DataFrame, settings: Settings) -> str:
    """Two sentences: per task, whether each pre-trained model (of every series) beats the
    untrained one; per series and task, the direction of each W_S step (CIs)."""
    against = comparisons[comparisons["kind"] == "vs untrained"].drop_duplicates(["task", "model"])
    verbs = ("beats it", "loses to it", "does not differ significantly")
    parts = [f"{task}: " + ", ".join(
        f"{row.model} {direction(row.ci_low, row.ci_high, *verbs)} "
        f"({row.gain:+.3f} {_interval(row.ci_low, row.ci_high)})" for row in rows.itertuples())
        for task, rows in against.groupby("task", sort=False)]
    steps = [f"at {series}, " + "; ".join(
        f"{task} " + ", ".join(f"{_ws_only(row.against)} → {_ws_only(row.model)} {row.direction} "
                               f"({row.gain:+.3f} {_interval(row.ci_low, row.ci_high)})"
                               for row in task_rows.itertuples())
        for task, task_rows in rows.groupby("task", sort=False))
        for series, rows in comparisons[comparisons["kind"] == "step"].groupby("series", sort=False)]
    return (f"Against the untrained model at block {settings.num_layers} "
            f"({PROTOCOL_NAMES[c12_protocol(settings)]}): " + "; ".join(parts) + "."
            + (" Each W_S step " + "; ".join(steps) + "." if steps else ""))


def _ws_only(label: str) -> str:
    """A model label without its series ("W_S=64, equal steps" → "W_S=64")."""
    return label.removesuffix(", equal steps")


def accuracy_sentence(table: pd.DataFrame, settings: Settings) -> str:
    """One Markdown paragraph: accuracy at block 0 and at the last block per task, against chance
    and the untrained model (frozen protocol)."""
    last, model = settings.num_layers, analysis_spec(settings.recipe(SubjectRecipe)).label
    frozen = table[table["protocol"] == "frozen"].set_index(["task", "model", "block"])["accuracy"]
    said = analysis_spec(settings.recipe(SubjectRecipe)).described
    parts = []
    for title, rows in table.groupby("task", sort=False):
        chance = rows["chance"].iloc[0]
        parts.append(
            f"on {title} ({rows['test_samples'].iloc[0]:,} test samples, chance {chance:.3f}) "
            f"{said} goes from {frozen[title, model, 0]:.3f} at "
            f"block 0 to {frozen[title, model, last]:.3f} at block {last}, the untrained "
            f"one from {frozen[title, 'untrained', 0]:.3f} to {frozen[title, 'untrained', last]:.3f}")
    return "With the trunk frozen, " + "; ".join(parts) + "."


def confusion_panels(result: FinetuneResult, blocks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Label confusion counts [C, C] of a result at some blocks, titled for a figure."""
    return {f"{result.task.title}, block {b} (accuracy {result.accuracy[result.at(b)]:.2f})":
            result.confusion[result.at(b)] for b in blocks}


def confused_pairs(result: FinetuneResult, block: int, count: int = 8) -> pd.DataFrame:
    """The `count` largest off-diagonal shares of the row-normalised label confusion at a block:
    columns true label, predicted label, share (of the true label's test samples)."""
    counts = result.confusion[result.at(block)].astype(float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    np.fill_diagonal(shares, 0)
    order = np.argsort(shares, axis=None)[::-1][:count]
    names = result.task.label_names
    rows = [(names[i], names[j], shares[i, j]) for i, j in zip(*np.unravel_index(order, shares.shape))
            if shares[i, j] > 0]
    return pd.DataFrame(rows, columns=["true label", "predicted label", "share"])
