"""The W_S series at equal steps: the control that tells more data from more steps.

The paper trains every W_S for the same epochs, so a larger W_S also trains for more steps. With
`equal_steps` on, every W_S is also trained for as many steps as the largest W_S takes at
`epochs`, with the same schedule (warm-up share, linear decay to 0 at the last step). Such a model
is an ordinary pre-trained model whose `epochs` is raised until its steps equal the largest's, so
its recipe, artifact key and published card say exactly how it was trained, and the largest W_S
is the same model in both series. Used by chapters 1, 2 and 5 and by `python -m aptutils pretrain`.
"""
from __future__ import annotations

import math

from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from .pretrain import PretrainedModel, SeriesRecipe, pretrained_model

SERIES_NAMES = {"epochs": "equal epochs", "steps": "equal steps"}


def has_equal_steps(series: SeriesRecipe) -> bool:
    """Whether this series has an equal-steps control: `equal_steps` on and the book's own models
    read (an external checkpoint, the `model` knob, has no W_S series)."""
    return bool(series.equal_steps) and series.model is None


def planned_steps(epochs: float, ws: int, batch_size: int) -> int:
    """Optimizer steps of a W_S model trained for `epochs` passes in batches of `batch_size`
    (as `training_arguments` plans them)."""
    return math.ceil(epochs * math.ceil(ws / batch_size))


def equal_steps_epochs(series: SeriesRecipe, ws: int) -> float:
    """The epochs at which W_S trains for exactly the steps of the largest W_S at `epochs`."""
    largest, epochs, batch = max(series.ws_list), series.training.epochs, series.training.batch_size
    target = planned_steps(epochs, largest, batch)
    if ws == largest:
        return epochs
    epochs = target / math.ceil(ws / batch)
    while planned_steps(epochs, ws, batch) > target:  # float rounding up
        epochs = math.nextafter(epochs, 0.0)
    while planned_steps(epochs, ws, batch) < target:  # float rounding down
        epochs = math.nextafter(epochs, math.inf)
    return epochs


def equal_steps_recipe(series: SeriesRecipe, ws: int) -> SeriesRecipe:
    """The series recipe that trains (and keys) the W_S model of the equal-steps series."""
    return series.with_epochs(equal_steps_epochs(series, ws))


def series_recipes(series: SeriesRecipe, name: str) -> dict[int, SeriesRecipe]:
    """{W_S: the recipe of its model} in series `name` ("epochs" or "steps"), smallest W_S first."""
    if name not in SERIES_NAMES:
        raise ValueError(f"series={name!r}: must be one of {', '.join(SERIES_NAMES)}")
    return {ws: series if name == "epochs" else equal_steps_recipe(series, ws)
            for ws in sorted(series.ws_list)}


def equal_steps_series(series: SeriesRecipe, store: Store | None = None,
                       data: PretrainingData | None = None) -> dict[int, PretrainedModel]:
    """The pre-trained model of every W_S at equal steps (published, stored, or trained now); {}
    when `equal_steps` is off or an external checkpoint (`model`) is read."""
    if not has_equal_steps(series):
        return {}
    store = store or Store()
    data = data or pretraining_data(series.data, store)
    return {ws: pretrained_model(each, ws, data, store)
            for ws, each in series_recipes(series, "steps").items()}
