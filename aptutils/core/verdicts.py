"""The claims C1-C12 of the paper, what the paper reports for each, and the verdict tables.

Every chapter ends with `verdict_table`; the intro gathers all verdicts. Used by every chapter.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

CLAIMS: dict[str, str] = {
    "C1": "APT(t) rises with the token's frequency in the pre-training data",
    "C2": "⟨APT⟩ rises with the pre-training set size W_S",
    "C3": "⟨APT⟩ and APT(50) rise along the blocks, from block 0 (0.037) to block 6 (0.31)",
    "C4": "most of the rise of ⟨APT⟩ along the blocks comes from low-frequency tokens",
    "C5": "after filtering and normalising, M_Confus shows finite, small strong-match clusters",
    "C6": "the cluster structure sharpens along the blocks (better than the embedding layer)",
    "C7": "pre-training thus builds higher-order structure though its loss targets single tokens",
    "C8": "fine-tuning accuracy (FewRel, DBpedia) rises along the blocks",
    "C9": "output-label confidence does not depend on the average input APT",
    "C10": "mispredicted tokens mostly land on strong-match tokens of the same cluster",
    "C11": ("image classifiers show the same mechanism: small label clusters that sharpen "
            "with depth"),
    "C12": ("(predecessor) pre-trained tiny models beat non-pre-trained ones on the tasks, "
            "more so with larger W_S"),
}


NOT_STATED = "not stated"
PAPER_FIGURES: dict[str, str] = {claim: NOT_STATED for claim in CLAIMS} | {
    "C3": "0.037 → 0.31 (Table 1)",
}


VERDICTS = ("holds", "does not hold", "not measured")
COLUMNS = ["claim text", "paper", "this run", "deciding statistic", "verdict", "reason"]


@dataclass(frozen=True)
class Verdict:
    """One claim checked by a run: this run's figure, the statistic that decides, the verdict, and
    the computed reason for it (e.g. "masked <APT> at block 6 is 0.002: the model has not left the
    unigram plateau")."""

    claim: str
    this_run: str
    statistic: str
    verdict: str
    reason: str = ""
    control: str = ""  # a control run of the claim beside the paper's protocol, e.g. "equal steps"

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; claims are {', '.join(CLAIMS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def label(self) -> str:
        """The row's name: the claim ("C2"), or the claim under its control ("C2 at equal steps")."""
        return f"{self.claim} at {self.control}" if self.control else self.claim


def decide(condition: bool | None) -> str:
    """The verdict for a computed condition: True holds, False does not hold, None not measured."""
    if condition is None:
        return "not measured"
    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"decide takes a bool or None, got {type(condition).__name__}")
    return "holds" if condition else "does not hold"


def _claim_number(claim: str) -> int:
    return int(re.fullmatch(r"C(\d+)", claim).group(1))


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim, in claim order, each control row right after its claim; indexed by the
    row's label ("C2", "C2 at equal steps"), named "claim".

    Columns: claim text, paper (what the paper reports), this run, deciding statistic, verdict,
    reason.
    """
    labels = [v.label for v in verdicts]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"one verdict per claim: {', '.join(repeated)} given more than once")
    ordered = sorted(verdicts, key=lambda v: (_claim_number(v.claim), v.control))
    rows = {v.label: (CLAIMS[v.claim], PAPER_FIGURES[v.claim] if not v.control else "",
                      v.this_run, v.statistic, v.verdict, v.reason)
            for v in ordered}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
    table.index.name = "claim"
    return table


VERDICTS_MIME = "application/vnd.aptbook.verdicts+json"  # one record per claim, C1-C12
CONTROLS_MIME = "application/vnd.aptbook.controls+json"  # a claim under a control, e.g. equal steps
MODELS_MIME = "application/vnd.aptbook.models+json"  # chapter 1: one record per pre-trained model


@dataclass(frozen=True)
class VerdictReport:
    """A chapter's verdict table as shown in the notebook, carrying its rows as JSON too, so
    `gather_verdicts` can collect every chapter's verdicts from the executed book."""

    verdicts: tuple[Verdict, ...]

    @property
    def table(self) -> pd.DataFrame:
        return verdict_table(list(self.verdicts))

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        table = self.table
        by_label = {v.label: v for v in self.verdicts}
        rows = table.to_dict(orient="index")  # in claim order
        records = [{"claim": label, **row} for label, row in rows.items()
                   if not by_label[label].control]
        controls = [{"claim": by_label[label].claim, "control": by_label[label].control,
                     "label": label, **row} for label, row in rows.items() if by_label[label].control]
        # the records travel as JSON strings, so nbval's sanitize rules reach their numbers
        bundle = {"text/html": table.to_html(), "text/plain": table.to_string(),
                  VERDICTS_MIME: json.dumps(records, ensure_ascii=False)}
        if controls:
            bundle[CONTROLS_MIME] = json.dumps(controls, ensure_ascii=False)
        return bundle


def report(verdicts: list[Verdict]) -> VerdictReport:
    """The closing verdict table of a chapter."""
    return VerdictReport(tuple(verdicts))


def gather_verdicts(notebooks: dict[str, dict]) -> pd.DataFrame:
    """Every verdict recorded in executed notebooks {chapter name: notebook JSON}, one row per
    claim, with the chapter it comes from. Claims no chapter measured are 'not measured'."""
    found = {record["claim"]: {"chapter": chapter, "reason": "", **record}
             for chapter, notebook in notebooks.items()
             for record in mime_records(notebook, VERDICTS_MIME)}
    rows = [found.get(claim, {"claim": claim, "chapter": "", "claim text": CLAIMS[claim],
                              "this run": "", "verdict": "not measured",
                              "reason": "no chapter measured it"})
            for claim in sorted(CLAIMS, key=_claim_number)]
    columns = ["chapter", "claim text", "this run", "verdict", "reason"]
    return pd.DataFrame(rows).set_index("claim")[columns]


def gather_controls(notebooks: dict[str, dict]) -> pd.DataFrame:
    """Every control verdict ("C2 at equal steps") recorded in executed notebooks, one row per
    label with the claim, the control and the chapter it comes from; empty when none is."""
    rows = [{"chapter": chapter, "reason": "", **record}
            for chapter, notebook in notebooks.items()
            for record in mime_records(notebook, CONTROLS_MIME)]
    columns = ["claim", "control", "chapter", "claim text", "this run", "verdict", "reason"]
    return pd.DataFrame(rows, columns=["label"] + columns).set_index("label")


def mime_records(notebook: dict, mime: str) -> list[dict]:
    """Every record an executed notebook carries under `mime` (JSON strings), in cell order."""
    return [record for cell in notebook.get("cells", []) for output in cell.get("outputs", [])
            for record in json.loads(output.get("data", {}).get(mime, "[]"))]


def gather_model_records(notebooks: dict[str, dict]) -> pd.DataFrame:
    """Chapter 1's model records as a table: per model (series, W_S), steps and masked /
    all-modified readings beside the most-frequent-token and copy rules, and its masked accuracy
    on its own training samples. Empty when no chapter carries them."""
    rows = []
    for notebook in notebooks.values():
        for r in mime_records(notebook, MODELS_MIME):
            rules = r["baselines"]
            rows.append({"series": r.get("series", "equal epochs"),
                         "W_S": f"{r['ws']:,}", "steps": f"{r['steps']:,}",
                         "masked accuracy": r["masked_accuracy"],
                         "masked ⟨APT⟩": r["masked_mean_apt"],
                         "most frequent token, masked": rules["most frequent token"]["masked_accuracy"],
                         "all modified accuracy": r["all_accuracy"],
                         "copy, else most frequent, all": rules["copy, else most frequent"]["all_accuracy"],
                         "own samples, masked accuracy": r.get("own_masked_accuracy", np.nan)})
    return pd.DataFrame(rows)
