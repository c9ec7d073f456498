"""Chapter 2: APT against frequency, block by block, against W_S, and the verdicts on C1-C4.

Every number reads one set of modified positions (`PositionReading`: masked by default, since an
unchanged position shows the model its own answer) and counts a token only with enough of them.
Every verdict rests on a bootstrap interval over tokens, says what it is measured against, and
carries a reason computed from the run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import (
    INTERVAL_LEVEL,
    Interval,
    apt_table,
    binned_means,
    depth_curve,
    spearman_rho,
)
from ..analysis.baselines import RULES
from ..analysis.rises import (
    PositionReading,
    Rise,
    low_frequency_share,
    rank_trend,
    rank_trend_beyond,
    rise_along,
)
from ..core.counts import TokenCounts
from ..core.verdicts import Verdict, decide
from ..readout.counting import BlockCounts
from ..readout.readers import BLOCK_READERS
from .ch2_series import (  # noqa: F401 (chapter 2 reads them through this module)
    N_BOOT,
    NO_SERIES,
    RULE_GLOSS,
    beats_rules,
    c2_equal_steps_verdict,
    c2_verdict,
    direction,
    largest_model,
    named_series,
    series_table,
    ws_figure_args,
    ws_rise,
    ws_title,
)

SHARE_BAR = 0.5  # C4: the low-frequency half must give more than this share of the rise


def c1_verdict(last: TokenCounts, rules: dict[str, TokenCounts], frequency: np.ndarray,
               reading: PositionReading, where: str, seed: int) -> Verdict:
    """C1: Spearman rho of APT (reading) against W_S frequency at the last block; holds if its
    bootstrap interval lies above 0 and the paired interval of rho minus the rho of the trivial
    rule with the highest rho lies above 0 too (a rule that always answers the commonest token
    has APT 1 on it and 0 elsewhere: a small rho > 0 that a plateau model shares)."""
    trend = rank_trend(reading.apt(last), frequency, N_BOOT, seed)
    ranked = np.where(np.asarray(frequency) > 0, frequency, np.nan)  # rank_trend's tokens
    rule_rhos = {r: spearman_rho(ranked, reading.apt(rules[r])) for r in RULES if r in rules}
    rule = max(rule_rhos, key=lambda r: np.nan_to_num(rule_rhos[r], nan=-2.0))
    beyond = rank_trend_beyond(reading.apt(last), reading.apt(rules[rule]), frequency, N_BOOT,
                               seed)
    bar = np.nan_to_num(rule_rhos[rule], nan=0.0)
    statistic = (f"Spearman ρ of APT(t) vs W_S frequency at {where}, {reading.describe()}; holds "
                 f"if its {INTERVAL_LEVEL:.0%} bootstrap CI lies above 0 and the paired CI of ρ minus "
                 "the ρ of the trivial rule with the highest ρ lies above 0")
    shown = f"ρ = {trend} over {trend.n:,} tokens; '{rule}' rule's ρ = {bar:.3f}"
    if trend.n < 3 or not np.isfinite(trend.estimate):
        values = reading.apt(last)
        why = (f"only {trend.n} tokens have ≥ {reading.min_occurrences} {reading.name} positions "
               "and a W_S frequency" if trend.n < 3 else
               f"every one of the {trend.n:,} tokens has the same {reading.name} APT "
               f"({np.nanmax(values):.3f}) at {where}: there is no ranking to correlate")
        return Verdict("C1", shown, statistic, decide(None), why)
    holds = trend.above(0) and beyond.above(0)
    if holds:
        why = (f"{reading.name} APT at {where} rises with W_S frequency: ρ = {trend} over "
               f"{trend.n:,} tokens, above 0 and above the '{rule}' rule's {bar:.3f} by "
               f"{beyond.text(signed=True)}")
    elif trend.below(0):
        why = f"{reading.name} APT at {where} falls with W_S frequency: ρ = {trend}"
    elif not trend.above(0):
        why = f"ρ = {trend} includes 0: no rise of {reading.name} APT with frequency is resolved"
    else:
        why = (f"ρ = {trend} does not clear the '{rule}' rule's ρ of {bar:.3f} (difference "
               f"{beyond.text(signed=True)}), which needs no learning beyond frequencies or "
               "copying")
    if not holds:
        why += "; " + beats_rules(last, rules, reading, where, seed)[1]
    return Verdict("C1", shown, statistic, decide(holds), why)


def depth_rise(blocks: list[BlockCounts], reading: PositionReading, seed: int) -> Rise:
    """<APT> (reading) along the blocks of one protocol, with paired steps and the whole rise."""
    return rise_along({b: reading.apt(item.counts) for b, item in enumerate(blocks)}, N_BOOT,
                      seed, "block")


def c3_verdict(rise: Rise, blocks: list[BlockCounts], rules: dict[str, TokenCounts],
               reading: PositionReading, protocol: str, seed: int) -> Verdict:
    """C3: <APT> (reading) higher at the last block than at block 0 (paired bootstrap interval
    over tokens above 0), and no block-to-block step significantly below 0."""
    last = rise.points[-1]
    statistic = (f"{protocol}: paired bootstrap {INTERVAL_LEVEL:.0%} CI over tokens of ⟨APT⟩(block "
                 f"{last}) − ⟨APT⟩(block 0), {reading.describe()}; holds if it lies above 0 and "
                 "no block-to-block step's CI lies below 0")
    dip = rise.largest_dip()
    shown = (f"⟨APT⟩ {rise.levels[0].estimate:.3f} → {rise.levels[-1].estimate:.3f} "
             f"({rise.total.text(signed=True)}); largest dip "
             + (f"{dip[2].text(signed=True)} at {dip[0]} → {dip[1]}" if dip else "none"))
    if not np.isfinite(rise.total.estimate):
        return Verdict("C3", shown, statistic, decide(None),
                       f"no token has ≥ {reading.min_occurrences} {reading.name} positions")
    dips = rise.dips()
    holds = rise.total.above(0) and not dips
    if holds:
        return Verdict("C3", shown, statistic, decide(True),
                       f"{reading.name} ⟨APT⟩ ({protocol}) rises from block 0 to block {last} by "
                       f"{rise.total.text(signed=True)}, with no significant dip")
    parts = []
    if not rise.total.above(0):
        parts.append(f"the rise from block 0 to block {last} is {rise.total.text(signed=True)}, "
                     "not above 0")
    parts += [f"block {a} → {b} falls by {step.text(signed=True)}" for a, b, step in dips]
    parts.append(beats_rules(blocks[-1].counts, rules, reading, f"block {last} ({protocol})",
                             seed)[1])
    return Verdict("C3", shown, statistic, decide(False), "; ".join(parts))


def low_share(blocks: list[BlockCounts], frequency: np.ndarray, reading: PositionReading,
              seed: int) -> Interval:
    """Share of the block 0 → last rise of <APT> given by the low-frequency half of the tokens."""
    return low_frequency_share(reading.apt(blocks[0].counts), reading.apt(blocks[-1].counts),
                               frequency, N_BOOT, seed)


def c4_verdict(share: Interval, rise: Rise, reading: PositionReading, protocol: str) -> Verdict:
    """C4: the low-frequency half of the tokens gives more than half of the rise of <APT>
    (stratified paired bootstrap interval above SHARE_BAR); measured only when C3's rise is
    significant."""
    statistic = (f"{protocol}: share of the block 0 → {rise.points[-1]} rise of ⟨APT⟩ from the "
                 f"tokens below the median W_S frequency, {reading.describe()}; holds if its "
                 f"{INTERVAL_LEVEL:.0%} bootstrap CI lies above {SHARE_BAR:.0%}; measured only if the "
                 "rise itself is significant (C3)")
    shown = f"low-frequency half: {share.text(percent=True)} of a rise of {rise.total.estimate:+.3f}"
    if not rise.total.above(0):
        shown = f"rise of {rise.total.text(signed=True)}: not split"
        return Verdict("C4", shown, statistic, decide(None),
                       f"there is no significant rise to split: block 0 → {rise.points[-1]} "
                       f"changes {reading.name} ⟨APT⟩ by {rise.total.text(signed=True)}")
    holds = share.above(SHARE_BAR)
    if holds:
        why = f"the low-frequency half gives {share.text(percent=True)} of the rise"
    elif share.below(SHARE_BAR):
        why = (f"the low-frequency half gives only {share.text(percent=True)} of the rise: most of "
               "it comes from frequent tokens")
    else:
        why = (f"the low-frequency half gives {share.text(percent=True)} of the rise: not resolved "
               f"above {SHARE_BAR:.0%}")
    return Verdict("C4", shown, statistic, decide(holds), why)


def depth_title(rise: Rise, reading: PositionReading, protocol: str) -> str:
    return (f"{reading.name} ⟨APT⟩ along the blocks ({protocol}): "
            f"{direction(rise.total)} from block 0 to {rise.points[-1]}, "
            f"{rise.total.text(signed=True)}")


def frequency_title(last: TokenCounts, frequency: np.ndarray, reading: PositionReading,
                    where: str, seed: int) -> str:
    trend = rank_trend(reading.apt(last), frequency, N_BOOT, seed)
    return (f"{reading.name} APT(t) against W_S frequency at {where}: "
            f"{direction(trend, 'rises with frequency', 'falls with frequency', 'no trend resolved')}, ρ = {trend}")


def trained_readers(summary: pd.DataFrame) -> list[str]:
    """The readers of `block_summary` that read the trained model, in table order."""
    return [r for r in dict.fromkeys(summary.index.get_level_values(0))
            if not r.startswith("untrained") and r not in RULES]


def depth_figure_curves(summary: pd.DataFrame, column: str, readers: list[str]
                        ) -> tuple[dict[str, pd.Series], dict[str, pd.Series | float]]:
    """(solid curves of the trained readers, dashed baselines: untrained readers and rules)."""
    trained = {r: depth_curve(summary, r, column) for r in readers}
    dashed = {r: depth_curve(summary, r, column)
              for r in dict.fromkeys(summary.index.get_level_values(0)) if r.startswith("untrained")}
    dashed.update({r: float(summary.loc[(r, "any"), column]) for r in RULES
                   if (r, "any") in summary.index})
    return trained, dashed


def kinds_sentence(summary: pd.DataFrame, reader: str, reading: PositionReading) -> str:
    """What block 0 and the last block score on each kind, said from the table."""
    rows = summary.loc[reader]
    blocks = [b for b in rows.index if b != "any"]
    first, last = rows.loc[blocks[0]], rows.loc[blocks[-1]]

    def kinds(row) -> str:
        return ", ".join(f"{k} {row[f'⟨APT⟩ {k}']:.3f}" for k in ("masked", "replaced", "unchanged"))
    return (f"⟨APT⟩ by kind ({reader}, tokens with ≥ {reading.min_occurrences} positions of the "
            f"kind): block 0 {kinds(first)}; block {blocks[-1]} {kinds(last)}. An unchanged "
            "position shows the model its own answer, so the masked column is the one this "
            "chapter decides on.")


def setup_sentence(ws: int, blocks: list[BlockCounts], reading: PositionReading,
                   protocol: str, model: str | None = None, counts: dict | None = None) -> str:
    """What the chapter reads: the model, W_test's positions by kind, the reading, the protocol;
    for an external checkpoint (`model`), what W_S means and which readers it lacks (`counts`:
    reader name -> blocks)."""
    return checkpoint_sentence(ws, model, counts) + _positions_sentence(ws, blocks, reading,
                                                                        protocol, model is None)


def checkpoint_sentence(ws: int, model: str | None, counts: dict | None = None) -> str:
    """For an external checkpoint: what is read, what W_S stands for, and the readers it lacks
    (`counts`: reader name -> blocks; None: not said); "" for the book's own models."""
    if model is None:
        return ""
    return (f"Model read block by block: the external checkpoint `{model}`, with its own "
            f"tokenizer. It has no W_S series: its readers train on the first W_S = {ws:,} samples "
            "of this corpus's training pool tokenised with the checkpoint's tokenizer, and the "
            "'W_S frequency' of C1 and the figures is each token's count in those samples (not "
            "in the checkpoint's own, unknown, pre-training data). "
            + (missing_readers_sentence(counts) if counts is not None else ""))


def missing_readers_sentence(counts: dict) -> str:
    """Why readers of `BLOCK_READERS` absent from `counts` were not counted, or ""."""
    missing = [name for name in BLOCK_READERS if name not in counts]
    if not missing:
        return ""
    return (f"Not available: {', '.join(missing)}. The checkpoint holds no MLM head (a plain "
            "BertModel): the lens reads every block through the model's own MLM head and the "
            "tuned lens maps every block onto that head's output distribution, so neither exists "
            "here; the probe, which trains its own head on each frozen block, reads it. ")


def heldout_sentence(held_out: dict) -> str:
    """What W_test is in this run, from `data.heldout.heldout_description`."""
    def articles(n: int, which: str = "") -> str:
        return f"{n:,} {which}article{'s' * (n != 1)}"

    own = (f"{held_out['held_out_samples']:,} samples of "
           f"{articles(held_out['held_out_articles'], 'held-out ')} (chapter 1's, on which "
           "pre-training evaluates)")
    if not held_out["extension_samples"]:
        return (f"W_test: {own}; `-p test_extension N` adds N samples of whole training-pool "
                "articles that no model or reader trains on.")
    masked = held_out["masked"]
    return (f"W_test: {own} and {held_out['extension_samples']:,} samples of "
            f"{articles(held_out['extension_articles'], 'whole ')} of the training pool none of "
            f"whose samples is among its first {held_out['reach']:,} rows, the only ones any model "
            f"or reader trains on: {held_out['samples']:,} samples of "
            f"{articles(held_out['articles'])}, none in any training set. Masked positions per "
            f"masking: {', '.join(f'{n:,}' for n in masked)} ({sum(masked):,} pooled).")


def _positions_sentence(ws: int, blocks: list[BlockCounts], reading: PositionReading,
                        protocol: str, own_series: bool) -> str:
    counts = blocks[-1].counts
    tokens = int(np.isfinite(reading.apt(counts)).sum())
    return ((f"Model read block by block: W_S = {ws:,} samples. " if own_series else "")
            + f"W_test, {reading.maskings} "
            f"masking{'s' * (reading.maskings != 1)} pooled: "
            f"{int(counts.total.sum()):,} modified positions ("
            + ", ".join(f"{kind} {int(counts.occurrences(kind).sum()):,}"
                        for kind in ("masked", "replaced", "unchanged"))
            + f"). Reading: **{reading.describe()}** ({tokens:,} tokens). Protocol shown: "
            f"**{protocol}**.")


def frequency_panels(table: pd.DataFrame, reading: PositionReading, seed: int,
                     bins: int = 12) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Fig. 1's panels: the reading first, then all kinds and each kind (where any token has an
    APT and a W_S frequency): column -> `binned_means`, column -> panel title."""
    names = {"apt": reading.name, "apt_all": "all", "apt_masked": "masked",
             "apt_replaced": "replaced", "apt_unchanged": "unchanged"}
    shown = {"apt": names["apt"]}
    shown.update({c: n for c, n in names.items() if c != "apt" and n != reading.name})
    binned, titles = {}, {}
    for column, name in shown.items():
        usable = table[(table["frequency"] > 0) & table[column].notna()]
        if len(usable):
            binned[column] = binned_means(usable["frequency"], usable[column], bins, seed=seed)
            titles[column] = (f"{name} positions" + (" (the reading)" if column == "apt" else "")
                              + f", ≥ {reading.min_occurrences} per token")
    return binned, titles


def table_sentence(table: pd.DataFrame, reading: PositionReading) -> str:
    """How many tokens the per-token figure rests on, and those it cannot show."""
    with_apt = table["apt"].notna()
    unseen = with_apt & (table["frequency"] == 0)
    mean_unseen = table.loc[unseen, "apt"].mean() if unseen.any() else float("nan")
    return (f"{len(table):,} tokens occur as modified tokens in W_test; {int(with_apt.sum()):,} "
            f"have ≥ {reading.min_occurrences} {reading.name} positions and enter the first "
            f"panel and C1; {int(unseen.sum()):,} of those never occur in W_S and are left out "
            f"of the log-frequency axis (their mean {reading.name} APT: {mean_unseen:.3f}).")


def table_readers(counts: dict[str, list[BlockCounts]], untrained: dict[str, list[BlockCounts]],
                  protocol: str) -> dict[str, list[BlockCounts]]:
    """Table 1's readers: both protocols of the trained model, the untrained one under `protocol`."""
    return {**counts, f"untrained, {protocol}": untrained[protocol]}


def depth_figure_args(summary: pd.DataFrame, rise: Rise, reading: PositionReading,
                      protocol: str) -> dict:
    """`metric_by_depth_figure` arguments: <APT> (reading) of both protocols, the shown one with
    its bootstrap band, beside the untrained model and the rules (dashed)."""
    column = f"⟨APT⟩ {reading.name}"
    curves, dashed = depth_figure_curves(summary, column, trained_readers(summary))
    index = pd.Index(rise.points, name="block")
    bands = {protocol: (pd.Series([v.low for v in rise.levels], index=index),
                        pd.Series([v.high for v in rise.levels], index=index))}
    return {"curves": curves, "dashed": dashed, "bands": bands,
            "ylabel": f"⟨APT⟩ on {reading.name} positions", "title": depth_title(rise, reading, protocol)}


def accuracy_figure_args(summary: pd.DataFrame, reading: PositionReading) -> dict:
    """`metric_by_depth_figure` arguments: token-weighted accuracy (reading) of both protocols
    beside the untrained model and the rules."""
    column = f"accuracy {reading.name}"
    curves, dashed = depth_figure_curves(summary, column, trained_readers(summary))
    reader, levels = next(iter(curves.items()))
    best = max((v for v in dashed.values() if not isinstance(v, pd.Series)), default=np.nan)
    return {"curves": curves, "dashed": dashed, "ylabel": f"accuracy on {reading.name} positions",
            "title": (f"token-weighted accuracy on {reading.name} positions ({reader}): "
                      f"{levels.iloc[0]:.3f} at block 0, {levels.iloc[-1]:.3f} at block "
                      f"{levels.index[-1]}; best trivial rule {best:.3f}")}


def summary_caption(reading: PositionReading) -> str:
    """What Table 1's per-token columns rest on."""
    n = reading.min_occurrences
    return (f"Per-token columns count a token only with ≥ {n} positions of the column's kind "
            f"({reading.maskings} masking{'s' * (reading.maskings != 1)} of W_test pooled). "
            f"APT(50) top-50: the 50 tokens most frequent in W_S among those with ≥ {n} "
            f"{reading.name} positions; APT(50) ≥50 seen: the tokens with ≥ {max(50, n)} "
            f"{reading.name} positions. Accuracies weigh every position of the kind.")


def decomposition_caption(reading: PositionReading) -> str:
    """Which tokens the split of the rise rests on."""
    return (f"Tokens: those with ≥ {reading.min_occurrences} {reading.name} positions in W_test; "
            "groups: equal-count quantiles of their W_S frequency (group 0 the rarest).")


LENS_HEAD_NOTE = ("at the last block the lens is the very head the model was trained with there, so "
                  "a fresh head of the same form (the probe) can at best match it")


def readers_sentence(counts: dict, reading: PositionReading) -> str:
    """The readers side by side at the last block on the reading, and why the probe may trail the
    lens there. counts: reader name -> [BlockCounts per block]."""
    last = {name: blocks[-1].counts for name, blocks in counts.items()}
    parts = [f"{name} {c.kind_accuracy(reading.kinds):.3f} / "
             f"{c.mean_apt(reading.kinds, reading.min_occurrences):.3f}" for name, c in last.items()]
    if "lens" not in last:
        return (f"At the last block, accuracy / ⟨APT⟩ on the {reading.name} positions: "
                f"{'; '.join(parts)}. " + missing_readers_sentence(counts)).strip()
    probe, lens = (last[n].mean_apt(reading.kinds, reading.min_occurrences) for n in ("probe", "lens"))
    verdict = ("the probe reads at least as well as the lens" if probe >= lens else
               f"the probe reads below the lens by {lens - probe:.3f} in ⟨APT⟩: {LENS_HEAD_NOTE}")
    return (f"At the last block, accuracy / ⟨APT⟩ on the {reading.name} positions: "
            f"{'; '.join(parts)}. Here {verdict}.")


def per_token_apt(counts: dict[str, list[BlockCounts]], frequency: np.ndarray, reading) -> pd.DataFrame:
    """Every reader's `apt_table` at every block, stacked (reader, block, token_id, …): the export."""
    return pd.concat({(r, b): apt_table(c.counts, frequency, reading.kinds, reading.min_occurrences)
                      for r, blocks in counts.items() for b, c in enumerate(blocks)},
                     names=["reader", "block", "row"]).reset_index(level="row", drop=True)


def objective_sentence(training: dict[str, dict]) -> str:
    """What each trained reader minimised, from its training record ('objective'), and that
    every reader is read with the full-vocabulary argmax."""
    names = {"probe": "The probe heads", "tuned-lens": "the tuned lens"}
    parts = [f"{names.get(name, name)} trained on the {record['objective']}"
             for name, record in training.items() if "objective" in record]
    if not parts:
        return "The readers' training records do not say which objective they minimised."
    return "; ".join(parts) + ". Every reader is read with the argmax over the whole vocabulary."
