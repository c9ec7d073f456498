"""Per-block token predictions: the all-blocks counting engine and its store artifact.

Block 0 is the embedding output, blocks 1..n the transformer blocks. Any reader of
`readout.readers` (the lens, the probes) turns block b's features into logits; one forward pass
over W_test with `output_hidden_states` then gives, for every block and reader, counts per
(kind, token) and one sparse (true, predicted) confusion per kind, through the one counting engine
`core.counts.count_predictions`. Several maskings of W_test are counted one after the other and
pooled (memory stays that of one masking). Under torchrun / accelerate launch each process reads
a share of W_test's trunk batches and the integer counts of all processes are summed, so every
process holds the tables one process makes. Used by chapters 2, 3, 4 and 6.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

from ..core.counts import TokenCounts, count_predictions, summed_confusion
from ..core.device import autocast
from ..core.kinds import KINDS, Kinds, reading_kinds
from ..core.progress import live_bar
from ..readout.features import BlockFeatures, block_features
from ..readout.readers import BlockReader, TokenReader

# Positions whose logits are made at once. A token reader's argmax is taken over vocabulary
# slices with a running max, so the full [N, vocab] logits are never written: on the CPU a
# [2048, 1024] fp32 block (8 MB) stays in cache while its max is read (1.8x faster than 128
# positions' full logits at vocab 30,522 and width 128; predictions equal); on a GPU one slice.
POSITION_CHUNK, CPU_VOCAB_SLICE = 2048, 1024
TRUNK_BATCH = 64  # W_test samples per trunk pass (a process's share is whole trunk batches)


@dataclass(frozen=True)
class BlockCounts:
    """Counts of one block under one protocol: per (kind, token), and the sparse confusion.

    counts: every kind (rows masked, replaced, unchanged; a reading picks rows).
    confusion: [V, V] (true token, predicted token) -> modified positions of the kinds in
    `reading` (chapters 3-4 read it); by_kind: the three per-kind matrices it is summed from
    (None for a confusion known only summed).
    """

    counts: TokenCounts
    confusion: sp.csr_matrix
    by_kind: tuple[sp.csr_matrix, ...] | None = None
    reading: tuple[str, ...] = KINDS

    @classmethod
    def of_kinds(cls, counts: TokenCounts, by_kind: tuple[sp.csr_matrix, ...],
                 kinds: Kinds = None) -> "BlockCounts":
        """Counts whose confusion sums the per-kind matrices of the reading `kinds`."""
        chosen = reading_kinds(kinds)
        return cls(counts, summed_confusion(by_kind, chosen), tuple(by_kind), chosen)

    def select(self, kinds: Kinds) -> "BlockCounts":
        """The same counts with the confusion of another reading (no recount)."""
        if self.by_kind is None:
            if reading_kinds(kinds) == self.reading:
                return self
            raise ValueError("this confusion was stored summed over "
                             f"{', '.join(self.reading)}; it has no per-kind matrices to select from")
        return BlockCounts.of_kinds(self.counts, self.by_kind, kinds)

    def __add__(self, other: "BlockCounts") -> "BlockCounts":
        """Two sets of positions pooled (e.g. two maskings of W_test), read the same way."""
        if self.by_kind is None or other.by_kind is None:
            return replace(self, counts=self.counts + other.counts,
                           confusion=sp.csr_matrix(self.confusion + other.confusion))
        by_kind = tuple(sp.csr_matrix(a + b) for a, b in zip(self.by_kind, other.by_kind))
        return BlockCounts.of_kinds(self.counts + other.counts, by_kind, self.reading)


@torch.no_grad()
def sliced_argmax(hidden: torch.Tensor, decoder: torch.nn.Linear, width: int) -> torch.Tensor:
    """argmax over the vocabulary of decoder(hidden) [N, vocab], `width` vocabulary columns at a
    time with a running max: hidden [N, h] -> [N]. The full logits' argmax: each slice's logits
    are the same products, and a later slice wins only when strictly larger, so exact ties go to
    the lowest id as `argmax` does. (Matrix products of other shapes may round a last bit apart,
    which decides only logits tied to within fp32 rounding; on the book's readers, 42
    reader-blocks, the counts were equal to the full logits'.)"""
    weight, bias = decoder.weight, decoder.bias
    best = torch.full((len(hidden),), -torch.inf, device=hidden.device)
    chosen = torch.zeros(len(hidden), dtype=torch.long, device=hidden.device)
    for start in range(0, weight.shape[0], width):
        columns = slice(start, start + width)
        logits = (torch.addmm(bias[columns], hidden, weight[columns].t()) if bias is not None
                  else hidden @ weight[columns].t())
        top, where = logits.max(-1)
        better = top > best
        best = torch.where(better, top, best)
        chosen = torch.where(better, where + start, chosen)
    return chosen


@torch.no_grad()
def block_predictions(reader: BlockReader, block: int, features: torch.Tensor,
                      device: str = "cpu") -> torch.Tensor:
    """Token predicted by `reader` at each of block `block`'s positions, features [N, hidden]
    -> [N] (CPU): the argmax of fp32 logits (no autocast, so near-ties are not decided by bf16
    rounding; exact ties go to the lowest id), POSITION_CHUNK positions at a time; a
    `TokenReader`'s over vocabulary slices (`sliced_argmax`), never its full logits on the CPU."""
    on_cpu = torch.device(device).type == "cpu"
    if not len(features):
        return torch.zeros(0, dtype=torch.long)

    def predicted(part: torch.Tensor) -> torch.Tensor:
        if isinstance(reader, TokenReader):
            hidden, decoder = reader.decoder_input(block, part)
            width = CPU_VOCAB_SLICE if on_cpu else decoder.weight.shape[0]
            return sliced_argmax(hidden.float(), decoder, width)
        return reader.logits(block, part).float().argmax(-1)

    with autocast(device, "fp32"):
        return torch.cat([predicted(features[start:start + POSITION_CHUNK].to(device).float()).cpu()
                          for start in range(0, len(features), POSITION_CHUNK)])


def count_all_blocks(readers: dict[str, BlockReader], test: BlockFeatures, vocab_size: int,
                     device: str = "cpu") -> dict[str, list[BlockCounts]]:
    """Counts of every reader (by name) at each of its blocks, from one set of cached W_test
    features (test.features [blocks, N, hidden]); readers sit on `device`. The confusions are
    kept per kind (each BlockCounts reads all kinds; `select` picks a reading)."""
    result: dict[str, list[BlockCounts]] = {name: [] for name in readers}
    pairs = [(name, block) for name, reader in readers.items() for block in range(reader.blocks)]
    for name, block in live_bar(pairs, total=len(pairs), desc="counting", unit="block"):
        predicted = block_predictions(readers[name], block, test.features[block], device)
        counts, by_kind = count_predictions(predicted, test.labels, test.kinds, vocab_size,
                                            confusion=True)
        result[name].append(BlockCounts.of_kinds(counts, by_kind))
    return result


def processes() -> tuple[int, int]:
    """(rank, world) of this process: (0, 1) alone; under torchrun / accelerate launch
    (WORLD_SIZE > 1) those of the default process group, started here when nothing started it
    yet (gloo for CPU tensors, nccl for CUDA ones, each process on its LOCAL_RANK's GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def process_share(samples: int, rank: int, world: int) -> np.ndarray:
    """Indices of the samples process `rank` of `world` reads: trunk batches rank, rank + world,
    ... of TRUNK_BATCH samples, so each trunk pass is one the single process makes too."""
    starts = range(rank * TRUNK_BATCH, samples, world * TRUNK_BATCH)
    return np.concatenate([np.arange(s, min(s + TRUNK_BATCH, samples)) for s in starts]
                          or [np.zeros(0, np.int64)])


def no_features(config) -> BlockFeatures:
    """The features of no position (a process whose share of W_test is empty)."""
    empty = torch.zeros(0, dtype=torch.long)
    return BlockFeatures(torch.zeros(config.num_hidden_layers + 1, 0, config.hidden_size,
                                     dtype=torch.bfloat16), empty, empty)


def summed_over_processes(counted: dict[str, list[BlockCounts]],
                          world: int) -> dict[str, list[BlockCounts]]:
    """Every process's counts (integers, so the sum is exact in any order), summed."""
    if world == 1:
        return counted
    gathered: list = [None] * world
    dist.all_gather_object(gathered, counted)
    return {name: [sum(blocks[1:], blocks[0]) for blocks in
                   zip(*(part[name] for part in gathered))] for name in counted}


def count_maskings(model, readers: dict[str, BlockReader],
                   maskings: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], vocab_size: int,
                   device: str = "cpu") -> dict[str, list[BlockCounts]]:
    """`count_all_blocks` over several maskings (inputs, labels, kinds: [N, L] each) of the
    held-out samples, pooled: one trunk pass and one count per masking, the sums kept. Under
    several processes each reads its `process_share` and every process returns the sums."""
    rank, world = processes()
    pooled: dict[str, list[BlockCounts]] | None = None
    for inputs, labels, kinds in maskings:
        mine = process_share(len(inputs), rank, world)
        picked = [np.asarray(x)[mine] for x in (inputs, labels, kinds)] if world > 1 else \
            (inputs, labels, kinds)
        features = (block_features(model, *picked, batch_size=TRUNK_BATCH, device=device)
                    if len(picked[0]) else no_features(model.config))
        counted = summed_over_processes(count_all_blocks(readers, features, vocab_size, device),
                                        world)
        pooled = counted if pooled is None else {
            name: [a + b for a, b in zip(pooled[name], blocks)] for name, blocks in counted.items()}
    if pooled is None:
        raise ValueError("count_maskings: no masking given")
    return pooled


def save_block_counts(folder: Path, counts: dict[str, list[BlockCounts]]) -> None:
    """One npz per (protocol, block): correct, total [3, V] and the per-kind confusions as one
    COO list (kind index 0-2 in row order of `core.counts.KINDS`, rows, cols, data)."""
    for protocol, blocks in counts.items():
        for block, item in enumerate(blocks):
            parts = [m.tocoo() for m in item.by_kind]
            np.savez_compressed(
                folder / f"{protocol}-{block}.npz", correct=item.counts.correct,
                total=item.counts.total,
                kind=np.concatenate([np.full(p.nnz, k, np.int8) for k, p in enumerate(parts)]),
                rows=np.concatenate([p.row for p in parts]),
                cols=np.concatenate([p.col for p in parts]),
                data=np.concatenate([p.data for p in parts]))


def load_block_counts(folder: Path, protocol: str, kinds: Kinds = None) -> list[BlockCounts]:
    """The counts of every block of one protocol, block 0 first, their confusion summed over the
    reading `kinds` (None: all kinds). Files without per-kind confusions (written before the
    confusion was kept per kind) load with their summed confusion and only the reading all."""
    blocks = []
    files = folder.glob(f"{protocol}-[0-9]*.npz")  # reader names may hold "-" (tuned-lens)
    for path in sorted(files, key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        saved = np.load(path)
        vocab = saved["correct"].shape[1]
        counts = TokenCounts(saved["correct"], saved["total"])
        if "kind" not in saved.files:
            confusion = sp.csr_matrix((saved["data"], (saved["rows"], saved["cols"])),
                                      shape=(vocab, vocab))
            blocks.append(BlockCounts(counts, confusion).select(kinds))
            continue
        by_kind = tuple(
            sp.csr_matrix((saved["data"][saved["kind"] == k],
                           (saved["rows"][saved["kind"] == k], saved["cols"][saved["kind"] == k])),
                          shape=(vocab, vocab)) for k in range(len(KINDS)))
        blocks.append(BlockCounts.of_kinds(counts, by_kind, kinds))
    return blocks
