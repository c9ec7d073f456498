"""Frozen-trunk features and heads (mean, cls and entity read-outs), the truncated classifier,
and the APT/confidence join."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
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
from aptutils.models.bert import BertRecipe, new_model
from aptutils.reports.ch5_finetuning import paired_gain_ci
from aptutils.reports.ch6_confidence import c9_verdict
from aptutils.training.classifier import BlockClassifier, TrimmingCollator
from aptutils.training.finetune import (
    FinetuneRecipe,
    FinetuneResult,
    ModelSpec,
    fit_linear_heads,
    full_blocks,
    label_confusion,
)
from aptutils.training.pooling import PoolingRecipe, pool, pooled_block_features, task_pooling

PAD, CLS = 0, 1
# APT per token id 0..5: ids 0, 1 are special, 4 never occurs in W_test.
APT = np.array([np.nan, np.nan, 0.5, 1.0, np.nan, 0.0])
IDS = np.array([[CLS, 2, 3, 0],
                [CLS, 4, 5, 4],
                [CLS, 4, 0, 0]])


@pytest.fixture
def tiny_model():
    settings = resolve({"profile": "smoke", "dropout": 0.0})
    return new_model(settings.recipe(BertRecipe), vocab_size=40, pad_id=PAD).eval()


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
    result = fake_result([[0.9, 0.6, 0.7], [0.8, 0.5, 0.99]], [[0, 0, 1], [0, 1, 0]])
    untrained = FinetuneResult(result.task, ModelSpec(128, False), "frozen", (0, 2), result.confidence,
                               result.predicted, result.labels, result.confusion)
    frame = confidence_frame([result, untrained], 128, APT, [PAD, CLS])  # the W_S read: 128
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
                             128, APT, [PAD, CLS])
    correlations = correlation_table(frame, n_boot=50).set_index(["block", "group"])
    assert correlations.loc[(2, "all"), "n"] == 2  # sample 2 has no APT token
    assert np.isnan(correlations.loc[(2, "all"), "rho"])  # fewer than 3 samples
    binned = binned_confidence(frame, "frozen", bins=1).set_index(["block", "group"])
    everyone = binned.loc[(2, "all")]
    assert (everyone["n"], everyone["mean"]) == (2, pytest.approx(0.65))
    reliable = pd.DataFrame({"reliability": [0.9], "control_rho": [0.8], "control_low": [0.7],
                             "control_high": [0.9], "median_occurrences": [50.0]}, index=["Toy"])
    verdict = c9_verdict(correlations.reset_index(), reliable, settings)
    assert verdict.verdict == "not measured" and "ρ is undefined for Toy" in verdict.reason


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


ENTITY_IDS = np.array([[CLS, 5, 30, 6, 30, 31, 7, 31, 2], [CLS, 31, 8, 31, 9, 30, 10, 30, 2]])
ENTITIES = np.array([[2, 5], [5, 1]])  # positions of the head's and the tail's opening marker


def test_entity_pooling_concatenates_the_states_at_head_and_tail_markers(tiny_model):
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    pooled = pool(hidden, torch.ones(2, 4), "entity", torch.tensor([[1, 3], [2, 0]]))
    assert pooled.tolist() == [[3, 4, 5, 9, 10, 11], [18, 19, 20, 12, 13, 14]]
    with pytest.raises(ValueError, match="entity pooling needs the entity marker positions"):
        pool(hidden, torch.ones(2, 4), "entity")
    with torch.no_grad():
        hidden = tiny_model.bert(input_ids=torch.as_tensor(ENTITY_IDS), output_hidden_states=True).hidden_states
    expected = torch.stack([torch.cat([h[[0, 1], [2, 5]], h[[0, 1], [5, 1]]], -1) for h in hidden])
    features = pooled_block_features(tiny_model, ENTITY_IDS, "entity", ENTITIES, batch_size=1)
    assert features.shape == (3, 2, 32)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_each_task_has_its_own_read_out():
    settings = resolve({"profile": "smoke"})
    pooling = settings.recipe(PoolingRecipe)
    assert (task_pooling(pooling, "few_rel"), task_pooling(pooling, "dbpedia_14")) == ("entity", "mean")
    changed = settings.replace(fewrel_pooling="cls", pooling="cls").recipe(PoolingRecipe)
    assert task_pooling(changed, "few_rel") == task_pooling(changed, "dbpedia_14") == "cls"
    with pytest.raises(ParameterError, match="fewrel_pooling='first': allowed values are 'entity'"):
        resolve({"fewrel_pooling": "first"})
    with pytest.raises(ParameterError, match="pooling='entity': allowed values are 'mean', 'cls'"):
        resolve({"pooling": "entity"})


def test_full_fine_tuning_reads_the_entity_markers_of_the_kept_blocks(tiny_model):
    ids, entities = torch.as_tensor(ENTITY_IDS), torch.as_tensor(ENTITIES)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        hidden = tiny_model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        classifier = BlockClassifier(tiny_model.bert, 1, "entity", classes=3, dropout=0.0).eval()
        logits = classifier(ids, mask, entities).logits
    assert classifier.classifier.in_features == 32
    read = torch.cat([hidden[1][[0, 1], [2, 5]], hidden[1][[0, 1], [5, 1]]], -1)
    torch.testing.assert_close(logits, classifier.classifier(read))


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
    assert "entities" not in batch
    rows[0]["entities"], rows[1]["entities"] = torch.tensor([1, 2]), torch.tensor([1, 1])
    assert TrimmingCollator(PAD)(rows)["entities"].tolist() == [[1, 2], [1, 1]]


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
    assert paired_gain_ci(after, before, n_boot=200).estimate == 0.5
    same = paired_gain_ci(after, after)
    assert (same.estimate, same.low, same.high, same.n) == (0.0, 0.0, 0.0, len(after))


def test_full_fine_tuning_blocks_beyond_the_model_are_refused():
    def blocks(text: str) -> tuple[int, ...]:
        return full_blocks(resolve({"finetune_full_blocks": text}).recipe(FinetuneRecipe))

    assert blocks("0,6") == (0, 6)
    with pytest.raises(ParameterError, match=r"finetune_full_blocks=0,9: blocks run 0\.\.6 \(num_layers=6\)"):
        blocks("0,9")
