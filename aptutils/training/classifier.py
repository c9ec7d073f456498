"""Full fine-tuning of a truncated trunk: the model cut after block b, pooled, and a linear layer
over the labels, trained end to end with `transformers.Trainer` (chapter 5's `full` protocol).

The read-out is the task's pooling (`training.pooling`): for FewRel by default the states at the
head's and the tail's opening entity markers, [head; tail]. Used by chapters 5 and 6.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from ..core.device import autocast
from ..core.recipes import Recipe
from ..core.progress import trainer_progress
from ..training.pooling import (
    FEATURE_BATCH,
    batch_entities,
    length_batches,
    pool,
    pooled_width,
    trimmed_batch,
)


class BlockClassifier(torch.nn.Module):
    """Embeddings and transformer blocks 1..b of a BERT trunk (those above dropped), pooled,
    then dropout and a linear layer over the labels."""

    def __init__(self, bert, block: int, pooling: str, classes: int, dropout: float):
        super().__init__()
        bert.encoder.layer = bert.encoder.layer[:block]
        self.bert, self.pooling = bert, pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(pooled_width(bert.config.hidden_size, pooling), classes)

    def forward(self, input_ids, attention_mask, entities=None, labels=None) -> SequenceClassifierOutput:
        """input_ids, attention_mask [B, L]; entities [B, 2] (entity pooling); labels [B]."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.classifier(self.dropout(pool(hidden, attention_mask, self.pooling, entities)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LabelledRows(torch.utils.data.Dataset):
    """Rows of an [N, L] id array with their labels [N] and, for entity pooling, entities [N, 2]."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, entities: np.ndarray | None = None):
        self.ids, self.labels, self.entities = ids, labels, entities

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        row = {"input_ids": torch.as_tensor(self.ids[index]).long(),
               "labels": torch.as_tensor(self.labels[index]).long()}
        if self.entities is not None:
            row["entities"] = torch.as_tensor(self.entities[index]).long()
        return row


class TrimmingCollator:
    """Stacks rows and cuts the batch to its longest non-pad length, with the attention mask
    (entity positions, when the rows carry them, lie inside the non-pad part)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        ids = torch.stack([row["input_ids"] for row in rows])
        mask = ids != self.pad_id
        width = int(mask.sum(1).max())
        batch = {"input_ids": ids[:, :width], "attention_mask": mask[:, :width].long(),
                 "labels": torch.stack([row["labels"] for row in rows])}
        if "entities" in rows[0]:
            batch["entities"] = torch.stack([row["entities"] for row in rows])
        return batch


@torch.no_grad()
def class_probabilities(classifier: BlockClassifier, ids: np.ndarray, pad_id: int, device: str,
                        precision: str, entities: np.ndarray | None = None) -> torch.Tensor:
    """Softmax over the labels for every row of ids [N, L]: float32 [N, C]."""
    classifier.eval().to(device)
    out = torch.zeros(len(ids), classifier.classifier.out_features)
    for rows in length_batches(ids, pad_id, FEATURE_BATCH):
        batch, mask = trimmed_batch(ids, rows, pad_id, device)
        with autocast(device, precision):
            logits = classifier(batch, mask, batch_entities(entities, rows, device)).logits
        out[torch.as_tensor(rows)] = logits.float().softmax(-1).cpu()
    return out


@dataclass(frozen=True)
class FullRecipe(Recipe):
    """How a truncated model is fine-tuned end to end: exactly the knobs of its key."""

    finetune_epochs: float
    finetune_lr: float
    finetune_batch: int
    weight_decay: float
    warmup_ratio: float
    dropout: float
    precision: str
    seed: int


def full_training_arguments(recipe: FullRecipe, device: str, work_dir: Path,
                            samples: int) -> TrainingArguments:
    """AdamW with linear warm-up and decay, no checkpoints (a run is short), seeded."""
    steps = math.ceil(recipe.finetune_epochs * math.ceil(samples / recipe.finetune_batch))
    return TrainingArguments(
        output_dir=str(work_dir), per_device_train_batch_size=recipe.finetune_batch,
        learning_rate=recipe.finetune_lr, weight_decay=recipe.weight_decay, max_steps=steps,
        warmup_steps=int(recipe.warmup_ratio * steps), lr_scheduler_type="linear",
        optim="adamw_torch_fused", bf16=recipe.precision == "bf16",
        fp16=recipe.precision == "fp16", use_cpu=device == "cpu", eval_strategy="no",
        save_strategy="no", logging_steps=max(1, steps // 5), seed=recipe.seed,
        data_seed=recipe.seed, report_to="none", remove_unused_columns=False,
        disable_tqdm=True, dataloader_num_workers=0,  # core.progress draws the live bar
    )


@dataclass(frozen=True)
class SplitRows:
    """One split of a task as the classifier reads it: ids [N, L], labels [N], entities [N, 2]
    (None unless the pooling is entity)."""

    ids: np.ndarray
    labels: np.ndarray
    entities: np.ndarray | None


@dataclass(frozen=True)
class FullRun:
    """What one end-to-end fine-tuning gives: test probabilities [N_test, C], train accuracy
    and the mean training loss."""

    probabilities: torch.Tensor
    train_accuracy: float
    train_loss: float


def fine_tune_block(model, block: int, pooling: str, classes: int, train: SplitRows, test: SplitRows,
                    recipe: FullRecipe, device: str, work_dir: Path) -> FullRun:
    """Cut `model` (a BertForMaskedLM) after `block`, add a pooled linear head, fine-tune it end to
    end on `train` (on `device`) and read `test`."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    pad_id = model.config.pad_token_id
    classifier = BlockClassifier(model.bert, block, pooling, classes, recipe.dropout)
    trainer = Trainer(model=classifier,
                      args=full_training_arguments(recipe, device, work_dir, len(train.ids)),
                      train_dataset=LabelledRows(train.ids, train.labels, train.entities),
                      data_collator=TrimmingCollator(pad_id),
                      callbacks=[trainer_progress("full fine-tuning")])
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    precision = recipe.precision
    train_predicted = class_probabilities(classifier, train.ids, pad_id, device, precision,
                                          train.entities).argmax(-1).numpy()
    return FullRun(class_probabilities(classifier, test.ids, pad_id, device, precision, test.entities),
                   float((train_predicted == train.labels).mean()), float(result.training_loss))
