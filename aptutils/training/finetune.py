"""Per-block fine-tuning on FewRel and DBpedia-14: a classifier on top of blocks 0..b for every b.

Two protocols. `frozen` (the default): the trunk stays fixed; one forward pass with
`output_hidden_states` gives every block's pooled sentence vector (cached as an artifact), and a
linear softmax head per block is fitted to the standardised vectors by full-batch L-BFGS with an
L2 penalty (a convex problem: deterministic, converged, and a few seconds for all blocks at once).
`full`: the model cut after block b (blocks above dropped) plus a pooled linear head is fine-tuned
end to end with `transformers.Trainer`. Every model of the W_S series and the untrained model of
the same architecture are fine-tuned; each result (per-sample confidence and prediction on the
test set, per-block confusion) is an artifact keyed by exactly its knobs. Used by chapters 5 and 6.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from ..core.device import autocast, resolved_device
from ..core.errors import ParameterError
from ..core.params import Settings
from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from ..data.tasks import TASKS, Task, load_tasks
from ..training.pretrain import analysis_ws, model_params, readout_model

PROTOCOL_NAMES = {"frozen": "frozen trunk, linear head", "full": "full fine-tuning"}
HEAD_KNOBS = ("pooling", "precision", "head_steps", "head_l2")
FULL_KNOBS = ("pooling", "finetune_epochs", "finetune_lr", "finetune_batch", "weight_decay",
              "warmup_ratio", "dropout", "precision", "seed")


FEATURE_BATCH = 64


@dataclass(frozen=True)
class ModelSpec:
    """One trunk to fine-tune: the model pre-trained on W_S samples, or (pretrained=False) the
    same architecture with random weights (seeded)."""

    ws: int
    pretrained: bool

    @property
    def label(self) -> str:
        return f"W_S={self.ws:,}" if self.pretrained else "untrained"

    def key(self, settings: Settings, data: PretrainingData) -> dict:
        """The model's part of an artifact key (the same as the readout chapters use)."""
        base = model_params(settings, data, self.ws)
        return base if self.pretrained else {**base, "untrained": True}

    def load(self, settings: Settings, data: PretrainingData, store: Store):
        return readout_model(settings, self.ws, self.pretrained, data, store)[0]


def analysis_spec(settings: Settings) -> ModelSpec:
    """The model read block by block in chapters 2-4 and 6 (W_S = `analysis_ws`)."""
    return ModelSpec(analysis_ws(settings), True)


def series_specs(settings: Settings) -> list[ModelSpec]:
    """Every model of the W_S series, then the untrained baseline."""
    return [ModelSpec(ws, True) for ws in settings.ws_list] + [ModelSpec(analysis_ws(settings), False)]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence vectors [B, H] from token states [B, L, H]: the [CLS] state, or the mean over the
    positions where attention_mask [B, L] is 1."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def length_batches(ids: np.ndarray, pad_id: int, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length (shortest first), to trim padding per batch."""
    order = np.argsort((np.asarray(ids) != pad_id).sum(1), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def trimmed_batch(ids: np.ndarray, rows: np.ndarray, pad_id: int, device: str):
    """(input_ids, attention_mask) of some rows, cut to their longest non-pad length."""
    batch = torch.as_tensor(np.asarray(ids)[rows]).long()
    mask = batch != pad_id
    width = int(mask.sum(1).max())
    return batch[:, :width].to(device), mask[:, :width].long().to(device)


@torch.no_grad()
def pooled_block_features(model, ids: np.ndarray, pooling: str, device: str = "cpu",
                          precision: str = "fp32", batch_size: int = FEATURE_BATCH) -> torch.Tensor:
    """Pooled output of every block from one pass: float32 [blocks + 1, N, hidden] (0 = embeddings)."""
    model.eval().to(device)
    pad_id = model.config.pad_token_id
    blocks = model.config.num_hidden_layers + 1
    features = torch.zeros(blocks, len(ids), model.config.hidden_size)
    for rows in length_batches(ids, pad_id, batch_size):
        batch, mask = trimmed_batch(ids, rows, pad_id, device)
        with autocast(device, precision):
            hidden = model.bert(input_ids=batch, attention_mask=mask,
                                output_hidden_states=True).hidden_states
        pooled = torch.stack([pool(h, mask, pooling) for h in hidden])
        features[:, torch.as_tensor(rows)] = pooled.float().cpu()
    return features


def task_features(settings: Settings, task: Task, spec: ModelSpec, data: PretrainingData,
                  store: Store) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) pooled features of every block, float32 [blocks + 1, N, hidden]; cached
    in the store as float16."""
    params = {"model": spec.key(settings, data), "task": task.folder.name,
              **settings.subset(("pooling", "precision"))}

    def build(folder: Path) -> None:
        model = spec.load(settings, data, store)
        for split in ("train", "test"):
            features = pooled_block_features(model, task.array(f"{split}_ids"), settings.pooling,
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


class BlockClassifier(torch.nn.Module):
    """Embeddings and transformer blocks 1..b of a BERT trunk (those above dropped), pooled,
    then dropout and a linear layer over the labels."""

    def __init__(self, bert, block: int, pooling: str, classes: int, dropout: float):
        super().__init__()
        bert.encoder.layer = bert.encoder.layer[:block]
        self.bert, self.pooling = bert, pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(bert.config.hidden_size, classes)

    def forward(self, input_ids, attention_mask, labels=None) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.classifier(self.dropout(pool(hidden, attention_mask, self.pooling)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LabelledRows(torch.utils.data.Dataset):
    """Rows of an [N, L] id array with their labels [N]."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray):
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": torch.as_tensor(self.ids[index]).long(),
                "labels": torch.as_tensor(self.labels[index]).long()}


class TrimmingCollator:
    """Stacks rows and cuts the batch to its longest non-pad length, with the attention mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        ids = torch.stack([row["input_ids"] for row in rows])
        mask = ids != self.pad_id
        width = int(mask.sum(1).max())
        return {"input_ids": ids[:, :width], "attention_mask": mask[:, :width].long(),
                "labels": torch.stack([row["labels"] for row in rows])}


@torch.no_grad()
def class_probabilities(classifier: BlockClassifier, ids: np.ndarray, pad_id: int, device: str,
                        precision: str) -> torch.Tensor:
    """Softmax over the labels for every row: float32 [N, C]."""
    classifier.eval().to(device)
    out = torch.zeros(len(ids), classifier.classifier.out_features)
    for rows in length_batches(ids, pad_id, FEATURE_BATCH):
        batch, mask = trimmed_batch(ids, rows, pad_id, device)
        with autocast(device, precision):
            out[torch.as_tensor(rows)] = classifier(batch, mask).logits.float().softmax(-1).cpu()
    return out


def full_training_arguments(settings: Settings, work_dir: Path, samples: int) -> TrainingArguments:
    """AdamW with linear warm-up and decay, no checkpoints (a run is short), seeded."""
    device = resolved_device(settings)
    steps = math.ceil(settings.finetune_epochs * math.ceil(samples / settings.finetune_batch))
    return TrainingArguments(
        output_dir=str(work_dir), per_device_train_batch_size=settings.finetune_batch,
        learning_rate=settings.finetune_lr, weight_decay=settings.weight_decay, max_steps=steps,
        warmup_steps=int(settings.warmup_ratio * steps), lr_scheduler_type="linear",
        optim="adamw_torch_fused", bf16=settings.precision == "bf16",
        fp16=settings.precision == "fp16", use_cpu=device == "cpu", eval_strategy="no",
        save_strategy="no", logging_steps=max(1, steps // 5), seed=settings.seed,
        data_seed=settings.seed, report_to="none", remove_unused_columns=False,
        disable_tqdm=not sys.stderr.isatty(), dataloader_num_workers=0,
    )


def build_full(folder: Path, settings: Settings, task: Task, spec: ModelSpec, block: int,
               data: PretrainingData, store: Store) -> None:
    """Fine-tune the model cut after `block` end to end; save its test predictions."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    started = time.time()
    model = spec.load(settings, data, store)
    pad_id = model.config.pad_token_id
    classifier = BlockClassifier(model.bert, block, settings.pooling, len(task.label_names),
                                 settings.dropout)
    train_ids, train_labels = task.array("train_ids"), task.array("train_labels")
    params = {"model": spec.key(settings, data), "task": task.folder.name, "block": block}
    trainer = Trainer(model=classifier, args=full_training_arguments(
        settings, store.work_dir("finetune-full", params), len(train_ids)),
        train_dataset=LabelledRows(train_ids, train_labels), data_collator=TrimmingCollator(pad_id))
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    store.clear_work_dir("finetune-full", params)
    device, precision = resolved_device(settings), settings.precision
    train_accuracy = (class_probabilities(classifier, train_ids, pad_id, device, precision)
                      .argmax(-1).numpy() == train_labels).mean()
    probabilities = class_probabilities(classifier, task.array("test_ids"), pad_id, device, precision)
    save_predictions(folder, probabilities.unsqueeze(0), task.array("test_labels"),
                     [float(train_accuracy)], {"blocks": [block], "train_loss": result.training_loss,
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
                   **settings.subset(HEAD_KNOBS)}]
        builders = [lambda f: build_frozen(f, settings, task, spec, data, store)]
    else:
        blocks = full_blocks(settings)
        params = [{"model": model_key, "task": task.folder.name, "protocol": "full", "block": b,
                   **settings.subset(FULL_KNOBS)} for b in blocks]
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
