"""Chapter notebooks: their `parameters` cells (generated from `core.knobs.KNOBS`) and their execution.

`python -m aptutils sync-parameters` rewrites every chapter's parameters cell from the knobs, so
the notebooks never repeat a default; tests check that the cells are in sync.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import nbformat

from .core.params import DEFAULT_PROFILE, KNOBS
from .core.store import REPO_ROOT

CHAPTER_DIR = REPO_ROOT / "chapters"
BOOK_DIR = REPO_ROOT / "book"
CHAPTER_GROUPS = {
    "01_pretraining": ("all", "pretrain"),
    "02_apt": ("all", "pretrain", "blocks"),
    "03_symmetry_breaking": ("all", "pretrain", "blocks", "clusters"),
    "04_clustering": ("all", "pretrain", "blocks", "clusters"),
    "05_finetuning": ("all", "pretrain", "finetune"),
    "06_confidence": ("all", "pretrain", "blocks", "finetune"),
    "07_image_analogy": ("all", "image", "clusters"),
}


def chapter_sources() -> list[Path]:
    """The chapter notebooks, in book order (chapters/NN_name.ipynb)."""
    return sorted(CHAPTER_DIR.glob("[0-9][0-9]_*.ipynb"))


def parameters_source(groups: tuple[str, ...]) -> str:
    """The text of a parameters cell: one line per knob in `groups`, with its meaning."""
    lines = ["# Parameters (papermill -p NAME VALUE). None takes the profile's value;",
             "# the profiles are in aptutils/core/profiles.py."]
    for knob in KNOBS:
        if set(knob.groups) & set(groups):
            value = repr(DEFAULT_PROFILE) if knob.name == "profile" else "None"
            lines.append(f"{knob.name}: {knob.parse.type_hint} = {value}  # {knob.doc}")
    return "\n".join(lines)


def parameters_cell(notebook: Any) -> Any:
    """The one cell tagged `parameters`."""
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


# The parameters cell and papermill's injected one are removed from the rendered book: each
# chapter shows its own knobs' values in one compact table instead (Settings.table()).
PARAMETER_TAGS = ("parameters", "injected-parameters")
HIDDEN_TAG = "remove-cell"


def hide_parameter_cells(notebook: Any) -> bool:
    """Tag the parameters cell and papermill's injected cell `remove-cell` (metadata only);
    True if a tag was added."""
    changed = False
    for cell in notebook.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if set(PARAMETER_TAGS) & set(tags) and HIDDEN_TAG not in tags:
            cell.setdefault("metadata", {})["tags"] = tags + [HIDDEN_TAG]
            changed = True
    return changed


def hide_executed_parameters(paths: list[Path]) -> list[Path]:
    """Apply `hide_parameter_cells` to already executed notebooks (e.g. book/*.ipynb), changing
    only cell metadata, never an output; returns the notebooks that changed."""
    changed = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if hide_parameter_cells(notebook):
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


RERUN_TAG = "rerun-instructions"


def rerun_markdown(source: Path, parameters: dict[str, Any]) -> str:
    """How to re-run a chapter page: the papermill command with the page's own parameters, where
    to find the other knobs, and a download link to the executed notebook (MyST)."""
    chosen = " ".join(f"-p {name} {shlex.quote(str(value))}" for name, value in parameters.items())
    relative = source.resolve().relative_to(REPO_ROOT).as_posix()
    return (f"```{{admonition}} Re-run this page\n:class: tip\n"
            f"From the repository root, with `APTBOOK_DATA` naming the data mirror:\n\n"
            f"    papermill {relative} out.ipynb {chosen}\n\n"
            f"Any other knob is set the same way (`-p NAME VALUE`; `papermill --help-notebook "
            f"{relative}` lists them with their meanings), and `python -m aptutils sweep "
            f"{source.stem[:2]} -p NAME V1,V2` runs it over several values. "
            f"{{download}}`The executed notebook <{source.name}>` holds every output of this page.\n"
            f"```")


def add_rerun_cell(output: Path, source: Path, parameters: dict[str, Any]) -> None:
    """Put the re-run instructions (`rerun_markdown`) right under an executed chapter's title
    cell, replacing any earlier copy."""
    notebook = nbformat.read(output, as_version=4)
    notebook.cells = [c for c in notebook.cells if RERUN_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_markdown_cell(rerun_markdown(source, parameters))
    cell.metadata["tags"] = [RERUN_TAG]
    notebook.cells.insert(1, cell)
    nbformat.write(notebook, output)


def sync_parameters(path: Path) -> bool:
    """Rewrite the chapter's parameters cell from the knobs (tagged to be hidden in the book);
    True if it changed."""
    notebook = nbformat.read(path, as_version=4)
    cell = parameters_cell(notebook)
    wanted = parameters_source(CHAPTER_GROUPS[path.stem])
    hidden = hide_parameter_cells(notebook)
    if cell.source == wanted and not hidden:
        return False
    cell.source = wanted
    nbformat.write(notebook, path)
    return True


def execute_chapter(source: Path, output: Path, parameters: dict[str, Any]) -> None:
    """Run a chapter with papermill from the repository root, writing the executed copy; what the
    chapter prints (one line per evaluation of long work) streams to this terminal as it runs.

    In a terminal, the chapter's kernel draws live bars of its long work there too (pre-training
    steps with loss and tokens/s, probe, tuned-lens, CNN and fine-tuning steps; core.progress),
    which the executed notebook does not keep; papermill's own bar of cells then stays off."""
    import os
    import sys

    import papermill

    from .core.progress import LIVE_VARIABLE, terminal_path

    live = os.environ.get(LIVE_VARIABLE) or terminal_path()
    if live:
        os.environ[LIVE_VARIABLE] = live  # the kernel inherits it
    papermill.execute_notebook(str(source), str(output), parameters=parameters,
                               cwd=str(REPO_ROOT), progress_bar=not live, kernel_name="python3",
                               stdout_file=sys.stdout, stderr_file=sys.stderr)
    hide_executed_parameters([output])  # papermill's injected cell, hidden like the parameters


def render_book(path_output: Path | None = None, capture: bool = True):
    """Render the executed book/ with Jupyter Book (warnings as errors), into `path_output`/_build
    (default: the repository's _build); returns the finished process, its output captured
    (`capture`) or shown in this terminal."""
    import subprocess
    import sys

    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(REPO_ROOT), "--all", "-W", "--keep-going"]
    if path_output is not None:
        command[3:3] = ["--path-output", str(path_output)]
    return subprocess.run(command, capture_output=capture, text=True)
