"""Chapter 2: APT against frequency, block by block, against W_S, and the verdicts on C1-C4."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.apt import spearman_ci
from ..core.verdicts import Verdict, decide

DIP_TOLERANCE = 0.01


def c1_verdict(table: pd.DataFrame, protocol: str, seed: int) -> Verdict:
    """C1: Spearman rho of APT against W_S frequency at the last block, bootstrap 95% CI > 0."""
    seen = table[table["frequency"] > 0]
    rho, low, high = spearman_ci(np.log(seen["frequency"].to_numpy()), seen["apt"].to_numpy(), seed=seed)
    return Verdict("C1", f"rho = {rho:.3f} [{low:.3f}, {high:.3f}] over {len(seen):,} tokens",
                   f"Spearman rho of APT vs log W_S frequency, last block ({protocol}); "
                   "holds if the 95% bootstrap CI lies above 0",
                   decide(bool(low > 0) if np.isfinite(low) else None))


def c2_verdict(mean_apt_by_ws: dict[int, float]) -> Verdict:
    """C2: <APT> at the last block rises with every step up of W_S."""
    sizes = sorted(mean_apt_by_ws)
    values = [mean_apt_by_ws[ws] for ws in sizes]
    shown = ", ".join(f"{ws:,}: {value:.3f}" for ws, value in zip(sizes, values))
    rises = len(sizes) >= 2 and all(b > a for a, b in zip(values, values[1:]))
    return Verdict("C2", shown, "<APT> (last block, model's own head) strictly increasing over "
                   f"the {len(sizes)} W_S of the series", decide(bool(rises) if len(sizes) >= 2 else None))


def c3_verdict(summary: pd.DataFrame, protocol: str) -> Verdict:
    """C3: <APT> and both APT(50) readings higher at the last block than at block 0, and <APT>
    never falling by more than DIP_TOLERANCE from one block to the next."""
    rows = summary.loc[protocol]
    first, last = rows.iloc[0], rows.iloc[-1]
    columns = ["<APT>", "APT(50) top-50", "APT(50) >=50 seen"]
    higher = all(last[c] > first[c] for c in columns if np.isfinite(first[c]) and np.isfinite(last[c]))
    steps = np.diff(rows["<APT>"].to_numpy())
    monotone = bool((steps >= -DIP_TOLERANCE).all())
    figure = (f"<APT> {first['<APT>']:.3f} → {last['<APT>']:.3f}; APT(50) top-50 "
              f"{first['APT(50) top-50']:.3f} → {last['APT(50) top-50']:.3f}; largest dip "
              f"{max(0.0, -steps.min()):.3f}")
    return Verdict("C3", figure, f"{protocol}: last block above block 0 for <APT> and both APT(50) "
                   f"readings, and no block-to-block dip of <APT> larger than {DIP_TOLERANCE}",
                   decide(bool(higher and monotone)))


def c4_verdict(decomposition: pd.DataFrame, protocol: str) -> Verdict:
    """C4: the lower-frequency half of the tokens gives more than half of the rise of <APT>."""
    rows = decomposition.loc[protocol]
    low_share = float(rows["share"].iloc[0])
    total = float(rows["contribution"].sum())
    return Verdict("C4", f"low-frequency half: {low_share:.0%} of a rise of {total:+.3f}",
                   f"{protocol}: share of the block 0 → last rise of <APT> from the tokens below "
                   "the median W_S frequency; holds if > 50% and the rise is positive",
                   decide(bool(total > 0 and low_share > 0.5)))
