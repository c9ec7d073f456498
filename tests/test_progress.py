"""Live progress bars reach the watching terminal, and never a notebook's outputs."""
import json

import nbformat
import papermill

from aptutils.core.progress import LIVE_VARIABLE, live_bar, terminal_path


def test_a_bar_draws_on_the_named_terminal_and_nowhere_else(tmp_path, monkeypatch, capsys):
    terminal = tmp_path / "terminal"
    monkeypatch.setenv(LIVE_VARIABLE, str(terminal))
    for _ in live_bar(range(7), desc="probe heads"):
        pass
    drawn = terminal.read_text()
    assert "probe heads" in drawn and "7/7" in drawn
    assert capsys.readouterr() == ("", "")


def test_without_a_terminal_the_bar_is_off(monkeypatch, capsys):
    monkeypatch.delenv(LIVE_VARIABLE, raising=False)
    bar = live_bar(range(3), desc="quiet")
    assert bar.disable and list(bar) == [0, 1, 2]
    assert terminal_path() is None  # pytest's captured stderr is no terminal
    assert capsys.readouterr() == ("", "")


def test_a_chapter_kernel_draws_on_the_terminal_and_keeps_its_printed_lines(tmp_path, monkeypatch):
    terminal = tmp_path / "terminal"
    monkeypatch.setenv(LIVE_VARIABLE, str(terminal))
    source = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from aptutils.core.progress import live_bar\n"
        "for _ in live_bar(range(40), desc='kernel bar'):\n    pass\n"
        "print('held-out loss 1.0 at step 40')")])
    nbformat.write(source, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                               kernel_name="python3", progress_bar=False)
    outputs = json.dumps(nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs)
    assert "held-out loss 1.0 at step 40" in outputs
    assert "kernel bar" not in outputs and "40/40" not in outputs
    assert "kernel bar" in terminal.read_text() and "40/40" in terminal.read_text()


def test_a_trainer_draws_its_steps_loss_and_rate_on_the_terminal(tmp_path, monkeypatch, capsys):
    import torch
    from transformers import Trainer, TrainingArguments

    from aptutils.core.progress import trainer_progress

    class Line(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels):
            return {"loss": ((self.weight * x - labels) ** 2).mean()}

    rows = [{"x": torch.tensor([1.0]), "labels": torch.tensor([2.0])}] * 24
    terminal = tmp_path / "terminal"
    monkeypatch.setenv(LIVE_VARIABLE, str(terminal))
    arguments = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=4,
                                  logging_steps=2, report_to="none", use_cpu=True, disable_tqdm=True,
                                  save_strategy="no")
    trainer = Trainer(model=Line(), args=arguments, train_dataset=rows,
                      callbacks=[trainer_progress("toy pre-training", tokens_per_step=4)])
    trainer.train()
    drawn = terminal.read_text()
    assert "toy pre-training" in drawn and "6/6" in drawn and "loss=" in drawn and "tokens/s=" in drawn


def test_a_terminal_is_reached_through_its_proc_path(monkeypatch):
    """What the book command hands its kernels: a path that opens the terminal it writes to."""
    import os
    import pty

    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w")
    monkeypatch.setattr("sys.stderr", terminal)
    path = terminal_path()
    assert path == f"/proc/{os.getpid()}/fd/{slave}"
    with open(path, "w") as reached:
        reached.write("W_S=16000: 40%\n")
    assert b"W_S=16000: 40%" in os.read(master, 100)
    terminal.close()
    os.close(master)


def test_a_kernel_of_the_papermill_command_finds_papermills_terminal(tmp_path):
    from aptutils.core.progress import papermill_terminal

    def parent(name: str, command: list[str], stderr: str):
        folder = tmp_path / name
        (folder / "fd").mkdir(parents=True)
        (folder / "cmdline").write_bytes(b"\0".join(c.encode() for c in command) + b"\0")
        (folder / "fd" / "2").symlink_to(stderr)
        return str(folder)

    papermill = ["/x/.venv/bin/python", "/x/.venv/bin/papermill", "a.ipynb", "b.ipynb"]
    assert papermill_terminal(parent("a", papermill, "/dev/pts/3")) == f"{tmp_path}/a/fd/2"
    assert papermill_terminal(parent("b", ["python", "-m", "papermill"], "/dev/pts/1")) is not None
    assert papermill_terminal(parent("c", papermill, str(tmp_path / "log.txt"))) is None  # no terminal
    assert papermill_terminal(parent("d", ["python", "-m", "pytest"], "/dev/pts/3")) is None
    assert papermill_terminal(str(tmp_path / "gone")) is None
