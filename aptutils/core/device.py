"""Where torch work runs and in what precision. Used by every layer that runs a model.
"""
from __future__ import annotations

import torch

from ..core.params import Settings


def resolved_device(settings: Settings) -> str:
    """`device=auto` means CUDA where present, else the CPU."""
    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def autocast(device: str, precision: str):
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                          enabled=precision == "bf16")
