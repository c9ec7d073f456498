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
- each layer's label confusion is clustered by chapter 3's rule (`analysis.structure.partition`)
  and measured against chapter 3's within-row shuffle null (`analysis.structure.structure_table`).
  C11 holds when, at the last conv layer, label clusters exist, the largest holds fewer than half
  the labels, more labels are clustered than the null's 95th percentile, and the share of errors
  inside the clusters exceeds the null's mean by more than at the first conv layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule
from ..analysis.filters import (
    confusion_partitions,
    layer_filter_labels,
    layer_structure,
)
from ..analysis.structure import (
    counted,
    partitions_by_block,
    structure_by_block,
    trend,
    trend_phrase,
)
from ..core.errors import DataError
from ..core.params import Settings
from ..core.store import Store
from ..core.verdicts import Verdict, decide
from ..data.images import SOURCE_NOTES, ImageData, training_images
from ..data.pretraining import pretraining_data
from ..models.vgg import layer_channels
from ..readout.counting import BlockCounts, load_block_counts
from ..readout.layers import READOUT_KNOBS, LayerReadout
from ..readout.reading import block_counts_params
from ..training.cnn import CNN_KNOBS, TrainedCNN
from ..training.pretrain import analysed_ws, model_params

CHAPTER_KNOBS = ("profile", "image_data", *CNN_KNOBS, *READOUT_KNOBS, "filter_threshold",
                 "threshold", "match", "min_row_count", "null_repeats", "protocol")
EXCESS = "excess in-cluster share"


def knob_table(settings: Settings):
    """The values of the knobs this chapter reads, as one compact table."""
    return settings.table(CHAPTER_KNOBS)


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
    """Per conv layer: filters, test accuracy of its new output layer, mean single-filter accuracy,
    mean labels per filter (over the filters recognising any) at `filter_threshold`, filters
    recognising none, single-filter SNR (`FilterLabels.snr`), then `filters.layer_structure` of its
    label confusion (chapter 3's rule and shuffle null: kept, clusters, clustered, largest,
    in-cluster share, the null's, and the excess)."""
    rows = []
    for k, found in enumerate(layer_filter_labels(readout, settings.filter_threshold)):
        sizes = found.sizes
        rows.append({"layer": k + 1, "filters": len(sizes), "accuracy": readout.accuracy[k],
                     "single-filter accuracy": float(readout.filter_accuracy[k].mean()),
                     "labels per filter": sizes[sizes > 0].mean() if (sizes > 0).any() else np.nan,
                     "filters recognising none": int((sizes == 0).sum()), "filter SNR": found.snr()})
    structure = layer_structure(readout, ClusterRule.from_settings(settings), settings.null_repeats,
                                settings.seed)
    return pd.DataFrame(rows).set_index("layer").join(structure)


def label_cluster_names(readout: LayerReadout, layer: int, rule: ClusterRule,
                        names: tuple[str, ...]) -> list[str]:
    """The strong-match label clusters (size >= 2) of one conv layer (1-based), each as
    "{name, name}"."""
    found = confusion_partitions(readout, rule)[layer - 1]
    sizes = np.bincount(found.labels)
    return ["{" + ", ".join(names[i] for i in found.kept[found.labels == c]) + "}"
            for c in np.flatnonzero(sizes >= 2)]


def clusters_sentence(readout: LayerReadout, settings: Settings, names: tuple[str, ...]) -> str:
    """One Markdown sentence: the label clusters of the first and the last layer's confusion."""
    rule = ClusterRule.from_settings(settings)
    parts = []
    for layer in dict.fromkeys((1, len(readout.accuracy))):
        found = label_cluster_names(readout, layer, rule, names)
        parts.append(f"layer {layer}: " + (", ".join(found) if found else "none"))
    return f"Strong-match label clusters of the confusion ({rule.describe()}): " + "; ".join(parts) + "."


def c11_verdict(table: pd.DataFrame, label_count: int, rule: ClusterRule) -> Verdict:
    """C11 from `layer_table`: at the last conv layer label clusters exist, the largest holds fewer
    than half the labels, more labels are clustered than the shuffle null's 95th percentile, and
    the excess in-cluster share is above the first conv layer's."""
    first, last, layer = table.iloc[0], table.iloc[-1], table.index[-1]
    kept, clusters, clustered, largest = (int(last[c])
                                          for c in ("kept", "clusters", "clustered", "largest"))
    null_mean, null_top = last["null clustered (mean)"], last["null clustered (95%)"]
    this_run = (f"layer {layer}: {counted(clusters, 'label cluster')}, largest {largest} of {kept} kept labels, "
                f"{clustered} clustered (shuffled null {null_mean:.1f}, 95th percentile "
                f"{null_top:.1f}); excess in-cluster share {first[EXCESS]:.3f} (layer "
                f"{table.index[0]}) → {last[EXCESS]:.3f}; accuracy {first['accuracy']:.3f} → "
                f"{last['accuracy']:.3f}")
    statistic = (f"label confusion of the new output layers, chapter 3's rule ({rule.describe()}): "
                 f"at the last conv layer clusters of size >= 2 exist, the largest holds < "
                 f"{label_count / 2:g} labels (half), more labels are clustered than the 95th "
                 f"percentile of the within-row shuffle null, and the excess in-cluster share of "
                 f"errors is above the first layer's")
    if len(table) < 2 or kept == 0 or not np.isfinite([first[EXCESS], last[EXCESS]]).all():
        return Verdict("C11", this_run, statistic, decide(None),
                       "one conv layer only, no label past the filter at the last layer, or a layer "
                       "without wrong predictions: nothing to compare")
    failures = []
    if kept == 1:
        failures.append(f"a single label passes the filter at layer {layer}: nothing to cluster")
    elif clusters == 0:
        failures.append(f"no two of the {kept} kept labels match strongly at layer {layer}")
    if largest >= label_count / 2:
        failures.append(f"the largest label cluster holds {largest} of {label_count} labels: not small")
    if clusters and not clustered > null_top:
        failures.append(f"{clustered} clustered labels, no more than the shuffled null's 95th "
                        f"percentile {null_top:.1f}")
    if not last[EXCESS] > first[EXCESS]:
        failures.append(f"the excess in-cluster share {trend(table[EXCESS].iloc[[0, -1]])} from "
                        f"layer {table.index[0]} ({first[EXCESS]:.3f}) to layer {layer} "
                        f"({last[EXCESS]:.3f})")
    reason = "; ".join(failures) or (
        f"{counted(clusters, 'label cluster')} of 2-{largest} labels at layer {layer} ({clustered} clustered "
        f"against {null_mean:.1f} under the shuffled null); the excess in-cluster share rises from "
        f"{first[EXCESS]:.3f} at layer {table.index[0]} to {last[EXCESS]:.3f}")
    return Verdict("C11", this_run, statistic, decide(not failures), reason)


@dataclass(frozen=True)
class TextBlocks:
    """BERT's per-block statistics from chapters 2-4: table indexed by block (`structure_by_block`
    columns, <APT>, token accuracy) and each block's strong-match cluster sizes."""

    table: pd.DataFrame
    sizes: dict[int, np.ndarray]


def stored_block_counts(settings: Settings, store: Store) -> list[BlockCounts] | None:
    """The `protocol` block counts that chapters 2-4 stored for these settings, or None; never
    trains (the key is `readout.reading.block_counts`'s)."""
    if not store.holds_any("block-counts"):
        return None
    try:
        data = pretraining_data(settings, store)
    except DataError:
        return None
    params = block_counts_params(settings, model_params(settings, data, analysed_ws(settings)))
    folder = store.get("block-counts", params)
    return (load_block_counts(folder, settings.protocol, settings.kinds) if folder is not None
            else None)


def text_blocks(settings: Settings, store: Store | None = None) -> TextBlocks | None:
    """Chapters 2-4's per-block statistics, read with chapter 3's rules, when stored; else None."""
    blocks = stored_block_counts(settings, store or Store())
    if blocks is None:
        return None
    rule = ClusterRule.from_settings(settings)
    own = partitions_by_block(blocks, rule)
    table = structure_by_block(blocks, rule, settings.null_repeats, settings.seed)
    table["<APT>"] = [b.counts.mean_apt() for b in blocks]
    table["token accuracy"] = [b.counts.accuracy for b in blocks]
    return TextBlocks(table, {b: p.sizes for b, p in enumerate(own)})


def text_sentence(text: TextBlocks | None, settings: Settings) -> str:
    """Whether the BERT side is shown, and which readout it is."""
    if text is None:
        return ("The store holds no per-block BERT counts for these settings, so the figures show "
                "the CNN alone; run chapters 2-4 on the same profile first to draw both.")
    return (f"The BERT curves are chapters 2-4's `{settings.protocol}` readout of the model with "
            f"W_S = {analysed_ws(settings):,}, clustered by the same rule "
            f"({ClusterRule.from_settings(settings).describe()}) against the same null.")


def accuracy_curves(table: pd.DataFrame, text: TextBlocks | None) -> dict[str, pd.Series]:
    """Accuracy against depth: the CNN's per-layer test accuracy, and BERT's per block."""
    curves = {"CNN: new output layer on layer k": table["accuracy"]}
    if text is not None:
        curves |= {"BERT: <APT> at block b": text.table["<APT>"],
                   "BERT: token accuracy at block b": text.table["token accuracy"]}
    return curves


def cluster_curves(table: pd.DataFrame, text: TextBlocks | None) -> dict[str, pd.Series]:
    """The excess in-cluster share of errors against depth: the CNN's label confusion, and BERT's
    token confusion when stored."""
    curves = {"CNN: label confusion": table[EXCESS]}
    if text is not None:
        curves["BERT: token confusion"] = text.table[EXCESS]
    return curves


def cluster_title(table: pd.DataFrame) -> str:
    """The cluster figure's title, saying the direction the CNN's curve took in this run."""
    return (f"CNN: share of errors inside the label clusters, above the shuffled null: it "
            f"{trend_phrase(table[EXCESS], 'layer')}")


def filter_snr_title(table: pd.DataFrame) -> str:
    """The single-filter SNR figure's title, saying the direction the run computed."""
    return f"Single-filter SNR: it {trend_phrase(table['filter SNR'], 'layer')}"
