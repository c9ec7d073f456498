"""What a cluster verdict could have seen: its detection rate on structure planted at the run's
own counts (chapters 3, 4 and 7).

A "does not hold" means little unless the rule could have found what the paper reports. So a
verdict's rule is run on matrices whose structure is known: the run's own confusion with its
structure shuffled away (`clusters.shuffled_errors`: every row keeps its total and its diagonal,
so every token keeps its count and its accuracy), then `clusters` groups of `size` tokens planted
at strength s — each planted token sends a share s of its predictions to its partners, taken out
of its own wrong predictions (never out of its right ones, so its accuracy stays the run's; a
token with fewer errors than s of its predictions sends all of them). The rate at which the rule
fires against s is its power curve; at s = 0 nothing is planted and the rate is the rule's false
positive rate on this run's counts (its null rate, near 5% for a rule at a 95th percentile).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.progress import live_bar
from .clusters import shuffled_errors

STRENGTHS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
DETECTED = 0.8  # a structure counts as seen when the rule finds it in this share of plants
Detector = Callable[[sp.csr_matrix], dict[str, bool]]  # planted counts -> {rule: fires}


@dataclass(frozen=True)
class Planting:
    """What is planted: `clusters` groups of `size` tokens each, `plants` times per strength,
    at every strength of `strengths` (shares of a token's predictions, in [0, 1])."""

    size: int = 2
    clusters: int = 10
    plants: int = 40
    strengths: tuple[float, ...] = STRENGTHS

    def __post_init__(self) -> None:
        if self.size < 2 or self.clusters < 1 or self.plants < 1:
            raise ValueError(f"a planting needs size >= 2, clusters >= 1 and plants >= 1, got {self}")
        if not all(0 <= s <= 1 for s in self.strengths):
            raise ValueError(f"strengths must be shares in [0, 1], got {self.strengths}")

    def describe(self) -> str:
        return (f"{self.clusters} planted {'pairs' if self.size == 2 else f'clusters of {self.size}'} "
                f"({self.clusters * self.size} tokens), {self.plants} plants per strength")


def plant_clusters(counts, groups: np.ndarray, strength: float,
                   rng: np.random.Generator) -> sp.csr_matrix:
    """Integer counts [V, V] with `groups` [m, size] of token ids planted at `strength`.

    Each planted token i with n_i predictions moves Binomial(n_i, strength) of them (at most its
    wrong ones) from its wrong predictions, drawn without replacement, to its partners, dealt
    uniformly among them. Row totals and diagonals are unchanged.
    """
    counts = sp.csr_matrix(counts, dtype=np.int64)
    rows, cols, values = [], [], []
    for group in np.asarray(groups):
        for token in group:
            start, stop = counts.indptr[token], counts.indptr[token + 1]
            columns, entries = counts.indices[start:stop], counts.data[start:stop]
            wrong = columns != token
            moved = min(rng.binomial(int(entries.sum()), strength), int(entries[wrong].sum()))
            if moved == 0:
                continue
            taken = rng.multivariate_hypergeometric(entries[wrong], moved)
            partners = group[group != token]
            given = rng.multinomial(moved, np.full(len(partners), 1 / len(partners)))
            rows += [token] * (len(taken) + len(partners))
            cols += [*columns[wrong], *partners]
            values += [*(-taken), *given]
    delta = sp.csr_matrix((values, (rows, cols)), shape=counts.shape, dtype=np.int64)
    planted = counts + delta
    planted.eliminate_zeros()
    return planted


def power_curve(confusion, detect: Detector, candidates: np.ndarray, planting: Planting,
                seed, desc: str = "power") -> pd.DataFrame:
    """Detection rate of each rule of `detect` per planted strength, [strengths x rules].

    Every plant shuffles the run's integer counts [V, V] anew and draws its planted tokens
    (without replacement) from `candidates`, the same for every strength of that plant (common
    random numbers: the curve moves with the strength, not with the draw). Seeded by `seed`; a
    live bar named `desc` counts the plants where a terminal watches.
    """
    candidates = np.asarray(candidates)
    needed = planting.clusters * planting.size
    if len(candidates) < needed:
        raise ValueError(f"{needed} planted tokens need as many candidates, got {len(candidates)}")
    rng = np.random.default_rng(seed)
    fired: dict[float, list[dict[str, bool]]] = {s: [] for s in planting.strengths}
    for _ in live_bar(range(planting.plants), desc=desc):
        base = shuffled_errors(confusion, rng)
        groups = rng.choice(candidates, needed, replace=False).reshape(planting.clusters, planting.size)
        for strength in planting.strengths:
            matrix = plant_clusters(base, groups, strength, rng) if strength > 0 else base
            fired[strength].append(detect(matrix))
    table = pd.DataFrame({s: pd.DataFrame(runs).mean() for s, runs in fired.items()}).T
    table.index.name = "strength"
    return table


def weakest_detected(rates: pd.Series, level: float = DETECTED) -> float:
    """The smallest planted strength > 0 at which the rule fires in >= `level` of the plants;
    NaN if none."""
    seen = rates[(rates.index > 0) & (rates >= level)]
    return float(seen.index[0]) if len(seen) else float("nan")


def strongest_detected(rates: pd.Series, level: float = DETECTED) -> float:
    """The largest strength up to which the rule fires in >= `level` of the plants at every
    strength from `weakest_detected` on; NaN if none. Beyond it a planted token may send more
    predictions to its partner than to itself, and the noise filter drops it."""
    weakest = weakest_detected(rates, level)
    if np.isnan(weakest):
        return weakest
    above = rates[rates.index >= weakest]
    failed = above.index[above < level]
    return float(above.index[above.index < failed[0]][-1]) if len(failed) else float(above.index[-1])


def power_phrase(rates: pd.Series | None, planting: Planting | None, level: float = DETECTED) -> str:
    """E.g. "power: the rule finds 10 planted pairs in >= 80% of plants at strengths 0.05-0.4
    (null rate 6%)"; without a curve, why there is none."""
    if rates is None or planting is None:
        return "power not measured: fewer than two tokens pass the filter, nothing to plant"
    weakest, strongest = weakest_detected(rates, level), strongest_detected(rates, level)
    null = f"null rate {rates.loc[0.0]:.0%}" if 0.0 in rates.index else "no null rate"
    what = (f"{planting.clusters} planted {'pairs' if planting.size == 2 else f'clusters of {planting.size}'}")
    if np.isnan(weakest):
        return (f"power: the rule finds {what} in < {level:.0%} of plants at every strength up to "
                f"{max(planting.strengths):g} ({null}): this run could not have seen them")
    after = rates[rates.index > strongest]
    beyond = (f"; at {after.index[0]:g} {after.iloc[0]:.0%}: a token sending more to its partner "
              f"than it gets right fails the filter" if len(after) else "")
    return (f"power: the rule finds {what} in >= {level:.0%} of plants at strengths "
            f"{weakest:g}-{strongest:g} ({null}){beyond}")
