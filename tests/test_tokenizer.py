"""The trained WordPiece: its token ids do not depend on the trainer's hash order."""
import json
import random

from aptutils.data.tokenizer import SPECIAL_TOKENS, sorted_vocab, train_wordpiece

TEXTS = ["the quick brown fox jumps over the lazy dog near the riverbank",
         "zebras quietly graze; vexing jackdaws fly by at dawn",
         "tokenizers break unbelievably long words into word pieces"] * 30


def vocab(folder) -> dict[str, int]:
    return json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]


def test_ids_do_not_depend_on_the_order_the_trainer_numbered_the_tokens():
    tokens = SPECIAL_TOKENS + ["b", "a", "##b", "ab", "##a"]
    shuffled = tokens[:]
    random.Random(0).shuffle(shuffled)
    expected = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4,
                "##a": 5, "##b": 6, "a": 7, "ab": 8, "b": 9}
    assert sorted_vocab({t: i for i, t in enumerate(tokens)}) == expected
    assert sorted_vocab({t: i for i, t in enumerate(shuffled)}) == expected


def test_specials_come_first_then_tokens_in_sorted_order(tmp_path):
    ids = vocab(_trained(tmp_path))
    by_id = sorted(ids, key=ids.get)
    assert by_id[:len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert by_id[len(SPECIAL_TOKENS):] == sorted(by_id[len(SPECIAL_TOKENS):])
    assert sorted(ids.values()) == list(range(len(ids)))
    assert {"##s", "the", "q"} <= set(ids)


def test_sorting_the_ids_keeps_the_segmentation(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_trained(tmp_path))
    pieces = tokenizer.tokenize("The unbelievably quick zebras")
    assert "".join(p.removeprefix("##") for p in pieces) == "theunbelievablyquickzebras"
    assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(pieces)) == pieces
    assert tokenizer("fox")["input_ids"][0] == SPECIAL_TOKENS.index("[CLS]")


def _trained(folder):
    folder.mkdir(parents=True, exist_ok=True)
    train_wordpiece(TEXTS, 120, folder)
    return folder


def test_a_hub_tokenizer_name_loads_from_the_mirror_folder_of_that_name(tmp_path, monkeypatch):
    from aptutils.data.tokenizer import tokenizer_source

    folder = _trained(tmp_path / "mirror" / "bert-base-uncased")
    monkeypatch.setenv("APTBOOK_DATA", str(tmp_path / "mirror"))
    assert tokenizer_source("bert-base-uncased") == str(folder)
    assert tokenizer_source("bert-large-cased") == "bert-large-cased"  # not mirrored: the hub's id
    assert tokenizer_source(str(folder)) == str(folder)  # a folder is taken as given
    monkeypatch.delenv("APTBOOK_DATA")
    assert tokenizer_source("bert-base-uncased") == "bert-base-uncased"
