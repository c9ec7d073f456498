"""The knobs of the book: each parameter's name, meaning and check, in the order chapters list them.

Every chapter's `parameters` cell is generated from `KNOBS` (see `aptutils.notebooks`); the
defaults are in `aptutils/core/profiles.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import ParameterError
from .kinds import KINDS, reading_kinds

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


def _optional_text():
    def parse(name: str, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip()):
            return value if value is None else value.strip()
        raise ParameterError(f"{name}={value!r}: allowed values are None or a non-empty text")

    parse.type_hint = "str"
    return parse


def _flag():
    def parse(name: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(f"{name}={value!r}: allowed values are True, False")

    parse.type_hint = "bool"
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


def _kinds():
    """A reading of modified positions: "all" or kinds among masked, replaced, unchanged
    (comma-separated) -> the kinds in row order, as `core.kinds.reading_kinds` parses them."""

    def parse(name: str, value: Any) -> tuple[str, ...]:
        try:
            return reading_kinds(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}={value!r}: must be 'all' or kinds among "
                                 f"{', '.join(KINDS)}, comma-separated, e.g. 'masked,replaced'") from None

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
    Knob("pretrain", "published: read the committed pre-trained models of book/models when their "
         "recipe matches these settings (checked by sha256), else train; train: always use or "
         "train models in the artifact store", _choice("published", "train"), _PRETRAIN),
    Knob("model", "None: the book's own pre-trained W_S series; else a local Hugging Face BERT "
         "checkpoint folder (or a hub id where there is network) read in chapters 2-6 with its "
         "own tokenizer and architecture", _optional_text(), ("blocks", "finetune")),
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
    Knob("equal_steps", "also pre-train and read the W_S series at equal steps: every W_S for "
         "as many steps as the largest W_S takes at `epochs`, with the same schedule (the control "
         "that tells more data from more steps)", _flag(), _PRETRAIN),
    Knob("warmup_ratio", "share of the steps with linearly rising learning rate",
         _real(0.0, 1.0), _PRETRAIN),
    Knob("eval_every", "steps between held-out evaluations and checkpoints", _integer(1),
         _PRETRAIN),
    Knob("precision", "bf16 (autocast), fp16 (CUDA only) or fp32", _choice("bf16", "fp16", "fp32"),
         _PRETRAIN),
    Knob("device", "auto (CUDA if present), cpu or cuda", _choice("auto", "cpu", "cuda"), _PRETRAIN),
    Knob("torch_compile", "torch.compile the pre-training model (the Trainer's torch_compile) and "
         "the readers' heads: faster on a GPU after a minute or so of compiling; off on the CPU",
         _flag(), _PRETRAIN),
    Knob("seed", "seed of shuffling, masking, initialisation and training", _integer(0), ("all",)),
    Knob("protocol", "how a block predicts tokens in figures and verdicts: probe (fresh head "
         "trained on the frozen block), lens (the trained MLM head) or tuned-lens (an affine map "
         "per block into the last block, then the trained MLM head)",
         _choice("probe", "lens", "tuned-lens"), _BLOCKS),
    Knob("analysis_ws", "W_S of the model read block by block (None: the largest in ws_list)",
         _integer(1, optional=True), _BLOCKS),
    Knob("probe_samples", "W_S samples whose modified positions train the probe heads and the "
         "tuned lens (the positions of 5% of them held out to decide when training stops)",
         _integer(1), _BLOCKS),
    Knob("probe_max_epochs", "most passes of a probe head over its training positions (the "
         "learning rate decays to 0 there); a head stops earlier when its held-out loss stops "
         "falling", _real(0.0, 1_000.0, True), _BLOCKS),
    Knob("probe_lr", "AdamW peak learning rate of the probe heads", _real(0.0, 1.0, True), _BLOCKS),
    Knob("probe_batch", "positions per training step of the probe heads and the tuned lens",
         _integer(1, 1_000_000), _BLOCKS),
    Knob("probe_eval_every", "training steps between held-out evaluations of the probe heads and "
         "the tuned lens", _integer(1), _BLOCKS),
    Knob("probe_patience", "held-out evaluations in a row without a new lowest loss after which a "
         "probe head (or tuned-lens map) stops and keeps its best state", _integer(1), _BLOCKS),
    Knob("probe_decoder", "tied: the probe's output weights are the frozen input embeddings, as "
         "BertForMaskedLM ties its head (transform and bias trained); untied: a fresh output "
         "layer, trained too", _choice("tied", "untied"), _BLOCKS),
    Knob("probe_softmax", "the probe's training objective: full (softmax over the vocabulary), "
         "sampled (the true token and probe_candidates tokens drawn per step from W_S's label "
         "frequencies, log-Q corrected), or auto (sampled above 16,384 tokens, e.g. a 30,522-token "
         "BERT; full for the book's 8,192); read with the full-vocabulary argmax either way",
         _choice("auto", "full", "sampled"), _BLOCKS),
    Knob("probe_candidates", "tokens drawn per training step by the probe's sampled softmax",
         _integer(1, 10_000_000), _BLOCKS),
    Knob("tuned_lens_max_epochs", "most passes of the tuned lens over its training positions (the "
         "W_S positions of the probe; the learning rate decays to 0 there)",
         _real(0.0, 1_000.0, True), _BLOCKS),
    Knob("tuned_lens_lr", "AdamW peak learning rate of the tuned lens's affine maps",
         _real(0.0, 1.0, True), _BLOCKS),
    Knob("kinds", "the reading: which modified W_test positions feed chapter 2's APT tables and "
         "verdicts and chapters 3-4's confusion matrices: masked (the input is [MASK]), all, or "
         "kinds among masked, replaced, unchanged, e.g. 'masked,replaced'", _kinds(), _BLOCKS),
    Knob("test_maskings", "seeded maskings of the W_test samples pooled in the block counts (the "
         "first is the stored one pre-training evaluates on)", _integer(1, 100), _BLOCKS),
    Knob("test_extension", "samples added to W_test in the block counts and baselines: whole "
         "articles of the training pool none of whose samples any model or reader trains on, "
         "masked with their own seeds (0: W_test alone)", _integer(0), _BLOCKS),
    Knob("token_min_occurrences", "a token's APT enters chapter 2's <APT>, per-token figures and "
         "C1-C4 only when the token has at least this many modified W_test positions of the "
         "reading (all maskings pooled)", _integer(1), _BLOCKS),
    Knob("threshold", "strong match of the single-threshold reading and chapter 4's cluster lists: "
         "normalised confusion M(i,j) at or above this joins i and j (the verdicts scan 0.2-0.8)",
         _real(0.0, 1.0, True), _CLUSTERS),
    Knob("match", "one-way (either direction is enough) or mutual (both directions) strong matches",
         _choice("one-way", "mutual"), _CLUSTERS),
    Knob("min_row_count", "noise filter: a token (or label) is kept only when it occurs at least "
         "this many times as a modified token (or test image)", _integer(1), _CLUSTERS),
    Knob("null_repeats", "shuffled or permuted copies that make the null of each cluster verdict "
         "(C5, C6, C10, C11); a statistic beats its null above the copies' 95th percentile",
         _integer(1, 10_000), _CLUSTERS),
    Knob("power_plants", "planted copies per strength that measure each structural verdict's power "
         "(C5, C6, C10, C11): the share of them in which the rule finds the planted structure",
         _integer(1, 10_000), _CLUSTERS),
    Knob("figure_tokens", "most-confused frequent tokens shown in the confusion-matrix figures",
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
    Knob("pooling", "DBpedia-14's read-out of a block: mean (over the non-pad tokens) or cls (the "
         "[CLS] position)", _choice("mean", "cls"), _FINETUNE),
    Knob("fewrel_pooling", "FewRel's read-out of a block: entity (the states at the head's and the "
         "tail's opening marker, concatenated), mean or cls", _choice("entity", "mean", "cls"),
         _FINETUNE),
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
    Knob("apt_min_reliability", "C9 is not measured where the split-half reliability "
         "(Spearman-Brown) of the inputs' mean APT is below this", _real(0.0, 1.0, True), _FINETUNE),
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
