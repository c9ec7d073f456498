"""aptutils: the package behind the book reproducing arXiv:2509.03407 (APT, BERT-6, clusters).

Chapters import it and call it; all logic lives here, unit-tested in tests/. A house in layers,
each importing only from the layers below it (tests/test_layers.py keeps it so):

    plotting   figures, task_figures, image_figures,   every figure of the book
               power_figures, heatmaps
    reports    ch1_pretraining … ch7_image_analogy,    chapter N's tables and verdicts: chN_*.py;
               controls, cluster_power                 claims under a control, structural power
    analysis   apt, baselines, clusters, structure,    statistics, nulls, intervals
               confidence, filters
    readout    features, readers, counting, probes,    what each block predicts (lens, probe, …)
               reading, series, layers
    training   pretrain, equal_steps, published,       Trainer pre-training (and its equal-steps
               evaluation, heads, finetune, cnn        control), the one head loop, fine-tuning
    models     bert, vgg                               the sparse-head BERT, the CNN
    data       corpus, tokenizer, masking,             Wikipedia, W_S / W_test (and its
               pretraining, heldout, extension,        extension), tasks, images
               tasks, images
    core       knobs, profiles, params, store,         parameters, artifacts, precision, counts,
               device, counts, errors, verdicts        verdict records

notebooks.py, parts.py, sweeps.py and __main__.py (the book's build, its parts and pages,
parameter sweeps, and the command line) sit above every layer.
"""
from .core import params as _params
from .core.errors import DataError, ParameterError
from .core.params import Settings, resolve
from .core.store import Store


def configure(namespace: dict) -> Settings:
    """A chapter's settings (`core.params.configure`); with `model` set (an external BERT
    checkpoint), its architecture knobs are the checkpoint's (`data.checkpoint`)."""
    settings = _params.configure(namespace)
    if settings.values.get("model") is None:
        return settings
    from .data.checkpoint import checkpoint_settings

    return checkpoint_settings(settings)


__all__ = ["DataError", "ParameterError", "Settings", "Store", "configure", "resolve"]
