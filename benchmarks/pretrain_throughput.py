"""Pre-training throughput: the book's Trainer set-up against a plain Trainer baseline.

Same model size, same data (the profile's W_S pool), same batch, in one run, so the ratio holds
on any machine. Variants:
  baseline       BertForMaskedLM + DataCollatorForLanguageModeling, Trainer defaults (fp32, dense head)
  baseline-bf16  the same with bf16 autocast
  book           aptutils: sparse MLM head, bf16 autocast, eager attention on CPU, fused AdamW

    python benchmarks/pretrain_throughput.py [--profile cpu] [--steps 40] [--warmup 5]
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import (
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from aptutils.core.device import resolved_device
from aptutils.core.params import resolve
from aptutils.data.masking import MLMCollator
from aptutils.data.pretraining import pretraining_data
from aptutils.models.bert import bert_config, new_model
from aptutils.training.pretrain import TokenRows


class StepClock(TrainerCallback):
    """Wall time from the end of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.started, self.seconds = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.started = time.perf_counter()
        if state.global_step == state.max_steps:
            self.seconds = time.perf_counter() - self.started


def tokens_per_second(model, collator, rows, settings, steps: int, warmup: int, bf16: bool,
                      optim: str) -> float:
    args = TrainingArguments(
        output_dir="/tmp/aptbook-benchmark", per_device_train_batch_size=settings.batch_size,
        max_steps=steps, learning_rate=settings.learning_rate, bf16=bf16, optim=optim,
        use_cpu=resolved_device(settings) == "cpu", save_strategy="no", report_to="none",
        logging_steps=10_000, disable_tqdm=True, remove_unused_columns=False,
    )
    clock = StepClock(warmup)
    Trainer(model=model, args=args, train_dataset=TokenRows(rows), data_collator=collator,
            callbacks=[clock]).train()
    return (steps - warmup) * settings.batch_size * rows.shape[1] / clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    options = parser.parse_args()
    hf_logging.set_verbosity_error()
    settings = resolve({"profile": options.profile})
    data = pretraining_data(settings)
    tokenizer = data.tokenizer
    rows = data.samples.train_slice(options.steps * settings.batch_size)
    device = resolved_device(settings)
    dense_collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=settings.mask_prob)
    results = {}
    for name, bf16 in (("baseline", False), ("baseline-bf16", True)):
        torch.manual_seed(settings.seed)
        model = BertForMaskedLM(bert_config(settings, len(tokenizer), tokenizer.pad_token_id))
        results[name] = tokens_per_second(model, dense_collator, rows, settings, options.steps,
                                          options.warmup, bf16, "adamw_torch")
    model = new_model(settings, len(tokenizer), tokenizer.pad_token_id, device)
    results["book"] = tokens_per_second(model, MLMCollator(tokenizer, settings.mask_prob), rows,
                                        settings, options.steps, options.warmup,
                                        settings.precision == "bf16", "adamw_torch_fused")
    report = {
        "profile": options.profile, "device": device, "threads": torch.get_num_threads(),
        "hidden_size": settings.hidden_size, "vocab": len(tokenizer), "batch": settings.batch_size,
        "tokens_per_second": {k: round(v) for k, v in results.items()},
        "speed-up vs baseline": round(results["book"] / results["baseline"], 2),
        "speed-up vs baseline-bf16": round(results["book"] / results["baseline-bf16"], 2),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
