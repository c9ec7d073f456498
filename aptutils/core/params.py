"""Parameters of the book: validated `Settings` from a chapter's parameters, before any work.

The knobs (names, meanings, checks) are in `knobs.py`, their defaults in `profiles.py`;
`configure` reads a chapter's parameters and `resolve` overlays them on a profile.
Used by every chapter.
"""
from __future__ import annotations

import ast
import difflib
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterator

from .errors import ParameterError
from .knobs import DEFAULT_PROFILE, KNOB_BY_NAME, KNOBS, PROFILE_NAMES, Knob
from .profiles import PROFILES
from .recipes import R, build

__all__ = ["DEFAULT_PROFILE", "KNOB_BY_NAME", "KNOBS", "PROFILE_NAMES", "PROFILES", "Knob",
           "Settings", "configure", "resolve"]


@dataclass(frozen=True)
class Settings:
    """Validated values of every knob, for one run of one chapter."""

    values: dict[str, Any]
    # The knobs a chapter declares (its parameters cell + papermill's injected one), in order;
    # `table()` shows only these. Empty outside a chapter.
    declared: tuple[str, ...] = field(default=(), compare=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def recipe(self, cls: type[R]) -> R:
        """The recipe `cls` (`core.recipes`) of these values: what a function below the chapters'
        reports is given instead of the whole Settings."""
        return build(cls, self.values)

    def table(self, names: tuple[str, ...] | list[str] = (), columns: int = 3):
        """`names` (default: the chapter's own knobs; outside a chapter, all) and their values, for
        display: one compact table of `columns` knob/value pairs per row, read down the columns."""
        import pandas as pd

        names = list(names) or [n for n in self.declared if n in self.values] or list(self.values)
        shown = [(n, ", ".join(map(str, v)) if isinstance(v, tuple) else str(v))
                 for n, v in ((n, self.values[n]) for n in names)]
        rows = -(-len(shown) // columns)
        frame = pd.DataFrame({f"{label}{' ' * c}": [shown[c * rows + r][i] if c * rows + r < len(shown)
                                                     else "" for r in range(rows)]
                              for c in range(columns) for i, label in enumerate(("knob", "value"))})
        return (frame.style.hide(axis="index")
                .set_caption(f"The settings of this run (profile {self.values['profile']!r})"))

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some knobs changed (validated like the rest)."""
        return Settings(resolve({**self.values, **changes}).values, self.declared)


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
# The chapter's parameters cell starts "# Parameters (papermill", papermill's injected one "# Parameters".
_PARAMETERS_HEADER = "# Parameters"


def configure(namespace: dict[str, Any]) -> Settings:
    """Validate a chapter's parameters (its parameters cell + papermill's injected cell) into Settings.

    In a kernel, only the names those cells assign (found in IPython's input history `In`) are
    read, so re-running the set-up cell works; without them, every plain global is read.
    Unknown names (a misspelt `-p`) stop here with the closest known name.
    """
    names = _parameter_names(namespace.get("In"))
    if isinstance(namespace.get("In"), (list, tuple)):
        _notebook_display()  # in a kernel: papermill's, Jupyter's, or nbval's (it keeps no history)
    if names is None:
        chosen = {
            name: value for name, value in namespace.items()
            if not name.startswith("_") and name not in _IPYTHON_NAMES
            and not isinstance(value, ModuleType) and not callable(value)
        }
    else:
        chosen = {name: namespace[name] for name in names if name in namespace}
        shadowed = [n for n, v in chosen.items() if isinstance(v, ModuleType) or callable(v)]
        if shadowed:
            raise ParameterError(
                f"{shadowed[0]} is bound to {type(chosen[shadowed[0]]).__name__} "
                f"{getattr(chosen[shadowed[0]], '__name__', '')!r}, not a value: the chapter "
                f"imports a name that shadows this parameter; import it under another name")
    settings = resolve(chosen)
    return Settings(settings.values, tuple(chosen)) if names is not None else settings


def _notebook_display() -> None:
    """pandas display options for a chapter's kernel: no cell cut at 50 characters, no table cut
    to 10 rows."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.min_rows", 500)
    pd.set_option("display.max_columns", 300)
    pd.set_option("display.width", 250)
    pd.set_option("styler.render.max_rows", 500)


def _parameter_names(history: Any) -> list[str] | None:
    """Names assigned in the executed cells that start with `# Parameters`; None if there are none."""
    if not isinstance(history, (list, tuple)):
        return None
    cells = [s for s in history if isinstance(s, str) and s.lstrip().startswith(_PARAMETERS_HEADER)]
    if not cells:
        return None
    return list(dict.fromkeys(name for source in cells for name in _assigned_names(source)))


def _assigned_names(source: str) -> Iterator[str]:
    """Names a cell assigns at its top level: `x = 1`, `x: int = None`, `x, y = 1, 2`."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _target_names(target)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield from _target_names(node.target)


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)


def resolve(chosen: dict[str, Any]) -> Settings:
    """Profile defaults overlaid by the non-None values in `chosen`, every value checked."""
    unknown = sorted(set(chosen) - set(KNOB_BY_NAME))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, KNOB_BY_NAME, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParameterError(f"unknown parameter {name!r}: {hint}known: {', '.join(KNOB_BY_NAME)}")
    profile = KNOB_BY_NAME["profile"].parse("profile", chosen.get("profile") or DEFAULT_PROFILE)
    values: dict[str, Any] = {"profile": profile, **PROFILES[profile]}
    for name, value in chosen.items():
        if value is not None and name != "profile":
            values[name] = value
    for knob in KNOBS:
        if knob.name != "profile" and values[knob.name] is not None:
            values[knob.name] = knob.parse(knob.name, values[knob.name])
    _check_together(values)
    return Settings(values)


def _check_together(values: dict[str, Any]) -> None:
    if values["hidden_size"] % values["num_heads"]:
        raise ParameterError(
            f"num_heads={values['num_heads']!r}: must divide hidden_size={values['hidden_size']}"
        )
    if values["corpus"] == "mirror" and not os.environ.get("APTBOOK_DATA"):
        raise ParameterError(
            "corpus='mirror': set APTBOOK_DATA to the mirror root (e.g. ../shared/data) "
            "or choose corpus='hub' or 'gensim'"
        )
