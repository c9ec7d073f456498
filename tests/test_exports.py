"""Exports: a chapter's tables (CSV) and figures (PNG, SVG) land in its export folder, which the
chapter links to; nothing is written before a chapter starts its exports."""
import xml.etree.ElementTree as ElementTree

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aptutils.core import exports
from aptutils.notebooks import chapter_sources, execute_chapter
from aptutils.plotting import figures


@pytest.fixture
def export_root(tmp_path, monkeypatch):
    monkeypatch.setenv("APTBOOK_EXPORTS", str(tmp_path / "exports"))
    yield tmp_path / "exports"
    exports.stop()


def test_nothing_is_written_before_a_chapter_starts(export_root):
    exports.stop()
    assert exports.save_table(pd.DataFrame({"a": [1]}), "t") is None
    figures.rank_frequency_figure(np.array([5, 3, 1]))
    assert not export_root.exists()


def test_tables_and_figures_are_written_and_read_back(export_root):
    folder = exports.start("99_test")
    (folder / "stale.csv").write_text("from an earlier run")
    folder = exports.start("99_test")
    assert not (folder / "stale.csv").exists()
    table = pd.DataFrame({"token": ["a", "b"], "count": [1138, 2]})
    path = exports.save_table(table.style.format(precision=3), "Counts per token")
    assert path.name == "counts_per_token.csv"
    assert pd.read_csv(path, index_col=0).equals(table)
    assert pd.read_parquet(exports.save_table(table, "long", parquet=True)).equals(table)
    figures.rank_frequency_figure(np.array([5, 3, 1]))
    figures.rank_frequency_figure(np.array([7, 1]))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["counts_per_token.csv", "long.parquet", "rank_frequency.png", "rank_frequency.svg",
                     "rank_frequency_2.png", "rank_frequency_2.svg"]
    assert Image.open(folder / "rank_frequency.png").size[0] > 100
    assert ElementTree.parse(folder / "rank_frequency.svg").getroot().tag.endswith("svg")
    assert all(f'href="exports/99_test/{name}"' in exports.links().data for name in names)


@exports.exported
def outer_figure():
    return figures.rank_frequency_figure(np.array([2, 1]))  # itself an exported figure function


def test_a_figure_made_inside_another_is_saved_once(export_root):
    folder = exports.start("99_nested")
    outer_figure()
    assert sorted(p.name for p in folder.iterdir()) == ["outer.png", "outer.svg"]


@pytest.mark.chapter
def test_a_smoke_chapter_writes_and_links_its_exports(export_root, tmp_path):
    source = next(s for s in chapter_sources() if s.stem == "03_symmetry_breaking")
    output = tmp_path / source.name
    execute_chapter(source, output, {"profile": "smoke"})
    folder = export_root / source.stem
    files = sorted(folder.iterdir())
    tables = [p for p in files if p.suffix in (".csv", ".parquet")]
    pictures = [p for p in files if p.suffix == ".png"]
    assert tables and pictures
    for path in tables:
        assert len(pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)) > 0
    for path in pictures:
        Image.open(path).verify()
        assert ElementTree.parse(path.with_suffix(".svg")).getroot().tag.endswith("svg")
    links = nbformat.read(output, as_version=4).cells[-1].outputs[0]["data"]["text/html"]
    assert all(f"exports/{source.stem}/{p.name}" in links for p in files)


def test_clusters_of_every_block_are_exported(export_root):
    from types import SimpleNamespace

    from aptutils.reports.ch4_clustering import export_clusters

    folder = exports.start("99_clusters")
    tokenizer = SimpleNamespace(convert_ids_to_tokens=lambda ids: [f"t{i}" for i in ids])
    blocks = [SimpleNamespace(kept=np.array([3, 5, 7]), labels=np.array([0, 1, 0])),  # {3, 7}; 5 alone
              SimpleNamespace(kept=np.array([2, 4]), labels=np.array([0, 0]))]
    export_clusters(blocks, tokenizer)
    table = pd.read_csv(folder / "clusters_by_block.csv", index_col=0)
    assert table[["block", "size", "token_id", "token"]].values.tolist() == [
        [0, 2, 3, "t3"], [0, 2, 7, "t7"], [1, 2, 2, "t2"], [1, 2, 4, "t4"]]
