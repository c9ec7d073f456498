"""Chapter 3, symmetry breaking: the verdicts on C5 (small strong-match clusters), C6 (sharpening
along the blocks) and C7 (higher-order structure), each decided against a null, each with its
measured power and a reason computed from the run.

The rule, written down before the book was re-executed with it (`analysis.scan`): the paper
leaves the threshold open, so C5 and C6 are decided on statistics pooled over the whole scan
0.2-0.8 (the book's strict filter and `match`), each against the same statistic of the within-row
shuffle null, one test per claim:

- C5 (last block): some scanned threshold has clusters of size >= 2; at every threshold the
  largest is small, <= max(20 tokens, 5% of the kept tokens); and the clustered tokens summed
  over the scan exceed the null's 95th percentile.
- C6: the last block's in-cluster share of errors, averaged over the scan, exceeds its null's
  95th percentile; its excess over the null's mean is above block 0's and above the untrained
  model's last block's.
- C7: C5 and C6 both hold (structure beyond chance, made by pre-training, built up by the blocks).

Each verdict carries its power (`analysis.power`: pairs planted at the run's own counts) and,
beside it, the single-threshold reading of the first books (`c5_verdict`, `c6_verdict` on a
`structure_by_block` table at `threshold`), which no longer decides.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule
from ..analysis.power import Planting, power_phrase
from ..analysis.scan import Scan, ScanRule, in_cluster_share, null_quantile, scan_table
from ..analysis.structure import counted, peak_phrase, structure_by_block, trend, trend_phrase
from ..core.verdicts import Verdict, decide

SMALL_TOKENS, SMALL_SHARE = 20, 0.05  # "small": the largest cluster holds <= max(20, 5% of kept)
EXCESS = "excess in-cluster share"


def largest_bound(kept: int) -> float:
    """The most tokens the largest cluster may hold for the clusters to count as small."""
    return max(SMALL_TOKENS, SMALL_SHARE * kept)


def c5_verdict(table: pd.DataFrame, rule: ClusterRule) -> Verdict:
    """C5 on the last row of a `structure_by_block` table."""
    last, block = table.iloc[-1], table.index[-1]
    kept, clusters, clustered, largest = (int(last[c])
                                          for c in ("kept", "clusters", "clustered", "largest"))
    null_mean, null_top = last["null clustered (mean)"], last["null clustered (95%)"]
    bound = largest_bound(kept)
    this_run = (f"block {block}: {counted(clusters, 'cluster')}, {clustered:,} clustered tokens (shuffled null "
                f"{null_mean:.1f}, 95th percentile {null_top:.1f}); largest {largest:,} of {kept:,} kept")
    statistic = (f"last block, {rule.describe()}: clusters of size >= 2 exist, the largest holds "
                 f"<= max({SMALL_TOKENS}, {SMALL_SHARE:.0%} of the kept tokens), and more tokens are "
                 f"clustered than the 95th percentile of the within-row shuffle null")
    if kept == 0:
        return Verdict("C5", this_run, statistic, decide(None),
                       f"no token passes the noise filter at block {block}")
    failures = []
    if kept == 1:
        failures.append("a single token passes the filter: nothing to cluster")
    elif clusters == 0:
        failures.append(f"no two of the {kept:,} kept tokens match strongly: no clusters")
    if largest > bound:
        failures.append(f"the largest cluster holds {largest:,} of {kept:,} kept tokens "
                        f"({largest / kept:.0%}): a hub, not small clusters")
    if clusters and not clustered > null_top:
        failures.append(f"{clustered:,} clustered tokens, no more than chance: the shuffled null "
                        f"clusters {null_mean:.1f} (95th percentile {null_top:.1f})")
    reason = "; ".join(failures) or (
        f"{counted(clusters, 'cluster')} of 2-{largest} tokens; {clustered:,} clustered tokens against "
        f"{null_mean:.1f} under the shuffled null (95th percentile {null_top:.1f})")
    return Verdict("C5", this_run, statistic, decide(not failures), reason)


def c6_verdict(trained: pd.DataFrame, untrained: pd.DataFrame) -> Verdict:
    """C6 from the trained and the untrained model's `structure_by_block` tables."""
    block = trained.index[-1]
    first, last = trained[EXCESS].iloc[0], trained[EXCESS].iloc[-1]
    share, null_mean, null_top = trained.iloc[-1][["in-cluster share", "null in-cluster share (mean)",
                                                   "null in-cluster share (95%)"]]
    baseline = untrained[EXCESS].iloc[-1]
    this_run = (f"excess in-cluster share (of all errors) {first:.2%} (block 0) → {last:.2%} "
                f"(block {block}); "
                f"untrained block {untrained.index[-1]}: {baseline:.2%}")
    statistic = ("per block, the share of its wrong predictions inside its own clusters minus the "
                 "same under the within-row shuffle null (the excess): the last block's share "
                 "above the null's 95th percentile, its excess above block 0's and above the "
                 "untrained model's last block's")
    if len(trained) < 2 or not np.isfinite([first, last, share, null_top, baseline]).all():
        return Verdict("C6", this_run, statistic, decide(None),
                       "block 0 or the last block (trained or untrained) makes no wrong prediction: "
                       "no share to compare")
    if not trained["clusters"].any():
        return Verdict("C6", this_run, statistic, decide(False),
                       "no block has a strong-match cluster: no error stays inside one at any block")
    failures = []
    if trained["clusters"].iloc[-1] == 0:
        failures.append(f"block {block} has no strong-match cluster: no error stays inside one")
    elif not share > null_top:
        failures.append(f"at block {block} {share:.1%} of the errors stay inside the clusters, within "
                        f"the shuffled null (mean {null_mean:.1%}, 95th percentile {null_top:.1%})")
    if not last > first:
        failures.append(f"the excess {trend(trained[EXCESS].iloc[[0, -1]])} from block 0 "
                        f"({first:.2%}) to block {block} ({last:.2%})")
    if not last > baseline:
        failures.append(f"the untrained model's last block has at least as much excess ({baseline:.2%} "
                        f"against {last:.2%})")
    reason = "; ".join(failures) or (
        f"{share:.1%} of block {block}'s errors stay inside its clusters against {null_mean:.1%} "
        f"under the shuffled null; the excess rises from {first:.2%} at block 0 to {last:.2%} and "
        f"beats the untrained model's {baseline:.2%}")
    return Verdict("C6", this_run, statistic, decide(not failures), reason)


def c7_verdict(c5: Verdict, c6: Verdict) -> Verdict:
    """C7: follows from C5 (clusters beyond chance) and C6 (made by training, built up by the blocks)."""
    measured = "not measured" not in (c5.verdict, c6.verdict)
    built = c5.verdict == "holds" and c6.verdict == "holds"
    reason = ("pre-training made small clusters that chance does not make (C5), and the blocks "
              "build them up beyond the untrained model (C6): structure above single tokens"
              if built else "; ".join(f"{v.claim} {v.verdict}: {v.reason}"
                                      for v in (c5, c6) if v.verdict != "holds"))
    return Verdict("C7", f"C5 {c5.verdict}, C6 {c6.verdict}",
                   "C5 and C6 both hold: structure beyond chance that pre-training built block by block",
                   decide(built if measured else None), reason)


def sharpening_curves(trained: pd.DataFrame, untrained: pd.DataFrame) -> dict[str, pd.Series]:
    """The excess in-cluster share (scan mean) against block, from two `sharpening_table`s."""
    return {"trained": trained["excess"], "untrained": untrained["excess"]}


def sharpening_title(trained: pd.DataFrame) -> str:
    """The figure's title, saying the direction the run computed."""
    return (f"Share of errors inside each block's own clusters (scan mean), above the shuffled "
            f"null: it {trend_phrase(trained['excess'], 'block')}"
            f"{peak_phrase(trained['excess'], 'block')}")


def single_threshold_verdicts(trained: list, untrained: list, rule: ClusterRule, repeats: int,
                              seed: int) -> tuple[Verdict, Verdict]:
    """The first books' C5 and C6 at the single `threshold` of `rule` (blocks' BlockCounts)."""
    table = structure_by_block(trained, rule, repeats, seed)
    return c5_verdict(table, rule), c6_verdict(table, structure_by_block(untrained, rule, repeats, seed))


def no_cluster_sentence(rule: ScanRule) -> str:
    """Why the cosine table is missing, when it is."""
    return (f"The last block has no cluster of two or more tokens at any threshold of the scan "
            f"({rule.describe()}): there is no pair of tokens within a cluster to compare.")


def heatmap_sentence(kept: int) -> str:
    """Why the confusion figure is missing, when it is."""
    return (f"Only {kept} token{'s' * (kept != 1)} pass{'es' * (kept == 1)} the noise filter at the "
            f"last block: a confusion matrix needs two, so there is no figure to draw.")


def c5_failures(last: Scan) -> list[str]:
    """Why C5's scan rule fails on the last block's scan (empty: it holds)."""
    table = last.primary(last.observed)
    bound = largest_bound(int(table["kept"].iloc[0]))
    clustered, null_top = last.clustered(), null_quantile(last.null_values("clustered"))
    failures = []
    if not table["clusters"].any():
        failures.append(f"no two of the {int(table['kept'].iloc[0]):,} kept tokens match strongly "
                        f"at any threshold {_span(table)}")
    hubs = table.index[table["largest"] > bound]
    if len(hubs):
        failures.append(f"the largest cluster exceeds {bound:g} tokens at threshold "
                        f"{', '.join(f'{t:g}' for t in hubs)}: a hub, not small clusters")
    if table["clusters"].any() and not clustered > null_top:
        failures.append(f"{clustered:,.0f} clustered tokens over the scan, no more than chance "
                        f"(shuffled null 95th percentile {null_top:,.1f})")
    return failures


def c6_failures(last: Scan, first: Scan, untrained: Scan) -> list[str]:
    """Why C6's scan rule fails (empty: it holds); NaN statistics are checked by the caller."""
    share, null_top = last.share(), null_quantile(last.null_values("share"))
    excess, first_excess, baseline = last.excess(), first.excess(), untrained.excess()
    failures = []
    if not share > null_top:
        failures.append(f"{share:.2%} of the last block's errors stay inside its clusters (scan mean), "
                        f"within the shuffled null (95th percentile {null_top:.2%})")
    if not excess > first_excess:
        failures.append(f"the excess is {excess:.4f} at the last block against {first_excess:.4f} at "
                        f"block 0: no sharpening")
    if not excess > baseline:
        failures.append(f"the untrained model's last block has at least as much excess "
                        f"({baseline:.4f} against {excess:.4f})")
    return failures


def _span(table) -> str:
    return f"{table.index[0]:g}-{table.index[-1]:g}"


def claim_power(power: pd.DataFrame | None, claim: str) -> pd.Series | None:
    """One claim's column of a power table (`reports.cluster_power.structural_power`), or None."""
    return None if power is None else power[claim]


def c5_scan_verdict(last: Scan, block: int, power: pd.DataFrame | None, planting: Planting | None,
                    single: Verdict, positions: str) -> Verdict:
    """C5 on the last block's scan of the W_test `positions` it reads (e.g. "masked"), with its
    power (None where nothing could be planted) and the single-threshold verdict beside it."""
    table = last.primary(last.observed)
    kept = int(table["kept"].iloc[0])
    null_mean = float(np.mean(last.null_values("clustered")))
    with_clusters = table.index[table["clusters"] > 0]
    this_run = (f"block {block}, {positions} positions, {last.match}, thresholds {_span(table)}: "
                f"{last.clustered():,.0f} clustered tokens summed over the scan (shuffled null "
                f"{null_mean:,.1f}, 95th "
                f"percentile {null_quantile(last.null_values('clustered')):,.1f}); clusters at "
                + (f"{', '.join(f'{t:g}' for t in with_clusters)}" if len(with_clusters) else "none")
                + f", largest {int(table['largest'].max()):,} of {kept:,} kept; at threshold alone: "
                f"{single.verdict}")
    statistic = (f"last block, {last.match} matches over the scan {_span(table)}: clusters of "
                 f"size >= 2 exist, the largest holds <= max({SMALL_TOKENS}, {SMALL_SHARE:.0%} of the "
                 f"kept tokens) at every threshold, and the clustered tokens summed over the scan "
                 f"exceed the 95th percentile of the within-row shuffle null")
    if kept == 0:
        return Verdict("C5", this_run, statistic, decide(None),
                       f"no token passes the noise filter at block {block}")
    failures = c5_failures(last)
    reason = "; ".join(failures) or (
        f"clusters at thresholds {', '.join(f'{t:g}' for t in with_clusters)}, the largest "
        f"{int(table['largest'].max())} tokens; {last.clustered():,.0f} clustered tokens against "
        f"{null_mean:,.1f} under the shuffled null")
    return Verdict("C5", this_run, statistic, decide(not failures),
                   f"{reason}; {power_phrase(claim_power(power, 'C5'), planting)}")


def c6_scan_verdict(last: Scan, first: Scan, untrained: Scan, power: pd.DataFrame | None,
                    planting: Planting | None, single: Verdict, positions: str) -> Verdict:
    """C6 on the scans of the trained model's block 0 and last block and the untrained model's
    last block (of the W_test `positions` they read), with its power and the single-threshold
    verdict beside it."""
    share, excess, first_excess, baseline = (last.share(), last.excess(), first.excess(),
                                             untrained.excess())
    this_run = (f"{positions} positions, in-cluster share of errors, scan mean: {share:.2%} at the "
                f"last block (shuffled null "
                f"95th percentile {null_quantile(last.null_values('share')):.2%}); excess "
                f"{first_excess:.4f} (block 0) → {excess:.4f} (last block), untrained {baseline:.4f}; "
                f"at threshold alone: {single.verdict}")
    statistic = ("per block, the share of its wrong predictions inside its own clusters, averaged "
                 "over the scan 0.2-0.8, minus the same under the within-row shuffle null (the "
                 "excess): the last block's share above the null's 95th percentile, its excess "
                 "above block 0's and above the untrained model's last block's")
    if not np.isfinite([share, excess, first_excess, baseline]).all():
        return Verdict("C6", this_run, statistic, decide(None),
                       "block 0 or the last block (trained or untrained) makes no wrong prediction: "
                       "no share to compare")
    failures = c6_failures(last, first, untrained)
    reason = "; ".join(failures) or (
        f"{share:.2%} of the last block's errors stay inside its clusters (scan mean), beyond the "
        f"shuffled null; the excess rises from {first_excess:.4f} at block 0 to {excess:.4f} and "
        f"beats the untrained model's {baseline:.4f}")
    return Verdict("C6", this_run, statistic, decide(not failures),
                   f"{reason}; {power_phrase(claim_power(power, 'C6'), planting)}")


def sharpening_table(scans: list[Scan]) -> pd.DataFrame:
    """Per block (index 0 = embeddings): kept tokens, clustered tokens summed over the scan and its
    null's 95th percentile, the in-cluster share (scan mean), its null's mean and 95th percentile,
    and the excess."""
    rows = []
    for result in scans:
        primary = result.primary(result.observed)
        shares = result.null_values("share")
        rows.append({"kept": int(primary["kept"].iloc[0]),
                     "clustered (scan sum)": result.clustered(),
                     "null clustered (95%)": null_quantile(result.null_values("clustered")),
                     "in-cluster share": result.share(),
                     "null share (mean)": float(np.nanmean(shares)),
                     "null share (95%)": null_quantile(shares),
                     "excess": result.excess()})
    return pd.DataFrame(rows, index=pd.RangeIndex(len(scans), name="block"))


def per_threshold_table(last: Scan, first: Scan, untrained: Scan) -> pd.DataFrame:
    """The scan reading at each (match, threshold) alone, each against its own null: C5 (clusters
    exist, the largest small, clustered tokens above the null's 95th percentile), C6 (in-cluster
    share above its null's 95th percentile, excess above block 0's and the untrained model's) and
    C10 (own-cluster share above its null's 95th percentile), as "holds" / "does not hold"."""
    table, base, untrained_table = scan_table(last), scan_table(first), scan_table(untrained)
    bound = table["kept"].map(largest_bound)
    c5 = (table["clusters"] > 0) & (table["largest"] <= bound) & (
        table["clustered"] > table["null clustered (95%)"])
    c6 = ((table["in-cluster share"] > table["null share (95%)"])
          & (table["excess share"] > base["excess share"])
          & (table["excess share"] > untrained_table["excess share"]))
    c10 = table["own-cluster share"] > table["null own-cluster share (95%)"]
    verdict = {True: "holds", False: "does not hold"}
    return pd.DataFrame({"clusters": table["clusters"], "largest": table["largest"],
                         "C5": c5.map(verdict), "C6": c6.map(verdict), "C10": c10.map(verdict)})


def holds_at_sentence(per_threshold: pd.DataFrame) -> str:
    """One Markdown sentence: at which thresholds of each match mode each claim's reading holds."""
    parts = []
    for claim in ("C5", "C6", "C10"):
        modes = []
        for match, rows in per_threshold.groupby(level="match", sort=False):
            held = rows.index.get_level_values("threshold")[rows[claim] == "holds"]
            modes.append(f"{match} " + (", ".join(f"{t:g}" for t in held) if len(held) else "none"))
        parts.append(f"**{claim}** at {'; '.join(modes)}")
    return ("Thresholds at which each reading holds on its own (no correction for the 14 looks: "
            "the verdicts at the end of this chapter pool the scan into one test): " + " · ".join(parts) + ".")
