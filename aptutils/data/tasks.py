"""The fine-tuning tasks of chapters 5 and 6: FewRel and DBpedia-14.

Each task comes from the offline mirror ($APTBOOK_DATA) or the hub, is sampled per label with
the seed, and is tokenised with the book's tokenizer into fixed-length rows: an artifact keyed by
exactly the knobs that determine it. A FewRel input is the sentence with plain-text entity
markers around the head and the tail; DBpedia's is the abstract (`content`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import DataError, ParameterError
from ..core.params import Settings
from ..core.store import Store, artifact_key
from ..data.corpus import (
    article_samples,
    load_hub_split,
    load_mirror_split,
    mirror_root,
)
from ..data.pretraining import PretrainingData
from ..data.tokenizer import tokenizer_params

TASKS = ("few_rel", "dbpedia_14")
TASK_TITLES = {"few_rel": "FewRel", "dbpedia_14": "DBpedia-14"}
DBPEDIA_HUB_ID = "fancyzhx/dbpedia_14"
FEWREL_HUB_ID = "thunlp/few_rel"
FEWREL_COLUMNS = ("relation", "tokens", "head", "tail", "names")
DBPEDIA_COLUMNS = ("label", "content")


# (head open, head close), (tail open, tail close): plain text the tokenizer splits into pieces.
MARKERS = {"punct": (("@", "@"), ("#", "#")),
           "brackets": (("[E1]", "[/E1]"), ("[E2]", "[/E2]"))}


SUBSET_NOTES = {"few_rel": "FewRel subset (41% of FewRel 1.0, train_wiki relations, lower-cased)",
                "dbpedia_14": "DBpedia-14 subset (3.8% of the 630k; its own stratified test split)"}


def check_task(name: str) -> str:
    """A known task name, else a ParameterError listing the known ones."""
    if name not in TASKS:
        raise ParameterError(f"task={name!r}: allowed values are {', '.join(map(repr, TASKS))}")
    return name


def entity_span(indices: Sequence[Sequence[int]], length: int) -> tuple[int, int] | None:
    """(first, last) token position of an entity's first mention, or None when the mention is
    missing or reaches outside a sentence of `length` tokens."""
    mention = list(indices[0]) if len(indices) else []
    if not mention or min(mention) < 0 or max(mention) >= length:
        return None
    return min(mention), max(mention)


def mark_entities(tokens: Sequence[str], head: tuple[int, int], tail: tuple[int, int],
                  markers: str) -> list[str]:
    """The tokens with markers around the head span and the tail span (inclusive positions).

    Multi-token spans get one marker pair around the whole span. Where spans share a position,
    the longer span opens first and the inner one closes first (head before tail on full ties),
    so nested spans stay nested; crossing spans keep each marker at its own span's edge.
    """
    (head_open, head_close), (tail_open, tail_close) = MARKERS[markers]
    spans = [(head, head_open, head_close, 0), (tail, tail_open, tail_close, 1)]
    marked = []
    for position, token in enumerate(tokens):
        opening = sorted((s for s in spans if s[0][0] == position), key=lambda s: (-s[0][1], s[3]))
        closing = sorted((s for s in spans if s[0][1] == position), key=lambda s: (-s[0][0], -s[3]))
        marked += [s[1] for s in opening] + [token] + [s[2] for s in closing]
    return marked


def fewrel_text(row: dict, markers: str) -> str | None:
    """A FewRel row as marked text, or None when an entity's indices fall outside the sentence."""
    tokens = row["tokens"]
    head = entity_span(row["head"]["indices"], len(tokens))
    tail = entity_span(row["tail"]["indices"], len(tokens))
    if head is None or tail is None:
        return None
    return " ".join(mark_entities(tokens, head, tail, markers))


def check_markers(tokenizer, markers: str) -> None:
    """DataError when a marker would become [UNK] in this tokenizer (head and tail alike)."""
    for marker in {m for pair in MARKERS[markers] for m in pair}:
        if tokenizer.unk_token_id in tokenizer(marker, add_special_tokens=False)["input_ids"]:
            other = next(style for style in MARKERS if style != markers)
            raise DataError(f"entity_markers={markers!r}: {marker!r} is not in the tokenizer's "
                            f"vocabulary (it would read as [UNK]); choose entity_markers={other!r}")


def task_source(settings: Settings) -> str:
    """mirror when $APTBOOK_DATA is set (unless corpus='hub'), else hub."""
    return "mirror" if mirror_root() is not None and settings.corpus != "hub" else "hub"


def mirror_fingerprint(name: str) -> str:
    """A hash of the names and sizes of a dataset's parquet files in the mirror."""
    files = sorted((mirror_root() / name).glob("*.parquet"))
    text = "|".join(f"{f.name}:{f.stat().st_size}" for f in files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_fewrel(source: str):
    """FewRel's 64 train_wiki relations: the mirror's `train` split, or the hub's `train_wiki`."""
    if source == "mirror":
        return load_mirror_split("few_rel", "train", FEWREL_COLUMNS)
    try:
        return load_hub_split(FEWREL_HUB_ID, "default", "train_wiki")
    except DataError:
        raise DataError(
            f"cannot load {FEWREL_HUB_ID} from the hub (it is script-based); provide a parquet "
            f"mirror: <root>/few_rel/train-00000-of-00001.parquet with columns "
            f"{', '.join(FEWREL_COLUMNS)} (FewRel 1.0 train_wiki), then export APTBOOK_DATA=<root>"
        ) from None


def load_dbpedia(source: str, split: str):
    """One split ('train' or 'test') of DBpedia-14 from the mirror or the hub."""
    if source == "mirror":
        return load_mirror_split("dbpedia_14", split, DBPEDIA_COLUMNS)
    return load_hub_split(DBPEDIA_HUB_ID, None, split)


def first_labels(available: Sequence, wanted: int, knob: str, where: str) -> list:
    """The first `wanted` labels of `available`; DataError when the data holds fewer."""
    if wanted > len(available):
        raise DataError(f"{knob}={wanted}: {where} holds {len(available)} labels; "
                        f"choose {knob} <= {len(available)}")
    return list(available[:wanted])


def split_pool_per_label(labels: np.ndarray, chosen: Sequence, train: int, test: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/test row indices from one pool, per chosen label, after a seeded shuffle.

    Per label with n rows: test takes min(test, n // 2), train min(train, n - test taken).
    """
    train_rows, test_rows = [], []
    for label in chosen:
        rows = rng.permutation(np.flatnonzero(labels == label))
        test_taken = min(test, len(rows) // 2)
        test_rows.append(rows[:test_taken])
        train_rows.append(rows[test_taken:test_taken + min(train, len(rows) - test_taken)])
    return np.concatenate(train_rows), np.concatenate(test_rows)


def sample_per_label(labels: np.ndarray, chosen: Sequence, count: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Up to `count` row indices per chosen label, drawn without replacement with the seed."""
    return np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:count]
                           for label in chosen])


@dataclass(frozen=True)
class RawTask:
    """Texts and label indices (0..C-1) of a sampled task, before tokenisation."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_names: list[str]
    skipped_rows: int


def raw_fewrel(settings: Settings, source: str) -> RawTask:
    """FewRel sampled per relation from one pool; rows with bad entity indices skipped, counted."""
    dataset = load_fewrel(source)
    texts = [fewrel_text(row, settings.entity_markers) for row in dataset]
    usable = [i for i, text in enumerate(texts) if text is not None]
    relations = np.array(dataset["relation"])[usable]
    names = {rel: f"{rel} {name[0]}" if len(name) else rel
             for rel, name in zip(dataset["relation"], dataset["names"])}
    chosen = first_labels(sorted(set(relations)), settings.few_rel_labels, "few_rel_labels",
                          f"FewRel ({source})")
    rng = np.random.default_rng(settings.seed)
    train, test = split_pool_per_label(relations, chosen, settings.few_rel_train,
                                       settings.few_rel_test, rng)
    index = {rel: i for i, rel in enumerate(chosen)}
    return RawTask([texts[usable[i]] for i in train], np.array([index[r] for r in relations[train]]),
                   [texts[usable[i]] for i in test], np.array([index[r] for r in relations[test]]),
                   [names[rel] for rel in chosen], len(texts) - len(usable))


def raw_dbpedia(settings: Settings, source: str) -> RawTask:
    """DBpedia-14 sampled per class: training rows from its train split, test rows from its test split."""
    train_set, test_set = load_dbpedia(source, "train"), load_dbpedia(source, "test")
    class_names = getattr(train_set.features["label"], "names", None)
    present = sorted(set(train_set["label"]))
    chosen = first_labels(present, settings.dbpedia_labels, "dbpedia_labels", f"DBpedia-14 ({source})")
    rng = np.random.default_rng(settings.seed)
    train = sample_per_label(np.array(train_set["label"]), chosen, settings.dbpedia_train, rng)
    test = sample_per_label(np.array(test_set["label"]), chosen, settings.dbpedia_test, rng)
    index = {label: i for i, label in enumerate(chosen)}
    train_rows, test_rows = train_set.select(train), test_set.select(test)
    return RawTask(list(train_rows["content"]), np.array([index[x] for x in train_rows["label"]]),
                   list(test_rows["content"]), np.array([index[x] for x in test_rows["label"]]),
                   [class_names[c] if class_names else str(c) for c in chosen], 0)


def encode_rows(tokenizer, texts: list[str], seq_len: int) -> tuple[np.ndarray, int]:
    """[CLS] text [SEP] padded to seq_len, as int32 [N, seq_len]; and how many texts were cut."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [article_samples(ids, "first", seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id,
                            tokenizer.pad_token_id)[0] for ids in encoded]
    return np.stack(rows), sum(len(ids) > seq_len - 2 for ids in encoded)


@dataclass(frozen=True)
class Task:
    """A sampled, tokenised task in the store: ids [N, seq_len] int32 and labels [N] per split."""

    name: str
    folder: Path

    def array(self, name: str) -> np.ndarray:
        """train_ids, train_labels, test_ids or test_labels."""
        return np.load(self.folder / f"{name}.npy")

    @property
    def info(self) -> dict:
        """label_names, source, per-label counts used, skipped_rows, truncated."""
        return json.loads((self.folder / "task.json").read_text())

    @property
    def label_names(self) -> list[str]:
        return self.info["label_names"]

    @property
    def title(self) -> str:
        return TASK_TITLES[self.name]


TASK_KNOBS = {"few_rel": ("few_rel_labels", "few_rel_train", "few_rel_test", "entity_markers"),
              "dbpedia_14": ("dbpedia_labels", "dbpedia_train", "dbpedia_test")}


def task_params(settings: Settings, name: str, data: PretrainingData) -> dict:
    """Exactly what determines a task artifact: data source, tokenizer, seq_len, seed, its knobs."""
    source = task_source(settings)
    origin = (f"mirror:{mirror_fingerprint(name)}" if source == "mirror"
              else (FEWREL_HUB_ID if name == "few_rel" else DBPEDIA_HUB_ID))
    return {"task": name, "source": origin,
            "tokenizer": artifact_key("tokenizer", tokenizer_params(settings, data.corpus)),
            **settings.subset(("seq_len", "seed", *TASK_KNOBS[name]))}


def per_label_counts(labels: np.ndarray, classes: int) -> list[int]:
    return np.bincount(labels, minlength=classes).tolist()


def build_task(folder: Path, settings: Settings, name: str, tokenizer) -> None:
    """Sample, mark (FewRel) and tokenise a task; write its arrays and task.json into `folder`."""
    source = task_source(settings)
    if name == "few_rel":
        check_markers(tokenizer, settings.entity_markers)
    raw = raw_fewrel(settings, source) if name == "few_rel" else raw_dbpedia(settings, source)
    train_ids, train_cut = encode_rows(tokenizer, raw.train_texts, settings.seq_len)
    test_ids, test_cut = encode_rows(tokenizer, raw.test_texts, settings.seq_len)
    for split, array in (("train_ids", train_ids), ("train_labels", raw.train_labels),
                         ("test_ids", test_ids), ("test_labels", raw.test_labels)):
        np.save(folder / f"{split}.npy", array)
    classes = len(raw.label_names)
    info = {"label_names": raw.label_names, "source": source, "skipped_rows": raw.skipped_rows,
            "truncated": train_cut + test_cut, "example": raw.test_texts[0],
            "train_per_label": per_label_counts(raw.train_labels, classes),
            "test_per_label": per_label_counts(raw.test_labels, classes)}
    (folder / "task.json").write_text(json.dumps(info))


def load_task(settings: Settings, name: str, data: PretrainingData, store: Store | None = None) -> Task:
    """The task artifact for these settings, built when missing."""
    store = store or Store()
    folder = store.get_or_build("task", task_params(settings, check_task(name), data),
                                lambda f: build_task(f, settings, name, data.tokenizer))
    return Task(name, folder)


def load_tasks(settings: Settings, data: PretrainingData, store: Store | None = None) -> dict[str, Task]:
    """Both tasks, FewRel first."""
    return {name: load_task(settings, name, data, store) for name in TASKS}
