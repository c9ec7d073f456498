"""Held-out MLM evaluation of a model through its own head, as counts per (kind, token).

Used during pre-training (chapter 1's curves) and by chapter 1's readings of W_test and of each
model's own training samples (the W_S series of chapter 2 is read as the lens reads a last block:
`readout.reading.last_block_counts`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.counts import IGNORE, TokenCounts, count_predictions
from ..core.device import autocast


@torch.no_grad()
def heldout_counts(model, inputs: np.ndarray, labels: np.ndarray, kinds: np.ndarray,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> TokenCounts:
    """Count right predictions per (kind, true token) over a masked held-out set.

    inputs, labels, kinds: [N, L] arrays as made by `mask_tokens`; the head runs only on the
    modified positions. loss_sum: the summed cross-entropy (nats) over those positions.
    """
    predicted, truths, kinds_kept = [], [], []
    loss_sum = 0.0
    was_training = model.training
    model.eval()
    pad_id = model.config.pad_token_id
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(np.array(inputs[start:start + batch_size])).long().to(device)
        target = torch.as_tensor(np.array(labels[start:start + batch_size])).long().to(device)
        kind = torch.as_tensor(np.array(kinds[start:start + batch_size])).long().to(device)
        with autocast(device, precision):
            out = model(input_ids=batch, attention_mask=(batch != pad_id).long(), labels=target)
        picked = target != IGNORE
        predicted.append(out.logits.max(-1).indices.cpu())
        truths.append(target[picked].cpu())
        kinds_kept.append(kind[picked].cpu())
        loss_sum += float(out.loss) * int(picked.sum())
    model.train(was_training)
    empty = torch.zeros(0, dtype=torch.long)
    counts, _ = count_predictions(torch.cat(predicted or [empty]), torch.cat(truths or [empty]),
                                  torch.cat(kinds_kept or [empty]), model.config.vocab_size)
    return TokenCounts(counts.correct, counts.total, loss_sum)
