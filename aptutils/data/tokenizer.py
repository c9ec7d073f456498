"""The book's tokenizer: `bert-base-uncased` (or any hub id / folder) or a WordPiece trained here.

Used by chapter 1 and every chapter that tokenises text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataError
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.checkpoint import checkpoint_tokenizer, checkpoint_tokenizer_params
from ..data.corpus import Corpus, mirror_root

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: list[str], vocab_size: int, folder: Path) -> None:
    """Train an uncased BERT-style WordPiece on `texts` and save it as a transformers tokenizer."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                        show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.model = models.WordPiece(sorted_vocab(tokenizer.get_vocab()), unk_token="[UNK]")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tokenizer.decoder = decoders.WordPiece()
    BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True).save_pretrained(folder)


def sorted_vocab(vocab: dict[str, int]) -> dict[str, int]:
    """The same tokens with canonical ids: the special tokens first, then the rest sorted.

    The trainer numbers tokens in the order of its hash sets, so two trainings on one corpus give
    the same tokens under different ids, and models initialised from one seed then differ.
    WordPiece segments by longest match, so the ids do not change how text is split. (Ties
    between equally frequent merges can still change which tokens make the cut on a tiny corpus;
    on the mirror three trainings gave the same 8,192 tokens.)
    """
    rest = sorted(set(vocab) - set(SPECIAL_TOKENS))
    return {token: i for i, token in enumerate(SPECIAL_TOKENS + rest)}


@dataclass(frozen=True)
class TokenizerRecipe(Recipe):
    """Which tokenizer: an external checkpoint's own (`model`), a wordpiece of `vocab_size`
    trained on the corpus, or one loaded by name (`tokenizer`)."""

    tokenizer: str
    vocab_size: int
    model: str | None


def tokenizer_params(recipe: TokenizerRecipe, corpus: Corpus) -> dict:
    """What determines the tokenizer: a trained one depends on the corpus and vocabulary size;
    an external checkpoint's (`model`) on its folder and files."""
    if recipe.model is not None:
        return checkpoint_tokenizer_params(recipe.model)
    if recipe.tokenizer == "wordpiece":
        return {"kind": "wordpiece", "corpus": corpus.fingerprint, "vocab_size": recipe.vocab_size,
                "ids": "sorted"}
    return {"kind": "pretrained", "name": recipe.tokenizer}


def tokenizer_source(name: str) -> str:
    """Where a named tokenizer loads from: a folder as given; a hub id (e.g. `bert-base-uncased`)
    from the offline mirror's folder of that name when there is one, else from the hub."""
    root = mirror_root()
    if not Path(name).is_dir() and root is not None and (root / name).is_dir():
        return str(root / name)
    return name


def load_tokenizer(recipe: TokenizerRecipe, corpus: Corpus, store: Store | None = None):
    """The tokenizer of this recipe: an external checkpoint's own (`model`), else trained and
    cached in the store, or loaded by name."""
    from transformers import AutoTokenizer

    if recipe.model is not None:
        return checkpoint_tokenizer(recipe.model)
    if recipe.tokenizer == "wordpiece":
        store = store or Store()
        folder = store.get_or_build("tokenizer", tokenizer_params(recipe, corpus),
                                    lambda f: train_wordpiece(corpus.texts, recipe.vocab_size, f))
        return AutoTokenizer.from_pretrained(folder)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the error below says it once, in one line
    try:
        return AutoTokenizer.from_pretrained(tokenizer_source(recipe.tokenizer))
    except Exception as error:
        raise DataError(f"tokenizer={recipe.tokenizer!r} cannot be loaded ({type(error).__name__}); "
                        f"pass a folder holding a Hugging Face tokenizer (tokenizer.json or "
                        f"vocab.txt), a hub id where there is network, or -p tokenizer "
                        f"wordpiece") from None
    finally:
        hf_logging.set_verbosity(verbosity)
