"""Chapter 3, symmetry breaking: the verdicts on C5 (small strong-match clusters), C6 (sharpening
along the blocks) and C7 (higher-order structure).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.structure import Partition
from ..core.verdicts import Verdict, decide

LARGEST_CLUSTER_SHARE = 0.01


def c5_verdict(last: Partition, threshold: float, match: str) -> Verdict:
    """C5: clusters of size >= 2 exist and the largest holds at most 1% of the kept tokens."""
    sizes = last.sizes
    clusters = int((sizes >= 2).sum())
    share = sizes[0] / len(last.kept) if len(last.kept) else float("nan")
    return Verdict("C5", f"{clusters:,} clusters; largest {int(sizes[0]) if len(sizes) else 0} of "
                   f"{len(last.kept):,} kept tokens ({share:.1%})",
                   f"last block, threshold {threshold}, {match}: at least one cluster of size >= 2 and "
                   f"the largest holding <= {LARGEST_CLUSTER_SHARE:.0%} of the kept tokens",
                   decide(bool(clusters > 0 and share <= LARGEST_CLUSTER_SHARE) if len(last.kept) else None))


def c6_verdict(table: pd.DataFrame) -> Verdict:
    """C6: SNR higher and mean row entropy lower at the last block than at the embedding layer."""
    first, last = table.iloc[0], table.iloc[-1]
    sharper = bool(last["SNR"] > first["SNR"] and last["mean row entropy (bits)"] < first["mean row entropy (bits)"])
    return Verdict("C6", f"SNR {first['SNR']:.2f} → {last['SNR']:.2f}; entropy "
                   f"{first['mean row entropy (bits)']:.2f} → {last['mean row entropy (bits)']:.2f} bits",
                   "over the last block's clustered tokens: SNR (in- vs off-cluster confusion mass) "
                   "higher and mean row entropy lower at the last block than at block 0",
                   decide(sharper if np.isfinite([first["SNR"], last["SNR"]]).all() else None))


def c7_verdict(c5: Verdict, c6: Verdict, trained_snr: float, untrained_snr: float) -> Verdict:
    """C7: C5 and C6 hold, and the trained model's last block beats the untrained model's SNR."""
    measured = "not measured" not in (c5.verdict, c6.verdict) and np.isfinite([trained_snr, untrained_snr]).all()
    built = c5.verdict == "holds" and c6.verdict == "holds" and trained_snr > untrained_snr
    return Verdict("C7", f"C5 {c5.verdict}, C6 {c6.verdict}; last-block SNR trained {trained_snr:.2f} "
                   f"vs untrained {untrained_snr:.2f}",
                   "C5 and C6 hold and pre-training raised the last block's SNR above the untrained model's",
                   decide(bool(built) if measured else None))
