"""The artifact store: one folder per artifact, keyed by exactly the parameters that determine it.

An artifact is written into a temporary folder and renamed into place when complete, so an
interrupted run never leaves a folder that a later run would trust. Used by every chapter.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataError

FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO_ROOT / ".aptbook-store"


PATH_VARIABLES = ("APTBOOK_DATA", "APTBOOK_STORE")


def absolute_path_variables(start: Path | None = None) -> dict[str, str]:
    """Make relative $APTBOOK_DATA / $APTBOOK_STORE absolute against `start` (default: the folder
    the command was started in), in os.environ, before any kernel inherits them: nbval and
    papermill run each notebook in another folder. Returns the variables it changed."""
    start = Path(start or os.getcwd())
    changed = {}
    for name in PATH_VARIABLES:
        value = os.environ.get(name)
        if value and not Path(value).expanduser().is_absolute():
            changed[name] = os.environ[name] = str((start / Path(value).expanduser()).resolve())
    return changed


def store_root() -> Path:
    """The store folder: $APTBOOK_STORE, else `.aptbook-store/` in the repository (git-ignored)."""
    return Path(os.environ.get("APTBOOK_STORE") or DEFAULT_STORE)


def artifact_key(kind: str, params: dict[str, Any]) -> str:
    """A 16-hex-digit hash of the artifact kind, its parameters and the store format version."""
    text = json.dumps({"kind": kind, "params": params, "format": FORMAT_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Store:
    """Artifacts under one root folder: `<root>/<kind>-<key>/`, plus `params.json` in each."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else store_root()
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"the artifact store {self.root} is a file, not a folder: set "
                            f"APTBOOK_STORE to a folder (it is created when missing)")

    def path(self, kind: str, params: dict[str, Any]) -> Path:
        """Where the artifact lives once complete (it may not exist yet)."""
        return self.root / f"{kind}-{artifact_key(kind, params)}"

    def get(self, kind: str, params: dict[str, Any]) -> Path | None:
        """The folder of a complete artifact, or None."""
        path = self.path(kind, params)
        return path if path.is_dir() else None

    def work_dir(self, kind: str, params: dict[str, Any]) -> Path:
        """A persistent scratch folder for resumable work on an artifact (e.g. checkpoints).

        It is never read as the artifact itself; `clear_work_dir` removes it once the artifact is in place.
        """
        path = self.root / "work" / f"{kind}-{artifact_key(kind, params)}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_work_dir(self, kind: str, params: dict[str, Any]) -> None:
        shutil.rmtree(self.root / "work" / f"{kind}-{artifact_key(kind, params)}", ignore_errors=True)

    @contextlib.contextmanager
    def writing(self, kind: str, params: dict[str, Any]) -> Iterator[Path]:
        """Yield an empty temporary folder; on normal exit it becomes the artifact, atomically."""
        final = self.path(kind, params)
        temporary = self.root / "tmp" / f"{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            temporary.mkdir(parents=True)
        except OSError as error:
            raise DataError(f"cannot write to the artifact store {self.root} ({error.strerror}): "
                            f"set APTBOOK_STORE to a folder you can write") from None
        try:
            yield temporary
            (temporary / "params.json").write_text(
                json.dumps({"kind": kind, "params": params, "format": FORMAT_VERSION},
                           indent=1, sort_keys=True, default=str))
            try:
                os.rename(temporary, final)
            except OSError:
                if not final.is_dir():
                    raise
                # another process finished the same artifact first; keep theirs
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def get_or_build(self, kind: str, params: dict[str, Any],
                     build: Callable[[Path], None]) -> Path:
        """The artifact's folder, building it with `build(folder)` when it is missing."""
        found = self.get(kind, params)
        if found is not None:
            return found
        with self.writing(kind, params) as folder:
            build(folder)
        return self.path(kind, params)
