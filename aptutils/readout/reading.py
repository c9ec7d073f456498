"""Block-by-block readouts of a pre-trained (or untrained) model, as store artifacts.

`block_counts` returns, for both protocols and every block, the counts per (kind, token) and the
sparse confusion over W_test; the probe heads and the counts are artifacts keyed by the model
and the probe knobs. Used by chapters 2, 3, 4 and 6.
"""
from __future__ import annotations

import json
import sys

import pandas as pd
import torch

from ..core.device import resolved_device
from ..core.params import Settings
from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from ..readout.counting import (
    PROTOCOLS,
    BlockCounts,
    count_all_blocks,
    load_block_counts,
    save_block_counts,
)
from ..readout.features import block_features, masked_training_rows
from ..readout.probes import (
    load_trained_state,
    new_probe_heads,
    train_probe_heads,
    trained_state,
)
from ..training.pretrain import analysis_ws, pretrained_model, readout_model

PROBE_KNOBS = ("probe_samples", "probe_epochs", "probe_lr", "probe_batch", "probe_decoder")


def readout_params(settings: Settings, model_key: dict) -> dict:
    """Exactly what determines a model's probe heads and block counts: the model and the probe knobs."""
    return {"model": model_key, **settings.subset(PROBE_KNOBS)}


def probe_heads(settings: Settings, model, model_key: dict, ws: int, data: PretrainingData,
                store: Store) -> torch.nn.ModuleList:
    """The probe heads of a model (one per block), trained on W_S features when missing."""
    blocks = model.config.num_hidden_layers + 1
    params = readout_params(settings, model_key)
    device = resolved_device(settings)
    tied = model.bert.embeddings.word_embeddings.weight if settings.probe_decoder == "tied" else None

    def new_heads() -> torch.nn.ModuleList:
        return new_probe_heads(model.config, blocks, settings.seed, embeddings=tied)

    def build(folder):
        rows = data.samples.train_slice(min(settings.probe_samples, ws))
        inputs, labels, kinds = masked_training_rows(rows, data.tokenizer, settings.mask_prob,
                                                     settings.seed + 2)
        features = block_features(model, inputs, labels, kinds, device=device)
        heads = new_heads()
        print(f"Training {blocks} probe heads on {len(features.labels):,} modified positions of "
              f"W_S ({settings.probe_epochs:g} epochs)", flush=True)
        losses = train_probe_heads(heads, features, settings.probe_epochs, settings.probe_lr,
                                   settings.probe_batch, settings.seed, device,
                                   progress=sys.stderr.isatty())
        torch.save(trained_state(heads), folder / "heads.pt")
        (folder / "training.json").write_text(json.dumps(
            {"positions": len(features.labels), "final_loss_by_block": losses}))

    folder = store.get_or_build("probes", params, build)
    heads = new_heads()
    load_trained_state(heads, torch.load(folder / "heads.pt"))
    return heads.eval()


def block_counts(settings: Settings, ws: int | None = None, trained: bool = True,
                 store: Store | None = None,
                 data: PretrainingData | None = None) -> dict[str, list[BlockCounts]]:
    """Counts per block for both protocols over W_test: {"probe": [...], "lens": [...]}.

    ws: the model's W_S (default: `analysis_ws`); trained=False reads the untrained model.
    """
    store = store or Store()
    data = data or pretraining_data(settings, store)
    ws = ws or analysis_ws(settings)
    model, model_key = readout_model(settings, ws, trained, data, store)
    params = readout_params(settings, model_key)
    folder = store.get("block-counts", params)
    if folder is None:
        device = resolved_device(settings)
        model.to(device)
        heads = {"probe": probe_heads(settings, model, model_key, ws, data, store),
                 "lens": [model.cls] * (model.config.num_hidden_layers + 1)}
        samples = data.samples
        test = block_features(model, samples.array("test_inputs"), samples.array("test_labels"),
                              samples.array("test_kinds"), device=device)
        counts = count_all_blocks(heads, test, model.config.vocab_size, device)
        folder = store.get_or_build("block-counts", params, lambda f: save_block_counts(f, counts))
    return {protocol: load_block_counts(folder, protocol) for protocol in PROTOCOLS}


def token_vectors(settings: Settings, ws: int, trained: bool, data: PretrainingData,
                  store: Store | None = None):
    """The model's token embedding matrix [V, hidden] (tied with the MLM head's output weights)."""
    model, _ = readout_model(settings, ws, trained, data, store or Store())
    return model.bert.embeddings.word_embeddings.weight.detach().float().numpy()


def series_heldout(settings: Settings, store: Store | None = None) -> pd.DataFrame:
    """Per model of the W_S series: held-out <APT> and token-weighted accuracy at the last
    block, read through the model's own MLM head. Indexed by W_S."""
    store = store or Store()
    data = pretraining_data(settings, store)
    cards = {ws: pretrained_model(settings, ws, data, store).card for ws in settings.ws_list}
    return pd.DataFrame({"<APT>": {ws: c["heldout_mean_apt"] for ws, c in cards.items()},
                         "token-weighted accuracy": {ws: c["heldout_accuracy"] for ws, c in cards.items()}})
