"""The executed book renders with Jupyter Book, warnings as errors."""
from aptutils.core.store import REPO_ROOT
from aptutils.notebooks import BOOK_DIR, chapter_sources, render_book


def test_every_chapter_has_an_executed_copy_in_the_toc():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    for source in chapter_sources():
        assert (BOOK_DIR / source.name).is_file()
        assert f"file: book/{source.stem}" in toc


def test_jupyter_book_builds_without_warnings(tmp_path):
    result = render_book(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for source in chapter_sources():
        assert (tmp_path / "_build" / "html" / "book" / f"{source.stem}.html").is_file()


def test_verdicts_page_is_gathered_from_the_executed_chapters():
    from aptutils.parts import VERDICTS_PAGE, verdicts_page

    assert VERDICTS_PAGE.read_text() == verdicts_page()


def test_table_of_contents_lists_what_the_parts_hold():
    from aptutils.parts import TOC, toc_text

    assert TOC.read_text() == toc_text()


def test_rerun_instructions_sit_under_the_title_once(tmp_path):
    import nbformat

    from aptutils.notebooks import RERUN_TAG, add_rerun_cell, chapter_sources

    source = chapter_sources()[2]
    output = tmp_path / source.name
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 3 · Title"),
                                               nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(notebook, output)
    for _ in range(2):  # a second build replaces the first copy
        add_rerun_cell(output, source, {"profile": "cpu", "threshold": 0.4})
    cells = nbformat.read(output, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "markdown", "code"]
    assert cells[1].metadata["tags"] == [RERUN_TAG]
    assert (f"papermill chapters/{source.name} out.ipynb -p profile cpu -p threshold 0.4"
            in cells[1].source)
    assert f"{{download}}`The executed notebook <{source.name}>`" in cells[1].source


def test_every_executed_chapter_says_how_to_rerun_it_with_its_own_parameters():
    import nbformat

    from aptutils.notebooks import RERUN_TAG, chapter_sources
    from aptutils.parts import CPU

    for source in chapter_sources():
        notebook = nbformat.read(CPU.folder / source.name, as_version=4)
        cell = notebook.cells[1]
        assert RERUN_TAG in cell.metadata.get("tags", []), source.name
        chosen = " ".join(f"-p {k} {v}" for k, v in notebook.metadata.papermill.parameters.items())
        assert f"papermill chapters/{source.name} out.ipynb {chosen}" in cell.source
