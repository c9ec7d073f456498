"""Per-block token predictions: the lens and probe protocols, and the all-blocks counting engine.

Block 0 is the embedding output, blocks 1..n the transformer blocks. Two ways to read tokens off
block b: `lens` applies the trained MLM head to block b's output; `probe` trains a fresh MLM head
on block b's output over W_S with the trunk frozen (all blocks' probes train together from one
pass of cached features). One forward pass over W_test with `output_hidden_states` then gives,
for every block and protocol, counts per (kind, token) and the sparse (true, predicted) confusion.
Used by chapters 2, 3, 4 and 6.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..core.counts import TokenCounts
from ..readout.features import BlockFeatures

PROTOCOLS = ("probe", "lens")
POSITIONS_PER_CHUNK = 2048  # logits of one chunk at vocab 30,522: 250 MB in bf16


@dataclass
class BlockCounts:
    """Counts of one block under one protocol: per (kind, token), and the sparse confusion."""

    counts: TokenCounts
    confusion: sp.csr_matrix  # [V, V]: (true token, predicted token) -> modified positions


@torch.no_grad()
def count_block(head, features: torch.Tensor, labels: torch.Tensor, kinds: torch.Tensor,
                vocab_size: int, device: str = "cpu") -> BlockCounts:
    """Run a head over one block's features in chunks; count right answers and confusions."""
    predicted = torch.cat([
        head(features[start:start + POSITIONS_PER_CHUNK].to(device)).max(-1).indices.cpu()
        for start in range(0, len(labels), POSITIONS_PER_CHUNK)
    ]) if len(labels) else torch.zeros(0, dtype=torch.long)
    slot = (kinds - 1) * vocab_size + labels
    total = torch.bincount(slot, minlength=3 * vocab_size)
    correct = torch.bincount(slot[predicted == labels], minlength=3 * vocab_size)
    pairs, occurrences = np.unique(labels.numpy().astype(np.int64) * vocab_size + predicted.numpy(),
                                   return_counts=True)
    confusion = sp.csr_matrix((occurrences, (pairs // vocab_size, pairs % vocab_size)),
                              shape=(vocab_size, vocab_size))
    counts = TokenCounts(correct.view(3, vocab_size).numpy(), total.view(3, vocab_size).numpy())
    return BlockCounts(counts, confusion)


def count_all_blocks(heads_by_protocol: dict[str, list], test: BlockFeatures, vocab_size: int,
                     device: str = "cpu") -> dict[str, list[BlockCounts]]:
    """Counts for every protocol and block from one set of cached W_test features."""
    result = {}
    for protocol, heads in heads_by_protocol.items():
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            result[protocol] = [count_block(head.to(device).eval(), test.features[b], test.labels,
                                            test.kinds, vocab_size, device)
                                for b, head in enumerate(heads)]
    return result


def save_block_counts(folder: Path, counts: dict[str, list[BlockCounts]]) -> None:
    """One npz per (protocol, block): correct, total [3, V] and the confusion as COO arrays."""
    for protocol, blocks in counts.items():
        for block, item in enumerate(blocks):
            coo = item.confusion.tocoo()
            np.savez_compressed(folder / f"{protocol}-{block}.npz", correct=item.counts.correct,
                                total=item.counts.total, rows=coo.row, cols=coo.col, data=coo.data)


def load_block_counts(folder: Path, protocol: str) -> list[BlockCounts]:
    """The counts of every block of one protocol, block 0 first."""
    blocks = []
    for path in sorted(folder.glob(f"{protocol}-*.npz"), key=lambda p: int(p.stem.split("-")[1])):
        saved = np.load(path)
        vocab = saved["correct"].shape[1]
        confusion = sp.csr_matrix((saved["data"], (saved["rows"], saved["cols"])), shape=(vocab, vocab))
        blocks.append(BlockCounts(TokenCounts(saved["correct"], saved["total"]), confusion))
    return blocks
