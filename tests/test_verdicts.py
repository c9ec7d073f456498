"""Claims, the paper's figures, verdict validation and the verdict table."""
import numpy as np
import pytest

from aptutils.core.verdicts import (
    CLAIMS,
    PAPER_FIGURES,
    VERDICTS,
    Verdict,
    decide,
    verdict_table,
)


def test_claims_are_c1_to_c12_with_the_paper_md_texts():
    assert list(CLAIMS) == [f"C{n}" for n in range(1, 13)]
    assert CLAIMS["C3"] == ("⟨APT⟩ and APT(50) rise along the blocks, from block 0 (0.037) "
                            "to block 6 (0.31)")
    assert CLAIMS["C10"] == ("mispredicted tokens mostly land on strong-match tokens of the "
                             "same cluster")


def test_paper_figures_state_only_what_the_paper_gives():
    assert list(PAPER_FIGURES) == list(CLAIMS)
    assert PAPER_FIGURES["C3"] == "0.037 → 0.31 (Table 1)"
    assert {PAPER_FIGURES[c] for c in CLAIMS if c != "C3"} == {"not stated"}


def test_decide_maps_conditions_to_verdicts():
    assert [decide(True), decide(False), decide(None)] == list(VERDICTS)
    assert decide(np.float64(0.4) > 0.3) == "holds"
    with pytest.raises(TypeError, match="bool or None"):
        decide(0.0)


def test_verdict_rejects_unknown_claims_and_verdicts():
    with pytest.raises(ValueError, match="unknown claim 'C13'"):
        Verdict("C13", "0.2", "rho", "holds")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Verdict("C1", "0.2", "rho", "true")


def test_verdict_table_one_row_per_claim_in_claim_order():
    table = verdict_table([
        Verdict("C10", "0.62", "share of errors in cluster 0.62 > 0.5", decide(True)),
        Verdict("C3", "0.12 → 0.15", "block 6 - block 0 = 0.03 > 0", decide(True),
                "the rise 0.03 [0.01, 0.05] lies above 0"),
        Verdict("C2", "—", "one W_S only", decide(None)),
    ])
    assert table.index.name == "claim"
    assert table.index.tolist() == ["C2", "C3", "C10"]
    assert table.columns.tolist() == ["claim text", "paper", "this run", "deciding statistic",
                                      "verdict", "reason"]
    assert table.loc["C3"].tolist() == [CLAIMS["C3"], "0.037 → 0.31 (Table 1)", "0.12 → 0.15",
                                        "block 6 - block 0 = 0.03 > 0", "holds",
                                        "the rise 0.03 [0.01, 0.05] lies above 0"]
    assert table.loc["C2", "verdict"] == "not measured"


def test_verdict_table_refuses_two_verdicts_for_one_claim():
    with pytest.raises(ValueError, match="C4 given more than once"):
        verdict_table([Verdict("C4", "a", "b", "holds"), Verdict("C4", "c", "d", "holds")])


def test_report_carries_its_rows_and_gather_collects_them():
    from aptutils.core.verdicts import VERDICTS_MIME, Verdict, gather_verdicts, report

    bundle = report([Verdict("C3", "0.04 → 0.2", "rise", "holds")])._repr_mimebundle_()
    assert "<table" in bundle["text/html"]
    notebook = {"cells": [{"outputs": [{"data": bundle}]}]}
    gathered = gather_verdicts({"02_apt": notebook})
    assert gathered.loc["C3", "verdict"] == "holds" and gathered.loc["C3", "chapter"] == "02_apt"
    assert gathered.loc["C1", "verdict"] == "not measured"
    assert len(gathered) == 12 and VERDICTS_MIME in bundle
