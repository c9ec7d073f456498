"""Held-out MLM evaluation of a model through its own head, as counts per (kind, token).

Used during pre-training (chapter 1's curves) and for the series' held-out figures (chapter 2).
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.counts import TokenCounts


@torch.no_grad()
def heldout_counts(model, inputs: np.ndarray, labels: np.ndarray, kinds: np.ndarray,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> TokenCounts:
    """Count right predictions per (kind, true token) over a masked held-out set.

    inputs, labels, kinds: [N, L] arrays as made by `mask_tokens`; the head runs only on the
    modified positions.
    """
    vocab = model.config.vocab_size
    correct = torch.zeros(3 * vocab, dtype=torch.long)
    total = torch.zeros(3 * vocab, dtype=torch.long)
    loss_sum = 0.0
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    pad_id = model.config.pad_token_id
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(np.array(inputs[start:start + batch_size])).long().to(device)
        target = torch.as_tensor(np.array(labels[start:start + batch_size])).long().to(device)
        kind = torch.as_tensor(np.array(kinds[start:start + batch_size])).long().to(device)
        with autocast:
            out = model(input_ids=batch, attention_mask=(batch != pad_id).long(), labels=target)
        picked = target != -100
        truth = target[picked]
        slot = ((kind[picked] - 1) * vocab + truth).cpu()
        total += torch.bincount(slot, minlength=3 * vocab)
        hits = (out.logits.max(-1).indices == truth).cpu()
        correct += torch.bincount(slot[hits], minlength=3 * vocab)
        loss_sum += float(out.loss) * int(picked.sum())
    model.train(was_training)
    return TokenCounts(correct.view(3, vocab).numpy(), total.view(3, vocab).numpy(), loss_sum)
