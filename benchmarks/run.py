"""Every benchmark of the book in one command, one line each:

    name: value unit (baseline ..., ratio N.NNx, target ...)

    APTBOOK_DATA=../shared/data .venv/bin/python benchmarks/run.py --quick   # a few minutes
    APTBOOK_DATA=../shared/data .venv/bin/python benchmarks/run.py           # full: rewrites RESULTS.md
    .venv/bin/python benchmarks/run.py --only pretrain,mfu --profile gpu     # on a GPU machine

Benchmarks (each a ratio measured in this one run, so it holds better than the machine's speed):
  pretrain  the book's pre-training tokens/s against a plain Trainer + DataCollatorForLanguageModeling
            + dense BertForMaskedLM, fp32 and bf16, alternated (pretrain_throughput.py)
  mfu       that pre-training's FLOP/s against the bf16 and fp32 matrix peak measured here
  readout   the all-blocks counting pass with every reader against one plain MLM forward over the
            same W_test, its bf16 floor (not exact) and its peak memory at vocab 30,522
            (counting_pass.py)
  probe     probe / tuned-lens training positions/s against the same heads trained block by block
            with a plain loop (probe_training.py)
  external  chapter 2's reading of an external 6-layer, width-384 BERT with the 30,522-token
            vocabulary (random weights, a timing only): probes, tuned lens and counting of the
            model and its untrained copy (external_reading.py)
  book      wall time per chapter of the last build, from book/execution.json
`--profile gpu` measures pretrain and mfu on CUDA (GEMM 8192^2); readout and probe run on the CPU.

The full run writes a "Latest run" section (date, machine, commit, the lines) at the top of
RESULTS.md and keeps the sections below it. Run it on a quiet machine: two torch jobs at once on
two cores distort every timing.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import counting_pass
import external_reading
import pretrain_throughput
import probe_training

from aptutils.core.device import resolved_device
from aptutils.core.params import resolve
from aptutils.core.store import REPO_ROOT, absolute_path_variables

BENCHMARKS = ("pretrain", "mfu", "readout", "probe", "external", "book")
# sizes of each mode; tiny is the tests' (seconds, numbers meaningless)
SIZES = {
    "full": {"steps": 40, "warmup": 5, "rounds": 3, "gemm": 2048, "readout_samples": 1_000,
             "readout_vocab": 30_522, "isolated": True, "probe_steps": 100,
             "probe_positions": 20_000, "external": external_reading.SHAPE, "external_knobs": {}},
    "quick": {"steps": 12, "warmup": 3, "rounds": 1, "gemm": 1024, "readout_samples": 200,
              "readout_vocab": 30_522, "isolated": True, "probe_steps": 20,
              "probe_positions": 5_000, "external": external_reading.SHAPE,
              "external_knobs": external_reading.QUICK_KNOBS},
    "tiny": {"steps": 3, "warmup": 1, "rounds": 1, "gemm": 64, "readout_samples": 8,
             "readout_vocab": 300, "isolated": False, "probe_steps": 2, "probe_positions": 64,
             "external": external_reading.TINY_SHAPE, "external_knobs": {}},
}
MFU_TARGET = 0.55  # of the bf16 GEMM peak; below it the profiler says what is in the way
LATEST_START, LATEST_END = "<!-- latest run: benchmarks/run.py -->", "<!-- end of latest run -->"


@dataclass(frozen=True)
class Line:
    """One measured figure, against its baseline and target."""

    name: str
    value: float
    unit: str
    baseline: str
    ratio: float | None
    target: str
    detail: str = ""  # a second, indented line (e.g. what the profiler shows in the way)

    def __str__(self) -> str:
        ratio = f", ratio {self.ratio:.2f}x" if self.ratio is not None else ""
        digits = 0 if abs(self.value) >= 100 or float(self.value).is_integer() else 2
        return (f"{self.name}: {self.value:,.{digits}f} {self.unit} "
                f"(baseline {self.baseline}{ratio}, target {self.target})")


def pretrain_lines(settings, size: dict, measured: dict) -> list[Line]:
    measured.update(pretrain_throughput.measure(settings, size["steps"], size["warmup"],
                                                size["rounds"]))
    book = measured["book"]
    return [Line("pretrain vs plain fp32", book, "tokens/s", f"plain Trainer fp32 {measured['baseline']:,.0f} "
                 "tokens/s", book / measured["baseline"], ">= 3.5x"),
            Line("pretrain vs plain bf16", book, "tokens/s", f"plain Trainer bf16 {measured['baseline-bf16']:,.0f} "
                 "tokens/s", book / measured["baseline-bf16"], ">= 3.0x")]


def mfu_lines(settings, size: dict, measured: dict, vocab: int) -> list[Line]:
    device = resolved_device(settings.device)
    if "book" not in measured:
        measured.update(pretrain_throughput.measure(settings, size["steps"], size["warmup"], 1))
    per_token, formula = pretrain_throughput.flop_per_token(settings, vocab)
    achieved = measured["book"] * per_token / 1e9
    lines, gemm = [], size["gemm"] if device == "cpu" else max(size["gemm"], 8192)
    for dtype, target in ((torch.bfloat16, f">= {MFU_TARGET}x"), (torch.float32, "none")):
        peak = pretrain_throughput.gemm_peak(dtype, device, gemm) / 1e9
        name = str(dtype).split(".")[1].replace("bfloat16", "bf16").replace("float32", "fp32")
        lines.append(Line(f"mfu vs {name} peak", achieved, "GFLOP/s",
                          f"{name} GEMM {gemm}^2 {peak:,.0f} GFLOP/s", achieved / peak, target))
    print(f"  (FLOP per token {per_token / 1e6:.2f} M = {formula}; book at "
          f"{measured['book']:,.0f} tokens/s in {settings.precision})", flush=True)
    if lines[0].ratio < MFU_TARGET:
        ops = pretrain_throughput.profiled_ops(settings, size["steps"])
        lines[0] = dataclasses.replace(lines[0], detail="in the way (torch.profiler, self CPU "
                                       "time): " + ", ".join(f"{name} {share:.0%}"
                                                             for name, share in ops))
    return lines


def readout_lines(size: dict, hidden: int) -> list[Line]:
    results = counting_pass.measure(size["readout_vocab"], hidden, size["readout_samples"],
                                    size["isolated"])
    counting, floor = results["counting"], results["counting-bf16-floor"]
    return [Line(f"readout vs plain {precision}", counting["seconds"], "s",
                 f"one plain MLM forward {precision} {results[f'plain-{precision}']['seconds']:.2f} s",
                 counting["seconds"] / results[f"plain-{precision}"]["seconds"], target)
            for precision, target in (("fp32", "<= 1.3x"), ("bf16", "<= 1.2x"))] + [
        Line("readout bf16 floor vs plain bf16", floor["seconds"], "s",
             f"one plain MLM forward bf16 {results['plain-bf16']['seconds']:.2f} s",
             floor["seconds"] / results["plain-bf16"]["seconds"], "<= 1.2x",
             detail="every argmax over bf16 logits: not exact, the floor of any bf16 screen"),
        Line("readout peak memory", counting["peak_rss_gb"], "GB",
             f"plain fp32 forward {results['plain-fp32']['peak_rss_gb']:.2f} GB",
             counting["peak_rss_gb"] / results["plain-fp32"]["peak_rss_gb"],
             f"<= 4 GB at vocab {size['readout_vocab']:,}")]


def probe_lines(profile: str, size: dict, vocab: int) -> list[Line]:
    measured = probe_training.measure(profile, vocab, size["probe_steps"], size["probe_positions"])
    return [Line(f"probe {title}", measured[name], "positions/s",
                 f"block by block, plain loop {measured[f'{name}-plain']:,.0f} positions/s",
                 measured[name] / measured[f"{name}-plain"], "none set")
            for name, title in (("probe", "heads"), ("tuned-lens", "tuned lens"))]


def external_lines(profile: str, size: dict) -> list[Line]:
    """Chapter 2's reading of an external 30k-vocabulary checkpoint, in minutes (its own store)."""
    shape, knobs = size["external"], size["external_knobs"]
    measured = external_reading.measure(profile, knobs, shape)
    changed = "".join(f" -p {knob} {value}" for knob, value in knobs.items())
    return [Line("external reading", measured["total"] / 60, "min",
                 f"none: {shape['num_hidden_layers']} x {shape['hidden_size']} BERT, vocab 30,522, "
                 f"{profile} profile{changed}, {measured['positions']:,} W_test positions counted, "
                 f"probe {measured['probe objective'].split(':')[0]} {measured['probe steps']:,} "
                 f"steps, tuned lens {measured['tuned-lens steps']:,} steps", None,
                 "<= 10 min on two cores")]


def book_lines(record: Path = REPO_ROOT / "book" / "execution.json") -> list[Line]:
    """One line per chapter of the last build, and the total."""
    if not record.is_file():
        return []
    chapters = json.loads(record.read_text())
    lines = [Line(f"book {name}", entry["seconds"], "s",
                  f"none: {entry.get('profile', '?')} profile on {entry.get('device', '?')}, "
                  f"{entry.get('date', '?')}, commit {entry.get('commit', '?')}", None, "none")
             for name, entry in sorted(chapters.items())]
    total = sum(entry["seconds"] for entry in chapters.values())
    return lines + [Line("book total", total / 60, "min", "none: the chapters above, one after "
                         "another", None, "README test command from a fresh clone <= 60 min")]


def run_all(mode: str, only: tuple[str, ...] = BENCHMARKS, profile: str = "cpu") -> list[Line]:
    """Every benchmark in `only`, each line printed as it is measured."""
    size = SIZES[mode]
    settings = resolve({"profile": "smoke" if mode == "tiny" else profile})
    vocab = settings.vocab_size
    measured: dict[str, float] = {}
    work = {"pretrain": lambda: pretrain_lines(settings, size, measured),
            "mfu": lambda: mfu_lines(settings, size, measured, vocab),
            "readout": lambda: readout_lines(size, settings.hidden_size),
            "probe": lambda: probe_lines(settings.profile, size, vocab),
            "external": lambda: external_lines(settings.profile, size),
            "book": book_lines}
    lines = []
    for name in only:
        for line in work[name]():
            print(line, flush=True)
            if line.detail:
                print(f"  {line.detail}", flush=True)
            lines.append(line)
    return lines


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").is_file() else platform.processor()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} torch threads{gpu}; torch {torch.__version__}"


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    return git("rev-parse", "--short=10", "HEAD") + (" (with uncommitted changes)"
                                                      if git("status", "--porcelain", "-uno") else "")


def write_results(lines: list[Line], results: Path = HERE / "RESULTS.md") -> None:
    """The latest run at the top of RESULTS.md (replacing the previous one), the rest kept."""
    text = results.read_text() if results.is_file() else "# Measured results\n"
    if LATEST_START in text:
        before, rest = text.split(LATEST_START, 1)
        after = rest.split(LATEST_END, 1)[1].lstrip("\n")
    else:
        title, _, after = text.partition("\n")
        before = title + "\n\n"
    when = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    section = "\n".join([LATEST_START, "## Latest run (`benchmarks/run.py`)", "",
                         f"{when}; {machine()}; commit {commit()}.", "", "```",
                         *[text for line in lines
                           for text in (str(line), *([f"  {line.detail}"] if line.detail else []))],
                         "```", LATEST_END, ""])
    results.write_text(before + section + "\n" + after.lstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes; RESULTS.md untouched")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks")
    parser.add_argument("--profile", default="cpu", help="the book profile measured (cpu or gpu)")
    args = parser.parse_args(argv)
    absolute_path_variables()
    only = tuple(name for name in args.only.split(",") if name)
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}: choose among {', '.join(BENCHMARKS)}")
    lines = run_all("quick" if args.quick else "full", only, args.profile)
    if not args.quick:
        write_results(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
