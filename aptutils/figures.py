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
