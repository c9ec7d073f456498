"""Power curves of the structural verdicts (chapters 3, 4 and 7): how often each rule finds
structure planted at the run's own counts, against the planted strength."""
from __future__ import annotations

from textwrap import fill

import matplotlib.pyplot as plt
import pandas as pd

from ..analysis.power import DETECTED
from ..core.exports import export_figures


def power_curve_figure(rates: pd.DataFrame, xlabel: str, title: str,
                       level: float = DETECTED) -> plt.Figure:
    """Detection rate [strengths x rules] per rule against the planted strength; a dashed line at
    `level` (the rate from which a structure counts as seen) and a dotted one at 5% (the rate a
    95th-percentile rule may fire with nothing planted). Rules that coincide stay visible: each
    has its own marker (hollow) and line style."""
    figure, axis = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for (rule, marker, style) in zip(rates.columns, "osD^v", ("-", "--", "-.", ":", "-")):
        axis.plot(rates.index, rates[rule], marker=marker, linestyle=style, label=rule,
                  markerfacecolor="none")
    axis.axhline(level, color="grey", linestyle="--", linewidth=1, label=f"{level:.0%} of plants")
    axis.axhline(0.05, color="grey", linestyle=":", linewidth=1, label="5%")
    axis.set(xlabel=xlabel, ylabel="share of plants the rule finds", ylim=(-0.02, 1.02),
             title=fill(title, 60))
    axis.legend(fontsize=8)
    plt.close(figure)
    return figure


export_figures(globals())  # every figure is saved into the chapter's exports (core.exports)
