"""Block-by-block readouts of a pre-trained (or untrained) model, as store artifacts.

`block_counts` returns, for the model being read (`training.subject.Subject`, built once by the
chapter) and every reader of `readers.BLOCK_READERS` ("probe", "lens", "tuned-lens") and block, the counts per (kind, token) and the sparse confusions over
`test_maskings` maskings of W_test and its `test_extension` (`data.heldout`); the probe heads and
the tuned lens are artifacts keyed by the model and their knobs (`training.json` holds their
held-out curves, `reader_training` reads them), the counts by all reader knobs and the maskings.
`series_counts` reads every model of the W_S series at its last block through its own head over
the same maskings, as the lens reads a last block (bf16 trunk, fp32 argmax), so the analysed
model's series counts are its lens counts at the last block. Under torchrun / accelerate launch
the first process trains the readers (the others wait) and every process counts a share of W_test
(`counting.count_maskings`). With `torch_compile` the readers' heads are compiled, and on a GPU
the cached W_S features of their training stay on it. The knobs come as recipes: `ReadersRecipe`
(probe, tuned lens), `CountsRecipe` (readers, pooled W_test, reading). Used by chapters 2, 3, 4
and 6.
"""
from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..core.counts import TokenCounts, count_predictions
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.extension import HeldoutRecipe
from ..data.heldout import maskings_params, recipe_maskings
from ..data.pretraining import PretrainingData
from ..readout.counting import (
    TRUNK_BATCH,
    BlockCounts,
    block_predictions,
    count_maskings,
    load_block_counts,
    processes,
    save_block_counts,
)
from ..readout.features import BlockFeatures, block_features, masked_training_rows
from ..readout.probes import (
    HELD_OUT_SHARE,
    TrainingPositions,
    held_out_split,
    load_trained_state,
    new_probe_heads,
    objective_text,
    sampled_candidates,
    train_probe_heads_until_stop,
    trained_state,
)
from ..readout.readers import (
    BLOCK_READERS,
    BlockReader,
    LensReader,
    ProbeReader,
    TunedLensReader,
)
from ..readout.tuned_lens import new_translators, train_tuned_lens
from ..training.heads import EarlyStopping, HeadCurves, HeadPlan
from ..training.pretrain import SeriesRecipe, model_params, pretrained_model
from ..training.subject import Subject

READER_TRAINING = {"held_out_share": HELD_OUT_SHARE, "stopping": "per head, best state kept"}


@dataclass(frozen=True)
class ProbeRecipe(Recipe):
    """How the probe heads are trained: exactly the knobs of their key (beside the model)."""

    probe_samples: int
    probe_max_epochs: float
    probe_lr: float
    probe_batch: int
    probe_decoder: str
    probe_eval_every: int
    probe_patience: int
    probe_softmax: str
    probe_candidates: int


@dataclass(frozen=True)
class TunedLensRecipe(Recipe):
    """How the tuned lens's affine maps are trained: exactly the knobs of their key."""

    probe_samples: int
    probe_batch: int
    probe_eval_every: int
    probe_patience: int
    tuned_lens_max_epochs: float
    tuned_lens_lr: float


@dataclass(frozen=True)
class ReadersRecipe(Recipe):
    """The trained readers of a model: the probe and the tuned lens, the W_S masking their
    positions are drawn with (`mask_prob`, `seed`), and whether their heads are compiled."""

    probe: ProbeRecipe
    tuned_lens: TunedLensRecipe
    mask_prob: float
    seed: int
    torch_compile: bool


@dataclass(frozen=True)
class CountsRecipe(Recipe):
    """The block counts: the trained readers, the pooled W_test they count on, and the reading
    (`kinds`) their confusions are summed over when read."""

    readers: ReadersRecipe
    heldout: HeldoutRecipe
    kinds: tuple[str, ...]


def readers_params(recipe: ReadersRecipe, model_key: dict) -> dict:
    """Exactly what determines a model's trained readers (probe heads, tuned lens) and so its
    block counts: the model and the reader knobs."""
    return {"model": model_key, **recipe.probe.key(), **recipe.tuned_lens.key(),
            **READER_TRAINING}


def reader_params(reader: ProbeRecipe | TunedLensRecipe, model_key: dict) -> dict:
    """The key of one trained reader: the model, its knobs and how it is trained."""
    return {"model": model_key, **reader.key(), **READER_TRAINING}


def training_positions(recipe: ReadersRecipe, subject: Subject,
                       data: PretrainingData) -> TrainingPositions:
    """W_S's block features at the modified positions of its first `probe_samples` samples under
    one fixed masking, from one trunk pass, split into training and held-out samples (seeded)."""
    device = subject.device
    rows = data.samples.train_slice(min(recipe.probe.probe_samples, subject.ws))
    inputs, labels, kinds = masked_training_rows(rows, data.tokenizer, recipe.mask_prob,
                                                 recipe.seed + 2)
    features = block_features(subject.model, inputs, labels, kinds, device=device)
    if device != "cpu":  # kept on the GPU: every training step indexes them
        features = BlockFeatures(features.features.to(device), features.labels, features.kinds)
    train, held_out = held_out_split((np.asarray(labels) != -100).sum(1), recipe.seed + 3)
    return TrainingPositions(features, train, held_out)


def compiled(recipe: ReadersRecipe, *modules: torch.nn.Module) -> None:
    """With `torch_compile`, compile each module in place (its parameters and state dict keep
    their names); else leave them as they are."""
    if recipe.torch_compile:
        for module in modules:
            module.compile()


def built_once(store: Store, kind: str, params: dict, build) -> Path:
    """`store.get_or_build`; under several processes the first one builds, the others wait."""
    rank, world = processes()
    if world == 1:
        return store.get_or_build(kind, params, build)
    if rank == 0:
        store.get_or_build(kind, params, build)
    dist.barrier()
    return store.path(kind, params)


def _plan(reader: ProbeRecipe | TunedLensRecipe, max_epochs: float, learning_rate: float,
          seed: int, positions: TrainingPositions) -> HeadPlan:
    """How a reader's heads train: at most `max_epochs` passes over its training positions."""
    steps = max(1, math.ceil(max_epochs * len(positions.train) / reader.probe_batch))
    return HeadPlan(learning_rate, reader.probe_batch, seed,
                    EarlyStopping(reader.probe_eval_every, reader.probe_patience, steps))


def _train_reader(folder, what: str, positions: TrainingPositions, plan: HeadPlan,
                  train, objective: str) -> None:
    """Run `train()` (-> HeadCurves), print its outcome, write `training.json` into `folder`."""
    stopping = plan.stopping
    print(f"Training {what} ({objective}) on {len(positions.train):,} modified positions of W_S "
          f"({len(positions.held_out):,} held out; at most {stopping.max_steps:,} steps, a "
          f"held-out evaluation every {stopping.eval_every})", flush=True)
    started = time.time()
    curves: HeadCurves = train()
    seconds = time.time() - started
    print(f"  stopped at steps {curves.stop_step}, kept steps {curves.best_step}; "
          f"{seconds:.0f} s", flush=True)
    (folder / "training.json").write_text(json.dumps(
        {"positions": len(positions.features.labels), "train_positions": len(positions.train),
         "held_out_positions": len(positions.held_out), "max_steps": stopping.max_steps,
         "eval_every": stopping.eval_every, "patience": stopping.patience, "seconds": seconds,
         "objective": objective,
         "curves": curves.to_dict()}))


def probe_heads(recipe: ReadersRecipe, subject: Subject, data: PretrainingData, store: Store,
                positions=None) -> torch.nn.ModuleList:
    """The probe heads of a model (one per block), trained on W_S features when missing, each
    until its held-out loss stops falling. positions: () -> TrainingPositions (default: made
    here when needed); `training.json` keeps the held-out curves."""
    model, blocks, device, probe = subject.model, subject.blocks, subject.device, recipe.probe
    positions = positions or (lambda: training_positions(recipe, subject, data))
    tied = model.bert.embeddings.word_embeddings.weight if probe.probe_decoder == "tied" else None

    def new_heads() -> torch.nn.ModuleList:
        return new_probe_heads(model.config, blocks, recipe.seed, embeddings=tied)

    vocab = model.config.vocab_size
    candidates = sampled_candidates(probe.probe_softmax, probe.probe_candidates, vocab)

    def build(folder):
        training, heads = positions(), new_heads()
        compiled(recipe, *heads)
        plan = _plan(probe, probe.probe_max_epochs, probe.probe_lr, recipe.seed, training)
        _train_reader(folder, f"{blocks} probe heads", training, plan,
                      lambda: train_probe_heads_until_stop(heads, training, plan, device,
                                                           progress=True, candidates=candidates),
                      objective_text(candidates, vocab))
        torch.save(trained_state(heads.cpu()), folder / "heads.pt")

    folder = built_once(store, "probes", reader_params(probe, subject.key), build)
    heads = new_heads()
    load_trained_state(heads, torch.load(folder / "heads.pt"))
    return heads.eval()


def tuned_lens_translators(recipe: ReadersRecipe, subject: Subject, data: PretrainingData,
                           store: Store, positions=None) -> torch.nn.ModuleList:
    """The tuned lens's translators of a model (`readout.tuned_lens`; the last one the
    identity), trained on W_S features when missing, each until its held-out KL stops falling.
    positions: as for `probe_heads`; `training.json` keeps the held-out curves."""
    model, blocks, device, lens = subject.model, subject.blocks, subject.device, recipe.tuned_lens
    hidden = model.config.hidden_size
    positions = positions or (lambda: training_positions(recipe, subject, data))

    def build(folder):
        training, translators = positions(), new_translators(hidden, blocks)
        plan = _plan(lens, lens.tuned_lens_max_epochs, lens.tuned_lens_lr, recipe.seed, training)
        _train_reader(folder, f"the tuned lens's {blocks - 1} affine maps", training, plan,
                      lambda: train_tuned_lens(translators, model.cls, training, plan, device,
                                               progress=True),
                      f"KL to the last block over all {model.config.vocab_size:,} tokens")
        torch.save(translators.cpu().state_dict(), folder / "translators.pt")

    folder = built_once(store, "tuned-lens", reader_params(lens, subject.key), build)
    translators = new_translators(hidden, blocks)
    translators.load_state_dict(torch.load(folder / "translators.pt"))
    return translators.eval()


def block_readers(recipe: ReadersRecipe, subject: Subject, data: PretrainingData,
                  store: Store) -> tuple[BlockReader, ...]:
    """The readers counted block by block, named as `BLOCK_READERS` (probe, lens, tuned lens), on
    the subject's device; the trained ones come from the store, or are trained from one shared
    pass over W_S. A model without an MLM head (`BertTrunk`) gets the probe only."""
    processes()  # under torchrun: the process group, and this process's GPU, before any move
    model, device = subject.model.to(subject.device), subject.device
    positions = functools.cache(lambda: training_positions(recipe, subject, data))
    if subject.has_mlm_head:
        compiled(recipe, model.cls)
    probe = probe_heads(recipe, subject, data, store, positions).to(device)
    if not subject.has_mlm_head:
        compiled(recipe, *probe)
        return (ProbeReader(probe),)
    tuned = tuned_lens_translators(recipe, subject, data, store, positions)
    compiled(recipe, *probe)
    return ProbeReader(probe), LensReader(model), TunedLensReader(model, tuned.to(device))


def reader_training(recipe: ReadersRecipe, subject: Subject, data: PretrainingData,
                    store: Store | None = None) -> dict[str, dict]:
    """The training records of the model's trained readers, {"probe": ..., "tuned-lens": ...}:
    positions, the stopping rule, seconds and "curves" (`HeadCurves.to_dict`: held-out loss per
    block at each evaluation step, nats). Trains the readers when missing."""
    store = store or Store()
    block_readers(recipe, subject, data, store)
    folders = {"probe": store.get("probes", reader_params(recipe.probe, subject.key)),
               "tuned-lens": store.get("tuned-lens", reader_params(recipe.tuned_lens, subject.key))}
    if not subject.has_mlm_head:
        del folders["tuned-lens"]
    return {name: json.loads((folder / "training.json").read_text())
            for name, folder in folders.items()}


def block_counts(recipe: CountsRecipe, subject: Subject, data: PretrainingData,
                 store: Store | None = None) -> dict[str, list[BlockCounts]]:
    """Counts per block for every reader over W_test: {"probe": [...], "lens": [...],
    "tuned-lens": [...]} ({"probe": [...]} only for a model without an MLM head).

    Every block pools `test_maskings` maskings of W_test and its extension (`test_extension`);
    its confusion sums the kinds of the reading `kinds` (`BlockCounts.select` reads another
    without a recount); its counts keep every kind.
    """
    store = store or Store()
    maskings = recipe_maskings(recipe.heldout, data, store)  # before any training: may stop here
    params = block_counts_params(recipe, subject.key)
    folder = store.get("block-counts", params)
    if folder is None:
        readers = block_readers(recipe.readers, subject, data, store)
        counts = count_maskings(subject.model, {reader.name: reader for reader in readers},
                                maskings, subject.model.config.vocab_size, subject.device)
        folder = built_once(store, "block-counts", params, lambda f: save_block_counts(f, counts))
    return {name: load_block_counts(folder, name, recipe.kinds)
            for name in (BLOCK_READERS if subject.has_mlm_head else ("probe",))}


# how the block counts are made (part of their keys)
COUNTING = "fp32 argmax, confusion per kind, files named by reader"


def block_counts_params(recipe: CountsRecipe, model_key: dict) -> dict:
    """Exactly what determines a model's block counts: its probes' key, the W_test maskings
    pooled (with W_test's extension) and the counting rule (the reading `kinds` is chosen when
    they are read)."""
    return {**readers_params(recipe.readers, model_key), **maskings_params(recipe.heldout),
            "counting": COUNTING}


def token_vectors(subject: Subject) -> np.ndarray:
    """The model's token embedding matrix [V, hidden] (tied with the MLM head's output weights)."""
    return subject.model.bert.embeddings.word_embeddings.weight.detach().float().cpu().numpy()


def series_counts(series: SeriesRecipe, heldout: HeldoutRecipe, data: PretrainingData,
                  store: Store | None = None) -> dict[int, TokenCounts]:
    """Per model of the W_S series (by W_S, smallest first): counts per (kind, token) at the
    last block, read through the model's own MLM head (`last_block_counts`) over the same
    `test_maskings` maskings of W_test as the block counts. One artifact per model. An external
    checkpoint (`model`) has no W_S series: {}."""
    if series.model is not None:
        return {}
    store = store or Store()
    return {ws: last_block_counts(series, heldout, ws, data, store) for ws in series.ws_list}


# how the series' last blocks are counted (part of their keys)
SERIES_COUNTING = "the lens at the last block: bf16 trunk, fp32 argmax"


def last_block_counts(series: SeriesRecipe, heldout: HeldoutRecipe, ws: int,
                      data: PretrainingData, store: Store) -> TokenCounts:
    """The W_S model's own predictions at its last block over the W_test maskings, as counts
    (loss_sum 0): its MLM head in fp32 on the bf16 trunk's last hidden states, exactly as the
    lens reads the last block (`readers.LensReader`, `counting.block_predictions`)."""
    params = {"model": model_params(series.training, data, ws), **maskings_params(heldout),
              "counting": SERIES_COUNTING}

    def build(folder) -> None:
        device = series.training.compute.torch_device
        maskings = recipe_maskings(heldout, data, store)  # before the model: may stop here
        model = pretrained_model(series, ws, data, store).load().to(device)
        counts = own_head_counts(model, maskings, device)
        np.savez_compressed(folder / "counts.npz", correct=counts.correct, total=counts.total)

    saved = np.load(store.get_or_build("heldout-counts", params, build) / "counts.npz")
    return TokenCounts(saved["correct"], saved["total"])
def own_head_counts(model, maskings, device: str = "cpu") -> TokenCounts:
    """A BERT MLM model's counts per (kind, token) at its last block through its own head, pooled
    over `maskings` ((inputs, labels, kinds) [N, L] each): the lens's reading of the last block
    (bf16 trunk, fp32 argmax of the head; `counting.block_predictions`)."""
    lens, last = LensReader(model), model.config.num_hidden_layers
    pooled = None
    for masking in maskings:
        test = block_features(model, *masking, batch_size=TRUNK_BATCH, device=device)
        predicted = block_predictions(lens, last, test.features[last], device)
        counts, _ = count_predictions(predicted, test.labels, test.kinds, model.config.vocab_size)
        pooled = counts if pooled is None else pooled + counts
    if pooled is None:
        raise ValueError("own_head_counts: no masking given")
    return pooled
