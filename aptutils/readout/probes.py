"""Probe heads: a fresh BERT MLM head per block, trained on the frozen block (tied or untied decoder)
through the one training loop until its held-out loss stops falling, and read through
`readers.ProbeReader`; the held-out split of W_S's cached features that the probe and the tuned
lens (`readout.tuned_lens`) share.

The training objective is the full softmax over the vocabulary, or, for a large vocabulary, a
sampled softmax (Bengio & Senecal 2008; Jean et al. 2015): each step scores the true token and
`candidates` tokens drawn from W_S's label frequencies (add-one), every logit less the log of its
expected draws (the log-Q correction), so a step costs what `candidates` tokens cost, not the
vocabulary. Whatever the objective, a probe is read with the full-vocabulary argmax.

Used by chapters 2-4 and 6 (they read block counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from ..core.device import autocast
from ..readout.features import BlockFeatures
from ..readout.readers import mlm_decoder_input
from ..training.heads import HeadCurves, HeadPlan, cross_entropy_losses, train_until_stop

HELD_OUT_SHARE = 0.05  # of the W_S samples whose modified positions decide when a reader stops
SAMPLED_ABOVE = 16_384  # `probe_softmax auto`: the sampled softmax above this many tokens
OBJECTIVES = ("auto", "full", "sampled")


@dataclass(frozen=True)
class TrainingPositions:
    """W_S's cached block features and their split into training and held-out positions.

    features: every modified position (features.features [blocks, N, hidden]); train [N_train]
    and held_out [N_held]: position indices into it, whole samples on either side.
    """

    features: BlockFeatures
    train: torch.Tensor
    held_out: torch.Tensor


def held_out_split(positions_per_sample: np.ndarray, seed: int,
                   share: float = HELD_OUT_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) position indices, positions numbered sample by sample: the positions of a
    seeded `share` of the samples (at least one, never all when there are two) are held out.

    positions_per_sample: [S] modified positions of each sample, in the order of the features.
    """
    samples = len(positions_per_sample)
    held = max(1, min(samples - 1, round(share * samples))) if samples > 1 else 0
    chosen = np.zeros(samples, bool)
    chosen[np.random.default_rng(seed).choice(samples, held, replace=False)] = True
    of_position = np.repeat(chosen, positions_per_sample)
    return (torch.from_numpy(np.flatnonzero(~of_position)),
            torch.from_numpy(np.flatnonzero(of_position)))


def new_probe_heads(config, blocks: int, seed: int,
                    embeddings: torch.Tensor | None = None) -> torch.nn.ModuleList:
    """One fresh BERT MLM head per block (transform + decoder), seeded.

    embeddings: the model's input embeddings [V, hidden]. Given, every decoder's weight is this
    one frozen matrix, as `BertForMaskedLM` ties its head to the embeddings, and a head trains its
    transform and output bias only. None: the decoders are fresh and trained too.
    """
    torch.manual_seed(seed)
    heads = torch.nn.ModuleList(BertOnlyMLMHead(config) for _ in range(blocks))
    for head in heads:
        for module in head.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=config.initializer_range)
                torch.nn.init.zeros_(module.bias)
    if embeddings is not None:
        shared = torch.nn.Parameter(embeddings.detach().clone(), requires_grad=False)
        for head in heads:
            head.predictions.decoder.weight = shared
    return heads


def _frozen_names(heads: torch.nn.Module) -> set[str]:
    """Every name of every frozen parameter, shared ones under each of their names."""
    return {name for name, p in heads.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trained_state(heads: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed (a tied probe's frozen embeddings left out)."""
    frozen = _frozen_names(heads)
    return {name: value for name, value in heads.state_dict().items() if name not in frozen}


def load_trained_state(heads: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `trained_state` saved; every other parameter must be a frozen one."""
    missing, unexpected = heads.load_state_dict(state, strict=False)
    frozen = _frozen_names(heads)
    if unexpected or set(missing) - frozen:
        raise ValueError(f"saved heads do not match: missing {sorted(set(missing) - frozen)}, "
                         f"unexpected {sorted(unexpected)}")


def sampled_candidates(choice: str, candidates: int, vocab: int) -> int | None:
    """Tokens drawn per step by the probe's sampled softmax, or None for the full softmax.
    choice: 'full', 'sampled', or 'auto' (sampled above SAMPLED_ABOVE tokens); a draw of at least
    the vocabulary's size is no saving, so it is the full softmax too."""
    if choice not in OBJECTIVES:
        raise ValueError(f"probe_softmax must be one of {', '.join(OBJECTIVES)}, not {choice!r}")
    sampled = choice == "sampled" or (choice == "auto" and vocab > SAMPLED_ABOVE)
    return candidates if sampled and candidates < vocab else None


def objective_text(candidates: int | None, vocab: int) -> str:
    """The training objective in words, e.g. 'full softmax over 8,192 tokens'."""
    if candidates is None:
        return f"full softmax over {vocab:,} tokens"
    return (f"sampled softmax: the true token and {candidates:,} of the {vocab:,} tokens drawn "
            f"per step from W_S's label frequencies, log-Q corrected")


def label_proposal(labels: torch.Tensor, vocab: int) -> torch.Tensor:
    """The draw's distribution [vocab]: each token's count among `labels` plus one, normalised
    (every token is drawn now and then, so none keeps its untrained logit unopposed)."""
    counts = torch.bincount(labels, minlength=vocab).double() + 1.0
    return (counts / counts.sum()).float()


def sampled_softmax_losses(heads: torch.nn.ModuleList, features: torch.Tensor,
                           labels: torch.Tensor, proposal: torch.Tensor, candidates: int,
                           seed: int, device: str = "cpu", fixed: bool = False):
    """losses(picked [B], heads k) -> each MLM head k's sampled-softmax cross-entropy (nats) on
    features[k][picked] against labels[picked], under bf16 autocast (logits scored in fp32).

    Each call draws `candidates` tokens from `proposal` [vocab] (with replacement; one draw for
    every head); the true token's and the drawn tokens' logits, each less log(candidates * q),
    are scored, a draw equal to the row's true token masked out. fixed: every call draws the same
    tokens (a held-out estimate that evaluations can compare)."""
    generator = torch.Generator().manual_seed(seed)
    log_expected = (proposal * candidates).log().to(device)
    proposal = proposal.double()

    def losses(picked: torch.Tensor, active) -> list[torch.Tensor]:
        if fixed:
            generator.manual_seed(seed)
        drawn = torch.multinomial(proposal, candidates, replacement=True,
                                  generator=generator).to(device)
        target = labels[picked].to(device)
        correction = torch.cat([log_expected[target][:, None],
                                log_expected[drawn][None, :].expand(len(target), -1)], 1)
        hit = torch.cat([torch.zeros(len(target), 1, dtype=torch.bool, device=device),
                         drawn[None, :] == target[:, None]], 1)
        zero = torch.zeros(len(target), dtype=torch.long, device=device)
        result = []
        with autocast(device, True):
            for k in active:
                hidden, decoder = mlm_decoder_input(heads[k], features[k][picked].to(device))
                true = (hidden.float() * decoder.weight[target].float()).sum(-1) + decoder.bias[target]
                others = F.linear(hidden, decoder.weight[drawn], decoder.bias[drawn]).float()
                logits = torch.cat([true[:, None], others], 1) - correction
                result.append(F.cross_entropy(logits.masked_fill(hit, -math.inf), zero))
        return result

    return losses


def train_probe_heads_until_stop(heads: torch.nn.ModuleList, positions: TrainingPositions,
                                 plan: HeadPlan, device: str = "cpu", progress: bool = False,
                                 candidates: int | None = None) -> HeadCurves:
    """Train probe head b on block b's training positions (cross-entropy against the true token,
    bf16 autocast) until its held-out loss stops falling; each head keeps its best state.
    candidates: None, the full softmax; else the sampled softmax over that many drawn tokens
    (`sampled_softmax_losses`), its held-out loss estimated on one fixed draw. Returns the
    held-out curves (nats)."""
    heads.to(device)
    features, labels = positions.features.features, positions.features.labels
    if candidates is None:
        losses = cross_entropy_losses(heads, features, labels, device, bf16=True)
        held_out = None
    else:
        vocab = heads[0].predictions.decoder.out_features
        proposal = label_proposal(labels[positions.train], vocab)
        losses = sampled_softmax_losses(heads, features, labels, proposal, candidates,
                                        plan.seed + 1, device)
        held_out = sampled_softmax_losses(heads, features, labels, proposal, candidates,
                                          plan.seed + 2, device, fixed=True)
    return train_until_stop(heads, losses, positions.train, positions.held_out, plan, progress,
                            "probe heads", held_out)
