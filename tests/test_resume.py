"""Interruption and determinism: `kill -9` during pre-training, the same command again resumes
from the last checkpoint and ends where an uninterrupted run ends; artifacts are keyed by the
code that made them, so changed training or read-out code never reuses a stale one."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aptutils.core import store as store_module
from aptutils.core.store import CODE_OF, REPO_ROOT, Store, code_modules, kind_code_version

# The smoke profile, one model (W_S = 128), long enough (8 steps an epoch, 10 epochs, a checkpoint
# every 10 steps) that the kill lands between the first checkpoint and the end. One thread each.
COMMAND = [sys.executable, "-m", "aptutils", "pretrain", "--profile", "smoke", "-p", "pretrain",
           "train", "-p", "ws_list", "128", "-p", "epochs", "10", "-p", "eval_every", "10"]
STEPS, EVAL_EVERY = 80, 10
SECONDS_KEYS = ("eval_seconds", "train_runtime", "train_samples_per_second",
                "train_steps_per_second")


def pretrain(store: Path, output=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "APTBOOK_STORE": str(store), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(COMMAND, cwd=REPO_ROOT, env=env, stdout=output,
                            stderr=subprocess.STDOUT, text=True)


def finished(store: Path) -> Path:
    """The run's one complete model folder (its log and card)."""
    process = pretrain(store)
    output, _ = process.communicate()
    assert process.returncode == 0, output
    models = [p for p in store.glob("code-*/model-*") if (p / "card.json").is_file()]
    assert len(models) == 1, output
    return models[0]


def complete_checkpoint(store: Path) -> Path | None:
    """A checkpoint of the run in `store` whose trainer state (the Trainer writes it last) is
    whole, i.e. the one a resumed run starts from (`last_complete_checkpoint`)."""
    from aptutils.training.pretrain import last_complete_checkpoint

    folders = list((store / "work").glob("code-*/model-*"))
    return last_complete_checkpoint(folders[0]) if folders else None


def evaluations(folder: Path) -> list[dict]:
    """The held-out evaluations of the training log, wall times left out."""
    rows = json.loads((folder / "log_history.json").read_text())
    return [{k: v for k, v in row.items() if k not in SECONDS_KEYS}
            for row in rows if "eval_loss" in row]


def final_counts(folder: Path, samples: Path):
    from aptutils.models.bert import SparseHeadBertForMaskedLM
    from aptutils.training.evaluation import heldout_counts

    model = SparseHeadBertForMaskedLM.from_pretrained(folder)
    arrays = [np.load(samples / f"test_{name}.npy") for name in ("inputs", "labels", "kinds")]
    return heldout_counts(model, *arrays)


@pytest.mark.chapter
def test_kill_9_during_pretraining_then_the_same_command_resumes_and_ends_the_same(tmp_path):
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    log = tmp_path / "interrupted.log"
    with open(log, "w") as output:
        process = pretrain(interrupted, output)
        checkpoint = None
        while process.poll() is None and checkpoint is None:
            checkpoint = complete_checkpoint(interrupted)
            time.sleep(0.02)
        assert checkpoint is not None, "ended before its first checkpoint: " + log.read_text()
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before the kill landed"
    # nothing half-written is taken for a model: no complete model folder, only work and tmp
    assert not list(interrupted.glob("code-*/model-*"))

    resumed = finished(interrupted)
    card = json.loads((resumed / "card.json").read_text())
    assert card["resumed_from_step"] >= int(checkpoint.name.split("-")[1]) > 0
    assert not list((interrupted / "work").glob("code-*/model-*")), "checkpoints left behind"
    assert not list((interrupted / "tmp").iterdir()), "a temporary folder left behind"

    reference = finished(straight)
    assert json.loads((reference / "card.json").read_text())["resumed_from_step"] == 0
    assert resumed.relative_to(interrupted) == reference.relative_to(straight)  # same key
    assert evaluations(resumed) == evaluations(reference)
    assert len(evaluations(reference)) == STEPS // EVAL_EVERY
    samples = next(straight.glob("code-*/samples-*"))
    ours, theirs = final_counts(resumed, samples), final_counts(reference, samples)
    assert np.array_equal(ours.correct, theirs.correct) and np.array_equal(ours.total, theirs.total)
    assert ours.loss_sum == theirs.loss_sum
    assert (resumed / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


# ---- artifacts keyed by code -------------------------------------------------------------------

@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the aptutils sources that the store hashes instead of the real ones."""
    copy = tmp_path / "aptutils"
    shutil.copytree(store_module.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(store_module, "PACKAGE_ROOT", copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_change_to_the_readout_code_misses_the_stored_artifact(tmp_path, package_copy):
    store = Store(tmp_path / "store")
    params = {"model": {"ws": 128}, "probe_lr": 0.003}
    before = {kind: kind_code_version(kind) for kind in CODE_OF}
    built = store.get_or_build("probes", params, lambda folder: (folder / "heads.pt").write_text("old"))
    assert store.get("probes", params) == built and store.holds_any("probes")
    assert not store.holds_any("tuned-lens")
    assert json.loads((built / "params.json").read_text())["code"]["version"] == before["probes"]

    # a comment or a docstring is not code: the artifact is still found
    edit(package_copy / "readout" / "probes.py", '"""', '"""Reworded. ')
    (package_copy / "readout" / "probes.py").write_text(
        (package_copy / "readout" / "probes.py").read_text() + "\n# a comment\n")
    assert store.get("probes", params) == built

    # a change to how probes are trained is: a miss, and a rebuild beside the old artifact
    edit(package_copy / "readout" / "probes.py", "def ", "def _unused():\n    return 1\n\n\ndef ")
    after = {kind: kind_code_version(kind) for kind in CODE_OF}
    assert store.get("probes", params) is None and not store.holds_any("probes")
    assert store.get_or_build("probes", params, lambda f: (f / "heads.pt").write_text("new")) != built
    changed = sorted(kind for kind in CODE_OF if after[kind] != before[kind])
    assert changed == ["block-counts", "heldout-counts", "probes", "tuned-lens"]


def test_a_change_to_the_training_code_reaches_every_artifact_made_from_its_models(package_copy):
    before = {kind: kind_code_version(kind) for kind in CODE_OF}
    edit(package_copy / "training" / "evaluation.py", "loss_sum = 0.0", "loss_sum = 0.0 + 0.0")
    changed = sorted(kind for kind in CODE_OF if kind_code_version(kind) != before[kind])
    assert changed == ["block-counts", "finetune", "finetune-full", "heldout-counts", "model",
                       "probes", "task-features", "tuned-lens"]


def test_adding_a_knob_keeps_the_store(package_copy):
    before = {kind: kind_code_version(kind) for kind in CODE_OF}
    edit(package_copy / "core" / "knobs.py", "KNOB_BY_NAME = ", "EXTRA = 1\nKNOB_BY_NAME = ")
    assert {kind: kind_code_version(kind) for kind in CODE_OF} == before


def test_every_artifact_kind_the_package_stores_has_its_code():
    """Each kind named in a store call of the package is in CODE_OF (else it is keyed by
    parameters alone)."""
    import re

    used = set()
    for path in store_module.PACKAGE_ROOT.rglob("*.py"):
        used |= set(re.findall(r'(?:get_or_build|store\.get|store\.path|\.writing|work_dir)\(\s*"([\w-]+)"',
                               path.read_text()))
    assert used and used <= set(CODE_OF), sorted(used - set(CODE_OF))
    assert "training/pretrain.py" in code_modules("readout/reading.py")
    assert "core/knobs.py" not in code_modules("readout/reading.py")


def test_published_models_are_matched_by_recipe_not_by_code():
    """The book's models (book/models) are found by their recipe and sha256 whatever the code."""
    from aptutils.training.published import PUBLISHED_DIR, published_folder

    cards = sorted(PUBLISHED_DIR.glob("*/card.json"))
    card = json.loads(cards[0].read_text())
    assert published_folder(card["recipe"]) == cards[0].parent
    assert card["recipe"]["samples"].startswith("samples-") and "code-" not in card["recipe"]["samples"]


def test_a_temporary_folder_of_a_killed_writer_is_removed_by_the_next_writer(tmp_path):
    """A writer killed with SIGKILL leaves its temporary folder; the next writer of the same
    artifact removes it (its pid no longer runs), and leaves a live writer's alone."""
    store = Store(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    name = store.path("probes", {"a": 1}).name
    killed = tmp_path / "tmp" / f"{name}-h{store_module._HOST}p{dead}-0123abcd"
    alive = tmp_path / "tmp" / f"{name}-h{store_module._HOST}p{os.getpid()}-4567abcd"
    for folder in (killed, alive):
        folder.mkdir(parents=True)
    store.get_or_build("probes", {"a": 1}, lambda folder: None)
    assert not killed.exists() and alive.exists()


def test_a_checkpoint_whose_trainer_state_was_cut_short_is_not_resumed_from(tmp_path):
    from aptutils.training.pretrain import last_complete_checkpoint

    for step, state in ((10, '{"global_step": 10}'), (20, '{"global_st'), (30, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
