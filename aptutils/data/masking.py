"""MLM masking: select mask_prob of the non-special tokens; 80% [MASK], 10% random, 10% unchanged.

Each modified position keeps its kind, so accuracy can be split by kind. Used by chapters 1-6.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.counts import IGNORE, KIND_NAMES, MASKED, NOT_MODIFIED, REPLACED, UNCHANGED

__all__ = ["IGNORE", "KIND_NAMES", "MASKED", "NOT_MODIFIED", "REPLACED", "UNCHANGED", "MLMCollator",
           "mask_tokens", "special_token_ids"]


def special_token_ids(tokenizer) -> list[int]:
    """Ids that are never selected and never drawn as random replacements."""
    return sorted(set(tokenizer.all_special_ids))


def mask_tokens(input_ids, special_ids: list[int], mask_id: int, vocab_size: int, mask_prob: float,
                seed: int | None = None):
    """Mask a batch of token ids [B, L] (numpy or torch; the result has the same type).

    Returns (inputs, labels, kinds): inputs with the modifications applied; labels = the original
    id at modified positions and -100 elsewhere; kinds in {0 not modified, 1 masked, 2 replaced,
    3 unchanged} as int8. With `seed` the draw uses its own generator, else torch's global one.
    """
    as_numpy = isinstance(input_ids, np.ndarray)
    ids = torch.as_tensor(np.asarray(input_ids) if as_numpy else input_ids).long()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    special = torch.isin(ids, torch.tensor(special_ids))
    selected = (torch.rand(ids.shape, generator=generator) < mask_prob) & ~special
    fate = torch.rand(ids.shape, generator=generator)
    masked = selected & (fate < 0.8)
    replaced = selected & (fate >= 0.8) & (fate < 0.9)
    eligible = torch.ones(vocab_size, dtype=torch.bool)
    eligible[special_ids] = False
    allowed = eligible.nonzero().squeeze(1)
    random_ids = allowed[torch.randint(len(allowed), ids.shape, generator=generator)]
    inputs = torch.where(masked, mask_id, torch.where(replaced, random_ids, ids))
    labels = torch.where(selected, ids, IGNORE)
    kinds = torch.zeros(ids.shape, dtype=torch.int8)
    kinds[selected] = UNCHANGED
    kinds[masked] = MASKED
    kinds[replaced] = REPLACED
    if as_numpy:
        return inputs.numpy().astype(np.int32), labels.numpy().astype(np.int32), kinds.numpy()
    return inputs, labels, kinds


class MLMCollator:
    """Stack samples {"input_ids": [L]} into a masked training batch.

    With `seed` set, batch n (counted from 0 over the whole run) is masked with its own generator
    seeded by (seed, n): the masks are a function of the batch's place in the run, not of the
    global RNG. The Trainer's data loader masks one batch ahead of the step it trains, so a run
    resumed mid-epoch (which restores the checkpoint's RNG state only after that look-ahead)
    would otherwise mask differently from the uninterrupted run; it sets `batches` to the
    checkpoint's step instead. Without `seed`, torch's global RNG is used.
    """

    def __init__(self, tokenizer, mask_prob: float, seed: int | None = None):
        self.special_ids = special_token_ids(tokenizer)
        self.mask_id = tokenizer.mask_token_id
        self.pad_id = tokenizer.pad_token_id
        self.vocab_size = len(tokenizer)
        self.mask_prob = mask_prob
        self.seed, self.batches = seed, 0

    def next_seed(self) -> int | None:
        """The seed of the next batch's masks (None: the global RNG); counts the batch."""
        if self.seed is None:
            return None
        self.batches += 1
        return int(np.random.SeedSequence((self.seed, self.batches - 1)).generate_state(1)[0])

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = torch.stack([torch.as_tensor(f["input_ids"]).long() for f in features])
        inputs, labels, _ = mask_tokens(ids, self.special_ids, self.mask_id, self.vocab_size,
                                        self.mask_prob, seed=self.next_seed())
        return {"input_ids": inputs, "attention_mask": (ids != self.pad_id).long(), "labels": labels}
