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
