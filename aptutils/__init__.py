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

notebooks.py, parts.py, sweeps.py, __main__.py and plugins/ (the book's build, its parts and
pages, parameter sweeps, the command line, and the Sphinx and pytest plugins) sit above every layer.
"""
from .core.errors import DataError, ParameterError
from .core.params import Settings, resolve
from .core.store import Store


def configure(namespace: dict) -> Settings:
    """A chapter's settings, with an external checkpoint's architecture (`reports.opening`)."""
    from .reports.opening import configure as configure_chapter

    return configure_chapter(namespace)


def with_checkpoint(settings: Settings) -> Settings:
    """The settings with `model`'s architecture, if set (`reports.opening.with_checkpoint`)."""
    from .reports.opening import with_checkpoint as checkpoint_knobs

    return checkpoint_knobs(settings)


__all__ = ["DataError", "ParameterError", "Settings", "Store", "configure", "resolve", "with_checkpoint"]
