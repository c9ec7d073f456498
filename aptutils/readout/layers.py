"""The CNN's per-layer readout: a new output layer on each frozen conv layer (read through a
`LayerReader`), its accuracy, label confusion and single-filter fields. Used by chapter 7.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import autocast
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.images import ImageData, training_images
from ..models.vgg import VGGStyleCNN
from ..readout.readers import LayerReader
from ..training.cnn import EVAL_BATCH, CNNRecipe, TrainedCNN
from ..training.heads import train_heads_jointly



@dataclass(frozen=True)
class LayerHeadsRecipe(Recipe):
    """The new output layers on the CNN's frozen layers: exactly the knobs of their key (beside
    the CNN), and the CNN's recipe they train with (its images, seed and device)."""

    head_epochs: float
    feature_grid: int
    cnn: CNNRecipe
HEAD_LEARNING_RATE = 1e-2
HEAD_BATCH = 256


@torch.no_grad()
def layer_features(model: VGGStyleCNN, images: np.ndarray, grid: int,
                   device: str = "cpu") -> list[torch.Tensor]:
    """One trunk pass: each conv layer's ReLU output max-pooled to grid x grid and flattened,
    [N, C_k * grid^2] per layer (fp32); filter c owns columns c * grid^2 .. (c + 1) * grid^2 - 1."""
    model.to(device).eval()
    chunks = [[] for _ in model.layers]
    for start in range(0, len(images), EVAL_BATCH):
        with autocast(device, "bf16"):
            batch = torch.from_numpy(images[start:start + EVAL_BATCH]).to(device)
            outputs = model.layer_outputs(batch)
        for chunk, output in zip(chunks, outputs):
            chunk.append(F.adaptive_max_pool2d(output.float(), grid).flatten(1).cpu())
    return [torch.cat(chunk) for chunk in chunks]


class LayerHead(nn.Module):
    """A new output layer on one layer's pooled features: standardise (training mean and std),
    then linear."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, labels: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), labels)

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardise(features))


def new_heads(train_features: list[torch.Tensor], labels: int, seed: int) -> nn.ModuleList:
    """One seeded head per layer, standardising with that layer's training features."""
    torch.manual_seed(seed)
    return nn.ModuleList(LayerHead(f.mean(0), f.std(0).clamp_min(1e-6), labels)
                         for f in train_features)


def single_filter_fields(weight: torch.Tensor, standardised: torch.Tensor,
                         cells: int) -> torch.Tensor:
    """Output fields [filters, N, L] of a head whose weight [L, filters * cells] keeps only one
    filter's `cells` columns (the rest zeroed, the bias left out), on standardised features
    [N, filters * cells]."""
    labels, width = weight.shape
    filters = width // cells
    return torch.einsum("ncp,lcp->cnl", standardised.reshape(len(standardised), filters, cells),
                        weight.reshape(labels, filters, cells))


def label_averages(labels: torch.Tensor, label_count: int) -> torch.Tensor:
    """[N, L] weights that average over the images of each label: one-hot / label count."""
    one_hot = F.one_hot(labels, label_count).float()
    return one_hot / one_hot.sum(0).clamp_min(1)


def mean_fields_by_label(fields: torch.Tensor, labels: torch.Tensor,
                         label_count: int) -> torch.Tensor:
    """F[c, i, j]: mean field of output j over the images of label i, from fields [C, N, L]."""
    return torch.einsum("cnl,ni->cil", fields, label_averages(labels, label_count))


@dataclass(frozen=True)
class LayerReadout:
    """Per conv layer (list index 0 = layer 1) of a trained CNN, on the test images: its new output
    layer's accuracy [layers] and label confusion [layers, L, L] (counts, rows true); per filter
    the mean single-filter fields [C_k, L, L], the mean standardised activity on each label's
    images [C_k, L] (> 0: above the filter's average) and the single-filter accuracy [C_k]."""

    accuracy: np.ndarray
    confusions: np.ndarray
    filter_fields: list[np.ndarray]
    filter_activity: list[np.ndarray]
    filter_accuracy: list[np.ndarray]


def read_layer(reader: LayerReader, layer: int, test_features: torch.Tensor,
               test_labels: torch.Tensor, label_count: int, cells: int) -> dict[str, np.ndarray]:
    """One layer's test statistics (list index `layer`, fp32): accuracy, confusion, and per filter
    its mean fields, its activity per label and its single-filter accuracy.

    test_features: [N, C * cells] pooled features of that layer; test_labels: [N]."""
    head = reader.heads[layer]
    with torch.no_grad():
        predicted = reader.logits(layer, test_features).argmax(1)
        standardised = head.standardise(test_features)
        fields = single_filter_fields(head.linear.weight, standardised, cells)
        activity = standardised.reshape(len(standardised), -1, cells).mean(-1)  # [N, C]
        confusion = torch.bincount(test_labels * label_count + predicted, minlength=label_count ** 2)
        return {"accuracy": float((predicted == test_labels).float().mean()),
                "confusion": confusion.view(label_count, label_count).numpy(),
                "fields": mean_fields_by_label(fields, test_labels, label_count).numpy(),
                "activity": (label_averages(test_labels, label_count).T @ activity).T.numpy(),
                "filter_accuracy": (fields.argmax(-1) == test_labels).float().mean(1).numpy()}


READOUT_ARRAYS = ("fields", "activity", "filter_accuracy")


def build_layer_readout(folder: Path, recipe: LayerHeadsRecipe, data: ImageData,
                        cnn: TrainedCNN) -> None:
    """Cache every layer's features in one pass, train all heads, read every layer on the test set."""
    seed = recipe.cnn.seed
    model, device, grid = cnn.load(), recipe.cnn.compute.torch_device, recipe.feature_grid
    images, labels = training_images(data, recipe.cnn.image_train_samples, seed)
    started = time.time()
    train_features = layer_features(model, images, grid, device)
    heads = new_heads(train_features, len(data.label_names), seed)
    losses = train_heads_jointly(heads, train_features, torch.from_numpy(labels), recipe.head_epochs,
                                 HEAD_LEARNING_RATE, HEAD_BATCH, seed, bf16=False, progress=True)
    del train_features
    reader, test_labels = LayerReader(heads), torch.from_numpy(data.test_labels)
    test_features = layer_features(model, data.test_images, grid, device)
    layers = [read_layer(reader, k, features, test_labels, len(data.label_names), grid * grid)
              for k, features in enumerate(test_features)]
    arrays = {"accuracy": np.array([r["accuracy"] for r in layers]),
              "confusions": np.stack([r["confusion"] for r in layers])}
    arrays |= {f"{name}_{k}": layer[name]
               for k, layer in enumerate(layers) for name in READOUT_ARRAYS}
    np.savez(folder / "readout.npz", **arrays)
    (folder / "training.json").write_text(json.dumps({"head_losses": losses,
                                                     "seconds": time.time() - started}))
    print(f"New output layers on {len(layers)} frozen layers: {time.time() - started:.0f} s",
          flush=True)


def layer_readout(recipe: LayerHeadsRecipe, data: ImageData, cnn: TrainedCNN,
                  store: Store | None = None) -> LayerReadout:
    """The per-layer readout of a trained CNN (an artifact keyed by the CNN and the head knobs)."""
    store = store or Store()
    params = {"cnn": cnn.folder.name, **recipe.key()}
    folder = store.get_or_build("cnn-layers", params,
                                lambda f: build_layer_readout(f, recipe, data, cnn))
    saved = np.load(folder / "readout.npz")
    per_layer = {name: [saved[f"{name}_{k}"] for k in range(len(saved["accuracy"]))]
                 for name in READOUT_ARRAYS}
    return LayerReadout(saved["accuracy"], saved["confusions"], per_layer["fields"],
                        per_layer["activity"], per_layer["filter_accuracy"])
