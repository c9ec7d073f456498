"""aptutils: the package behind the book reproducing arXiv:2509.03407 (APT, BERT-6, clusters).

Chapters import what they call from `aptutils.chapter`; all logic lives here, unit-tested in
tests/. A house in layers, each importing only from the layers below it (tests/test_layers.py
keeps it so, and that no function below reports/ takes the whole Settings):

    plotting   figures, task_figures, image_figures,   every figure of the book
               power_figures, heatmaps
    reports    opening, ch1_pretraining …              what a chapter opens with; chapter N's
               ch7_image_analogy, controls,            tables and verdicts: chN_*.py; claims
               cluster_power                           under a control, structural power
    analysis   apt, baselines, clusters, structure,    statistics, nulls, intervals
               confidence, filters
    readout    features, readers, counting, probes,    what each block predicts (lens, probe, …)
               reading, series, layers
    training   pretrain, equal_steps, subject,         Trainer pre-training (and its equal-steps
               published, evaluation, heads,           control), the model being read, the one
               finetune, cnn                           head loop, fine-tuning
    models     bert, vgg                               the sparse-head BERT, the CNN
    data       corpus, tokenizer, masking,             Wikipedia, W_S / W_test (and its
               pretraining, heldout, extension,        extension), tasks, images
               tasks, images
    core       knobs, profiles, params, recipes,       parameters, artifacts, precision, counts,
               store, device, counts, errors,          verdict records
               verdicts

chapter.py, notebooks.py, parts.py, sweeps.py, __main__.py and plugins/ (what chapters import,
the book's build, its parts and pages, parameter sweeps, the command line, and the Sphinx and
pytest plugins) sit above every layer.

Glossary, one name per concept:
- knob: one parameter a chapter takes (`core.knobs`); Settings: a run's validated knob values.
- recipe: a group of knobs resolved once into a frozen dataclass (`core.recipes`): the argument
  of the functions that need them and, field by field, the key of what they make.
- block: where a model is read: block 0 is the embedding output, block k the output of
  transformer block k.
- kind: what masking did to a modified position: masked ([MASK]), replaced (a random token) or
  unchanged (its own token, so the model sees its answer); `Kinds` names one or several.
- reading: which modified W_test positions a number reads (`kinds`), how often a token must occur
  there (`token_min_occurrences`), over how many maskings (`analysis.rises.PositionReading`).
- reader: how a block's states become token predictions: probe, lens or tuned lens
  (`readout.readers`); the protocol is the reader a chapter's figures and verdicts use.
- readout: what the readers give, block by block (the `readout` layer; `LayerReadout` is the
  CNN's, layer by layer).
- subject: the model being read, trained or untrained, the book's own or an external checkpoint
  (`training.subject.Subject`), built once.
"""
from .core.errors import DataError, ParameterError
from .core.params import Settings, resolve
from .core.store import Store


__all__ = ["DataError", "ParameterError", "Settings", "Store", "resolve"]
