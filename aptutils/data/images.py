"""Chapter 7's images: CIFAR-10 (mirror or hub) or scikit-learn's digits, decoded once into uint8
arrays [N, H, W, C] in the artifact store.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.recipes import Recipe
from ..core.store import Store
from ..data.corpus import load_hub_split, load_mirror_split, mirror_root

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


@dataclass(frozen=True)
class ImageRecipe(Recipe):
    """Which images: `image_data` (auto resolves by `profile`)."""

    image_data: str
    profile: str


def resolved_image_data(recipe: ImageRecipe) -> str:
    """What `image_data=auto` means: digits on the smoke profile, cifar10 elsewhere."""
    if recipe.image_data != "auto":
        return recipe.image_data
    return "digits" if recipe.profile == "smoke" else "cifar10"


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


def image_data(recipe: ImageRecipe, store: Store | None = None) -> ImageData:
    """The decoded images of `image_data` (an artifact keyed by dataset and source)."""
    store = store or Store()
    name = resolved_image_data(recipe)
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
