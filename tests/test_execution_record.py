"""The execution-status page: one row per chapter, the latest run of each replacing the earlier."""

from aptutils.__main__ import main
from aptutils.parts import execution_page, record_execution


def test_record_keeps_one_entry_per_chapter(tmp_path):
    record = tmp_path / "execution.json"
    record_execution("02_apt", "cpu", 125.4, "cpu", record)
    record_execution("01_pretraining", "cpu", 61, "cpu", record)
    entries = record_execution("02_apt", "smoke", 9, "cpu", record)
    assert list(entries) == ["01_pretraining", "02_apt"]
    assert entries["02_apt"]["profile"] == "smoke" and entries["02_apt"]["seconds"] == 9
    page = execution_page(record)
    assert "| [02_apt](02_apt.ipynb) | `smoke` | 0 min 9 s | cpu |" in page
    assert "| [01_pretraining](01_pretraining.ipynb) | `cpu` | 1 min 1 s | cpu |" in page


def test_an_unknown_chapter_stops_before_any_work(capsys):
    assert main(["book", "--chapters", "99", "--no-render"]) == 2
    assert "--chapters 99: no such chapter" in capsys.readouterr().err
