"""The one counting engine and the one autocast helper, on hand-made examples."""
import numpy as np
import pytest
import torch

from aptutils.core.counts import TokenCounts, count_predictions, summed_confusion
from aptutils.core.device import autocast
from aptutils.core.kinds import KINDS, kind_rows, reading_kinds, reading_name


def test_count_predictions_of_five_hand_made_positions():
    # position:        0  1  2  3  4
    predicted = torch.tensor([1, 2, 2, 0, 3])
    labels = torch.tensor([1, 2, 3, 0, 3])
    kinds = torch.tensor([1, 1, 2, 3, 3])  # masked, masked, replaced, unchanged, unchanged
    counts, by_kind = count_predictions(predicted, labels, kinds, vocab_size=4, confusion=True)
    assert counts.total.tolist() == [[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1]]
    assert counts.correct.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    assert counts.total.dtype == np.int64 and counts.accuracy == 0.8 and counts.loss_sum == 0.0
    assert counts.kind_accuracy("replaced") == 0.0
    assert counts.kind_accuracy("masked,unchanged") == 1.0  # 4 of the 4 positions
    # (true, predicted) per kind: masked (1, 1), (2, 2); replaced (3, 2); unchanged (0, 0), (3, 3)
    masked, replaced, unchanged = (m.toarray().tolist() for m in by_kind)
    assert all(m.shape == (4, 4) for m in by_kind)
    assert masked == [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert replaced == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    assert unchanged == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert summed_confusion(by_kind, "all").toarray().tolist() == [
        [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    assert summed_confusion(by_kind, ("replaced", "masked")).toarray()[3].tolist() == [0, 0, 1, 0]
    without, none = count_predictions(predicted.numpy(), labels.numpy(), kinds.numpy(), 4)
    assert none is None and (without.correct == counts.correct).all()


def test_count_predictions_of_no_positions():
    empty = torch.zeros(0, dtype=torch.long)
    counts, by_kind = count_predictions(empty, empty, empty, vocab_size=3, confusion=True)
    assert counts.total.shape == (3, 3) and counts.total.sum() == 0
    assert len(by_kind) == 3 and all(m.nnz == 0 and m.shape == (3, 3) for m in by_kind)


@pytest.mark.parametrize("kinds, rows, name", [
    (None, [0, 1, 2], "all"), ("all", [0, 1, 2], "all"), ("masked", [0], "masked"),
    ("unchanged,masked", [0, 2], "masked+unchanged"), (("replaced",), [1], "replaced"),
    ("masked+replaced+unchanged", [0, 1, 2], "all"),
])
def test_readings_name_their_rows(kinds, rows, name):
    assert kind_rows(kinds) == rows and reading_name(kinds) == name
    assert reading_kinds(kinds) == tuple(KINDS[r] for r in rows)


@pytest.mark.parametrize("kinds", ["", "mask", ("masked", "copied"), ()])
def test_an_unknown_reading_is_refused(kinds):
    with pytest.raises(ValueError, match="reading"):
        reading_kinds(kinds)


def reading_counts() -> TokenCounts:
    """Three tokens. token 0: masked 1/4, unchanged 2/2; token 1: masked 0/1; token 2: none."""
    correct = np.array([[1, 0, 0], [0, 0, 0], [2, 0, 0]])
    total = np.array([[4, 1, 0], [0, 0, 0], [2, 0, 0]])
    return TokenCounts(correct, total)


def test_apt_and_mean_apt_on_a_reading_with_a_minimum_of_positions():
    counts = reading_counts()
    np.testing.assert_array_equal(counts.apt("masked"), [0.25, 0.0, np.nan])
    np.testing.assert_array_equal(counts.apt(), [0.5, 0.0, np.nan])
    np.testing.assert_array_equal(counts.apt("masked", min_occurrences=2), [0.25, np.nan, np.nan])
    np.testing.assert_array_equal(counts.apt("unchanged"), [1.0, np.nan, np.nan])
    assert counts.mean_apt("masked") == pytest.approx(0.125)
    assert counts.mean_apt("masked", min_occurrences=2) == pytest.approx(0.25)
    assert np.isnan(counts.mean_apt("replaced"))
    assert counts.occurrences("masked").tolist() == [4, 1, 0] and counts.occurrences().tolist() == [6, 1, 0]


def test_counts_of_two_maskings_pool():
    counts = reading_counts()
    pooled = counts + TokenCounts(counts.correct, counts.total, loss_sum=2.0)
    assert (pooled.total == 2 * counts.total).all() and pooled.loss_sum == 2.0
    assert pooled.mean_apt("masked") == counts.mean_apt("masked")


@pytest.mark.parametrize("precision, enabled", [("bf16", True), (True, True), ("fp32", False),
                                                ("fp16", False), (False, False)])
def test_autocast_runs_bf16_only_when_asked(precision, enabled):
    with autocast("cpu", precision):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == (torch.bfloat16 if enabled else torch.float32)
    with autocast(torch.device("cpu"), precision):
        assert torch.is_autocast_enabled("cpu") == enabled


def test_autocast_rejects_an_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        autocast("cpu", "int8")
