"""Chapter 7, the image analogy: a VGG-style CNN, its accuracy layer by layer, and the labels each
single filter recognises.

The group's image papers train a CNN, freeze its first k layers and train a new output layer on
layer k (accuracy by layer), then keep only the new layer's weights from one filter (single-filter
performance): each filter recognises a small cluster of labels, and the clusters sharpen with
depth. Choices made here (the papers' exact rules are not available offline):

- data: CIFAR-10 (the mirror's JPEG copy, else the hub's `uoft-cs/cifar10`) or scikit-learn's 8x8
  digits (smoke profile), decoded once into uint8 arrays [N, H, W, C] in the artifact store;
- CNN: conv3x3-BN-ReLU layers, a 2x2 max-pool after every second layer while the map is at least
  4 pixels wide, channels doubling every two layers (up to 8 x width), global average pool, linear;
- new output layer of layer k: its ReLU output max-pooled to a grid x grid map per filter,
  standardised with the training images' mean and std, then linear. All layers' heads train
  together on features cached from one trunk pass;
- single-filter fields: the head's output fields with only one filter's grid columns kept and the
  bias left out. Averaged over the test images of each label they give the filter's matrix
  F [L, L] (row: image label, column: output label). The standardised features average ~0 over
  all images, which removes a filter's input-independent preference for one output label;
- a filter recognises what makes it fire: rows of F for labels on whose images it is less active
  than on average are set to 0, negative entries too, and F is divided by its largest entry; the
  filter recognises label i when F[i, i] >= filter_threshold. Its SNR is the mean entry inside its
  cluster (recognised x recognised) over the mean entry elsewhere on the rows where it fires;
- each layer's label confusion is clustered like chapter 3's token confusion (`structure.partition`).
"""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
import seaborn as sns
import torch
import torch.nn.functional as F
from torch import nn

from . import figures
from .blocks import BlockCounts, load_block_counts, train_heads_jointly
from .clusters import cluster_signal_to_noise
from .data import DataError, load_hub_split, load_mirror_split, mirror_root
from .params import Settings
from .pretrain import model_params, pretraining_data, resolved_device
from .readout import analysis_ws, readout_params
from .store import Store
from .structure import Partition, partition, partitions_by_block, structure_table
from .verdicts import Verdict, decide

CIFAR10_HUB_ID = "uoft-cs/cifar10"
DIGITS_TEST_IMAGES = 360
DIGITS_SPLIT_SEED = 0
SOURCE_NOTES = {
    "mirror": "the offline mirror's CIFAR-10: all 60,000 images, stored as JPEG (quality about 75), "
              "so slightly lossy; expect accuracy a little below that on the lossless originals",
    "hub": f"CIFAR-10 from the Hugging Face hub (`{CIFAR10_HUB_ID}`, lossless PNG)",
    "scikit-learn": "scikit-learn's 8x8 grey digits (1,797 images; a stand-in for CIFAR-10 on the "
                    "smoke profile)",
}
CNN_KNOBS = ("cnn_depth", "cnn_width", "cnn_epochs", "cnn_lr", "cnn_batch", "image_train_samples",
             "seed")
READOUT_KNOBS = ("head_epochs", "feature_grid")
CHAPTER_KNOBS = ("profile", "image_data", *CNN_KNOBS, *READOUT_KNOBS, "filter_threshold",
                 "threshold", "match", "protocol")
MIN_POOLED_SIDE = 4  # maps narrower than this are not pooled, so the last maps stay >= 2x2
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.05
HEAD_LEARNING_RATE = 1e-2
HEAD_BATCH = 256
EVAL_BATCH = 500


def knob_table(settings: Settings) -> pd.DataFrame:
    """The values of the knobs this chapter reads, as a one-column table."""
    return settings.table().loc[list(CHAPTER_KNOBS)]


# --- data -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageData:
    """Train and test images of one dataset: images [N, H, W, C] uint8, labels [N] int64."""

    name: str
    source: str
    label_names: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    folder: Path


def resolved_image_data(settings: Settings) -> str:
    """What `image_data=auto` means: digits on the smoke profile, cifar10 elsewhere."""
    if settings.image_data != "auto":
        return settings.image_data
    return "digits" if settings.profile == "smoke" else "cifar10"


def image_source(name: str) -> str:
    """Where a dataset comes from: scikit-learn (digits), the mirror (APTBOOK_DATA) or the hub."""
    if name == "digits":
        return "scikit-learn"
    return "mirror" if mirror_root() is not None else "hub"


def decode_split(dataset) -> tuple[np.ndarray, np.ndarray]:
    """A hub-schema image split (columns img, label) as (RGB uint8 [N, H, W, 3], labels [N])."""
    from datasets import Image as ImageFeature
    from PIL import Image

    raw = dataset.cast_column("img", ImageFeature(decode=False))
    images = np.stack([np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB"))
                       for item in raw["img"]])
    return images, np.asarray(raw["label"], dtype=np.int64)


def build_cifar10(folder: Path, source: str) -> None:
    """Decode both CIFAR-10 splits from the mirror or the hub into `folder`."""
    for split in ("train", "test"):
        dataset = (load_mirror_split("cifar10", split, ("img", "label")) if source == "mirror"
                   else load_hub_split(CIFAR10_HUB_ID, None, split))
        images, labels = decode_split(dataset)
        np.save(folder / f"{split}_images.npy", images)
        np.save(folder / f"{split}_labels.npy", labels)
    names = dataset.features["label"].names
    (folder / "label_names.json").write_text(json.dumps(names))


def build_digits(folder: Path) -> None:
    """scikit-learn's digits as uint8 [N, 8, 8, 1] (0..16 scaled to 0..255), a fixed split with
    DIGITS_TEST_IMAGES test images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    train, test = order[:-DIGITS_TEST_IMAGES], order[-DIGITS_TEST_IMAGES:]
    for split, rows in (("train", train), ("test", test)):
        np.save(folder / f"{split}_images.npy", images[rows])
        np.save(folder / f"{split}_labels.npy", digits.target[rows].astype(np.int64))
    (folder / "label_names.json").write_text(json.dumps([str(d) for d in range(10)]))


def image_data(settings: Settings, store: Store | None = None) -> ImageData:
    """The decoded images of `image_data` (an artifact keyed by dataset and source)."""
    store = store or Store()
    name = resolved_image_data(settings)
    source = image_source(name)
    build = build_digits if name == "digits" else (lambda f: build_cifar10(f, source))
    folder = store.get_or_build("images", {"data": name, "source": source}, build)
    arrays = {n: np.load(folder / f"{n}.npy")
              for n in ("train_images", "train_labels", "test_images", "test_labels")}
    names = tuple(json.loads((folder / "label_names.json").read_text()))
    return ImageData(name, source, names, folder=folder, **arrays)


def training_images(data: ImageData, samples: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `samples` training images of a seeded shuffle (all of them for None)."""
    if samples is None or samples >= len(data.train_labels):
        return data.train_images, data.train_labels
    chosen = np.random.default_rng(seed).permutation(len(data.train_labels))[:samples]
    return data.train_images[chosen], data.train_labels[chosen]


def data_sentence(data: ImageData, settings: Settings) -> str:
    """One Markdown paragraph: where the images come from and how many are used."""
    height, width, channels = data.train_images.shape[1:]
    used = len(training_images(data, settings.image_train_samples, settings.seed)[1])
    return (f"**{data.name}**: {SOURCE_NOTES[data.source]}. {len(data.train_labels):,} training "
            f"and {len(data.test_labels):,} test images of {height}x{width}x{channels}, "
            f"{len(data.label_names)} labels. The CNN and the new output layers train on "
            f"{used:,} of the training images; every accuracy is measured on all test images.")


def label_examples_figure(data: ImageData) -> plt.Figure:
    """The first test image of every label, with its name."""
    figure, axes = plt.subplots(1, len(data.label_names), figsize=(1.3 * len(data.label_names), 1.7))
    for label, (axis, name) in enumerate(zip(axes, data.label_names)):
        image = data.test_images[np.flatnonzero(data.test_labels == label)[0]]
        axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        axis.set(title=name, xticks=[], yticks=[])
        axis.title.set_fontsize(8)
    plt.close(figure)
    return figure


# --- the CNN ----------------------------------------------------------------------------------

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


def new_cnn(settings: Settings, data: ImageData, train_images: np.ndarray) -> VGGStyleCNN:
    """A seeded CNN for these images, its input standardised with their per-channel mean and std."""
    torch.manual_seed(settings.seed)
    height, _, channels = data.train_images.shape[1:]
    model = VGGStyleCNN(settings.cnn_depth, settings.cnn_width, height, channels,
                        len(data.label_names))
    mean, std = channel_mean_std(train_images)
    model.input_mean.copy_(mean)
    model.input_std.copy_(std.clamp_min(1e-3))
    return model


def warmup_then_decay(total_steps: int):
    """Learning-rate factor: linear rise over WARMUP_SHARE of the steps, then linear decay to 0."""
    warmup = max(1, int(WARMUP_SHARE * total_steps))
    decay = max(1, total_steps - warmup)
    return lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / decay))


def train_cnn(model: VGGStyleCNN, images: np.ndarray, labels: np.ndarray, epochs: float,
              learning_rate: float, batch_size: int, seed: int, device: str = "cpu",
              progress: bool = True) -> list[dict]:
    """AdamW with warm-up and linear decay under bf16 autocast; one log row (and line) per epoch."""
    generator = torch.Generator().manual_seed(seed)
    images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)
    total = max(1, math.ceil(epochs * math.ceil(len(labels) / batch_size)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(total))
    model.to(device).train()
    log, step, started = [], 0, time.time()
    while step < total:
        order = torch.randperm(len(labels), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        for picked in order.split(batch_size):
            if step == total:
                break
            target = labels_t[picked].to(device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                logits = model(images_t[picked].to(device)).float()
            loss = F.cross_entropy(logits, target)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(picked)
            correct += int((logits.argmax(1) == target).sum())
            seen, step = seen + len(picked), step + 1
        log.append({"epoch": len(log) + 1, "step": step, "training loss": loss_sum / seen,
                    "training accuracy": correct / seen, "seconds": time.time() - started})
        if progress:
            print(f"CNN epoch {len(log)}/{math.ceil(epochs)}: training loss {loss_sum / seen:.3f}, "
                  f"training accuracy {correct / seen:.3f}, {time.time() - started:.0f} s",
                  flush=True)
    model.eval()
    return log


@torch.no_grad()
def predict(model: VGGStyleCNN, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Predicted label of every image, [N]."""
    model.to(device).eval()
    predicted = []
    for start in range(0, len(images), EVAL_BATCH):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
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


def build_cnn(folder: Path, settings: Settings, data: ImageData) -> None:
    """Train the CNN of these settings and save weights and card into `folder`."""
    images, labels = training_images(data, settings.image_train_samples, settings.seed)
    model = new_cnn(settings, data, images)
    device = resolved_device(settings)
    log = train_cnn(model, images, labels, settings.cnn_epochs, settings.cnn_lr, settings.cnn_batch,
                    settings.seed, device)
    accuracy = float((predict(model, data.test_images, device) == data.test_labels).mean())
    height, _, channels = data.train_images.shape[1:]
    seconds = log[-1]["seconds"]
    card = {"architecture": {"depth": settings.cnn_depth, "width": settings.cnn_width, "side": height,
                             "channels_in": channels, "labels": len(data.label_names)},
            "parameters": sum(p.numel() for p in model.parameters()), "training_images": len(labels),
            "epochs": settings.cnn_epochs, "steps": log[-1]["step"], "test_accuracy": accuracy,
            "wall_seconds": seconds, "device": device, "log": log,
            "images_per_second": log[-1]["step"] * settings.cnn_batch / seconds}
    torch.save(model.cpu().state_dict(), folder / "model.pt")
    (folder / "card.json").write_text(json.dumps(card, indent=1))


def trained_cnn(settings: Settings, data: ImageData, store: Store | None = None) -> TrainedCNN:
    """The CNN keyed by exactly its knobs and its images: from the store, or trained now (saying
    so)."""
    store = store or Store()
    params = {"images": data.folder.name, **settings.subset(CNN_KNOBS)}
    if store.get("cnn", params) is None:
        print(f"Training the CNN (not in the store {store.root})", flush=True)
    return TrainedCNN(store.get_or_build("cnn", params, lambda f: build_cnn(f, settings, data)))


def cnn_sentence(cnn: TrainedCNN, data: ImageData) -> str:
    """One Markdown sentence: the CNN's size, training cost and test accuracy."""
    card, architecture = cnn.card, cnn.card["architecture"]
    channels = " · ".join(map(str, layer_channels(architecture["depth"], architecture["width"])))
    return (f"The CNN has {architecture['depth']} conv layers (channels {channels}) and "
            f"{card['parameters']:,} parameters. It trained for {card['epochs']:g} epochs "
            f"({card['steps']:,} steps) on {card['training_images']:,} images in "
            f"{card['wall_seconds']:.0f} s on the {'GPU' if card['device'] == 'cuda' else 'CPU'} "
            f"({card['images_per_second']:,.0f} images/s, bf16 autocast). "
            f"**Test accuracy: {card['test_accuracy']:.3f}** on {len(data.test_labels):,} test "
            f"images (chance {1 / len(data.label_names):.2f}).")


# --- new output layers on frozen layers, single filters --------------------------------------

@torch.no_grad()
def layer_features(model: VGGStyleCNN, images: np.ndarray, grid: int,
                   device: str = "cpu") -> list[torch.Tensor]:
    """One trunk pass: each conv layer's ReLU output max-pooled to grid x grid and flattened,
    [N, C_k * grid^2] per layer (fp32); filter c owns columns c * grid^2 .. (c + 1) * grid^2 - 1."""
    model.to(device).eval()
    chunks = [[] for _ in model.layers]
    for start in range(0, len(images), EVAL_BATCH):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
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


def read_layer(head: LayerHead, test_features: torch.Tensor, test_labels: torch.Tensor,
               label_count: int, cells: int) -> dict[str, np.ndarray]:
    """One layer's test statistics: accuracy, confusion, and per filter its mean fields, its
    activity per label and its single-filter accuracy."""
    with torch.no_grad():
        predicted = head(test_features).argmax(1)
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


def build_layer_readout(folder: Path, settings: Settings, data: ImageData, cnn: TrainedCNN) -> None:
    """Cache every layer's features in one pass, train all heads, read every layer on the test set."""
    model, device, grid = cnn.load(), resolved_device(settings), settings.feature_grid
    images, labels = training_images(data, settings.image_train_samples, settings.seed)
    started = time.time()
    train_features = layer_features(model, images, grid, device)
    heads = new_heads(train_features, len(data.label_names), settings.seed)
    losses = train_heads_jointly(heads, train_features, torch.from_numpy(labels), settings.head_epochs,
                                 HEAD_LEARNING_RATE, HEAD_BATCH, settings.seed, bf16=False)
    del train_features
    test_labels = torch.from_numpy(data.test_labels)
    layers = [read_layer(head, features, test_labels, len(data.label_names), grid * grid)
              for head, features in zip(heads, layer_features(model, data.test_images, grid, device))]
    arrays = {"accuracy": np.array([r["accuracy"] for r in layers]),
              "confusions": np.stack([r["confusion"] for r in layers])}
    arrays |= {f"{name}_{k}": layer[name]
               for k, layer in enumerate(layers) for name in READOUT_ARRAYS}
    np.savez(folder / "readout.npz", **arrays)
    (folder / "training.json").write_text(json.dumps({"head_losses": losses,
                                                     "seconds": time.time() - started}))
    print(f"New output layers on {len(layers)} frozen layers: {time.time() - started:.0f} s",
          flush=True)


def layer_readout(settings: Settings, data: ImageData, cnn: TrainedCNN,
                  store: Store | None = None) -> LayerReadout:
    """The per-layer readout of a trained CNN (an artifact keyed by the CNN and the head knobs)."""
    store = store or Store()
    params = {"cnn": cnn.folder.name, **settings.subset(READOUT_KNOBS)}
    folder = store.get_or_build("cnn-layers", params,
                                lambda f: build_layer_readout(f, settings, data, cnn))
    saved = np.load(folder / "readout.npz")
    per_layer = {name: [saved[f"{name}_{k}"] for k in range(len(saved["accuracy"]))]
                 for name in READOUT_ARRAYS}
    return LayerReadout(saved["accuracy"], saved["confusions"], per_layer["fields"],
                        per_layer["activity"], per_layer["filter_accuracy"])


# --- labels per filter, clusters, SNR ---------------------------------------------------------

@dataclass(frozen=True)
class FilterLabels:
    """The single filters of one layer at one threshold.

    normalised: [C, L, L] mean fields, rows of labels the filter is not more active on than on
    average (activity <= 0) and negative entries set to 0, divided by the largest remaining entry;
    active: [C, L] those rows kept; recognised: [C, L] normalised F[c, i, i] >= threshold.
    """

    normalised: np.ndarray
    active: np.ndarray
    recognised: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        """How many labels each filter recognises, [C]."""
        return self.recognised.sum(1)

    def one(self, c: int) -> FilterLabels:
        """Filter c alone."""
        return FilterLabels(self.normalised[c:c + 1], self.active[c:c + 1], self.recognised[c:c + 1])

    def snr(self) -> float:
        """Mean normalised field inside the filters' clusters (recognised x recognised) over the
        mean outside them on active rows; pooled over the filters (inf if no noise, NaN if no
        cluster)."""
        inside = self.recognised[:, :, None] & self.recognised[:, None, :]
        outside = self.active[:, :, None] & ~inside
        if not inside.any():
            return float("nan")
        noise = self.normalised[outside].mean() if outside.any() else 0.0
        return float(self.normalised[inside].mean() / noise) if noise > 0 else float("inf")


def filter_labels(fields: np.ndarray, activity: np.ndarray, threshold: float) -> FilterLabels:
    """Which labels each filter of a layer recognises, from its mean fields [C, L, L] and its
    activity per label [C, L]."""
    active = activity > 0
    gated = np.clip(fields, 0, None) * active[:, :, None]
    peak = gated.max(axis=(1, 2), keepdims=True)
    normalised = np.divide(gated, peak, out=np.zeros_like(gated), where=peak > 0)
    return FilterLabels(normalised, active, np.diagonal(normalised, axis1=1, axis2=2) >= threshold)


def layer_filter_labels(readout: LayerReadout, threshold: float) -> list[FilterLabels]:
    """`filter_labels` of every conv layer, layer 1 first."""
    return [filter_labels(fields, activity, threshold)
            for fields, activity in zip(readout.filter_fields, readout.filter_activity)]


def label_set_sizes(readout: LayerReadout, threshold: float) -> dict[int, np.ndarray]:
    """Conv layer (1-based) -> how many labels each of its filters recognises, [C_k]."""
    return {k + 1: found.sizes for k, found in enumerate(layer_filter_labels(readout, threshold))}


def confusion_partitions(readout: LayerReadout, threshold: float, mutual: bool) -> list[Partition]:
    """Each layer's strong-match label clusters, by chapter 3's rule (`structure.partition`)."""
    return [partition(sp.csr_matrix(c), threshold, mutual) for c in readout.confusions]


def reference_partition(partitions: list[Partition]) -> Partition:
    """The clusters that the confusion SNR is measured against: the deepest layer's that has a
    cluster of size >= 2 (chapter 3 takes the last block's), else the last layer's."""
    clustered = [p for p in partitions if (p.sizes >= 2).any()]
    return clustered[-1] if clustered else partitions[-1]


def confusion_snr(confusion: np.ndarray, reference: Partition) -> float:
    """Chapter 3's SNR on a label confusion: over the labels clustered in `reference`, the raw
    confusion mass inside their reference cluster over the mass outside it (NaN if none)."""
    masses = cluster_signal_to_noise(sp.csr_matrix(confusion), reference.full_labels)
    masses = masses.iloc[reference.clustered_tokens()]
    off = masses["off_cluster"].sum()
    return float(masses["in_cluster"].sum() / off) if off > 0 else float("nan")


def layer_table(readout: LayerReadout, settings: Settings) -> pd.DataFrame:
    """Per conv layer (at `filter_threshold`, `threshold` and `match`): filters, test accuracy of
    its new output layer, mean single-filter accuracy, mean labels per filter (over the filters
    recognising any), filters recognising none, single-filter SNR (`FilterLabels.snr`), label
    clusters of its confusion and their SNR against `reference_partition` (`confusion_snr`)."""
    own = confusion_partitions(readout, settings.threshold, settings.match == "mutual")
    reference = reference_partition(own)
    rows = []
    for k, found in enumerate(layer_filter_labels(readout, settings.filter_threshold)):
        sizes = found.sizes
        rows.append({"layer": k + 1, "filters": len(sizes), "accuracy": readout.accuracy[k],
                     "single-filter accuracy": float(readout.filter_accuracy[k].mean()),
                     "labels per filter": sizes[sizes > 0].mean() if (sizes > 0).any() else np.nan,
                     "filters recognising none": int((sizes == 0).sum()), "filter SNR": found.snr(),
                     "label clusters (size >= 2)": int((own[k].sizes >= 2).sum()),
                     "confusion SNR": confusion_snr(readout.confusions[k], reference)})
    return pd.DataFrame(rows).set_index("layer")


def label_cluster_names(readout: LayerReadout, layer: int, threshold: float, mutual: bool,
                        names: tuple[str, ...]) -> list[str]:
    """The strong-match label clusters (size >= 2) of one conv layer (1-based), each as
    "{name, name}"."""
    found = confusion_partitions(readout, threshold, mutual)[layer - 1]
    sizes = np.bincount(found.labels)
    return ["{" + ", ".join(names[i] for i in found.kept[found.labels == c]) + "}"
            for c in np.flatnonzero(sizes >= 2)]


def clusters_sentence(readout: LayerReadout, settings: Settings, names: tuple[str, ...]) -> str:
    """One Markdown sentence: the label clusters of the first and the last layer's confusion."""
    mutual = settings.match == "mutual"
    parts = []
    for layer in dict.fromkeys((1, len(readout.accuracy))):
        found = label_cluster_names(readout, layer, settings.threshold, mutual, names)
        parts.append(f"layer {layer}: " + (", ".join(found) if found else "none"))
    return (f"Strong-match label clusters of the confusion (threshold {settings.threshold}, "
            f"{settings.match}): " + "; ".join(parts) + ".")


def sharpest_filters(found: FilterLabels, count: int) -> np.ndarray:
    """The `count` filters with the highest own SNR among those recognising a label."""
    ratio = np.array([found.one(c).snr() for c in range(len(found.sizes))])
    return np.argsort(-np.nan_to_num(ratio, nan=-1.0, posinf=np.inf), kind="stable")[:count]


def filter_fields_figure(readout: LayerReadout, threshold: float, names: tuple[str, ...],
                         count: int = 4) -> plt.Figure:
    """Normalised single-filter matrices of the `count` sharpest filters of the first and the last
    conv layer; the recognised labels are named in each title."""
    every = layer_filter_labels(readout, threshold)
    layers = list(dict.fromkeys((0, len(every) - 1)))
    figure, axes = plt.subplots(len(layers), count, figsize=(2.6 * count, 2.8 * len(layers)),
                                squeeze=False)
    for row, layer in zip(axes, layers):
        found = every[layer]
        for axis, c in zip(row, sharpest_filters(found, count)):
            sns.heatmap(found.normalised[c], ax=axis, vmin=0, vmax=1, cmap="mako_r", cbar=False,
                        square=True, xticklabels=names, yticklabels=names)
            labels = ", ".join(names[i] for i in np.flatnonzero(found.recognised[c]))
            axis.set_title(f"layer {layer + 1}, filter {c}\n{labels}", fontsize=7)
            axis.tick_params(labelsize=5)
    for axis in axes[:, 0]:
        axis.set_ylabel("image label")
    for axis in axes[-1]:
        axis.set_xlabel("output label")
    figure.tight_layout()
    plt.close(figure)
    return figure


def layer_confusion_figure(readout: LayerReadout, settings: Settings,
                           names: tuple[str, ...]) -> plt.Figure:
    """The label confusions of the first and the last conv layer's new output layers, each row as
    shares of its label's test images, labels ordered by the clusters of `reference_partition`."""
    own = confusion_partitions(readout, settings.threshold, settings.match == "mutual")
    order = np.argsort(reference_partition(own).full_labels, kind="stable")
    layers = dict.fromkeys((1, len(readout.accuracy)))
    return figures.label_confusion_figure(
        {f"layer {k}": readout.confusions[k - 1][np.ix_(order, order)] for k in layers},
        [names[i] for i in order])


def c11_verdict(table: pd.DataFrame, label_count: int) -> Verdict:
    """C11: at the last conv layer a filter recognises fewer than half the labels on average, and
    the single-filter SNR is higher there than at the first conv layer."""
    first, last = table.iloc[0], table.iloc[-1]
    small = last["labels per filter"] < label_count / 2
    sharper = last["filter SNR"] > first["filter SNR"]
    measured = len(table) > 1 and np.isfinite(last["labels per filter"])
    return Verdict(
        "C11",
        f"labels per filter at layer {table.index[-1]}: {last['labels per filter']:.2f} of "
        f"{label_count}; single-filter SNR {first['filter SNR']:.2f} → {last['filter SNR']:.2f}; "
        f"accuracy {first['accuracy']:.3f} → {last['accuracy']:.3f}",
        f"last conv layer: mean labels a filter recognises < {label_count / 2:g} (half the labels) "
        f"and single-filter SNR (mean field inside / outside the filters' label clusters) above "
        f"the first layer's",
        decide(bool(small and sharper) if measured else None))


# --- the text side: chapters 2-4's blocks, if the store holds them ----------------------------

@dataclass(frozen=True)
class TextBlocks:
    """BERT's per-block statistics from chapters 2-4: table indexed by block (<APT>, token
    accuracy, clusters, SNR) and each block's strong-match cluster sizes."""

    table: pd.DataFrame
    sizes: dict[int, np.ndarray]


def stored_block_counts(settings: Settings, store: Store) -> list[BlockCounts] | None:
    """The `protocol` block counts that chapters 2-4 stored for these settings, or None; never
    trains (the key is `readout.block_counts`'s)."""
    if not any(store.root.glob("block-counts-*")):
        return None
    try:
        data = pretraining_data(settings, store)
    except DataError:
        return None
    params = readout_params(settings, model_params(settings, data, analysis_ws(settings)))
    folder = store.get("block-counts", params)
    return load_block_counts(folder, settings.protocol) if folder is not None else None


def text_blocks(settings: Settings, store: Store | None = None) -> TextBlocks | None:
    """Chapters 2-4's per-block statistics, read with chapter 3's rules, when stored; else None."""
    blocks = stored_block_counts(settings, store or Store())
    if blocks is None:
        return None
    own = partitions_by_block(blocks, settings.threshold, settings.match == "mutual")
    table = structure_table(blocks, own, own[-1])
    table["<APT>"] = [b.counts.mean_apt() for b in blocks]
    table["token accuracy"] = [b.counts.accuracy for b in blocks]
    return TextBlocks(table, {b: p.sizes for b, p in enumerate(own)})


def text_sentence(text: TextBlocks | None, settings: Settings) -> str:
    """Whether the BERT side is shown, and which readout it is."""
    if text is None:
        return ("The store holds no per-block BERT counts for these settings, so the figures show "
                "the CNN alone; run chapters 2-4 on the same profile first to draw both.")
    return (f"The BERT curves are chapters 2-4's `{settings.protocol}` readout of the model with "
            f"W_S = {analysis_ws(settings):,}, clustered with the same "
            f"threshold ({settings.threshold}, {settings.match}).")


def accuracy_curves(table: pd.DataFrame, text: TextBlocks | None) -> dict[str, pd.Series]:
    """Accuracy against depth: the CNN's per-layer test accuracy, and BERT's per block."""
    curves = {"CNN: new output layer on layer k": table["accuracy"]}
    if text is not None:
        curves |= {"BERT: <APT> at block b": text.table["<APT>"],
                   "BERT: token accuracy at block b": text.table["token accuracy"]}
    return curves


def snr_curves(table: pd.DataFrame, text: TextBlocks | None) -> dict[str, pd.Series]:
    """SNR against depth: single filters and label confusion of the CNN, token confusion of BERT."""
    curves = {"CNN: single filters": table["filter SNR"],
              "CNN: label confusion": table["confusion SNR"]}
    if text is not None:
        curves["BERT: token confusion"] = text.table["SNR"]
    return curves


def text_cluster_sizes_figure(text: TextBlocks | None) -> plt.Figure:
    """BERT's strong-match cluster sizes per block (an empty figure saying so when not stored)."""
    title = "BERT: token clusters per block (size >= 2)"
    if text is None:
        return figures.cluster_sizes_by_depth_figure({}, title + ", not in the store")
    return figures.cluster_sizes_by_depth_figure(text.sizes, title)
