"""Every chapter runs through papermill on the smoke profile, from the repository root."""
import ast
import importlib
import json
import re
from types import ModuleType

import nbformat
import pytest

from aptutils.core.verdicts import (
    MODELS_MIME,
    VERDICTS,
    gather_controls,
    gather_verdicts,
    mime_records,
)
from aptutils.notebooks import (
    CHAPTER_GROUPS,
    chapter_sources,
    execute_chapter,
    parameters_cell,
    parameters_source,
)


def outputs_text(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(texts)


def test_chapters_import_no_plain_value_that_configure_would_read_as_a_parameter():
    # Without IPython's input history (under nbval) `configure` reads every plain global, so an
    # imported constant (e.g. a threshold) would stop the chapter as an unknown parameter.
    for source in chapter_sources():
        for cell in nbformat.read(source, as_version=4).cells:
            if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        value = getattr(module, alias.name, None) or importlib.import_module(
                            f"{node.module}.{alias.name}")
                        assert isinstance(value, ModuleType) or callable(value), (
                            f"{source.name} imports the plain value {alias.name}")


def test_every_chapter_has_an_in_sync_parameters_cell():
    assert {s.stem for s in chapter_sources()} <= set(CHAPTER_GROUPS)
    for source in chapter_sources():
        notebook = nbformat.read(source, as_version=4)
        assert parameters_cell(notebook).source == parameters_source(CHAPTER_GROUPS[source.stem])
        assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.chapter
def test_chapter_1_on_smoke(chapter_1_on_smoke):
    output = chapter_1_on_smoke
    notebook = nbformat.read(output, as_version=4)
    text = outputs_text(notebook)
    assert "W_S (samples)" in text and "unigram plateau" in text
    assert "Pre-training W_S=64" in text
    records = mime_records(json.loads(output.read_text()), MODELS_MIME)
    # the equal-epochs series, then the equal-steps model it lacks (W_S 128 is in both)
    assert [(r["series"], r["ws"], r["steps"]) for r in records] == [
        ("equal epochs", 64, 8), ("equal epochs", 128, 16), ("equal steps", 64, 16)]
    assert all(0 <= r["masked_accuracy"] <= 1 and 0 <= r["own_masked_accuracy"] <= 1
               and "most frequent token" in r["baselines"] for r in records)


CHAPTER_CLAIMS = {"02_apt": ["C1", "C2", "C3", "C4"], "03_symmetry_breaking": ["C5", "C6", "C7"],
                  "04_clustering": ["C10"], "05_finetuning": ["C8", "C12"], "06_confidence": ["C9"],
                  "07_image_analogy": ["C11"]}
CHAPTER_CONTROLS = {"02_apt": ["C2 at equal steps"], "05_finetuning": ["C12 at equal steps"]}


@pytest.mark.chapter
@pytest.mark.parametrize("source", chapter_sources()[1:], ids=lambda p: p.stem)
def test_chapter_on_smoke_ends_with_its_verdicts(source, tmp_path):
    output = tmp_path / source.name
    execute_chapter(source, output, {"profile": "smoke"})
    gathered = gather_verdicts({source.stem: json.loads(output.read_text())})
    measured = gathered[gathered["chapter"] == source.stem]
    assert sorted(measured.index) == sorted(CHAPTER_CLAIMS[source.stem])
    assert measured["verdict"].isin(VERDICTS).all()
    controls = gather_controls({source.stem: json.loads(output.read_text())})
    assert sorted(controls.index) == CHAPTER_CONTROLS.get(source.stem, [])
    # decided, not "not measured": the smoke profile runs the equal-steps series
    assert controls["verdict"].isin(["holds", "does not hold"]).all()


@pytest.mark.chapter
def test_bad_parameter_stops_the_chapter_with_one_line(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute_chapter(chapter_sources()[0], tmp_path / "bad.ipynb", {"profile": "smoke", "hidden_size": 3})
    assert "hidden_size=3: out of range, allowed in [8, 8192]" in str(error.value)


def test_papermill_lists_every_knob_with_its_meaning():
    import papermill

    from aptutils.core.params import KNOBS

    for source in chapter_sources():
        listed = papermill.inspect_notebook(str(source))
        wanted = [k for k in KNOBS if set(k.groups) & set(CHAPTER_GROUPS[source.stem])]
        assert {name: p["help"] for name, p in listed.items()} == {k.name: k.doc for k in wanted}


FIGURE_CALL = re.compile(r"\b\w+_figure\(")


def test_every_figure_is_followed_by_its_caption():
    # a caption says what is drawn and what to look at; the computed title says what the run found
    for source in chapter_sources():
        cells = nbformat.read(source, as_version=4).cells
        for index, cell in enumerate(cells):
            if cell.cell_type == "code" and FIGURE_CALL.search(cell.source):
                following = cells[index + 1] if index + 1 < len(cells) else None
                assert following is not None and following.cell_type == "markdown" and (
                    following.source.startswith("*")), (
                    f"{source.name}: the figure of cell {index} ({cell.source[:60]!r}) has no caption")
