"""The two errors a reader sees as one line: a bad parameter and missing or malformed data.
"""
from __future__ import annotations


class ParameterError(ValueError):
    """A bad parameter name or value. IPython shows it as its one-line message, no traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"ParameterError: {self}"]


class DataError(RuntimeError):
    """Data that cannot be had or does not look as expected. Shown as its one-line message."""

    def _render_traceback_(self) -> list[str]:
        return [f"DataError: {self}"]
