"""Live progress bars where a person watches a terminal, never in a notebook's outputs.

`python -m aptutils book` run in a terminal sets $APTBOOK_LIVE_PROGRESS to a path of that
terminal (`/proc/<its pid>/fd/2`); each chapter's kernel opens it and draws its bars there:
pre-training steps with loss and rate, probe / tuned-lens / CNN training, the counting pass,
fine-tuning. A chapter run with the `papermill` command in a terminal draws them on papermill's
terminal the same way (the kernel finds it through its parent process). papermill copies only
what the kernel prints into the notebook, where long work keeps one line per evaluation. Else
bars go to this process's stderr if it is a terminal (a script, an interactive session), or
nowhere.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any, Iterable

from tqdm import tqdm

LIVE_VARIABLE = "APTBOOK_LIVE_PROGRESS"
_opened: dict[str, IO[str]] = {}


def terminal_path() -> str | None:
    """A path that reaches this process's terminal from another process (its kernels), or None
    when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    return f"/proc/{os.getpid()}/fd/{sys.stderr.fileno()}"


def papermill_terminal(parent: str | None = None) -> str | None:
    """The terminal of the `papermill` command whose kernel this process is (`/proc/<its
    pid>/fd/2` when that is a terminal), else None. parent: its /proc folder (default: this
    process's parent)."""
    parent = parent or f"/proc/{os.getppid()}"
    try:
        command = Path(parent, "cmdline").read_bytes().split(b"\0")
        terminal = os.path.realpath(f"{parent}/fd/2")
    except OSError:
        return None
    runs_papermill = any(os.path.basename(part) == b"papermill" for part in command[:3])
    on_terminal = terminal.startswith(("/dev/pts/", "/dev/tty"))
    return f"{parent}/fd/2" if runs_papermill and on_terminal else None


def live_stream() -> IO[str] | None:
    """The stream to draw live bars on: $APTBOOK_LIVE_PROGRESS opened for writing (once), else
    the terminal of the papermill command running this kernel, else a terminal stderr, else
    None."""
    path = os.environ.get(LIVE_VARIABLE) or papermill_terminal()
    if path:
        if path not in _opened:
            try:
                _opened[path] = open(path, "w", buffering=1)  # noqa: SIM115 - kept for the process
            except OSError:
                return None
        return _opened[path]
    return sys.stderr if sys.stderr.isatty() else None


def live_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "",
             unit: str = "step") -> Any:
    """A tqdm bar on the live stream (disabled where there is none): rate and time left included."""
    stream = live_stream()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, disable=stream is None,
                mininterval=1.0, dynamic_ncols=True)


def trainer_progress(desc: str, tokens_per_step: int | None = None) -> Any:
    """A `transformers.TrainerCallback` drawing the training steps as a live bar (main process
    only), with the last logged loss and, given `tokens_per_step`, the rate in tokens/s."""
    from transformers import TrainerCallback

    class LiveSteps(TrainerCallback):
        bar, first_step = None, 0

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = live_bar(total=state.max_steps, desc=desc)
                self.bar.update(state.global_step)  # a resumed run starts where it stopped
                self.first_step = state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is None or not logs or "loss" not in logs:
                return
            shown = {"loss": f"{logs['loss']:.3f}"}
            elapsed = self.bar.format_dict["elapsed"]
            if tokens_per_step and elapsed > 0:
                steps = self.bar.n - self.first_step
                shown["tokens/s"] = f"{steps * tokens_per_step / elapsed:,.0f}"
            self.bar.set_postfix(shown, refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return LiveSteps()
