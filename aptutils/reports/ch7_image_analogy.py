"""Chapter 7, the image analogy: a VGG-style CNN, its accuracy layer by layer, the labels each
single filter recognises, and C11 decided on the image papers' own statistic.

The group's image papers train a CNN, freeze its first k layers and train a new output layer on
layer k (accuracy by layer), then keep only the new layer's weights from one filter (single-filter
performance): each filter recognises a small set of labels, and its SNR (signal inside its label
set over noise outside) rises with depth. Choices made here (the papers' exact rules are not
available offline):

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
  set (recognised x recognised) over the mean entry elsewhere on the rows where it fires.

C11's rule, fixed before the run was looked at (`analysis.filters`, which argues the null): C11
holds when, at the last conv layer, (a) filters recognise small label sets: the mean labels per
filter (over the filters recognising any) is below half of the labels; (b) the recognition is
specific: the layer's pooled filter SNR is above the 95th percentile of `null_repeats`
shuffled-weights copies (each filter's output labels permuted by its own permutation); (c) it
sharpens: the 95% bootstrap interval (each layer's filters resampled) of SNR(last conv layer) -
SNR(first conv layer) lies above 0. Not measured with a single conv layer. The verdict states the
rule's measured power (`analysis.filters.filter_power`): the weakest planted label-set strength
it detects in >= 80% of plants.

Secondary reading, not the verdict (`confusion_reading`): each layer's label confusion clustered
by chapter 3's token rule against its within-row shuffle null. With 10 labels and a good CNN few
label pairs confuse each other strongly both ways, so that rule asks something the image papers
never claimed; it is kept to compare with chapters 3-4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule
from ..analysis.filters import (
    FilterPower,
    FilterTest,
    confusion_partitions,
    layer_filter_labels,
    layer_snr_nulls,
    layer_structure,
    reference_partition,
    sharpest_filters,
)
from ..analysis.power import DETECTED
from ..analysis.scan import null_quantile
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
from ..data.images import SOURCE_NOTES, ImageData, ImageRecipe, training_images
from ..data.pretraining import DataRecipe, pretraining_data
from ..models.vgg import layer_channels
from ..readout.counting import BlockCounts, load_block_counts
from ..readout.layers import LayerHeadsRecipe, LayerReadout
from ..readout.reading import CountsRecipe, block_counts_params
from ..training.cnn import TrainedCNN
from ..training.subject import SubjectRecipe, subject_key

# the knobs this chapter reads: its recipes' and the few it reads itself
CHAPTER_KNOBS = tuple(dict.fromkeys(("profile", *ImageRecipe.knobs(), *LayerHeadsRecipe.knobs(),
                                     "filter_threshold", *ClusterRule.knobs(), "null_repeats",
                                     "power_plants", "protocol")))
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
    recognising none, single-filter SNR (`FilterLabels.snr`) and the mean and 95th percentile of
    its shuffled-weights null (`filters.layer_snr_nulls`, `null_repeats` copies)."""
    threshold = settings.filter_threshold
    nulls = layer_snr_nulls(readout, threshold, settings.null_repeats, settings.seed)
    rows = [{"layer": k + 1, "filters": len(found.sizes), "accuracy": readout.accuracy[k],
             "single-filter accuracy": float(readout.filter_accuracy[k].mean()),
             "labels per filter": found.mean_size(),
             "filters recognising none": int((found.sizes == 0).sum()), "filter SNR": found.snr(),
             "null SNR (mean)": float(null.mean()), "null SNR (95%)": null_quantile(null)}
            for k, (found, null) in enumerate(zip(layer_filter_labels(readout, threshold), nulls))]
    return pd.DataFrame(rows).set_index("layer")


def confusion_table(readout: LayerReadout, settings: Settings) -> pd.DataFrame:
    """Per conv layer: the accuracy of its new output layer and `filters.layer_structure` of its
    label confusion (chapter 3's rule and shuffle null: kept, clusters, clustered, largest,
    in-cluster share, the null's, and the excess)."""
    structure = layer_structure(readout, settings.recipe(ClusterRule), settings.null_repeats,
                                settings.seed)
    return structure.assign(accuracy=readout.accuracy)[["accuracy", *structure.columns]]


@dataclass(frozen=True)
class FilterField:
    """One filter of conv layer `layer` (1-based): its normalised single-filter matrix `field`
    [labels, labels] and the labels it recognises (indices)."""

    layer: int
    filter: int
    field: np.ndarray
    recognised: np.ndarray


def sharpest_filter_fields(readout: LayerReadout, threshold: float,
                           count: int = 4) -> dict[int, list[FilterField]]:
    """The `count` sharpest filters (`filters.sharpest_filters`) of the first and the last conv
    layer, by layer (1-based): what `image_figures.filter_fields_figure` draws."""
    every = layer_filter_labels(readout, threshold)
    return {layer + 1: [FilterField(layer + 1, int(c), every[layer].normalised[c],
                                    np.flatnonzero(every[layer].recognised[c]))
                        for c in sharpest_filters(every[layer], count)]
            for layer in dict.fromkeys((0, len(every) - 1))}


def confusion_label_order(readout: LayerReadout, rule: ClusterRule) -> np.ndarray:
    """The label indices in the order the confusion figure shows them: grouped by the clusters of
    `filters.reference_partition` (`image_figures.layer_confusion_figure`)."""
    partition = reference_partition(confusion_partitions(readout, rule))
    return np.argsort(partition.full_labels, kind="stable")


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
    rule = settings.recipe(ClusterRule)
    parts = []
    for layer in dict.fromkeys((1, len(readout.accuracy))):
        found = label_cluster_names(readout, layer, rule, names)
        parts.append(f"layer {layer}: " + (", ".join(found) if found else "none"))
    return f"Strong-match label clusters of the confusion ({rule.describe()}): " + "; ".join(parts) + "."


def power_sentence(power: FilterPower | None) -> str:
    """What C11's rule can see in this run: the weakest planted strength detected in >= 80% of
    plants, and the rule's rate without a plant."""
    if power is None:
        return "not measured (one conv layer)"
    top, strength = power.rate.index[-1], power.weakest(DETECTED)
    plants = (f"{power.set_size} labels planted per filter in the shuffled fields, "
              f"{power.plants} plants per strength; the rule fired on {power.null_rate:.0%} of the "
              f"plants of strength 0")
    if np.isnan(strength):
        return (f"this run could not see label sets up to strength {top:g} (best "
                f"{power.rate.max():.0%} of plants; {plants}), so a 'does not hold' cannot be told "
                f"from a blind measurement")
    return (f"this run could see label sets of strength >= {strength:g} (detected in "
            f">= {DETECTED:.0%} of plants; {plants})")


def power_title(power: FilterPower) -> str:
    """The power figure's title: what was planted and from which strength the rule sees it."""
    weakest = power.weakest(DETECTED)
    seen = (f"found in >= {DETECTED:.0%} of plants from strength {weakest:g}" if np.isfinite(weakest)
            else f"found in < {DETECTED:.0%} of plants at every strength up to {power.rate.index[-1]:g}")
    return (f"C11: {power.set_size}-label sets planted in every last-layer filter's shuffled "
            f"fields, {power.plants} plants per strength: {seen}")


def rule_statement(test: FilterTest, threshold: float, repeats: int) -> str:
    """C11's rule on single filters, with this run's layers and numbers of labels and copies."""
    return (f"single filters at filter_threshold {threshold:g}, conv layer {test.first} against "
            f"conv layer {test.last}: (a) mean labels per filter at layer {test.last} (filters "
            f"recognising any) < {test.labels / 2:g}, half the labels; (b) its pooled SNR above "
            f"the 95th percentile of {repeats} shuffled-weights copies (each filter's output "
            f"labels permuted); (c) the 95% bootstrap interval over filters of SNR(layer "
            f"{test.last}) − SNR(layer {test.first}) above 0. Strength of a planted label set: "
            f"the field added on set x set, in units of the filter's largest field")


def filter_failures(test: FilterTest) -> list[str]:
    """Which of C11's conditions (a)-(c) failed, each as a computed clause."""
    failures, last = [], test.last
    if np.isnan(test.set_size):
        failures.append(f"(a) no filter at layer {last} recognises a label")
    elif not test.small():
        failures.append(f"(a) filters at layer {last} recognise {test.set_size:.2f} labels on "
                        f"average, not fewer than half of {test.labels}")
    if not test.specific():
        failures.append(f"(b) the SNR at layer {last} ({test.snr:.2f}) is not above the "
                        f"shuffled-weights null's 95th percentile ({test.null_top:.2f}): no more "
                        f"specific than random output weights")
    if not test.sharpens():
        failures.append(f"(c) the SNR goes from {test.first_snr:.2f} at layer {test.first} to "
                        f"{test.snr:.2f} at layer {last}, a difference of "
                        f"{test.rise.text(signed=True)} whose interval is not above 0")
    return failures


def c11_verdict(test: FilterTest, power: FilterPower | None, threshold: float) -> Verdict:
    """C11 by the single-filter rule (`filters.FilterTest`), its reason naming the conditions that
    failed, and the rule's measured power (`power_sentence`)."""
    level = (f"layer {test.last}: {test.set_size:.2f} labels per filter of {test.labels}; SNR "
             f"{test.snr:.2f} (shuffled-weights null, 95th percentile {test.null_top:.2f})")
    statistic = rule_statement(test, threshold, len(test.null))
    holds = test.holds()
    if holds is None:
        return Verdict("C11", f"one conv layer, {level}", statistic, decide(None),
                       "one conv layer only: no depth to sharpen along")
    this_run = (f"{level}; SNR(layer {test.last}) − SNR(layer {test.first}) = "
                f"{test.rise.text(signed=True)}")
    reason = "; ".join(filter_failures(test)) or (
        f"filters at layer {test.last} recognise {test.set_size:.2f} of {test.labels} labels on "
        f"average, with SNR {test.snr:.2f} against {test.null_top:.2f} for shuffled weights, up "
        f"from {test.first_snr:.2f} at layer {test.first}")
    return Verdict("C11", this_run, statistic, decide(holds),
                   f"{reason}; power: {power_sentence(power)}")


def confusion_reading(table: pd.DataFrame, label_count: int, rule: ClusterRule) -> pd.Series:
    """The secondary reading (not C11's verdict) from `confusion_table`: chapter 3's token rule on
    the label confusion holds when, at the last conv layer, label clusters exist, the largest holds
    fewer than half the labels, more labels are clustered than the shuffle null's 95th percentile,
    and the excess in-cluster share is above the first conv layer's. Index: this run, rule,
    reading (holds / does not hold / not measured), reason."""
    first, last, layer = table.iloc[0], table.iloc[-1], table.index[-1]
    kept, clusters, clustered, largest = (int(last[c])
                                          for c in ("kept", "clusters", "clustered", "largest"))
    null_mean, null_top = last["null clustered (mean)"], last["null clustered (95%)"]
    this_run = (f"layer {layer}: {counted(clusters, 'label cluster')}, largest {largest} of {kept} kept labels, "
                f"{clustered} clustered (shuffled null {null_mean:.1f}, 95th percentile "
                f"{null_top:.1f}); excess in-cluster share {first[EXCESS]:.3f} (layer "
                f"{table.index[0]}) → {last[EXCESS]:.3f}")
    statement = (f"chapter 3's rule ({rule.describe()}) on the label confusion: at the last conv "
                 f"layer clusters of size >= 2 exist, the largest holds < {label_count / 2:g} "
                 f"labels, more labels are clustered than the 95th percentile of the within-row "
                 f"shuffle null, and the excess in-cluster share of errors is above the first "
                 f"layer's")
    index = ["this run", "rule", "reading", "reason"]
    if len(table) < 2 or kept == 0 or not np.isfinite([first[EXCESS], last[EXCESS]]).all():
        return pd.Series([this_run, statement, decide(None),
                          "one conv layer only, no label past the filter at the last layer, or a "
                          "layer without wrong predictions: nothing to compare"], index=index)
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
    return pd.Series([this_run, statement, decide(not failures), reason], index=index)


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
        data = pretraining_data(settings.recipe(DataRecipe), store)
    except DataError:
        return None
    subject = settings.recipe(SubjectRecipe)
    params = block_counts_params(settings.recipe(CountsRecipe),
                                 subject_key(subject, subject.ws, True, data))
    folder = store.get("block-counts", params)
    return (load_block_counts(folder, settings.protocol, settings.kinds) if folder is not None
            else None)


def text_blocks(settings: Settings, store: Store | None = None) -> TextBlocks | None:
    """Chapters 2-4's per-block statistics, read with chapter 3's rules, when stored; else None."""
    blocks = stored_block_counts(settings, store or Store())
    if blocks is None:
        return None
    rule = settings.recipe(ClusterRule)
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
            f"W_S = {settings.recipe(SubjectRecipe).ws:,}, clustered by the same rule "
            f"({settings.recipe(ClusterRule).describe()}) against the same null.")


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
