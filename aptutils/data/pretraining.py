"""The pre-training data of one setting: corpus, tokenizer and the W_S / W_test sample pools.

Used by every chapter that reads a BERT model (1-6).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.recipes import Recipe
from ..core.store import Store, artifact_key
from ..data.corpus import (Corpus, CorpusRecipe, SampleRecipe, Samples, load_corpus,
                           pretraining_samples)
from ..data.tokenizer import TokenizerRecipe, load_tokenizer, tokenizer_params


@dataclass(frozen=True)
class DataRecipe(Recipe):
    """The pre-training data: corpus, tokenizer, sampling, and the W_S series it must hold."""

    corpus: CorpusRecipe
    tokenizer: TokenizerRecipe
    samples: SampleRecipe
    ws_list: tuple[int, ...]


@dataclass(frozen=True)
class PretrainingData:
    """Corpus, tokenizer and sample pools of one setting."""

    corpus: Corpus
    tokenizer: object
    samples: Samples
    tokenizer_key: str = ""
    recipe: DataRecipe | None = None


def pretraining_data(recipe: DataRecipe, store: Store | None = None) -> PretrainingData:
    """Load the corpus and build (or fetch) the tokenizer and the W_S / W_test pools."""
    store = store or Store()
    corpus = load_corpus(recipe.corpus)
    tokenizer = load_tokenizer(recipe.tokenizer, corpus, store)
    tokenizer_key = artifact_key("tokenizer", tokenizer_params(recipe.tokenizer, corpus))
    samples = pretraining_samples(recipe.samples, corpus, tokenizer, tokenizer_key, store)
    samples.check_sizes(recipe.ws_list)
    return PretrainingData(corpus, tokenizer, samples, tokenizer_key, recipe)
