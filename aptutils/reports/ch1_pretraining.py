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
from ..data.corpus import CorpusRecipe, Samples, resolved_corpus
from ..data.masking import KIND_NAMES, mask_tokens, special_token_ids
from ..data.pretraining import PretrainingData
from ..training.equal_steps import SERIES_NAMES
from ..training.evaluation import heldout_counts
from ..training.pretrain import PretrainedModel
from ..training.published import PUBLISHED_DIR
from ..training.subject import SubjectRecipe, load_subject

PLATEAU_MULTIPLE = 2.0  # off the plateau: masked accuracy at least this multiple of the unigram rule's
OWN_SAMPLES = 1_000  # memorisation: the first samples of W_S (in every W_S of the nested series)

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
    source = resolved_corpus(settings.recipe(CorpusRecipe))
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


def model_cards(series: dict[int, PretrainedModel],
                steps_series: dict[int, PretrainedModel] | None = None) -> pd.DataFrame:
    """One row per model (series, W_S): size, steps, tokens, time, device and the final held-out
    loss; the largest W_S, the same model in both series, is listed once."""
    rows = []
    for name, models in _named(series, steps_series).items():
        for ws, model in sorted(models.items()):
            card = model.card
            rows.append({
                "series": name, "W_S (samples)": ws, "parameters": card["parameters"],
                "steps": card["steps"], "tokens seen": card["tokens_seen"],
                "resumed at step": card.get("resumed_from_step", 0),
                "wall time (s)": round(card["wall_seconds"]),  # of the steps after the resumption
                "tokens/s": round(resumed_share(card) * card["tokens_seen"] / card["wall_seconds"]),
                "device": f"{card['device']} x{card['processes']}",
                "held-out loss (nats)": card["heldout_loss"],
            })
    return pd.DataFrame(rows).set_index(["series", "W_S (samples)"])


def resumed_share(card: dict) -> float:
    """The share of a model's steps trained in the run its card's wall time measures (a run
    resumed from a checkpoint times only the steps after it)."""
    return 1 - card.get("resumed_from_step", 0) / card["steps"]


def _named(series: dict[int, PretrainedModel],
           steps_series: dict[int, PretrainedModel] | None) -> dict[str, dict[int, PretrainedModel]]:
    """{"equal epochs": series, "equal steps": its models not in `series`} (the latter when run)."""
    control = {ws: m for ws, m in (steps_series or {}).items()
               if ws not in series or m.folder != series[ws].folder}
    return {SERIES_NAMES["epochs"]: series} | ({SERIES_NAMES["steps"]: control} if control else {})


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


OWN_NAME = "own samples: masked accuracy"


@dataclass(frozen=True)
class ModelRecords:
    """One record per pre-trained model (the equal-epochs series, then the models the equal-steps
    series adds): its series, steps and readings on W_test through its own head, its masked
    accuracy on its own training samples, beside the trivial rules (frequencies of its own W_S)
    and the untrained model. Shown as a table; carried as JSON under MODELS_MIME for the verdicts
    page, the tests and readers' tools."""

    records: tuple[dict, ...]

    @property
    def largest(self) -> dict:
        """The record of the largest W_S of the equal-epochs series (the paper's protocol)."""
        first = [r for r in self.records if r["series"] == self.records[0]["series"]]
        return max(first, key=lambda r: r["ws"])

    @property
    def table(self) -> pd.DataFrame:
        """Rows: each model, then the rules and the untrained model at the largest W_S."""
        largest = self.largest
        several = len({r["series"] for r in self.records}) > 1
        rows = {record_name(r, several): {**{k: r[k] for k in FIGURE_NAMES},
                                          "own_masked_accuracy": r["own_masked_accuracy"]}
                for r in self.records}
        rows |= {f"{rule} (W_S = {largest['ws']:,})": figures
                 for rule, figures in largest["baselines"].items()}
        return (pd.DataFrame.from_dict(rows, orient="index")
                .rename(columns=FIGURE_NAMES | {"own_masked_accuracy": OWN_NAME}))

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        table = self.table
        return {"text/html": table.to_html(float_format="{:.3f}".format, escape=True, na_rep=""),
                "text/plain": table.to_string(float_format="{:.3f}".format, na_rep=""),
                MODELS_MIME: json.dumps(list(self.records))}


def record_name(record: dict, several: bool = True) -> str:
    """A model record's row name: "model, W_S = 1,000" (", equal steps, 12,000 steps" for a
    control model)."""
    name = f"model, W_S = {record['ws']:,}"
    if several and record["series"] != SERIES_NAMES["epochs"]:
        name += f", {record['series']}"
    return f"{name} ({record['steps']:,} steps)" if several else name


def own_samples(samples: Samples, ws_list: tuple[int, ...], tokenizer, mask_prob: float,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, labels, kinds) of the first min(OWN_SAMPLES, smallest W_S) samples of the pool,
    masked once with the seed: training samples of every model of the nested series."""
    ids = np.asarray(samples.train_slice(min(OWN_SAMPLES, min(ws_list))))
    return mask_tokens(ids, special_token_ids(tokenizer), tokenizer.mask_token_id, len(tokenizer),
                       mask_prob, seed=seed)


def model_records(settings: Settings, series: dict[int, PretrainedModel], data: PretrainingData,
                  steps_series: dict[int, PretrainedModel] | None = None) -> ModelRecords:
    """Read every model of the series (and the equal-steps models not in it) on W_test and on its
    own training samples (its own head), with the baselines beside it."""
    samples, tokenizer = data.samples, data.tokenizer
    test = tuple(np.asarray(samples.array(n)) for n in ("test_inputs", "test_labels", "test_kinds"))
    own = own_samples(samples, settings.ws_list, tokenizer, settings.mask_prob, settings.seed)
    device = resolved_device(settings.device)

    def read(model) -> TokenCounts:
        return heldout_counts(model.to(device), *test, device=device, precision=settings.precision)

    untrained = load_subject(settings.recipe(SubjectRecipe), data, trained=False, ws=max(series))
    untrained_figures = kind_figures(read(untrained.model))
    records = []
    for name, models in _named(series, steps_series).items():
        for ws, model in sorted(models.items()):
            loaded = model.load()
            counts = read(loaded)
            own_counts = heldout_counts(loaded, *own, device=device, precision=settings.precision)
            frequency = token_counts(samples.train_slice(ws), len(tokenizer),
                                     special_token_ids(tokenizer))
            rules = rule_counts(*test, frequency, tokenizer.mask_token_id)
            card = model.card
            records.append({
                "series": name, "ws": ws, "steps": card["steps"], "tokens_seen": card["tokens_seen"],
                "heldout_loss": counts.loss, **kind_figures(counts),
                "own_masked_accuracy": own_counts.kind_accuracy("masked"),
                "unigram_loss": unigram_loss(test[1], frequency),
                "baselines": {**{rule: kind_figures(rules[rule]) for rule in RULES},
                              "untrained model": untrained_figures},
            })
    return ModelRecords(tuple(records))


def plateau_lines(records: ModelRecords) -> dict[str, float]:
    """The trivial rules of the largest W_S as the plateau figure's dashed lines."""
    largest = records.largest
    return {"unigram loss": largest["unigram_loss"],
            "most frequent token (masked)": largest["baselines"]["most frequent token"]["masked_accuracy"],
            "copy, else most frequent (all)":
                largest["baselines"]["copy, else most frequent"]["all_accuracy"]}


def left_plateau(record: dict) -> bool:
    """Whether a model's masked accuracy on W_test is at least PLATEAU_MULTIPLE x the most
    frequent token's (of its own W_S)."""
    return record["masked_accuracy"] >= PLATEAU_MULTIPLE * _unigram(record)


def _unigram(record: dict) -> float:
    return record["baselines"]["most frequent token"]["masked_accuracy"]


def plateau_exit(log: pd.DataFrame, record: dict) -> int | None:
    """The first evaluated step at which the model's masked accuracy on W_test reached
    PLATEAU_MULTIPLE x the most frequent token's, or None if it never did."""
    held = log.dropna(subset=["eval_masked_accuracy"]) if "eval_masked_accuracy" in log else log[:0]
    off = held[held["eval_masked_accuracy"] >= PLATEAU_MULTIPLE * _unigram(record)]
    return int(off["step"].iloc[0]) if len(off) else None


def plateau_table(records: ModelRecords, series: dict[int, PretrainedModel],
                  steps_series: dict[int, PretrainedModel] | None = None) -> pd.DataFrame:
    """Per model: steps, the step it left the plateau (from its training log), masked accuracy on
    W_test and on its own training samples, and their gap (memorisation)."""
    models = _named(series, steps_series)
    rows = []
    for r in records.records:
        exit_step = plateau_exit(models[r["series"]][r["ws"]].log, r)
        rows.append({"series": r["series"], "W_S": r["ws"], "steps": r["steps"],
                     "left the plateau at step": "never" if exit_step is None else f"{exit_step:,}",
                     "masked accuracy, W_test": r["masked_accuracy"],
                     "masked accuracy, own samples": r["own_masked_accuracy"],
                     "gap (own - W_test)": r["own_masked_accuracy"] - r["masked_accuracy"]})
    return pd.DataFrame(rows).set_index(["series", "W_S"])


def plateau_sentence(records: ModelRecords) -> str:
    """Whether the largest model has left the unigram plateau, with the figures that say so."""
    largest = records.largest
    unigram = _unigram(largest)
    combined = largest["baselines"]["copy, else most frequent"]["all_accuracy"]
    multiple = largest["masked_accuracy"] / unigram if unigram > 0 else float("inf")
    left = left_plateau(largest)
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


def series_plateau_sentence(table: pd.DataFrame) -> str:
    """Which models left the plateau, and when, and how far each model's accuracy on its own
    training samples lies above W_test's (from `plateau_table`)."""
    parts = []
    for (series, ws), row in table.iterrows():
        where = ("never left the plateau" if row["left the plateau at step"] == "never"
                 else f"left it at step {row['left the plateau at step']}")
        parts.append(f"W_S = {ws:,} at {series} ({row['steps']:,} steps) {where}; masked "
                     f"accuracy {row['masked accuracy, own samples']:.1%} on its own training "
                     f"samples against {row['masked accuracy, W_test']:.1%} on W_test")
    gaps = table["gap (own - W_test)"]
    if gaps.max() <= 0:
        return "; ".join(parts) + (". No model scores higher on its own training samples than on "
                                   "W_test: none shows memorisation.")
    most = gaps.idxmax()
    return ("; ".join(parts) + f". The largest gap between a model's own samples and W_test, the "
            f"sign of memorisation, is W_S = {most[1]:,} at {most[0]} ({gaps.max():+.1%}).")


def provenance_sentence(models: list[PretrainedModel], profile: str) -> str:
    """Where the models come from: published with the book (the command that re-trains them,
    machine, date, sha256) or trained into this run's store."""
    unique = {m.folder: m for m in models}  # the largest W_S is in both series
    published = [m for m in unique.values() if m.folder.parent == PUBLISHED_DIR]
    if not published:
        return ("The models were trained in this run (or read back from its artifact store); no "
                "published model matches these settings.")
    latest = max(published, key=lambda m: m.card["published"]).card
    minutes = sum(m.card["wall_seconds"] for m in published) / 60
    hashes = ", ".join(f"`{m.folder.name}`: `{m.card['sha256'][:12]}`"
                       for m in sorted(published, key=lambda m: m.folder.name))
    return (f"The models are the ones published with the book (`book/models/`), read after "
            f"checking their sha256 ({hashes}). They were trained by "
            f"`python -m aptutils pretrain --profile {profile} -p pretrain train --publish` on "
            f"{latest['device']} ({latest['machine']}) in "
            f"{minutes:.0f} minutes in all; the latest was published {latest['published']} at commit "
            f"`{latest['commit'][:10]}`. To re-train them from scratch, run that command with an "
            f"empty artifact store (the same time again on the same machine); `-p pretrain train` "
            f"makes any chapter use the store instead.")


def series_design_sentence(series: dict[int, PretrainedModel], settings: Settings,
                           steps_series: dict[int, PretrainedModel] | None = None) -> str:
    """What the W_S series measures (the same epochs for every W_S, so more data is more steps),
    and the equal-steps control beside it."""
    steps = " / ".join(f"{m.card['steps']:,}" for _, m in sorted(series.items()))
    said = (f"Every model trains for the same {settings.epochs:g} epochs over its own W_S, as in "
            f"the paper, so a larger W_S also means more steps ({steps}): the series varies data "
            f"and compute together. ")
    control = _named(series, steps_series).get(SERIES_NAMES["steps"])
    if not control:
        return said + ("The control at equal steps was not run (`equal_steps` is off), so chapter "
                       "2's C2 cannot tell which of the two drives a rise.")
    largest = max(series)
    trained = ", ".join(f"W_S = {ws:,} for {m.card['steps']:,} steps" for ws, m in sorted(control.items()))
    return said + (f"The control at equal steps trains {trained}, the steps of W_S = {largest:,}, "
                   f"with the same schedule (warm-up share and linear decay to 0 at the last step); "
                   f"W_S = {largest:,} is the same model in both series. Chapters 2 and 5 read "
                   f"both, so a claim about W_S can be told apart from a claim about steps.")
