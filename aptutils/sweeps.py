"""Parameter sweeps: one chapter executed for every point of a grid of knob values, its verdicts
gathered into one table.

    python -m aptutils sweep 03 --profile cpu -p threshold 0.3,0.5,0.7 [-p min_row_count 3,5]

Every point is validated before anything runs; each point's executed chapter is written to the
sweep's folder (`sweeps/<chapter>/` by default) and kept, so an interrupted sweep resumes where it
stopped. All points share the artifact store, so what does not depend on the swept knobs is built
once. The table has one row per (point, claim): the knob values, the claim (or its control, e.g.
"C2 at equal steps"), the verdict, the run's figure and the reason; it is written as `sweep.csv`
and `sweep.html` (the verdicts as a coloured grid, then every row). Sits above every layer, like
`notebooks.py`.
"""
from __future__ import annotations

import csv
import html
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .core.errors import ParameterError
from .core.params import KNOB_BY_NAME, resolve
from .core.verdicts import CONTROLS_MIME, MODELS_MIME, VERDICTS_MIME, mime_records

POINT_SEPARATOR = ";"  # between the points of a knob whose value is itself a list (ws_list, kinds)
VERDICT_COLOURS = {"holds": "#d9f2d9", "does not hold": "#f9d6d5", "not measured": "#eeeeee"}


def list_valued(name: str) -> bool:
    """Whether a knob's value is itself a comma-separated list (e.g. ws_list, kinds)."""
    default = resolve({"profile": "paper"}).values[name]
    return isinstance(default, tuple) or "," in str(default)


def sweep_points(name: str, text: str) -> list[str]:
    """The values a knob takes in a sweep: `text` split at commas, or at ';' for a list-valued
    knob (or whenever `text` holds a ';')."""
    if name not in KNOB_BY_NAME:
        resolve({name: text})  # the one-line error naming the unknown knob and its neighbours
    if POINT_SEPARATOR in text or list_valued(name):
        points = text.split(POINT_SEPARATOR)
    else:
        points = text.split(",")
    points = [point.strip() for point in points]
    if not all(points):
        raise ParameterError(f"sweep -p {name} {text!r}: an empty value; separate values by ','"
                             f" (by ';' for a list-valued knob such as ws_list)")
    return points


@dataclass(frozen=True)
class Point:
    """One setting of the swept knobs, as papermill passes them (values parsed like -p)."""

    values: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        """A file-name-safe label, e.g. "threshold=0.3__min_row_count=5"."""
        return "__".join(f"{k}={str(v).replace(',', '+').replace('/', '_')}" for k, v in self.values)


def sweep_grid(chosen: dict[str, Any], swept: list[tuple[str, str]], parse) -> list[Point]:
    """Every combination of the swept knobs' values (`swept`: (name, text) pairs), each validated
    with the fixed ones (`chosen`) before anything runs; `parse` reads a value as -p does."""
    names = [name for name, _ in swept]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ParameterError(f"sweep: {', '.join(repeated)} swept twice; give every value of a "
                             f"knob in one -p")
    axes = [[parse(value) for value in sweep_points(name, text)] for name, text in swept]
    points = [Point(tuple(zip(names, combination))) for combination in itertools.product(*axes)]
    for point in points:
        resolve({**chosen, **dict(point.values)})  # a bad value stops here, before any run
    return points


def executed_point(output: Path, parameters: dict[str, Any]) -> bool:
    """Whether `output` is a complete run of this point: papermill recorded exactly these
    parameters and the chapter carries its verdict records (chapter 1: its model records)."""
    if not output.is_file():
        return False
    notebook = json.loads(output.read_text())
    recorded = notebook.get("metadata", {}).get("papermill", {}).get("parameters")
    return recorded == parameters and any(mime_records(notebook, mime)
                                          for mime in (VERDICTS_MIME, MODELS_MIME))


def point_rows(notebook: dict, point: Point, output: Path) -> list[dict]:
    """One row per verdict record (claims, then controls) of an executed point; chapter 1, which
    decides no claim, gives one row per model record (its masked readings on W_test)."""
    rows = [{**dict(point.values), "claim": f"model W_S = {r['ws']:,}, {r.get('series', '')}",
             "verdict": "", "this run": f"masked accuracy {r['masked_accuracy']:.3f}, masked "
             f"⟨APT⟩ {r['masked_mean_apt']:.3f}", "reason": "", "notebook": output.name}
            for r in mime_records(notebook, MODELS_MIME)]
    for mime in (VERDICTS_MIME, CONTROLS_MIME):
        for record in mime_records(notebook, mime):
            rows.append({**dict(point.values), "claim": record.get("label", record["claim"]),
                         "verdict": record["verdict"], "this run": record.get("this run", ""),
                         "reason": record.get("reason", ""), "notebook": output.name})
    return rows


def run_sweep(source: Path, chosen: dict[str, Any], points: list[Point], out: Path,
              execute) -> pd.DataFrame:
    """Execute `source` for every point (skipping points already executed into `out`), with a
    progress bar over the points; gather every verdict record into `out`/sweep.csv and
    sweep.html and return the table. `execute(source, output, parameters)` runs one chapter."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = tqdm(points, desc=f"sweep {source.stem}", unit="run", file=sys.stderr)
    for point in bar:
        bar.set_postfix_str(point.name, refresh=True)
        output = out / f"{source.stem}__{point.name}.ipynb"
        parameters = {**chosen, **dict(point.values)}
        if not executed_point(output, parameters):
            execute(source, output, parameters)
        rows += point_rows(json.loads(output.read_text()), point, output)
    table = pd.DataFrame(rows)
    table.to_csv(out / "sweep.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    (out / "sweep.html").write_text(sweep_page(table, source.stem, chosen, [n for n, _ in points[0].values]))
    return table


def sweep_page(table: pd.DataFrame, chapter: str, chosen: dict[str, Any], knobs: list[str]) -> str:
    """A self-contained HTML page: the verdicts as a grid (a row per point, a column per claim,
    coloured by verdict, the run's figure beneath), then every row with its reason."""
    def cell(group: pd.DataFrame) -> str:
        row = group.iloc[0]
        colour = VERDICT_COLOURS.get(row["verdict"], "white")
        return (f'<td style="background:{colour}"><b>{row["verdict"]}</b>'
                f'<br><small>{html.escape(str(row["this run"]))}</small></td>')

    claims = list(dict.fromkeys(table["claim"]))
    header = "".join(f"<th>{html.escape(k)}</th>" for k in knobs + claims)
    lines = []
    for values, group in table.groupby(knobs, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
        cells += "".join(cell(group[group["claim"] == claim]) if (group["claim"] == claim).any()
                         else "<td></td>" for claim in claims)
        lines.append(f"<tr>{cells}</tr>")
    fixed = ", ".join(f"{k} = {v}" for k, v in chosen.items())
    return (f"<!doctype html><meta charset='utf-8'><title>Sweep of {chapter}</title>"
            f"<h1>Sweep of {html.escape(chapter)}</h1><p>Fixed: {html.escape(fixed)}. One run of "
            f"the chapter per row; every verdict is computed by that run.</p>"
            f"<table border='1' cellpadding='4'><tr>{header}</tr>{''.join(lines)}</table>"
            f"<h2>Every verdict with its reason</h2>"
            + table.to_html(index=False, escape=True))
