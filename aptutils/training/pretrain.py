"""Pre-training of BERT-6 with `transformers.Trainer`, one model per W_S, resumable.

`pretrained_model` returns the model of one W_S: the one published with the book when its recipe
matches, else the store's, training it when missing; `pretrain_series` does every W_S of the
profile. Runs on one CPU process, one GPU, or under torchrun / accelerate launch (DDP): there the
global batch is still `batch_size` samples, split over the processes, masked as one process masks
it and its loss averaged over all its modified positions, so the recipe (and the model's key) does
not depend on the number of processes (tests/test_distributed.py says how close the runs are).
Used by chapter 1, and by every later chapter through the store.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from ..core.counts import IGNORE, TokenCounts
from ..core.device import ComputeRecipe
from ..core.errors import ParameterError
from ..core.recipes import Recipe
from ..core.progress import trainer_progress
from ..core.store import Store
from ..data.masking import KIND_NAMES, MLMCollator, mask_tokens
from ..data.pretraining import DataRecipe, PretrainingData, pretraining_data
from ..models.bert import BertRecipe, SparseHeadBertForMaskedLM, new_model, parameter_count
from ..training.evaluation import heldout_counts
from ..training.published import published_folder



@dataclass(frozen=True)
class PretrainRecipe(Recipe):
    """How one model of the W_S series is pre-trained: exactly its knobs in its key (beside its
    samples and W_S), and where it runs (`compute`, not in the key)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    ffn_size: int | None
    dropout: float
    mask_prob: float
    batch_size: int
    learning_rate: float
    weight_decay: float
    epochs: float
    warmup_ratio: float
    eval_every: int
    precision: str
    seed: int
    compute: ComputeRecipe


@dataclass(frozen=True)
class SeriesRecipe(Recipe):
    """The W_S series: its data, how each model pre-trains, whether the published models are used
    (`pretrain`), and whether it is also trained at equal steps. With an external checkpoint
    (`model`) there is no series."""

    data: DataRecipe
    training: PretrainRecipe
    pretrain: str
    equal_steps: bool
    model: str | None

    @property
    def architecture(self) -> BertRecipe:
        """The architecture of its models (and the seed of their initialisation)."""
        training = self.training
        return BertRecipe(training.hidden_size, training.num_layers, training.num_heads,
                          training.ffn_size, training.dropout, self.data.samples.seq_len,
                          training.seed)

    @property
    def ws_list(self) -> tuple[int, ...]:
        return self.data.ws_list

    def with_epochs(self, epochs: float) -> "SeriesRecipe":
        """The same series trained for `epochs` passes (the equal-steps control)."""
        return replace(self, training=replace(self.training, epochs=epochs))


class TokenRows(torch.utils.data.Dataset):
    """Rows of a [N, L] id array as {"input_ids": row} samples."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": torch.as_tensor(self.rows[index]).long()}


class GlobalBatchCollator(MLMCollator):
    """`MLMCollator` for one of `world` processes, each holding a `1/world` share of the global
    batch (rank r the r-th share, as accelerate shards batches): the masks are drawn for the
    whole global batch and this rank keeps its rows, so each process's RNG advances as one
    process's would and the masks equal those of the single-process run."""

    def __init__(self, tokenizer, mask_prob: float, rank: int = 0, world: int = 1):
        super().__init__(tokenizer, mask_prob)
        self.rank, self.world = rank, world

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if self.world == 1:
            return super().__call__(features)
        ids = torch.stack([torch.as_tensor(f["input_ids"]).long() for f in features])
        mine = slice(self.rank * len(ids), (self.rank + 1) * len(ids))
        inputs, labels, _ = mask_tokens(ids.repeat(self.world, 1), self.special_ids, self.mask_id,
                                        self.vocab_size, self.mask_prob, seed=self.next_seed())
        return {"input_ids": inputs[mine], "attention_mask": (ids != self.pad_id).long(),
                "labels": labels[mine]}


class MLMTrainer(Trainer):
    """A Trainer whose evaluation counts right predictions on the fixed, masked W_test.

    Under DDP the loss of each process is its summed cross-entropy over the modified positions
    of the whole global batch (the Trainer gathers their count), so the averaged gradient is the
    single process's; one process keeps the model's own mean loss, bit for bit as before.
    """

    def __init__(self, *args, heldout: tuple[np.ndarray, np.ndarray, np.ndarray], **kwargs):
        super().__init__(*args, **kwargs)
        self.heldout = heldout
        self.started = time.time()  # wall time of each evaluation is logged from here (this process)
        self.model_accepts_loss_kwargs = self.args.world_size > 1  # count items across processes

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if num_items_in_batch is None:
            return super().compute_loss(model, inputs, return_outputs)
        outputs = model(**inputs)
        labels = inputs["labels"]
        summed = F.cross_entropy(outputs.logits.float(), labels[labels != IGNORE], reduction="sum")
        loss = summed / num_items_in_batch * self.accelerator.num_processes  # DDP averages
        return (loss, outputs) if return_outputs else loss

    def heldout_counts(self) -> TokenCounts:
        model = self.accelerator.unwrap_model(self.model)
        precision = "bf16" if self.args.bf16 else "fp32"
        return heldout_counts(model, *self.heldout, batch_size=self.args.per_device_eval_batch_size,
                              device=self.args.device, precision=precision)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        counts = self.heldout_counts()
        metrics = {f"{metric_key_prefix}_loss": counts.loss,
                   f"{metric_key_prefix}_accuracy": counts.accuracy,
                   f"{metric_key_prefix}_mean_apt": counts.mean_apt(),
                   **{f"{metric_key_prefix}_{kind}_accuracy": counts.kind_accuracy(kind)
                      for kind in KIND_NAMES.values()},
                   f"{metric_key_prefix}_masked_mean_apt": counts.mean_apt("masked"),
                   f"{metric_key_prefix}_seconds": time.time() - self.started}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class ProgressLines(TrainerCallback):
    """One line per evaluation (for notebooks and logs, where a live bar would flood the output)."""

    def __init__(self, label: str):
        self.label, self.started = label, time.time()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and metrics:
            elapsed = time.time() - self.started
            print(f"{self.label}: step {state.global_step}/{state.max_steps}, held-out loss "
                  f"{metrics['eval_loss']:.3f}, accuracy {metrics['eval_accuracy']:.3f}, "
                  f"<APT> {metrics['eval_mean_apt']:.3f}; masked: accuracy "
                  f"{metrics['eval_masked_accuracy']:.3f}, <APT> {metrics['eval_masked_mean_apt']:.3f}; "
                  f"{elapsed:.0f} s", flush=True)


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer state (written last) was written whole, so the
    save finished; a run killed while writing it resumes from the checkpoint before."""
    def complete(checkpoint: Path) -> bool:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):
            return False
        return True

    done = [p for p in folder.glob("checkpoint-*") if complete(p)]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def model_params(recipe: PretrainRecipe, data: PretrainingData, ws: int) -> dict:
    """Exactly what determines a pre-trained model: its samples, its knobs and W_S."""
    return {"samples": data.samples.folder.name, **recipe.key(), "ws": ws}


def training_arguments(recipe: PretrainRecipe, work_dir: Path, ws: int) -> TrainingArguments:
    """Trainer arguments: linear schedule with warm-up, AdamW, eval and checkpoint every eval_every.

    Under DDP each of the `WORLD_SIZE` processes takes `batch_size / WORLD_SIZE` samples a step
    (the global batch and the steps stay those of one process)."""
    device = recipe.compute.torch_device
    world = world_size()
    if recipe.batch_size % world:
        raise ParameterError(f"batch_size={recipe.batch_size}: must be divisible by the "
                             f"{world} processes (the global batch is split over them)")
    steps = math.ceil(recipe.epochs * math.ceil(ws / recipe.batch_size))
    return TrainingArguments(
        output_dir=str(work_dir), per_device_train_batch_size=recipe.batch_size // world,
        per_device_eval_batch_size=max(recipe.batch_size, 128), learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay, max_steps=steps,
        warmup_steps=int(recipe.warmup_ratio * steps), lr_scheduler_type="linear",
        optim="adamw_torch_fused", bf16=recipe.precision == "bf16",
        fp16=recipe.precision == "fp16", use_cpu=device == "cpu",
        eval_strategy="steps", eval_steps=recipe.eval_every, save_strategy="steps",
        save_steps=recipe.eval_every, save_total_limit=1, logging_steps=max(1, recipe.eval_every // 5),
        seed=recipe.seed, data_seed=recipe.seed, report_to="none", remove_unused_columns=False,
        disable_tqdm=True, dataloader_num_workers=0,  # core.progress draws the live bar
        torch_compile=recipe.compute.torch_compile, ddp_find_unused_parameters=False,
    )


def world_size() -> int:
    """Processes of this run: 1, or WORLD_SIZE under torchrun / accelerate launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the single process, or on rank 0 under torchrun / accelerate launch."""
    return int(os.environ.get("RANK", "0")) == 0


def quiet_progress_bars() -> None:
    """No live progress bars where nobody watches a terminal (notebooks, logs): they flood outputs."""
    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()


def train_mlm(folder: Path | None, series: SeriesRecipe, data: PretrainingData, ws: int,
              work_dir: Path) -> None:
    """Pre-train one model on W_S, resuming from the last checkpoint in `work_dir`.

    The main process saves model, card and log into `folder`; other DDP ranks pass None.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    quiet_progress_bars()
    recipe, seq_len = series.training, series.data.samples.seq_len
    tokenizer, samples = data.tokenizer, data.samples
    model = new_model(series.architecture, len(tokenizer), tokenizer.pad_token_id,
                      recipe.compute.torch_device)
    heldout = (samples.array("test_inputs"), samples.array("test_labels"), samples.array("test_kinds"))
    rows = samples.train_slice(ws)
    trainer = MLMTrainer(
        model=model, args=training_arguments(recipe, work_dir, ws), train_dataset=TokenRows(rows),
        eval_dataset=TokenRows(samples.array("test_ids")),
        data_collator=GlobalBatchCollator(tokenizer, recipe.mask_prob,
                                          int(os.environ.get("RANK", "0")), world_size()),
        callbacks=[ProgressLines(f"W_S={ws}"),
                   trainer_progress(f"pre-training W_S={ws}", recipe.batch_size * seq_len)],
        heldout=heldout,
    )
    trainer.remove_callback(PrinterCallback)
    resume = last_complete_checkpoint(work_dir)
    trainer.data_collator.seed = recipe.seed  # masks seeded by batch: see MLMCollator
    trainer.data_collator.batches = int(resume.name.split("-")[1]) if resume else 0
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.time() - started
    evaluated = [row for row in trainer.state.log_history if "eval_loss" in row]
    final = (evaluated[-1] if evaluated and evaluated[-1]["step"] == trainer.state.global_step
             else trainer.evaluate())
    if folder is None:
        return
    trainer.save_model(str(folder))
    tokens_per_sample = float((rows != tokenizer.pad_token_id).sum(1).mean())
    steps = trainer.state.global_step
    card = {
        "ws": ws, "parameters": parameter_count(model), "steps": steps,
        "tokens_seen": int(steps * recipe.batch_size * tokens_per_sample),
        "wall_seconds": wall, "resumed_from_step": int(resume.name.split("-")[1]) if resume else 0,
        "device": str(trainer.args.device), "processes": trainer.args.world_size,
        "train_loss": result.training_loss, "heldout_loss": final["eval_loss"],
        "heldout_accuracy": final["eval_accuracy"], "heldout_mean_apt": final["eval_mean_apt"],
    }
    (folder / "card.json").write_text(json.dumps(card, indent=1))
    (folder / "log_history.json").write_text(json.dumps(trainer.state.log_history))


@dataclass(frozen=True)
class PretrainedModel:
    """A pre-trained model (in the store or published with the book), its training log and card."""

    folder: Path

    def load(self) -> SparseHeadBertForMaskedLM:
        quiet_progress_bars()
        return SparseHeadBertForMaskedLM.from_pretrained(self.folder)

    @property
    def card(self) -> dict:
        return json.loads((self.folder / "card.json").read_text())

    @property
    def log(self) -> pd.DataFrame:
        """One row per logged step: columns step, loss (training), eval_loss, eval_accuracy, eval_mean_apt."""
        rows = json.loads((self.folder / "log_history.json").read_text())
        return pd.DataFrame(rows).groupby("step", as_index=False).first()


def pretrained_model(series: SeriesRecipe, ws: int, data: PretrainingData | None = None,
                     store: Store | None = None) -> PretrainedModel:
    """The model pre-trained on the first `ws` samples: published with the book (`pretrain=published`
    and the same recipe), else from the store, else trained now (saying so)."""
    store = store or Store()
    data = data or pretraining_data(series.data, store)
    params = model_params(series.training, data, ws)
    if series.pretrain == "published":
        published = published_folder(params)
        if published is not None:
            return PretrainedModel(published)
    found = store.get("model", params)
    if found is None:
        print(f"Pre-training W_S={ws} (not yet in the artifact store)", flush=True)
        work_dir = store.work_dir("model", params)
        if is_main_process():
            with store.writing("model", params) as folder:
                train_mlm(folder, series, data, ws, work_dir)
            store.clear_work_dir("model", params)
        else:
            train_mlm(None, series, data, ws, work_dir)
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
        found = store.path("model", params)
    return PretrainedModel(found)


def pretrain_series(series: SeriesRecipe, store: Store | None = None) -> dict[int, PretrainedModel]:
    """One pre-trained model per W_S in `ws_list`, smallest first."""
    store = store or Store()
    data = pretraining_data(series.data, store)
    return {ws: pretrained_model(series, ws, data, store) for ws in series.ws_list}
