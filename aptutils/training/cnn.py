"""Training of chapter 7's VGG-style CNN on the image data, as a store artifact with its card and log.

Used by chapter 7.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.device import ComputeRecipe, autocast
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.images import ImageData, training_images
from ..models.vgg import VGGStyleCNN, new_cnn
from ..training.heads import train_steps



@dataclass(frozen=True)
class CNNRecipe(Recipe):
    """The CNN and its training: exactly the knobs of its key (beside its images), and where it
    runs (`compute`, not in the key)."""

    cnn_depth: int
    cnn_width: int
    cnn_epochs: float
    cnn_lr: float
    cnn_batch: int
    image_train_samples: int | None
    seed: int
    compute: ComputeRecipe


WARMUP_SHARE = 0.05
EVAL_BATCH = 500


def warmup_then_decay(total_steps: int):
    """Learning-rate factor: linear rise over WARMUP_SHARE of the steps, then linear decay to 0."""
    warmup = max(1, int(WARMUP_SHARE * total_steps))
    decay = max(1, total_steps - warmup)
    return lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / decay))


def train_cnn(model: VGGStyleCNN, images: np.ndarray, labels: np.ndarray, epochs: float,
              learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
              print_epochs: bool = True) -> list[dict]:
    """AdamW with warm-up and linear decay under bf16 autocast, through the one loop `train_steps`.

    images: [N, H, W, C] uint8, labels: [N]. Each epoch draws a seeded permutation and splits it
    into batches. Returns one log row per epoch (printed too when `print_epochs`).
    """
    generator = torch.Generator().manual_seed(seed)
    images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)
    total = max(1, math.ceil(epochs * math.ceil(len(labels) / batch_size)))
    model.to(device).train()
    log, epoch, started = [], {}, time.time()

    def losses(picked: torch.Tensor) -> list[torch.Tensor]:
        target = labels_t[picked].to(device)
        with autocast(device, "bf16"):
            logits = model(images_t[picked].to(device)).float()
        loss = F.cross_entropy(logits, target)
        epoch["loss_sum"] += float(loss.detach()) * len(picked)
        epoch["correct"] += int((logits.argmax(1) == target).sum())
        epoch["seen"] += len(picked)
        return [loss]

    def close_epoch(step: int) -> None:
        loss, accuracy = epoch["loss_sum"] / epoch["seen"], epoch["correct"] / epoch["seen"]
        log.append({"epoch": len(log) + 1, "step": step, "training loss": loss,
                    "training accuracy": accuracy, "seconds": time.time() - started})
        if print_epochs:
            print(f"CNN epoch {len(log)}/{math.ceil(epochs)}: training loss {loss:.3f}, "
                  f"training accuracy {accuracy:.3f}, {time.time() - started:.0f} s", flush=True)

    def epoch_batches():
        """A seeded permutation per epoch, split into batches, until `total` steps; each epoch's
        log row is written once its last step has been taken."""
        step = 0
        while step < total:
            epoch.update(loss_sum=0.0, correct=0, seen=0)
            order = torch.randperm(len(labels), generator=generator)
            for picked in order.split(batch_size)[:total - step]:
                yield picked
                step += 1
            close_epoch(step)

    train_steps(model.parameters(), epoch_batches(), losses, learning_rate,
                warmup_then_decay(total), total, progress=True, desc="CNN")
    model.eval()
    return log


@torch.no_grad()
def predict(model: VGGStyleCNN, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Predicted label of every image, [N]."""
    model.to(device).eval()
    predicted = []
    for start in range(0, len(images), EVAL_BATCH):
        with autocast(device, "bf16"):
            logits = model(torch.from_numpy(images[start:start + EVAL_BATCH]).to(device))
        predicted.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(predicted)


@dataclass(frozen=True)
class TrainedCNN:
    """A trained CNN in the store: weights, architecture and card (test accuracy, timing, log)."""

    folder: Path

    @property
    def card(self) -> dict:
        return json.loads((self.folder / "card.json").read_text())

    @property
    def log(self) -> pd.DataFrame:
        """One row per epoch (the index): step, training loss, training accuracy, seconds."""
        return pd.DataFrame(self.card["log"]).set_index("epoch")

    def load(self) -> VGGStyleCNN:
        model = VGGStyleCNN(**self.card["architecture"])
        model.load_state_dict(torch.load(self.folder / "model.pt"))
        return model.eval()


def build_cnn(folder: Path, recipe: CNNRecipe, data: ImageData) -> None:
    """Train the CNN of this recipe and save weights and card into `folder`."""
    images, labels = training_images(data, recipe.image_train_samples, recipe.seed)
    model = new_cnn(recipe.cnn_depth, recipe.cnn_width, recipe.seed, data, images)
    device = recipe.compute.torch_device
    log = train_cnn(model, images, labels, recipe.cnn_epochs, recipe.cnn_lr, recipe.cnn_batch,
                    recipe.seed, device)
    accuracy = float((predict(model, data.test_images, device) == data.test_labels).mean())
    height, _, channels = data.train_images.shape[1:]
    seconds = log[-1]["seconds"]
    card = {"architecture": {"depth": recipe.cnn_depth, "width": recipe.cnn_width, "side": height,
                             "channels_in": channels, "labels": len(data.label_names)},
            "parameters": sum(p.numel() for p in model.parameters()), "training_images": len(labels),
            "epochs": recipe.cnn_epochs, "steps": log[-1]["step"], "test_accuracy": accuracy,
            "wall_seconds": seconds, "device": device, "log": log,
            "images_per_second": log[-1]["step"] * recipe.cnn_batch / seconds}
    torch.save(model.cpu().state_dict(), folder / "model.pt")
    (folder / "card.json").write_text(json.dumps(card, indent=1))


def trained_cnn(recipe: CNNRecipe, data: ImageData, store: Store | None = None) -> TrainedCNN:
    """The CNN keyed by exactly its knobs and its images: from the store, or trained now (saying
    so)."""
    store = store or Store()
    params = {"images": data.folder.name, **recipe.key()}
    if store.get("cnn", params) is None:
        print("Training the CNN (not yet in the artifact store)", flush=True)
    return TrainedCNN(store.get_or_build("cnn", params, lambda f: build_cnn(f, recipe, data)))
