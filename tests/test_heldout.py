"""W_test's extension: whole training-pool articles no model or reader trains on, pooled with W_test."""
import shutil

import numpy as np
import pytest

from aptutils.core.counts import MASKED
from aptutils.core.errors import DataError
from aptutils.core.params import resolve
from aptutils.core.store import Store, artifact_key
from aptutils.data.corpus import PoolLayout, SampleRecipe, Samples, pool_layout
from aptutils.data.extension import HeldoutRecipe, build_extension, heldout_extension
from aptutils.data.heldout import (
    extension_seed,
    heldout_description,
    masking_seed,
    maskings_params,
    recipe_maskings,
)
from aptutils.data.masking import mask_tokens, special_token_ids
from aptutils.data.pretraining import PretrainingData
from aptutils.readout.reading import CountsRecipe, block_counts_params
from aptutils.reports.opening import run_data


@pytest.fixture(scope="module")
def smoke(smoke_store):
    """The smoke profile's settings (W_S 64, 128; W_test 32 samples; extension 16), data, store,
    pool layout and extension."""
    store = Store(smoke_store)
    settings = resolve({"profile": "smoke"})
    data = run_data(settings, store)
    layout = pool_layout(settings.recipe(SampleRecipe), data.corpus, data.tokenizer)
    return settings, data, store, layout, heldout_extension(settings.recipe(HeldoutRecipe), data, store)


def test_a_pool_layout_names_the_article_of_every_shuffled_row():
    rows = [[np.array([10])], [np.array([20]), np.array([21])], [np.array([30])]]
    layout = PoolLayout(rows, np.array([2, 1]), np.array([0]), np.array([1, 2, 0]), 4)
    # laid end to end in train_articles order: 30, 20, 21; then rows 1, 2, 0 of that
    assert layout.pool().ravel().tolist() == [20, 21, 30]
    assert layout.pool_articles().tolist() == [1, 1, 2]


def test_the_re_derived_pool_is_the_stored_one(smoke):
    _, data, _, layout, _ = smoke
    assert np.array_equal(layout.pool(), data.samples.array("train_ids"))
    assert len(layout.pool_articles()) == data.samples.stats["train_samples"]


def test_the_extension_shares_no_article_with_what_is_trained_on_or_with_w_test(smoke):
    settings, data, _, layout, extension = smoke
    assert settings.recipe(HeldoutRecipe).reach == 128  # the largest W_S; the probes read 64 rows
    articles = layout.pool_articles()
    trained = {data.corpus.ids[a] for a in articles[:128]}
    chosen = extension.stats["article_ids"]
    assert set(chosen).isdisjoint(trained)
    assert set(chosen).isdisjoint(data.samples.stats["test_articles_ids"])
    rows = np.load(extension.folder / "pool_rows.npy")
    assert len(rows) == len(extension.ids) == 16 and rows.min() >= 128
    assert np.array_equal(extension.ids, np.asarray(data.samples.array("train_ids"))[rows])
    assert {data.corpus.ids[a] for a in articles[rows]} == set(chosen)
    for article in chosen[:-1]:  # whole articles (only the last may be cut, as in W_test)
        index = data.corpus.ids.index(article)
        assert set(np.flatnonzero(articles == index)) <= set(rows)


def test_more_than_the_eligible_samples_stops_naming_test_extension(smoke):
    settings, data, store, layout, _ = smoke
    articles = layout.pool_articles()
    below = set(articles[:128].tolist())
    eligible = sum(len(layout.samples[a]) for a in layout.train_articles if a not in below)
    with pytest.raises(DataError) as raised:
        heldout_extension(settings.replace(test_extension=10**7).recipe(HeldoutRecipe), data, store)
    message = str(raised.value)
    assert message.startswith("test_extension=10000000: ") and "\n" not in message
    assert f"only {eligible:,} samples of the training pool are eligible" in message


def test_a_pool_that_is_not_the_stored_one_is_refused(smoke, tmp_path):
    settings, data, _, _, _ = smoke
    copied = tmp_path / data.samples.folder.name
    shutil.copytree(data.samples.folder, copied)
    pool = np.load(copied / "train_ids.npy")
    np.save(copied / "train_ids.npy", pool[::-1])
    other = PretrainingData(data.corpus, data.tokenizer, Samples(copied), data.tokenizer_key)
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="test_extension=16: the training pool re-derived"):
        build_extension(tmp_path / "out", settings.recipe(HeldoutRecipe), other)


def test_each_pooled_masking_is_w_test_then_the_extension_under_its_own_seed(smoke):
    settings, data, store, _, extension = smoke
    tokenizer, samples = data.tokenizer, data.samples
    maskings = list(recipe_maskings(settings.recipe(HeldoutRecipe), data, store))
    assert len(maskings) == settings.test_maskings == 2

    def masked(ids, seed):
        return mask_tokens(np.array(ids), special_token_ids(tokenizer), tokenizer.mask_token_id,
                           len(tokenizer), settings.mask_prob, seed=seed)

    stored = [samples.array(n) for n in ("test_inputs", "test_labels", "test_kinds")]
    own = [stored, masked(samples.array("test_ids"), masking_seed(settings.seed, 1))]
    for m, found in enumerate(maskings):
        assert all(a.shape == (32 + 16, 32) for a in found)
        more = masked(extension.ids, extension_seed(settings.seed, m))
        for a, b, c in zip(found, own[m], more):
            assert np.array_equal(a[:32], b) and np.array_equal(a[32:], c)
        labels = found[1][32:]
        assert (labels[labels >= 0] == extension.ids[labels >= 0]).all()
    assert not np.array_equal(maskings[0][2][32:], maskings[1][2][32:])
    alone = list(recipe_maskings(settings.replace(test_extension=0).recipe(HeldoutRecipe), data, store))
    assert np.array_equal(alone[0][0], stored[0]) and alone[1][0].shape == (32, 32)


def test_the_extension_seeds_meet_no_other_seed():
    others = {43, 44, 45} | {masking_seed(42, m) for m in range(1, 101)}
    seeds = {extension_seed(42, m) for m in range(100)}
    assert len(seeds) == 100 and seeds.isdisjoint(others)


def test_the_reach_is_what_the_models_and_readers_train_on():
    smoke = resolve({"profile": "smoke"})  # ws_list 64, 128; probe_samples 64

    def reach(settings, **knobs):
        return settings.replace(**knobs).recipe(HeldoutRecipe).reach

    assert reach(smoke, probe_samples=1_000) == 128  # probes read <= W_S rows
    assert reach(smoke, analysis_ws=64) == 128  # every model of the series trains
    external = smoke.replace(model="some/checkpoint")
    assert reach(external) == 64
    assert reach(external, probe_samples=1_000) == 128
    assert reach(external, probe_samples=1_000, analysis_ws=64) == 64


def test_the_extension_is_in_the_key_of_every_count_over_the_maskings():
    settings = resolve({"profile": "smoke"})
    model = {"samples": "samples-abc", "ws": 128}
    with_extension = block_counts_params(settings.recipe(CountsRecipe), model)
    without = block_counts_params(settings.replace(test_extension=0).recipe(CountsRecipe), model)
    assert with_extension["test_extension"] == 16 and without["test_extension"] == 0
    assert artifact_key("block-counts", with_extension) != artifact_key("block-counts", without)
    assert maskings_params(settings.recipe(HeldoutRecipe)) == {"test_maskings": 2, "test_extension": 16,
                                                               "reach": 128}
    assert maskings_params(settings.replace(ws_list="64,256").recipe(HeldoutRecipe))["reach"] == 256
    assert maskings_params(settings.replace(test_extension=0).recipe(HeldoutRecipe))["reach"] is None


def test_the_description_counts_both_parts(smoke):
    settings, data, store, _, extension = smoke
    described = heldout_description(settings.recipe(HeldoutRecipe), data, store)
    assert (described["held_out_samples"], described["extension_samples"], described["samples"]) \
        == (32, 16, 48)
    assert described["articles"] == (data.samples.stats["test_articles"]
                                     + len(extension.stats["article_ids"]))
    assert described["reach"] == 128 and described["maskings"] == 2
    kinds = [k for _, _, k in recipe_maskings(settings.recipe(HeldoutRecipe), data, store)]
    assert described["masked"] == [int((k == MASKED).sum()) for k in kinds]
    assert described["masked"][0] == int((np.asarray(data.samples.array("test_kinds")) == MASKED)
                                          .sum() + (kinds[0][32:] == MASKED).sum())
    alone = heldout_description(settings.replace(test_extension=0).recipe(HeldoutRecipe), data, store)
    assert (alone["samples"], alone["reach"]) == (32, None)


def test_chapter_2_says_what_w_test_is_from_the_description():
    from aptutils.reports.ch2_apt import heldout_sentence

    described = {"held_out_samples": 1_000, "held_out_articles": 1, "extension_samples": 2_000,
                 "extension_articles": 1_793, "samples": 3_000, "articles": 1_794, "reach": 16_000,
                 "maskings": 2, "masked": [1_200, 1_300]}
    sentence = heldout_sentence(described)
    assert sentence.startswith("W_test: 1,000 samples of 1 held-out article (")
    assert "2,000 samples of 1,793 whole articles" in sentence and "first 16,000 rows" in sentence
    assert "3,000 samples of 1,794 articles" in sentence
    assert sentence.endswith("per masking: 1,200, 1,300 (2,500 pooled).")
    alone = heldout_sentence({**described, "extension_samples": 0})
    assert "-p test_extension N" in alone and "16,000" not in alone


def test_the_series_reads_the_analysed_model_exactly_as_the_lens_reads_its_last_block(smoke):
    """The series' last-block counts and the block counts' lens share the trunk (bf16), the head
    (fp32 argmax) and the maskings, so for the analysed W_S they are the same counts; the other
    W_S are different models, so their counts differ."""
    from aptutils.readout.reading import series_counts
    from aptutils.reports.opening import block_run
    from aptutils.training.pretrain import SeriesRecipe

    settings, data, store, _, _ = smoke
    series = series_counts(settings.recipe(SeriesRecipe), settings.recipe(HeldoutRecipe), data, store)
    assert list(series) == list(settings.ws_list)
    lens_last = block_run(settings, store).counts()["lens"][-1].counts
    analysed = series[max(settings.ws_list)]
    np.testing.assert_array_equal(analysed.correct, lens_last.correct)
    np.testing.assert_array_equal(analysed.total, lens_last.total)
    assert analysed.correct.sum() > 0
    smaller = series[min(settings.ws_list)]
    np.testing.assert_array_equal(smaller.total, analysed.total)  # the same positions
    assert not np.array_equal(smaller.correct, analysed.correct)
