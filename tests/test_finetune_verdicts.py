"""C8, C12 and C9 can fail: planted structure passes, shuffled structure fails (answers by hand).

C8 and C12 are decided by paired bootstrap intervals over test samples; C9 by an interval of
Spearman rho, after a split-half reliability check of input APT and a positive control.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from aptutils.analysis.confidence import (
    TokenOccurrences,
    confidence_frame,
    correlation_table,
    input_apt_reliability,
    reliability_table,
    spearman_brown,
)
from aptutils.core.counts import TokenCounts
from aptutils.core.params import resolve
from aptutils.data.tasks import TASK_TITLES
from aptutils.reports.ch5_finetuning import (
    block_gains,
    c8_verdict,
    c12_verdict,
    ws_comparisons,
)
from aptutils.reports.ch6_confidence import c9_verdict
from aptutils.training.finetune import FinetuneResult, ModelSpec

SETTINGS = resolve({"profile": "smoke"})  # ws_list 64, 128; blocks 0..2; confidence_bound 0.2
WS = 128  # the W_S read (`analysis_ws` None: the largest)
TASK_NAMES = ("few_rel", "dbpedia_14")


def result(name: str, spec: ModelSpec, correct_by_block: list[np.ndarray], ids=None,
           confidence: np.ndarray | None = None) -> FinetuneResult:
    """A frozen result at blocks 0 and 2: label 0 everywhere, predicted 0 where correct."""
    task = SimpleNamespace(name=name, title=TASK_TITLES[name], label_names=["a", "b"], array=lambda _: ids)
    correct = np.stack(correct_by_block)
    scores = np.ones(correct.shape) if confidence is None else np.stack([confidence] * 2)
    return FinetuneResult(task, spec, "frozen", (0, 2), scores, np.where(correct, 0, 1),
                          np.zeros(correct.shape[1], int), np.zeros((2, 2, 2), int))


def nested(accuracy: float, n: int = 200) -> np.ndarray:
    """The first accuracy * n test samples right: nested sets, so larger is better sample by sample."""
    return np.arange(n) < round(accuracy * n)


# C8: the rise from block 0 to the last block


def test_c8_holds_on_a_planted_rise_and_fails_when_the_blocks_are_shuffled():
    rng = np.random.default_rng(0)
    first = rng.random(200) < 0.3
    rising = first | (rng.random(200) < 0.5)  # every sample right at block 0 stays right
    planted = [result(n, ModelSpec(128, True), [first, rising]) for n in TASK_NAMES]
    verdict = c8_verdict(planted, SETTINGS)
    assert verdict.verdict == "holds" and verdict.reason.startswith("accuracy rises on every task")
    gains = block_gains(planted, SETTINGS)
    assert (gains["ci_low"] > 0).all() and set(gains["direction"]) == {"rises"}
    shuffled = [result(n, ModelSpec(128, True), [first, rng.permutation(first)]) for n in TASK_NAMES]
    verdict = c8_verdict(shuffled, SETTINGS)
    assert verdict.verdict == "does not hold"
    assert "on FewRel (states at the two entity markers, [head; tail]) accuracy does not change " \
           "significantly" in verdict.reason
    falling = [result(n, ModelSpec(128, True), [rising, first]) for n in TASK_NAMES]
    assert "accuracy falls" in c8_verdict(falling, SETTINGS).reason


# C12: pre-trained against untrained, and each W_S step


def series(accuracy: dict[tuple[int, bool], float], order: np.ndarray | None = None) -> list[FinetuneResult]:
    """Results of both tasks for the W_S series and the untrained model; each model's correct set
    at the last block is `nested(accuracy)`, shuffled by `order` when given."""
    results = []
    for name in TASK_NAMES:
        for (ws, pretrained), value in accuracy.items():
            last = nested(value) if order is None else nested(value)[order]
            results.append(result(name, ModelSpec(ws, pretrained), [nested(0.0), last]))
    return results


PLANTED = {(64, True): 0.55, (128, True): 0.8, (128, False): 0.3}


def test_c12_holds_on_a_planted_series_and_every_pair_has_an_interval():
    verdict = c12_verdict(series(PLANTED), SETTINGS)
    assert verdict.verdict == "holds"
    assert verdict.reason.startswith("W_S=128 beats the untrained model on every task")
    table = ws_comparisons(series(PLANTED), SETTINGS, "epochs")  # hand-built: no equal-steps models
    assert table["comparison"].tolist()[:3] == ["W_S=64 − untrained", "W_S=128 − untrained",
                                                "W_S=128 − W_S=64"]
    assert table["gain"].round(3).tolist()[:3] == [0.25, 0.5, 0.25]
    assert (table["ci_low"] > 0).all()


def test_c12_fails_when_the_models_are_shuffled_or_a_step_falls():
    shuffled = {(64, True): 0.3, (128, True): 0.55, (128, False): 0.8}  # the labels permuted
    verdict = c12_verdict(series(shuffled), SETTINGS)
    assert verdict.verdict == "does not hold"
    assert "on FewRel W_S=128 does not beat the untrained model (-0.250" in verdict.reason
    falling = {(64, True): 0.8, (128, True): 0.55, (128, False): 0.3}
    verdict = c12_verdict(series(falling), SETTINGS)
    assert verdict.verdict == "does not hold"
    assert "the step W_S=64 → W_S=128 falls (-0.250" in verdict.reason
    # the same accuracies, each model right on a different random set: no pair is significant
    same = {(64, True): 0.5, (128, True): 0.5, (128, False): 0.5}
    rng = np.random.default_rng(1)
    results = [result(name, ModelSpec(ws, pretrained), [nested(0.0), rng.permutation(nested(0.5))])
               for name in TASK_NAMES for (ws, pretrained) in same]
    assert c12_verdict(results, SETTINGS).verdict == "does not hold"


# C9: reliability of input APT, the positive control, and the rule


V, SPECIAL = 120, [0, 1]


def occurrences(true_apt: np.ndarray, per_token: np.ndarray, rng: np.random.Generator) -> TokenCounts:
    """Masked-position counts: each token t seen per_token[t] times, right with probability
    true_apt[t]; specials never."""
    total = np.zeros((3, V), int)
    total[0] = per_token
    total[0, SPECIAL] = 0
    correct = np.zeros((3, V), int)
    correct[0] = rng.binomial(total[0], true_apt)
    return TokenCounts(correct, total)


def inputs(rng: np.random.Generator, n: int = 1500) -> np.ndarray:
    """[CLS] + 12 tokens drawn from a random half of the vocabulary per input (so inputs differ
    in their mean APT), [N, 13]."""
    rows = [rng.choice(rng.permutation(np.arange(2, V))[: V // 2], 12) for _ in range(n)]
    return np.column_stack([np.ones(n, int), np.array(rows)])


def c9_case(counts: TokenCounts, ids: np.ndarray, confidence: np.ndarray, min_occurrences: int = 10):
    """(verdict, reliability table) for the same ids and confidence under both tasks."""
    settings = SETTINGS.replace(token_min_occurrences=min_occurrences)
    tokens = TokenOccurrences.of(counts, "masked", min_occurrences)
    results = [result(n, ModelSpec(128, True), [np.ones(len(ids), bool)] * 2, ids, confidence)
               for n in TASK_NAMES]
    frame = confidence_frame(results, WS, tokens.apt(), SPECIAL)
    correlations = correlation_table(frame, n_boot=300)
    reliability = reliability_table(results, WS, tokens, SPECIAL, seed=settings.seed)
    return c9_verdict(correlations, reliability, settings), reliability


def test_split_halves_keep_every_occurrence_and_spearman_brown_is_exact():
    counts = TokenCounts(np.array([[0, 7, 3, 5]] + [[0] * 4] * 2), np.array([[0, 7, 9, 6]] + [[0] * 4] * 2))
    tokens = TokenOccurrences.of(counts, "masked", 2)
    assert tokens.apt()[1:].tolist() == [1.0, 1 / 3, 5 / 6] and np.isnan(tokens.apt()[0])
    a, b = tokens.split_halves(np.random.default_rng(0))
    assert a[1] == b[1] == 1.0  # all right: right in both halves
    for token, total in ((2, 9), (3, 6)):
        size_a = np.array([4, 5]) if total % 2 else np.array([total // 2])
        right = counts.correct[0, token]
        assert any(np.isclose(a[token] * s + b[token] * (total - s), right) for s in size_a)
    assert spearman_brown(1 / 3) == pytest.approx(0.5) and spearman_brown(1.0) == 1.0


def test_c9_holds_for_an_independent_confidence_on_reliable_input_apt():
    rng = np.random.default_rng(0)
    counts = occurrences(rng.uniform(0.05, 0.95, V), np.full(V, 200), rng)
    verdict, reliability = c9_case(counts, inputs(rng), rng.random(1500))
    assert (reliability["reliability"] > 0.9).all() and (reliability["control_low"] > 0.2).all()
    assert verdict.verdict == "holds"
    assert "input APT is reliable" in verdict.reason and "every CI of ρ lies within ±0.2" in verdict.reason


def test_c9_flags_a_confidence_planted_to_follow_input_apt():
    rng = np.random.default_rng(1)
    counts = occurrences(rng.uniform(0.05, 0.95, V), np.full(V, 200), rng)
    ids = inputs(rng)
    mean_apt = TokenOccurrences.of(counts, "masked", 10).apt()[ids[:, 1:]].mean(1)
    confidence = mean_apt + rng.normal(0, mean_apt.std() / 2, len(ids))
    verdict, _ = c9_case(counts, ids, confidence)
    assert verdict.verdict == "does not hold" and "confidence rises with input APT" in verdict.reason


def test_c9_is_not_measured_when_input_apt_is_occurrence_noise():
    """Structure shuffled away: every token has the same true APT and is seen 2-3 times, so
    input APT is noise; an independent confidence would pass the rule, and must not."""
    rng = np.random.default_rng(2)
    counts = occurrences(np.full(V, 0.5), rng.integers(2, 4, V), rng)
    ids = inputs(rng)
    verdict, reliability = c9_case(counts, ids, rng.random(1500), min_occurrences=2)
    assert (reliability["reliability"] < 0.5).all()
    assert verdict.verdict == "not measured"
    assert verdict.reason.startswith("input APT is unreliable: FewRel split-half reliability")
    alone = input_apt_reliability(ids, TokenOccurrences.of(counts, "masked", 2), SPECIAL, seed=3)
    assert abs(alone["control_rho"]) < 0.2 and alone["median_occurrences"] in (2.0, 3.0)


def test_c9_is_not_measured_when_the_positive_control_is_missed():
    rng = np.random.default_rng(3)
    counts = occurrences(rng.uniform(0.05, 0.95, V), np.full(V, 200), rng)
    settings = SETTINGS.replace(apt_min_reliability=0.01, confidence_bound=0.99)
    tokens = TokenOccurrences.of(counts, "masked", 10)
    ids = inputs(rng, 300)
    results = [result(n, ModelSpec(128, True), [np.ones(300, bool)] * 2, ids, rng.random(300))
               for n in TASK_NAMES]
    correlations = correlation_table(confidence_frame(results, WS, tokens.apt(), SPECIAL), n_boot=200)
    reliability = reliability_table(results, WS, tokens, SPECIAL, seed=settings.seed)
    verdict = c9_verdict(correlations, reliability, settings)
    assert verdict.verdict == "not measured"  # a bound of 0.99 cannot tell anything apart
    assert verdict.reason.startswith("the positive control is not flagged: on FewRel")
