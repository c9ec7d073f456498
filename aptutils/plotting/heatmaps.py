"""Heatmaps of shares in [0, 1] (confusion matrices, filter fields): one colour bar per figure and
tick labels of at least 7 pt, every k-th label only where all of them would not fit."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import Normalize

CMAP = "mako_r"
TICK_POINTS = 7


def shown_ticks(count: int, length_points: float, fontsize: float = TICK_POINTS) -> list[int]:
    """Indices of the labels to show along an axis `length_points` long: every label if they fit
    at 1.3 line spacing, else every k-th (the first always)."""
    fit = max(1, int(length_points // (fontsize * 1.3)))
    return list(range(0, count, max(1, math.ceil(count / fit))))


def heatmap(axis: plt.Axes, matrix, xlabels: Sequence[str] | None = None,
            ylabels: Sequence[str] | None = None, fontsize: float = TICK_POINTS) -> None:
    """A [0, 1] share matrix on `axis`, its labels at `fontsize` (subsampled to fit), no colour bar
    of its own (see `colorbar`)."""
    values = np.asarray(matrix, dtype=float)
    if xlabels is None and hasattr(matrix, "columns"):
        xlabels, ylabels = list(map(str, matrix.columns)), list(map(str, matrix.index))
    sns.heatmap(values, ax=axis, vmin=0, vmax=1, cmap=CMAP, square=True, cbar=False,
                xticklabels=False, yticklabels=False)
    figure = axis.figure
    box = axis.get_position()
    size = min(box.width * figure.get_figwidth(), box.height * figure.get_figheight()) * 72
    if xlabels is not None:
        shown = shown_ticks(values.shape[1], size, fontsize)
        axis.set_xticks([i + 0.5 for i in shown])
        axis.set_xticklabels([xlabels[i] for i in shown], fontsize=fontsize, rotation=90)
    if ylabels is not None:
        shown = shown_ticks(values.shape[0], size, fontsize)
        axis.set_yticks([i + 0.5 for i in shown])
        axis.set_yticklabels([ylabels[i] for i in shown], fontsize=fontsize, rotation=0)


def colorbar(figure: plt.Figure, axes, label: str) -> None:
    """One colour bar for every heatmap of the figure (all share the [0, 1] scale)."""
    mappable = plt.cm.ScalarMappable(norm=Normalize(0, 1), cmap=CMAP)
    bar = figure.colorbar(mappable, ax=np.ravel(axes).tolist(), label=label, shrink=0.8)
    bar.ax.tick_params(labelsize=8)
