"""Readers that cost what a forward costs: the argmax over vocabulary slices equals the full
logits' argmax (ties included), and the probe's sampled softmax scores what its formula says and
learns what the full softmax learns. Answers by hand or by construction."""
import math

import torch

from aptutils.core.params import resolve
from aptutils.models.bert import bert_config
from aptutils.readout.counting import block_predictions, count_all_blocks, sliced_argmax
from aptutils.readout.features import BlockFeatures
from aptutils.readout.probes import (
    SAMPLED_ABOVE,
    TrainingPositions,
    label_proposal,
    new_probe_heads,
    sampled_candidates,
    sampled_softmax_losses,
    train_probe_heads_until_stop,
)
from aptutils.readout.readers import HeadsReader, ProbeReader, TokenReader
from aptutils.training.heads import EarlyStopping, HeadPlan

VOCAB = 50


def config(hidden: int = 32, vocab: int = VOCAB):
    return bert_config(resolve({"profile": "smoke", "hidden_size": hidden, "num_heads": 2}), vocab, 0)


def test_the_sliced_argmax_is_the_full_argmax_ties_to_the_lowest_id():
    generator = torch.Generator().manual_seed(0)
    decoder = torch.nn.Linear(8, 23)
    hidden = torch.randn(300, 8, generator=generator)
    with torch.no_grad():
        decoder.weight[17] = decoder.weight[4]  # token 17 ties token 4 everywhere
        decoder.bias[17] = decoder.bias[4]
        full = decoder(hidden).argmax(-1)
        for width in (1, 5, 7, 23, 64):
            assert torch.equal(sliced_argmax(hidden, decoder, width), full), width
        hidden[0] = decoder.weight[4] * 50  # row 0 picks token 4 (or its twin 17)
        assert sliced_argmax(hidden, decoder, 5)[0] == 4


def test_a_probe_reader_reads_through_its_slices_and_a_label_head_through_its_logits():
    heads = new_probe_heads(config(), 2, seed=0).eval()
    features = torch.randn(2, 3000, 32, generator=torch.Generator().manual_seed(0))
    probe, plain = ProbeReader(heads), HeadsReader(heads, "plain heads")
    assert isinstance(probe, TokenReader) and not isinstance(plain, TokenReader)
    for block in (0, 1):
        with torch.no_grad():
            expected = heads[block](features[block]).argmax(-1)
        assert torch.equal(block_predictions(probe, block, features[block]), expected)
        assert torch.equal(block_predictions(plain, block, features[block]), expected)


def test_the_objective_is_sampled_only_where_it_saves_work():
    assert sampled_candidates("auto", 4096, 8_192) is None
    assert sampled_candidates("auto", 4096, 30_522) == 4096 and SAMPLED_ABOVE < 30_522
    assert sampled_candidates("sampled", 4096, 8_192) == 4096
    assert sampled_candidates("sampled", 9_000, 8_192) is None  # a draw of the whole vocabulary
    assert sampled_candidates("full", 4096, 30_522) is None


def test_the_proposal_counts_each_label_plus_one():
    proposal = label_proposal(torch.tensor([2, 2, 3]), 5)
    assert torch.allclose(proposal, torch.tensor([1, 1, 3, 2, 1]) / 8.0)


def test_a_head_with_equal_logits_scores_log_one_plus_its_non_hit_draws():
    """All logits 0 and a uniform proposal: every corrected logit is -log(C/V), so each row's loss
    is log(1 + the draws that are not its true token)."""
    heads = new_probe_heads(config(), 1, seed=0)
    with torch.no_grad():
        for p in heads.parameters():
            p.zero_()
    labels = torch.tensor([5, 6, 7, 8])
    features = torch.randn(1, 4, 32)
    uniform = torch.full((VOCAB,), 1.0 / VOCAB)
    losses = sampled_softmax_losses(heads, features, labels, uniform, 30, seed=3, fixed=True)
    drawn = torch.multinomial(uniform.double(), 30, replacement=True,
                              generator=torch.Generator().manual_seed(3))
    expected = sum(math.log(1 + int((drawn != y).sum())) for y in labels) / 4
    with torch.no_grad():
        first, again = (float(losses(torch.arange(4), [0])[0]) for _ in range(2))
    assert math.isclose(first, expected, rel_tol=1e-4) and first == again  # fixed: the same draw


def test_each_logit_is_corrected_by_the_log_of_its_expected_draws():
    """All logits 0, a skewed proposal: column j's logit is -log(C q_j), so a row's loss is
    log(sum over its true token and non-hit draws of 1 / (C q_j)) + log(C q_true)."""
    heads = new_probe_heads(config(), 1, seed=0)
    with torch.no_grad():
        for p in heads.parameters():
            p.zero_()
    proposal = label_proposal(torch.tensor([7] * 30 + [8] * 10), VOCAB)  # 7 and 8 drawn often
    labels, candidates = torch.tensor([7, 9]), 20
    losses = sampled_softmax_losses(heads, torch.randn(1, 2, 32), labels, proposal, candidates,
                                    seed=5, fixed=True)
    drawn = torch.multinomial(proposal.double(), candidates, replacement=True,
                              generator=torch.Generator().manual_seed(5))
    expected = 0.0
    for y in labels.tolist():
        kept = [y] + [d for d in drawn.tolist() if d != y]
        expected += math.log(sum(1 / (candidates * float(proposal[j])) for j in kept))
        expected += math.log(candidates * float(proposal[y]))
    with torch.no_grad():
        assert math.isclose(float(losses(torch.arange(2), [0])[0]), expected / 2, rel_tol=1e-4)


def test_a_sampled_softmax_probe_learns_what_the_full_softmax_probe_learns():
    """Features carry the label (its embedding plus noise); 400 tokens, 40 drawn per step."""
    vocab = 400
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(vocab, 32, generator=generator)
    labels = torch.randint(5, vocab, (6000,), generator=generator)
    features = (embeddings[labels] + 0.1 * torch.randn(6000, 32, generator=generator))[None]
    positions = TrainingPositions(BlockFeatures(features.bfloat16(), labels, torch.ones_like(labels)),
                                  torch.arange(5000), torch.arange(5000, 6000))
    test = BlockFeatures(features[:, 5000:].bfloat16(), labels[5000:], torch.ones(1000).long())
    accuracy = {}
    for candidates in (None, 40):
        heads = new_probe_heads(config(vocab=vocab), 1, seed=0)
        plan = HeadPlan(3e-3, 100, 0, EarlyStopping(50, 3, 600))
        train_probe_heads_until_stop(heads, positions, plan, candidates=candidates)
        accuracy[candidates] = count_all_blocks({"probe": ProbeReader(heads)}, test,
                                                vocab)["probe"][0].counts.accuracy
    assert accuracy[None] > 0.9 and accuracy[40] > 0.9, accuracy  # chance is 1/395
    assert abs(accuracy[40] - accuracy[None]) < 0.05, accuracy
