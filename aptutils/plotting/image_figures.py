"""Chapter 7's figures: label examples, single-filter fields, per-layer label confusions, and the
BERT cluster sizes beside them (C11's power curve is `plotting.power_figures`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..core.exports import export_figures
from ..data.images import ImageData
from ..readout.layers import LayerReadout
from ..reports.ch7_image_analogy import FilterField, TextBlocks
from . import figures, heatmaps, task_figures


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


def filter_fields_figure(fields: dict[int, list[FilterField]], names: tuple[str, ...],
                         count: int = 4) -> plt.Figure:
    """Normalised single-filter matrices, one row per conv layer of `fields`
    (`ch7_image_analogy.sharpest_filter_fields`), `count` columns; the recognised labels are
    named in each title."""
    figure, axes = plt.subplots(len(fields), count, figsize=(2.9 * count, 3.0 * len(fields)),
                                squeeze=False, layout="constrained")
    for row, (layer, shown) in zip(axes, fields.items()):
        for axis, one in zip(row, shown):
            heatmaps.heatmap(axis, one.field, names, names)
            labels = ", ".join(names[i] for i in one.recognised)
            axis.set_title(f"layer {layer}, filter {one.filter}\n{labels}", fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel("image label")
    for axis in axes[-1]:
        axis.set_xlabel("output label")
    heatmaps.colorbar(figure, axes, "normalised field")
    plt.close(figure)
    return figure


def layer_confusion_figure(readout: LayerReadout, order: np.ndarray,
                           names: tuple[str, ...]) -> plt.Figure:
    """The label confusions of the first and the last conv layer's new output layers, each row as
    shares of its label's test images, labels in `order` (`ch7_image_analogy.confusion_label_order`:
    grouped by cluster)."""
    layers = dict.fromkeys((1, len(readout.accuracy)))
    return task_figures.label_confusion_figure(
        {f"layer {k}": readout.confusions[k - 1][np.ix_(order, order)] for k in layers},
        [names[i] for i in order])


def text_cluster_sizes_figure(text: TextBlocks | None) -> plt.Figure:
    """BERT's strong-match cluster sizes per block (an empty figure saying so when not stored)."""
    title = "BERT: token clusters per block (size >= 2)"
    if text is None:
        return figures.cluster_sizes_by_depth_figure({}, title + ", not in the store")
    return figures.cluster_sizes_by_depth_figure(text.sizes, title)


export_figures(globals())  # every figure is saved into the chapter's exports (core.exports)
