"""The one training loop for heads and small models (`train_steps`), joint head training for a fixed
number of epochs, and joint head training until each head's held-out loss stops falling.

`train_steps` trains the probe heads and the tuned lens (chapters 2-4, 6), the CNN's per-layer
output layers and the CNN itself (chapter 7): AdamW with weight decay 0.01 and a learning-rate
factor per step. `train_until_stop` is the early-stopping loop of the probe and the tuned lens.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import autocast
from ..core.progress import live_bar

WEIGHT_DECAY = 0.01
HELD_OUT_CHUNK = 2048  # held-out positions per evaluation pass: [chunk, vocab] logits at a time


def train_steps(parameters: Iterable[torch.nn.Parameter], batches: Iterable[torch.Tensor],
                step_losses: Callable[[torch.Tensor], list[torch.Tensor]], learning_rate: float,
                schedule: Callable[[int], float], steps: int | None = None,
                progress: bool = False, desc: str = "training",
                after_step: Callable[[int], bool] | None = None) -> list[list[float]]:
    """One optimiser step per batch: AdamW (weight decay 0.01) under `LambdaLR(schedule)`.

    batches: index tensors [B] (drawn lazily, so seeded draws interleave with the steps as the
    loop consumes them); step_losses(batch) returns the per-head scalar losses of one batch (it
    opens its own autocast region); their sum is minimised. schedule(step) is the factor on
    `learning_rate` at step 0, 1, ...; steps only sizes the live bar (`progress`: drawn where a
    terminal watches, core.progress). after_step(n), if given, runs after the n-th step (n = 1, 2,
    ...) and ends the loop by returning True. Returns each step's losses (nats), [steps][heads].
    """
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    history = []
    for batch in live_bar(batches, total=steps, desc=desc) if progress else batches:
        losses = step_losses(batch)
        torch.stack(losses).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        history.append([float(loss.detach()) for loss in losses])
        if after_step is not None and after_step(len(history)):
            break
    return history


def random_batches(count: int, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """`steps` batches of `batch_size` indices into `count` rows, drawn with replacement from a
    generator seeded with `seed`, one batch at a time."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randint(count, (batch_size,), generator=generator)


def cross_entropy_losses(heads: torch.nn.ModuleList, features, labels: torch.Tensor,
                         device: str = "cpu", bf16: bool = True
                         ) -> Callable[[torch.Tensor, Sequence[int]], list[torch.Tensor]]:
    """losses(picked [B], heads k) -> mean cross-entropy (nats) of each head k on features[k][picked]
    [B, d_k] against labels[picked], under autocast; logits [B, classes] scored in fp32."""

    def losses(picked: torch.Tensor, active: Sequence[int]) -> list[torch.Tensor]:
        target = labels[picked].to(device)
        with autocast(device, bf16):
            return [F.cross_entropy(heads[k](features[k][picked].to(device)).float(), target)
                    for k in active]

    return losses


def train_heads_jointly(heads: torch.nn.ModuleList, features, labels: torch.Tensor, epochs: float,
                        learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
                        bf16: bool = True, progress: bool = False) -> list[float]:
    """Train head k on features[k] (cached, [N, d_k] each), all heads in one loop: AdamW with
    weight decay 0.01, linear decay to 0, the same seeded batches for every head.

    labels: [N]. Returns the mean training loss (nats) of each head over the last epoch's worth
    of steps. Used for the per-layer output layers of chapter 7 (a fixed number of epochs).
    """
    steps = max(1, math.ceil(epochs * len(labels) / batch_size))
    heads.to(device).train()
    every = range(len(heads))
    losses = cross_entropy_losses(heads, features, labels, device, bf16)
    history = train_steps([p for p in heads.parameters() if p.requires_grad],
                          random_batches(len(labels), batch_size, steps, seed),
                          lambda picked: losses(picked, every), learning_rate,
                          lambda step: 1 - step / steps, steps, progress, "heads")
    heads.eval()
    return np.mean(history[-max(1, steps // max(1, math.ceil(epochs))):], axis=0).tolist()


@dataclass(frozen=True)
class EarlyStopping:
    """When joint training stops. The held-out loss of every head is measured at step 0 and every
    `eval_every` steps; a head stops after `patience` evaluations in a row without a new lowest
    held-out loss, and keeps its parameters of that lowest evaluation; training ends when every
    head has stopped, or at `max_steps`. The learning rate stays constant: a rate decaying to 0
    at the cap would flatten every curve, so that the cap, not the held-out loss, ends training."""

    eval_every: int
    patience: int
    max_steps: int


@dataclass(frozen=True)
class HeadPlan:
    """How `train_until_stop` trains a set of heads: AdamW at a constant `learning_rate`, seeded
    (`seed`) batches of `batch_size` positions, held-out evaluations and stops by `stopping`."""

    learning_rate: float
    batch_size: int
    seed: int
    stopping: EarlyStopping


@dataclass
class HeadCurves:
    """The held-out curves of jointly trained heads.

    steps [E]: the evaluation steps (0 first); held_out [E][heads]: each head's held-out loss,
    None after the head stopped; best_step[k]: the step whose parameters head k keeps;
    stop_step[k]: where head k stopped training (the last step run if it never stopped).
    """

    steps: list[int]
    held_out: list[list[float | None]]
    best_step: list[int]
    stop_step: list[int]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> HeadCurves:
        return cls(**{name: saved[name] for name in ("steps", "held_out", "best_step", "stop_step")})


def constant(step: int) -> float:
    """The learning-rate factor of a constant rate."""
    return 1.0


@torch.no_grad()
def held_out_losses(losses: Callable[[torch.Tensor, Sequence[int]], list[torch.Tensor]],
                    rows: torch.Tensor, active: Sequence[int],
                    chunk: int = HELD_OUT_CHUNK) -> list[float]:
    """Mean loss of each head in `active` over the positions `rows` [M], chunk by chunk."""
    total = np.zeros(len(active))
    for start in range(0, len(rows), chunk):
        picked = rows[start:start + chunk]
        total += len(picked) * np.array([float(loss) for loss in losses(picked, active)])
    return (total / len(rows)).tolist()


def train_until_stop(heads: torch.nn.ModuleList,
                     losses: Callable[[torch.Tensor, Sequence[int]], list[torch.Tensor]],
                     train_rows: torch.Tensor, held_out_rows: torch.Tensor, plan: HeadPlan,
                     progress: bool = False, desc: str = "heads",
                     held_out_loss: Callable[[torch.Tensor, Sequence[int]], list[torch.Tensor]]
                     | None = None) -> HeadCurves:
    """Train every head of `heads` jointly through `train_steps` until each one's held-out loss
    stops falling (`plan.stopping`); each head ends with its best evaluated parameters.

    losses(picked [B], heads k) -> the mean loss of each head k on the positions `picked` (it
    opens its own autocast region); the steps draw seeded batches of `plan.batch_size` positions
    of `train_rows` [N] with replacement, and every evaluation scores `held_out_rows` [M]. A stopped
    head leaves the summed loss, so its parameters get no gradient and AdamW leaves them alone.
    held_out_loss: what the evaluations score, in the form of `losses` (default: `losses`; an
    estimate drawn afresh per call must draw the same at every evaluation, to be compared).
    """
    heads.train()
    count, stopping = len(heads), plan.stopping
    active = list(range(count))

    def snapshot(k: int) -> list[torch.Tensor]:
        return [p.detach().clone() for p in heads[k].parameters() if p.requires_grad]

    def evaluate(step: int) -> list[float | None]:
        heads.eval()
        measured = dict(zip(active, held_out_losses(held_out_loss or losses, held_out_rows,
                                                    list(active))))
        heads.train()
        return [measured.get(k) for k in range(count)]

    first = evaluate(0)
    curves = HeadCurves([0], [first], [0] * count, [stopping.max_steps] * count)
    best, best_state, waited = list(first), [snapshot(k) for k in range(count)], [0] * count

    def after_step(step: int) -> bool:
        if step % stopping.eval_every and step < stopping.max_steps:
            return False
        row = evaluate(step)
        curves.steps.append(step)
        curves.held_out.append(row)
        for k in list(active):
            if row[k] < best[k]:
                best[k], best_state[k], waited[k], curves.best_step[k] = row[k], snapshot(k), 0, step
            else:
                waited[k] += 1
            if waited[k] >= stopping.patience or step >= stopping.max_steps:
                active.remove(k)
                curves.stop_step[k] = step
        return not active

    def step_losses(picked: torch.Tensor) -> list[torch.Tensor]:
        return losses(train_rows[picked], active)

    train_steps([p for p in heads.parameters() if p.requires_grad],
                random_batches(len(train_rows), plan.batch_size, stopping.max_steps, plan.seed),
                step_losses, plan.learning_rate, constant, stopping.max_steps, progress, desc,
                after_step)
    with torch.no_grad():
        for k in range(count):
            trainable = [p for p in heads[k].parameters() if p.requires_grad]
            for parameter, kept in zip(trainable, best_state[k]):
                parameter.copy_(kept)
    heads.eval()
    return curves
