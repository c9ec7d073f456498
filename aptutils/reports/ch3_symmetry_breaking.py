"""Chapter 3, symmetry breaking: the verdicts on C5 (small strong-match clusters), C6 (sharpening
along the blocks) and C7 (higher-order structure), each decided against a null, each with a reason
computed from the run.

The tables are `analysis.structure.structure_by_block`: per block, its own clusters and the share
of its wrong predictions that stay inside them, beside the within-row shuffle null.

- C5 (last block): clusters of size >= 2 exist; the largest is small, <= max(20 tokens, 5% of the
  kept tokens); and more tokens are clustered than the null's 95th percentile.
- C6: the last block's in-cluster share exceeds its null's 95th percentile; its excess over the
  null's mean is above block 0's; and above the untrained model's last block's. No block is read
  with another block's clusters, and no statistic rewards predictions collapsing onto one token.
- C7: C5 and C6 both hold (structure beyond chance, made by pre-training, built up by the blocks).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule
from ..analysis.structure import counted, trend, trend_phrase
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
    this_run = (f"excess in-cluster share {first:.3f} (block 0) → {last:.3f} (block {block}); "
                f"untrained block {untrained.index[-1]}: {baseline:.3f}")
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
                        f"({first:.3f}) to block {block} ({last:.3f})")
    if not last > baseline:
        failures.append(f"the untrained model's last block has at least as much excess ({baseline:.3f} "
                        f"against {last:.3f})")
    reason = "; ".join(failures) or (
        f"{share:.1%} of block {block}'s errors stay inside its clusters against {null_mean:.1%} "
        f"under the shuffled null; the excess rises from {first:.3f} at block 0 to {last:.3f} and "
        f"beats the untrained model's {baseline:.3f}")
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
    """The excess in-cluster share against block, trained and untrained."""
    return {"trained": trained[EXCESS], "untrained": untrained[EXCESS]}


def sharpening_title(trained: pd.DataFrame) -> str:
    """The figure's title, saying the direction the run computed."""
    return (f"Share of errors inside each block's own clusters, above the shuffled null: it "
            f"{trend_phrase(trained[EXCESS], 'block')}")
