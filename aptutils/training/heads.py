"""The one head-training loop: several heads, each on its own cached features, trained together.

Used by the probe heads (chapters 2-4, 6) and the CNN's per-layer output layers (chapter 7).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def train_heads_jointly(heads: torch.nn.ModuleList, features, labels: torch.Tensor, epochs: float,
                        learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
                        bf16: bool = True, progress: bool = False) -> list[float]:
    """Train head k on features[k] (cached, [N, d_k] each), all heads in one loop: AdamW with
    weight decay 0.01, linear decay to 0, the same seeded batches for every head.

    Returns the mean training loss (nats) of each head over the last epoch's worth of steps.
    Used for the probe heads here and the per-layer output layers of chapter 7.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    steps = max(1, math.ceil(epochs * len(labels) / batch_size))
    trained = [p for p in heads.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    recent = []
    heads.to(device).train()
    for _ in tqdm(range(steps), desc="heads", disable=not progress, mininterval=5):
        picked = torch.randint(len(labels), (batch_size,), generator=generator)
        target = labels[picked].to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            losses = [F.cross_entropy(head(features[k][picked].to(device)).float(), target)
                      for k, head in enumerate(heads)]
        torch.stack(losses).sum().backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        recent.append([float(loss.detach()) for loss in losses])
    heads.eval()
    return np.mean(recent[-max(1, steps // max(1, math.ceil(epochs))):], axis=0).tolist()
