"""The sparse MLM head gives exactly the dense head's logits and loss at the modified positions."""
import numpy as np
import torch
import torch.nn.functional as F

from aptutils.core.counts import TokenCounts
from aptutils.core.params import resolve
from aptutils.data.masking import mask_tokens
from aptutils.models.bert import new_model, parameter_count
from aptutils.training.evaluation import heldout_counts

VOCAB = 50


def tiny_model():
    model = new_model(resolve({"profile": "smoke", "hidden_size": 16, "num_layers": 2}), VOCAB, 0)
    return model.eval()


def masked_batch(rows=6, length=12, seed=0):
    ids = np.random.default_rng(seed).integers(5, VOCAB, (rows, length))
    ids[:, 0], ids[:, -1] = 2, 3
    return mask_tokens(ids, [0, 1, 2, 3, 4], 4, VOCAB, 0.3, seed=seed)


def test_sparse_head_equals_dense_head_at_modified_positions():
    model = tiny_model()
    inputs, labels, _ = (torch.as_tensor(a).long() for a in masked_batch())
    with torch.no_grad():
        dense = model(input_ids=inputs).logits
        sparse = model(input_ids=inputs, labels=labels)
    picked = labels != -100
    assert torch.allclose(sparse.logits, dense[picked], atol=1e-5)
    dense_loss = F.cross_entropy(dense.view(-1, VOCAB), labels.view(-1), ignore_index=-100)
    assert torch.allclose(sparse.loss, dense_loss, atol=1e-5)


def test_heldout_counts_equal_a_per_position_loop():
    model = tiny_model()
    inputs, labels, kinds = masked_batch(rows=9)
    counts = heldout_counts(model, inputs, labels, kinds, batch_size=4)
    correct, total = np.zeros((3, VOCAB), int), np.zeros((3, VOCAB), int)
    with torch.no_grad():
        predicted = model(input_ids=torch.as_tensor(inputs).long()).logits.argmax(-1).numpy()
    for row, col in zip(*np.nonzero(labels >= 0)):
        truth, kind = labels[row, col], kinds[row, col] - 1
        total[kind, truth] += 1
        correct[kind, truth] += predicted[row, col] == truth
    assert (counts.total == total).all() and (counts.correct == correct).all()


def test_apt_and_mean_apt_of_a_hand_made_table():
    correct = np.zeros((3, 4), int)
    total = np.zeros((3, 4), int)
    total[0] = [4, 2, 0, 0]
    correct[0] = [3, 0, 0, 0]
    total[2] = [0, 2, 0, 1]
    correct[2] = [0, 2, 0, 1]
    counts = TokenCounts(correct, total)
    np.testing.assert_allclose(counts.apt(), [0.75, 0.5, np.nan, 1.0])
    assert counts.mean_apt() == (0.75 + 0.5 + 1.0) / 3
    assert counts.accuracy == 6 / 9
    np.testing.assert_allclose(counts.apt("masked"), [0.75, 0.0, np.nan, np.nan])


def test_parameter_count_counts_tied_embeddings_once():
    model = tiny_model()
    untied = sum(p.numel() for p in model.parameters())
    assert parameter_count(model) == untied
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
