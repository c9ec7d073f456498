"""Figures shared by the chapters (matplotlib + seaborn); each returns its Figure.

Used by chapter 1 (frequency distribution, training curves) and the later chapters.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


def rank_frequency_figure(counts: np.ndarray, title: str = "Token frequencies") -> plt.Figure:
    """Zipf plot: occurrences of each token against its frequency rank, both axes logarithmic.

    counts: [vocab] occurrences per token id (zeros are left out).
    """
    ranked = np.sort(counts[counts > 0])[::-1]
    figure, axes = plt.subplots(figsize=(5.5, 4))
    axes.loglog(np.arange(1, len(ranked) + 1), ranked, lw=1.5)
    axes.set(xlabel="frequency rank", ylabel="occurrences in the pre-training pool", title=title)
    plt.close(figure)
    return figure


def training_curves_figure(logs: dict[int, pd.DataFrame]) -> plt.Figure:
    """Training loss and held-out MLM accuracy against step, one line per W_S.

    logs: W_S -> a model's log (columns step, loss, eval_accuracy).
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    palette = sns.color_palette("viridis", len(logs))
    for color, (ws, log) in zip(palette, sorted(logs.items())):
        train = log.dropna(subset=["loss"])
        held = log.dropna(subset=["eval_accuracy"])
        left.plot(train["step"], train["loss"], color=color, label=f"W_S = {ws:,}")
        right.plot(held["step"], held["eval_accuracy"], "o-", color=color, label=f"W_S = {ws:,}")
    left.set(xlabel="step", ylabel="training MLM loss (nats)", title="Training loss")
    right.set(xlabel="step", ylabel="held-out MLM accuracy (token-weighted)",
              title="Held-out accuracy on W_test")
    left.legend()
    plt.close(figure)
    return figure


def apt_vs_frequency_figure(table: pd.DataFrame, binned: dict[str, pd.DataFrame]) -> plt.Figure:
    """Fig. 1: APT(t) against W_S frequency, one panel per kind (all kinds first).

    table: `apt.apt_table` rows; binned: column name -> `apt.binned_means` of that column.
    Tokens absent from W_S (frequency 0) cannot sit on a log axis and are left out.
    """
    figure, axes = plt.subplots(1, len(binned), figsize=(4 * len(binned), 3.6), sharey=True)
    for axis, (column, bins) in zip(np.atleast_1d(axes), binned.items()):
        seen = table[(table["frequency"] > 0) & table[column].notna()]
        axis.scatter(seen["frequency"], seen[column], s=4, alpha=0.25, color="grey", lw=0)
        axis.errorbar(bins["x_center"], bins["mean"],
                      yerr=[bins["mean"] - bins["ci_low"], bins["ci_high"] - bins["mean"]],
                      fmt="o-", color="C3", capsize=3, label="log-binned mean, 95% CI")
        axis.set(xscale="log", xlabel="frequency in W_S", title=column.replace("_", " "))
    np.atleast_1d(axes)[0].set_ylabel("APT(t)")
    np.atleast_1d(axes)[0].legend(loc="upper left")
    plt.close(figure)
    return figure


def metric_by_ws_figure(curves: dict[str, dict[int, float]], ylabel: str, title: str) -> plt.Figure:
    """Fig. 2: a metric of each model against its pre-training set size W_S (log axis)."""
    figure, axes = plt.subplots(figsize=(5.5, 4))
    for name, values in curves.items():
        sizes = sorted(values)
        axes.plot(sizes, [values[ws] for ws in sizes], "o-", label=name)
    axes.set(xscale="log", xlabel="W_S (pre-training samples)", ylabel=ylabel, title=title)
    axes.legend()
    plt.close(figure)
    return figure


def confusion_heatmaps_figure(matrices: dict[str, pd.DataFrame]) -> plt.Figure:
    """Normalised confusion matrices side by side, same tokens in the same order in each panel."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 5.2))
    for axis, (title, matrix) in zip(np.atleast_1d(axes), matrices.items()):
        if matrix.empty:
            axis.text(0.5, 0.5, "no clustered tokens", ha="center", transform=axis.transAxes)
            axis.set(title=title, xticks=[], yticks=[])
            continue
        sns.heatmap(matrix, ax=axis, vmin=0, vmax=1, cmap="mako_r", square=True, cbar=False,
                    xticklabels=True, yticklabels=True)
        axis.tick_params(labelsize=5)
        axis.set(title=title, xlabel="predicted token", ylabel="true token")
    plt.close(figure)
    return figure


def threshold_scan_figure(scans: dict[str, pd.DataFrame]) -> plt.Figure:
    """Clusters of size >= 2 and the largest cluster's share of kept tokens against the threshold."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, scan in scans.items():
        left.plot(scan["threshold"], scan["clusters"], "o-", label=name)
        right.plot(scan["threshold"], scan["largest_share"], "o-", label=name)
    left.set(xlabel="strong-match threshold", ylabel="clusters (size >= 2)", title="How many clusters")
    right.set(xlabel="strong-match threshold", ylabel="largest cluster / kept tokens",
              title="Is there a giant component?", yscale="log")
    left.legend()
    plt.close(figure)
    return figure
