"""Figures shared by the chapters (matplotlib + seaborn); each returns its Figure.

Used by chapter 1 (frequency distribution, the plateau) and the later chapters.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.exports import export_figures
from . import heatmaps

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


def plateau_figure(logs: dict[int, pd.DataFrame], baselines: dict[str, float],
                   control: dict[int, pd.DataFrame] | None = None,
                   control_name: str = "equal steps") -> plt.Figure:
    """The unigram plateau: held-out loss, masked accuracy and accuracy over all modified positions
    against step, one line per W_S, with the trivial rules drawn as dashed black lines.

    logs: W_S -> a model's log (columns step, eval_loss, eval_masked_accuracy, eval_accuracy);
    control: the same for a control series (e.g. equal steps), drawn dotted in its W_S's colour
    (a W_S whose model is also in `logs` is drawn once); baselines: "unigram loss", "most
    frequent token (masked)", "copy, else most frequent (all)".
    """
    panels = (("eval_loss", "held-out MLM loss (nats)", "Loss", "unigram loss"),
              ("eval_masked_accuracy", "accuracy on masked positions", "Masked positions",
               "most frequent token (masked)"),
              ("eval_accuracy", "accuracy on all modified positions", "All modified positions",
               "copy, else most frequent (all)"))
    sizes = sorted(set(logs) | set(control or {}))
    colors = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    lines = [(f"W_S = {ws:,}", "o-", colors[ws], log) for ws, log in sorted(logs.items())]
    lines += [(f"W_S = {ws:,}, {control_name}", "x:", colors[ws], log)
              for ws, log in sorted((control or {}).items())
              if not (ws in logs and log.equals(logs[ws]))]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for axis, (column, ylabel, title, rule) in zip(axes, panels):
        for label, style, color, log in lines:
            if column in log:
                held = log.dropna(subset=[column])
                axis.plot(held["step"], held[column], style, ms=3, color=color, label=label)
        axis.axhline(baselines[rule], color="black", ls="--", lw=1, label=rule)
        axis.set(xlabel="step", ylabel=ylabel, title=title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    plt.close(figure)
    return figure


def apt_vs_frequency_figure(table: pd.DataFrame, binned: dict[str, pd.DataFrame],
                            titles: dict[str, str] | None = None,
                            title: str | None = None) -> plt.Figure:
    """Fig. 1: APT(t) against W_S frequency, one panel per reading (the chapter's first).

    table: `apt.apt_table` rows; binned: column name -> `apt.binned_means` of that column;
    titles: column -> panel title (default: the column name); title: over all panels.
    Tokens absent from W_S (frequency 0) cannot sit on a log axis and are left out.
    """
    titles = titles or {}
    figure, axes = plt.subplots(1, len(binned), figsize=(4 * len(binned), 3.6), sharey=True)
    for axis, (column, bins) in zip(np.atleast_1d(axes), binned.items()):
        seen = table[(table["frequency"] > 0) & table[column].notna()]
        axis.scatter(seen["frequency"], seen[column], s=4, alpha=0.25, color="grey", lw=0)
        axis.errorbar(bins["x_center"], bins["mean"],
                      yerr=[bins["mean"] - bins["ci_low"], bins["ci_high"] - bins["mean"]],
                      fmt="o-", color="C3", capsize=3, label="log-binned mean, 95% CI")
        axis.set(xscale="log", xlabel="frequency in W_S",
                 title=titles.get(column, column.replace("_", " ")))
    np.atleast_1d(axes)[0].set_ylabel("APT(t)")
    np.atleast_1d(axes)[0].legend(loc="upper left")
    if title:
        wrapped_suptitle(figure, title)
        figure.tight_layout(rect=(0, 0, 1, 0.92))
    plt.close(figure)
    return figure


def metric_by_ws_figure(curves: dict[str, dict[int, float]], ylabel: str, title: str,
                        intervals: dict[str, dict[int, tuple[float, float]]] | None = None,
                        dashed: dict[str, float] | None = None) -> plt.Figure:
    """Fig. 2: a metric of each model against its pre-training set size W_S (log axis).

    intervals: curve name -> {W_S: (low, high)} drawn as error bars; dashed: name -> a baseline
    drawn as a dashed horizontal line. A long title wraps.
    """
    from textwrap import fill

    figure, axes = plt.subplots(figsize=(8.5, 4) if len(curves) + len(dashed or {}) > 4 else (5.5, 4))
    for name, values in curves.items():
        sizes = sorted(values)
        line = [values[ws] for ws in sizes]
        bounds = (intervals or {}).get(name)
        if bounds:
            axes.errorbar(sizes, line, yerr=[[v - bounds[ws][0] for ws, v in zip(sizes, line)],
                                             [bounds[ws][1] - v for ws, v in zip(sizes, line)]],
                          fmt="o-", capsize=3, label=name)
        else:
            axes.plot(sizes, line, "o-", label=name)
    for index, (name, value) in enumerate((dashed or {}).items(), start=len(curves)):
        axes.axhline(value, ls="--", lw=1, color=f"C{index % 10}", label=name)
    axes.set(xscale="log" if any(curves.values()) else "linear",  # no series: the rules alone
             xlabel="W_S (pre-training samples)", ylabel=ylabel, title=fill(title, 60))
    if len(curves) + len(dashed or {}) > 4:  # many lines: the legend beside the axes, not on them
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
        figure.tight_layout()
    else:
        axes.legend()
    plt.close(figure)
    return figure


def confusion_heatmaps_figure(matrices: dict[str, pd.DataFrame]) -> plt.Figure:
    """Normalised confusion matrices side by side, same tokens in the same order in each panel;
    an empty matrix is refused (the chapter says in a sentence why there is nothing to draw)."""
    if any(matrix.empty for matrix in matrices.values()):
        raise ValueError("a confusion panel without tokens: say why instead of drawing it")
    side = max(5.2, 0.2 * max(len(m) for m in matrices.values()) + 1.5)  # every label fits
    figure, axes = plt.subplots(1, len(matrices), figsize=((side + 0.4) * len(matrices), side),
                                layout="constrained")
    for axis, (title, matrix) in zip(np.atleast_1d(axes), matrices.items()):
        heatmaps.heatmap(axis, matrix)
        axis.set(title=title, xlabel="predicted token", ylabel="true token")
    heatmaps.colorbar(figure, axes, "share of the true token's predictions")
    plt.close(figure)
    return figure


def threshold_scan_figure(scans: dict[str, pd.DataFrame]) -> plt.Figure:
    """Per rule (one line each, `clusters.threshold_scan` tables): clusters of size >= 2, the
    largest cluster (tokens, log axis) and the tokens kept by the filter, against the threshold."""
    panels = (("clusters", "clusters (size >= 2)", "How many clusters"),
              ("largest", "largest cluster (tokens)", "Is there a giant component?"),
              ("kept_tokens", "tokens past the filter", "What the filter keeps"))
    figure, axes = plt.subplots(1, len(panels), figsize=(14, 3.8), layout="constrained")
    for axis, (column, ylabel, title) in zip(axes, panels):
        for name, scan in scans.items():
            axis.plot(scan["threshold"], scan[column], "o-", label=name)
        axis.set(xlabel="strong-match threshold", ylabel=ylabel, title=title)
    axes[1].set_yscale("symlog", linthresh=1)
    axes[0].legend(fontsize=8)
    plt.close(figure)
    return figure


def wrapped_suptitle(figure: plt.Figure, title: str | None) -> None:
    """A computed title above a figure's panels, wrapped to the figure's width."""
    if title:
        import textwrap

        width = int(figure.get_figwidth() * 14)
        figure.suptitle("\n".join(textwrap.wrap(title, width)), fontsize=9)


def _depth_axis_label(curves) -> str:
    """The index names of the curves (e.g. "layer / block"), else "depth"."""
    names = dict.fromkeys(str(c.index.name) for c in curves if c.index.name is not None)
    return " / ".join(names) or "depth"


def metric_by_depth_figure(curves: dict[str, pd.Series], ylabel: str, title: str,
                           dashed: dict[str, pd.Series | float] | None = None,
                           bands: dict[str, tuple[pd.Series, pd.Series]] | None = None
                           ) -> plt.Figure:
    """One line per named curve against depth.

    curves: name -> Series indexed by layer or block index (its index name labels the x axis).
    dashed: baselines, name -> a Series (a dashed curve) or a number (a dashed horizontal line);
    bands: curve name -> (low, high) Series shaded around that curve.
    Non-finite values (an SNR with no noise) are left out; a long title wraps.
    """
    from textwrap import fill

    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        values = curve.to_numpy(dtype=float)
        line, = axes.plot(curve.index, np.where(np.isfinite(values), values, np.nan), "o-",
                          label=name)
        if name in (bands or {}):
            low, high = bands[name]
            axes.fill_between(low.index, low.to_numpy(dtype=float), high.to_numpy(dtype=float),
                              color=line.get_color(), alpha=0.2, lw=0)
    for index, (name, baseline) in enumerate((dashed or {}).items(), start=len(curves)):
        if isinstance(baseline, pd.Series):
            axes.plot(baseline.index, baseline.to_numpy(dtype=float), "x--", lw=1, label=name,
                      color=f"C{index % 10}")
        else:
            axes.axhline(baseline, ls="--", lw=1, color=f"C{index % 10}", label=name)
    axes.set(xlabel=_depth_axis_label(curves.values()), ylabel=ylabel, title=fill(title, 60))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if curves:
        axes.legend()
    plt.close(figure)
    return figure


def cluster_sizes_by_depth_figure(sizes_by_depth: dict[int, np.ndarray], title: str,
                                  min_size: int = 2) -> plt.Figure:
    """Cluster sizes at each depth: one dot per (depth, size), its area the share of that depth's
    clusters with that size, and the mean size as a line.

    sizes_by_depth: layer or block index -> sizes [clusters]; sizes below min_size (default 2:
    singletons) are left out. The size axis turns logarithmic when the largest size exceeds
    50 x min_size.
    """
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6, 4))
    means, largest = {}, 0
    for depth, sizes in sorted(sizes_by_depth.items()):
        shown = np.asarray(sizes)[np.asarray(sizes) >= min_size]
        if not len(shown):
            continue
        values, counts = np.unique(shown, return_counts=True)
        axes.scatter(np.full(len(values), depth), values, s=600 * counts / counts.sum(),
                     color="C0", alpha=0.45, lw=0)
        means[depth], largest = shown.mean(), max(largest, values[-1])
    axes.plot(list(means), list(means.values()), "o-", color="C3", label="mean size")
    if largest > 50 * max(min_size, 1):
        axes.set_yscale("log")
    else:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="depth (layer or block index)", ylabel=f"cluster size (>= {min_size})",
             title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not means:
        axes.text(0.5, 0.5, "no clusters to show", ha="center", transform=axes.transAxes)
    else:
        axes.legend(title="dot area: share of clusters")
    plt.close(figure)
    return figure


READER_LOSSES = {"probe": "held-out cross-entropy (nats)",
                 "tuned-lens": "held-out KL(p_last || p_b) (nats)"}


def reader_training_figure(records: dict[str, dict]) -> plt.Figure:
    """The trained readers' held-out curves (chapter 2): one panel per reader, one line per block
    (held-out loss against training step), a dot where each block's kept state was evaluated and
    a cross where it stopped.

    records: reader name -> its training record (`readout.reading.reader_training`), whose
    "curves" hold steps [E], held_out [E][blocks] (None once a block stopped), best_step and
    stop_step [blocks].
    """
    figure, axes = plt.subplots(1, len(records), figsize=(6 * len(records), 4), squeeze=False)
    blocks = max(len(record["curves"]["best_step"]) for record in records.values())
    palette = sns.color_palette("viridis", blocks)  # block b has one colour in every panel
    for axis, (name, record) in zip(axes[0], records.items()):
        curves = record["curves"]
        held = np.array([[np.nan if v is None else v for v in row] for row in curves["held_out"]],
                        dtype=float)
        steps = np.asarray(curves["steps"])
        for block, color in zip(range(held.shape[1]), palette):
            axis.plot(steps, held[:, block], "-", lw=1.2, color=color, label=f"block {block}")
            for step, marker in ((curves["best_step"][block], "o"),
                                 (curves["stop_step"][block], "x")):
                row = int(np.searchsorted(steps, step))
                axis.plot(step, held[row, block], marker, ms=6, color=color)
        if np.nanmax(held) > 20 * np.nanmin(held[held > 0], initial=np.inf):
            axis.set_yscale("log")
        axis.set(xlabel="training step", ylabel=READER_LOSSES.get(name, "held-out loss"),
                 title=f"{name}: {record['train_positions']:,} positions, "
                       f"{record['held_out_positions']:,} held out"
                       + ("; sampled softmax" if record.get("objective", "").startswith("sampled")
                          else ""))
        axis.legend(fontsize=8, title="o kept, x stopped", title_fontsize=8)
    figure.tight_layout()
    plt.close(figure)
    return figure


export_figures(globals())  # every figure is saved into the chapter's exports (core.exports)
