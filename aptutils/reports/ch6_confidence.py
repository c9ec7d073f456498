"""Chapter 6, confidence: the verdict on C9 (confidence independent of input APT) and its sentences.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import CONFIDENCE
from ..core.params import Settings
from ..core.verdicts import Verdict, decide
from ..data.tasks import TASKS
from ..training.pretrain import analysis_ws


def c9_verdict(correlations: pd.DataFrame, settings: Settings) -> Verdict:
    """C9: at the last block (frozen trunk, all test samples), every task's CI of Spearman rho
    lies within +-confidence_bound; not measured where a rho is undefined (constant input)."""
    last, bound = settings.num_layers, settings.confidence_bound
    rows = correlations[(correlations["block"] == last) & (correlations["protocol"] == "frozen")
                        & (correlations["group"] == "all")]
    this_run = "; ".join(f"{r.task} ρ = {r.rho:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] (n = {r.n:,})"
                         if np.isfinite(r.rho) else f"{r.task} ρ undefined (a constant variable)"
                         for r in rows.itertuples())
    within = (rows["ci_low"] >= -bound) & (rows["ci_high"] <= bound)
    measured = len(rows) == len(TASKS) and bool(rows["rho"].notna().all())
    return Verdict("C9", f"{this_run}; block {last}, frozen trunk, W_S={analysis_ws(settings):,}",
                   f"Spearman ρ(max-softmax confidence, mean input APT) with bootstrap "
                   f"{CONFIDENCE:.0%} CI; holds if every CI lies within ±{bound:g} (|ρ| ≤ {bound:g}: "
                   f"input APT ranks explain at most {bound ** 2:.0%} of the confidence ranks' "
                   f"variance)", decide(bool(within.all()) if measured else None))


def correlation_sentence(correlations: pd.DataFrame, settings: Settings) -> str:
    """One Markdown paragraph: the range of rho over blocks per task and group (frozen trunk)."""
    frozen = correlations[correlations["protocol"] == "frozen"].dropna(subset=["rho"])
    if frozen.empty:
        return ("No correlation is defined in this run: the mean input APT or the confidence is "
                "the same for every sample (a model too small or too briefly trained).")
    parts = [f"{task}: ρ from {rows['rho'].min():+.2f} to {rows['rho'].max():+.2f}"
             for task, rows in frozen.groupby("task", sort=False)]
    largest = frozen.loc[frozen["rho"].abs().idxmax()]
    return (f"Across blocks 0..{settings.num_layers} and the three groups (all, correct, wrong) "
            f"of the frozen-trunk classifiers, {'; '.join(parts)}. The largest |ρ| is "
            f"{largest['rho']:+.2f} ({largest['task']}, block {largest['block']}, "
            f"{largest['group']} predictions, n = {largest['n']:,}).")


def coverage_sentence(coverage: pd.DataFrame, settings: Settings) -> str:
    """One Markdown paragraph: how many input tokens have no APT and how many samples were dropped."""
    parts = [f"{row.Index}: {row.tokens_without_apt:,} of {row.input_tokens:,} input tokens "
             f"({row.share_without_apt:.1%}) and {row.samples_dropped:,} of {row.test_samples:,} "
             f"samples" for row in coverage.itertuples()]
    return (f"APT comes from the last block of the model pre-trained on W_S="
            f"{analysis_ws(settings):,}, under the `{settings.protocol}` protocol. A token that is "
            f"never a modified token in W_test has no APT: it is left out of its sample's mean, and "
            f"a sample none of whose tokens has an APT is dropped. Left out — "
            + "; ".join(parts) + ".")


def correlations_at(correlations: pd.DataFrame, block: int) -> pd.DataFrame:
    """The correlation rows of one block, indexed by task, protocol and group."""
    at_block = correlations[correlations["block"] == block].drop(columns="block")
    return at_block.set_index(["task", "protocol", "group"])
