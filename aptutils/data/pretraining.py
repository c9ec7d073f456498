"""The pre-training data of one setting: corpus, tokenizer and the W_S / W_test sample pools.

Used by every chapter that reads a BERT model (1-6).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.params import Settings
from ..core.store import Store, artifact_key
from ..data.corpus import Corpus, Samples, load_corpus, pretraining_samples
from ..data.tokenizer import load_tokenizer, tokenizer_params


@dataclass(frozen=True)
class PretrainingData:
    """Corpus, tokenizer and sample pools of one setting."""

    corpus: Corpus
    tokenizer: object
    samples: Samples
    tokenizer_key: str = ""


def pretraining_data(settings: Settings, store: Store | None = None) -> PretrainingData:
    """Load the corpus and build (or fetch) the tokenizer and the W_S / W_test pools."""
    store = store or Store()
    corpus = load_corpus(settings)
    tokenizer = load_tokenizer(settings, corpus, store)
    tokenizer_key = artifact_key("tokenizer", tokenizer_params(settings, corpus))
    samples = pretraining_samples(settings, corpus, tokenizer, tokenizer_key, store)
    samples.check_sizes(settings.ws_list)
    return PretrainingData(corpus, tokenizer, samples, tokenizer_key)
