"""Chapter 4, clustering: the verdict on C10 (errors land inside the true token's cluster).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.verdicts import Verdict, decide


def c10_verdict(shares: pd.Series) -> Verdict:
    """C10: at the last block, more than half of the wrong predictions stay inside the cluster."""
    last = float(shares.iloc[-1])
    return Verdict("C10", f"{last:.1%} of wrong predictions at the last block (block 0: {shares.iloc[0]:.1%})",
                   "share of wrong predictions (true token clustered) that land in the true token's "
                   "own strong-match cluster at the last block; holds if > 50%",
                   decide(bool(last > 0.5) if np.isfinite(last) else None))
