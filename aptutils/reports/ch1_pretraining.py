"""Chapter 1, pre-training: the corpus, masking on a real sentence, where the models come from,
their readings on W_test beside the trivial rules (the model records), paper vs this run."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.baselines import RULES, rule_counts, unigram_loss
from ..core.counts import TokenCounts, token_counts
from ..core.device import resolved_device
from ..core.params import PROFILES, Settings
from ..core.verdicts import MODELS_MIME
from ..data.corpus import Samples, resolved_corpus
from ..data.masking import KIND_NAMES, mask_tokens, special_token_ids
from ..data.pretraining import PretrainingData
from ..training.evaluation import heldout_counts
from ..training.pretrain import PretrainedModel, readout_model
from ..training.published import PUBLISHED_DIR

PLATEAU_MULTIPLE = 2.0  # off the plateau: masked accuracy at least this multiple of the unigram rule's

SOURCE_NOTES = {
    "mirror": "offline mirror: a Wikipedia sample (~1/2000 of English Wikipedia)",
    "gensim": "the enwiki excerpt shipped inside the gensim wheel (~100 articles)",
    "hub": "wikimedia/wikipedia 20231101.en from the Hugging Face hub",
}


EXAMPLE_SENTENCE = ("Anarchism is a political philosophy and movement that is skeptical of all "
                    "justifications for authority and seeks to abolish the institutions it claims "
                    "maintain unnecessary coercion and hierarchy.")


def corpus_table(settings: Settings, data: PretrainingData) -> pd.DataFrame:
    """Where the text came from and how much of it each split holds."""
    stats = data.samples.stats
    source = resolved_corpus(settings)
    rows = [
        ("source", SOURCE_NOTES[source]),
        ("articles (pre-training pool / W_test)",
         f"{stats['train_articles']:,} / {stats['test_articles']:,}"),
        ("tokens in the corpus", f"{stats['corpus_tokens']:,}"),
        ("sample rule", f"{settings.sample_mode}: "
         + ("each article's first" if settings.sample_mode == "first" else "consecutive")
         + f" {settings.seq_len}-token samples"),
        ("samples (pool / W_test)", f"{stats['train_samples']:,} / {stats['test_samples']:,}"),
        ("W_S series", ", ".join(f"{ws:,}" for ws in settings.ws_list)),
    ]
    return pd.DataFrame(rows, columns=["", "this run"]).set_index("")


def tokenizer_sentence(settings: Settings, tokenizer) -> str:
    """One Markdown paragraph: which tokenizer, its vocabulary, and a sentence cut into tokens."""
    origin = (f"a WordPiece vocabulary trained on this corpus (`vocab_size={settings.vocab_size:,}`)"
              if settings.tokenizer == "wordpiece" else f"`{settings.tokenizer}`")
    pieces = " · ".join(f"`{t}`" for t in tokenizer.tokenize(EXAMPLE_SENTENCE))
    return (f"The tokenizer is {origin}: {len(tokenizer):,} tokens in all, special tokens included. "
            f"The paper uses `bert-base-uncased` (30,522 tokens). A sentence from Wikipedia in "
            f"this tokenizer's pieces:\n\n{pieces}")


def masking_example(tokenizer, text: str, mask_prob: float, seed: int) -> pd.DataFrame:
    """One sentence through the masker: each token, what the model sees, and its kind."""
    ids = np.array([tokenizer(text)["input_ids"]])
    inputs, labels, kinds = mask_tokens(ids, special_token_ids(tokenizer), tokenizer.mask_token_id,
                                        len(tokenizer), mask_prob, seed=seed)
    return pd.DataFrame({
        "token": tokenizer.convert_ids_to_tokens(ids[0].tolist()),
        "model input": tokenizer.convert_ids_to_tokens(inputs[0].tolist()),
        "kind": [KIND_NAMES.get(int(k), "") for k in kinds[0]],
    }).T


def masking_split_table(samples: Samples, tokenizer, mask_prob: float) -> pd.DataFrame:
    """Measured shares of the fixed W_test mask against the rule (selected, 80/10/10)."""
    ids, kinds = np.asarray(samples.array("test_ids")), np.asarray(samples.array("test_kinds"))
    eligible = ~np.isin(ids, special_token_ids(tokenizer))
    selected = kinds > 0
    rows = [("selected among non-special tokens", mask_prob, selected.sum() / eligible.sum(),
             int(selected.sum()))]
    for code, name in KIND_NAMES.items():
        share = {"masked": 0.8, "replaced": 0.1, "unchanged": 0.1}[name]
        rows.append((f"{name} among selected", share, (kinds == code).sum() / selected.sum(),
                     int((kinds == code).sum())))
    return pd.DataFrame(rows, columns=["share", "rule", "measured", "positions"]).set_index("share")


def model_cards(series: dict[int, PretrainedModel]) -> pd.DataFrame:
    """One row per W_S: size, steps, tokens, time, device and the final held-out loss."""
    rows = []
    for ws, model in sorted(series.items()):
        card = model.card
        rows.append({
            "W_S (samples)": ws, "parameters": card["parameters"], "steps": card["steps"],
            "tokens seen": card["tokens_seen"], "wall time (s)": round(card["wall_seconds"]),
            "tokens/s": round(card["tokens_seen"] / card["wall_seconds"]),
            "device": f"{card['device']} x{card['processes']}",
            "held-out loss (nats)": card["heldout_loss"],
        })
    return pd.DataFrame(rows).set_index("W_S (samples)")


def paper_vs_run_table(settings: Settings, tokenizer) -> pd.DataFrame:
    """The paper's pre-training choices beside this run's, knob by knob."""
    paper = PROFILES["paper"]
    names = {
        "tokenizer": "tokenizer", "vocab_size": "vocabulary", "hidden_size": "width",
        "num_layers": "blocks", "num_heads": "heads", "seq_len": "sequence length",
        "sample_mode": "samples per article", "ws_list": "W_S (samples)",
        "dropout": "dropout", "batch_size": "batch", "learning_rate": "learning rate",
        "warmup_ratio": "warm-up share of steps", "weight_decay": "weight decay",
        "epochs": "epochs", "precision": "precision",
    }
    rows = []
    for knob, label in names.items():
        ours = len(tokenizer) if knob == "vocab_size" else settings.values[knob]
        rows.append((label, _shown(paper[knob]), _shown(ours)))
    return pd.DataFrame(rows, columns=["", "paper", "this run"]).set_index("")


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ", ".join(f"{v:,}" for v in value)
    if isinstance(value, float) and value < 0.01:
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def kind_figures(counts: TokenCounts) -> dict[str, float]:
    """Accuracy and <APT> on masked positions and on all modified ones, accuracy per other kind."""
    return {"masked_accuracy": counts.kind_accuracy("masked"),
            "masked_mean_apt": counts.mean_apt("masked"),
            "replaced_accuracy": counts.kind_accuracy("replaced"),
            "unchanged_accuracy": counts.kind_accuracy("unchanged"),
            "all_accuracy": counts.accuracy, "all_mean_apt": counts.mean_apt()}


FIGURE_NAMES = {"masked_accuracy": "masked: accuracy", "masked_mean_apt": "masked: ⟨APT⟩",
                "replaced_accuracy": "replaced: accuracy", "unchanged_accuracy": "unchanged: accuracy",
                "all_accuracy": "all modified: accuracy", "all_mean_apt": "all modified: ⟨APT⟩"}


@dataclass(frozen=True)
class ModelRecords:
    """One record per model of the W_S series: its steps and readings on W_test through its own
    head, beside the trivial rules (frequencies of its own W_S) and the untrained model. Shown as a
    table; carried as JSON under MODELS_MIME for the verdicts page, the tests and readers' tools."""

    records: tuple[dict, ...]

    @property
    def table(self) -> pd.DataFrame:
        """Rows: each model, then the rules and the untrained model at the largest W_S."""
        largest = self.records[-1]
        rows = {f"model, W_S = {r['ws']:,}": {k: r[k] for k in FIGURE_NAMES} for r in self.records}
        rows |= {f"{rule} (W_S = {largest['ws']:,})": figures
                 for rule, figures in largest["baselines"].items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename(columns=FIGURE_NAMES)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        table = self.table
        return {"text/html": table.to_html(float_format="{:.3f}".format, escape=True),
                "text/plain": table.to_string(float_format="{:.3f}".format),
                MODELS_MIME: json.dumps(list(self.records))}


def model_records(settings: Settings, series: dict[int, PretrainedModel],
                  data: PretrainingData) -> ModelRecords:
    """Read every model of the series on W_test (its own head), and the baselines beside it."""
    samples, tokenizer = data.samples, data.tokenizer
    test = tuple(np.asarray(samples.array(n)) for n in ("test_inputs", "test_labels", "test_kinds"))
    device = resolved_device(settings)
    untrained, _ = readout_model(settings, max(series), False, data, None)
    untrained_figures = kind_figures(heldout_counts(untrained.to(device), *test, device=device,
                                                    precision=settings.precision))
    records = []
    for ws, model in sorted(series.items()):
        counts = heldout_counts(model.load().to(device), *test, device=device,
                                precision=settings.precision)
        frequency = token_counts(samples.train_slice(ws), len(tokenizer), special_token_ids(tokenizer))
        rules = rule_counts(*test, frequency, tokenizer.mask_token_id)
        card = model.card
        records.append({
            "ws": ws, "steps": card["steps"], "tokens_seen": card["tokens_seen"],
            "heldout_loss": counts.loss, **kind_figures(counts),
            "unigram_loss": unigram_loss(test[1], frequency),
            "baselines": {**{rule: kind_figures(rules[rule]) for rule in RULES},
                          "untrained model": untrained_figures},
        })
    return ModelRecords(tuple(records))


def plateau_lines(records: ModelRecords) -> dict[str, float]:
    """The trivial rules of the largest W_S as the plateau figure's dashed lines."""
    largest = records.records[-1]
    return {"unigram loss": largest["unigram_loss"],
            "most frequent token (masked)": largest["baselines"]["most frequent token"]["masked_accuracy"],
            "copy, else most frequent (all)":
                largest["baselines"]["copy, else most frequent"]["all_accuracy"]}


def plateau_sentence(records: ModelRecords) -> str:
    """Whether the largest model has left the unigram plateau, with the figures that say so."""
    largest = records.records[-1]
    unigram = largest["baselines"]["most frequent token"]["masked_accuracy"]
    combined = largest["baselines"]["copy, else most frequent"]["all_accuracy"]
    multiple = largest["masked_accuracy"] / unigram if unigram > 0 else float("inf")
    left = multiple >= PLATEAU_MULTIPLE
    return (f"On the masked positions of W_test the largest model (W_S = {largest['ws']:,}) predicts "
            f"{largest['masked_accuracy']:.1%} of the tokens, {multiple:.1f}x the "
            f"{unigram:.1%} of always answering the most frequent token; its masked ⟨APT⟩ is "
            f"{largest['masked_mean_apt']:.3f}. Over all modified positions it scores "
            f"{largest['all_accuracy']:.1%} against {combined:.1%} for copying the input where it "
            f"is not [MASK]. " + (
                f"**It has left the unigram plateau** (masked accuracy at least "
                f"{PLATEAU_MULTIPLE:g}x the unigram rule's)." if left else
                f"**It has not left the unigram plateau** (masked accuracy under "
                f"{PLATEAU_MULTIPLE:g}x the unigram rule's): what it learned is mostly token "
                f"frequencies and copying its input, and the later chapters read it as such."))


def provenance_sentence(series: dict[int, PretrainedModel]) -> str:
    """Where the models come from: published with the book (command, machine, date, sha256) or
    trained into this run's store."""
    published = {ws: m for ws, m in series.items() if m.folder.parent == PUBLISHED_DIR}
    if not published:
        return ("The models were trained in this run (or read back from its artifact store); no "
                "published model matches these settings.")
    card = published[max(published)].card
    minutes = sum(m.card["wall_seconds"] for m in published.values()) / 60
    hashes = ", ".join(f"W_S {ws:,}: `{m.card['sha256'][:12]}`" for ws, m in sorted(published.items()))
    return (f"The models are the ones published with the book (`book/models/`), read after "
            f"checking their sha256 ({hashes}). They were trained by `{card['command']}` on "
            f"{card['device']} ({card['machine']}) in {minutes:.0f} minutes in all, published "
            f"{card['published']} at commit `{card['commit'][:10]}`. To re-train them from "
            f"scratch, run that command with an empty artifact store (the same time again on the "
            f"same machine); `-p pretrain train` makes any chapter use the store instead.")


def series_design_sentence(series: dict[int, PretrainedModel], settings: Settings) -> str:
    """What the W_S series measures: the same epochs for every W_S, so more data is more steps."""
    steps = " / ".join(f"{m.card['steps']:,}" for _, m in sorted(series.items()))
    return (f"Every model trains for the same {settings.epochs:g} epochs over its own W_S, as in "
            f"the paper, so a larger W_S also means more steps ({steps}): the series varies data "
            f"and compute together, and chapter 2's C2 cannot tell which of the two drives a rise. "
            f"The control at equal steps (every W_S trained for the largest model's steps) was not "
            f"run at this budget.")
