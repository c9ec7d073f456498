"""Parameters of the book: the one source of truth for every knob and its defaults.

Every chapter's `parameters` cell is generated from `KNOBS` (see `aptutils.notebooks`), every
default lives in `PROFILES`, and `configure` validates a chapter's namespace before any work.
Used by every chapter.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from ..core.errors import ParameterError

PROFILE_NAMES = ("smoke", "cpu", "gpu", "paper")
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class Knob:
    """One parameter: its name, what it means, how to parse and check a value."""

    name: str
    doc: str
    parse: Callable[[str, Any], Any]
    groups: tuple[str, ...]


def _integer(low: int | None = None, high: int | None = None, optional: bool = False):
    def parse(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{name}={value!r}: must be an integer" + _range_text(low, high))
        if (low is not None and value < low) or (high is not None and value > high):
            raise ParameterError(f"{name}={value!r}: out of range, allowed" + _range_text(low, high))
        return value

    parse.type_hint = "int"
    return parse


def _real(low: float, high: float, low_open: bool = False):
    def parse(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{name}={value!r}: must be a number in [{low}, {high}]")
        if value > high or value < low or (low_open and value == low):
            bracket = "(" if low_open else "["
            raise ParameterError(f"{name}={value!r}: out of range, allowed {bracket}{low}, {high}]")
        return float(value)

    parse.type_hint = "float"
    return parse


def _choice(*allowed: Any, free_text: str | None = None):
    def parse(name: str, value: Any) -> Any:
        if value in allowed:
            return value
        if free_text and isinstance(value, str) and value:
            return value
        listed = ", ".join(repr(a) for a in allowed) + (f" or {free_text}" if free_text else "")
        raise ParameterError(f"{name}={value!r}: allowed values are {listed}")

    parse.type_hint = "str"
    return parse


def _integer_list(low: int):
    def parse(name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]  # papermill reads "-p ws_list 4000" as an integer
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        try:
            numbers = tuple(int(item) for item in items)
            exact = all(float(item) == int(item) for item in items)
        except (TypeError, ValueError):
            numbers, exact = (), False
        if not numbers or not exact or min(numbers) < low or list(numbers) != sorted(set(numbers)):
            raise ParameterError(
                f"{name}={value!r}: must be a non-empty, strictly increasing list of integers >= {low}, "
                f"e.g. '2000,4000,8000'"
            )
        return numbers

    parse.type_hint = "str"
    return parse


def _range_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return ""


_PRETRAIN = ("pretrain",)
_BLOCKS = ("blocks",)
_IMAGE = ("image",)
_FINETUNE = ("finetune",)
_CLUSTERS = ("clusters",)
KNOBS: tuple[Knob, ...] = (
    Knob("profile", "named set of defaults: smoke (tests), cpu (the published book), gpu, paper",
         _choice(*PROFILE_NAMES), ("all",)),
    Knob("corpus", "auto (mirror if APTBOOK_DATA is set, else gensim on smoke, hub elsewhere), "
         "mirror, hub or gensim", _choice("auto", "mirror", "hub", "gensim"), _PRETRAIN),
    Knob("max_articles", "use only the first N articles of the corpus (None: all)",
         _integer(1, optional=True), _PRETRAIN),
    Knob("sample_mode", "first: one sample per article, its first seq_len tokens (the paper); "
         "chunks: consecutive seq_len-token chunks", _choice("first", "chunks"), _PRETRAIN),
    Knob("seq_len", "tokens per sample, [CLS] and [SEP] included", _integer(8, 512), _PRETRAIN),
    Knob("ws_list", "pre-training set sizes W_S in samples, increasing; one model each",
         _integer_list(1), _PRETRAIN),
    Knob("test_samples", "size of the held-out set W_test in samples", _integer(1), _PRETRAIN),
    Knob("tokenizer", "wordpiece (trained on the corpus) or a hub id / local folder, "
         "e.g. bert-base-uncased", _choice("wordpiece", free_text="a hub id or folder"), _PRETRAIN),
    Knob("vocab_size", "vocabulary size of the wordpiece tokenizer", _integer(128, 250_000),
         _PRETRAIN),
    Knob("hidden_size", "transformer width", _integer(8, 8192), _PRETRAIN),
    Knob("num_layers", "transformer blocks", _integer(1, 48), _PRETRAIN),
    Knob("num_heads", "attention heads per block (must divide hidden_size)", _integer(1, 128),
         _PRETRAIN),
    Knob("ffn_size", "feed-forward width (None: 4 x hidden_size)", _integer(8, optional=True),
         _PRETRAIN),
    Knob("dropout", "dropout probability in the transformer", _real(0.0, 0.9), _PRETRAIN),
    Knob("mask_prob", "share of non-special tokens selected for the MLM loss", _real(0.0, 1.0, True),
         _PRETRAIN),
    Knob("batch_size", "training batch size per device in samples", _integer(1, 65_536), _PRETRAIN),
    Knob("learning_rate", "AdamW peak learning rate", _real(0.0, 1.0, True), _PRETRAIN),
    Knob("weight_decay", "AdamW weight decay", _real(0.0, 1.0), _PRETRAIN),
    Knob("epochs", "passes over W_S per model", _real(0.0, 10_000.0, True), _PRETRAIN),
    Knob("warmup_ratio", "share of the steps with linearly rising learning rate",
         _real(0.0, 1.0), _PRETRAIN),
    Knob("eval_every", "steps between held-out evaluations and checkpoints", _integer(1),
         _PRETRAIN),
    Knob("precision", "bf16 (autocast), fp16 (CUDA only) or fp32", _choice("bf16", "fp16", "fp32"),
         _PRETRAIN),
    Knob("device", "auto (CUDA if present), cpu or cuda", _choice("auto", "cpu", "cuda"), _PRETRAIN),
    Knob("seed", "seed of shuffling, masking, initialisation and training", _integer(0), ("all",)),
    Knob("protocol", "how a block predicts tokens in figures and verdicts: probe (fresh head "
         "trained on the frozen block) or lens (the trained MLM head)", _choice("probe", "lens"),
         _BLOCKS),
    Knob("analysis_ws", "W_S of the model read block by block (None: the largest in ws_list)",
         _integer(1, optional=True), _BLOCKS),
    Knob("probe_samples", "W_S samples whose modified positions train the probe heads",
         _integer(1), _BLOCKS),
    Knob("probe_epochs", "passes of each probe head over its cached features",
         _real(0.0, 1_000.0, True), _BLOCKS),
    Knob("probe_lr", "AdamW learning rate of the probe heads", _real(0.0, 1.0, True), _BLOCKS),
    Knob("probe_batch", "positions per probe training step", _integer(1, 1_000_000), _BLOCKS),
    Knob("probe_decoder", "tied: the probe's output weights are the frozen input embeddings, as "
         "BertForMaskedLM ties its head (transform and bias trained); untied: a fresh output "
         "layer, trained too", _choice("tied", "untied"), _BLOCKS),
    Knob("threshold", "strong match: normalised confusion M(i,j) at or above this joins i and j",
         _real(0.0, 1.0, True), _CLUSTERS),
    Knob("match", "one-way (either direction is enough) or mutual (both directions) strong matches",
         _choice("one-way", "mutual"), _CLUSTERS),
    Knob("figure_tokens", "frequent clustered tokens shown in the confusion-matrix figures",
         _integer(2, 500), _CLUSTERS),
    # clusters knobs (chapters 3-4) end
    Knob("few_rel_labels", "FewRel relations used, the first N in relation-id order (the paper 64)",
         _integer(2), _FINETUNE),
    Knob("few_rel_train", "FewRel training sentences per relation (clamped to what the relation "
         "holds after its test share)", _integer(1), _FINETUNE),
    Knob("few_rel_test", "FewRel test sentences per relation (clamped to half of what the "
         "relation holds)", _integer(1), _FINETUNE),
    Knob("entity_markers", "FewRel entity markers as plain text: punct (@ head @, # tail #) or "
         "brackets ([E1] head [/E1], [E2] tail [/E2])", _choice("punct", "brackets"), _FINETUNE),
    Knob("dbpedia_labels", "DBpedia-14 classes used, the first N in class order", _integer(2, 14),
         _FINETUNE),
    Knob("dbpedia_train", "DBpedia-14 training abstracts per class, from its train split (clamped)",
         _integer(1), _FINETUNE),
    Knob("dbpedia_test", "DBpedia-14 test abstracts per class, from its test split (clamped)",
         _integer(1), _FINETUNE),
    Knob("pooling", "sentence vector of a block: mean (over the non-pad tokens) or cls (the [CLS] "
         "position)", _choice("mean", "cls"), _FINETUNE),
    Knob("finetune_protocols", "frozen (trunk frozen, a linear head per block on cached features) "
         "or frozen,full (also fine-tune the truncated model end to end)",
         _choice("frozen", "frozen,full"), _FINETUNE),
    Knob("finetune_full_blocks", "blocks whose truncated model is fine-tuned end to end when "
         "finetune_protocols has full, e.g. '0,6'", _integer_list(0), _FINETUNE),
    Knob("head_steps", "L-BFGS iterations of the frozen-trunk linear heads", _integer(1, 100_000),
         _FINETUNE),
    Knob("head_l2", "L2 penalty on the weights of the frozen-trunk linear heads (features "
         "standardised)", _real(0.0, 100.0), _FINETUNE),
    Knob("finetune_epochs", "passes over the training set in full fine-tuning",
         _real(0.0, 10_000.0, True), _FINETUNE),
    Knob("finetune_lr", "AdamW peak learning rate of full fine-tuning", _real(0.0, 1.0, True),
         _FINETUNE),
    Knob("finetune_batch", "batch size of full fine-tuning in samples", _integer(1, 65_536),
         _FINETUNE),
    Knob("confidence_bins", "equal-count bins of mean input APT in the binned confidence curves",
         _integer(2, 100), _FINETUNE),
    Knob("confidence_bound", "C9 holds where the 95% CI of Spearman rho between confidence and "
         "mean input APT lies within plus or minus this bound", _real(0.0, 1.0), _FINETUNE),
    # fine-tuning knobs (chapters 5-6) end
    Knob("image_data", "auto (digits on smoke, cifar10 elsewhere), cifar10 (the mirror if "
         "APTBOOK_DATA is set, else the hub) or digits (scikit-learn 8x8 greys)",
         _choice("auto", "cifar10", "digits"), _IMAGE),
    Knob("cnn_depth", "conv layers of the VGG-style CNN (a 2x2 max-pool after every second one)",
         _integer(1, 16), _IMAGE),
    Knob("cnn_width", "channels of the first conv layer, doubled every two layers up to 8 times",
         _integer(1, 1024), _IMAGE),
    Knob("cnn_epochs", "passes of CNN training over its training images", _real(0.0, 1_000.0, True),
         _IMAGE),
    Knob("cnn_lr", "AdamW peak learning rate of the CNN", _real(0.0, 1.0, True), _IMAGE),
    Knob("cnn_batch", "images per CNN training step", _integer(1, 65_536), _IMAGE),
    Knob("image_train_samples", "training images of the CNN and of the new output layers "
         "(None: all)", _integer(1, optional=True), _IMAGE),
    Knob("head_epochs", "passes of each new output layer over its layer's cached features",
         _real(0.0, 1_000.0, True), _IMAGE),
    Knob("feature_grid", "side of the max-pooled grid each filter's map is cut to before the new "
         "output layer (1: one value per filter)", _integer(1, 8), _IMAGE),
    Knob("filter_threshold", "a single filter recognises label i when its mean field for i on "
         "images of i reaches this share of its largest mean field", _real(0.0, 1.0, True), _IMAGE),
    # image knobs (chapter 7) end
)


KNOB_BY_NAME = {knob.name: knob for knob in KNOBS}
_PAPER = dict(
    corpus="auto", max_articles=None, sample_mode="first", seq_len=128,
    ws_list=(20_000, 40_000, 90_000), test_samples=5_000, tokenizer="bert-base-uncased",
    vocab_size=30_522, hidden_size=768, num_layers=6, num_heads=12, ffn_size=3072, dropout=0.1,
    mask_prob=0.15, batch_size=32, learning_rate=5e-5, weight_decay=0.01, epochs=50.0,
    warmup_ratio=0.02, eval_every=5_000, precision="bf16", device="auto", seed=42,
    protocol="probe", analysis_ws=None, probe_samples=20_000, probe_epochs=2.0, probe_lr=1e-3,
    probe_batch=256, probe_decoder="tied", threshold=0.5, match="one-way", figure_tokens=48,
)


PROFILES: dict[str, dict[str, Any]] = {
    "paper": _PAPER,
    "gpu": {**_PAPER, "tokenizer": "wordpiece", "sample_mode": "chunks",
            "ws_list": (4_000, 8_000, 16_000), "test_samples": 1_000, "batch_size": 64,
            "learning_rate": 5e-4, "epochs": 40.0, "warmup_ratio": 0.05, "eval_every": 1_000},
    # cpu: the widest BERT-6 whose W_S series pre-trains in <= 15 min on 2 cores. Dropout 0: at
    # this budget the model underfits. Held-out accuracy at W_S 16,000 without dropout: 13.3%
    # after 3.5 epochs, 14.6% after 5 (the series: 43 + 160 + 674 s), 15.0% after 5.5 (a series
    # over 15 min).
    "cpu": {**_PAPER, "tokenizer": "wordpiece", "vocab_size": 8_192, "sample_mode": "chunks",
            "ws_list": (1_000, 4_000, 16_000), "test_samples": 1_000, "hidden_size": 128,
            "num_heads": 2, "ffn_size": None, "dropout": 0.0, "batch_size": 32,
            "learning_rate": 1e-3, "epochs": 5.0, "warmup_ratio": 0.05, "eval_every": 250,
            "probe_samples": 8_000},
    "smoke": {**_PAPER, "corpus": "auto", "max_articles": 200, "tokenizer": "wordpiece",
              "vocab_size": 600, "sample_mode": "chunks", "seq_len": 32, "ws_list": (64, 128),
              "test_samples": 32, "hidden_size": 16, "num_layers": 2, "num_heads": 2,
              "ffn_size": None, "batch_size": 16, "learning_rate": 1e-3, "epochs": 2.0,
              "warmup_ratio": 0.0, "eval_every": 4, "precision": "fp32", "device": "cpu",
              "probe_samples": 64, "probe_epochs": 1.0, "probe_batch": 64},
}


# Defaults of the later chapters' knobs, one dict per group: {profile: {knob: value}}.
GROUP_DEFAULTS: list[dict[str, dict[str, Any]]] = [
    {  # fine-tuning (chapters 5-6)
        "paper": dict(few_rel_labels=64, few_rel_train=630, few_rel_test=70, entity_markers="punct",
                      dbpedia_labels=14, dbpedia_train=100, dbpedia_test=100, pooling="cls",
                      finetune_protocols="frozen,full", finetune_full_blocks=(0, 1, 2, 3, 4, 5, 6),
                      head_steps=100, head_l2=1e-3, finetune_epochs=50.0, finetune_lr=5e-5,
                      finetune_batch=32, confidence_bins=10, confidence_bound=0.2),
        "gpu": dict(few_rel_labels=64, few_rel_train=630, few_rel_test=70, entity_markers="punct",
                    dbpedia_labels=14, dbpedia_train=100, dbpedia_test=100, pooling="mean",
                    finetune_protocols="frozen,full", finetune_full_blocks=(0, 1, 2, 3, 4, 5, 6),
                    head_steps=100, head_l2=1e-3, finetune_epochs=10.0, finetune_lr=5e-5,
                    finetune_batch=32, confidence_bins=10, confidence_bound=0.2),
        "cpu": dict(few_rel_labels=64, few_rel_train=630, few_rel_test=70, entity_markers="punct",
                    dbpedia_labels=14, dbpedia_train=100, dbpedia_test=100, pooling="mean",
                    finetune_protocols="frozen", finetune_full_blocks=(0, 6), head_steps=100,
                    head_l2=1e-3, finetune_epochs=3.0, finetune_lr=1e-3, finetune_batch=32,
                    confidence_bins=10, confidence_bound=0.2),
        "smoke": dict(few_rel_labels=4, few_rel_train=8, few_rel_test=4, entity_markers="punct",
                      dbpedia_labels=4, dbpedia_train=8, dbpedia_test=4, pooling="mean",
                      finetune_protocols="frozen", finetune_full_blocks=(0, 2), head_steps=30,
                      head_l2=1e-3, finetune_epochs=1.0, finetune_lr=1e-3, finetune_batch=8,
                      confidence_bins=3, confidence_bound=0.2),
    },
    {  # image knobs (chapter 7); cpu sizes measured to fit the 8-minute chapter budget
        "paper": dict(image_data="auto", cnn_depth=13, cnn_width=64, cnn_epochs=100.0,
                      cnn_lr=1e-3, cnn_batch=128, image_train_samples=None, head_epochs=20.0,
                      feature_grid=2, filter_threshold=0.3),
        "gpu": dict(image_data="auto", cnn_depth=10, cnn_width=64, cnn_epochs=30.0, cnn_lr=2e-3,
                    cnn_batch=128, image_train_samples=None, head_epochs=20.0, feature_grid=2,
                    filter_threshold=0.3),
        "cpu": dict(image_data="auto", cnn_depth=8, cnn_width=16, cnn_epochs=8.0, cnn_lr=3e-3,
                    cnn_batch=128, image_train_samples=None, head_epochs=10.0, feature_grid=2,
                    filter_threshold=0.3),
        "smoke": dict(image_data="auto", cnn_depth=3, cnn_width=8, cnn_epochs=2.0, cnn_lr=3e-3,
                      cnn_batch=64, image_train_samples=None, head_epochs=5.0, feature_grid=2,
                      filter_threshold=0.3),
    },
    # group defaults end
]


for _group in GROUP_DEFAULTS:
    for _profile, _values in _group.items():
        PROFILES[_profile].update(_values)


@dataclass(frozen=True)
class Settings:
    """Validated values of every knob, for one run of one chapter."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def subset(self, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """The values of `names`, e.g. to key an artifact by exactly what determines it."""
        return {name: self.values[name] for name in names}

    def table(self):
        """The values as a one-column DataFrame, for display."""
        import pandas as pd

        shown = {name: ", ".join(map(str, v)) if isinstance(v, tuple) else v
                 for name, v in self.values.items()}
        return pd.DataFrame({"value": pd.Series(shown, dtype=object)})

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some knobs changed (validated like the rest)."""
        return resolve({**self.values, **changes})


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def configure(namespace: dict[str, Any]) -> Settings:
    """Validate a chapter's globals (parameters cell + papermill's injected cell) into Settings.

    Unknown names (a misspelt `-p`) stop here with the closest known name.
    """
    chosen = {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES
        and not isinstance(value, ModuleType) and not callable(value)
    }
    return resolve(chosen)


def resolve(chosen: dict[str, Any]) -> Settings:
    """Profile defaults overlaid by the non-None values in `chosen`, every value checked."""
    unknown = sorted(set(chosen) - set(KNOB_BY_NAME))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, KNOB_BY_NAME, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParameterError(f"unknown parameter {name!r}: {hint}known: {', '.join(KNOB_BY_NAME)}")
    profile = KNOB_BY_NAME["profile"].parse("profile", chosen.get("profile") or DEFAULT_PROFILE)
    values: dict[str, Any] = {"profile": profile, **PROFILES[profile]}
    for name, value in chosen.items():
        if value is not None and name != "profile":
            values[name] = value
    for knob in KNOBS:
        if knob.name != "profile" and values[knob.name] is not None:
            values[knob.name] = knob.parse(knob.name, values[knob.name])
    _check_together(values)
    return Settings(values)


def _check_together(values: dict[str, Any]) -> None:
    if values["hidden_size"] % values["num_heads"]:
        raise ParameterError(
            f"num_heads={values['num_heads']!r}: must divide hidden_size={values['hidden_size']}"
        )
    if values["corpus"] == "mirror" and not os.environ.get("APTBOOK_DATA"):
        raise ParameterError(
            "corpus='mirror': set APTBOOK_DATA to the mirror root (e.g. ../shared/data) "
            "or choose corpus='hub' or 'gensim'"
        )
