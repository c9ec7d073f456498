"""Recipes: a knob group resolved once; its fields are its knobs and its part of artifact keys."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from types import SimpleNamespace

import pytest

from aptutils.analysis.clusters import ClusterRule
from aptutils.analysis.rises import PositionReading
from aptutils.core.device import ComputeRecipe
from aptutils.core.errors import ParameterError
from aptutils.core.params import resolve
from aptutils.core.recipes import Recipe, build
from aptutils.readout.reading import CountsRecipe, block_counts_params, reader_params
from aptutils.training.finetune import FinetuneRecipe
from aptutils.training.pretrain import PretrainRecipe, SeriesRecipe, model_params
from aptutils.training.subject import SubjectRecipe

SMOKE = resolve({"profile": "smoke"})
DATA = SimpleNamespace(samples=SimpleNamespace(folder=SimpleNamespace(name="samples-abc")))


@dataclass(frozen=True)
class Inner(Recipe):
    seed: int


@dataclass(frozen=True)
class Outer(Recipe):
    KNOB_OF = {"least": "token_min_occurrences"}

    least: int
    inner: Inner
    seed: int
    option: bool = True  # no knob: keeps its default


def test_a_recipe_takes_its_knobs_nests_recipes_and_keys_only_its_own_fields():
    values = {"token_min_occurrences": 5, "seed": 7, "profile": "smoke"}
    outer = build(Outer, values)
    assert outer == Outer(5, Inner(7), 7, True)
    assert Outer.knobs() == ("token_min_occurrences", "seed")  # once each; no `option`
    assert outer.key() == {"least": 5, "seed": 7, "option": True}  # the nested recipe keys itself
    with pytest.raises(FrozenInstanceError):
        outer.seed = 8


def test_the_book_s_rules_are_recipes_of_their_knobs():
    assert SMOKE.recipe(ClusterRule) == ClusterRule(SMOKE.threshold, SMOKE.match, SMOKE.min_row_count)
    reading = SMOKE.recipe(PositionReading)
    assert (reading.kinds, reading.min_occurrences, reading.maskings) == \
        (("masked",), SMOKE.token_min_occurrences, SMOKE.test_maskings)
    assert ComputeRecipe.knobs() == ("device", "torch_compile")
    assert SMOKE.recipe(ComputeRecipe).torch_device == "cpu"  # device auto, no CUDA here


# The artifact keys the recipes make are the ones the knob tuples made before them: written out
# by hand here, so that a field added to a recipe (which would orphan every stored artifact and
# every published model) fails a test.
MODEL_KNOBS = ("hidden_size", "num_layers", "num_heads", "ffn_size", "dropout", "mask_prob",
               "batch_size", "learning_rate", "weight_decay", "epochs", "warmup_ratio",
               "eval_every", "precision", "seed")
PROBE_KNOBS = ("probe_samples", "probe_max_epochs", "probe_lr", "probe_batch", "probe_decoder",
               "probe_eval_every", "probe_patience", "probe_softmax", "probe_candidates")
TUNED_LENS_KNOBS = ("probe_samples", "probe_batch", "probe_eval_every", "probe_patience",
                    "tuned_lens_max_epochs", "tuned_lens_lr")


def knob_values(names) -> dict:
    return {name: SMOKE.values[name] for name in names}


def test_the_model_key_is_its_samples_its_knobs_and_its_ws():
    assert PretrainRecipe.knobs()[:len(MODEL_KNOBS)] == MODEL_KNOBS
    key = model_params(SMOKE.recipe(PretrainRecipe), DATA, 64)
    assert key == {"samples": "samples-abc", **knob_values(MODEL_KNOBS), "ws": 64}
    assert model_params(SMOKE.recipe(SeriesRecipe).training, DATA, 64) == key


def test_the_readers_and_counts_keys_are_the_reader_knobs_and_the_maskings():
    model = {"samples": "samples-abc", "ws": 128}
    training = {"held_out_share": 0.05, "stopping": "per head, best state kept"}
    recipe = SMOKE.recipe(CountsRecipe)
    assert reader_params(recipe.readers.probe, model) == \
        {"model": model, **knob_values(PROBE_KNOBS), **training}
    assert reader_params(recipe.readers.tuned_lens, model) == \
        {"model": model, **knob_values(TUNED_LENS_KNOBS), **training}
    assert block_counts_params(recipe, model) == {
        "model": model, **knob_values(PROBE_KNOBS + TUNED_LENS_KNOBS), **training,
        "test_maskings": 2, "test_extension": 16, "reach": 128,
        "counting": "fp32 argmax, confusion per kind, files named by reader"}


def test_the_fine_tuning_keys_are_the_head_and_full_knobs():
    recipe = SMOKE.recipe(FinetuneRecipe)
    assert recipe.head.key() == knob_values(("precision", "head_steps", "head_l2"))
    assert recipe.full.key() == knob_values(("finetune_epochs", "finetune_lr", "finetune_batch",
                                             "weight_decay", "warmup_ratio", "dropout",
                                             "precision", "seed"))


def test_the_subject_recipe_picks_the_ws_read_and_stops_on_one_outside_the_series():
    assert SMOKE.recipe(SubjectRecipe).ws == 128  # analysis_ws None: the largest
    assert SMOKE.replace(analysis_ws=64).recipe(SubjectRecipe).ws == 64
    with pytest.raises(ParameterError, match="analysis_ws=100: must be one of ws_list"):
        SMOKE.replace(analysis_ws=100).recipe(SubjectRecipe).ws
