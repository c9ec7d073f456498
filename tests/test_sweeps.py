"""Parameter sweeps: the grid, its checks before anything runs, and a two-point sweep of chapter 3
on the smoke profile gathered into one table (and resumed without re-running)."""
import pandas as pd
import pytest

from aptutils.__main__ import main, parse_value
from aptutils.core.errors import ParameterError
from aptutils.sweeps import Point, sweep_grid, sweep_points


def test_points_split_at_commas_or_at_semicolons_for_list_knobs():
    assert sweep_points("threshold", "0.3, 0.5,0.7") == ["0.3", "0.5", "0.7"]
    assert sweep_points("ws_list", "1000,4000;4000,16000") == ["1000,4000", "4000,16000"]
    assert sweep_points("kinds", "masked") == ["masked"]  # one point: kinds is itself a list
    with pytest.raises(ParameterError, match="an empty value"):
        sweep_points("threshold", "0.3,,0.5")


def test_the_grid_is_every_combination_and_checks_every_point_first():
    grid = sweep_grid({"profile": "smoke"}, [("threshold", "0.3,0.6"), ("min_row_count", "1,5")],
                      parse_value)
    assert [dict(p.values) for p in grid] == [
        {"threshold": 0.3, "min_row_count": 1}, {"threshold": 0.3, "min_row_count": 5},
        {"threshold": 0.6, "min_row_count": 1}, {"threshold": 0.6, "min_row_count": 5}]
    assert grid[1].name == "threshold=0.3__min_row_count=5"
    assert Point((("ws_list", "64,128"),)).name == "ws_list=64+128"
    with pytest.raises(ParameterError, match="threshold=1.5: "):
        sweep_grid({"profile": "smoke"}, [("threshold", "0.3,1.5")], parse_value)


def test_bad_sweeps_stop_with_one_line_before_anything_runs(capsys):
    assert main(["sweep", "03", "--profile", "smoke", "-p", "cnn_depth", "3,4"]) == 2
    assert "cnn_depth is not a knob of this chapter" in capsys.readouterr().err
    assert main(["sweep", "09", "-p", "threshold", "0.3"]) == 2
    assert "sweep 09: no such chapter" in capsys.readouterr().err


@pytest.mark.chapter
def test_a_two_point_sweep_of_chapter_3_gathers_its_verdicts_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    assert main(["sweep", "03", "--profile", "smoke", "-p", "threshold", "0.3,0.6",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert table["threshold"].tolist() == [0.3] * 3 + [0.6] * 3
    assert table["claim"].tolist() == ["C5", "C6", "C7"] * 2
    assert table["verdict"].isin(["holds", "does not hold", "not measured"]).all()
    assert sorted(p.name for p in out.glob("*.ipynb")) == [
        "03_symmetry_breaking__threshold=0.3.ipynb", "03_symmetry_breaking__threshold=0.6.ipynb"]
    page = (out / "sweep.html").read_text()
    assert page.count("<tr><td>0.3</td>") == 1 and page.count("<tr><td>0.6</td>") == 1

    def no_rerun(*args):
        raise AssertionError("an executed point ran again")

    monkeypatch.setattr("aptutils.notebooks.execute_chapter", no_rerun)
    assert main(["sweep", "03", "--profile", "smoke", "-p", "threshold", "0.3,0.6",
                 "--out", str(out)]) == 0
    assert pd.read_csv(out / "sweep.csv").equals(table)
