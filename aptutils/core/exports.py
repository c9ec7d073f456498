"""Exports: a chapter's tables (CSV) and figures (PNG and SVG), written into one folder per chapter,
book/exports/<chapter>/ (APTBOOK_EXPORTS names another root), which the chapter links to at its end.

Nothing is written until a chapter calls `start`: tests and library use stay free of side effects.
After `start`, every figure the plotting layer returns is saved (`export_figures`), every table the
chapter displays is saved as it is displayed, and `save_table` saves a table that is not shown
(e.g. the per-token APT of every block and reader). The Jupyter Book build copies the folder next
to the rendered chapter (aptutils.plugins.sphinx).
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Callable

from .store import REPO_ROOT

EXPORT_ROOT = REPO_ROOT / "book" / "exports"
_state: dict[str, Any] = {"folder": None, "written": [], "depth": 0}


def export_root() -> Path:
    return Path(os.environ.get("APTBOOK_EXPORTS") or EXPORT_ROOT)


def start(chapter: str) -> Path:
    """Begin a chapter's exports: its folder emptied of an earlier run's files, every displayed
    table saved from now on. Returns the folder."""
    folder = export_root() / chapter
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    _state.update(folder=folder, written=[], chapter=chapter)
    _save_displayed_tables()
    return folder


def stop() -> None:
    _state.update(folder=None, written=[])


def _path(name: str, suffix: str) -> Path:
    """A file name of its own in the chapter's folder: the slug of `name`, numbered on reuse."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()[:60] or "table"
    taken = {p.name for p in _state["written"]}
    stem, n = slug, 1
    while f"{stem}{suffix}" in taken:
        n += 1
        stem = f"{slug}_{n}"
    return _state["folder"] / f"{stem}{suffix}"


def save_table(table: Any, name: str, parquet: bool = False) -> Path | None:
    """Write a DataFrame (or a Styler's data) as CSV (parquet: for long tables) into the chapter's
    folder; None before `start`."""
    if _state["folder"] is None:
        return None
    frame = getattr(table, "data", table)
    path = _path(name, ".parquet" if parquet else ".csv")
    frame.to_parquet(path) if parquet else frame.to_csv(path)
    _state["written"].append(path)
    return path


def save_figure(figure: Any, name: str) -> list[Path]:
    """Write a matplotlib Figure as PNG and SVG (point clouds over 2,000 marks rasterised inside
    the SVG, to keep it small); [] before `start`."""
    if _state["folder"] is None:
        return []
    for axis in figure.axes:
        for collection in axis.collections:
            if len(collection.get_offsets()) > 2000:
                collection.set_rasterized(True)
    png = _path(name, ".png")
    paths = [png, png.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, dpi=110 if path.suffix == ".png" else 72, bbox_inches="tight")
        _state["written"].append(path)
    return paths


def exported(make: Callable) -> Callable:
    """Decorate a figure function: what it returns is saved under its name (without `_figure`);
    a figure function called by another one is not saved twice."""
    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        _state["depth"] += 1
        try:
            figure = make(*args, **kwargs)
        finally:
            _state["depth"] -= 1
        if _state["depth"] == 0:
            save_figure(figure, make.__name__.removesuffix("_figure"))
        return figure
    return wrapper


def export_figures(namespace: dict[str, Any]) -> None:
    """Decorate every public `*_figure` function of a plotting module's namespace with `exported`."""
    for name, value in list(namespace.items()):
        if name.endswith("_figure") and not name.startswith("_") and callable(value):
            namespace[name] = exported(value)


def _table_name(frame: Any) -> str:
    columns = [str(c) for c in list(frame.columns)[:3]]
    return "table_" + "_".join(columns)


def _save_displayed_tables() -> None:
    """In a kernel: every DataFrame or Styler shown as HTML is saved first (once per object)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    import pandas as pd
    from pandas.io.formats.style import Styler

    html = shell.display_formatter.formatters["text/html"]

    def saving(shown: Any) -> str | None:
        if _state["folder"] is not None:
            frame = getattr(shown, "data", shown)
            save_table(frame, _table_name(frame))
        return shown._repr_html_()

    html.for_type(pd.DataFrame, saving)
    html.for_type(Styler, saving)


def links(base: str = "exports") -> Any:
    """HTML listing the files written since `start`, linked relative to the chapter's page."""
    from html import escape

    from IPython.display import HTML

    chapter = _state.get("chapter", "")
    items = "".join(f'<li><a href="{base}/{chapter}/{p.name}">{escape(p.name)}</a></li>'
                    for p in _state["written"])
    return HTML(f"<p>Tables (CSV) and figures (PNG, SVG) of this run, in the folder "
                f"<code>exports/{escape(chapter)}/</code> beside this chapter:</p><ul>{items}</ul>")
