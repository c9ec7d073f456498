"""Chapter 7's VGG-style CNN: conv3x3-BN-ReLU layers, max-pools, global average pool, linear output.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.images import ImageData

MIN_POOLED_SIDE = 4  # maps narrower than this are not pooled, so the last maps stay >= 2x2


def layer_channels(depth: int, width: int) -> list[int]:
    """Output channels of each conv layer: width, doubled every two layers, at most 8 x width."""
    return [width * 2 ** min(k // 2, 3) for k in range(depth)]


class VGGStyleCNN(nn.Module):
    """conv3x3-BN-ReLU layers, a 2x2 max-pool after every second layer while the map is at least
    MIN_POOLED_SIDE wide, global average pool, linear output. Takes uint8 images [N, H, W, C]."""

    def __init__(self, depth: int, width: int, side: int, channels_in: int, labels: int):
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(channels_in))
        self.register_buffer("input_std", torch.ones(channels_in))
        self.layers, self.pools = nn.ModuleList(), nn.ModuleList()
        previous = channels_in
        for k, channels in enumerate(layer_channels(depth, width)):
            self.layers.append(nn.Sequential(nn.Conv2d(previous, channels, 3, padding=1, bias=False),
                                             nn.BatchNorm2d(channels), nn.ReLU()))
            pooled = k % 2 == 1 and side >= MIN_POOLED_SIDE
            self.pools.append(nn.MaxPool2d(2) if pooled else nn.Identity())
            side, previous = side // 2 if pooled else side, channels
        self.output = nn.Linear(previous, labels)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, C] -> standardised float [N, C, H, W] in channels-last memory."""
        scaled = images.permute(0, 3, 1, 2).float() / 255
        return (scaled - self.input_mean[:, None, None]) / self.input_std[:, None, None]

    def layer_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every conv layer's ReLU output (before its pool), [N, C_k, H_k, W_k] each."""
        x, outputs = self.prepare(images), []
        for layer, pool in zip(self.layers, self.pools):
            x = layer(x)
            outputs.append(x)
            x = pool(x)
        return outputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.prepare(images)
        for layer, pool in zip(self.layers, self.pools):
            x = pool(layer(x))
        return self.output(x.mean((2, 3)))


def channel_mean_std(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images [N, H, W, C] in units of 1/255, from each channel's
    histogram (no float copy of the images)."""
    values = np.arange(256) / 255
    counts = np.stack([np.bincount(images[..., c].ravel(), minlength=256)
                       for c in range(images.shape[-1])])
    mean = counts @ values / counts.sum(1)
    std = np.sqrt(np.maximum(counts @ values ** 2 / counts.sum(1) - mean ** 2, 0))
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def new_cnn(depth: int, width: int, seed: int, data: ImageData,
            train_images: np.ndarray) -> VGGStyleCNN:
    """A CNN of `depth` conv layers, `width` first channels, seeded by `seed`, for these images,
    its input standardised with their per-channel mean and std."""
    torch.manual_seed(seed)
    height, _, channels = data.train_images.shape[1:]
    model = VGGStyleCNN(depth, width, height, channels, len(data.label_names))
    mean, std = channel_mean_std(train_images)
    model.input_mean.copy_(mean)
    model.input_std.copy_(std.clamp_min(1e-3))
    return model
