"""Recipes: one group of knobs resolved once into a small frozen, typed dataclass.

A recipe is at once the argument of the functions that need those knobs, the key of the
artifacts they make (`key()`: its own fields) and the knobs a chapter shows (`knobs()`). Its
fields are named as the knobs they hold (`core.knobs`), or mapped to them by `KNOB_OF`; a field
typed by another recipe nests it (its knobs are shown, but it keys its own artifacts); a field
that is no knob keeps its default. `build` makes one from a run's values (`Settings.recipe`);
no function below `reports/` takes the whole `Settings`.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from .knobs import KNOB_BY_NAME

R = TypeVar("R", bound="Recipe")


@dataclass(frozen=True)
class Recipe:
    """Base of every recipe: a frozen dataclass of knob values and nested recipes."""

    KNOB_OF: ClassVar[dict[str, str]] = {}  # field -> knob, where the names differ

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        """Every knob this recipe holds, nested recipes' included, in field order, once each."""
        names: dict[str, None] = {}
        for name, kind in _field_types(cls).items():
            knob = cls.KNOB_OF.get(name, name)
            names.update(dict.fromkeys(kind.knobs() if _is_recipe(kind) else
                                       (knob,) if knob in KNOB_BY_NAME else ()))
        return tuple(names)

    def key(self) -> dict[str, Any]:
        """Its own knob values (nested recipes left out): the part of an artifact key it sets."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not isinstance(getattr(self, f.name), Recipe)}


def build(cls: type[R], values: dict[str, Any]) -> R:
    """The recipe `cls` of a run's knob `values` (already validated by `core.params.resolve`)."""
    chosen = {}
    for name, kind in _field_types(cls).items():
        knob = cls.KNOB_OF.get(name, name)
        if _is_recipe(kind):
            chosen[name] = build(kind, values)
        elif knob in values:
            chosen[name] = values[knob]
    return cls(**chosen)


def _field_types(cls: type) -> dict[str, Any]:
    """{field: type} of a recipe's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _is_recipe(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Recipe)
