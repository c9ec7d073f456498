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

from ..core.params import Settings
from ..core.store import Store
from ..data.pretraining import PretrainingData, pretraining_data
from .pretrain import PretrainedModel, pretrained_model

SERIES_NAMES = {"epochs": "equal epochs", "steps": "equal steps"}


def has_equal_steps(settings: Settings) -> bool:
    """Whether these settings have an equal-steps series: `equal_steps` on and the book's own
    models read (an external checkpoint, the `model` knob, has no W_S series)."""
    return bool(settings.equal_steps) and settings.values.get("model") is None


def planned_steps(epochs: float, ws: int, batch_size: int) -> int:
    """Optimizer steps of a W_S model trained for `epochs` passes in batches of `batch_size`
    (as `training_arguments` plans them)."""
    return math.ceil(epochs * math.ceil(ws / batch_size))


def equal_steps_epochs(settings: Settings, ws: int) -> float:
    """The epochs at which W_S trains for exactly the steps of the largest W_S at `epochs`."""
    largest = max(settings.ws_list)
    target = planned_steps(settings.epochs, largest, settings.batch_size)
    if ws == largest:
        return settings.epochs
    epochs = target / math.ceil(ws / settings.batch_size)
    while planned_steps(epochs, ws, settings.batch_size) > target:  # float rounding up
        epochs = math.nextafter(epochs, 0.0)
    while planned_steps(epochs, ws, settings.batch_size) < target:  # float rounding down
        epochs = math.nextafter(epochs, math.inf)
    return epochs


def equal_steps_settings(settings: Settings, ws: int) -> Settings:
    """The settings that train (and key) the W_S model of the equal-steps series."""
    return settings.replace(epochs=equal_steps_epochs(settings, ws))


def series_settings(settings: Settings, series: str) -> dict[int, Settings]:
    """{W_S: the settings of its model} in `series` ("epochs" or "steps"), smallest W_S first."""
    if series not in SERIES_NAMES:
        raise ValueError(f"series={series!r}: must be one of {', '.join(SERIES_NAMES)}")
    return {ws: settings if series == "epochs" else equal_steps_settings(settings, ws)
            for ws in sorted(settings.ws_list)}


def equal_steps_series(settings: Settings, store: Store | None = None,
                       data: PretrainingData | None = None) -> dict[int, PretrainedModel]:
    """The pre-trained model of every W_S at equal steps (published, stored, or trained now); {}
    when `equal_steps` is off or an external checkpoint (`model`) is read."""
    if not has_equal_steps(settings):
        return {}
    store = store or Store()
    data = data or pretraining_data(settings, store)
    return {ws: pretrained_model(each, ws, data, store)
            for ws, each in series_settings(settings, "steps").items()}
