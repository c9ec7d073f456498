"""Block features: every block's hidden states at the modified positions of a masked set, from one
trunk pass. Used by chapters 2-4 and 6.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.device import autocast
from ..data.masking import mask_tokens, special_token_ids


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
        with autocast(device, "bf16"):
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
