"""Per-block fine-tuning on FewRel and DBpedia-14: a classifier on top of blocks 0..b for every b.

Two protocols. `frozen` (the default): the trunk stays fixed; one forward pass with
`output_hidden_states` gives every block's pooled vector (`training.pooling`: for FewRel the
states at the entity markers, for DBpedia-14 the mean or [CLS]; cached as an artifact), and a
linear softmax head per block is fitted to the standardised vectors by full-batch L-BFGS with an
L2 penalty (a convex problem: deterministic, converged, and a few seconds for all blocks at once).
`full`: the model cut after block b plus a pooled linear head is fine-tuned end to end
(`training.classifier`). Every model of the W_S series (with `equal_steps`, of both series: equal
epochs and equal steps, `training.equal_steps`) and the untrained model of the same architecture
are fine-tuned; each result (per-sample confidence and prediction on the test set,
per-block confusion) is an artifact keyed by exactly its knobs. Used by chapters 5 and 6.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolved_device
from ..core.errors import ParameterError
from ..core.params import Settings
from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from ..data.tasks import TASKS, Task, load_tasks
from ..training.classifier import SplitRows, fine_tune_block
from ..training.equal_steps import SERIES_NAMES, equal_steps_settings, has_equal_steps
from ..training.pooling import pooled_block_features, task_pooling
from ..training.pretrain import analysed_ws, readout_key, readout_model

PROTOCOL_NAMES = {"frozen": "frozen trunk, linear head", "full": "full fine-tuning"}
HEAD_KNOBS = ("precision", "head_steps", "head_l2")
FULL_KNOBS = ("finetune_epochs", "finetune_lr", "finetune_batch", "weight_decay", "warmup_ratio",
              "dropout", "precision", "seed")


@dataclass(frozen=True)
class ModelSpec:
    """One trunk to fine-tune: the model pre-trained on W_S samples, or (pretrained=False) the
    same architecture with random weights (seeded). checkpoint: the `model` knob where an
    external checkpoint is read (W_S then only names the samples), else None. series: "epochs"
    (the paper's protocol: trained for `epochs`) or "steps" (the equal-steps model of that W_S:
    trained for the largest W_S's steps)."""

    ws: int
    pretrained: bool
    checkpoint: str | None = None
    series: str = "epochs"

    def __post_init__(self) -> None:
        if self.series not in SERIES_NAMES:
            raise ValueError(f"series={self.series!r}: must be one of {', '.join(SERIES_NAMES)}")

    @property
    def equal_steps(self) -> bool:
        """True for a model of the equal-steps series that is not also the equal-epochs one."""
        return self.series == "steps" and self.pretrained and not self.checkpoint

    @property
    def label(self) -> str:
        if not self.pretrained:
            return "untrained"
        if self.checkpoint:
            return f"checkpoint {Path(self.checkpoint).name}"
        return f"W_S={self.ws:,}" + (", equal steps" if self.equal_steps else "")

    @property
    def described(self) -> str:
        """The model in a sentence: "the model pre-trained on W_S=…", "the checkpoint …"."""
        if self.pretrained and not self.checkpoint:
            return f"the model pre-trained on W_S={self.ws:,}" + (
                " for the largest W_S's steps" if self.equal_steps else "")
        return f"the {self.label}" + ("" if self.pretrained else " model")

    def settings_for(self, settings: Settings) -> Settings:
        """The settings that train and key this model: at equal steps, `epochs` raised until
        W_S trains for the largest W_S's steps; else `settings` themselves."""
        return equal_steps_settings(settings, self.ws) if self.equal_steps else settings

    def key(self, settings: Settings, data: PretrainingData) -> dict:
        """The model's part of an artifact key (the same as the readout chapters use)."""
        return readout_key(self.settings_for(settings), self.ws, self.pretrained, data)

    def load(self, settings: Settings, data: PretrainingData, store: Store):
        return readout_model(self.settings_for(settings), self.ws, self.pretrained, data, store)[0]


def analysis_spec(settings: Settings) -> ModelSpec:
    """The model read block by block in chapters 2-4 and 6 (W_S = `analysis_ws`)."""
    return ModelSpec(analysed_ws(settings), True, settings.values.get("model"))


def series_specs(settings: Settings) -> list[ModelSpec]:
    """Every model of the W_S series (an external checkpoint: it alone); with `equal_steps`, the
    equal-steps model of every W_S but the largest (which both series share); then the untrained
    baseline."""
    untrained = ModelSpec(analysed_ws(settings), False)
    if settings.values.get("model") is not None:
        return [analysis_spec(settings), untrained]
    largest = max(settings.ws_list)
    steps = [ModelSpec(ws, True, series="steps") for ws in settings.ws_list
             if ws != largest] if has_equal_steps(settings) else []
    return [ModelSpec(ws, True) for ws in settings.ws_list] + steps + [untrained]


def series_models(settings: Settings, series: str = "epochs") -> list[ModelSpec]:
    """The pre-trained models of one series, smallest W_S first: "epochs" the W_S series (an
    external checkpoint: it alone), "steps" the equal-steps models and the largest W_S's model
    (shared by both series); [] for "steps" where the settings have no equal-steps series."""
    if series not in SERIES_NAMES:
        raise ValueError(f"series={series!r}: must be one of {', '.join(SERIES_NAMES)}")
    if series == "steps" and not has_equal_steps(settings):
        return []
    largest = max(settings.ws_list)
    chosen = [s for s in series_specs(settings) if s.pretrained
              and (s.series == series or (s.ws == largest and not s.checkpoint))]
    return sorted(chosen, key=lambda s: s.ws)


def split_rows(task: Task, split: str, pooling: str) -> SplitRows:
    """ids, labels and (entity pooling only) the checked entity positions of one split."""
    entities = task.entity_positions(split) if pooling == "entity" else None
    return SplitRows(task.array(f"{split}_ids"), task.array(f"{split}_labels"), entities)


def pooling_key(settings: Settings, task: Task) -> dict:
    """The read-out's part of an artifact key: the task's pooling."""
    return {"pooling": task_pooling(settings, task.name)}


def task_features(settings: Settings, task: Task, spec: ModelSpec, data: PretrainingData,
                  store: Store) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) pooled features of every block, float32 [blocks + 1, N, W] (W = hidden, or
    2 x hidden for entity pooling); cached in the store as float16."""
    params = {"model": spec.key(settings, data), "task": task.folder.name,
              **pooling_key(settings, task), **settings.subset(("precision",))}
    pooling = task_pooling(settings, task.name)

    def build(folder: Path) -> None:
        model = spec.load(settings, data, store)
        for split in ("train", "test"):
            rows = split_rows(task, split, pooling)
            features = pooled_block_features(model, rows.ids, pooling, rows.entities,
                                             resolved_device(settings), settings.precision)
            np.save(folder / f"{split}.npy", features.numpy().astype(np.float16))

    folder = store.get_or_build("task-features", params, build)
    return tuple(torch.from_numpy(np.load(folder / f"{split}.npy").astype(np.float32))
                 for split in ("train", "test"))


@dataclass
class LinearHeads:
    """One softmax head per block on standardised features: weight [K, H, C], bias [K, C],
    mean and scale [K, 1, H] of the training features."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [K, N, C] of features [K, N, H]."""
        return torch.baddbmm(self.bias.unsqueeze(1), (features - self.mean) / self.scale, self.weight)


def fit_linear_heads(features: torch.Tensor, labels: torch.Tensor, classes: int, l2: float,
                     steps: int) -> LinearHeads:
    """Minimise, for every block k at once, mean cross-entropy + l2/2 * |W_k|^2 by L-BFGS
    (strong Wolfe line search, at most `steps` iterations) from zero weights."""
    mean = features.mean(1, keepdim=True)
    scale = features.std(1, keepdim=True).clamp(min=1e-6)
    standardised = (features - mean) / scale
    blocks, _, hidden = features.shape
    weight = torch.zeros(blocks, hidden, classes, requires_grad=True)
    bias = torch.zeros(blocks, classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, history_size=20,
                                  tolerance_grad=1e-6, line_search_fn="strong_wolfe")
    targets = labels.repeat(blocks)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.baddbmm(bias.unsqueeze(1), standardised, weight)
        loss = F.cross_entropy(logits.reshape(-1, classes), targets) * blocks
        loss = loss + l2 / 2 * (weight ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearHeads(weight.detach(), bias.detach(), mean, scale)


def label_confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts [C, C]: entry (i, j) = test samples of label i predicted as j."""
    return np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def save_predictions(folder: Path, probabilities: torch.Tensor, labels: np.ndarray,
                     train_accuracy: list[float], extra: dict) -> None:
    """From class probabilities [K, N, C]: confidence.npy (max softmax) and predicted.npy, both
    [K, N]; labels.npy [N]; confusion.npy [K, C, C]; card.json (accuracies, timings)."""
    confidence, predicted = probabilities.max(-1)
    predicted = predicted.numpy()
    classes = probabilities.shape[-1]
    np.save(folder / "confidence.npy", confidence.numpy().astype(np.float32))
    np.save(folder / "predicted.npy", predicted.astype(np.int32))
    np.save(folder / "labels.npy", labels)
    np.save(folder / "confusion.npy", np.stack([label_confusion(labels, p, classes) for p in predicted]))
    card = {"test_accuracy": (predicted == labels).mean(1).tolist(),
            "train_accuracy": train_accuracy, **extra}
    (folder / "card.json").write_text(json.dumps(card))


def build_frozen(folder: Path, settings: Settings, task: Task, spec: ModelSpec,
                 data: PretrainingData, store: Store) -> None:
    """Fit a linear head per block on cached features; save test predictions and confusions."""
    started = time.time()
    train, test = task_features(settings, task, spec, data, store)
    train_labels = torch.as_tensor(task.array("train_labels")).long()
    classes = len(task.label_names)
    heads = fit_linear_heads(train, train_labels, classes, settings.head_l2, settings.head_steps)
    with torch.no_grad():
        train_accuracy = (heads.logits(train).argmax(-1) == train_labels).float().mean(1).tolist()
        probabilities = heads.logits(test).softmax(-1)
    save_predictions(folder, probabilities, task.array("test_labels"), train_accuracy,
                     {"blocks": list(range(len(train))), "wall_seconds": time.time() - started})


def build_full(folder: Path, settings: Settings, task: Task, spec: ModelSpec, block: int,
               data: PretrainingData, store: Store) -> None:
    """Fine-tune the model cut after `block` end to end; save its test predictions."""
    started = time.time()
    pooling = task_pooling(settings, task.name)
    params = {"model": spec.key(settings, data), "task": task.folder.name, "block": block}
    run = fine_tune_block(spec.load(settings, data, store), block, pooling, len(task.label_names),
                          split_rows(task, "train", pooling), split_rows(task, "test", pooling),
                          settings, store.work_dir("finetune-full", params))
    store.clear_work_dir("finetune-full", params)
    save_predictions(folder, run.probabilities.unsqueeze(0), task.array("test_labels"),
                     [run.train_accuracy], {"blocks": [block], "train_loss": run.train_loss,
                                            "wall_seconds": time.time() - started})


@dataclass(frozen=True)
class FinetuneResult:
    """Test-set outcome of one (task, model, protocol) over its blocks.

    confidence, predicted: [len(blocks), N_test]; labels: [N_test]; confusion: [len(blocks), C, C].
    """

    task: Task
    spec: ModelSpec
    protocol: str
    blocks: tuple[int, ...]
    confidence: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray
    confusion: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        """[len(blocks), N_test] bool."""
        return self.predicted == self.labels

    @property
    def accuracy(self) -> np.ndarray:
        """Test accuracy per block, [len(blocks)]."""
        return self.correct.mean(1)

    def at(self, block: int) -> int:
        """Row of `block` in the per-block arrays."""
        return self.blocks.index(block)


def read_result(folders: list[Path], task: Task, spec: ModelSpec, protocol: str) -> FinetuneResult:
    """Join the artifacts of one (task, model, protocol), blocks in order."""
    parts = {name: np.concatenate([np.load(f / f"{name}.npy") for f in folders])
             for name in ("confidence", "predicted", "confusion")}
    blocks = tuple(b for f in folders for b in json.loads((f / "card.json").read_text())["blocks"])
    return FinetuneResult(task, spec, protocol, blocks, parts["confidence"], parts["predicted"],
                          np.load(folders[0] / "labels.npy"), parts["confusion"])


def full_blocks(settings: Settings) -> tuple[int, ...]:
    """The blocks of full fine-tuning, checked against the model depth."""
    blocks = settings.finetune_full_blocks
    if max(blocks) > settings.num_layers:
        raise ParameterError(f"finetune_full_blocks={','.join(map(str, blocks))}: blocks run "
                             f"0..{settings.num_layers} (num_layers={settings.num_layers})")
    return blocks


def finetune_result(settings: Settings, task: Task, spec: ModelSpec, protocol: str,
                    data: PretrainingData, store: Store) -> FinetuneResult:
    """One (task, model, protocol) result from the store, built (and announced) when missing."""
    model_key = spec.key(settings, data)
    if protocol == "frozen":
        params = [{"model": model_key, "task": task.folder.name, "protocol": "frozen",
                   **pooling_key(settings, task), **settings.subset(HEAD_KNOBS)}]
        builders = [lambda f: build_frozen(f, settings, task, spec, data, store)]
    else:
        blocks = full_blocks(settings)
        params = [{"model": model_key, "task": task.folder.name, "protocol": "full", "block": b,
                   **pooling_key(settings, task), **settings.subset(FULL_KNOBS)} for b in blocks]
        builders = [lambda f, b=b: build_full(f, settings, task, spec, b, data, store) for b in blocks]
    folders = []
    for key, build in zip(params, builders):
        if store.get("finetune", key) is None:
            print(f"{task.title}, {spec.label}: {PROTOCOL_NAMES[protocol]}"
                  + (f", block {key['block']}" if "block" in key else "") + " ...", flush=True)
        folders.append(store.get_or_build("finetune", key, build))
    return read_result(folders, task, spec, protocol)


def finetune_all(settings: Settings, store: Store | None = None, data: PretrainingData | None = None,
                 specs: list[ModelSpec] | None = None) -> list[FinetuneResult]:
    """Every task x model x protocol of these settings; models: `specs`, by default the W_S
    series and the untrained baseline."""
    store = store or Store()
    data = data or pretraining_data(settings, store)
    tasks = load_tasks(settings, data, store)
    protocols = settings.finetune_protocols.split(",")
    return [finetune_result(settings, tasks[name], spec, protocol, data, store)
            for name in TASKS for spec in specs or series_specs(settings) for protocol in protocols]
