"""The pre-training corpus: Wikipedia from an offline mirror, the hub or the gensim excerpt.

`load_corpus` gives the articles; `pretraining_samples` turns them into the W_S pool and the
fixed, masked W_test (an artifact); `pool_layout` is how, and says which article every pool row
comes from (`data.extension`). Used by chapter 1 and every chapter that needs a model.
"""
from __future__ import annotations

import bz2
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.errors import DataError
from ..core.recipes import Recipe
from ..core.store import Store

WIKIPEDIA_HUB_ID = ("wikimedia/wikipedia", "20231101.en")
GENSIM_EXCERPT = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MIN_GENSIM_WORDS = 200


def mirror_root() -> Path | None:
    """The offline mirror root named by $APTBOOK_DATA, or None."""
    root = os.environ.get("APTBOOK_DATA")
    return Path(root).expanduser().resolve() if root else None


@dataclass(frozen=True)
class CorpusRecipe(Recipe):
    """Which articles: the `corpus` source (auto resolves by `profile`) cut to `max_articles`."""

    corpus: str
    max_articles: int | None
    profile: str


@dataclass(frozen=True)
class SampleRecipe(Recipe):
    """How a corpus becomes the W_S pool and the masked W_test: exactly the knobs of the samples
    artifact's key beside the corpus and the tokenizer."""

    sample_mode: str
    seq_len: int
    test_samples: int
    mask_prob: float
    seed: int


def resolved_corpus(recipe: CorpusRecipe) -> str:
    """Which source `corpus=auto` means here: mirror, gensim (smoke) or hub."""
    if recipe.corpus != "auto":
        return recipe.corpus
    if mirror_root() is not None:
        return "mirror"
    return "gensim" if recipe.profile == "smoke" else "hub"


def load_mirror_split(name: str, split: str, columns: tuple[str, ...]):
    """One split of a dataset in the mirror (`<root>/<name>/<split>-*.parquet`) as a `datasets.Dataset`."""
    from datasets import load_dataset

    root = mirror_root()
    if root is None:
        raise DataError(f"{name}: no mirror set; export APTBOOK_DATA=<mirror root> (e.g. ../shared/data)")
    files = sorted((root / name).glob(f"{split}-*.parquet"))
    if not files:
        raise DataError(f"{name}: no {split}-*.parquet under {root / name}; APTBOOK_DATA must name "
                        f"a folder laid out like ../shared/data (see its README)")
    try:
        with quiet_datasets():
            dataset = load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split)
    except Exception as error:  # pyarrow and datasets raise many types for a damaged file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{name}/{split} in {root}: cannot read {', '.join(f.name for f in files)} "
                        f"({type(error).__name__}: {first_line[:200]}); the file is damaged or not "
                        f"parquet: copy it again from the mirror's source") from None
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(f"{name}/{split} in {root} lacks columns {missing}; it has {dataset.column_names}: "
                        f"re-export it in the hub's schema (see the mirror README)")
    return dataset


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bars or logged errors from `datasets` while a mirror file loads (a second or
    two): a damaged file is then reported once, as the DataError's one line."""
    from datasets.utils import logging as datasets_logging

    verbosity, bars = datasets_logging.get_verbosity(), datasets_logging.is_progress_bar_enabled()
    datasets_logging.set_verbosity(datasets_logging.CRITICAL)
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
        if bars:
            datasets_logging.enable_progress_bar()


def load_hub_split(hub_id: str, config: str | None, split: str):
    """One split from the Hugging Face hub, with an error that says how to go offline instead."""
    from datasets import load_dataset

    try:
        return load_dataset(hub_id, config, split=split)
    except Exception as error:  # the hub raises many types when offline
        raise DataError(
            f"cannot load {hub_id} from the hub ({type(error).__name__}); offline, set "
            f"APTBOOK_DATA to a mirror root (e.g. ../shared/data)"
        ) from None


def gensim_excerpt_articles() -> list[dict[str, str]]:
    """The enwiki excerpt inside the gensim wheel: articles of >= 200 words, markup stripped."""
    import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = Path(gensim.__file__).parent / "test" / "test_data" / GENSIM_EXCERPT
    articles = []
    with bz2.open(path) as stream:
        for title, text, page_id in extract_pages(stream, filter_namespaces=("0",)):
            plain = filter_wiki(text)
            if len(plain.split()) >= MIN_GENSIM_WORDS:
                articles.append({"id": f"gensim-{page_id}", "url": "", "title": title, "text": plain})
    return articles


@dataclass(frozen=True)
class Corpus:
    """Articles of the pre-training corpus, in source order."""

    source: str
    ids: list[str]
    texts: list[str]

    @property
    def fingerprint(self) -> str:
        """A hash of the source and all article ids: the corpus part of an artifact key."""
        digest = hashlib.sha256(self.source.encode())
        for article_id in self.ids:
            digest.update(article_id.encode() + b"\0")
        return digest.hexdigest()[:16]


def load_corpus(recipe: CorpusRecipe) -> Corpus:
    """The articles named by `corpus`, cut to `max_articles`."""
    source = resolved_corpus(recipe)
    if source == "gensim":
        rows = gensim_excerpt_articles()[: recipe.max_articles]
        ids, texts = [r["id"] for r in rows], [r["text"] for r in rows]
    else:
        dataset = (load_mirror_split("wikipedia", "train", ("id", "text")) if source == "mirror"
                   else load_hub_split(*WIKIPEDIA_HUB_ID, "train"))
        if recipe.max_articles is not None:
            dataset = dataset.select(range(min(recipe.max_articles, len(dataset))))
        ids, texts = [str(i) for i in dataset["id"]], list(dataset["text"])
    return Corpus(source, ids, texts)


def article_samples(token_ids: list[int], mode: str, seq_len: int, cls_id: int, sep_id: int,
                    pad_id: int) -> list[np.ndarray]:
    """Samples of one article: [CLS] + up to seq_len-2 tokens + [SEP], padded to seq_len.

    mode "first" keeps only the first sample (the paper); "chunks" cuts the article into
    consecutive samples and drops a last chunk shorter than a quarter of a sample.
    """
    body = seq_len - 2
    starts = [0] if mode == "first" else range(0, max(len(token_ids), 1), body)
    samples = []
    for start in starts:
        piece = token_ids[start:start + body]
        if not piece or (mode == "chunks" and start > 0 and len(piece) < body // 4):
            continue
        row = np.full(seq_len, pad_id, dtype=np.int32)
        row[: len(piece) + 2] = [cls_id, *piece, sep_id]
        samples.append(row)
    return samples


def split_by_article(samples_per_article: list[int], test_samples: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the articles; the last ones until `test_samples` samples are reached form W_test.

    Returns (train_articles, test_articles) as index arrays: disjoint by construction.
    """
    order = rng.permutation(len(samples_per_article))
    taken, cut = 0, len(order)
    while cut > 0 and taken < test_samples:
        cut -= 1
        taken += samples_per_article[order[cut]]
    if taken < test_samples or cut == 0:
        raise DataError(f"test_samples={test_samples}: the corpus has too few samples to hold "
                        f"out that many and still train; lower test_samples or add articles")
    return order[:cut], order[cut:]


def sample_params(recipe: SampleRecipe, corpus: Corpus, tokenizer_key: str) -> dict:
    """Exactly the parameters that determine the sample pools."""
    return {"corpus": corpus.fingerprint, "tokenizer": tokenizer_key, **recipe.key()}


@dataclass(frozen=True)
class PoolLayout:
    """How `build_samples` cuts a corpus: every article's samples, the article split and the
    shuffle of the training pool, so that the article of every pool row is known.

    samples: per article, its samples ([seq_len] int32 each); train_articles, test_articles:
    article indices (`split_by_article`); order: [N_pool], pool row i is sample order[i] of the
    training articles' samples laid end to end in `train_articles` order; tokens: corpus tokens.
    """

    samples: list[list[np.ndarray]]
    train_articles: np.ndarray
    test_articles: np.ndarray
    order: np.ndarray
    tokens: int

    def pool(self) -> np.ndarray:
        """The shuffled training pool, [N_pool, seq_len] int32 (the stored `train_ids`)."""
        return np.stack([row for a in self.train_articles for row in self.samples[a]])[self.order]

    def pool_articles(self) -> np.ndarray:
        """The article (index into the corpus) of every pool row, [N_pool]."""
        sizes = [len(self.samples[a]) for a in self.train_articles]
        return np.repeat(self.train_articles, sizes)[self.order]


def pool_layout(recipe: SampleRecipe, corpus: Corpus, tokenizer) -> PoolLayout:
    """Tokenise the corpus, cut it into samples, split the articles and shuffle the training pool
    with the seed: the one code path of `build_samples`, re-run by `data.extension`."""
    # whole articles are tokenised, then cut into seq_len samples: no model-length warning
    encoded = tokenizer(corpus.texts, add_special_tokens=False, verbose=False)["input_ids"]
    per_article = [article_samples(ids, recipe.sample_mode, recipe.seq_len, tokenizer.cls_token_id,
                                   tokenizer.sep_token_id, tokenizer.pad_token_id) for ids in encoded]
    rng = np.random.default_rng(recipe.seed)
    train_articles, test_articles = split_by_article([len(s) for s in per_article],
                                                     recipe.test_samples, rng)
    order = rng.permutation(sum(len(per_article[a]) for a in train_articles))
    return PoolLayout(per_article, train_articles, test_articles, order,
                      int(sum(map(len, encoded))))


def build_samples(folder: Path, recipe: SampleRecipe, corpus: Corpus, tokenizer) -> None:
    """Write the shuffled training pool and the masked W_test of a corpus into `folder`.

    Files: train_ids.npy [N_pool, seq_len] int32 (W_S = its first W_S rows), test_ids.npy,
    test_inputs.npy, test_labels.npy (-100 off the modified positions), test_kinds.npy int8,
    stats.json (articles, tokens, samples per split).
    """
    from .masking import mask_tokens, special_token_ids

    layout = pool_layout(recipe, corpus, tokenizer)
    train_articles, test_articles = layout.train_articles, layout.test_articles
    train = layout.pool()
    test = np.stack([row for a in test_articles for row in layout.samples[a]])[: recipe.test_samples]
    inputs, labels, kinds = mask_tokens(test, special_token_ids(tokenizer), tokenizer.mask_token_id,
                                        len(tokenizer), recipe.mask_prob, seed=recipe.seed + 1)
    for name, array in (("train_ids", train), ("test_ids", test), ("test_inputs", inputs),
                        ("test_labels", labels), ("test_kinds", kinds)):
        np.save(folder / f"{name}.npy", array)
    stats = {"articles": len(corpus.ids), "train_articles": len(train_articles),
             "test_articles": len(test_articles), "corpus_tokens": layout.tokens,
             "train_samples": len(train), "test_samples": len(test),
             "train_articles_ids": [corpus.ids[a] for a in train_articles],
             "test_articles_ids": [corpus.ids[a] for a in test_articles]}
    (folder / "stats.json").write_text(json.dumps(stats))


@dataclass(frozen=True)
class Samples:
    """The tokenised pools of one corpus/tokenizer/sampling choice (arrays memory-mapped)."""

    folder: Path

    def array(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy", mmap_mode="r")

    @property
    def stats(self) -> dict:
        return json.loads((self.folder / "stats.json").read_text())

    def check_sizes(self, ws_list) -> None:
        """Stop (before any training) when a W_S exceeds the training pool."""
        pool = len(self.array("train_ids"))
        too_large = [ws for ws in ws_list if ws > pool]
        if too_large:
            raise DataError(f"ws_list: W_S={too_large[0]} exceeds the {pool} training samples this "
                            f"corpus yields; lower ws_list, use sample_mode='chunks' or a larger corpus")

    def train_slice(self, ws: int) -> np.ndarray:
        """The first `ws` samples of the shuffled pool: the pre-training set W_S, [ws, seq_len]."""
        self.check_sizes([ws])
        return np.array(self.array("train_ids")[:ws])


def pretraining_samples(recipe: SampleRecipe, corpus: Corpus, tokenizer, tokenizer_key: str,
                        store: Store | None = None) -> Samples:
    """The samples artifact of this recipe, built when missing."""
    store = store or Store()
    folder = store.get_or_build("samples", sample_params(recipe, corpus, tokenizer_key),
                                lambda f: build_samples(f, recipe, corpus, tokenizer))
    return Samples(folder)
