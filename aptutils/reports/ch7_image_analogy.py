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
- each layer's label confusion is clustered like chapter 3's token confusion (`analysis.structure.partition`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.filters import (
    confusion_partitions,
    confusion_snr,
    layer_filter_labels,
    reference_partition,
)
from ..analysis.structure import partitions_by_block, structure_table
from ..core.errors import DataError
from ..core.params import Settings
from ..core.store import Store
from ..core.verdicts import Verdict, decide
from ..data.images import SOURCE_NOTES, ImageData, training_images
from ..data.pretraining import pretraining_data
from ..models.vgg import layer_channels
from ..readout.counting import BlockCounts, load_block_counts
from ..readout.layers import READOUT_KNOBS, LayerReadout
from ..readout.reading import readout_params
from ..training.cnn import CNN_KNOBS, TrainedCNN
from ..training.pretrain import analysis_ws, model_params

CHAPTER_KNOBS = ("profile", "image_data", *CNN_KNOBS, *READOUT_KNOBS, "filter_threshold",
                 "threshold", "match", "protocol")


def knob_table(settings: Settings) -> pd.DataFrame:
    """The values of the knobs this chapter reads, as a one-column table."""
    return settings.table().loc[list(CHAPTER_KNOBS)]


def data_sentence(data: ImageData, settings: Settings) -> str:
    """One Markdown paragraph: where the images come from and how many are used."""
    height, width, channels = data.train_images.shape[1:]
    used = len(training_images(data, settings.image_train_samples, settings.seed)[1])
    return (f"**{data.name}**: {SOURCE_NOTES[data.source]}. {len(data.train_labels):,} training "
            f"and {len(data.test_labels):,} test images of {height}x{width}x{channels}, "
            f"{len(data.label_names)} labels. The CNN and the new output layers train on "
            f"{used:,} of the training images; every accuracy is measured on all test images.")


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


@dataclass(frozen=True)
class TextBlocks:
    """BERT's per-block statistics from chapters 2-4: table indexed by block (<APT>, token
    accuracy, clusters, SNR) and each block's strong-match cluster sizes."""

    table: pd.DataFrame
    sizes: dict[int, np.ndarray]


def stored_block_counts(settings: Settings, store: Store) -> list[BlockCounts] | None:
    """The `protocol` block counts that chapters 2-4 stored for these settings, or None; never
    trains (the key is `readout.reading.block_counts`'s)."""
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
