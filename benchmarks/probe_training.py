"""Reader training throughput (`run.py`'s `probe`): the probe heads and the tuned lens trained the
book's way (`readout.probes.train_probe_heads_until_stop`, `readout.tuned_lens.train_tuned_lens`:
every block's head in one loop, the same batch of positions for all, the tuned lens's target
computed once per batch) against the same heads trained block by block with a plain loop (one
AdamW per head, the target recomputed for each block), on the same cached features.

Positions/s counts one training position per head per step; features are random (the speed does
not depend on them). The book's loop also scores a small held-out set at its first and last step.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from aptutils.core.device import autocast
from aptutils.core.params import resolve
from aptutils.models.bert import BertRecipe, new_model
from aptutils.readout.features import BlockFeatures
from aptutils.readout.probes import (
    TrainingPositions,
    new_probe_heads,
    train_probe_heads_until_stop,
)
from aptutils.readout.tuned_lens import new_translators, train_tuned_lens
from aptutils.training.heads import WEIGHT_DECAY, EarlyStopping, HeadPlan

HELD_OUT = 256  # positions scored by the book's loop at its first and last step


def positions(settings, vocab: int, count: int) -> TrainingPositions:
    """`count` training positions (+ HELD_OUT held out) of random bf16 features at every block."""
    generator = torch.Generator().manual_seed(0)
    blocks, total = settings.num_layers + 1, count + HELD_OUT
    features = torch.randn(blocks, total, settings.hidden_size, generator=generator).bfloat16()
    labels = torch.randint(5, vocab, (total,), generator=generator)
    return TrainingPositions(BlockFeatures(features, labels, torch.ones(total, dtype=torch.long)),
                             torch.arange(count), torch.arange(count, total))


def plain_loop(modules, block_loss, batch: int, steps: int, train: torch.Tensor, lr: float) -> None:
    """Each module trained alone: its own AdamW, `steps` steps of `batch` random positions."""
    generator = torch.Generator().manual_seed(0)
    for block, module in enumerate(modules):
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr,
                                      weight_decay=WEIGHT_DECAY)
        for _ in range(steps):
            picked = train[torch.randint(len(train), (batch,), generator=generator)]
            block_loss(block, picked).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def measure(profile: str, vocab: int, steps: int, count: int, knobs: dict | None = None,
            candidates: int | None = None) -> dict[str, float]:
    """Positions/s of the probe heads and the tuned lens, the book's loop and the plain one.
    knobs: other knob values (e.g. hidden_size); candidates: the book's probe trains with the
    sampled softmax over that many drawn tokens (the plain loop keeps the full softmax)."""
    settings = resolve({"profile": profile, "device": "cpu", **(knobs or {})})
    model = new_model(settings.recipe(BertRecipe), vocab, 0)
    cached = positions(settings, vocab, count)
    features, labels = cached.features.features, cached.features.labels
    blocks, batch = features.shape[0], settings.probe_batch
    stopping = EarlyStopping(eval_every=steps, patience=10 ** 9, max_steps=steps)
    tied = model.bert.embeddings.word_embeddings.weight

    def heads():
        return new_probe_heads(model.config, blocks, settings.seed, embeddings=tied)

    def probe_loss(block, picked):
        with autocast("cpu", True):
            return F.cross_entropy(probe[block](features[block][picked]).float(), labels[picked])

    def lens_loss(block, picked):
        with autocast("cpu", True):
            with torch.no_grad():
                target = F.softmax(model.cls(features[-1][picked]).float(), -1)
            return F.cross_entropy(model.cls(lens[block](features[block][picked])).float(), target)

    book_probe = timed(lambda: train_probe_heads_until_stop(
        heads(), cached, HeadPlan(settings.probe_lr, batch, settings.seed, stopping),
        candidates=candidates))
    probe = heads().train()
    plain_probe = timed(lambda: plain_loop(probe, probe_loss, batch, steps, cached.train,
                                           settings.probe_lr))
    for p in model.parameters():
        p.requires_grad_(False)
    book_lens = timed(lambda: train_tuned_lens(
        new_translators(settings.hidden_size, blocks), model.cls, cached,
        HeadPlan(settings.tuned_lens_lr, batch, settings.seed, stopping)))
    lens = new_translators(settings.hidden_size, blocks)
    plain_lens = timed(lambda: plain_loop(lens[:-1], lens_loss, batch, steps, cached.train,
                                          settings.tuned_lens_lr))
    probe_positions, lens_positions = steps * batch * blocks, steps * batch * (blocks - 1)
    return {"probe": probe_positions / book_probe, "probe-plain": probe_positions / plain_probe,
            "tuned-lens": lens_positions / book_lens, "tuned-lens-plain": lens_positions / plain_lens}
