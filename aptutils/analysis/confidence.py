"""Confidence of the fine-tuned classifiers against the mean APT of their input tokens (chapter 6).

Each test sample's input APT is the mean, over its non-special input tokens, of APT(t) from the
APT table of the analysis model's last block (chapter 2's counts under `protocol`). A token that
is never a modified token in W_test has no APT: it is left out of the mean and counted, and a
sample none of whose tokens has an APT is counted and dropped. Confidence is the classifier's
maximum softmax probability.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import binned_means, spearman_ci
from ..core.params import Settings
from ..core.store import Store
from ..data.masking import special_token_ids
from ..data.pretraining import PretrainingData
from ..readout.reading import block_counts
from ..training.finetune import FinetuneResult
from ..training.pretrain import analysis_ws

GROUPS = ("all", "correct", "wrong")


def token_apt(settings: Settings, data: PretrainingData, store: Store | None = None) -> np.ndarray:
    """APT(t) at the last block of the analysis model under `protocol`; NaN where t never
    occurs as a modified token in W_test. Shape [vocab]."""
    return block_counts(settings, store=store, data=data)[settings.protocol][-1].counts.apt()


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


def confidence_frame(results: list[FinetuneResult], settings: Settings, apt: np.ndarray,
                     special_ids: list[int]) -> pd.DataFrame:
    """One row per (task, protocol, block, test sample) of the analysis model: columns task,
    protocol, block, sample, tokens, tokens_without_apt, mean_apt, confidence, correct."""
    ws = analysis_ws(settings)
    frames = []
    for result in (r for r in results if r.spec.pretrained and r.spec.ws == ws):
        inputs = input_apt(result.task.array("test_ids"), apt, special_ids)
        for row, block in enumerate(result.blocks):
            frames.append(inputs.assign(task=result.task.title, protocol=result.protocol,
                                        block=block, sample=np.arange(len(inputs)),
                                        confidence=result.confidence[row],
                                        correct=result.correct[row]))
    return pd.concat(frames, ignore_index=True)


def analysis_confidence(settings: Settings, results: list[FinetuneResult], data: PretrainingData,
                        store: Store | None = None) -> pd.DataFrame:
    """`confidence_frame` with the APT table of these settings."""
    return confidence_frame(results, settings, token_apt(settings, data, store),
                            special_token_ids(data.tokenizer))


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
            statistic = (spearman_ci(picked["mean_apt"], picked["confidence"], n_boot, seed)
                         if len(picked) >= 3 and varies else (np.nan,) * 3)
            rows.append((task, protocol, block, group, len(picked), *statistic))
    return pd.DataFrame(rows, columns=["task", "protocol", "block", "group", "n", "rho",
                                       "ci_low", "ci_high"])


def binned_confidence(frame: pd.DataFrame, protocol: str, bins: int, seed: int = 0) -> pd.DataFrame:
    """Mean confidence in equal-count bins of mean input APT (edges from all samples of a task),
    with bootstrap 95% CIs, per task, block and group: binned_means' columns plus task, block and
    group. Where every sample has the same input APT, one bin holds them all."""
    parts = []
    for (task, block), rows in frame[frame["protocol"] == protocol].groupby(["task", "block"], sort=False):
        edges = np.unique(np.quantile(group_rows(rows, "all")["mean_apt"], np.linspace(0, 1, bins + 1)))
        edges = edges if len(edges) > 1 else np.repeat(edges, 2)
        for group in GROUPS:
            picked = group_rows(rows, group)
            if len(picked):
                parts.append(binned_means(picked["mean_apt"], picked["confidence"], edges, seed=seed,
                                          log=False).assign(task=task, block=block, group=group))
    return pd.concat(parts, ignore_index=True)
