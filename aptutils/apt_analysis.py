"""Chapter 2: APT against frequency, block by block, against W_S, and the verdicts on C1-C4."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .apt import apt50_min_occurrences, apt50_most_frequent, apt_table, rise_by_frequency, spearman_ci
from .blocks import BlockCounts
from .masking import KIND_NAMES, special_token_ids
from .pretrain import PretrainingData
from .pretraining_report import token_counts
from .verdicts import Verdict, decide

PAPER_MEAN_APT = {0: 0.037, 6: 0.31}
DIP_TOLERANCE = 0.01


def pretraining_frequency(data: PretrainingData, ws: int) -> np.ndarray:
    """Occurrences of every token in W_S (special tokens 0). Shape [vocab]."""
    return token_counts(data.samples.train_slice(ws), len(data.tokenizer),
                        special_token_ids(data.tokenizer))


def block_summary(counts: dict[str, list[BlockCounts]], frequency: np.ndarray) -> pd.DataFrame:
    """Table 1: per protocol and block, <APT> (all kinds and per kind), both APT(50) readings
    and the token-weighted accuracy. Indexed by (protocol, block)."""
    rows = []
    for protocol, blocks in counts.items():
        for block, item in enumerate(blocks):
            table = apt_table(item.counts, frequency)
            row = {"protocol": protocol, "block": block, "<APT>": item.counts.mean_apt()}
            row.update({f"<APT> {kind}": item.counts.mean_apt(kind) for kind in KIND_NAMES.values()})
            row["APT(50) top-50"] = apt50_most_frequent(table)
            row["APT(50) >=50 seen"] = apt50_min_occurrences(table)
            row["token-weighted accuracy"] = item.counts.accuracy
            row["paper <APT>"] = PAPER_MEAN_APT.get(block, np.nan)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["protocol", "block"])


def mean_apt_curves(summary: pd.DataFrame, column: str = "<APT>") -> dict[str, pd.Series]:
    """One series per protocol: `column` against block index."""
    return {protocol: summary.loc[protocol, column] for protocol in summary.index.levels[0]}


def rise_decomposition(counts: dict[str, list[BlockCounts]], frequency: np.ndarray,
                       n_groups: int = 2) -> pd.DataFrame:
    """How much of the rise of <APT> from block 0 to the last block each frequency group gives.

    Tokens are those modified in W_test; groups are equal-count quantiles of W_S frequency.
    """
    tables = []
    for protocol, blocks in counts.items():
        first, last = blocks[0].counts.apt(), blocks[-1].counts.apt()
        occurring = np.flatnonzero(blocks[-1].counts.total.sum(0) > 0)
        table = rise_by_frequency(first[occurring], last[occurring], frequency[occurring], n_groups)
        tables.append(table.assign(protocol=protocol))
    return pd.concat(tables).set_index(["protocol", "group"])


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
