"""The trivial rules, on a masked set small enough to score by hand."""
import numpy as np
import pytest

from aptutils.analysis.baselines import (
    best_rule,
    pooled_rule_counts,
    rule_counts,
    rule_predictions,
    unigram_loss,
)
from aptutils.core.counts import MASKED, REPLACED, UNCHANGED

MASK = 9
# One row of 6 positions; positions 1-4 are modified. Vocabulary of 10 ids.
INPUTS = np.array([[2, MASK, 7, 5, MASK, 3]])
LABELS = np.array([[-100, 4, 6, 5, 4, -100]])
KINDS = np.array([[0, MASKED, REPLACED, UNCHANGED, MASKED, 0]])
FREQUENCY = np.array([0, 1, 0, 0, 10, 2, 3, 0, 0, 0])  # token 4 is the commonest


def test_rule_predictions_by_hand():
    rules = rule_predictions(INPUTS, LABELS, FREQUENCY, MASK)
    assert rules["most frequent token"].tolist() == [4, 4, 4, 4]
    assert rules["copy the input"].tolist() == [MASK, 7, 5, MASK]
    assert rules["copy, else most frequent"].tolist() == [4, 7, 5, 4]


def test_rule_counts_by_kind():
    counts = rule_counts(INPUTS, LABELS, KINDS, FREQUENCY, MASK)
    commonest, copy, combined = (counts[r] for r in ("most frequent token", "copy the input",
                                                     "copy, else most frequent"))
    # the commonest token (4) is the answer at both masked positions, nowhere else
    assert commonest.kind_accuracy("masked") == 1.0 and commonest.accuracy == pytest.approx(0.5)
    # copying is right only on the unchanged position
    assert copy.kind_accuracy("unchanged") == 1.0 and copy.kind_accuracy("masked") == 0.0
    assert copy.accuracy == pytest.approx(0.25)
    # combined: both masked and the unchanged one; the replaced one (input 7, answer 6) is wrong
    assert combined.accuracy == pytest.approx(0.75) and combined.kind_accuracy("replaced") == 0.0


def test_unigram_loss_is_the_smoothed_cross_entropy():
    # add-one smoothing: p(t) = (f(t) + 1) / (16 + 10); labels 4, 6, 5, 4
    p = (FREQUENCY + 1) / 26
    expected = -np.mean(np.log([p[4], p[6], p[5], p[4]]))
    assert unigram_loss(LABELS, FREQUENCY) == pytest.approx(expected)
    uniform = unigram_loss(LABELS, np.zeros(10, dtype=int))
    assert uniform == pytest.approx(np.log(10)) and expected < uniform


def test_rules_pool_over_maskings_of_the_same_samples():
    # a second masking of the same row: position 3 now masked, position 2 unchanged
    second = (np.array([[2, MASK, 6, MASK, MASK, 3]]), LABELS, np.array([[0, 1, 3, 1, 1, 0]]))
    pooled = pooled_rule_counts([(INPUTS, LABELS, KINDS), second], FREQUENCY, MASK)
    one = rule_counts(INPUTS, LABELS, KINDS, FREQUENCY, MASK)
    two = rule_counts(*second, FREQUENCY, MASK)
    for rule in one:
        assert (pooled[rule].total == one[rule].total + two[rule].total).all()
        assert (pooled[rule].correct == one[rule].correct + two[rule].correct).all()
    # copy, else most frequent: 3 of 4 right in the first masking; in the second 4 (masked, right),
    # 6 (copied, right), 4 where 5 is true (wrong), 4 (masked, right): 3 of 4
    assert pooled["copy, else most frequent"].accuracy == pytest.approx(6 / 8)


def test_the_best_rule_depends_on_the_reading():
    counts = rule_counts(INPUTS, LABELS, KINDS, FREQUENCY, MASK)
    # masked: most frequent token and the combined rule tie (token 4 right); the first listed wins
    assert best_rule(counts, "masked") == "most frequent token"
    # all kinds: only the combined rule also gets the unchanged position (token 5) right
    assert best_rule(counts, None) == "copy, else most frequent"
    assert best_rule(counts, "unchanged") == "copy the input"
