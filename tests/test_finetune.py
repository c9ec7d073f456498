"""Frozen-trunk features and heads, the truncated classifier, and the APT/confidence join."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aptutils.analysis.confidence import (
    binned_confidence,
    confidence_frame,
    correlation_table,
    coverage_table,
    input_apt,
)
from aptutils.core.errors import ParameterError
from aptutils.core.params import resolve
from aptutils.models.bert import new_model
from aptutils.reports.ch5_finetuning import paired_gain_ci
from aptutils.reports.ch6_confidence import c9_verdict
from aptutils.training.finetune import (
    BlockClassifier,
    FinetuneResult,
    ModelSpec,
    TrimmingCollator,
    fit_linear_heads,
    full_blocks,
    label_confusion,
    pooled_block_features,
)

PAD, CLS = 0, 1
# APT per token id 0..5: ids 0, 1 are special, 4 never occurs in W_test.
APT = np.array([np.nan, np.nan, 0.5, 1.0, np.nan, 0.0])
IDS = np.array([[CLS, 2, 3, 0],
                [CLS, 4, 5, 4],
                [CLS, 4, 0, 0]])


@pytest.fixture
def tiny_model():
    settings = resolve({"profile": "smoke", "dropout": 0.0})
    return new_model(settings, vocab_size=40, pad_id=PAD).eval()


def test_input_apt_skips_specials_and_counts_tokens_without_apt():
    table = input_apt(IDS, APT, special_ids=[PAD, CLS])
    assert table["tokens"].tolist() == [2, 3, 1]
    assert table["tokens_without_apt"].tolist() == [0, 2, 1]
    assert table["mean_apt"].tolist()[:2] == [0.75, 0.0]
    assert np.isnan(table["mean_apt"][2])


def fake_result(confidence: list[list[float]], predicted: list[list[int]]) -> FinetuneResult:
    task = SimpleNamespace(title="Toy", array=lambda name: IDS, label_names=["a", "b"])
    return FinetuneResult(task, ModelSpec(128, True), "frozen", (0, 2), np.array(confidence),
                          np.array(predicted), np.array([0, 1, 1]), np.zeros((2, 2, 2), int))


def test_join_gives_one_row_per_block_and_sample_and_counts_the_dropped():
    settings = resolve({"profile": "smoke"})
    result = fake_result([[0.9, 0.6, 0.7], [0.8, 0.5, 0.99]], [[0, 0, 1], [0, 1, 0]])
    untrained = FinetuneResult(result.task, ModelSpec(128, False), "frozen", (0, 2), result.confidence,
                               result.predicted, result.labels, result.confusion)
    frame = confidence_frame([result, untrained], settings, APT, [PAD, CLS])
    assert len(frame) == 6  # the untrained model's classifiers are not joined
    last = frame[frame["block"] == 2].set_index("sample")
    assert last["confidence"].tolist() == [0.8, 0.5, 0.99]
    assert last["correct"].tolist() == [True, True, False]
    assert last["mean_apt"].tolist()[:2] == [0.75, 0.0]
    coverage = coverage_table(frame).loc["Toy"]
    counted = ["test_samples", "input_tokens", "tokens_without_apt", "samples_dropped"]
    assert coverage[counted].tolist() == [3, 6, 3, 1]
    assert coverage["share_without_apt"] == 0.5


def test_correlations_and_bins_leave_dropped_samples_out():
    settings = resolve({"profile": "smoke"})
    frame = confidence_frame([fake_result([[0.9, 0.6, 0.7], [0.8, 0.5, 0.99]], [[0, 0, 1], [0, 1, 0]])],
                             settings, APT, [PAD, CLS])
    correlations = correlation_table(frame, n_boot=50).set_index(["block", "group"])
    assert correlations.loc[(2, "all"), "n"] == 2  # sample 2 has no APT token
    assert np.isnan(correlations.loc[(2, "all"), "rho"])  # fewer than 3 samples
    binned = binned_confidence(frame, "frozen", bins=1).set_index(["block", "group"])
    everyone = binned.loc[(2, "all")]
    assert (everyone["n"], everyone["mean"]) == (2, pytest.approx(0.65))
    assert c9_verdict(correlations.reset_index(), settings).verdict == "not measured"


def test_pooled_features_of_every_block_equal_a_direct_computation(tiny_model):
    ids = np.array([[CLS, 5, 6, 7, 8, 2], [CLS, 9, 2, PAD, PAD, PAD], [CLS, 3, 4, 5, 2, PAD]])
    mask = torch.as_tensor(ids != PAD)
    with torch.no_grad():
        hidden = tiny_model.bert(input_ids=torch.as_tensor(ids), attention_mask=mask.long(),
                                 output_hidden_states=True).hidden_states
    means = torch.stack([(h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True) for h in hidden])
    pooled = pooled_block_features(tiny_model, ids, "mean", batch_size=2)
    assert pooled.shape == (3, 3, 16)
    torch.testing.assert_close(pooled, means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled_block_features(tiny_model, ids, "cls"),
                               torch.stack([h[:, 0] for h in hidden]), atol=1e-5, rtol=1e-5)


def test_block_classifier_keeps_exactly_the_blocks_up_to_b(tiny_model):
    ids = torch.tensor([[CLS, 5, 6, 2]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        hidden = tiny_model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        classifier = BlockClassifier(tiny_model.bert, 1, "mean", classes=3, dropout=0.0).eval()
        kept = classifier.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = classifier(ids, mask).logits
    assert len(classifier.bert.encoder.layer) == 1
    torch.testing.assert_close(kept, hidden[1])
    torch.testing.assert_close(logits, classifier.classifier(hidden[1].mean(1)))


def test_collator_cuts_batches_to_their_longest_row():
    rows = [{"input_ids": torch.tensor([CLS, 5, 2, PAD, PAD]), "labels": torch.tensor(1)},
            {"input_ids": torch.tensor([CLS, 2, PAD, PAD, PAD]), "labels": torch.tensor(0)}]
    batch = TrimmingCollator(PAD)(rows)
    assert batch["input_ids"].tolist() == [[CLS, 5, 2], [CLS, 2, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_linear_heads_separate_an_informative_block_and_not_a_noise_block():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    informative = torch.nn.functional.one_hot(labels, 3).float() * 4 + torch.randn(60, 3, generator=generator)
    noise = torch.randn(60, 3, generator=generator)
    heads = fit_linear_heads(torch.stack([noise, informative]), labels, 3, l2=1e-3, steps=100)
    accuracy = (heads.logits(torch.stack([noise, informative])).argmax(-1) == labels).float().mean(1)
    assert accuracy[1] == 1.0 and accuracy[0] < 0.8


def test_label_confusion_and_paired_gain_on_hand_made_predictions():
    assert label_confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3).tolist() == \
        [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    after, before = np.array([True, True, True, True]), np.array([False, True, False, True])
    assert paired_gain_ci(after, before, n_boot=200)[0] == 0.5
    assert paired_gain_ci(after, after) == (0.0, 0.0, 0.0)


def test_full_fine_tuning_blocks_beyond_the_model_are_refused():
    assert full_blocks(resolve({"finetune_full_blocks": "0,6"})) == (0, 6)
    with pytest.raises(ParameterError, match=r"finetune_full_blocks=0,9: blocks run 0\.\.6 \(num_layers=6\)"):
        full_blocks(resolve({"finetune_full_blocks": "0,9"}))


def series_results(accuracy_by_model: dict[tuple[int, bool], float]) -> list[FinetuneResult]:
    """Frozen results at blocks 0 and 2 (smoke depth) of 100 test samples for both tasks, the
    first `accuracy * 100` samples right at block 2 and none at block 0."""
    results = []
    for name in ("few_rel", "dbpedia_14"):
        task = SimpleNamespace(name=name, title=name, label_names=["a", "b"])
        for (ws, pretrained), accuracy in accuracy_by_model.items():
            predicted = np.ones((2, 100), int)
            predicted[1, : round(accuracy * 100)] = 0
            results.append(FinetuneResult(task, ModelSpec(ws, pretrained), "frozen", (0, 2),
                                          np.ones((2, 100)), predicted, np.zeros(100, int),
                                          np.zeros((2, 2, 2), int)))
    return results


def test_c8_and_c12_verdicts_on_hand_made_accuracies():
    from aptutils.reports.ch5_finetuning import c8_verdict, c12_verdict

    settings = resolve({"profile": "smoke"})  # ws_list 64, 128; 2 blocks
    rising = series_results({(64, True): 0.6, (128, True): 0.9, (128, False): 0.3})
    assert c8_verdict(rising, settings).verdict == "holds"
    assert c12_verdict(rising, settings).verdict == "holds"
    assert "W_S=64 0.600, W_S=128 0.900" in c12_verdict(rising, settings).this_run
    falling_step = series_results({(64, True): 0.9, (128, True): 0.6, (128, False): 0.3})
    assert c12_verdict(falling_step, settings).verdict == "does not hold"
