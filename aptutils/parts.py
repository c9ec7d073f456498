"""The book's parts, its table of contents, and the pages gathered from its executed chapters.

Part `cpu` (the published run, `book/`) and part `gpu` ("At BERT-6 width on one GPU",
`book/gpu/`, executed by `benchmarks/gpu_edition.sh` on a GPU machine). `_toc.yml`, the
verdicts page (CPU and GPU verdicts side by side) and each part's execution page are written from
what lies in those folders by `python -m aptutils book` / `import-part`; tests check they match.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .core.errors import DataError
from .core.store import REPO_ROOT
from .core.verdicts import (
    CLAIMS,
    CONTROLS_MIME,
    MODELS_MIME,
    VERDICTS_MIME,
    gather_controls,
    gather_model_records,
    gather_verdicts,
    mime_records,
)

BOOK_DIR = REPO_ROOT / "book"
TOC = REPO_ROOT / "_toc.yml"
VERDICTS_PAGE = BOOK_DIR / "verdicts.md"
INTRO_PAGE = BOOK_DIR / "intro.md"


@dataclass(frozen=True)
class Part:
    """One part of the book: its executed chapters and their execution record live in `folder`."""

    name: str
    caption: str
    folder: Path
    profile: str

    @property
    def chapters(self) -> list[Path]:
        """The executed chapters of this part, in book order."""
        return sorted(self.folder.glob("[0-9][0-9]_*.ipynb"))

    @property
    def record(self) -> Path:
        return self.folder / "execution.json"

    @property
    def execution_page(self) -> Path:
        return self.folder / "execution.md"

    def notebooks(self) -> dict[str, dict]:
        return {path.stem: json.loads(path.read_text()) for path in self.chapters}


CPU = Part("cpu", "On two CPU cores (the published run)", BOOK_DIR, "cpu")
GPU = Part("gpu", "At BERT-6 width on one GPU", BOOK_DIR / "gpu", "gpu")
PARTS = (CPU, GPU)


def relative(path: Path, start: Path = REPO_ROOT) -> str:
    """`path` relative to `start` (default: the repository root, as _toc.yml names files)."""
    return Path(os.path.relpath(path, start)).as_posix()


def toc_text(parts: tuple[Part, ...] = PARTS) -> str:
    """_toc.yml: the intro, the verdicts page, then each part: its execution page and chapters.

    The GPU part always has its index page (what it is, how it is made); its chapters appear once
    they have been executed and imported."""
    lines = ["# Written by `python -m aptutils book` from the executed chapters (aptutils/parts.py).",
             "format: jb-book", "root: book/intro", "parts:",
             "  - caption: The claims", "    chapters:", "      - file: book/verdicts"]
    for part in parts:
        lines += [f"  - caption: {part.caption}", "    chapters:"]
        if part is not CPU:
            lines.append(f"      - file: {relative(part.folder / 'index')}")
        if part.record.is_file():
            lines.append(f"      - file: {relative(part.execution_page.with_suffix(''))}")
        lines += [f"      - file: {relative(chapter.with_suffix(''))}" for chapter in part.chapters]
    return "\n".join(lines) + "\n"


def record_execution(chapter: str, profile: str, seconds: float, device: str,
                     record: Path = CPU.record) -> dict:
    """Add (or replace) one chapter's execution in a part's record: profile, wall time, device,
    date and commit. Returns the whole record {chapter: entry}."""
    from .training.published import git_commit

    entries = json.loads(record.read_text()) if record.is_file() else {}
    entries[chapter] = {"profile": profile, "seconds": round(seconds), "device": device,
                        "date": datetime.date.today().isoformat(), "commit": git_commit()[:10]}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    return entries


def execution_page(record: Path = CPU.record) -> str:
    """The Markdown of a part's execution-status page: one row per executed chapter."""
    entries = json.loads(record.read_text()) if record.is_file() else {}
    lines = ["# Execution status", "",
             "How each chapter of this part was last executed by `python -m aptutils book` (the "
             "commit is the one checked out when it ran; uncommitted changes are not shown).", "",
             "| chapter | profile | wall time | device | date | commit |", "|---|---|---|---|---|---|"]
    for chapter, entry in entries.items():
        minutes = f"{entry['seconds'] // 60} min {entry['seconds'] % 60} s"
        lines.append(f"| [{chapter}]({chapter}.ipynb) | `{entry['profile']}` | {minutes} | "
                     f"{entry['device']} | {entry['date']} | `{entry['commit']}` |")
    return "\n".join(lines) + "\n"


def markdown_row(cells: list) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


VERDICT_SECTION = "what-the-paper-claims-and-what-this-run-finds"  # every chapter's verdict section
VERDICT_COLOURS = {"holds": "#1a7f37", "does not hold": "#cf222e", "not measured": "#6e7781"}
SCOREBOARD_MARKS = ("<!-- scoreboard: written by python -m aptutils book -->", "<!-- /scoreboard -->")


def short_result(text: str, width: int = 90) -> str:
    """A verdict's figure at a glance: the first clause of its "this run" (up to ';'), without a
    leading list of what it reads ("block 6, masked positions, mutual: …"), cut at a word
    boundary to at most `width` characters."""
    clause = str(text).split("; ")[0].strip()
    context, _, rest = clause.partition(": ")
    if rest and context.count(", ") >= 2:
        clause = rest
    if len(clause) <= width:
        return clause
    return clause[:width].rsplit(" ", 1)[0].rstrip(",:;") + " …"


def coloured(verdict: str) -> str:
    """A verdict as a coloured badge (inline HTML)."""
    return (f'<span style="background:{VERDICT_COLOURS[verdict]};color:white;padding:0 0.4em;'
            f'border-radius:0.3em;white-space:nowrap">{verdict}</span>')


def scoreboard(parts: tuple[Part, ...] = PARTS, page_dir: Path = BOOK_DIR) -> str:
    """Markdown: one line per claim (and per control row): its coloured verdict on each executed
    part, the first part's figure at a glance and a link to the chapter section that decides it."""
    executed = [part for part in parts if part.chapters]
    if not executed:
        return "No chapter has been executed yet, so no claim has a verdict."
    tables = {part.name: gather_verdicts(part.notebooks()) for part in executed}
    controls = {part.name: gather_controls(part.notebooks()) for part in executed}
    header = ["claim", "the paper says"] + [f"verdict ({part.name.upper()})" for part in executed] + [
        "this run, at a glance", "decided in"]
    lines = [markdown_row(header), markdown_row(["---"] * len(header))]
    for claim in CLAIMS:
        labels = [claim] + sorted({label for table in controls.values() for label in table.index
                                   if table.loc[label, "claim"] == claim})
        for label in labels:
            rows = {part.name: (tables[part.name].loc[label] if label == claim
                                else controls[part.name].loc[label])
                    for part in executed if label == claim or label in controls[part.name].index}
            first = next(iter(rows.values()))
            chapter = first["chapter"]
            link = (f'<a href="{relative(executed[0].folder / chapter, page_dir)}.html#'
                    f'{VERDICT_SECTION}">{chapter}</a>' if chapter else "")
            said = CLAIMS[claim] if label == claim else f"the same, {label.split(' at ', 1)[1]}"
            lines.append(markdown_row([f"**{label}**", said] + [
                coloured(rows[part.name]["verdict"]) if part.name in rows else ""
                for part in executed] + [short_result(first["this run"]), link]))
    return "\n".join(lines)


def with_scoreboard(page: str, board: str) -> str:
    """`page` (the intro's Markdown) with the text between its scoreboard marks replaced by `board`."""
    start, end = SCOREBOARD_MARKS
    if start not in page or end not in page:
        raise DataError(f"the intro page lacks its scoreboard marks {start} … {end}")
    head, rest = page.split(start, 1)
    return f"{head}{start}\n{board}\n{end}{rest.split(end, 1)[1]}"


def verdicts_page(parts: tuple[Part, ...] = PARTS, page_dir: Path = BOOK_DIR) -> str:
    """The Markdown of the verdicts page: every claim with the CPU verdict and, where the GPU part
    has been executed, its verdict beside it; gathered from the executed chapters."""
    executed = [part for part in parts if part.chapters]
    tables = {part.name: gather_verdicts(part.notebooks()) for part in executed}
    lines = ["# Claims and verdicts", "",
             "Every claim of the paper, with the verdict its chapter computed on each executed part "
             "of the book (gathered from the executed chapters by `python -m aptutils book`; not "
             "typed by hand). First at a glance, each with a link to the section that decides it; "
             "below, each with its figures and its reason.", "",
             "## At a glance", "", scoreboard(parts, page_dir), "",
             "## Every claim with its reason", ""]
    missing = [part for part in parts if not part.chapters]
    lines += [f"Part *{part.caption}* has not been executed yet ([what it is]"
              f"({relative(part.folder / 'index.md', page_dir)}))." for part in missing
              if part is not CPU] + ([""] if missing else [])
    fields = ["verdict", "this run", "reason"]
    header = ["claim", "claim text", "chapter"] + [
        f"{field} ({part.name.upper()})" for field in fields for part in executed]
    lines += [markdown_row(header), markdown_row(["---"] * len(header))]
    controls = {part.name: gather_controls(part.notebooks()) for part in executed}
    for claim, text in CLAIMS.items():
        labelled = [(claim, text, {part.name: tables[part.name].loc[claim] for part in executed})]
        for label in sorted({label for table in controls.values() for label in table.index
                             if table.loc[label, "claim"] == claim}):
            labelled.append((label, f"the same claim, {label.split(' at ', 1)[1]} (a control)",
                             {name: table.loc[label] for name, table in controls.items()
                              if label in table.index}))
        for label, shown, rows in labelled:
            lines.append(markdown_row(verdict_cells(label, shown, rows, executed, fields, page_dir)))
    for part in executed:
        models = gather_model_records(part.notebooks())
        if len(models):
            lines += ["", f"## The models these verdicts read: {part.caption}", "",
                      "Chapter 1's records of the W_S series (and of the equal-steps control, where "
                      "it was run) on W_test, through each model's own head, beside the trivial "
                      "rules; masked positions are the primary reading. The last column is each "
                      "model's masked accuracy on its own training samples (memorisation).", "",
                      models.to_markdown(index=False, floatfmt=".3f",
                                         colalign=["right"] * len(models.columns))]
    return "\n".join(lines) + "\n"


def verdict_cells(label: str, text: str, rows: dict, executed: list[Part], fields: list[str],
                  page_dir: Path) -> list[str]:
    """One row of the verdicts table: label, claim text, a link to the deciding chapter, then
    each field of each executed part (empty where a part did not record the row)."""
    links = [f"[{rows[part.name]['chapter']}]"
             f"({relative(part.folder / (rows[part.name]['chapter'] + '.ipynb'), page_dir)})"
             for part in executed if part.name in rows and rows[part.name]["chapter"]]
    cells = [label, text, links[0] if links else ""]
    for field in fields:
        cells += [("" if part.name not in rows else f"**{rows[part.name][field]}**"
                   if field == "verdict" else rows[part.name][field]) for part in executed]
    return cells


def part_problems(part: Part, expected: list[str] | None = None) -> list[str]:
    """What is wrong with a part's executed chapters: a missing chapter (of `expected` stems), a
    chapter without papermill's recorded parameters or of another profile, or one whose verdict
    records (chapter 1: model records) are missing, malformed or name claims twice. Empty when
    the part is complete."""
    problems = []
    found = {path.stem: path for path in part.chapters}
    for stem in expected or ():
        if stem not in found:
            problems.append(f"{stem}: not executed")
    seen: dict[str, str] = {}
    for stem, notebook in part.notebooks().items():
        parameters = notebook.get("metadata", {}).get("papermill", {}).get("parameters")
        if not parameters:
            problems.append(f"{stem}: no parameters recorded by papermill")
        elif parameters.get("profile") != part.profile:
            problems.append(f"{stem}: profile {parameters.get('profile')!r}, not {part.profile!r}")
        records = mime_records(notebook, VERDICTS_MIME)
        if not records and not mime_records(notebook, MODELS_MIME):
            problems.append(f"{stem}: no verdict table (nor chapter 1's model records)")
        for record in records:
            if record.get("claim") not in CLAIMS or record.get("verdict") not in (
                    "holds", "does not hold", "not measured") or "reason" not in record:
                problems.append(f"{stem}: malformed verdict record {record.get('claim')!r}")
            elif record["claim"] in seen:
                problems.append(f"{stem}: {record['claim']} also decided in {seen[record['claim']]}")
            else:
                seen[record["claim"]] = stem
        for record in mime_records(notebook, CONTROLS_MIME):
            label = record.get("label")
            if (record.get("claim") not in CLAIMS or not record.get("control")
                    or label != f"{record.get('claim')} at {record.get('control')}"
                    or record.get("verdict") not in ("holds", "does not hold", "not measured")):
                problems.append(f"{stem}: malformed control record {label!r}")
            elif label in seen:
                problems.append(f"{stem}: {label} also decided in {seen[label]}")
            else:
                seen[label] = stem
    return problems


def import_part(part: Part, source: Path) -> list[str]:
    """Copy a part's executed chapters, execution record and exports from `source` (what the GPU
    run returned: NN_name.ipynb and extras.tar.gz, or the record and exports/ unpacked) into the
    part's folder; returns the chapter names copied."""
    import tarfile
    import tempfile

    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise DataError(f"{source}: no executed chapters (NN_name.ipynb) to import; name the folder "
                        f"the GPU run returned")
    with tempfile.TemporaryDirectory() as unpacked:
        extras = Path(unpacked)
        if (source / "extras.tar.gz").is_file():
            with tarfile.open(source / "extras.tar.gz") as archive:
                archive.extractall(extras, filter="data")
        else:
            extras = source
        part.folder.mkdir(parents=True, exist_ok=True)
        for notebook in notebooks:
            shutil.copyfile(notebook, part.folder / notebook.name)
        if (extras / "execution.json").is_file():
            shutil.copyfile(extras / "execution.json", part.record)
        if (extras / "exports").is_dir():
            shutil.copytree(extras / "exports", part.folder / "exports", dirs_exist_ok=True)
    return [notebook.stem for notebook in notebooks]


def write_pages(parts: tuple[Part, ...] = PARTS) -> None:
    """Rewrite _toc.yml, the verdicts page and each executed part's execution page."""
    for part in parts:
        if part.record.is_file():
            part.execution_page.write_text(execution_page(part.record))
    VERDICTS_PAGE.write_text(verdicts_page(parts))
    INTRO_PAGE.write_text(with_scoreboard(INTRO_PAGE.read_text(), scoreboard(parts)))
    TOC.write_text(toc_text(parts))
