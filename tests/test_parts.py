"""The book's parts: the GPU edition's checks, the side-by-side verdicts page, nbval's CUDA skip."""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from aptutils.notebooks import chapter_sources
from aptutils.parts import CPU, GPU, Part, import_part, part_problems, verdicts_page
from aptutils.plugins.pytest import pytest_collection_modifyitems

CHAPTERS = [source.stem for source in chapter_sources()]


def planted_part(tmp_path: Path, stems: list[str], profile: str = "gpu") -> Part:
    """A GPU part made of copies of the published chapters, their recorded profile set to `profile`."""
    part = Part("gpu", "At BERT-6 width on one GPU", tmp_path / "gpu", "gpu")
    part.folder.mkdir()
    for stem in stems:
        notebook = json.loads((CPU.folder / f"{stem}.ipynb").read_text())
        notebook["metadata"]["papermill"]["parameters"]["profile"] = profile
        (part.folder / f"{stem}.ipynb").write_text(json.dumps(notebook))
    return part


def test_the_published_parts_are_complete():
    assert part_problems(CPU, expected=CHAPTERS) == []
    # the GPU part holds either nothing yet (the run is pending) or all seven chapters
    assert part_problems(GPU, expected=CHAPTERS if GPU.chapters else []) == []


def test_a_complete_planted_part_passes_and_each_defect_is_named(tmp_path):
    part = planted_part(tmp_path, CHAPTERS)
    assert part_problems(part, expected=CHAPTERS) == []

    (part.folder / "07_image_analogy.ipynb").unlink()
    assert part_problems(part, expected=CHAPTERS) == ["07_image_analogy: not executed"]

    notebook = json.loads((part.folder / "04_clustering.ipynb").read_text())
    notebook["metadata"]["papermill"]["parameters"]["profile"] = "cpu"
    for cell in notebook["cells"]:
        cell["outputs"] = [o for o in cell.get("outputs", [])
                           if "application/vnd.aptbook.verdicts+json" not in o.get("data", {})]
    (part.folder / "04_clustering.ipynb").write_text(json.dumps(notebook))
    problems = part_problems(part)
    assert problems == ["04_clustering: profile 'cpu', not 'gpu'", "04_clustering: no verdict table (nor chapter 1's model records)"]


def test_a_claim_decided_twice_is_a_problem(tmp_path):
    part = planted_part(tmp_path, ["02_apt"])
    shutil.copyfile(part.folder / "02_apt.ipynb", part.folder / "08_apt_again.ipynb")
    assert any("C1 also decided in 02_apt" in p for p in part_problems(part))


def test_verdicts_page_shows_both_parts_side_by_side(tmp_path):
    gpu = planted_part(tmp_path, ["02_apt"])
    page = verdicts_page((CPU, gpu), page_dir=CPU.folder)
    header = next(line for line in page.splitlines() if line.startswith("| claim | claim text |"))
    assert header == ("| claim | claim text | chapter | verdict (CPU) | verdict (GPU) | this run (CPU) "
                      "| this run (GPU) | reason (CPU) | reason (GPU) |")
    c4 = next(line for line in page.splitlines() if line.startswith("| C4 |")).split(" | ")
    c8 = next(line for line in page.splitlines() if line.startswith("| C8 |")).split(" | ")
    assert c4[3] == c4[4] == "**does not hold**"  # the planted GPU copy of chapter 2 agrees
    assert c8[3] == "**holds**" and c8[4] == "**not measured**"  # chapter 5 is not in the GPU part
    assert "has not been executed yet" not in page


def test_an_unexecuted_part_is_named_not_shown_as_a_column():
    empty = Part("gpu", "At BERT-6 width on one GPU", Path("/nonexistent/gpu"), "gpu")
    page = verdicts_page((CPU, empty), page_dir=CPU.folder)
    assert "Part *At BERT-6 width on one GPU* has not been executed yet" in page
    assert "verdict (GPU)" not in page and "verdict (CPU)" in page


def test_import_copies_chapters_and_record(tmp_path):
    returned = tmp_path / "out"
    returned.mkdir()
    shutil.copyfile(CPU.folder / "04_clustering.ipynb", returned / "04_clustering.ipynb")
    (returned / "execution.json").write_text("{}")
    part = Part("gpu", "GPU", tmp_path / "gpu", "gpu")
    assert import_part(part, returned) == ["04_clustering"]
    assert (part.folder / "04_clustering.ipynb").is_file() and part.record.is_file()


@pytest.mark.parametrize("cuda", [False, True])
def test_nbval_skips_the_gpu_part_only_without_cuda(monkeypatch, cuda):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    items = [SimpleNamespace(path=GPU.folder / "02_apt.ipynb", markers=[]),
             SimpleNamespace(path=CPU.folder / "02_apt.ipynb", markers=[])]
    for item in items:
        item.add_marker = item.markers.append
    pytest_collection_modifyitems(None, items)
    gpu_markers, cpu_markers = items[0].markers, items[1].markers
    assert cpu_markers == []
    if cuda:
        assert gpu_markers == []
    else:
        assert [m.name for m in gpu_markers] == ["skip"]
        assert "needs CUDA" in gpu_markers[0].kwargs["reason"]


def test_short_result_keeps_the_first_clause_without_its_reading_context():
    from aptutils.parts import short_result

    assert short_result("ρ = 0.275 [0.249, 0.301] over 5,013 tokens; rule's ρ = 0.024") == (
        "ρ = 0.275 [0.249, 0.301] over 5,013 tokens")
    assert short_result("block 6, masked positions, mutual: 97 clustered tokens; more") == (
        "97 clustered tokens")
    assert short_result("layer 8: 1.70 labels per filter") == "layer 8: 1.70 labels per filter"
    assert short_result("one two three four five", width=12) == "one two …"


def test_the_scoreboard_has_a_line_per_claim_and_links_to_each_deciding_section():
    from aptutils.core.verdicts import CLAIMS
    from aptutils.parts import VERDICT_SECTION, scoreboard

    lines = scoreboard((CPU,), page_dir=CPU.folder).splitlines()[2:]
    claims = [line.split(" | ")[0].removeprefix("| ").strip("*") for line in lines]
    assert [c for c in claims if " at " not in c] == list(CLAIMS)
    for line in lines:
        chapter = line.rsplit('href="', 1)[1].split(".html#")[0]
        assert f'.html#{VERDICT_SECTION}">{chapter}</a>' in line
        source = next(s for s in chapter_sources() if s.stem == chapter)
        assert "## What the paper claims, and what this run finds" in source.read_text()


def test_the_intro_carries_the_scoreboard_between_its_marks():
    from aptutils.core.errors import DataError
    from aptutils.parts import INTRO_PAGE, SCOREBOARD_MARKS, scoreboard, with_scoreboard

    start, end = SCOREBOARD_MARKS
    assert with_scoreboard(f"a\n{start}\nold\n{end}\nb", "new") == f"a\n{start}\nnew\n{end}\nb"
    with pytest.raises(DataError, match="lacks its scoreboard marks"):
        with_scoreboard("no marks", "new")
    intro = INTRO_PAGE.read_text()
    assert intro == with_scoreboard(intro, scoreboard())  # written from the executed chapters
