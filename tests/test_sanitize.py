"""nbval checks numbers: the checked outputs' numbers are compared to two significant digits, in
pairs (`aptutils.plugins.nbval_numbers`), after the sanitize file removed machine paths and column padding.
Outputs that differ only below that precision compare equal; a drift in a figure, or a changed
verdict, fails. Last, nbval itself catches a drift planted in a copy of an executed chapter."""
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from aptutils.plugins.nbval_numbers import NUMBER, agree, agree_written, align_numbers, align_outputs
from aptutils.core.store import REPO_ROOT
from aptutils.core.verdicts import MODELS_MIME, Verdict, report

SANITIZE_FILE = Path(__file__).parent / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """What nbval does to each output before it compares: the file's rules, in order."""
    for regex, replace in get_sanitize_patterns(SANITIZE_FILE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def compares_equal(stored: str, new: str) -> bool:
    """nbval's verdict on one text output: numbers aligned on the stored ones, both sanitized."""
    return sanitize(align_numbers(stored, new)) == sanitize(stored)


def plain_table(this_run: str, verdict: str) -> str:
    bundle = report([Verdict("C5", this_run, "largest cluster <= 1% of the kept tokens", verdict),
                     Verdict("C6", "SNR 0.56 → 0.29", "SNR higher at the last block", "holds")]
                    )._repr_mimebundle_()
    return bundle["text/plain"]


def test_two_significant_digits_without_a_rounding_boundary():
    assert agree(0.2349, 0.2351)          # rounding each side would give 0.23 against 0.24
    assert agree(1138, 1140) and agree(-0.051, -0.0512) and agree(0.0, 0.0)
    assert not agree(0.23, 0.24) and not agree(7, 8) and not agree(0.0, 0.001)
    assert not agree(0.051, -0.051) and not agree(12_000, 13_000)


def test_written_numbers_keep_their_own_rounding():
    """A bootstrap bound of 0.0605 is written 0.060 on one machine and 0.061 on another."""
    assert agree_written("+0.060", "+0.061") and agree_written("0.23", "0.24")
    assert not agree_written("0.060", "0.062") and not agree_written("0.23", "0.25")
    assert not agree_written("7", "8") and agree_written("1,138", "1,140")
    assert not agree_written("63.6", "66.6") and not agree_written("1e-3", "2e-3")
    assert compares_equal("C9 rho +0.116 [+0.061, +0.166]", "C9 rho +0.116 [+0.060, +0.166]")


def test_numbers_are_read_in_words_and_tables_but_not_inside_names():
    text = "C10 at block 6: rho −0.051 [+0.019, 1e-3] over 2,368 tokens (63.6%) by bf16 key ed6c545f"
    assert NUMBER.findall(text) == ["6", "−0.051", "+0.019", "1e-3", "2,368", "63.6"]
    assert NUMBER.findall("W_S = 1,000, 4,000, 16,000") == ["1,000", "4,000", "16,000"]


def test_a_table_that_differs_below_two_significant_digits_compares_equal():
    stored = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "does not hold")
    new = plain_table("3 clusters; largest 7 of 11 kept tokens (63.61%)", "does not hold")
    assert stored != new and compares_equal(stored, new)


def test_a_drift_in_a_figure_fails_the_comparison():
    stored = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "does not hold")
    for drifted in ("3 clusters; largest 7 of 11 kept tokens (66.6%)",   # a figure drifts
                    "4 clusters; largest 7 of 11 kept tokens (63.6%)",   # a count
                    "3 clusters; largest 7 of 11 kept tokens (6.36%)"):  # a decimal place
        assert not compares_equal(stored, plain_table(drifted, "does not hold")), drifted


def test_a_changed_verdict_or_word_still_fails_the_comparison():
    stored = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "does not hold")
    assert not compares_equal(stored, plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)",
                                                  "holds"))
    assert not compares_equal(stored, plain_table("3 groups; largest 7 of 11 kept tokens (63.6%)",
                                                  "does not hold"))


def test_column_padding_and_store_paths_are_sanitized():
    """Numbers of other widths pad a table's columns differently; paths of the store differ."""
    assert sanitize("a   0.15  b\tc") == "a 0.15 b\tc"
    assert sanitize("from /tmp/x/.aptbook-store/code-1/ab12 on") == "from STORE on"
    assert compares_equal("x      0.151441      15901", "x  0.15144  15901")


def test_outputs_are_aligned_field_by_field_and_left_alone_when_they_do_not_pair():
    stored = [{"output_type": "display_data", "data": {"text/plain": "loss 6.7784", "text/html": "<td>6.7784</td>"}}]
    new = [{"output_type": "display_data", "data": {"text/plain": "loss 6.7791", "text/html": "<td>6.90</td>"}}]
    aligned = align_outputs(new, stored)
    assert aligned[0]["data"] == {"text/plain": "loss 6.7784", "text/html": "<td>6.90</td>"}
    assert new[0]["data"]["text/plain"] == "loss 6.7791"  # the new outputs themselves untouched
    assert align_outputs(new + new, stored) == new + new


# ---- nbval on a copy of an executed chapter ----------------------------------------------------

def checked_cells(notebook) -> dict[int, int]:
    """{nbval's number of the cell (it counts code cells): index in the notebook} of the cells
    marked NBVAL_CHECK_OUTPUT."""
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    return {n: i for n, i in enumerate(code) if "NBVAL_CHECK_OUTPUT" in notebook.cells[i].source}


def plant_drift(text: str) -> str:
    """The first figure of 0.01 or more in the table's first data row, raised by 0.2."""
    header, first, rest = text.split("\n", 2)
    for match in NUMBER.finditer(first):
        number = float(match.group())
        if number >= 0.01 and "." in match.group():
            decimals = len(match.group().split(".")[1])
            drifted = first[:match.start()] + f"{number + 0.2:.{decimals}f}" + first[match.end():]
            return "\n".join([header, drifted, rest])
    raise AssertionError(f"no figure to drift in {first!r}")


@pytest.mark.chapter
def test_nbval_catches_a_drift_planted_in_a_copy_of_an_executed_chapter(tmp_path, chapter_1_on_smoke):
    notebook = nbformat.read(chapter_1_on_smoke, as_version=4)
    checked = checked_cells(notebook)
    records = next(n for n, i in checked.items()
                   if any(MODELS_MIME in o.get("data", {}) for o in notebook.cells[i].outputs))
    assert len(checked) >= 3, checked  # the corpus, masking and paper-vs-run tables, the records
    nbformat.write(notebook, tmp_path / "unchanged.ipynb")
    output = next(o for o in notebook.cells[checked[records]].outputs if MODELS_MIME in o.get("data", {}))
    output["data"]["text/plain"] = plant_drift(output["data"]["text/plain"])
    nbformat.write(notebook, tmp_path / "drifted.ipynb")

    unchanged = nbval(tmp_path / "unchanged.ipynb")
    assert unchanged == {"passed": len(code_cells(notebook)), "failed": []}
    drifted = nbval(tmp_path / "drifted.ipynb")
    assert drifted["failed"] == [f"Cell {records}"]


def code_cells(notebook) -> list[int]:
    return [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def nbval(path: Path) -> dict:
    """Run nbval (the book's way: --nbval-lax, the sanitize file, the numbers plugin) on one
    executed notebook in a subprocess: {"passed": count, "failed": ["Cell N", ...]}."""
    (path.parent / "pytest.ini").write_text("[pytest]\n")  # none of the repository's options
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "-p", "aptutils.plugins.pytest", "-p", "aptutils.plugins.nbval_numbers", "--nbval-lax",
         "--nbval-sanitize-with", str(SANITIZE_FILE), path.name],
        cwd=path.parent, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
        text=True)
    outcomes = re.findall(r"^(PASSED|FAILED) \S*::(Cell \d+)", result.stdout, re.M)
    assert outcomes and result.returncode == (1 if "FAILED" in dict(outcomes) else 0), result.stdout[-3000:]
    return {"passed": sum(outcome == "PASSED" for outcome, _ in outcomes),
            "failed": [cell for outcome, cell in outcomes if outcome == "FAILED"]}
