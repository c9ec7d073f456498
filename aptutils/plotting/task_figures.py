"""Figures of the fine-tuning chapters (5 and 6): accuracy along the blocks and against W_S,
label confusion, confidence against input APT; each returns its Figure. Chapter 7 draws its
label confusion here too.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.exports import export_figures
from . import heatmaps
from .figures import wrapped_suptitle


def _model_palette(models: list[str]) -> dict[str, tuple]:
    """Viridis along the W_S series, grey for the untrained model."""
    series = [m for m in models if m != "untrained"]
    colors = dict(zip(series, sns.color_palette("viridis", len(series))))
    return {**colors, "untrained": (0.55, 0.55, 0.55)}


def finetune_accuracy_figure(table: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Test accuracy against block, one panel per task, one line per model and protocol
    (solid: frozen trunk, dashed: full fine-tuning), chance dotted; `title` (computed from the
    run) above the panels. The equal-epochs series and the untrained model only: the
    equal-steps models are compared in `finetune_ws_figure`.

    table: `reports.ch5_finetuning.accuracy_table` rows.
    """
    if "series" in table:
        table = table[table["series"] != "equal steps"]
    tasks = list(dict.fromkeys(table["task"]))
    palette = _model_palette(list(dict.fromkeys(table["model"])))
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False,
                                layout="constrained")
    for axis, task in zip(axes[0], tasks):
        rows = table[table["task"] == task]
        for (model, protocol), line in rows.groupby(["model", "protocol"], sort=False):
            axis.plot(line["block"], line["accuracy"], "o-" if protocol == "frozen" else "s--",
                      color=palette[model], label=f"{model}, {protocol}")
        axis.axhline(rows["chance"].iloc[0], color="black", ls=":", lw=1, label="chance")
        axis.set(xlabel="block (0 = embeddings)", ylabel="test accuracy", title=task,
                 xticks=sorted(rows["block"].unique()))
    axes[0][-1].legend(fontsize=8, loc="best")
    wrapped_suptitle(figure, title)
    plt.close(figure)
    return figure


def finetune_ws_figure(table: pd.DataFrame, block: int, title: str | None = None) -> plt.Figure:
    """Test accuracy at one block against W_S (log axis), one panel per task, one colour per
    protocol: the W_S series at equal epochs (circles, solid) and, where the table has it, at
    equal steps (squares, dash-dotted; it ends at the largest W_S, whose model both series
    share; open squares, so a point on top of another stays visible); the untrained model as a
    thin dashed line, chance dotted; `title` (computed) above.

    table: `reports.ch5_finetuning.accuracy_table` rows (a `series` column tells the series)."""
    import textwrap

    tasks = list(dict.fromkeys(table["task"]))
    width = 5 * len(tasks)  # a long computed title gets its own height, the panels keep theirs
    title_lines = len(textwrap.wrap(title, int(width * 14))) if title else 0
    figure, axes = plt.subplots(1, len(tasks), figsize=(width, 3.8 + 0.16 * title_lines),
                                squeeze=False, layout="constrained")
    at_block = table[table["block"] == block]
    styles = {"equal epochs": dict(fmt="o-"), "equal steps": dict(fmt="s-.", mfc="white", ms=8)}
    for axis, task in zip(axes[0], tasks):
        for color, (protocol, rows) in zip(sns.color_palette(), at_block[at_block["task"] == task]
                                           .groupby("protocol", sort=False)):
            trained = rows[rows["pretrained"]].sort_values("ws")
            named = trained["series"] if "series" in trained else pd.Series("", trained.index)
            epochs = trained[named != "equal steps"]
            steps = trained[named == "equal steps"]
            if len(steps):  # the largest W_S's model closes the equal-steps series too
                steps = pd.concat([steps, epochs[epochs["ws"] == epochs["ws"].max()]])
            for series, line in (("equal epochs", epochs), ("equal steps", steps)):
                if len(line):
                    style = dict(styles[series])
                    axis.plot(line["ws"], line["accuracy"], style.pop("fmt"), color=color,
                              label=f"pre-trained, {series}, {protocol}", zorder=3, **style)
            for value in rows.loc[~rows["pretrained"], "accuracy"]:
                axis.axhline(value, color=color, ls="--", lw=1, alpha=0.7, label=f"untrained, {protocol}")
        axis.axhline(at_block.loc[at_block["task"] == task, "chance"].iloc[0], color="black",
                     ls=":", lw=1, label="chance")
        sizes = sorted(at_block.loc[at_block["pretrained"], "ws"].unique())
        axis.set(xscale="log", xlabel="W_S (pre-training samples)", ylabel=f"test accuracy at block {block}",
                 title=task)
        axis.set_xticks(sizes, [f"{ws:,}" for ws in sizes])
        axis.xaxis.set_minor_locator(plt.NullLocator())
    axes[0][-1].legend(fontsize=8)
    wrapped_suptitle(figure, title)
    plt.close(figure)
    return figure


def label_confusion_figure(confusions: dict[str, np.ndarray], label_names: list[str]) -> plt.Figure:
    """Row-normalised label confusion matrices side by side (each row: where the test samples of
    one true label went). confusions: panel title -> counts [C, C]."""
    figure, axes = plt.subplots(1, len(confusions), figsize=(5.2 * len(confusions), 5), squeeze=False,
                                layout="constrained")
    show_names = len(label_names) <= 20
    for index, (axis, (title, counts)) in enumerate(zip(axes[0], confusions.items())):
        shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        heatmaps.heatmap(axis, shares, label_names if show_names else None,
                         label_names if show_names and index == 0 else None)
        axis.set(title=title, xlabel="predicted label", ylabel="true label" if index == 0 else "")
    heatmaps.colorbar(figure, axes, "share of the true label's test samples")
    plt.close(figure)
    return figure


def confidence_binned_figure(binned: pd.DataFrame, blocks: tuple[int, ...]) -> plt.Figure:
    """Mean confidence (95% CI) in bins of mean input APT: one row of panels per block, one column
    per task, one line per group (all / correct / wrong). binned: `confidence.binned_confidence`."""
    tasks = list(dict.fromkeys(binned["task"])) or ["no input APT"]
    figure, axes = plt.subplots(len(blocks), len(tasks), figsize=(5.5 * len(tasks), 3.6 * len(blocks)),
                                squeeze=False, sharey=True, layout="constrained")
    colors = {"all": "black", "correct": "C2", "wrong": "C3"}
    for row, block in enumerate(blocks):
        for axis, task in zip(axes[row], tasks):
            rows = binned[(binned["task"] == task) & (binned["block"] == block)]
            for group, line in rows.groupby("group", sort=False):
                axis.errorbar(line["x_center"], line["mean"],
                              yerr=[line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]],
                              fmt="o-", capsize=3, color=colors[group], label=group)
            axis.set(xlabel="mean input APT", title=f"{task}, block {block}")
        axes[row][0].set_ylabel("max-softmax confidence")
    if len(binned):
        axes[0][-1].legend(fontsize=8)
    plt.close(figure)
    return figure


def confidence_correlation_figure(correlations: pd.DataFrame, bound: float,
                                  title: str | None = None) -> plt.Figure:
    """Spearman rho(confidence, mean input APT) with 95% CI against block, one panel per task and
    protocol, one line per group; the band +-bound shaded; `title` (computed) above the panels."""
    panels = list(correlations.groupby(["task", "protocol"], sort=False))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False,
                                sharey=True, layout="constrained")
    colors = {"all": "black", "correct": "C2", "wrong": "C3"}
    for axis, ((task, protocol), rows) in zip(axes[0], panels):
        axis.axhspan(-bound, bound, color="C0", alpha=0.12, label=f"|ρ| ≤ {bound:g}")
        for offset, (group, line) in zip((-0.1, 0, 0.1), rows.groupby("group", sort=False)):
            axis.errorbar(line["block"] + offset, line["rho"],
                          yerr=[line["rho"] - line["ci_low"], line["ci_high"] - line["rho"]],
                          fmt="o-", capsize=2, color=colors[group], label=group)
        axis.axhline(0, color="black", lw=0.8)
        axis.set(xlabel="block", title=f"{task}, {protocol}", xticks=sorted(rows["block"].unique()))
    axes[0][0].set_ylabel("Spearman ρ (confidence, input APT)")
    axes[0][-1].legend(fontsize=8)
    wrapped_suptitle(figure, title)
    plt.close(figure)
    return figure


export_figures(globals())  # every figure is saved into the chapter's exports (core.exports)
