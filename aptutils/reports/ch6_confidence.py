"""Chapter 6, confidence: the verdict on C9 (confidence independent of input APT) and its sentences.

C9 is an equivalence claim ("does not depend"), which noise satisfies as well as independence: it
is decided only where input APT is reliable (split-half reliability at least `apt_min_reliability`)
and the positive control (a confidence equal to input APT) is flagged by the same rule.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import INTERVAL_LEVEL
from ..analysis.confidence import TokenOccurrences, confidence_frame, reliability_table
from ..core.kinds import reading_name
from ..core.params import Settings
from ..core.store import Store
from ..data.masking import special_token_ids
from ..data.pretraining import PretrainingData
from ..readout.reading import CountsRecipe, block_counts
from ..core.verdicts import Verdict, decide
from ..data.tasks import TASKS
from ..training.finetune import FinetuneResult, analysis_spec
from ..training.subject import SubjectRecipe, load_subject


def dependence(low: float, high: float, bound: float) -> str:
    """What a 95% CI [low, high] of rho says of confidence against input APT, given the bound."""
    if low >= -bound and high <= bound:
        return f"is independent of input APT within ±{bound:g}"
    if low > 0:
        return "rises with input APT"
    if high < 0:
        return "falls with input APT"
    return f"is not pinned down: its CI includes 0 and reaches beyond ±{bound:g}"


def last_block_occurrences(settings: Settings, data: PretrainingData,
                           store: Store | None = None) -> TokenOccurrences:
    """Chapter 2's reading (`kinds`, `token_min_occurrences`) of the counts at the last block of
    the analysis model under `protocol` (read, and its readers trained, when missing)."""
    subject = load_subject(settings.recipe(SubjectRecipe), data, store=store)
    counts = block_counts(settings.recipe(CountsRecipe), subject, data, store)
    return TokenOccurrences.of(counts[settings.protocol][-1].counts, settings.kinds,
                               settings.token_min_occurrences)


def analysis_reliability(settings: Settings, results: list[FinetuneResult], data: PretrainingData,
                         store: Store | None = None) -> pd.DataFrame:
    """`confidence.reliability_table` of the analysis model's classifiers, with the occurrences
    of these settings."""
    return reliability_table(results, settings.recipe(SubjectRecipe).ws,
                             last_block_occurrences(settings, data, store),
                             special_token_ids(data.tokenizer), seed=settings.seed)


def analysis_confidence(settings: Settings, results: list[FinetuneResult], data: PretrainingData,
                        store: Store | None = None) -> pd.DataFrame:
    """`confidence.confidence_frame` of the analysis model with the input APT of these settings
    (reading, minimum occurrences)."""
    return confidence_frame(results, settings.recipe(SubjectRecipe).ws,
                            last_block_occurrences(settings, data, store).apt(),
                            special_token_ids(data.tokenizer))


def _last_block_rows(correlations: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    return correlations[(correlations["block"] == settings.num_layers)
                        & (correlations["protocol"] == "frozen") & (correlations["group"] == "all")]


def c9_verdict(correlations: pd.DataFrame, reliability: pd.DataFrame, settings: Settings) -> Verdict:
    """C9: at the last block (frozen trunk, all test samples), every task's CI of Spearman rho
    lies within ±confidence_bound. Not measured where a rho is undefined, where input APT is
    unreliable (split-half reliability below apt_min_reliability) or where the positive control
    is not flagged as dependent. reliability: `confidence.reliability_table`."""
    last, bound, least = settings.num_layers, settings.confidence_bound, settings.apt_min_reliability
    rows = _last_block_rows(correlations, settings)
    this_run = "; ".join(
        f"{r.task} ρ = {r.rho:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] (n = {r.n:,}, input APT "
        f"reliability {reliability.loc[r.task, 'reliability']:.2f})"
        if np.isfinite(r.rho) else f"{r.task} ρ undefined" for r in rows.itertuples())
    undefined = [r.task for r in rows.itertuples() if not np.isfinite(r.rho)]
    unreliable = reliability[~(reliability["reliability"] >= least)]
    flagged = (reliability["control_low"] > bound) | (reliability["control_high"] < -bound)
    within = (rows["ci_low"] >= -bound) & (rows["ci_high"] <= bound)
    if len(rows) < len(TASKS) or undefined:
        condition, reason = None, (f"ρ is undefined for {', '.join(undefined) or 'a task'}: input APT "
                                   f"or confidence is constant, or fewer than 3 samples have an input APT")
    elif len(unreliable):
        condition, reason = None, "input APT is unreliable: " + "; ".join(
            f"{task} split-half reliability {row.reliability:.2f} < {least:g} (an input token's "
            f"median count in W_test is {row.median_occurrences:g})" for task, row in unreliable.iterrows())
    elif not flagged.all():
        condition, reason = None, "the positive control is not flagged: " + "; ".join(
            f"on {task} a confidence equal to input APT reads ρ = {row.control_rho:+.3f} "
            f"[{row.control_low:+.3f}, {row.control_high:+.3f}], not beyond ±{bound:g}"
            for task, row in reliability[~flagged].iterrows())
    else:
        condition = bool(within.all())
        shown = ", ".join(f"{task} {value:.2f}" for task, value in reliability["reliability"].items())
        found = (f"every CI of ρ lies within ±{bound:g}" if condition else "; ".join(
            f"on {r.task} confidence {dependence(r.ci_low, r.ci_high, bound)}"
            for r in rows[~within].itertuples()))
        reason = f"input APT is reliable ({shown}) and the positive control is flagged; {found}"
    return Verdict("C9", f"{this_run}; block {last}, frozen trunk, {analysis_spec(settings.recipe(SubjectRecipe)).label}",
                   f"Spearman ρ(max-softmax confidence, mean input APT) with bootstrap {INTERVAL_LEVEL:.0%} "
                   f"CI; input APT on the {reading_name(settings.kinds)} W_test positions of tokens "
                   f"seen there {settings.token_min_occurrences}+ times; holds if every CI lies within "
                   f"±{bound:g}; not measured if input APT's split-half reliability is below {least:g} "
                   f"or the positive control (a confidence equal to input APT) is not flagged",
                   decide(condition), reason)


def confidence_headline(correlations: pd.DataFrame, settings: Settings) -> str:
    """One sentence: at the last block (frozen trunk), what each task's CI of rho says."""
    rows = _last_block_rows(correlations, settings)
    parts = [f"on {r.task} confidence {dependence(r.ci_low, r.ci_high, settings.confidence_bound)} "
             f"(ρ = {r.rho:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}])" if np.isfinite(r.rho)
             else f"on {r.task} ρ is undefined" for r in rows.itertuples()]
    return f"Block {settings.num_layers}, frozen trunk: " + "; ".join(parts) + "."


def reliability_sentence(reliability: pd.DataFrame, settings: Settings) -> str:
    """One Markdown paragraph: the split-half reliability and the positive control, per task."""
    least, bound = settings.apt_min_reliability, settings.confidence_bound
    parts = []
    for task, row in reliability.iterrows():
        flagged = row.control_low > bound or row.control_high < -bound
        parts.append(f"{task}: split-half r = {row.split_half_r:+.2f}, reliability "
                     f"{row.reliability:.2f} ({'enough' if row.reliability >= least else 'too low'}); "
                     f"the control reads ρ = {row.control_rho:+.2f} [{row.control_low:+.2f}, "
                     f"{row.control_high:+.2f}] ({'flagged' if flagged else 'not flagged'}); "
                     f"{int(row.tokens_with_apt):,} of its distinct tokens have an APT, and an input "
                     f"token's median count in W_test is {row.median_occurrences:g}")
    return (f"Before C9 is decided, input APT must be reliable (split-half reliability at least "
            f"{least:g}, fixed before the run) and a confidence equal to input APT must read a ρ "
            f"beyond ±{bound:g}. " + "; ".join(parts) + ".")


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
    return (f"APT comes from the last block of {analysis_spec(settings.recipe(SubjectRecipe)).described}, under the `{settings.protocol}` protocol, on the "
            f"{reading_name(settings.kinds)} modified positions of W_test (`kinds`). A token seen "
            f"there fewer than {settings.token_min_occurrences} times has no APT: it is left out "
            f"of its sample's mean, and a sample none of whose tokens has an APT is dropped. Left out — "
            + "; ".join(parts) + ".")


def correlations_at(correlations: pd.DataFrame, block: int) -> pd.DataFrame:
    """The correlation rows of one block, indexed by task, protocol and group."""
    at_block = correlations[correlations["block"] == block].drop(columns="block")
    return at_block.set_index(["task", "protocol", "group"])
