"""Any BERT checkpoint (the `model` knob): a Hugging Face folder is read with its own tokenizer and
architecture; one without an MLM head by the probe alone, saying why; bad folders stop in one line.

The checkpoints are made here: a tiny `BertForMaskedLM` and a tiny `BertModel` (3 blocks of width
24, unlike the smoke profile's 2 x 16), both with a WordPiece trained on the smoke corpus.
"""
import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

import aptutils
from aptutils.core.errors import DataError, ParameterError
from aptutils.core.params import resolve
from aptutils.reports.opening import with_checkpoint
from aptutils.data.checkpoint import files_digest
from aptutils.data.corpus import CorpusRecipe, load_corpus
from aptutils.data.extension import HeldoutRecipe
from aptutils.data.tokenizer import TokenizerRecipe, tokenizer_params, train_wordpiece
from aptutils.models.bert import BertTrunk
from aptutils.readout.reading import ReadersRecipe, probe_heads, series_counts
from aptutils.reports.ch2_apt import missing_readers_sentence, readers_sentence
from aptutils.reports.opening import block_run, run_data
from aptutils.training.evaluation import heldout_counts
from aptutils.training.pretrain import SeriesRecipe
from aptutils.training.subject import SubjectRecipe, subject_key

LAYERS, WIDTH = 3, 24


def tiny_config(vocab: int) -> BertConfig:
    return BertConfig(vocab_size=vocab, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                      num_attention_heads=2, intermediate_size=48, max_position_embeddings=64,
                      pad_token_id=0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{"mlm": folder of a BertForMaskedLM, "trunk": folder of a BertModel}, each with its tokenizer."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("checkpoints")
    texts = load_corpus(resolve({"profile": "smoke"}).recipe(CorpusRecipe)).texts
    train_wordpiece(texts, 500, root / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    folders = {}
    for name, kind in (("mlm", BertForMaskedLM), ("trunk", BertModel)):
        torch.manual_seed(1)
        kind(tiny_config(len(tokenizer))).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


def settings_of(folder, **knobs):
    return with_checkpoint(resolve({"profile": "smoke", "model": str(folder), **knobs}))


def test_the_checkpoint_brings_its_architecture_tokenizer_and_keys(checkpoints):
    settings = settings_of(checkpoints["mlm"])
    assert (settings.num_layers, settings.hidden_size, settings.num_heads, settings.ffn_size) == \
        (LAYERS, WIDTH, 2, 48)
    assert aptutils.resolve({"profile": "smoke"}).num_layers == 2  # the default path keeps its own
    data = run_data(settings)
    assert len(data.tokenizer) == BertConfig.from_pretrained(checkpoints["mlm"]).vocab_size
    assert tokenizer_params(settings.recipe(TokenizerRecipe), data.corpus)["kind"] == "checkpoint"
    subject = settings.recipe(SubjectRecipe)
    assert subject.external and subject.ws == 128
    key = subject_key(subject, 128, True, data)
    assert key["checkpoint"] == str(checkpoints["mlm"].resolve())
    assert key["files"] == files_digest(checkpoints["mlm"]) != files_digest(checkpoints["trunk"])
    assert subject_key(subject, 128, False, data) == {**key, "untrained": True}
    default = run_data(resolve({"profile": "smoke"}))
    assert default.tokenizer_key != data.tokenizer_key
    assert series_counts(settings.recipe(SeriesRecipe), settings.recipe(HeldoutRecipe),
                         data) == {}  # no W_S series


def test_every_reader_reads_an_mlm_checkpoint_and_the_lens_ends_in_its_own_head(checkpoints):
    run = block_run(settings_of(checkpoints["mlm"]))
    counts = run.counts()
    assert set(counts) == {"probe", "lens", "tuned-lens"}
    assert all(len(blocks) == LAYERS + 1 for blocks in counts.values())
    model = run.subject.model
    assert run.subject.has_mlm_head and run.subject.key["checkpoint"]
    saved = BertForMaskedLM.from_pretrained(checkpoints["mlm"])
    assert torch.equal(model.cls.predictions.transform.dense.weight,
                       saved.cls.predictions.transform.dense.weight)
    own = None  # the model's own predictions over the same maskings: the lens at the last block
    for masking in run.maskings():
        one = heldout_counts(model, *masking, precision="fp32")
        own = one if own is None else own + one
    last = counts["lens"][-1].counts
    np.testing.assert_array_equal(last.correct, own.correct)
    np.testing.assert_array_equal(last.total, own.total)
    assert "the probe reads" in readers_sentence(counts, run.reading)


def test_a_bertmodel_checkpoint_is_read_by_the_probe_alone_and_says_why(checkpoints):
    run = block_run(settings_of(checkpoints["trunk"]))
    settings, data, model = run.settings, run.data, run.subject.model
    assert isinstance(model, BertTrunk) and not run.subject.has_mlm_head
    saved = BertModel.from_pretrained(checkpoints["trunk"])  # its weights, not fresh ones
    assert torch.equal(model.bert.embeddings.word_embeddings.weight,
                       saved.embeddings.word_embeddings.weight)
    assert torch.equal(model.bert.encoder.layer[-1].output.dense.weight,
                       saved.encoder.layer[-1].output.dense.weight)
    counts = run.counts()
    assert list(counts) == ["probe"] and len(counts["probe"]) == LAYERS + 1
    heads = probe_heads(settings.recipe(ReadersRecipe), run.subject, data,
                        aptutils.Store())  # trained above; `probe_decoder tied` needs only the
    assert settings.probe_decoder == "tied"  # input embeddings, which a BertModel has
    assert all(torch.equal(head.predictions.decoder.weight, saved.embeddings.word_embeddings.weight)
               for head in heads)
    assert list(run.counts(trained=False)) == ["probe"]
    assert list(run.reader_training()) == ["probe"]
    why = missing_readers_sentence(counts)
    assert why.startswith("Not available: lens, tuned-lens.") and "no MLM head" in why
    assert why.strip() in readers_sentence(counts, run.reading)
    assert missing_readers_sentence({"probe": [], "lens": [], "tuned-lens": []}) == ""
    with pytest.raises(ParameterError, match=r"protocol='lens' .* has none .*-p protocol probe"):
        settings_of(checkpoints["trunk"], protocol="lens")
    settings_of(checkpoints["mlm"], protocol="tuned-lens")  # an MLM head: every protocol


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_checkpoints_stop_with_one_line(checkpoints, tmp_path):
    with pytest.raises(DataError) as error:
        settings_of(tmp_path / "nowhere")
    assert "no such folder" in one_line(error)
    with pytest.raises(DataError) as error:
        settings_of(tmp_path)  # a folder, but no checkpoint
    assert "no readable config.json" in one_line(error)
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(DataError) as error:
        settings_of(gpt)
    assert "model_type 'gpt2'" in one_line(error) and "BERT checkpoints" in str(error.value)
    with pytest.raises(DataError) as error:  # tests are offline (conftest): the hub cannot answer
        settings_of("someone/no-such-bert")
    assert "the hub cannot give it" in one_line(error)
    with pytest.raises(ParameterError) as error:
        settings_of(checkpoints["mlm"], seq_len=128)
    assert "has 64 positions" in one_line(error)


@pytest.mark.chapter
@pytest.mark.parametrize("chapter, which, expected", [
    ("02_apt", "trunk", "Not available: lens, tuned-lens"),
    ("05_finetuning", "mlm", "checkpoint mlm"),
])
def test_a_chapter_runs_on_a_checkpoint(checkpoints, tmp_path, chapter, which, expected):
    from aptutils.core.verdicts import gather_verdicts
    from aptutils.notebooks import chapter_sources, execute_chapter
    from tests.test_chapters import outputs_text

    source = next(s for s in chapter_sources() if s.stem == chapter)
    output = tmp_path / source.name
    execute_chapter(source, output, {"profile": "smoke", "model": str(checkpoints[which])})
    import nbformat

    assert expected in outputs_text(nbformat.read(output, as_version=4))
    verdicts = gather_verdicts({chapter: json.loads(output.read_text())})
    series_claim = "C2" if chapter == "02_apt" else "C12"
    assert verdicts.loc[series_claim, "verdict"] == "not measured"
    assert "no W_S series" in verdicts.loc[series_claim, "reason"]
