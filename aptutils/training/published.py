"""Published models: pre-trained BERT models committed with the book, each with its training card.

The default book reads these instead of re-training: `book/models/<profile>-ws<W_S>/` holds the
weights (`model.safetensors`), `config.json`, the training log and `card.json` (recipe, tokens,
steps, device, wall time, sha256, the tokenizer and sample keys). A model is used only when its
recipe equals the one the settings ask for, and only after its sha256 checks out.
`python -m aptutils pretrain --publish` writes them. Used by chapter 1 and, through
`pretrained_model`, by every chapter that reads a BERT model.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from ..core.errors import DataError
from ..core.store import REPO_ROOT

PUBLISHED_DIR = REPO_ROOT / "book" / "models"
MODEL_FILES = ("model.safetensors", "config.json", "log_history.json")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical(recipe: dict) -> dict:
    """A recipe as it reads back from JSON (tuples become lists), so two recipes compare equal."""
    return json.loads(json.dumps(recipe, sort_keys=True, default=str))


def published_folder(recipe: dict, root: Path = PUBLISHED_DIR) -> Path | None:
    """The published model trained with exactly `recipe` (checked by sha256), or None."""
    wanted = canonical(recipe)
    for card_path in sorted(root.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        if card.get("recipe") != wanted:
            continue
        folder = card_path.parent
        weights = folder / "model.safetensors"
        if not weights.is_file() or sha256_of(weights) != card.get("sha256"):
            shown = folder.relative_to(REPO_ROOT) if folder.is_relative_to(REPO_ROOT) else folder
            raise DataError(f"published model {folder.name}: model.safetensors is missing or its "
                            f"sha256 differs from card.json; restore it with `git checkout -- "
                            f"{shown}` or run with -p pretrain train")
        return folder
    return None


def git_commit() -> str:
    """The repository's HEAD commit, or 'unknown' outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def publish(source: Path, recipe: dict, name: str, command: str, extra: dict | None = None,
            root: Path = PUBLISHED_DIR) -> Path:
    """Copy a trained model folder of the store into `root/name`, with its card extended by the
    recipe, sha256, tokenizer and sample keys, the command and where it was trained."""
    target = root / name
    temporary = root / f".{name}.partial"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    for file in MODEL_FILES:
        shutil.copy2(source / file, temporary / file)
    card = json.loads((source / "card.json").read_text())
    card |= {
        "recipe": canonical(recipe), "samples_key": recipe["samples"],
        "sha256": sha256_of(temporary / "model.safetensors"), "command": command,
        "published": datetime.date.today().isoformat(), "commit": git_commit(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        **(extra or {}),
    }
    (temporary / "card.json").write_text(json.dumps(card, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    temporary.rename(target)
    return target
