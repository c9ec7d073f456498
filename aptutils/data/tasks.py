"""The fine-tuning tasks of chapters 5 and 6: FewRel and DBpedia-14.

Each task comes from the offline mirror ($APTBOOK_DATA) or the hub, is sampled per label with
the seed, and is tokenised with the book's tokenizer into fixed-length rows: an artifact keyed by
exactly the knobs that determine it. A FewRel input is the sentence with plain-text entity
markers around the head and the tail, and carries the token positions of the two opening markers
(`data.entities`); a FewRel row longer than seq_len keeps a window around both. DBpedia's input
is the abstract (`content`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import DataError, ParameterError
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.corpus import (
    article_samples,
    load_hub_split,
    load_mirror_split,
    mirror_root,
)
from ..data.entities import (
    check_entity_positions,
    check_markers,
    encode_marked_rows,
    fewrel_marked,
    marker_ids,
)
from ..data.pretraining import PretrainingData

TASKS = ("few_rel", "dbpedia_14")
TASK_TITLES = {"few_rel": "FewRel", "dbpedia_14": "DBpedia-14"}
DBPEDIA_HUB_ID = "fancyzhx/dbpedia_14"
FEWREL_HUB_ID = "thunlp/few_rel"
FEWREL_COLUMNS = ("relation", "tokens", "head", "tail", "names")
DBPEDIA_COLUMNS = ("label", "content")


SUBSET_NOTES = {"few_rel": "FewRel subset (41% of FewRel 1.0, train_wiki relations, lower-cased)",
                "dbpedia_14": "DBpedia-14 subset (3.8% of the 630k; its own stratified test split)"}


def check_task(name: str) -> str:
    """A known task name, else a ParameterError listing the known ones."""
    if name not in TASKS:
        raise ParameterError(f"task={name!r}: allowed values are {', '.join(map(repr, TASKS))}")
    return name


@dataclass(frozen=True)
class FewRelRecipe(Recipe):
    """FewRel's sample: relations, sentences per relation, entity markers."""

    few_rel_labels: int
    few_rel_train: int
    few_rel_test: int
    entity_markers: str


@dataclass(frozen=True)
class DBpediaRecipe(Recipe):
    """DBpedia-14's sample: classes and abstracts per class."""

    dbpedia_labels: int
    dbpedia_train: int
    dbpedia_test: int


@dataclass(frozen=True)
class TaskRecipe(Recipe):
    """Both fine-tuning tasks: where they come from (`corpus`), the length and seed of their
    samples, and each task's own knobs (a field named as the task)."""

    corpus: str
    seq_len: int
    seed: int
    few_rel: FewRelRecipe
    dbpedia_14: DBpediaRecipe


def task_source(recipe: TaskRecipe) -> str:
    """mirror when $APTBOOK_DATA is set (unless corpus='hub'), else hub."""
    return "mirror" if mirror_root() is not None and recipe.corpus != "hub" else "hub"


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
    """Texts and label indices (0..C-1) of a sampled task, before tokenisation; for FewRel also
    the character offsets of each text's head and tail opening markers (None for DBpedia)."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_names: list[str]
    skipped_rows: int
    train_openers: list[tuple[int, int]] | None = None
    test_openers: list[tuple[int, int]] | None = None


def raw_fewrel(recipe: FewRelRecipe, seed: int, source: str) -> RawTask:
    """FewRel sampled per relation from one pool; rows with bad entity indices skipped, counted."""
    dataset = load_fewrel(source)
    marked = [fewrel_marked(row, recipe.entity_markers) for row in dataset]
    usable = [i for i, item in enumerate(marked) if item is not None]
    relations = np.array(dataset["relation"])[usable]
    names = {rel: f"{rel} {name[0]}" if len(name) else rel
             for rel, name in zip(dataset["relation"], dataset["names"])}
    chosen = first_labels(sorted(set(relations)), recipe.few_rel_labels, "few_rel_labels",
                          f"FewRel ({source})")
    rng = np.random.default_rng(seed)
    train, test = split_pool_per_label(relations, chosen, recipe.few_rel_train,
                                       recipe.few_rel_test, rng)
    index = {rel: i for i, rel in enumerate(chosen)}
    train_rows, test_rows = [marked[usable[i]] for i in train], [marked[usable[i]] for i in test]
    return RawTask([m.text for m in train_rows], np.array([index[r] for r in relations[train]]),
                   [m.text for m in test_rows], np.array([index[r] for r in relations[test]]),
                   [names[rel] for rel in chosen], len(marked) - len(usable),
                   [m.openers for m in train_rows], [m.openers for m in test_rows])


def raw_dbpedia(recipe: DBpediaRecipe, seed: int, source: str) -> RawTask:
    """DBpedia-14 sampled per class: training rows from its train split, test rows from its test split."""
    train_set, test_set = load_dbpedia(source, "train"), load_dbpedia(source, "test")
    class_names = getattr(train_set.features["label"], "names", None)
    present = sorted(set(train_set["label"]))
    chosen = first_labels(present, recipe.dbpedia_labels, "dbpedia_labels", f"DBpedia-14 ({source})")
    rng = np.random.default_rng(seed)
    train = sample_per_label(np.array(train_set["label"]), chosen, recipe.dbpedia_train, rng)
    test = sample_per_label(np.array(test_set["label"]), chosen, recipe.dbpedia_test, rng)
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
    """A sampled, tokenised task in the store: ids [N, seq_len] int32 and labels [N] per split;
    FewRel also has entities [N, 2] (see `entity_positions`)."""

    name: str
    folder: Path

    def array(self, name: str) -> np.ndarray:
        """train_ids, train_labels, test_ids or test_labels."""
        return np.load(self.folder / f"{name}.npy")

    @property
    def info(self) -> dict:
        """label_names, source, per-label counts used, skipped_rows, truncated (FewRel also
        markers_too_far, marker_ids)."""
        return json.loads((self.folder / "task.json").read_text())

    @property
    def has_entities(self) -> bool:
        return (self.folder / "test_entities.npy").exists()

    def entity_positions(self, split: str) -> np.ndarray:
        """Positions [N, 2] of the head's and the tail's opening marker in `{split}_ids`, checked
        against the ids; DataError when the task has no entity markers or one is missing."""
        if not self.has_entities:
            raise DataError(f"{self.title} has no entity markers: entity pooling reads FewRel only; "
                            f"choose pooling 'mean' or 'cls' for it")
        return check_entity_positions(self.array(f"{split}_ids"),
                                      np.load(self.folder / f"{split}_entities.npy"),
                                      self.info["marker_ids"], f"{self.title} {split}")

    @property
    def label_names(self) -> list[str]:
        return self.info["label_names"]

    @property
    def title(self) -> str:
        return TASK_TITLES[self.name]


def task_params(recipe: TaskRecipe, name: str, data: PretrainingData) -> dict:
    """Exactly what determines a task artifact: data source, tokenizer, seq_len, seed, its knobs."""
    source = task_source(recipe)
    origin = (f"mirror:{mirror_fingerprint(name)}" if source == "mirror"
              else (FEWREL_HUB_ID if name == "few_rel" else DBPEDIA_HUB_ID))
    layout = {"rows": "entity-window"} if name == "few_rel" else {}
    return {"task": name, "source": origin, **layout,
            "tokenizer": data.tokenizer_key, "seq_len": recipe.seq_len, "seed": recipe.seed,
            **getattr(recipe, name).key()}


def per_label_counts(labels: np.ndarray, classes: int) -> list[int]:
    return np.bincount(labels, minlength=classes).tolist()


def write_fewrel_split(folder: Path, split: str, tokenizer, texts: list[str],
                       openers: list[tuple[int, int]], labels: np.ndarray, seq_len: int) -> dict:
    """Encode one FewRel split with its entity positions; save ids, entities, labels. Returns
    what task.json records of it: labels kept, rows cut, rows dropped, the first text kept."""
    rows = encode_marked_rows(tokenizer, texts, openers, seq_len)
    for name, array in (("ids", rows.ids), ("entities", rows.entities), ("labels", labels[rows.kept])):
        np.save(folder / f"{split}_{name}.npy", array)
    return {"labels": labels[rows.kept], "cut": rows.cut, "dropped": len(texts) - len(rows.kept),
            "first": texts[rows.kept[0]] if len(rows.kept) else ""}


def build_task(folder: Path, recipe: TaskRecipe, name: str, tokenizer) -> None:
    """Sample, mark (FewRel) and tokenise a task; write its arrays and task.json into `folder`."""
    source = task_source(recipe)
    if name == "few_rel":
        check_markers(tokenizer, recipe.few_rel.entity_markers)
        raw = raw_fewrel(recipe.few_rel, recipe.seed, source)
        train, test = (write_fewrel_split(folder, split, tokenizer, texts, openers, labels,
                                          recipe.seq_len)
                       for split, texts, openers, labels in (
                           ("train", raw.train_texts, raw.train_openers, raw.train_labels),
                           ("test", raw.test_texts, raw.test_openers, raw.test_labels)))
        extra = {"markers_too_far": train["dropped"] + test["dropped"],
                 "marker_ids": marker_ids(tokenizer, recipe.few_rel.entity_markers)}
    else:
        raw = raw_dbpedia(recipe.dbpedia_14, recipe.seed, source)
        train, test = {"labels": raw.train_labels}, {"labels": raw.test_labels, "first": raw.test_texts[0]}
        for split, texts, part in (("train", raw.train_texts, train), ("test", raw.test_texts, test)):
            ids, part["cut"] = encode_rows(tokenizer, texts, recipe.seq_len)
            np.save(folder / f"{split}_ids.npy", ids)
            np.save(folder / f"{split}_labels.npy", part["labels"])
        extra = {}
    classes = len(raw.label_names)
    info = {"label_names": raw.label_names, "source": source, "skipped_rows": raw.skipped_rows,
            "truncated": train["cut"] + test["cut"], "example": test["first"],
            "train_per_label": per_label_counts(train["labels"], classes),
            "test_per_label": per_label_counts(test["labels"], classes), **extra}
    (folder / "task.json").write_text(json.dumps(info))


def load_task(recipe: TaskRecipe, name: str, data: PretrainingData,
              store: Store | None = None) -> Task:
    """The task artifact of this recipe, built when missing."""
    store = store or Store()
    folder = store.get_or_build("task", task_params(recipe, check_task(name), data),
                                lambda f: build_task(f, recipe, name, data.tokenizer))
    return Task(name, folder)


def load_tasks(recipe: TaskRecipe, data: PretrainingData,
               store: Store | None = None) -> dict[str, Task]:
    """Both tasks, FewRel first."""
    return {name: load_task(recipe, name, data, store) for name in TASKS}
