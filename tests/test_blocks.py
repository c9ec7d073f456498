"""The block readers, the all-blocks counting engine (fp32 argmax, per-kind confusions, pooled
W_test maskings) against naive per-position loops on a tiny random model."""
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aptutils.core.counts import TokenCounts
from aptutils.core.params import resolve
from aptutils.data.heldout import heldout_maskings, masking_seed
from aptutils.data.masking import mask_tokens
from aptutils.models.bert import BertRecipe, new_model
from aptutils.readout.counting import (
    BlockCounts,
    block_predictions,
    count_all_blocks,
    count_maskings,
    load_block_counts,
    save_block_counts,
)
from aptutils.readout.features import BlockFeatures, block_features
from aptutils.readout.probes import (
    load_trained_state,
    new_probe_heads,
    trained_state,
)
from aptutils.readout.readers import BlockReader, LensReader, ProbeReader
from aptutils.training.heads import train_heads_jointly

VOCAB = 40


def train_fixed_epochs(heads, train, **options) -> list[float]:
    """Probe heads trained for a fixed number of epochs on cached block features (bf16), through
    the package's one head-training loop."""
    return train_heads_jointly(heads, train.features, train.labels, bf16=True, **options)


@pytest.fixture(scope="module")
def tiny():
    settings = resolve({"profile": "smoke", "hidden_size": 16, "num_layers": 2, "dropout": 0.0})
    model = new_model(settings.recipe(BertRecipe), VOCAB, 0).eval()
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
    counts = count_all_blocks({"probe": ProbeReader(heads), "lens": LensReader(model)}, features, VOCAB)
    for protocol, block_heads in (("probe", heads), ("lens", [model.cls] * 3)):
        for block, head in enumerate(block_heads):
            correct, total = np.zeros((3, VOCAB), int), np.zeros((3, VOCAB), int)
            confusion = np.zeros((3, VOCAB, VOCAB), int)
            for position in range(len(features.labels)):
                with torch.no_grad():  # fp32 logits
                    guess = int(head(features.features[block, position:position + 1].float()).argmax())
                truth, kind = int(features.labels[position]), int(features.kinds[position]) - 1
                total[kind, truth] += 1
                correct[kind, truth] += guess == truth
                confusion[kind, truth, guess] += 1
            got = counts[protocol][block]
            assert (got.counts.total == total).all() and (got.counts.correct == correct).all()
            assert all((got.by_kind[k].toarray() == confusion[k]).all() for k in range(3))
            assert (got.confusion.toarray() == confusion.sum(0)).all()  # all kinds by default
            assert (got.select("masked").confusion.toarray() == confusion[0]).all()


def test_lens_at_the_last_block_is_the_model_s_own_prediction(tiny):
    model, ids, inputs, labels, kinds = tiny
    features = block_features(model, inputs, labels, kinds)
    lens = count_all_blocks({"lens": LensReader(model)}, features, VOCAB)["lens"][-1]
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the trunk as block_features runs it
            last = model.bert(input_ids=torch.as_tensor(inputs).long()).last_hidden_state
        picked = torch.as_tensor(labels >= 0)
        own = model.cls(last[picked].to(torch.bfloat16).float())  # the model's head, in fp32
    guesses = own.argmax(-1).numpy()
    truth = labels[labels >= 0]
    assert lens.counts.correct.sum() == (guesses == truth).sum()
    assert (lens.confusion.toarray()[truth, guesses] > 0).all()


def test_the_lens_reader_at_the_last_block_is_the_model_s_own_mlm_head(tiny):
    model, ids, inputs, labels, kinds = tiny
    reader = LensReader(model)
    assert isinstance(reader, BlockReader) and reader.name == "lens" and reader.blocks == 3
    inputs_t, labels_t = torch.as_tensor(inputs).long(), torch.as_tensor(labels).long()
    with torch.no_grad():
        last = model.bert(input_ids=inputs_t).last_hidden_state[labels_t != -100]  # [N, hidden]
        own = model(input_ids=inputs_t, labels=labels_t).logits  # the model's head, [N, vocab]
        read = reader.logits(reader.blocks - 1, last)
    assert read.shape == (int((labels >= 0).sum()), VOCAB)
    assert torch.equal(read.argmax(-1), own.argmax(-1))
    torch.testing.assert_close(read, own)


class ZeroReader:
    """A reader the counting code has never seen: two blocks, always predicts token 0."""

    name, blocks = "zero", 2

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.zeros(len(features), dtype=torch.long), 4).float()


def test_a_new_reader_is_counted_without_touching_the_counting_code():
    labels, kinds = torch.tensor([0, 3, 0, 2, 1]), torch.tensor([1, 1, 2, 3, 1])
    features = BlockFeatures(torch.randn(2, 5, 8).to(torch.bfloat16), labels, kinds)
    assert isinstance(ZeroReader(), BlockReader)
    counted = count_all_blocks({"zero": ZeroReader()}, features, vocab_size=4)["zero"]
    assert len(counted) == 2
    for block in counted:
        assert block.counts.total.tolist() == [[1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]
        assert block.counts.correct.tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
        assert block.confusion.toarray().tolist() == [[2, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0],
                                                      [1, 0, 0, 0]]


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
    heads = new_probe_heads(bert_config(settings.recipe(BertRecipe), VOCAB, 0), 2, seed=0)
    losses = train_fixed_epochs(heads, readable_and_noise_blocks(2000, seed=0), epochs=20,
                               learning_rate=3e-3, batch_size=200, seed=0, progress=False)
    held_out = count_all_blocks({"probe": ProbeReader(heads)}, readable_and_noise_blocks(500, seed=1),
                                VOCAB)
    assert held_out["probe"][1].counts.accuracy > 0.95
    assert held_out["probe"][0].counts.accuracy < 0.1  # chance is 1/35
    assert losses[1] < 0.5 < losses[0]


def test_counts_survive_the_store_round_trip(tiny, tmp_path):
    model, ids, inputs, labels, kinds = tiny
    counts = count_all_blocks({"lens": LensReader(model)}, block_features(model, inputs, labels, kinds),
                              VOCAB)
    save_block_counts(tmp_path, counts)
    loaded = load_block_counts(tmp_path, "lens")
    assert len(loaded) == 3
    for saved, back in zip(counts["lens"], loaded):
        assert (saved.confusion != back.confusion).nnz == 0
        assert all((a != b).nnz == 0 for a, b in zip(saved.by_kind, back.by_kind))
        assert (saved.counts.correct == back.counts.correct).all()
    masked = load_block_counts(tmp_path, "lens", ("masked",))
    for saved, back in zip(counts["lens"], masked):
        assert back.reading == ("masked",)
        assert (saved.by_kind[0] != back.confusion).nnz == 0
        assert back.confusion.sum() == saved.counts.occurrences("masked").sum()
        assert (saved.counts.total == back.counts.total).all()  # counts keep every kind


def test_readers_whose_names_share_a_suffix_load_apart(tiny, tmp_path):
    """"lens" and "tuned-lens" in one folder: each loads its own 3 blocks, in block order."""
    model, ids, inputs, labels, kinds = tiny
    lens = count_all_blocks({"lens": LensReader(model)},
                            block_features(model, inputs, labels, kinds), VOCAB)["lens"]
    doubled = [item + item for item in lens]  # a second reader with twice the counts
    save_block_counts(tmp_path, {"lens": lens, "tuned-lens": doubled})
    assert sorted(p.name for p in tmp_path.iterdir())[:3] == ["lens-0.npz", "lens-1.npz", "lens-2.npz"]
    for name, expected in (("lens", lens), ("tuned-lens", doubled)):
        loaded = load_block_counts(tmp_path, name)
        assert [b.counts.total.sum() for b in loaded] == [b.counts.total.sum() for b in expected]
    assert load_block_counts(tmp_path, "tuned-lens")[0].counts.total.sum() == \
        2 * load_block_counts(tmp_path, "lens")[0].counts.total.sum()


def test_block_counts_stored_before_per_kind_confusions_still_load(tmp_path):
    confusion = sp.coo_matrix(np.array([[2, 1], [0, 3]]))
    np.savez_compressed(tmp_path / "lens-0.npz", correct=np.ones((3, 2), int),
                        total=np.full((3, 2), 2), rows=confusion.row, cols=confusion.col,
                        data=confusion.data)
    (old,) = load_block_counts(tmp_path, "lens")
    assert old.by_kind is None and old.confusion.toarray().tolist() == [[2, 1], [0, 3]]
    with pytest.raises(ValueError, match="per-kind"):
        load_block_counts(tmp_path, "lens", "masked")


class NearTieReader:
    """One linear block whose logits for tokens 3 and 5 differ by less than bf16 can hold:
    1.0 and 1.001 (bf16 rounds both to 1.0, and a tie goes to the lower id, 3)."""

    name, blocks = "near-tie", 1

    def __init__(self):
        self.layer = torch.nn.Linear(1, 6, bias=False)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[0.0], [0.0], [0.0], [1.0], [0.0], [1.001]]))

    def logits(self, block: int, features: torch.Tensor) -> torch.Tensor:
        return self.layer(features)


def test_predictions_take_the_argmax_of_fp32_logits_even_inside_bf16_autocast():
    features = torch.ones(3, 1, dtype=torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = NearTieReader().logits(0, features).argmax(-1)
        read = block_predictions(NearTieReader(), 0, features)
    assert rounded.tolist() == [3, 3, 3]  # what bf16 logits would answer
    assert read.tolist() == [5, 5, 5]


def test_maskings_are_counted_one_by_one_and_pooled(tiny):
    model, ids, *first = tiny
    second = mask_tokens(ids, [0, 1, 2, 3, 4], 4, VOCAB, 0.3, seed=2)
    readers = {"lens": LensReader(model)}
    pooled = count_maskings(model, readers, [first, second], VOCAB)["lens"]
    apart = [count_all_blocks(readers, block_features(model, *m), VOCAB)["lens"] for m in (first, second)]
    for block, item in enumerate(pooled):
        a, b = apart[0][block], apart[1][block]
        assert (item.counts.total == a.counts.total + b.counts.total).all()
        assert (item.counts.correct == a.counts.correct + b.counts.correct).all()
        assert all((m != x + y).nnz == 0 for m, x, y in zip(item.by_kind, a.by_kind, b.by_kind))
    with pytest.raises(ValueError, match="no masking"):
        count_maskings(model, readers, [], VOCAB)


def test_a_reading_selects_confusions_without_a_recount():
    by_kind = tuple(sp.csr_matrix(np.eye(2, dtype=int) * (k + 1)) for k in range(3))
    counts = TokenCounts(np.zeros((3, 2), int), np.ones((3, 2), int))
    item = BlockCounts.of_kinds(counts, by_kind, "masked")
    assert item.confusion.toarray().tolist() == [[1, 0], [0, 1]] and item.reading == ("masked",)
    assert item.select("replaced,unchanged").confusion.toarray().tolist() == [[5, 0], [0, 5]]
    assert item.select(None).confusion.toarray().tolist() == [[6, 0], [0, 6]]
    pooled = item + item
    assert pooled.reading == ("masked",) and pooled.confusion.toarray().tolist() == [[2, 0], [0, 2]]
    assert (pooled.counts.total == 2).all()


class FakeSamples:
    def __init__(self, ids, stored):
        self.arrays = {"test_ids": ids, "test_inputs": stored[0], "test_labels": stored[1],
                       "test_kinds": stored[2]}

    def array(self, name):
        return self.arrays[name]


class FakeTokenizer:
    all_special_ids, mask_token_id = [0, 1, 2, 3, 4], 4

    def __len__(self):
        return VOCAB


def test_extra_maskings_of_w_test_use_their_own_seeds_and_keep_the_stored_one_first():
    ids = np.random.default_rng(0).integers(5, VOCAB, (50, 12))
    stored = mask_tokens(ids, FakeTokenizer.all_special_ids, 4, VOCAB, 0.15, seed=43)
    data = SimpleNamespace(samples=FakeSamples(ids, stored), tokenizer=FakeTokenizer())
    maskings = list(heldout_maskings(data, 3, 0.15, seed=42))
    assert len(maskings) == 3
    assert all((a == b).all() for a, b in zip(maskings[0], stored))
    for masking, found in ((1, maskings[1]), (2, maskings[2])):
        again = mask_tokens(ids, FakeTokenizer.all_special_ids, 4, VOCAB, 0.15,
                            seed=masking_seed(42, masking))
        assert all((a == b).all() for a, b in zip(found, again))
        assert not (found[1] == stored[1]).all()  # other positions are modified
        assert ((found[1] >= 0) == (found[2] > 0)).all()
    assert len({masking_seed(42, m) for m in (1, 2, 3)} | {43, 44}) == 5
    with pytest.raises(ValueError, match="stored"):
        masking_seed(42, 0)


def test_tied_probe_heads_share_the_frozen_embeddings_and_train_the_rest(tiny):
    model, ids, inputs, labels, kinds = tiny
    embeddings = model.bert.embeddings.word_embeddings.weight
    heads = new_probe_heads(model.config, 3, seed=0, embeddings=embeddings)
    before = {name: p.detach().clone() for name, p in heads.named_parameters()}
    train_fixed_epochs(heads, block_features(model, inputs, labels, kinds), epochs=2,
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
    train_fixed_epochs(heads, block_features(model, inputs, labels, kinds), epochs=2,
                      learning_rate=1e-2, batch_size=8, seed=0, progress=False)
    assert not torch.equal(heads[0].predictions.decoder.weight, before)
    assert set(trained_state(heads)) == set(heads.state_dict())


def test_a_models_own_head_is_counted_as_the_lens_reads_its_last_block():
    """The W_S series' reading (`own_head_counts`) is the lens at the last block: the same counts
    as the all-blocks engine's, over every modified position of every masking."""
    from aptutils.readout.reading import own_head_counts

    settings = resolve({"profile": "smoke", "hidden_size": 64, "num_heads": 2, "num_layers": 3})
    model = new_model(settings.recipe(BertRecipe), 20, 0).eval()
    ids = np.random.default_rng(0).integers(5, 20, (200, 32))
    maskings = [mask_tokens(ids, [0, 1, 2, 3, 4], 4, 20, 0.15, seed=seed) for seed in (0, 1)]
    own = own_head_counts(model, maskings)
    lens = count_maskings(model, {"lens": LensReader(model)}, maskings, 20)["lens"][-1].counts
    np.testing.assert_array_equal(own.correct, lens.correct)
    np.testing.assert_array_equal(own.total, lens.total)
    assert own.correct.sum() > 0  # a random model of 20 tokens gets some right
    assert own.total.sum() == sum(int((labels != -100).sum()) for _, labels, _ in maskings)
    first = count_maskings(model, {"lens": LensReader(model)}, maskings[:1], 20)["lens"][-1]
    assert own.total.sum() > first.counts.total.sum()  # both maskings pooled
