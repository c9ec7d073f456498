"""The trained readers against answers known by hand or by construction: the tuned lens (identity
at the start, the lens at the last block, a lower held-out KL after training), early stopping
(it keeps the state of the step where the held-out loss was lowest) and the probe (it reads a
block that carries the label, not one whose labels are shuffled)."""
import copy

import numpy as np
import pytest
import torch

from aptutils.core.params import resolve
from aptutils.data.masking import mask_tokens
from aptutils.models.bert import BertRecipe, bert_config, new_model
from aptutils.readout.counting import count_all_blocks
from aptutils.readout.features import BlockFeatures, block_features
from aptutils.readout.probes import (
    TrainingPositions,
    held_out_split,
    new_probe_heads,
    train_probe_heads_until_stop,
)
from aptutils.readout.readers import (
    BlockReader,
    LensReader,
    ProbeReader,
    TunedLensReader,
)
from aptutils.readout.tuned_lens import (
    frozen,
    kl_to_last_block,
    new_translators,
    train_tuned_lens,
)
from aptutils.training.heads import EarlyStopping, HeadPlan, held_out_losses, train_until_stop

VOCAB = 40


@pytest.fixture(scope="module")
def tiny():
    """A tiny random BERT (3 blocks, width 16; weights drawn wide enough that its head's
    distributions differ from block to block) and its features at the modified positions of 60
    random samples, 20% of the samples held out."""
    settings = resolve({"profile": "smoke", "hidden_size": 16, "num_layers": 2, "dropout": 0.0})
    model = new_model(settings.recipe(BertRecipe), VOCAB, 0).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.normal_(0, 0.5)
    ids = np.random.default_rng(0).integers(5, VOCAB, (60, 12))
    ids[:, 0], ids[:, -1] = 2, 3
    inputs, labels, kinds = mask_tokens(ids, [0, 1, 2, 3, 4], 4, VOCAB, 0.3, seed=1)
    features = block_features(model, inputs, labels, kinds)
    train, held_out = held_out_split((labels != -100).sum(1), seed=0, share=0.2)
    return model, TrainingPositions(features, train, held_out)


def shaken(translators: torch.nn.ModuleList, seed: int) -> torch.nn.ModuleList:
    """A copy whose affine maps are no longer the identity."""
    moved = copy.deepcopy(translators)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return moved


def test_the_tuned_lens_at_the_last_block_is_the_lens(tiny):
    model, positions = tiny
    reader = TunedLensReader(model, shaken(new_translators(16, 3), seed=0))
    assert isinstance(reader, BlockReader) and reader.name == "tuned-lens" and reader.blocks == 3
    last = positions.features.features[2].float()
    with torch.no_grad():
        assert torch.equal(reader.logits(2, last), LensReader(model).logits(2, last))
        assert not torch.equal(reader.logits(0, last), LensReader(model).logits(0, last))


def test_identity_translators_read_like_the_lens_before_training(tiny):
    model, positions = tiny
    translators = new_translators(16, 3)
    assert [type(t).__name__ for t in translators] == ["Linear", "Linear", "Identity"]
    reader, lens = TunedLensReader(model, translators), LensReader(model)
    with torch.no_grad():
        for block in range(3):
            features = positions.features.features[block].float()
            torch.testing.assert_close(reader.logits(block, features), lens.logits(block, features),
                                       rtol=0, atol=1e-5)
    counted = count_all_blocks({"tuned-lens": reader, "lens": lens}, positions.features, VOCAB)
    for tuned, plain in zip(counted["tuned-lens"], counted["lens"]):
        assert (tuned.counts.correct == plain.counts.correct).all()
        assert (tuned.confusion != plain.confusion).nnz == 0


def kl_by_hand(model, features: BlockFeatures, block: int, rows: torch.Tensor) -> float:
    """Mean over positions of sum_v p_last(v) (log p_last(v) - log p_block(v)), the lens's p's."""
    with torch.no_grad():
        last = torch.softmax(model.cls(features.features[-1][rows].float()).double(), -1)
        here = torch.softmax(model.cls(features.features[block][rows].float()).double(), -1)
    return float((last * (last.log() - here.log())).sum(-1).mean())


def test_tuned_lens_training_lowers_the_held_out_kl_and_leaves_the_model_alone(tiny):
    model, positions = tiny
    translators = new_translators(16, 3)
    head_before = {name: p.detach().clone() for name, p in model.cls.named_parameters()}
    wanted = {name: p.requires_grad for name, p in model.named_parameters()}
    plan = HeadPlan(learning_rate=3e-2, batch_size=32, seed=0,
                    stopping=EarlyStopping(eval_every=5, patience=3, max_steps=300))
    curves = train_tuned_lens(translators, model.cls, positions, plan)
    # step 0 is the identity, i.e. the lens: its held-out KL, computed by hand
    for block in (0, 1):
        assert curves.held_out[0][block] == pytest.approx(
            kl_by_hand(model, positions.features, block, positions.held_out), rel=0.02, abs=1e-4)
    losses = kl_to_last_block(translators, model.cls, positions.features.features)
    after = held_out_losses(losses, positions.held_out, [0, 1])
    kept = [curves.held_out[curves.steps.index(step)][k] for k, step in enumerate(curves.best_step)]
    assert after == pytest.approx(kept, rel=1e-5)  # the kept state is the best one evaluated
    assert all(a < 0.8 * b for a, b in zip(after, curves.held_out[0]))
    assert held_out_losses(losses, positions.held_out, [2]) == [pytest.approx(0, abs=1e-6)]
    for name, p in model.cls.named_parameters():
        assert torch.equal(p, head_before[name]) and p.grad is None
    assert {name: p.requires_grad for name, p in model.named_parameters()} == wanted


def test_frozen_restores_what_each_parameter_asked_for():
    module = torch.nn.Linear(2, 2)
    module.bias.requires_grad_(False)
    with frozen(module):
        assert not any(p.requires_grad for p in module.parameters())
    assert module.weight.requires_grad and not module.bias.requires_grad


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def scripted_run(held_out_by_head: list[dict[int, float]], stopping: EarlyStopping):
    """Heads of one parameter w each, pushed up at every step; the held-out loss of head k at step
    s is held_out_by_head[k][s] (scripted). Returns (curves, heads, w of each head at each
    evaluation step)."""
    heads = torch.nn.ModuleList([Scalar() for _ in held_out_by_head])
    step, seen = [0], {}

    def losses(picked, active):
        if torch.is_grad_enabled():  # a training step
            return [-heads[k].w.sum() for k in active]
        seen[step[0]] = [float(head.w) for head in heads]
        return [torch.tensor(held_out_by_head[k][step[0]]) for k in active]

    def counted(picked, active):
        result = losses(picked, active)
        if torch.is_grad_enabled():
            step[0] += 1
        return result

    curves = train_until_stop(heads, counted, torch.arange(4), torch.arange(1),
                              HeadPlan(learning_rate=0.1, batch_size=2, seed=0, stopping=stopping))
    return curves, heads, seen, step[0]


def test_early_stopping_keeps_the_state_of_the_step_before_the_held_out_loss_rises():
    # head 0 falls until step 6, head 1 until step 2; evaluations every 2 steps, patience 2
    falls_to_6 = {0: 5.0, 2: 4.0, 4: 3.0, 6: 2.0, 8: 2.5, 10: 3.0, 12: 4.0}
    falls_to_2 = {0: 5.0, 2: 1.0, 4: 1.5, 6: 1.25, 8: 0.5}
    curves, heads, seen, steps = scripted_run([falls_to_6, falls_to_2],
                                              EarlyStopping(eval_every=2, patience=2, max_steps=50))
    assert curves.best_step == [6, 2]
    assert curves.stop_step == [10, 6]  # two evaluations without a new lowest loss
    assert steps == 10 and curves.steps == [0, 2, 4, 6, 8, 10]
    assert curves.held_out == [[5.0, 5.0], [4.0, 1.0], [3.0, 1.5], [2.0, 1.25], [2.5, None],
                               [3.0, None]]
    assert float(heads[0].w.detach()) == seen[6][0] and float(heads[1].w.detach()) == seen[2][1]
    assert seen[6][0] > seen[2][0] > 0  # w moved at every step, so the kept state is step 6's
    assert seen[10][1] == seen[6][1]  # a stopped head is not trained on


def test_early_stopping_ends_at_the_step_cap_with_a_last_evaluation():
    falling = {s: 10.0 - s for s in range(8)}
    curves, heads, seen, steps = scripted_run([falling], EarlyStopping(3, patience=2, max_steps=7))
    assert steps == 7 and curves.steps == [0, 3, 6, 7]
    assert curves.best_step == [7] and curves.stop_step == [7]
    assert float(heads[0].w.detach()) == seen[7][0]


def test_held_out_split_holds_out_whole_samples_seeded():
    per_sample = np.array([3, 0, 2, 4, 1, 5, 2, 3, 1, 4])
    train, held_out = held_out_split(per_sample, seed=5, share=0.3)
    sample_of = np.repeat(np.arange(10), per_sample)
    assert sorted(train.tolist() + held_out.tolist()) == list(range(per_sample.sum()))
    assert len(set(sample_of[held_out.numpy()])) <= 3
    assert not set(sample_of[held_out.numpy()]) & set(sample_of[train.numpy()])
    again = held_out_split(per_sample, seed=5, share=0.3)
    assert torch.equal(again[1], held_out) and torch.equal(again[0], train)
    assert len(held_out_split(np.array([4]), seed=0)[1]) == 0  # one sample: nothing held out


def embedded_labels(labels: torch.Tensor, embeddings: torch.Tensor, seed: int) -> torch.Tensor:
    """Features that carry the label: the embedding of the true token, plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    return embeddings[labels] + 0.1 * torch.randn(len(labels), embeddings.shape[1],
                                                  generator=generator)


def test_a_probe_reads_a_block_that_carries_the_label_and_not_shuffled_labels():
    settings = resolve({"profile": "smoke", "hidden_size": 64, "num_heads": 2})
    config = bert_config(settings.recipe(BertRecipe), VOCAB, 0)
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(VOCAB, 64, generator=generator)
    labels = torch.randint(5, VOCAB, (3000,), generator=generator)
    features = embedded_labels(labels, embeddings, seed=1)[None].to(torch.bfloat16)
    train, held_out = torch.arange(2500), torch.arange(2500, 3000)
    shuffled = labels[torch.randperm(3000, generator=generator)]
    accuracy, stopped = {}, {}
    for name, targets in (("true", labels), ("shuffled", shuffled)):
        heads = new_probe_heads(config, 1, seed=0)
        positions = TrainingPositions(BlockFeatures(features, targets, torch.ones_like(targets)),
                                      train, held_out)
        curves = train_probe_heads_until_stop(heads, positions,
                                              HeadPlan(3e-3, 100, 0, EarlyStopping(25, 3, 400)))
        test = BlockFeatures(features[:, held_out], targets[held_out], torch.ones(500).long())
        counted = count_all_blocks({"probe": ProbeReader(heads)}, test, VOCAB)
        accuracy[name], stopped[name] = counted["probe"][0].counts.accuracy, curves.stop_step[0]
    assert accuracy["true"] > 0.95
    assert accuracy["shuffled"] < 0.15  # chance is 1/35
    assert stopped["shuffled"] < 400  # nothing to learn: the held-out loss soon stops falling


def test_the_training_figure_draws_one_line_per_block_and_marks_where_each_stopped():
    from aptutils.plotting.figures import reader_training_figure

    curves = {"steps": [0, 2, 4], "held_out": [[3.0, 2.0], [1.0, 1.5], [2.0, None]],
              "best_step": [2, 0], "stop_step": [4, 2]}
    record = {"curves": curves, "train_positions": 100, "held_out_positions": 10}
    figure = reader_training_figure({"probe": record, "tuned-lens": record})
    probe_axis = figure.axes[0]
    assert len(figure.axes) == 2 and probe_axis.get_title().startswith("probe: 100 positions")
    lines = probe_axis.get_lines()
    assert len(lines) == 2 * 3  # per block: its curve, the kept point, the stopping point
    assert lines[1].get_xydata().tolist() == [[2.0, 1.0]]  # block 0 kept step 2
    assert lines[5].get_xydata().tolist() == [[2.0, 1.5]]  # block 1 stopped at step 2
