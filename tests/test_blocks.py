"""The all-blocks counting engine against naive per-position loops on a tiny random model."""
import numpy as np
import pytest
import torch

from aptutils.core.params import resolve
from aptutils.data.masking import mask_tokens
from aptutils.models.bert import new_model
from aptutils.readout.counting import (
    count_all_blocks,
    load_block_counts,
    save_block_counts,
)
from aptutils.readout.features import BlockFeatures, block_features
from aptutils.readout.probes import (
    load_trained_state,
    new_probe_heads,
    train_probe_heads,
    trained_state,
)

VOCAB = 40


@pytest.fixture(scope="module")
def tiny():
    settings = resolve({"profile": "smoke", "hidden_size": 16, "num_layers": 2, "dropout": 0.0})
    model = new_model(settings, VOCAB, 0).eval()
    ids = np.random.default_rng(0).integers(5, VOCAB, (7, 10))
    ids[:, 0], ids[:, -1] = 2, 3
    return model, ids, *mask_tokens(ids, [0, 1, 2, 3, 4], 4, VOCAB, 0.3, seed=1)


def test_features_are_the_hidden_states_at_modified_positions(tiny):
    model, ids, inputs, labels, kinds = tiny
    features = block_features(model, inputs, labels, kinds, batch_size=3)
    with torch.no_grad():
        hidden = model.bert(input_ids=torch.as_tensor(inputs).long(), output_hidden_states=True).hidden_states
    picked = torch.as_tensor(labels >= 0)
    assert features.features.shape == (3, int(picked.sum()), 16)
    for block in range(3):
        torch.testing.assert_close(features.features[block].float(), hidden[block][picked], atol=0.05, rtol=0.05)
    assert (features.labels.numpy() == labels[labels >= 0]).all()
    assert (features.kinds.numpy() == kinds[labels >= 0]).all()


def test_counts_equal_a_per_position_loop(tiny):
    model, ids, inputs, labels, kinds = tiny
    features = block_features(model, inputs, labels, kinds)
    heads = new_probe_heads(model.config, 3, seed=0)
    counts = count_all_blocks({"probe": list(heads), "lens": [model.cls] * 3}, features, VOCAB)
    for protocol, block_heads in (("probe", heads), ("lens", [model.cls] * 3)):
        for block, head in enumerate(block_heads):
            correct, total = np.zeros((3, VOCAB), int), np.zeros((3, VOCAB), int)
            confusion = np.zeros((VOCAB, VOCAB), int)
            for position in range(len(features.labels)):
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    guess = int(head(features.features[block, position:position + 1]).argmax())
                truth, kind = int(features.labels[position]), int(features.kinds[position]) - 1
                total[kind, truth] += 1
                correct[kind, truth] += guess == truth
                confusion[truth, guess] += 1
            got = counts[protocol][block]
            assert (got.counts.total == total).all() and (got.counts.correct == correct).all()
            assert (got.confusion.toarray() == confusion).all()


def test_lens_at_the_last_block_is_the_model_s_own_prediction(tiny):
    model, ids, inputs, labels, kinds = tiny
    features = block_features(model, inputs, labels, kinds)
    lens = count_all_blocks({"lens": [model.cls] * 3}, features, VOCAB)["lens"][-1]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        own = model(input_ids=torch.as_tensor(inputs).long(), labels=torch.as_tensor(labels).long())
    guesses = own.logits.argmax(-1).numpy()
    truth = labels[labels >= 0]
    assert lens.counts.correct.sum() == (guesses == truth).sum()
    assert (lens.confusion.toarray()[truth, guesses] > 0).all()


def readable_and_noise_blocks(positions: int, seed: int) -> BlockFeatures:
    """Block 0 is noise, block 1 holds the label as a one-hot code: only block 1 is readable."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(5, VOCAB, (positions,), generator=generator)
    readable = torch.nn.functional.one_hot(labels, 64).float() * 3
    noise = torch.randn(positions, 64, generator=generator)
    return BlockFeatures(torch.stack([noise, readable]).to(torch.bfloat16), labels,
                         torch.ones(positions, dtype=torch.long))


def test_probe_heads_learn_a_readable_block():
    from aptutils.models.bert import bert_config

    settings = resolve({"profile": "smoke", "hidden_size": 64, "num_heads": 2})
    heads = new_probe_heads(bert_config(settings, VOCAB, 0), 2, seed=0)
    losses = train_probe_heads(heads, readable_and_noise_blocks(2000, seed=0), epochs=20,
                               learning_rate=3e-3, batch_size=200, seed=0, progress=False)
    held_out = count_all_blocks({"probe": list(heads)}, readable_and_noise_blocks(500, seed=1), VOCAB)
    assert held_out["probe"][1].counts.accuracy > 0.95
    assert held_out["probe"][0].counts.accuracy < 0.1  # chance is 1/35
    assert losses[1] < 0.5 < losses[0]


def test_counts_survive_the_store_round_trip(tiny, tmp_path):
    model, ids, inputs, labels, kinds = tiny
    counts = count_all_blocks({"lens": [model.cls] * 3}, block_features(model, inputs, labels, kinds), VOCAB)
    save_block_counts(tmp_path, counts)
    loaded = load_block_counts(tmp_path, "lens")
    assert len(loaded) == 3
    for saved, back in zip(counts["lens"], loaded):
        assert (saved.confusion != back.confusion).nnz == 0
        assert (saved.counts.correct == back.counts.correct).all()


def test_tied_probe_heads_share_the_frozen_embeddings_and_train_the_rest(tiny):
    model, ids, inputs, labels, kinds = tiny
    embeddings = model.bert.embeddings.word_embeddings.weight
    heads = new_probe_heads(model.config, 3, seed=0, embeddings=embeddings)
    before = {name: p.detach().clone() for name, p in heads.named_parameters()}
    train_probe_heads(heads, block_features(model, inputs, labels, kinds), epochs=2,
                      learning_rate=1e-2, batch_size=8, seed=0, progress=False)
    for head in heads:
        torch.testing.assert_close(head.predictions.decoder.weight, embeddings.detach())
        assert not head.predictions.decoder.weight.requires_grad
    changed = {name for name, p in heads.named_parameters() if not torch.equal(p, before[name])}
    assert "0.predictions.transform.dense.weight" in changed
    assert "0.predictions.decoder.bias" in changed
    assert not any(name.endswith("decoder.weight") for name in changed)

    saved = trained_state(heads)
    assert not any(name.endswith("decoder.weight") for name in saved)
    fresh = new_probe_heads(model.config, 3, seed=1, embeddings=embeddings)
    load_trained_state(fresh, saved)
    features = block_features(model, inputs, labels, kinds).features[2, :4]
    with torch.no_grad():
        torch.testing.assert_close(fresh[2](features.float()), heads[2](features.float()))
    with pytest.raises(ValueError, match="missing"):
        load_trained_state(new_probe_heads(model.config, 3, seed=0), saved)


def test_untied_probe_heads_train_their_own_output_weights(tiny):
    model, ids, inputs, labels, kinds = tiny
    heads = new_probe_heads(model.config, 3, seed=0)
    before = heads[0].predictions.decoder.weight.detach().clone()
    train_probe_heads(heads, block_features(model, inputs, labels, kinds), epochs=2,
                      learning_rate=1e-2, batch_size=8, seed=0, progress=False)
    assert not torch.equal(heads[0].predictions.decoder.weight, before)
    assert set(trained_state(heads)) == set(heads.state_dict())
