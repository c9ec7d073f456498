"""The kinds of modified position, and the one parser of a choice of them (the `kinds` knob).

A modified W_test position is masked (the input is [MASK]), replaced (a random token) or
unchanged (the true token itself is the input, so the model sees its own answer). Every
per-token number says which kinds it reads. Torch-free: the knobs parse `kinds` with it.
"""
from __future__ import annotations

from typing import Iterable

KINDS = ("masked", "replaced", "unchanged")  # the kinds in row order of the [3, V] count arrays

Kinds = str | Iterable[str] | None  # one kind, several, "all" or None (all)


def reading_kinds(kinds: Kinds) -> tuple[str, ...]:
    """The kinds of a reading in row order: None or "all" -> all three; "masked,replaced" or
    ("replaced", "masked") -> ("masked", "replaced"). Unknown or no kinds raise ValueError."""
    if kinds is None or kinds == "all":
        return KINDS
    names = kinds.replace("+", ",").split(",") if isinstance(kinds, str) else list(kinds)
    names = {str(name).strip() for name in names if str(name).strip()}
    if "all" in names:
        return KINDS
    unknown = sorted(names - set(KINDS))
    if unknown or not names:
        raise ValueError(f"a reading is 'all' or kinds among {', '.join(KINDS)}; got {kinds!r}")
    return tuple(kind for kind in KINDS if kind in names)


def kind_rows(kinds: Kinds) -> list[int]:
    """Rows of the [3, V] count arrays that a reading sums."""
    return [KINDS.index(kind) for kind in reading_kinds(kinds)]


def reading_name(kinds: Kinds) -> str:
    """"all", or the kinds joined by "+" ("masked", "masked+replaced")."""
    chosen = reading_kinds(kinds)
    return "all" if chosen == KINDS else "+".join(chosen)
