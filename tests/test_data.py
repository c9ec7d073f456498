"""Samples, splits and corpus loading."""
import numpy as np
import pytest

from aptutils.core.errors import DataError
from aptutils.core.params import resolve
from aptutils.data.corpus import article_samples, load_mirror_split, split_by_article
from aptutils.data.corpus import CorpusRecipe
from aptutils.reports.opening import run_data

CLS, SEP, PAD = 2, 3, 0


def test_first_mode_keeps_the_first_tokens_of_each_article():
    samples = article_samples(list(range(10, 30)), "first", 8, CLS, SEP, PAD)
    assert [s.tolist() for s in samples] == [[2, 10, 11, 12, 13, 14, 15, 3]]


def test_chunk_mode_cuts_consecutive_pieces_and_pads_the_last():
    samples = article_samples(list(range(10, 24)), "chunks", 8, CLS, SEP, PAD)
    assert [s.tolist() for s in samples] == [
        [2, 10, 11, 12, 13, 14, 15, 3],
        [2, 16, 17, 18, 19, 20, 21, 3],
        [2, 22, 23, 3, 0, 0, 0, 0],
    ]


def test_chunk_mode_drops_a_tail_shorter_than_a_quarter_sample():
    kept = article_samples(list(range(10, 23)), "chunks", 10, CLS, SEP, PAD)
    assert len(kept) == 2 and kept[1].tolist() == [2, 18, 19, 20, 21, 22, 3, 0, 0, 0]
    dropped = article_samples(list(range(10, 27)), "chunks", 10, CLS, SEP, PAD)
    assert len(dropped) == 2 and dropped[1].tolist() == [2, *range(18, 26), 3]


def test_split_by_article_is_disjoint_and_holds_enough_test_samples():
    per_article = [3, 1, 4, 1, 5, 9, 2, 6]
    train, test = split_by_article(per_article, 6, np.random.default_rng(0))
    assert set(train).isdisjoint(test) and sorted([*train, *test]) == list(range(8))
    assert sum(per_article[a] for a in test) >= 6
    assert sum(per_article[a] for a in test[1:]) < 6  # no more articles than needed


def test_split_refuses_when_nothing_is_left_to_train():
    with pytest.raises(DataError, match="test_samples=100"):
        split_by_article([3, 4], 100, np.random.default_rng(0))


def test_missing_mirror_folder_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("APTBOOK_DATA", str(tmp_path))
    with pytest.raises(DataError, match="APTBOOK_DATA must name a folder laid out like"):
        load_mirror_split("wikipedia", "train", ("text",))


def test_mirror_without_expected_columns_is_refused(tmp_path, monkeypatch):
    import pandas as pd

    (tmp_path / "wikipedia").mkdir()
    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "wikipedia" / "train-00000-of-00001.parquet")
    monkeypatch.setenv("APTBOOK_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"lacks columns \['id', 'text'\]"):
        load_mirror_split("wikipedia", "train", ("id", "text"))


def test_ws_slices_are_nested_and_disjoint_from_wtest():
    settings = resolve({"profile": "smoke"})
    data = run_data(settings)
    stats = data.samples.stats
    assert set(stats["train_articles_ids"]).isdisjoint(stats["test_articles_ids"])
    small, large = (data.samples.train_slice(ws) for ws in settings.ws_list)
    assert (large[: len(small)] == small).all()
    test_rows = {tuple(r) for r in np.asarray(data.samples.array("test_ids"))}
    assert not test_rows & {tuple(r) for r in large}
    assert len(test_rows) == settings.test_samples
    with pytest.raises(DataError, match="ws_list: W_S=10000000 exceeds"):
        data.samples.train_slice(10_000_000)


def test_smoke_without_a_mirror_falls_back_to_the_gensim_excerpt(monkeypatch):
    from aptutils.data.corpus import gensim_excerpt_articles, resolved_corpus

    monkeypatch.delenv("APTBOOK_DATA", raising=False)
    assert resolved_corpus(resolve({"profile": "smoke"}).recipe(CorpusRecipe)) == "gensim"
    assert resolved_corpus(resolve({"profile": "cpu"}).recipe(CorpusRecipe)) == "hub"
    articles = gensim_excerpt_articles()
    assert len(articles) >= 100
    assert all(len(a["text"].split()) >= 200 and a["id"].startswith("gensim-") for a in articles)
    assert "[[" not in articles[0]["text"]  # wiki markup stripped


def test_a_damaged_mirror_file_stops_with_one_line(tmp_path, monkeypatch):
    from aptutils.core.errors import DataError
    from aptutils.data.corpus import load_mirror_split

    (tmp_path / "wikipedia").mkdir()
    (tmp_path / "wikipedia" / "train-00000-of-00001.parquet").write_bytes(b"not a parquet file")
    monkeypatch.setenv("APTBOOK_DATA", str(tmp_path))
    with pytest.raises(DataError, match="cannot read train-00000-of-00001.parquet") as raised:
        load_mirror_split("wikipedia", "train", ("id", "text"))
    assert "\n" not in str(raised.value)
