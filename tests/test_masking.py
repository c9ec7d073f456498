"""The masker: 15% of non-special tokens, split 80/10/10, never a special token."""
import numpy as np
import torch

from aptutils.core.counts import IGNORE, MASKED, REPLACED, UNCHANGED
from aptutils.data.masking import MLMCollator, mask_tokens

SPECIAL = [0, 1, 2, 3, 4]
MASK_ID, VOCAB = 4, 1000


def sample_ids(rows=1000, length=128, seed=0):
    ids = np.random.default_rng(seed).integers(5, VOCAB, (rows, length))
    ids[:, 0], ids[:, -1], ids[:, -20:-1] = 2, 3, 0  # [CLS] ... [SEP] and padding
    return ids


def test_proportions_on_100k_positions():
    ids = sample_ids()
    inputs, labels, kinds = mask_tokens(ids, SPECIAL, MASK_ID, VOCAB, 0.15, seed=7)
    eligible = ~np.isin(ids, SPECIAL)
    selected = kinds > 0
    assert eligible.sum() >= 100_000
    assert abs(selected.sum() / eligible.sum() - 0.15) < 0.01
    for kind, share in ((MASKED, 0.8), (REPLACED, 0.1), (UNCHANGED, 0.1)):
        assert abs((kinds == kind).sum() / selected.sum() - share) < 0.01


def test_never_selects_or_inserts_a_special_token():
    ids = sample_ids()
    inputs, labels, kinds = mask_tokens(ids, SPECIAL, MASK_ID, VOCAB, 0.5, seed=1)
    assert not (kinds[np.isin(ids, SPECIAL)] > 0).any()
    assert not np.isin(inputs[kinds == REPLACED], SPECIAL).any()
    assert (inputs[np.isin(ids, SPECIAL)] == ids[np.isin(ids, SPECIAL)]).all()


def test_labels_and_inputs_follow_the_kinds():
    ids = sample_ids(rows=50)
    inputs, labels, kinds = mask_tokens(ids, SPECIAL, MASK_ID, VOCAB, 0.15, seed=3)
    assert (labels[kinds > 0] == ids[kinds > 0]).all()
    assert (labels[kinds == 0] == IGNORE).all()
    assert (inputs[kinds == MASKED] == MASK_ID).all()
    assert (inputs[kinds == UNCHANGED] == ids[kinds == UNCHANGED]).all()
    assert (inputs[kinds == 0] == ids[kinds == 0]).all()


def test_seeded_masks_repeat_and_differ_by_seed():
    ids = sample_ids(rows=20)
    first, again, other = (mask_tokens(ids, SPECIAL, MASK_ID, VOCAB, 0.15, seed=s)[2] for s in (5, 5, 6))
    assert (first == again).all() and (first != other).any()


class FakeTokenizer:
    all_special_ids, mask_token_id, pad_token_id = SPECIAL, MASK_ID, 0

    def __len__(self):
        return VOCAB


def test_collator_masks_a_batch_and_marks_padding():
    ids = sample_ids(rows=4)
    torch.manual_seed(0)
    batch = MLMCollator(FakeTokenizer(), 0.15)([{"input_ids": row} for row in ids])
    assert batch["input_ids"].shape == (4, 128)
    assert (batch["attention_mask"].numpy() == (ids != 0)).all()
    picked = batch["labels"] != IGNORE
    assert (batch["labels"][picked].numpy() == ids[picked.numpy()]).all()
