"""Tables, sentences and the verdicts C8 and C12 of chapter 5 (per-block fine-tuning)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import CONFIDENCE
from ..core.params import Settings
from ..core.verdicts import Verdict, decide
from ..data.tasks import SUBSET_NOTES, TASK_TITLES, TASKS, Task
from ..training.finetune import PROTOCOL_NAMES, FinetuneResult
from ..training.pretrain import analysis_ws


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
            f"inputs cut to seq_len={settings.seq_len}": info["truncated"],
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
    """One Markdown paragraph: a FewRel test input with its entity markers, and its tokens."""
    text = tasks["few_rel"].info["example"]
    pieces = " · ".join(f"`{piece}`" for piece in tokenizer.tokenize(text))
    return f"A FewRel test input: *{text}*\n\nIn the book's tokenizer: {pieces}"


def accuracy_table(results: list[FinetuneResult]) -> pd.DataFrame:
    """One row per (task, model, protocol, block): columns task, model, ws, pretrained,
    protocol, block, accuracy, test_samples, chance (1 / labels)."""
    rows = [(r.task.title, r.spec.label, r.spec.ws, r.spec.pretrained, r.protocol, block,
             float(r.accuracy[i]), len(r.labels), 1 / len(r.task.label_names))
            for r in results for i, block in enumerate(r.blocks)]
    return pd.DataFrame(rows, columns=["task", "model", "ws", "pretrained", "protocol", "block",
                                       "accuracy", "test_samples", "chance"])


def accuracy_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy with one row per (task, protocol, model) and one column per block."""
    ordered = table.assign(model=pd.Categorical(table["model"], dict.fromkeys(table["model"])))
    return ordered.pivot_table(index=["task", "protocol", "model"], columns="block",
                               values="accuracy", observed=True)


def find_result(results: list[FinetuneResult], task: str, protocol: str, ws: int,
                pretrained: bool = True) -> FinetuneResult:
    """The result of one task, protocol and model."""
    return next(r for r in results if r.task.name == task and r.protocol == protocol
                and r.spec.ws == ws and r.spec.pretrained == pretrained)


def paired_gain_ci(correct_after: np.ndarray, correct_before: np.ndarray, n_boot: int = 1000,
                   seed: int = 0) -> tuple[float, float, float]:
    """Accuracy gain mean(after) - mean(before) over the same test samples (bool [N] each), with
    a percentile bootstrap 95% CI (samples resampled in pairs). Returns (gain, low, high)."""
    difference = correct_after.astype(float) - correct_before.astype(float)
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), (n_boot, len(difference)))].mean(1)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(difference.mean()), float(low), float(high)


def _interval(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def c8_verdict(results: list[FinetuneResult], settings: Settings) -> Verdict:
    """C8: accuracy at the last block above block 0 for every task (frozen protocol, the
    analysis model), decided by the paired bootstrap CI of the gain."""
    ws, last = analysis_ws(settings), settings.num_layers
    figures, intervals, rises = [], [], []
    for name in TASKS:
        result = find_result(results, name, "frozen", ws)
        first, final = result.correct[result.at(0)], result.correct[result.at(last)]
        _, low, high = paired_gain_ci(final, first, seed=settings.seed)
        figures.append(f"{TASK_TITLES[name]} {first.mean():.3f} → {final.mean():.3f}")
        intervals.append(f"{TASK_TITLES[name]} {_interval(low, high)}")
        rises.append(low > 0)
    return Verdict("C8", f"{'; '.join(figures)} (block 0 → {last}, W_S={ws:,}, frozen trunk)",
                   f"paired bootstrap {CONFIDENCE:.0%} CI of acc(block {last}) − acc(block 0): "
                   f"{'; '.join(intervals)}; holds if every CI lies above 0", decide(all(rises)))


def c12_protocol(settings: Settings) -> str:
    """full where the whole model was fully fine-tuned (the predecessor's protocol), else frozen."""
    full = "full" in settings.finetune_protocols and settings.num_layers in settings.finetune_full_blocks
    return "full" if full else "frozen"


def c12_verdict(results: list[FinetuneResult], settings: Settings) -> Verdict:
    """C12 at the last block, for every task, by paired bootstrap CIs of accuracy differences:
    the largest W_S beats the untrained model and the smallest W_S, and no step along the W_S
    series loses accuracy (no step's CI lies below 0)."""
    protocol, last = c12_protocol(settings), settings.num_layers
    figures, beats, steps, holds = [], [], [], []
    for name in TASKS:
        untrained = find_result(results, name, protocol, analysis_ws(settings), pretrained=False)
        series = [find_result(results, name, protocol, ws) for ws in settings.ws_list]
        correct = {r.spec.label: r.correct[r.at(last)] for r in [untrained, *series]}
        figures.append(f"{TASK_TITLES[name]}: " + ", ".join(f"{label} {c.mean():.3f}"
                                                          for label, c in correct.items()))
        labels = [r.spec.label for r in series]
        for other in [untrained.spec.label] + labels[:1] * (len(labels) > 1):
            _, low, high = paired_gain_ci(correct[labels[-1]], correct[other], seed=settings.seed)
            beats.append(f"{TASK_TITLES[name]} vs {other} {_interval(low, high)}")
            holds.append(low > 0)
        for smaller, larger in zip(labels, labels[1:]):
            _, low, high = paired_gain_ci(correct[larger], correct[smaller], seed=settings.seed)
            steps.append(f"{TASK_TITLES[name]} {smaller} to {larger} {_interval(low, high)}")
            holds.append(high > 0)
    return Verdict("C12", f"block {last}, {PROTOCOL_NAMES[protocol]}: {'; '.join(figures)}",
                   f"paired bootstrap {CONFIDENCE:.0%} CIs at block {last} of acc(W_S="
                   f"{settings.ws_list[-1]:,}) minus another model's: {'; '.join(beats)}; of each "
                   f"step along the W_S series: {'; '.join(steps) or 'one W_S only, not measured'}; "
                   f"holds if the first CIs lie above 0 and no step's CI lies below 0",
                   decide(all(holds)))


def accuracy_sentence(table: pd.DataFrame, settings: Settings) -> str:
    """One Markdown paragraph: accuracy at block 0 and at the last block per task, against chance
    and the untrained model (frozen protocol)."""
    ws, last = analysis_ws(settings), settings.num_layers
    frozen = table[table["protocol"] == "frozen"].set_index(["task", "model", "block"])["accuracy"]
    parts = []
    for title, rows in table.groupby("task", sort=False):
        chance = rows["chance"].iloc[0]
        parts.append(
            f"on {title} ({rows['test_samples'].iloc[0]:,} test samples, chance {chance:.3f}) the "
            f"model pre-trained on W_S={ws:,} goes from {frozen[title, f'W_S={ws:,}', 0]:.3f} at "
            f"block 0 to {frozen[title, f'W_S={ws:,}', last]:.3f} at block {last}, the untrained "
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
