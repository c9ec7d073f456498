"""Block readers: given one block's features, predict tokens (or labels).

A `BlockReader` is whatever turns block b's features [N, hidden_b] into logits [N, classes]. The
counting engine (`readout.counting.count_all_blocks`) reads every block through any reader, so a
new way of reading (a reader for a checkpoint without an MLM head) is one new class here and
nothing else. `LensReader`, `ProbeReader` and `TunedLensReader` are the protocols of chapters 2-4
and 6 (they read block counts); `LayerReader` reads chapter 7's CNN layers through their new
output layers.

A `TokenReader` (the lens, the tuned lens, the probe) also says what reaches its vocabulary
decoder (`decoder_input`), so the counting engine can take the argmax slice by slice of the
vocabulary without writing the full [N, vocab] logits.

Readers are used as they are: the caller puts them on the features' device and in eval mode, and
opens the autocast region.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

BLOCK_READERS = ("probe", "lens", "tuned-lens")  # the readers of the block counts, by name


@runtime_checkable
class BlockReader(Protocol):
    """Reads blocks 0 .. blocks-1: logits(block, features [N, hidden_b]) -> [N, classes]."""

    @property
    def name(self) -> str: ...

    @property
    def blocks(self) -> int: ...

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class TokenReader(BlockReader, Protocol):
    """A reader whose logits are a linear decoder over the vocabulary:
    logits(block, x) = decoder(h) with (h [N, hidden], decoder) = decoder_input(block, x)."""

    def decoder_input(self, block: int, features: torch.Tensor) -> tuple[torch.Tensor, nn.Linear]: ...


def mlm_decoder_input(head: nn.Module, features: torch.Tensor) -> tuple[torch.Tensor, nn.Linear]:
    """A BERT MLM head (`BertOnlyMLMHead`) split before its decoder: (transform(features) [N,
    hidden], the decoder Linear(hidden, vocab)); head(features) = decoder(transform(features))."""
    predictions = head.predictions
    return predictions.transform(features), predictions.decoder


@dataclass(frozen=True)
class LensReader:
    """The model's own trained MLM head (`model.cls`) applied to every block's output ("lens"):
    block 0 is the embedding output, blocks 1..n the transformer blocks."""

    model: nn.Module
    name: str = "lens"

    @property
    def blocks(self) -> int:
        return self.model.config.num_hidden_layers + 1

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor:
        """[N, hidden] -> [N, vocab]; the same head at every block."""
        return self.model.cls(features)

    def decoder_input(self, block: int, features: torch.Tensor) -> tuple[torch.Tensor, nn.Linear]:
        return mlm_decoder_input(self.model.cls, features)


@dataclass(frozen=True)
class TunedLensReader:
    """The tuned lens (`readout.tuned_lens`): block b's features go through its affine translator
    into the last block's space, then through the model's own MLM head; the last block's
    translator is the identity, so there the tuned lens is the lens."""

    model: nn.Module
    translators: nn.ModuleList  # [blocks]: Linear(hidden, hidden) per block, nn.Identity last
    name: str = "tuned-lens"

    @property
    def blocks(self) -> int:
        return len(self.translators)

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor:
        """[N, hidden] -> [N, vocab]: model.cls(A_b features + c_b)."""
        return self.model.cls(self.translators[block](features))

    def decoder_input(self, block: int, features: torch.Tensor) -> tuple[torch.Tensor, nn.Linear]:
        return mlm_decoder_input(self.model.cls, self.translators[block](features))


@dataclass(frozen=True)
class HeadsReader:
    """One trained head per block: logits of block b = heads[b](features)."""

    heads: nn.ModuleList
    name: str

    @property
    def blocks(self) -> int:
        return len(self.heads)

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor:
        """[N, hidden_b] -> [N, classes] through block b's own head."""
        return self.heads[block](features)


@dataclass(frozen=True)
class ProbeReader(HeadsReader):
    """The probe protocol: a fresh MLM head per block trained on the frozen block
    (`readout.probes`); logits [N, vocab]."""

    name: str = "probe"

    def decoder_input(self, block: int, features: torch.Tensor) -> tuple[torch.Tensor, nn.Linear]:
        return mlm_decoder_input(self.heads[block], features)


@dataclass(frozen=True)
class LayerReader(HeadsReader):
    """Chapter 7's new output layers (`readout.layers.LayerHead`), one per frozen conv layer
    (list index 0 = layer 1): pooled features [N, C_k * grid^2] -> label logits [N, labels]."""

    name: str = "layer"
