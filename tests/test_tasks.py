"""FewRel entity markers, per-label sampling, and the messages for bad task input."""
from pathlib import Path

import numpy as np
import pytest

from aptutils.core.errors import DataError, ParameterError
from aptutils.core.params import resolve
from aptutils.data.entities import (
    check_entity_positions,
    check_markers,
    encode_marked_rows,
    entity_span,
    fewrel_marked,
    marked_entities,
)
from aptutils.data.tasks import (
    Task,
    TaskRecipe,
    build_task,
    check_task,
    encode_rows,
    first_labels,
    load_fewrel,
    raw_dbpedia,
    raw_fewrel,
    sample_per_label,
    split_pool_per_label,
)
from aptutils.data.tokenizer import train_wordpiece

TOKENS = ["the", "new", "york", "times", "owns", "the", "boston", "globe"]


def marked(head, tail, markers="punct") -> str:
    return " ".join(marked_entities(TOKENS, head, tail, markers)[0])


def test_multi_token_entities_get_one_marker_pair_each():
    assert marked((1, 3), (6, 7)) == "the @ new york times @ owns the # boston globe #"
    assert marked((1, 3), (6, 7), "brackets") == \
        "the [E1] new york times [/E1] owns the [E2] boston globe [/E2]"


def test_nested_entities_stay_nested_whichever_is_inside():
    assert marked((1, 3), (1, 2)) == "the @ # new york # times @ owns the boston globe"
    assert marked((2, 2), (1, 3)) == "the # new @ york @ times # owns the boston globe"
    assert marked((4, 4), (4, 4)) == "the new york times @ # owns # @ the boston globe"


def test_crossing_and_adjacent_entities_keep_their_own_edges():
    assert marked((1, 2), (2, 3)) == "the @ new # york @ times # owns the boston globe"
    assert marked((1, 1), (2, 2)) == "the @ new @ # york # times owns the boston globe"


def test_entity_span_takes_the_first_mention_and_refuses_positions_outside_the_sentence():
    assert entity_span([[5, 6, 7], [0]], 8) == (5, 7)
    assert entity_span([[8]], 8) is None
    assert entity_span([[-1, 0]], 8) is None
    assert entity_span([], 8) is None
    row = {"tokens": TOKENS, "head": {"indices": [[1, 2, 3]]}, "tail": {"indices": [[9]]}}
    assert fewrel_marked(row, "punct") is None
    row["tail"]["indices"] = [[6, 7]]
    assert fewrel_marked(row, "punct").text == "the @ new york times @ owns the # boston globe #"


def test_one_pool_split_takes_test_first_at_most_half_and_is_disjoint():
    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 7)
    train, test = split_pool_per_label(labels, ["a", "b"], train=6, test=4, rng=np.random.default_rng(0))
    assert sorted(labels[test]) == ["a"] * 4 + ["b"]
    assert sorted(labels[train]) == ["a"] * 6 + ["b"] * 2
    assert not set(train) & set(test)


def test_sampling_per_label_clamps_to_what_exists():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 9)
    picked = sample_per_label(labels, [0, 1, 2], count=4, rng=np.random.default_rng(1))
    assert np.bincount(labels[picked]).tolist() == [4, 2, 4]
    assert len(set(picked)) == len(picked)


def test_bad_task_names_and_label_counts_say_what_to_do():
    with pytest.raises(ParameterError, match="task='imdb': allowed values are 'few_rel', 'dbpedia_14'"):
        check_task("imdb")
    with pytest.raises(DataError, match="few_rel_labels=80: FewRel .* holds 64 labels; "
                                        "choose few_rel_labels <= 64"):
        first_labels([f"P{i}" for i in range(64)], 80, "few_rel_labels", "FewRel (mirror)")
    with pytest.raises(ParameterError, match=r"dbpedia_labels=20: out of range, allowed in \[2, 14\]"):
        resolve({"dbpedia_labels": 20})
    with pytest.raises(ParameterError, match="entity_markers='angle'"):
        resolve({"entity_markers": "angle"})


def test_offline_fewrel_hub_failure_says_how_to_provide_a_parquet_mirror():
    with pytest.raises(DataError, match="provide a parquet mirror: <root>/few_rel/train-00000"):
        load_fewrel("hub")


def test_markers_that_would_read_as_unknown_are_refused(tmp_path):
    train_wordpiece(["the cat sat on the mat @ # and then it ran away"] * 20, 128, tmp_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    check_markers(tokenizer, "punct")
    with pytest.raises(DataError, match="entity_markers='brackets': '\\[.*choose entity_markers='punct'"):
        check_markers(tokenizer, "brackets")
    rows, cut = encode_rows(tokenizer, ["the cat", "the cat sat on the mat and ran"], seq_len=6)
    assert cut == 1 and rows.shape == (2, 6)
    assert rows[0].tolist()[:4] == [tokenizer.cls_token_id, *tokenizer("the cat", add_special_tokens=False)
                                    ["input_ids"], tokenizer.sep_token_id]
    assert rows[1, -1] == tokenizer.sep_token_id


def write_task_mirror(root: Path) -> Path:
    """few_rel/train (4 relations x 12 rows, the first of each with its head outside the sentence)
    and dbpedia_14/train, test (4 classes x 10 and x 6 abstracts), as parquet in the hub's schema."""
    from datasets import ClassLabel, Dataset, Features, Value

    relations = {"P17": "{h} is a town in {t} .", "P50": "{h} is a book by {t} .",
                 "P57": "{h} is a film directed by {t} .", "P175": "{h} is a song sung by {t} ."}
    names = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima", "mike",
             "oscar", "papa", "romeo", "sierra", "tango", "victor"]
    rows = []
    for relation, template in relations.items():
        for i in range(12):
            tokens = template.format(h=f"{names[i]} {names[-1 - i]}", t="x" + names[i]).split()
            head = [[0, 1]] if i else [[len(tokens) + 3]]
            rows.append({"relation": relation, "tokens": tokens,
                         "head": {"text": "", "type": "Q1", "indices": head},
                         "tail": {"text": "", "type": "Q2", "indices": [[len(tokens) - 2]]},
                         "names": [f"relation {relation}", "a description"]})
    (root / "few_rel").mkdir(parents=True)
    Dataset.from_list(rows).to_parquet(root / "few_rel" / "train-00000-of-00001.parquet")
    classes = {"Company": "{n} is a company that sells goods and has many workers .",
               "Artist": "{n} is a painter who made many works of art .",
               "Village": "{n} is a small village in the north near a river .",
               "Film": "{n} is a film with a famous actor and a long story ."}
    features = Features({"label": ClassLabel(names=list(classes)), "title": Value("string"),
                         "content": Value("string")})
    (root / "dbpedia_14").mkdir()
    for split, count in (("train", 10), ("test", 6)):
        abstracts = [{"label": label, "title": "", "content": text.format(n=names[i])}
                     for label, text in enumerate(classes.values()) for i in range(count)]
        Dataset.from_list(abstracts, features=features).to_parquet(
            root / "dbpedia_14" / f"{split}-00000-of-00001.parquet")
    return root


def test_per_label_counts_on_a_hand_made_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("APTBOOK_DATA", str(write_task_mirror(tmp_path)))
    settings = resolve({"profile": "smoke", "few_rel_labels": 3, "few_rel_train": 9, "few_rel_test": 4,
                        "dbpedia_labels": 3, "dbpedia_train": 12, "dbpedia_test": 5})
    tasks = settings.recipe(TaskRecipe)
    few_rel = raw_fewrel(tasks.few_rel, tasks.seed, "mirror")
    assert few_rel.skipped_rows == 4
    assert few_rel.label_names == ["P17 relation P17", "P175 relation P175", "P50 relation P50"]
    assert np.bincount(few_rel.test_labels).tolist() == [4, 4, 4]
    assert np.bincount(few_rel.train_labels).tolist() == [7, 7, 7]  # 11 usable rows - 4 for test
    assert not set(few_rel.train_texts) & set(few_rel.test_texts)
    assert all(text.startswith("@ ") and text.count("#") == 2 for text in few_rel.train_texts)
    dbpedia = raw_dbpedia(tasks.dbpedia_14, tasks.seed, "mirror")
    assert dbpedia.label_names == ["Company", "Artist", "Village"]
    assert np.bincount(dbpedia.train_labels).tolist() == [10, 10, 10]
    assert np.bincount(dbpedia.test_labels).tolist() == [5, 5, 5]
    with pytest.raises(DataError, match="few_rel_labels=5: FewRel \\(mirror\\) holds 4 labels"):
        raw_fewrel(settings.replace(few_rel_labels=5).recipe(TaskRecipe).few_rel, 42, "mirror")


@pytest.fixture(scope="module")
def marker_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    train_wordpiece(["mail me @ home , the new york times owns the boston globe # 1 [ e1 ] [ / e2 ]"] * 20,
                    160, folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_openers_are_found_by_offset_not_by_the_first_marker_symbol(marker_tokenizer):
    tokens = ["mail", "me", "@", "home", ",", "the", "boston", "globe", "#", "1"]
    row = {"tokens": tokens, "head": {"indices": [[6, 7]]}, "tail": {"indices": [[0]]}}
    marked = fewrel_marked(row, "punct")
    assert marked.text == "# mail # me @ home , the @ boston globe @ # 1"
    assert [marked.text[c] for c in marked.openers] == ["@", "#"]
    assert marked.openers == (25, 0)
    rows = encode_marked_rows(marker_tokenizer, [marked.text], [marked.openers], seq_len=40)
    pieces = marker_tokenizer.convert_ids_to_tokens(rows.ids[0].tolist())
    head, tail = rows.entities[0]
    assert pieces[head] == "@" and pieces[head + 1] == "boston" and pieces[:3] == ["[CLS]", "#", "mail"]
    assert tail == 1 and "@" in pieces[:head]  # the earlier '@' of "mail me @ home" is not the head
    brackets = fewrel_marked(row, "brackets")
    rows = encode_marked_rows(marker_tokenizer, [brackets.text], [brackets.openers], seq_len=60)
    pieces = marker_tokenizer.convert_ids_to_tokens(rows.ids[0].tolist())
    assert pieces[rows.entities[0][0]:rows.entities[0][0] + 4] == ["[", "e1", "]", "boston"]


def test_long_rows_keep_a_window_around_both_markers_and_far_markers_are_dropped(marker_tokenizer):
    words = ["the"] * 30 + ["@", "boston", "@", "owns", "#", "globe", "#"] + ["the"] * 30
    text = " ".join(words)
    head, tail = len(" ".join(words[:30])) + 1, len(" ".join(words[:34])) + 1
    far = " ".join(["@", "a"] + ["the"] * 20 + ["#", "b"])
    rows = encode_marked_rows(marker_tokenizer, [text, far], [(head, tail), (0, len(far) - 3)], seq_len=12)
    assert rows.kept.tolist() == [0] and rows.cut == 1 and rows.ids.shape == (1, 12)
    pieces = marker_tokenizer.convert_ids_to_tokens(rows.ids[0].tolist())
    assert pieces == ["[CLS]", "the", "the", "@", "boston", "@", "owns", "#", "globe", "#", "the", "[SEP]"]
    assert rows.entities.tolist() == [[3, 7]]


def test_a_missing_marker_is_reported_with_its_row():
    ids = np.array([[2, 7, 5, 8, 3], [2, 5, 7, 8, 3]])
    assert check_entity_positions(ids, np.array([[1, 3], [2, 3]]), [7, 8], "FewRel test").tolist() == \
        [[1, 3], [2, 3]]
    with pytest.raises(DataError, match=r"FewRel test row 1: the head marker \(token id 7\) is not at "
                                        r"position 1 of its ids; 1 row\(s\) like it"):
        check_entity_positions(ids, np.array([[1, 3], [1, 3]]), [7, 8], "FewRel test")
    with pytest.raises(DataError, match="the tail marker .* is not at position 9"):
        check_entity_positions(ids, np.array([[1, 3], [2, 9]]), [7, 8], "FewRel test")


def test_a_built_fewrel_task_carries_checked_entity_positions(tmp_path, monkeypatch, marker_tokenizer):
    monkeypatch.setenv("APTBOOK_DATA", str(write_task_mirror(tmp_path / "mirror")))
    settings = resolve({"profile": "smoke", "few_rel_labels": 2, "few_rel_train": 3, "few_rel_test": 2})
    (tmp_path / "task").mkdir()
    build_task(tmp_path / "task", settings.recipe(TaskRecipe), "few_rel", marker_tokenizer)
    task = Task("few_rel", tmp_path / "task")
    positions = task.entity_positions("test")
    ids = task.array("test_ids")
    assert positions.shape == (4, 2) and task.info["markers_too_far"] == 0
    assert (ids[np.arange(4), positions[:, 0]] == marker_tokenizer.convert_tokens_to_ids("@")).all()
    assert (ids[np.arange(4), positions[:, 1]] == marker_tokenizer.convert_tokens_to_ids("#")).all()
    (tmp_path / "dbpedia").mkdir()
    build_task(tmp_path / "dbpedia", settings.recipe(TaskRecipe), "dbpedia_14", marker_tokenizer)
    with pytest.raises(DataError, match="DBpedia-14 has no entity markers: entity pooling reads FewRel only"):
        Task("dbpedia_14", tmp_path / "dbpedia").entity_positions("test")
