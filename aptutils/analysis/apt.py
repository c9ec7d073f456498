"""Accuracy per token (APT): the per-token table, APT(50), binned curves, rank correlation, the
decomposition of the rise of <APT> into frequency groups, and the bootstrap primitives and their
`Interval` (the book's one confidence interval) that `analysis.rises` builds C1-C4's intervals over
tokens from.

Every per-token number rests on a reading (the kinds of modified position it counts: masked,
replaced, unchanged or several) and a token enters only with at least `min_occurrences` positions
of that reading. Used by chapter 2 (APT) and chapter 6 (confidence vs input APT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from ..core.counts import TokenCounts, token_counts
from ..core.kinds import KINDS, Kinds, reading_name
from ..data.masking import special_token_ids
from ..data.pretraining import PretrainingData
from ..readout.counting import BlockCounts

INTERVAL_LEVEL = 0.95  # of every bootstrap interval (percentile, central)
PAPER_MEAN_APT = {0: 0.037, 6: 0.31}  # Table 1 of the paper: <APT> at block 0 and block 6
BOOTSTRAP_CELLS = 2_000_000  # resampled values held in memory at once


def apt_table(counts: TokenCounts, pretraining_frequency: np.ndarray, kinds: Kinds = None,
              min_occurrences: int = 1) -> pd.DataFrame:
    """One row per token that occurs as a modified token in W_test (any kind).

    pretraining_frequency: occurrences of each token id in the pre-training set W_S, shape [V].
    Columns: token_id, frequency (in W_S), occurrences and apt on the reading `kinds` (None: all
    kinds), then apt_all and apt_<kind> for each kind. An APT is NaN where its reading has fewer
    than `min_occurrences` positions of the token.
    """
    frequency = np.asarray(pretraining_frequency)
    if frequency.shape != counts.total.shape[1:]:
        raise ValueError(f"pretraining_frequency has shape {frequency.shape}, "
                         f"expected {counts.total.shape[1:]} (one count per token id)")
    tokens = np.flatnonzero(counts.occurrences() > 0)
    columns = {"token_id": tokens, "frequency": frequency[tokens],
               "occurrences": counts.occurrences(kinds)[tokens],
               "apt": counts.apt(kinds, min_occurrences)[tokens],
               "apt_all": counts.apt(None, min_occurrences)[tokens]}
    for kind in KINDS:
        columns[f"apt_{kind}"] = counts.apt(kind, min_occurrences)[tokens]
    return pd.DataFrame(columns)


def apt50_most_frequent(table: pd.DataFrame, n: int = 50) -> float:
    """APT(50), first reading: mean APT of the n tokens most frequent in W_S among those of
    `table` with an APT (finite `apt`).

    Ties in frequency go to the lower token_id. Fewer than n such tokens: all of them.
    """
    ranked = table[table["apt"].notna()].sort_values(["frequency", "token_id"],
                                                     ascending=[False, True])
    return float(ranked["apt"].head(n).mean())


def apt50_min_occurrences(table: pd.DataFrame, min_occurrences: int = 50) -> float:
    """APT(50), second reading: mean APT of the tokens with at least `min_occurrences` positions
    (`occurrences`) in W_test. NaN if no token qualifies."""
    return float(table.loc[table["occurrences"] >= min_occurrences, "apt"].mean())


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of the rows of `values` [n] or [n, k].
    Shape [n_boot] or [n_boot, k]."""
    chunk = max(1, BOOTSTRAP_CELLS // max(len(values), 1))
    parts = [values[rng.integers(0, len(values), (min(chunk, n_boot - start), len(values)))]
             .mean(1) for start in range(0, n_boot, chunk)]
    return np.concatenate(parts)


@dataclass(frozen=True)
class Interval:
    """A statistic with its central INTERVAL_LEVEL percentile bootstrap interval; n: the units it
    rests on (tokens, samples, filters)."""

    estimate: float
    low: float
    high: float
    n: int = 0

    def above(self, value: float = 0.0) -> bool:
        """The whole interval lies above `value` (False when it is NaN)."""
        return bool(self.low > value)

    def below(self, value: float = 0.0) -> bool:
        """The whole interval lies below `value` (False when it is NaN)."""
        return bool(self.high < value)

    def text(self, signed: bool = False, percent: bool = False) -> str:
        """E.g. "0.002 [0.001, 0.003]", "+0.010 [-0.002, +0.021]" or "78% [65%, 90%]"."""
        form = ".0%" if percent else ("+.3f" if signed else ".3f")
        return f"{self.estimate:{form}} [{self.low:{form}}, {self.high:{form}}]"

    def __str__(self) -> str:
        return self.text()


NO_INTERVAL = Interval(np.nan, np.nan, np.nan, 0)


def percentile_interval(estimate: float, samples: np.ndarray, n: int = 0) -> Interval:
    """`estimate` with the central INTERVAL_LEVEL interval of its bootstrap samples (NaN ignored)."""
    tail = 100 * (1 - INTERVAL_LEVEL) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), n)


def _bin_edges(x: np.ndarray, bins: int | np.ndarray, log: bool) -> np.ndarray:
    if not np.isscalar(bins):
        return np.asarray(bins, dtype=float)
    spacing = np.geomspace if log else np.linspace
    return spacing(x.min(), x.max(), int(bins) + 1)


def binned_means(x: np.ndarray, y: np.ndarray, bins: int | np.ndarray, n_boot: int = 1000,
                 seed: int = 0, log: bool = True) -> pd.DataFrame:
    """Mean of y in bins of x, with a percentile bootstrap 95% CI of each bin's mean.

    bins: a number of bins (log- or linearly spaced from min(x) to max(x)) or explicit edges.
    Bins are [low, high), the last one [low, high]. Points with non-finite x or y, x outside the
    edges, or x <= 0 when log, are left out; empty bins are dropped.
    Columns: x_low, x_high, x_center (geometric mean of the edges when log, else midpoint),
    n, mean, ci_low, ci_high.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    usable = np.isfinite(x) & np.isfinite(y) & ((x > 0) if log else True)
    x, y = x[usable], y[usable]
    if len(x) == 0:
        condition = "finite x and y" + (" and x > 0" if log else "")
        raise ValueError(f"binned_means: no point has {condition}")
    edges = _bin_edges(x, bins, log)
    index = np.searchsorted(edges, x, side="right") - 1
    index[x == edges[-1]] = len(edges) - 2
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(len(edges) - 1):
        values = y[index == b]
        if len(values) == 0:
            continue
        low, high = edges[b], edges[b + 1]
        center = np.sqrt(low * high) if log else (low + high) / 2
        ci = percentile_interval(values.mean(), bootstrap_means(values, n_boot, rng))
        rows.append((low, high, center, len(values), ci.estimate, ci.low, ci.high))
    return pd.DataFrame(rows, columns=["x_low", "x_high", "x_center", "n", "mean",
                                       "ci_low", "ci_high"])


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of a with the same row of b; NaN for a constant row."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of a with the same row of b (a bootstrap's resamples)."""
    return rowwise_pearson(rankdata(a, axis=1), rankdata(b, axis=1))


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho over the pairs where both are finite; NaN with < 3 pairs or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < 3 or np.ptp(x[both]) == 0 or np.ptp(y[both]) == 0:
        return float("nan")
    return float(spearmanr(x[both], y[both]).statistic)


def spearman_ci(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Spearman rho of x and y and its percentile bootstrap interval (pairs resampled), over the
    pairs where both are finite (n: their number)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // len(x))
    samples = []
    for start in range(0, n_boot, chunk):
        pick = rng.integers(0, len(x), (min(chunk, n_boot - start), len(x)))
        samples.append(rowwise_spearman(x[pick], y[pick]))
    return percentile_interval(rho, np.concatenate(samples), len(x))


def frequency_groups(frequency: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Token indices split into n_groups equal-count groups by frequency, lowest first.

    Group sizes differ by at most one; tied frequencies at a boundary are split by index.
    """
    if not 1 <= n_groups <= len(frequency):
        raise ValueError(f"n_groups must be between 1 and the number of tokens ({len(frequency)}), "
                         f"got {n_groups}")
    order = np.argsort(np.asarray(frequency), kind="stable")
    return np.array_split(order, n_groups)


def rise_by_frequency(apt_first: np.ndarray, apt_last: np.ndarray, frequency: np.ndarray,
                      n_groups: int = 2) -> pd.DataFrame:
    """Split the rise of <APT> from one block to another into frequency groups.

    apt_first, apt_last, frequency: shape [N], one entry per token; tokens where either APT is
    NaN are left out. The total rise mean(apt_last) - mean(apt_first) equals the sum of the
    groups' contributions (n_g / N) * mean(apt_last - apt_first over the group).
    Columns: group (0 = lowest frequency), tokens, frequency_min, frequency_max, apt_first,
    apt_last (group means), contribution, share (contribution / total rise; NaN if no rise).
    """
    apt_first, apt_last = np.asarray(apt_first, float), np.asarray(apt_last, float)
    present = np.isfinite(apt_first) & np.isfinite(apt_last)
    first, last = apt_first[present], apt_last[present]
    frequency = np.asarray(frequency)[present]
    rise = last - first
    total = rise.mean()
    rows = []
    for group, members in enumerate(frequency_groups(frequency, n_groups)):
        contribution = rise[members].sum() / len(rise)
        share = contribution / total if total != 0 else np.nan
        rows.append((group, len(members), frequency[members].min(), frequency[members].max(),
                     first[members].mean(), last[members].mean(), contribution, share))
    return pd.DataFrame(rows, columns=["group", "tokens", "frequency_min", "frequency_max",
                                       "apt_first", "apt_last", "contribution", "share"])


def pretraining_frequency(data: PretrainingData, ws: int) -> np.ndarray:
    """Occurrences of every token in W_S (special tokens 0). Shape [vocab]."""
    return token_counts(data.samples.train_slice(ws), len(data.tokenizer),
                        special_token_ids(data.tokenizer))


def summary_row(counts: TokenCounts, frequency: np.ndarray, kinds: Kinds = None,
                min_occurrences: int = 1) -> dict[str, float]:
    """One row of Table 1: <APT> on the reading `kinds` first, then on all kinds and each kind,
    both APT(50) readings and the token-weighted accuracy on the reading, and on all kinds."""
    name = reading_name(kinds)
    table = apt_table(counts, frequency, kinds, min_occurrences)
    row = {f"⟨APT⟩ {name}": counts.mean_apt(kinds, min_occurrences)}
    row.update({f"⟨APT⟩ {other}": counts.mean_apt(other, min_occurrences)
                for other in ("all", *KINDS) if other != name})
    row[f"APT(50) top-50 {name}"] = apt50_most_frequent(table)
    row[f"APT(50) >=50 seen {name}"] = apt50_min_occurrences(table, max(50, min_occurrences))
    row[f"accuracy {name}"] = counts.kind_accuracy(kinds)
    if name != "all":
        row["accuracy all"] = counts.accuracy
    return row


def block_summary(readers: dict[str, list[BlockCounts]], frequency: np.ndarray,
                  kinds: Kinds = None, min_occurrences: int = 1,
                  rules: dict[str, TokenCounts] | None = None) -> pd.DataFrame:
    """Table 1: a `summary_row` per reader (e.g. "probe", "untrained, probe") and block, then
    one per trivial rule (block "any"), all on the same W_test. Indexed by (reader, block); the
    paper's <APT> stands beside blocks 0 and 6."""
    rows = [{"reader": reader, "block": block, **summary_row(item.counts, frequency, kinds,
                                                             min_occurrences),
             "paper ⟨APT⟩": PAPER_MEAN_APT.get(block, np.nan)}
            for reader, blocks in readers.items() for block, item in enumerate(blocks)]
    rows += [{"reader": rule, "block": "any", **summary_row(counts, frequency, kinds,
                                                            min_occurrences)}
             for rule, counts in (rules or {}).items()]
    return pd.DataFrame(rows).set_index(["reader", "block"])


def depth_curve(summary: pd.DataFrame, reader: str, column: str) -> pd.Series:
    """`column` of one reader of `block_summary` against block index."""
    rows = summary.loc[reader, column]
    return pd.Series(rows.to_numpy(dtype=float), index=pd.Index(rows.index.astype(int), name="block"))


def rise_decomposition(counts: dict[str, list[BlockCounts]], frequency: np.ndarray,
                       n_groups: int = 2, kinds: Kinds = None,
                       min_occurrences: int = 1) -> pd.DataFrame:
    """How much of the rise of <APT> (reading `kinds`) from block 0 to the last block each
    frequency group gives. Tokens: those with at least `min_occurrences` positions of the
    reading; groups are equal-count quantiles of W_S frequency."""
    tables = []
    for protocol, blocks in counts.items():
        first = blocks[0].counts.apt(kinds, min_occurrences)
        last = blocks[-1].counts.apt(kinds, min_occurrences)
        table = rise_by_frequency(first, last, frequency, n_groups)
        tables.append(table.assign(protocol=protocol))
    return pd.concat(tables).set_index(["protocol", "group"])
