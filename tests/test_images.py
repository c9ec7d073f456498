"""Chapter 7's machinery on hand-made inputs: single-filter masking, per-layer feature caching,
filter label sets and SNR, the shuffled-weights null, C11's verdict (planted filter label sets
that sharpen pass, shuffled ones fail) and its power, the secondary label-confusion reading by
chapter 3's rule and null, the figures, knobs."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from aptutils.analysis import filters
from aptutils.analysis.clusters import ClusterRule, shuffled_errors
from aptutils.analysis.power import DETECTED, weakest_detected
from aptutils.analysis.structure import partition
from aptutils.core.errors import ParameterError
from aptutils.core.params import resolve
from aptutils.data import images
from aptutils.models import vgg
from aptutils.plotting import image_figures, power_figures
from aptutils.plotting.figures import (
    cluster_sizes_by_depth_figure,
    metric_by_depth_figure,
)
from aptutils.readout import layers
from aptutils.readout.readers import BlockReader, LayerReader
from aptutils.reports import ch7_image_analogy
from aptutils.training import cnn


def test_single_filter_fields_keep_only_that_filters_columns():
    # two output labels; two filters of two grid cells each: filter 0 owns columns 0-1, filter 1 2-3
    weight = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    features = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 2.0, 0.0]])
    fields = layers.single_filter_fields(weight, features, cells=2)
    assert fields.tolist() == [[[1.0, 5.0], [2.0, 6.0]], [[4.0, 8.0], [6.0, 14.0]]]
    for c in range(2):
        masked = torch.zeros_like(weight)
        masked[:, 2 * c:2 * c + 2] = weight[:, 2 * c:2 * c + 2]
        assert torch.equal(fields[c], features @ masked.T)
    assert torch.equal(fields.sum(0), features @ weight.T)


def test_mean_fields_by_label_averages_the_images_of_each_label():
    fields = torch.tensor([[[1.0, 5.0], [3.0, 7.0], [2.0, 6.0]]])  # one filter, three images
    mean = layers.mean_fields_by_label(fields, torch.tensor([0, 0, 1]), label_count=2)
    assert mean.tolist() == [[[2.0, 6.0], [2.0, 6.0]]]


def test_read_layer_on_a_hand_made_head():
    head = layers.LayerHead(torch.zeros(4), torch.ones(4), labels=2)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]))
        head.linear.bias.copy_(torch.tensor([100.0, 0.0]))  # decides the head, not the fields
    features = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 2.0, 0.0]])
    reader = LayerReader(torch.nn.ModuleList([head]))
    assert isinstance(reader, BlockReader) and reader.blocks == 1 and reader.name == "layer"
    read = layers.read_layer(reader, 0, features, torch.tensor([0, 1]), label_count=2, cells=2)
    assert read["accuracy"] == 0.5 and read["confusion"].tolist() == [[1, 0], [1, 0]]
    assert read["fields"].tolist() == [[[1, 5], [2, 6]], [[4, 8], [6, 14]]]
    assert read["activity"].tolist() == [[0.5, 0.5], [0.5, 1.0]]  # [filter, label]
    assert read["filter_accuracy"].tolist() == [0.5, 0.5]


def test_channel_mean_and_std_in_units_of_one_255th():
    pixels = np.array([[[[0, 51]], [[255, 51]]]], dtype=np.uint8)  # [1, 2, 1, 2]
    mean, std = vgg.channel_mean_std(pixels)
    np.testing.assert_allclose(mean, [0.5, 0.2], rtol=1e-6)
    np.testing.assert_allclose(std, [0.5, 0.0], atol=1e-6)


def test_a_filter_recognises_the_labels_it_fires_on_and_votes_for():
    fields = np.array([[[4.0, 2.0, 1.0], [1.0, 3.0, -1.0], [2.0, 2.0, 8.0]]])
    activity = np.array([[1.0, 0.5, -1.0]])  # less active than average on label 2: row dropped
    found = filters.filter_labels(fields, activity, threshold=0.5)
    np.testing.assert_allclose(found.normalised[0], [[1, 0.5, 0.25], [0.25, 0.75, 0], [0, 0, 0]])
    assert found.recognised.tolist() == [[True, True, False]]
    assert found.sizes.tolist() == [2]
    # inside {0, 1} x {0, 1}: mean 0.625; outside, rows 0-1: (0.25 + 0) / 2 = 0.125
    np.testing.assert_allclose(found.parts(), [[2.5, 4, 0.25, 2]])
    assert found.snr() == pytest.approx(5.0)
    assert found.mean_size() == 2


def test_a_filter_without_clusters_or_noise():
    silent = filters.filter_labels(np.full((1, 2, 2), -1.0), np.ones((1, 2)), threshold=0.3)
    assert silent.sizes.tolist() == [0] and np.isnan(silent.snr())
    clean = filters.filter_labels(np.array([[[2.0, 0.0], [0.0, 1.0]]]), np.ones((1, 2)), 0.3)
    assert clean.sizes.tolist() == [2] and clean.snr() == float("inf")


def test_layer_features_from_one_pass_equal_a_direct_trunk_pass():
    torch.manual_seed(0)
    model = vgg.VGGStyleCNN(depth=3, width=4, side=8, channels_in=1, labels=10).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    cached = layers.layer_features(model, pixels, grid=2)
    assert [f.shape for f in cached] == [(5, 16), (5, 16), (5, 32)]
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        for k in range(3):
            x = model.prepare(torch.from_numpy(pixels))
            for layer, pool in zip(model.layers[:k], model.pools[:k]):
                x = pool(layer(x))
            direct = F.adaptive_max_pool2d(model.layers[k](x).float(), 2)  # [N, C, 2, 2]
            torch.testing.assert_close(cached[k], direct.flatten(1))
            torch.testing.assert_close(cached[k][:, 4:8], direct[:, 1].flatten(1))  # filter 1


def test_the_cnn_pools_every_second_layer_down_to_2x2():
    model = vgg.VGGStyleCNN(depth=6, width=2, side=8, channels_in=1, labels=10)
    outputs = model.layer_outputs(torch.zeros(1, 8, 8, 1, dtype=torch.uint8))
    assert [tuple(o.shape[1:]) for o in outputs] == [(2, 8, 8), (2, 8, 8), (4, 4, 4), (4, 4, 4),
                                                     (8, 2, 2), (8, 2, 2)]
    assert vgg.layer_channels(9, 3) == [3, 3, 6, 6, 12, 12, 24, 24, 24]


def planted_filters(strengths=(0.3, 2.0), size=2, count=24) -> layers.LayerReadout:
    """One conv layer per strength, `count` filters on 10 labels, each firing on every label:
    fields uniform in [0, 0.2), plus `strength` on set x set, filter c's set being labels c,
    c + 1, ... (mod 10)."""
    rng = np.random.default_rng(0)
    sets = (np.arange(10) - np.arange(count)[:, None]) % 10 < size  # [C, L]
    block = sets[:, :, None] & sets[:, None, :]
    fields = [rng.uniform(0, 0.2, (count, 10, 10)) + s * block for s in strengths]
    return layers.LayerReadout(np.linspace(0.4, 0.8, len(strengths)), np.zeros((len(strengths), 10, 10)),
                               fields, [np.ones((count, 10))] * len(strengths),
                               [np.zeros(count)] * len(strengths))


def c11_of(readout: layers.LayerReadout):
    test = filters.c11_test(readout, 0.3, 20, 0)
    return ch7_image_analogy.c11_verdict(test, filters.filter_power(readout, 0.3, 20, 0, 10), 0.3)


def test_shuffled_columns_permute_each_filters_output_labels_alone():
    # F[c, i, j] = 100 c + 10 i + j: after the shuffle, F[c, i, j] - 100 c - 10 i is filter c's
    # permutation of the output labels, the same on every row
    fields = 100.0 * np.arange(6)[:, None, None] + 10 * np.arange(5)[:, None] + np.arange(5)
    shuffled = filters.shuffled_columns(fields, np.random.default_rng(0))
    order = shuffled - 100 * np.arange(6)[:, None, None] - 10 * np.arange(5)[:, None]
    assert (order == order[:, :1]).all()
    assert all(sorted(o) == list(range(5)) for o in order[:, 0])
    assert len({tuple(o) for o in order[:, 0]}) > 1  # each filter its own permutation


def test_the_null_of_a_diagonal_filter_recognises_both_labels_or_none():
    # a swap moves the diagonal off it: nothing recognised (SNR 0); identity: no noise (inf)
    null = filters.snr_null(np.eye(2)[None], np.ones((1, 2)), 0.3, 20, np.random.default_rng(0))
    assert set(null) == {0.0, np.inf}


def test_planted_sets_and_fields():
    activity = np.array([[-1, 1, -1, 1, -1, 1], [-1, -1, -1, -1, 1, -1.0]])
    sets = filters.planted_sets(activity, 2, np.random.default_rng(0))
    assert sets.sum(1).tolist() == [2, 1] and not (sets & (activity < 0)).any()
    fields = np.array([[[1.0, -4.0], [9.0, 0.0]]])  # row 1 is not fired on: largest gated field 1
    planted = filters.planted_fields(fields, np.array([[1.0, -1.0]]), np.array([[True, True]]), 0.5)
    np.testing.assert_allclose(planted, [[[1.5, -3.5], [9.5, 0.5]]])


def test_c11_holds_on_planted_filter_label_sets_that_sharpen_with_depth():
    readout = planted_filters()
    test = filters.c11_test(readout, 0.3, 20, 0)
    assert test.set_size == 2 and test.small() and test.specific() and test.sharpens()
    verdict = c11_of(readout)
    assert verdict.verdict == "holds"
    assert verdict.reason.startswith("filters at layer 2 recognise 2.00 of 10 labels on average")
    assert "power: this run could see label sets of strength >=" in verdict.reason


def shuffled_filters(readout: layers.LayerReadout, seed: int) -> layers.LayerReadout:
    rng = np.random.default_rng(seed)
    shuffled = [filters.shuffled_columns(f, rng) for f in readout.filter_fields]
    return layers.LayerReadout(readout.accuracy, readout.confusions, shuffled,
                               readout.filter_activity, readout.filter_accuracy)


def test_c11_fails_once_the_planted_fields_are_shuffled():
    # a shuffled layer's SNR is a draw from its own null: above its 95th percentile ~5% of the time
    verdict = c11_of(shuffled_filters(planted_filters(), 3))
    assert verdict.verdict == "does not hold" and "(b) the SNR at layer 2" in verdict.reason
    held = [filters.c11_test(shuffled_filters(planted_filters(), seed), 0.3, 20, seed).holds()
            for seed in range(20)]
    assert sum(held) <= 3


def test_c11_refuses_large_label_sets_and_a_single_layer():
    verdict = c11_of(planted_filters(size=6))
    assert verdict.verdict == "does not hold"
    assert "(a) filters at layer 2 recognise 6.00 labels on average, not fewer than half of 10" in verdict.reason
    single = c11_of(planted_filters(strengths=(2.0,)))
    assert single.verdict == "not measured" and single.this_run.startswith("one conv layer, layer 1:")
    assert filters.filter_power(planted_filters(strengths=(2.0,)), 0.3, 20, 0, 10) is None


def test_the_power_of_c11_rises_with_strength_from_a_low_null_rate():
    power = filters.filter_power(planted_filters(), 0.3, 20, 0, 60)
    assert power.rate.index[0] == 0 and power.null_rate <= 0.15
    assert power.rate.iloc[-1] >= DETECTED and power.rate.iloc[-1] > power.null_rate
    assert power.weakest() == weakest_detected(power.rate) and power.rate.loc[power.weakest()] >= 0.8


def test_weakest_strength_seen_and_its_sentence():
    rate = pd.Series([0.05, 0.5, 0.85, 1.0], index=pd.Index([0, 0.5, 1, 2], name="strength"))
    power = filters.FilterPower(rate, 2, 20)
    assert power.weakest() == 1 and power.null_rate == 0.05
    assert "could see label sets of strength >= 1 (detected in >= 80% of plants" in \
        ch7_image_analogy.power_sentence(power)
    blind = filters.FilterPower(rate * 0.5, 2, 20)
    assert np.isnan(blind.weakest())
    assert "could not see label sets up to strength 2" in ch7_image_analogy.power_sentence(blind)


def test_power_figure_draws_one_curve_per_rule_and_the_reference_lines():
    rate = pd.Series([0.0, 0.9], index=pd.Index([0, 1.0], name="strength"))
    axes = power_figures.power_curve_figure(filters.FilterPower(rate, 2, 10).table, "s", "t").axes[0]
    assert axes.lines[0].get_ydata().tolist() == [0.0, 0.9]
    assert [line.get_ydata()[0] for line in axes.lines[1:]] == [DETECTED, 0.05]


LABEL_RULE = ClusterRule(0.5, "mutual", 5)


def planted_labels(pairs=((0, 1), (2, 3))) -> np.ndarray:
    """10 labels, each right 50 times; the planted pairs mistake each other 30 times (M = 0.6 both
    ways) and every label is mistaken once for every other one."""
    confusion = np.ones((10, 10), int) + np.diag(np.full(10, 49))
    for a, b in pairs:
        confusion[a, b] = confusion[b, a] = 30
    return confusion


def readout_of(*confusions) -> layers.LayerReadout:
    count = len(confusions)
    return layers.LayerReadout(np.linspace(0.4, 0.8, count), np.array(confusions),
                               [np.zeros((1, 10, 10))] * count, [np.ones((1, 10))] * count,
                               [np.zeros(1)] * count)


def confusion_reading(*confusions) -> pd.Series:
    readout = readout_of(*confusions)
    table = filters.layer_structure(readout, LABEL_RULE, 20, 0).assign(accuracy=readout.accuracy)
    return ch7_image_analogy.confusion_reading(table, 10, LABEL_RULE)


def test_label_clusters_come_from_chapter_3s_one_definition():
    readout = readout_of(planted_labels(), planted_labels(((4, 5),)))
    own = filters.confusion_partitions(readout, LABEL_RULE)
    for found, confusion in zip(own, readout.confusions):
        assert np.array_equal(found.labels, partition(confusion, LABEL_RULE).labels)
    assert own[0].clustered_tokens().tolist() == [0, 1, 2, 3]
    assert filters.reference_partition(own) is own[1]
    table = filters.layer_structure(readout, LABEL_RULE, 5, 0)
    assert table.index.tolist() == [1, 2] and table.index.name == "layer"
    assert table["clusters"].tolist() == [2, 1]
    # layer 1: 10 labels x 9 wrong labels, 1 each, + 4 x 29 on the pairs: 206 errors, 4 x 30 inside
    assert table.loc[1, "in-cluster share"] == pytest.approx(120 / 206)


def test_the_confusion_figure_draws_the_labels_in_the_order_the_report_computes():
    readout = readout_of(planted_labels(), planted_labels(((0, 7),)))
    order = ch7_image_analogy.confusion_label_order(readout, LABEL_RULE)  # the last layer's pair
    assert order.tolist() == [0, 7, 1, 2, 3, 4, 5, 6, 8, 9]
    figure = image_figures.layer_confusion_figure(readout, order, tuple("abcdefghij"))
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()][:3] == ["a", "h", "b"]


def test_the_confusion_reading_holds_on_planted_label_clusters_that_appear_with_depth():
    reading = confusion_reading(planted_labels(()), planted_labels())
    assert reading["reading"] == "holds"
    assert reading["reason"].startswith("2 label clusters of 2-2 labels at layer 2 (4 clustered against 0.0")


def test_the_confusion_reading_fails_once_the_label_clusters_are_shuffled_away():
    shuffled = shuffled_errors(planted_labels(), np.random.default_rng(3)).toarray()
    reading = confusion_reading(planted_labels(()), shuffled)
    assert reading["reading"] == "does not hold" and "no two of the 10 kept labels" in reading["reason"]


def test_the_confusion_reading_refuses_a_large_cluster_and_a_single_layer():
    chain = planted_labels(((0, 1), (1, 2), (2, 3), (3, 4), (4, 5)))  # one cluster of 6 labels
    reading = confusion_reading(planted_labels(()), chain)
    assert reading["reading"] == "does not hold" and "holds 6 of 10 labels: not small" in reading["reason"]
    assert confusion_reading(planted_labels())["reading"] == "not measured"


def test_metric_by_depth_figure_draws_one_line_per_curve():
    curves = {"a": pd.Series([0.1, 0.2], index=pd.Index([1, 2], name="layer")),
              "b": pd.Series([0.3, np.inf, 0.5], index=pd.Index([0, 1, 2], name="block"))}
    figure = metric_by_depth_figure(curves, ylabel="accuracy", title="t")
    axes = figure.axes[0]
    assert len(axes.lines) == 2 and axes.get_xlabel() == "layer / block"
    assert np.isnan(axes.lines[1].get_ydata()[1])


def test_cluster_sizes_by_depth_figure_leaves_out_small_clusters():
    figure = cluster_sizes_by_depth_figure({0: np.array([1, 2, 2, 4]), 1: np.array([1, 1, 3])}, "t")
    mean_line = figure.axes[0].lines[0]
    assert mean_line.get_xdata().tolist() == [0, 1]
    np.testing.assert_allclose(mean_line.get_ydata(), [8 / 3, 3])
    empty = cluster_sizes_by_depth_figure({0: np.array([1, 1])}, "t")
    assert empty.axes[0].texts[0].get_text() == "no clusters to show"


def test_digits_are_decoded_once_into_the_store():
    settings = resolve({"profile": "smoke"}).recipe(images.ImageRecipe)
    data = images.image_data(settings)
    assert data.name == "digits" and data.label_names == tuple("0123456789")
    assert data.train_images.shape == (1437, 8, 8, 1) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (360, 8, 8, 1) and set(data.test_labels) == set(range(10))
    assert images.image_data(settings).folder == data.folder


def test_the_trained_cnn_is_keyed_by_exactly_its_knobs(capsys):
    settings = resolve({"profile": "smoke", "image_train_samples": 64, "cnn_epochs": 1.0})
    data = images.image_data(settings.recipe(images.ImageRecipe))
    recipe = settings.recipe(cnn.CNNRecipe)
    trained = cnn.trained_cnn(recipe, data)
    key = json.loads((trained.folder / "params.json").read_text())["params"]
    assert key == {"images": data.folder.name, "cnn_depth": 3, "cnn_width": 8, "cnn_epochs": 1.0,
                   "cnn_lr": settings.cnn_lr, "cnn_batch": settings.cnn_batch,
                   "image_train_samples": 64, "seed": settings.seed}  # the knobs; no device
    assert 0 <= trained.card["test_accuracy"] <= 1 and trained.card["training_images"] == 64
    capsys.readouterr()
    assert cnn.trained_cnn(recipe, data).folder == trained.folder
    assert "Training the CNN" not in capsys.readouterr().out
    assert cnn.trained_cnn(settings.replace(seed=7).recipe(cnn.CNNRecipe), data).folder != trained.folder


def test_image_data_auto_means_digits_on_smoke_and_cifar10_elsewhere():
    assert images.resolved_image_data(resolve({"profile": "smoke"})) == "digits"
    assert images.resolved_image_data(resolve({"profile": "cpu"})) == "cifar10"
    assert images.resolved_image_data(resolve({"profile": "cpu", "image_data": "digits"})) == "digits"


@pytest.mark.parametrize("name, value, message", [
    ("image_data", "mnist", "image_data='mnist': allowed values are 'auto', 'cifar10', 'digits'"),
    ("cnn_depth", 0, "cnn_depth=0: out of range, allowed in [1, 16]"),
    ("cnn_width", 2.5, "cnn_width=2.5: must be an integer in [1, 1024]"),
    ("cnn_epochs", 0, "cnn_epochs=0: out of range, allowed (0.0, 1000.0]"),
    ("cnn_lr", "fast", "cnn_lr='fast': must be a number in [0.0, 1.0]"),
    ("cnn_batch", 0, "cnn_batch=0: out of range, allowed in [1, 65536]"),
    ("image_train_samples", 0, "image_train_samples=0: out of range, allowed >= 1"),
    ("head_epochs", -1, "head_epochs=-1: out of range, allowed (0.0, 1000.0]"),
    ("feature_grid", 9, "feature_grid=9: out of range, allowed in [1, 8]"),
    ("filter_threshold", 1.5, "filter_threshold=1.5: out of range, allowed (0.0, 1.0]"),
])
def test_bad_image_knobs_stop_with_a_message_naming_them(name, value, message):
    with pytest.raises(ParameterError) as error:
        resolve({"profile": "smoke", name: value})
    assert str(error.value) == message


def test_every_profile_sets_every_image_knob():
    for profile in ("smoke", "cpu", "gpu", "paper"):
        settings = resolve({"profile": profile})
        assert all(name in settings.values for name in ch7_image_analogy.CHAPTER_KNOBS)


def test_the_filter_figure_draws_the_fields_the_report_picks():
    readout = readout_of(planted_labels(), planted_labels(), planted_labels())  # one filter a layer
    fields = ch7_image_analogy.sharpest_filter_fields(readout, 0.5)
    assert list(fields) == [1, 3]  # the first and the last conv layer
    assert [[(f.layer, f.filter) for f in shown] for shown in fields.values()] == [[(1, 0)], [(3, 0)]]
    assert fields[1][0].field.shape == (10, 10)
    figure = image_figures.filter_fields_figure(fields, tuple("abcdefghij"))
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert [t.split("\n")[0] for t in titles] == ["layer 1, filter 0", "layer 3, filter 0"]
