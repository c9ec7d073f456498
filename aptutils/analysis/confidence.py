"""Confidence of the fine-tuned classifiers against the mean APT of their input tokens (chapter 6),
and the checks that make "does not depend" mean something.

Each test sample's input APT is the mean, over its non-special input tokens, of APT(t) at the
analysis model's last block: chapter 2's counts under `protocol`, on its reading (`kinds`) and
with its `token_min_occurrences`. A token with fewer positions of the reading has no APT: it is
left out of the mean and counted, and a sample none of whose tokens has an APT is counted and
dropped. Confidence is the classifier's maximum softmax probability.

Input APT rests on few occurrences per token, so it may be mostly noise, and noise is independent
of anything. Two checks: the *split-half reliability* (each token's occurrences split at random
into two halves, from the counts alone; the Spearman correlation over the test inputs of their
two half-means, Spearman-Brown corrected, averaged over splits) and a *positive control* (a
"confidence" that is the input APT of one half, read against the other half's input APT: it
depends on input APT completely, so C9's rule must call it dependent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.apt import NO_INTERVAL, binned_means, spearman_ci, spearman_rho
from ..core.counts import TokenCounts
from ..core.kinds import Kinds, kind_rows
from ..training.finetune import FinetuneResult

GROUPS = ("all", "correct", "wrong")
SPLITS = 20  # random splits averaged in the split-half reliability


@dataclass(frozen=True)
class TokenOccurrences:
    """W_test counts of one reading: correct, total [R, V] (the R kinds of the reading), and the
    fewest occurrences (summed over the kinds) for a token to have an APT."""

    correct: np.ndarray
    total: np.ndarray
    min_occurrences: int

    @classmethod
    def of(cls, counts: TokenCounts, kinds: Kinds, min_occurrences: int) -> "TokenOccurrences":
        rows = kind_rows(kinds)
        return cls(counts.correct[rows], counts.total[rows], max(1, min_occurrences))

    @property
    def occurrences(self) -> np.ndarray:
        """Modified W_test positions of each token, [V]."""
        return self.total.sum(0)

    @property
    def eligible(self) -> np.ndarray:
        """Tokens with at least `min_occurrences` positions, bool [V]."""
        return self.occurrences >= self.min_occurrences

    def apt(self) -> np.ndarray:
        """APT(t) of the eligible tokens, NaN elsewhere, [V]."""
        return _ratio(self.correct.sum(0), self.occurrences, self.eligible)

    def split_halves(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """APT [V] of every eligible token on two disjoint random halves of its occurrences.

        Per kind, n occurrences split into n // 2 (plus one, on a fair coin, when n is odd) and
        the rest; the correct ones among the first part are drawn hypergeometrically, which is
        exactly a random split of the occurrences, from the counts alone. NaN where a token is
        not eligible or its half is empty."""
        first = self.total // 2 + ((self.total % 2 == 1) & (rng.random(self.total.shape) < 0.5))
        correct_first = rng.hypergeometric(self.correct, self.total - self.correct, first)
        halves = ((correct_first, first), (self.correct - correct_first, self.total - first))
        return tuple(_ratio(c.sum(0), n.sum(0), self.eligible) for c, n in halves)


def _ratio(correct: np.ndarray, total: np.ndarray, keep: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep & (total > 0), correct / np.maximum(total, 1), np.nan)


def mean_input_apt(ids: np.ndarray, apt: np.ndarray, special_ids: list[int]) -> np.ndarray:
    """Mean APT [N] over the non-special tokens of ids [N, L] that have one (NaN if none has)."""
    return input_apt(ids, apt, special_ids)["mean_apt"].to_numpy()


def input_apt(ids: np.ndarray, apt: np.ndarray, special_ids: list[int]) -> pd.DataFrame:
    """Per sample of ids [N, L]: tokens (non-special), tokens_without_apt, and mean_apt over the
    tokens that have an APT (NaN when none has)."""
    ids = np.asarray(ids)
    counted = ~np.isin(ids, special_ids)
    values = apt[ids]
    has_apt = counted & np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has_apt, values, 0).sum(1) / has_apt.sum(1)
    return pd.DataFrame({"tokens": counted.sum(1), "tokens_without_apt": (counted & ~has_apt).sum(1),
                         "mean_apt": np.where(has_apt.any(1), mean, np.nan)})


def spearman_brown(r: float) -> float:
    """Reliability of the whole from the correlation r of two halves: 2r / (1 + r)."""
    return 2 * r / (1 + r) if np.isfinite(r) and r > -1 else float("nan")


def input_apt_reliability(ids: np.ndarray, occurrences: TokenOccurrences, special_ids: list[int],
                          splits: int = SPLITS, n_boot: int = 1000, seed: int = 0) -> dict:
    """How much of the inputs' mean APT (ids [N, L]) is signal rather than occurrence noise.

    Returns inputs (with an APT token), tokens_with_apt and median_occurrences (over the
    inputs' non-special tokens, repeats counted), split_half_r (Spearman over the inputs of the
    two halves' mean APT, averaged over `splits` random splits), reliability (Spearman-Brown of
    it), and the positive control of the first split: control_rho, control_low, control_high
    (Spearman rho and bootstrap 95% CI of half A's mean input APT, as a confidence, against half
    B's)."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(ids)
    counted = ids[~np.isin(ids, special_ids)]
    full = mean_input_apt(ids, occurrences.apt(), special_ids)
    correlations, control = [], NO_INTERVAL
    for split in range(splits):
        apt_a, apt_b = occurrences.split_halves(rng)
        mean_a, mean_b = mean_input_apt(ids, apt_a, special_ids), mean_input_apt(ids, apt_b, special_ids)
        correlations.append(spearman_rho(mean_a, mean_b))
        if split == 0 and np.isfinite(correlations[0]):
            control = spearman_ci(mean_a, mean_b, n_boot, seed)
    r = float(np.nanmean(correlations)) if np.isfinite(correlations).any() else float("nan")
    return {"inputs": int(np.isfinite(full).sum()),
            "tokens_with_apt": int(occurrences.eligible[np.unique(counted)].sum()),
            "median_occurrences": float(np.median(occurrences.occurrences[counted])) if counted.size
            else float("nan"),
            "split_half_r": r, "reliability": spearman_brown(r), "control_rho": control.estimate,
            "control_low": control.low, "control_high": control.high}


def reliability_table(results: list[FinetuneResult], ws: int, occurrences: TokenOccurrences,
                      special_ids: list[int], seed: int = 0) -> pd.DataFrame:
    """`input_apt_reliability` of each task's test inputs (the classifiers of the model of W_S
    `ws`), indexed by task title."""
    tasks = {r.task.title: r.task for r in results if r.spec.pretrained and r.spec.series == "epochs"
             and r.spec.ws == ws}
    rows = {title: input_apt_reliability(task.array("test_ids"), occurrences, special_ids,
                                         seed=seed) for title, task in tasks.items()}
    table = pd.DataFrame.from_dict(rows, orient="index").astype(
        {"inputs": int, "tokens_with_apt": int})
    table.index.name = "task"
    return table


def confidence_frame(results: list[FinetuneResult], ws: int, apt: np.ndarray,
                     special_ids: list[int]) -> pd.DataFrame:
    """One row per (task, protocol, block, test sample) of the model of W_S `ws`: columns task,
    protocol, block, sample, tokens, tokens_without_apt, mean_apt, confidence, correct."""
    frames = []
    for result in (r for r in results if r.spec.pretrained and r.spec.series == "epochs" and r.spec.ws == ws):
        inputs = input_apt(result.task.array("test_ids"), apt, special_ids)
        for row, block in enumerate(result.blocks):
            frames.append(inputs.assign(task=result.task.title, protocol=result.protocol,
                                        block=block, sample=np.arange(len(inputs)),
                                        confidence=result.confidence[row],
                                        correct=result.correct[row]))
    return pd.concat(frames, ignore_index=True)


def coverage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task: test samples, input tokens, tokens without an APT (count and share), and samples
    without any APT token (dropped from the statistics)."""
    first = frame[frame["block"] == frame["block"].min()].drop_duplicates(["task", "sample"])
    table = first.groupby("task", sort=False).agg(
        test_samples=("sample", "size"), input_tokens=("tokens", "sum"),
        tokens_without_apt=("tokens_without_apt", "sum"),
        samples_dropped=("mean_apt", lambda apt: int(apt.isna().sum())))
    table.insert(3, "share_without_apt", table["tokens_without_apt"] / table["input_tokens"])
    return table


def group_rows(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """All rows, or those predicted right / wrong, with a mean input APT."""
    usable = frame[frame["mean_apt"].notna()]
    return usable if group == "all" else usable[usable["correct"] == (group == "correct")]


def correlation_table(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Spearman rho(confidence, mean input APT) with its bootstrap 95% CI, per task, protocol,
    block and group (all / correct / wrong); NaN where a group has fewer than 3 samples or
    either variable is constant.
    Columns: task, protocol, block, group, n, rho, ci_low, ci_high."""
    rows = []
    for (task, protocol, block), rows_of_block in frame.groupby(["task", "protocol", "block"], sort=False):
        for group in GROUPS:
            picked = group_rows(rows_of_block, group)
            varies = picked["mean_apt"].nunique() > 1 and picked["confidence"].nunique() > 1
            ci = (spearman_ci(picked["mean_apt"], picked["confidence"], n_boot, seed)
                  if len(picked) >= 3 and varies else NO_INTERVAL)
            rows.append((task, protocol, block, group, len(picked), ci.estimate, ci.low, ci.high))
    return pd.DataFrame(rows, columns=["task", "protocol", "block", "group", "n", "rho",
                                       "ci_low", "ci_high"])


def binned_confidence(frame: pd.DataFrame, protocol: str, bins: int, seed: int = 0) -> pd.DataFrame:
    """Mean confidence in equal-count bins of mean input APT (edges from all samples of a task),
    with bootstrap 95% CIs, per task, block and group: binned_means' columns plus task, block and
    group. Where every sample has the same input APT, one bin holds them all; a task and block
    without any input APT gives no rows."""
    parts = []
    for (task, block), rows in frame[frame["protocol"] == protocol].groupby(["task", "block"], sort=False):
        if group_rows(rows, "all").empty:
            continue
        edges = np.unique(np.quantile(group_rows(rows, "all")["mean_apt"], np.linspace(0, 1, bins + 1)))
        edges = edges if len(edges) > 1 else np.repeat(edges, 2)
        for group in GROUPS:
            picked = group_rows(rows, group)
            if len(picked):
                parts.append(binned_means(picked["mean_apt"], picked["confidence"], edges, seed=seed,
                                          log=False).assign(task=task, block=block, group=group))
    columns = ["x_low", "x_high", "x_center", "n", "mean", "ci_low", "ci_high", "task", "block", "group"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
