"""Where torch work runs and in what precision: the one device resolver and the one autocast helper.

Used by every layer that runs a model (chapters 1-7).
"""
from __future__ import annotations

import torch

from dataclasses import dataclass

from .recipes import Recipe


@dataclass(frozen=True)
class ComputeRecipe(Recipe):
    """Where torch work runs (`device`) and whether the models and readers are compiled."""

    device: str
    torch_compile: bool

    @property
    def torch_device(self) -> str:
        """"cuda" or "cpu": `device` resolved (`resolved_device`)."""
        return resolved_device(self.device)


def resolved_device(device: str) -> str:
    """The device knob resolved: `auto` means CUDA where present, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def autocast(device: str | torch.device, precision: str | bool = True) -> torch.autocast:
    """The autocast region of a forward pass on `device` ("cpu", "cuda" or a torch.device).

    precision: "bf16" or True runs under bfloat16 autocast; "fp32", "fp16" or False runs in the
    tensors' own dtypes (no autocast). fp16 is only the Trainer's own mixed precision (pre-training,
    full fine-tuning); the book's own forward passes never autocast to float16.
    """
    if precision not in (True, False, "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be bf16, fp16, fp32 or a bool, not {precision!r}")
    enabled = precision is True or precision == "bf16"
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                          enabled=enabled)
