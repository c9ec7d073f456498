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

from ..core.errors import ParameterError
from ..core.recipes import Recipe
from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from ..data.tasks import TASKS, Task, TaskRecipe, load_tasks
from ..training.classifier import FullRecipe, SplitRows, fine_tune_block
from ..training.equal_steps import SERIES_NAMES, equal_steps_recipe, has_equal_steps
from ..training.pooling import PoolingRecipe, pooled_block_features, task_pooling
from ..training.subject import SubjectRecipe, load_subject, subject_key

PROTOCOL_NAMES = {"frozen": "frozen trunk, linear head", "full": "full fine-tuning"}


@dataclass(frozen=True)
class HeadRecipe(Recipe):
    """How the frozen trunk's linear heads are fitted (L-BFGS steps, L2 penalty) and the
    precision of the features they read: exactly the knobs of their key."""

    precision: str
    head_steps: int
    head_l2: float


@dataclass(frozen=True)
class FinetuneRecipe(Recipe):
    """Chapter 5's fine-tuning: the models (`subject`), the tasks, each task's read-out, the
    frozen-trunk heads, full fine-tuning, which protocols run and on which blocks."""

    subject: SubjectRecipe
    tasks: TaskRecipe
    pooling: PoolingRecipe
    head: HeadRecipe
    full: FullRecipe
    finetune_protocols: str
    finetune_full_blocks: tuple[int, ...]

    @property
    def device(self) -> str:
        return self.subject.series.training.compute.torch_device


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

    def recipe_for(self, subject: SubjectRecipe) -> SubjectRecipe:
        """The recipe that trains and keys this model: at equal steps, `epochs` raised until
        W_S trains for the largest W_S's steps; else `subject` itself."""
        if not self.equal_steps:
            return subject
        return subject.with_series(equal_steps_recipe(subject.series, self.ws))

    def key(self, subject: SubjectRecipe, data: PretrainingData) -> dict:
        """The model's part of an artifact key (the same as the readout chapters use)."""
        return subject_key(self.recipe_for(subject), self.ws, self.pretrained, data)

    def load(self, subject: SubjectRecipe, data: PretrainingData, store: Store):
        return load_subject(self.recipe_for(subject), data, self.pretrained, self.ws, store).model


def analysis_spec(subject: SubjectRecipe) -> ModelSpec:
    """The model read block by block in chapters 2-4 and 6 (W_S = `analysis_ws`)."""
    return ModelSpec(subject.ws, True, subject.model)


def series_specs(subject: SubjectRecipe) -> list[ModelSpec]:
    """Every model of the W_S series (an external checkpoint: it alone); with `equal_steps`, the
    equal-steps model of every W_S but the largest (which both series share); then the untrained
    baseline."""
    untrained = ModelSpec(subject.ws, False)
    if subject.external:
        return [analysis_spec(subject), untrained]
    ws_list = subject.series.ws_list
    largest = max(ws_list)
    steps = [ModelSpec(ws, True, series="steps") for ws in ws_list
             if ws != largest] if has_equal_steps(subject.series) else []
    return [ModelSpec(ws, True) for ws in ws_list] + steps + [untrained]


def series_models(subject: SubjectRecipe, series: str = "epochs") -> list[ModelSpec]:
    """The pre-trained models of one series, smallest W_S first: "epochs" the W_S series (an
    external checkpoint: it alone), "steps" the equal-steps models and the largest W_S's model
    (shared by both series); [] for "steps" where the recipe has no equal-steps series."""
    if series not in SERIES_NAMES:
        raise ValueError(f"series={series!r}: must be one of {', '.join(SERIES_NAMES)}")
    if series == "steps" and not has_equal_steps(subject.series):
        return []
    largest = max(subject.series.ws_list)
    chosen = [s for s in series_specs(subject) if s.pretrained
              and (s.series == series or (s.ws == largest and not s.checkpoint))]
    return sorted(chosen, key=lambda s: s.ws)


def split_rows(task: Task, split: str, pooling: str) -> SplitRows:
    """ids, labels and (entity pooling only) the checked entity positions of one split."""
    entities = task.entity_positions(split) if pooling == "entity" else None
    return SplitRows(task.array(f"{split}_ids"), task.array(f"{split}_labels"), entities)


def pooling_key(recipe: PoolingRecipe, task: Task) -> dict:
    """The read-out's part of an artifact key: the task's pooling."""
    return {"pooling": task_pooling(recipe, task.name)}


def task_features(recipe: FinetuneRecipe, task: Task, spec: ModelSpec, data: PretrainingData,
                  store: Store) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) pooled features of every block, float32 [blocks + 1, N, W] (W = hidden, or
    2 x hidden for entity pooling); cached in the store as float16."""
    precision = recipe.head.precision
    params = {"model": spec.key(recipe.subject, data), "task": task.folder.name,
              **pooling_key(recipe.pooling, task), "precision": precision}
    pooling = task_pooling(recipe.pooling, task.name)

    def build(folder: Path) -> None:
        model = spec.load(recipe.subject, data, store)
        for split in ("train", "test"):
            rows = split_rows(task, split, pooling)
            features = pooled_block_features(model, rows.ids, pooling, rows.entities,
                                             recipe.device, precision)
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


def build_frozen(folder: Path, recipe: FinetuneRecipe, task: Task, spec: ModelSpec,
                 data: PretrainingData, store: Store) -> None:
    """Fit a linear head per block on cached features; save test predictions and confusions."""
    started = time.time()
    train, test = task_features(recipe, task, spec, data, store)
    train_labels = torch.as_tensor(task.array("train_labels")).long()
    classes = len(task.label_names)
    heads = fit_linear_heads(train, train_labels, classes, recipe.head.head_l2,
                             recipe.head.head_steps)
    with torch.no_grad():
        train_accuracy = (heads.logits(train).argmax(-1) == train_labels).float().mean(1).tolist()
        probabilities = heads.logits(test).softmax(-1)
    save_predictions(folder, probabilities, task.array("test_labels"), train_accuracy,
                     {"blocks": list(range(len(train))), "wall_seconds": time.time() - started})


def build_full(folder: Path, recipe: FinetuneRecipe, task: Task, spec: ModelSpec, block: int,
               data: PretrainingData, store: Store) -> None:
    """Fine-tune the model cut after `block` end to end; save its test predictions."""
    started = time.time()
    pooling = task_pooling(recipe.pooling, task.name)
    params = {"model": spec.key(recipe.subject, data), "task": task.folder.name, "block": block}
    run = fine_tune_block(spec.load(recipe.subject, data, store), block, pooling,
                          len(task.label_names), split_rows(task, "train", pooling),
                          split_rows(task, "test", pooling), recipe.full, recipe.device,
                          store.work_dir("finetune-full", params))
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


def full_blocks(recipe: FinetuneRecipe) -> tuple[int, ...]:
    """The blocks of full fine-tuning, checked against the model depth."""
    blocks, layers = recipe.finetune_full_blocks, recipe.subject.series.training.num_layers
    if max(blocks) > layers:
        raise ParameterError(f"finetune_full_blocks={','.join(map(str, blocks))}: blocks run "
                             f"0..{layers} (num_layers={layers})")
    return blocks


def finetune_result(recipe: FinetuneRecipe, task: Task, spec: ModelSpec, protocol: str,
                    data: PretrainingData, store: Store) -> FinetuneResult:
    """One (task, model, protocol) result from the store, built (and announced) when missing."""
    model_key = spec.key(recipe.subject, data)
    pooling = pooling_key(recipe.pooling, task)
    if protocol == "frozen":
        params = [{"model": model_key, "task": task.folder.name, "protocol": "frozen",
                   **pooling, **recipe.head.key()}]
        builders = [lambda f: build_frozen(f, recipe, task, spec, data, store)]
    else:
        blocks = full_blocks(recipe)
        params = [{"model": model_key, "task": task.folder.name, "protocol": "full", "block": b,
                   **pooling, **recipe.full.key()} for b in blocks]
        builders = [lambda f, b=b: build_full(f, recipe, task, spec, b, data, store) for b in blocks]
    folders = []
    for key, build in zip(params, builders):
        if store.get("finetune", key) is None:
            print(f"{task.title}, {spec.label}: {PROTOCOL_NAMES[protocol]}"
                  + (f", block {key['block']}" if "block" in key else "") + " ...", flush=True)
        folders.append(store.get_or_build("finetune", key, build))
    return read_result(folders, task, spec, protocol)


def finetune_all(recipe: FinetuneRecipe, store: Store | None = None,
                 data: PretrainingData | None = None,
                 specs: list[ModelSpec] | None = None) -> list[FinetuneResult]:
    """Every task x model x protocol of this recipe; models: `specs`, by default the W_S series
    and the untrained baseline."""
    store = store or Store()
    data = data or pretraining_data(recipe.subject.series.data, store)
    tasks = load_tasks(recipe.tasks, data, store)
    protocols = recipe.finetune_protocols.split(",")
    return [finetune_result(recipe, tasks[name], spec, protocol, data, store)
            for name in TASKS for spec in specs or series_specs(recipe.subject)
            for protocol in protocols]
