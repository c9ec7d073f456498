"""Per-block token predictions: the lens and probe protocols, and the all-blocks counting engine.

Block 0 is the embedding output, blocks 1..n the transformer blocks. Two ways to read tokens off
block b: `lens` applies the trained MLM head to block b's output; `probe` trains a fresh MLM head
on block b's output over W_S with the trunk frozen (all blocks' probes train together from one
pass of cached features). One forward pass over W_test with `output_hidden_states` then gives,
for every block and protocol, counts per (kind, token) and the sparse (true, predicted) confusion.
Used by chapters 2, 3, 4 and 6.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from .evaluation import TokenCounts
from .masking import mask_tokens, special_token_ids

PROTOCOLS = ("probe", "lens")
POSITIONS_PER_CHUNK = 2048  # logits of one chunk at vocab 30,522: 250 MB in bf16


@dataclass(frozen=True)
class BlockFeatures:
    """Hidden states at the modified positions of a masked set, for every block.

    features: [blocks, N, hidden] (bf16), labels: [N] true token ids, kinds: [N] in {1, 2, 3}.
    """

    features: torch.Tensor
    labels: torch.Tensor
    kinds: torch.Tensor


@torch.no_grad()
def block_features(model, inputs: np.ndarray, labels: np.ndarray, kinds: np.ndarray,
                   batch_size: int = 64, device: str = "cpu") -> BlockFeatures:
    """One trunk pass with `output_hidden_states`; keep every block's output at modified positions."""
    model.eval()
    pad_id = model.config.pad_token_id
    kept_features, kept_labels, kept_kinds = [], [], []
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(np.array(inputs[start:start + batch_size])).long().to(device)
        target = torch.as_tensor(np.array(labels[start:start + batch_size])).long()
        picked = target != -100
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            hidden = model.bert(input_ids=batch, attention_mask=(batch != pad_id).long(),
                                output_hidden_states=True).hidden_states
        picked_device = picked.to(device)
        kept_features.append(torch.stack([h[picked_device] for h in hidden]).to("cpu", torch.bfloat16))
        kept_labels.append(target[picked])
        kept_kinds.append(torch.as_tensor(np.array(kinds[start:start + batch_size]))[picked].long())
    return BlockFeatures(torch.cat(kept_features, 1), torch.cat(kept_labels), torch.cat(kept_kinds))


def masked_training_rows(rows: np.ndarray, tokenizer, mask_prob: float, seed: int):
    """A fixed mask over W_S rows for probe training: (inputs, labels, kinds), each [N, L]."""
    return mask_tokens(rows, special_token_ids(tokenizer), tokenizer.mask_token_id, len(tokenizer),
                       mask_prob, seed=seed)


def new_probe_heads(config, blocks: int, seed: int,
                    embeddings: torch.Tensor | None = None) -> torch.nn.ModuleList:
    """One fresh BERT MLM head per block (transform + decoder), seeded.

    embeddings: the model's input embeddings [V, hidden]. Given, every decoder's weight is this
    one frozen matrix, as `BertForMaskedLM` ties its head to the embeddings, and a head trains its
    transform and output bias only. None: the decoders are fresh and trained too.
    """
    torch.manual_seed(seed)
    heads = torch.nn.ModuleList(BertOnlyMLMHead(config) for _ in range(blocks))
    for head in heads:
        for module in head.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=config.initializer_range)
                torch.nn.init.zeros_(module.bias)
    if embeddings is not None:
        shared = torch.nn.Parameter(embeddings.detach().clone(), requires_grad=False)
        for head in heads:
            head.predictions.decoder.weight = shared
    return heads


def _frozen_names(heads: torch.nn.Module) -> set[str]:
    """Every name of every frozen parameter, shared ones under each of their names."""
    return {name for name, p in heads.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trained_state(heads: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed (a tied probe's frozen embeddings left out)."""
    frozen = _frozen_names(heads)
    return {name: value for name, value in heads.state_dict().items() if name not in frozen}


def load_trained_state(heads: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `trained_state` saved; every other parameter must be a frozen one."""
    missing, unexpected = heads.load_state_dict(state, strict=False)
    frozen = _frozen_names(heads)
    if unexpected or set(missing) - frozen:
        raise ValueError(f"saved heads do not match: missing {sorted(set(missing) - frozen)}, "
                         f"unexpected {sorted(unexpected)}")


def train_heads_jointly(heads: torch.nn.ModuleList, features, labels: torch.Tensor, epochs: float,
                        learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
                        bf16: bool = True, progress: bool = False) -> list[float]:
    """Train head k on features[k] (cached, [N, d_k] each), all heads in one loop: AdamW with
    weight decay 0.01, linear decay to 0, the same seeded batches for every head.

    Returns the mean training loss (nats) of each head over the last epoch's worth of steps.
    Used for the probe heads here and the per-layer output layers of chapter 7.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    steps = max(1, math.ceil(epochs * len(labels) / batch_size))
    trained = [p for p in heads.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    recent = []
    heads.to(device).train()
    for _ in tqdm(range(steps), desc="heads", disable=not progress, mininterval=5):
        picked = torch.randint(len(labels), (batch_size,), generator=generator)
        target = labels[picked].to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            losses = [F.cross_entropy(head(features[k][picked].to(device)).float(), target)
                      for k, head in enumerate(heads)]
        torch.stack(losses).sum().backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        recent.append([float(loss.detach()) for loss in losses])
    heads.eval()
    return np.mean(recent[-max(1, steps // max(1, math.ceil(epochs))):], axis=0).tolist()


def train_probe_heads(heads: torch.nn.ModuleList, train: BlockFeatures, epochs: float,
                      learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
                      progress: bool = True) -> list[float]:
    """Train probe head b on block b's cached features (bf16 autocast); loss per head (nats)."""
    return train_heads_jointly(heads, train.features, train.labels, epochs, learning_rate,
                               batch_size, seed, device, bf16=True, progress=progress)


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
