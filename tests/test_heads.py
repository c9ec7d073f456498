"""The one training loop: one step per batch, the learning-rate factor per step, a callback that
ends it, and its users (joint head training for fixed epochs, the CNN's epochs; early stopping is
tested in test_readers.py)."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from aptutils.training.cnn import train_cnn
from aptutils.training.heads import random_batches, train_heads_jointly, train_steps


def test_train_steps_takes_one_step_per_batch_and_follows_the_schedule():
    weight = torch.nn.Parameter(torch.zeros(1))
    targets = torch.tensor([1.0, 2.0, 3.0])
    seen, weights = [], []

    def losses(picked):
        seen.append(picked.tolist())
        weights.append(float(weight.detach()))
        return [((weight - targets[picked]) ** 2).sum(), (weight ** 2).sum()]

    history = train_steps([weight], [torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([2])],
                          losses, learning_rate=0.1, schedule=lambda step: 1.0 if step == 0 else 0.0)
    assert seen == [[0], [1, 2], [2]] and len(history) == 3 and len(history[0]) == 2
    assert history[0] == [1.0, 0.0]
    assert weights[0] == 0 and weights[1] > 0  # step 0 at the full rate
    assert weights[2] == weights[1] == float(weight.detach())  # then rate 0: no step, no decay


def test_random_batches_are_the_seeded_draws_in_order():
    generator = torch.Generator().manual_seed(3)
    expected = [torch.randint(10, (4,), generator=generator) for _ in range(5)]
    drawn = list(random_batches(10, 4, steps=5, seed=3))
    assert all(torch.equal(a, b) for a, b in zip(drawn, expected)) and len(drawn) == 5


def test_train_cnn_logs_one_row_per_epoch_and_stops_at_the_step_budget(capsys):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    images = np.random.default_rng(0).random((10, 2, 2, 1)).astype(np.float32)
    labels = (images.reshape(10, -1).sum(1) > 2).astype(np.int64)
    log = train_cnn(model, images, labels, epochs=1.5, learning_rate=1e-2, batch_size=4, seed=0)
    assert [row["step"] for row in log] == [3, 5]  # 3 batches per epoch, ceil(1.5 * 3) = 5 steps
    assert [row["epoch"] for row in log] == [1, 2]
    assert "CNN epoch 2/2" in capsys.readouterr().out
    assert all(0 <= row["training accuracy"] <= 1 and row["training loss"] > 0 for row in log)


def test_after_step_sees_each_step_and_ends_the_loop():
    weight = torch.nn.Parameter(torch.zeros(1))
    seen = []

    def stop_at_three(step):
        seen.append(step)
        return step == 3

    history = train_steps([weight], (torch.tensor([0]) for _ in range(10)),
                          lambda picked: [(weight - 1).pow(2).sum()], learning_rate=0.1,
                          schedule=lambda step: 1.0, after_step=stop_at_three)
    assert seen == [1, 2, 3] and len(history) == 3


def reference_joint_training(heads, features, labels, epochs, learning_rate, batch_size, seed):
    """Joint head training as it was written before early stopping came (fp32)."""
    steps = max(1, math.ceil(epochs * len(labels) / batch_size))
    heads.train()

    def losses(picked):
        return [F.cross_entropy(head(features[k][picked]).float(), labels[picked])
                for k, head in enumerate(heads)]

    history = train_steps([p for p in heads.parameters() if p.requires_grad],
                          random_batches(len(labels), batch_size, steps, seed), losses,
                          learning_rate, lambda step: 1 - step / steps, steps)
    heads.eval()
    return np.mean(history[-max(1, steps // max(1, math.ceil(epochs))):], axis=0).tolist()


def test_joint_training_for_fixed_epochs_is_unchanged():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 50, 6, generator=generator)
    labels = torch.randint(3, (50,), generator=generator)
    trained = []
    for train in (train_heads_jointly, reference_joint_training):
        torch.manual_seed(0)
        heads = torch.nn.ModuleList(torch.nn.Linear(6, 3) for _ in range(2))
        kwargs = {"bf16": False} if train is train_heads_jointly else {}
        losses = train(heads, features, labels, 2.5, 1e-2, 8, 3, **kwargs)
        trained.append((losses, [p.detach().clone() for p in heads.parameters()]))
    assert trained[0][0] == trained[1][0]
    assert all(torch.equal(a, b) for a, b in zip(trained[0][1], trained[1][1]))
