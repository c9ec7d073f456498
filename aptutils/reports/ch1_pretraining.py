"""Tables of chapter 1: the corpus, masking on a real sentence, model cards, paper vs this run."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.counts import token_counts
from ..core.params import PROFILES, Settings
from ..data.corpus import Samples, resolved_corpus
from ..data.masking import KIND_NAMES, mask_tokens, special_token_ids
from ..data.pretraining import PretrainingData
from ..training.pretrain import PretrainedModel

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


def most_frequent_token_accuracy(samples: Samples, ws: int, tokenizer) -> float:
    """Held-out accuracy of always predicting the most frequent token of W_S."""
    counts = token_counts(samples.train_slice(ws), len(tokenizer), special_token_ids(tokenizer))
    labels = np.asarray(samples.array("test_labels"))
    picked = labels[labels >= 0]
    return float((picked == counts.argmax()).mean())


def model_cards(series: dict[int, PretrainedModel], samples: Samples, tokenizer) -> pd.DataFrame:
    """One row per W_S: size, compute, time, device and held-out results."""
    rows = []
    for ws, model in sorted(series.items()):
        card = model.card
        rows.append({
            "W_S (samples)": ws, "parameters": card["parameters"], "steps": card["steps"],
            "tokens seen": card["tokens_seen"], "wall time (s)": round(card["wall_seconds"]),
            "tokens/s": round(card["tokens_seen"] / card["wall_seconds"]),
            "device": f"{card['device']} x{card['processes']}",
            "held-out loss": card["heldout_loss"], "held-out accuracy": card["heldout_accuracy"],
            "most-frequent-token accuracy": most_frequent_token_accuracy(samples, ws, tokenizer),
            "<APT> (last block)": card["heldout_mean_apt"],
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


def series_summary(cards: pd.DataFrame) -> str:
    """One Markdown sentence on the largest model against the most-frequent-token baseline."""
    largest = cards.iloc[-1]
    return (f"The largest model (W_S = {cards.index[-1]:,}) predicts "
            f"{largest['held-out accuracy']:.1%} of the held-out modified tokens, against "
            f"{largest['most-frequent-token accuracy']:.1%} for always predicting the most frequent "
            f"token; its <APT> at the last block is {largest['<APT> (last block)']:.3f} "
            f"(the paper: 0.31 with the full BERT-6).")
