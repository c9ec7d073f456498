"""Pre-training throughput and model FLOP utilisation (`run.py`'s `pretrain` and `mfu`).

Same model size, same data (the profile's W_S pool), same batch, the variants alternated in one
run, so the ratios hold on any machine:
  baseline       BertForMaskedLM + DataCollatorForLanguageModeling, Trainer defaults (fp32, dense head)
  baseline-bf16  the same with bf16 autocast
  book           the book's own Trainer arguments (`training.pretrain.training_arguments`: sparse
                 MLM head, the profile's precision, fused AdamW, torch_compile where the profile
                 sets it) with evaluation and checkpoints off
Tokens are the batch's positions, padding included (the model computes them all).
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from aptutils.core.device import resolved_device
from aptutils.data.masking import MLMCollator
from aptutils.data.pretraining import DataRecipe, pretraining_data
from aptutils.models.bert import BertRecipe, bert_config, new_model
from aptutils.training.pretrain import PretrainRecipe, TokenRows, training_arguments

VARIANTS = ("baseline", "baseline-bf16", "book")


class StepClock(TrainerCallback):
    """Wall time from the end of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.started, self.seconds = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.started = time.perf_counter()
        if state.global_step == state.max_steps:
            self.seconds = time.perf_counter() - self.started


def variant_arguments(variant: str, settings, steps: int, work_dir: str) -> TrainingArguments:
    """The book's Trainer arguments (evaluation, checkpoints and warm-up off), or the plain
    Trainer defaults of a user's baseline in fp32 or bf16."""
    if variant == "book":
        book = training_arguments(settings.recipe(PretrainRecipe), Path(work_dir), 1)
        return dataclasses.replace(book, max_steps=steps, warmup_steps=0, eval_strategy="no",
                                   save_strategy="no", logging_steps=10_000, disable_tqdm=True)
    return TrainingArguments(
        output_dir=work_dir, per_device_train_batch_size=settings.batch_size, max_steps=steps,
        learning_rate=settings.learning_rate, bf16=variant == "baseline-bf16", optim="adamw_torch",
        use_cpu=resolved_device(settings.device) == "cpu", save_strategy="no", report_to="none",
        logging_steps=10_000, disable_tqdm=True, remove_unused_columns=False)


def tokens_per_second(variant: str, settings, data, steps: int, warmup: int) -> float:
    """One short training run of `variant`; tokens per second after `warmup` steps."""
    tokenizer = data.tokenizer
    rows = data.samples.train_slice(steps * settings.batch_size)
    if variant == "book":
        model = new_model(settings.recipe(BertRecipe), len(tokenizer), tokenizer.pad_token_id,
                          resolved_device(settings.device))
        collator = MLMCollator(tokenizer, settings.mask_prob)
    else:
        torch.manual_seed(settings.seed)
        model = BertForMaskedLM(bert_config(settings.recipe(BertRecipe), len(tokenizer),
                                            tokenizer.pad_token_id))
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=settings.mask_prob)
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as work_dir:
        trainer = Trainer(model=model, args=variant_arguments(variant, settings, steps, work_dir),
                          train_dataset=TokenRows(rows), data_collator=collator, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return (steps - warmup) * settings.batch_size * rows.shape[1] / clock.seconds


def profiled_ops(settings, steps: int, top: int = 6) -> list[tuple[str, float]]:
    """What the book's pre-training spends its time on: torch.profiler over `steps` steps (after
    two unprofiled ones), the `top` operators by self CPU time, each with its share of the total."""
    from torch.profiler import ProfilerActivity, profile

    hf_logging.set_verbosity_error()
    data = pretraining_data(settings.recipe(DataRecipe))
    tokens_per_second("book", settings, data, 2, 1)  # warm-up: the first run pays for imports
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        tokens_per_second("book", settings, data, steps, 1)
    averages = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in averages)
    ranked = sorted(averages, key=lambda event: event.self_cpu_time_total, reverse=True)[:top]
    return [(event.key, event.self_cpu_time_total / total) for event in ranked]


def measure(settings, steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Median tokens/s of each variant over `rounds` rounds, the variants alternated."""
    hf_logging.set_verbosity_error()
    data = pretraining_data(settings.recipe(DataRecipe))
    measured = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            measured[variant].append(tokens_per_second(variant, settings, data, steps, warmup))
    return {variant: statistics.median(values) for variant, values in measured.items()}


def flop_per_token(settings, vocab: int) -> tuple[float, str]:
    """Training FLOP per token of the book's model (3 x forward: the backward pass costs two
    forwards), matrix products only, and the formula written out.

    Forward per token: 2 L (4 d^2 + 2 d f) in the blocks' linear maps, 4 L s d in attention
    (scores and the weighted sum), 2 p (d^2 + d V) in the MLM head, which the book runs on the
    modified share p of the positions only."""
    d, layers, seq, p = settings.hidden_size, settings.num_layers, settings.seq_len, settings.mask_prob
    f = settings.ffn_size or 4 * d
    forward = 2 * layers * (4 * d * d + 2 * d * f) + 4 * layers * seq * d + 2 * p * (d * d + d * vocab)
    formula = (f"3 x [2 L (4 d^2 + 2 d f) + 4 L s d + 2 p (d^2 + d V)] with L={layers}, d={d}, "
               f"f={f}, s={seq}, p={p}, V={vocab}")
    return 3 * forward, formula


def gemm_peak(dtype: torch.dtype, device: str, size: int, repeats: int = 5) -> float:
    """FLOP/s of a [size, size] x [size, size] matrix product in `dtype` (best of `repeats`)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best
