"""Chapter 4's token explorer: one row per token read in W_test, everything the book knows of it.

Columns: the token, its frequency in W_S, its positions of the reading in W_test, its APT at
every block through every reader (and a sparkline of the chosen reader's APT along the blocks,
the per-token view), its strong matches and cluster at the last block, and the wrong prediction
it gets most often there. Shown by `plotting.explorer` as a searchable, sortable table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..analysis.structure import Partition
from ..readout.counting import BlockCounts

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values) -> str:
    """APT values in [0, 1] as a row of block characters, one per value ("·" where undefined)."""
    return "".join("·" if not np.isfinite(v) else SPARK[min(int(v * len(SPARK)), len(SPARK) - 1)]
                   for v in values)


def strong_matches(partition: Partition, threshold: float) -> dict[int, list[int]]:
    """{token id: ids j != it with M(i, j) >= threshold} for every kept token (one-way)."""
    matrix = sp.coo_matrix(partition.normalised)
    found: dict[int, list[int]] = {}
    for i, j, value in zip(matrix.row, matrix.col, matrix.data):
        if i != j and value >= threshold:
            found.setdefault(int(partition.kept[i]), []).append(int(partition.kept[j]))
    return found


def cluster_members(partition: Partition) -> dict[int, list[int]]:
    """{token id: the ids of its strong-match cluster} for every token in a cluster of size >= 2."""
    members: dict[int, list[int]] = {}
    for label in np.unique(partition.labels):
        ids = partition.kept[partition.labels == label]
        if len(ids) >= 2:
            for token in ids:
                members[int(token)] = [int(t) for t in ids]
    return members


def top_error(confusion: sp.csr_matrix, token: int) -> tuple[int, int] | None:
    """(predicted id, count) of the token's most frequent wrong prediction, or None."""
    row = confusion.getrow(token).tocoo()
    wrong = row.col != token
    if not wrong.any():
        return None
    best = int(np.argmax(row.data[wrong]))
    return int(row.col[wrong][best]), int(row.data[wrong][best])


def token_table(counts: dict[str, list[BlockCounts]], protocol: str, partition: Partition,
                threshold: float, frequency: np.ndarray, kinds, tokens) -> pd.DataFrame:
    """One row per token with at least one position of the reading (`kinds`) in W_test.

    counts: reader -> per-block counts (chapter 2's); protocol: the reader whose confusion gives
    the last block's clusters, errors and sparkline; partition: that reader's last-block clusters
    (at `threshold`); frequency: [V] counts in W_S; tokens: id -> token string (e.g.
    `tokenizer.convert_ids_to_tokens`)."""
    last = counts[protocol][-1]
    positions = last.counts.occurrences(kinds)
    read = np.flatnonzero(positions > 0)
    names = np.array(tokens(list(range(len(positions)))), dtype=object)
    apt = {(reader, b): block.counts.apt(kinds)[read]
           for reader, blocks in counts.items() for b, block in enumerate(blocks)}
    depth = len(counts[protocol])
    matches, members = strong_matches(partition, threshold), cluster_members(partition)

    def listed(ids: list[int] | None) -> str:
        return " ".join(names[ids]) if ids else ""

    errors = [top_error(last.confusion, int(t)) for t in read]
    table = pd.DataFrame({
        "token": names[read], "W_S frequency": frequency[read].astype(int),
        "positions": positions[read].astype(int),
        f"APT along the blocks ({protocol})": [
            sparkline([apt[(protocol, b)][i] for b in range(depth)]) for i in range(len(read))],
        **{f"{reader} {b}": np.round(values, 3) for (reader, b), values in apt.items()},
        "strong matches (last block)": [listed(matches.get(int(t))) for t in read],
        "cluster (last block)": [listed(members.get(int(t))) for t in read],
        "most frequent wrong prediction": [f"{names[e[0]]} ({e[1]})" if e else ""
                                           for e in errors],
    })
    return table.sort_values("positions", ascending=False, kind="stable").reset_index(drop=True)
