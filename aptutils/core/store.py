"""The artifact store: one folder per artifact, keyed by exactly the parameters that determine it
and by the code that made it.

An artifact is written into a temporary folder and renamed into place when complete, so an
interrupted run never leaves a folder that a later run would trust. The folder of an artifact of
kind K is `<root>/code-<C>/<K>-<P>`: P hashes its parameters (`artifact_key`, the same for the
same recipe whatever the code), C hashes the source of the modules that produce K (`CODE_OF`,
with every aptutils module they import, transitively), so a change to the training or read-out
code never silently reuses an artifact the old code made. Used by every chapter.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataError

FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO_ROOT / ".aptbook-store"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

# The module whose code makes each artifact kind; its aptutils imports join it (`code_modules`).
CODE_OF = {
    "tokenizer": "data/tokenizer.py",
    "samples": "data/pretraining.py",
    "test-extension": "data/extension.py",
    "images": "data/images.py",
    "task": "data/tasks.py",
    "model": "training/pretrain.py",
    "cnn": "training/cnn.py",
    "task-features": "training/finetune.py",
    "finetune": "training/finetune.py",
    "finetune-full": "training/finetune.py",
    "probes": "readout/reading.py",
    "tuned-lens": "readout/reading.py",
    "block-counts": "readout/reading.py",
    "heldout-counts": "readout/reading.py",
    "cnn-layers": "readout/layers.py",
}
# Modules that hold parameters and plumbing, not how an artifact is computed: the values they
# yield are in the artifact's parameters, so editing them (e.g. adding a knob) keeps the store.
NOT_CODE = ("core/params.py", "core/knobs.py", "core/profiles.py", "core/recipes.py",
            "core/store.py", "core/errors.py", "core/verdicts.py", "__init__.py")


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


def _imported_files(path: Path, root: Path) -> frozenset[Path]:
    stat = path.stat()
    return _imports(path, root, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=None)
def _imports(path: Path, root: Path, mtime_ns: int, size: int) -> frozenset[Path]:
    """The aptutils source files a module imports (relative and absolute, lazy ones included)."""
    package = path.parent.relative_to(root).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
            elif (node.module or "").split(".")[0] == root.name:
                base = []
            else:
                continue
            parts = base + (node.module.split(".") if node.module else [])
            if not node.level:
                parts = parts[1:]
            candidates = [parts] + [parts + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == root.name]
        else:
            continue
        for parts in candidates:
            file = root.joinpath(*parts).with_suffix(".py") if parts else None
            if file is not None and file.is_file():
                found.add(file)
    return frozenset(found)


def code_modules(module: str, root: Path | None = None) -> list[str]:
    """`module` (a path below the package, e.g. "training/pretrain.py") and every aptutils module
    it imports, transitively, less `NOT_CODE`: the code an artifact it makes depends on."""
    root = root or PACKAGE_ROOT
    seen, todo = set(), [root / module]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imported_files(path, root))
    names = {p.relative_to(root).as_posix() for p in seen}
    return sorted(n for n in names if n == module or not n.endswith(NOT_CODE))


@functools.lru_cache(maxsize=None)
def _source_digest(path: Path, mtime_ns: int, size: int) -> str:
    """A hash of a module's code, not its form: docstrings, comments and layout do not count."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def code_version(*modules: str, root: Path | None = None) -> str:
    """A 12-hex-digit hash of the code of `modules` (paths below the package, e.g.
    "readout/probes.py"), each taken with what it imports (`code_modules`)."""
    root = root or PACKAGE_ROOT
    files = sorted({name for module in modules for name in code_modules(module, root)})
    digest = hashlib.sha256()
    for name in files:
        stat = (root / name).stat()
        digest.update(f"{name}\0{_source_digest(root / name, stat.st_mtime_ns, stat.st_size)}\0".encode())
    return digest.hexdigest()[:12]


def kind_code_version(kind: str) -> str | None:
    """The code version of an artifact kind (`CODE_OF`), or None for a kind no module makes."""
    module = CODE_OF.get(kind)
    return code_version(module) if module else None


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # names this machine's temporaries


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Artifacts under one root folder: `<root>/code-<code version>/<kind>-<key>/`, plus
    `params.json` in each (kinds outside `CODE_OF`, e.g. in tests: `<root>/<kind>-<key>/`)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else store_root()
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"the artifact store {self.root} is a file, not a folder: set "
                            f"APTBOOK_STORE to a folder (it is created when missing)")

    def _relative(self, kind: str, params: dict[str, Any]) -> Path:
        """`code-<version>/<kind>-<key>`: the artifact's place below the root (or the work dir)."""
        code = kind_code_version(kind)
        name = Path(f"{kind}-{artifact_key(kind, params)}")
        return Path(f"code-{code}") / name if code else name

    def path(self, kind: str, params: dict[str, Any]) -> Path:
        """Where the artifact lives once complete (it may not exist yet)."""
        return self.root / self._relative(kind, params)

    def holds_any(self, kind: str) -> bool:
        """True when the store holds some complete artifact of `kind` made by today's code."""
        return any(self.path(kind, {}).parent.glob(f"{kind}-*"))

    def get(self, kind: str, params: dict[str, Any]) -> Path | None:
        """The folder of a complete artifact, or None."""
        path = self.path(kind, params)
        return path if path.is_dir() else None

    def work_dir(self, kind: str, params: dict[str, Any]) -> Path:
        """A persistent scratch folder for resumable work on an artifact (e.g. checkpoints).

        It is never read as the artifact itself; `clear_work_dir` removes it once the artifact is in place.
        """
        path = self.root / "work" / self._relative(kind, params)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_work_dir(self, kind: str, params: dict[str, Any]) -> None:
        path = self.root / "work" / self._relative(kind, params)
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the code-<version> folder, once empty

    def _remove_abandoned(self, name: str) -> None:
        """Remove temporary folders of this artifact left by killed processes of this machine
        (`<name>-h<host>p<pid>-<random>`, the pid no longer running here)."""
        for folder in (self.root / "tmp").glob(f"{name}-h{_HOST}p*-*"):
            pid = folder.name[len(f"{name}-h{_HOST}p"):].split("-")[0]
            if pid.isdigit() and not _running(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def writing(self, kind: str, params: dict[str, Any]) -> Iterator[Path]:
        """Yield an empty temporary folder; on normal exit it becomes the artifact, atomically."""
        final = self.path(kind, params)
        temporary = self.root / "tmp" / f"{final.name}-h{_HOST}p{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            temporary.mkdir(parents=True)
        except OSError as error:
            raise DataError(f"cannot write to the artifact store {self.root} ({error.strerror}): "
                            f"set APTBOOK_STORE to a folder you can write") from None
        self._remove_abandoned(final.name)
        try:
            yield temporary
            code = CODE_OF.get(kind)
            (temporary / "params.json").write_text(json.dumps(
                {"kind": kind, "params": params, "format": FORMAT_VERSION,
                 "code": {"version": kind_code_version(kind),
                          "modules": code_modules(code) if code else []}},
                indent=1, sort_keys=True, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
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
