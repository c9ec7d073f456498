"""Bad inputs stop at once with one line that names the fix: no traceback, exit code 2 on the
command line, and nothing half-written left in the artifact store.

The command line (`python -m aptutils`, i.e. `aptutils.__main__.main`) is run as a subprocess for
the cases the issue found failing, in process for the rest (the same code, without a second
interpreter's start-up per case). Data cases use small copies of the mirror in a temporary folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aptutils.__main__ import main
from aptutils.core.errors import DataError
from aptutils.core.store import REPO_ROOT

MIRROR = Path(os.environ.get("APTBOOK_DATA") or REPO_ROOT.parent / "shared" / "data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "wikipedia").is_dir(),
                                  reason="needs the data mirror (APTBOOK_DATA) to copy from")
SMOKE = ["pretrain", "--profile", "smoke", "-p", "pretrain", "train", "-p", "ws_list", "64"]


def mini_mirror(root: Path, split: str = "train", rows: int = 200, rename: dict | None = None,
                damage: bool = False) -> Path:
    """A mirror holding the first `rows` Wikipedia articles as `<split>-00000-of-00001.parquet`,
    columns renamed by `rename`, or the file cut short (`damage`)."""
    table = pq.read_table(MIRROR / "wikipedia" / "train-00000-of-00001.parquet").slice(0, rows)
    if rename:
        table = table.rename_columns([rename.get(n, n) for n in table.column_names])
    folder = root / "wikipedia"
    folder.mkdir(parents=True)
    path = folder / f"{split}-00000-of-00001.parquet"
    pq.write_table(table, path)
    if damage:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return root


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def nothing_half_written(store: Path) -> None:
    """No temporary folder left, and every artifact folder complete (it has its params.json)."""
    assert not list(store.glob("tmp/*")), list(store.glob("tmp/*"))
    incomplete = [p for p in store.glob("code-*/*") if not (p / "params.json").is_file()]
    assert not incomplete, incomplete


def run_cli(args: list[str], capsys) -> str:
    """`python -m aptutils ARGS` in this process: exit code 2 and one line on stderr (returned)."""
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    return one_line(captured.err)


def run_subprocess(args: list[str], env: dict) -> str:
    """`python -m aptutils ARGS` as a subprocess: exit code 2, one line on stderr (returned)."""
    result = subprocess.run([sys.executable, "-m", "aptutils", *args], cwd=REPO_ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True)
    assert result.returncode == 2, result.stdout + result.stderr
    return one_line(result.stderr)


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    monkeypatch.setenv("APTBOOK_STORE", str(folder))
    return folder


# ---- the three the issue found failing, as subprocesses ----------------------------------------

def test_an_unknown_chapter_stops_and_names_the_chapters(store):
    line = run_subprocess(["book", "--chapters", "99", "--no-render"], {"APTBOOK_STORE": str(store)})
    assert line.startswith("ParameterError: --chapters 99: no such chapter; the chapters are 01 02")
    assert not store.exists()


@needs_mirror
def test_a_damaged_parquet_file_in_the_mirror_stops_with_one_line(tmp_path, store):
    mirror = mini_mirror(tmp_path / "mirror", damage=True)
    line = run_subprocess(SMOKE, {"APTBOOK_DATA": str(mirror), "APTBOOK_STORE": str(store)})
    assert line.startswith("DataError: wikipedia/train in ")
    assert "train-00000-of-00001.parquet" in line and "copy it again" in line
    nothing_half_written(store)


def test_a_store_that_names_a_file_stops_with_one_line(tmp_path):
    not_a_folder = tmp_path / "store.txt"
    not_a_folder.write_text("x")
    line = run_subprocess(SMOKE, {"APTBOOK_STORE": str(not_a_folder)})
    assert line == (f"DataError: the artifact store {not_a_folder} is a file, not a folder: set "
                    f"APTBOOK_STORE to a folder (it is created when missing)")
    assert not_a_folder.read_text() == "x"


# ---- parameters: stop before any work, the store untouched -------------------------------------

PARAMETER_CASES = {
    "unknown knob": (["-p", "hiden_size", "16"], "unknown parameter 'hiden_size': did you mean 'hidden_size'?"),
    "unknown profile": (["-p", "profile", "laptop"],
                        "profile='laptop': allowed values are 'smoke', 'cpu', 'gpu', 'paper'"),
    "width not an integer": (["-p", "hidden_size", "wide"], "hidden_size='wide': must be an integer in [8, 8192]"),
    "width out of range": (["-p", "hidden_size", "3"], "hidden_size=3: out of range, allowed in [8, 8192]"),
    "heads do not divide the width": (["-p", "num_heads", "3"], "num_heads=3: must divide hidden_size=16"),
    "kinds out of range": (["-p", "kinds", "masked,hidden"], "kinds='masked,hidden': must be 'all' or kinds among masked, replaced, unchanged"),
    "threshold above 1": (["-p", "threshold", "1.5"], "threshold=1.5: out of range, allowed (0.0, 1.0]"),
    "threshold a word": (["-p", "threshold", "high"], "threshold='high': must be a number in [0.0, 1.0]"),
    "pooling unknown": (["-p", "pooling", "max"], "pooling='max': allowed values are 'mean', 'cls'"),
    "fewrel pooling unknown": (["-p", "fewrel_pooling", "first"], "fewrel_pooling='first': allowed values are 'entity', 'mean', 'cls'"),
    "W_S list not increasing": (["-p", "ws_list", "128,64"], "ws_list='128,64': must be a non-empty, strictly increasing list"),
    "mask share zero": (["-p", "mask_prob", "0"], "mask_prob=0: out of range, allowed (0.0, 1.0]"),
    "negative seed": (["-p", "seed", "-1"], "seed=-1: out of range, allowed >= 0"),
    "a mirror asked for and none set": (["-p", "corpus", "mirror"], "corpus='mirror': set APTBOOK_DATA to the mirror root"),
}


@pytest.mark.parametrize("case", PARAMETER_CASES, ids=list(PARAMETER_CASES))
def test_a_bad_parameter_stops_before_any_work(case, store, capsys, monkeypatch):
    extra, message = PARAMETER_CASES[case]
    monkeypatch.delenv("APTBOOK_DATA", raising=False)
    line = run_cli(SMOKE + extra, capsys)
    assert line.startswith(f"ParameterError: {message}"), line
    assert not store.exists()


# ---- data: a mirror that is not laid out as the book expects, a store it cannot write ----------

@needs_mirror
@pytest.mark.parametrize("case", ["no mirror there", "no train split", "wrong columns"])
def test_a_mirror_that_is_not_laid_out_as_expected_stops_with_one_line(case, tmp_path, store, capsys,
                                                                      monkeypatch):
    mirror = {"no mirror there": lambda: tmp_path / "nowhere",
              "no train split": lambda: mini_mirror(tmp_path / "mirror", split="test"),
              "wrong columns": lambda: mini_mirror(tmp_path / "mirror", rename={"text": "body"}),
              }[case]()
    monkeypatch.setenv("APTBOOK_DATA", str(mirror))
    line = run_cli(SMOKE, capsys)
    expected = {"no mirror there": f"DataError: wikipedia: no train-*.parquet under {mirror / 'wikipedia'}",
                "no train split": f"DataError: wikipedia: no train-*.parquet under {mirror / 'wikipedia'}",
                "wrong columns": f"DataError: wikipedia/train in {mirror} lacks columns ['text']"}[case]
    assert line.startswith(expected), line
    assert "APTBOOK_DATA must name" in line or "re-export it" in line
    nothing_half_written(store)


def test_a_store_that_cannot_be_written_stops_with_one_line(tmp_path, capsys, monkeypatch):
    """A store below a file can never be created (as root, permissions would not stop a write)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("APTBOOK_STORE", str(blocker / "store"))
    line = run_cli(SMOKE + ["-p", "corpus", "gensim"], capsys)
    assert line.startswith(f"DataError: cannot write to the artifact store {blocker / 'store'}")
    assert line.endswith("set APTBOOK_STORE to a folder you can write")


@needs_mirror
@pytest.mark.parametrize("case", ["W_S larger than the corpus", "W_test larger than the corpus"])
def test_sizes_the_corpus_cannot_hold_stop_with_one_line(case, tmp_path, store, capsys, monkeypatch):
    monkeypatch.setenv("APTBOOK_DATA", str(mini_mirror(tmp_path / "mirror")))
    extra, message = {
        "W_S larger than the corpus": (["-p", "ws_list", "64,100000"],
                                       "DataError: ws_list: W_S=100000 exceeds the "),
        "W_test larger than the corpus": (["-p", "test_samples", "100000"],
                                          "DataError: test_samples=100000: the corpus has too few samples"),
    }[case]
    line = run_cli(SMOKE + extra, capsys)
    assert line.startswith(message), line
    nothing_half_written(store)
    assert not list(store.glob("code-*/model-*"))  # the model of W_S = 64 may exist, complete


@pytest.mark.parametrize("case", ["no such folder", "a folder that holds no tokenizer"])
def test_a_tokenizer_that_cannot_be_loaded_stops_with_one_line(case, tmp_path, store, capsys):
    folder = tmp_path / "not-a-tokenizer"
    if case != "no such folder":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    line = run_cli(SMOKE + ["-p", "corpus", "gensim", "-p", "tokenizer", str(folder)], capsys)
    assert line.startswith(f"DataError: tokenizer={str(folder)!r} cannot be loaded"), line
    nothing_half_written(store)


# ---- published models: a checkpoint that is not what its card says ------------------------------

@pytest.mark.parametrize("damage", ["weights changed", "weights missing"])
def test_a_published_model_whose_weights_do_not_match_its_card_stops_with_one_line(damage, tmp_path):
    from aptutils.training.published import PUBLISHED_DIR, published_folder

    source = sorted(PUBLISHED_DIR.glob("*/card.json"))[0].parent
    copy = tmp_path / "models" / source.name
    shutil.copytree(source, copy)
    weights = copy / "model.safetensors"
    if damage == "weights changed":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    else:
        weights.unlink()
    recipe = json.loads((copy / "card.json").read_text())["recipe"]
    with pytest.raises(DataError) as caught:
        published_folder(recipe, root=copy.parent)
    message = str(caught.value)
    assert "\n" not in message and caught.value._render_traceback_() == [f"DataError: {message}"]
    assert message.startswith(f"published model {source.name}: model.safetensors is missing or its "
                              f"sha256 differs from card.json; restore it")


@pytest.mark.parametrize("argv, wrong", [(["book", "--profile", "laptop"], "'laptop'"),
                                         (["bake"], "'bake'")])
def test_a_command_line_choice_that_does_not_exist_stops_with_one_line(argv, wrong, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert f"invalid choice: {wrong}" in line and "--help` lists what is allowed" in line
