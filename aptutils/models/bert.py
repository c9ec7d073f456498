"""BERT-6 for masked-language modelling, with the MLM head applied only at modified positions.

Used by chapter 1 (pre-training) and by every chapter that reads a pre-trained model.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from ..core.recipes import Recipe
from ..data.masking import IGNORE


class SparseHeadBertForMaskedLM(BertForMaskedLM):
    """`BertForMaskedLM` whose head runs only where `labels` != -100 (about 15% of positions).

    With labels, `logits` has shape [n_modified, vocab] in row-major order of the modified
    positions; without labels it is the usual dense [B, L, vocab].
    """

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                labels=None) -> MaskedLMOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        if labels is None:
            return MaskedLMOutput(logits=self.cls(hidden))
        picked = labels != IGNORE
        logits = self.cls(hidden[picked])
        loss = F.cross_entropy(logits.float(), labels[picked])
        return MaskedLMOutput(loss=loss, logits=logits)


class BertTrunk(BertPreTrainedModel):
    """A BERT without an MLM head (a checkpoint saved from a plain `BertModel`, e.g. a
    sentence-embedding BERT): `.bert` as in `SparseHeadBertForMaskedLM`, no `.cls`. Loads a
    `BertModel` checkpoint (no prefix) or the trunk of a `BertForMaskedLM` one."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.post_init()


def has_head(model: torch.nn.Module) -> bool:
    """Whether the model has its own MLM head (`model.cls`)."""
    return hasattr(model, "cls")


def checkpoint_model(folder, with_head: bool, trained: bool, pad_id: int, seed: int,
                     device: str = "cpu") -> torch.nn.Module:
    """An external checkpoint's model: `SparseHeadBertForMaskedLM` when it has an MLM head, else
    `BertTrunk`; trained=False: the same architecture with fresh weights (seeded)."""
    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()  # no loading bar flooding a notebook
    kind = SparseHeadBertForMaskedLM if with_head else BertTrunk
    config = BertConfig.from_pretrained(folder)
    config.pad_token_id = pad_id
    if trained:
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a BertModel's pooler, unused here, is left out
        try:
            model = kind.from_pretrained(folder, config=config)
        finally:
            hf_logging.set_verbosity(verbosity)
    else:
        torch.manual_seed(seed)
        model = kind(config)
    model.set_attn_implementation("eager" if device == "cpu" else "sdpa")
    return model.eval()


@dataclass(frozen=True)
class BertRecipe(Recipe):
    """The architecture of a BERT of the book and the seed of its initialisation."""

    hidden_size: int
    num_layers: int
    num_heads: int
    ffn_size: int | None
    dropout: float
    seq_len: int
    seed: int


def bert_config(recipe: BertRecipe, vocab_size: int, pad_id: int) -> BertConfig:
    """The BERT configuration of this recipe (post-LN, GELU, tied embeddings, no NSP)."""
    return BertConfig(
        vocab_size=vocab_size, hidden_size=recipe.hidden_size,
        num_hidden_layers=recipe.num_layers, num_attention_heads=recipe.num_heads,
        intermediate_size=recipe.ffn_size or 4 * recipe.hidden_size,
        hidden_dropout_prob=recipe.dropout, attention_probs_dropout_prob=recipe.dropout,
        max_position_embeddings=max(512, recipe.seq_len), pad_token_id=pad_id,
        type_vocab_size=2, tie_word_embeddings=True,
    )


def new_model(recipe: BertRecipe, vocab_size: int, pad_id: int,
              device: str = "cpu") -> SparseHeadBertForMaskedLM:
    """A randomly initialised model, seeded by `seed`.

    Eager attention on the CPU (measured 1.2x faster than SDPA under bf16 there), SDPA elsewhere.
    """
    torch.manual_seed(recipe.seed)
    model = SparseHeadBertForMaskedLM(bert_config(recipe, vocab_size, pad_id))
    model.set_attn_implementation("eager" if device == "cpu" else "sdpa")
    return model


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
