"""The nbval sanitize file: verdict tables from runs that differ only in their numbers compare
equal, and tables that differ in a verdict do not."""
import re
from pathlib import Path

from nbval.plugin import get_sanitize_patterns

from aptutils.core.verdicts import Verdict, report

SANITIZE_FILE = Path(__file__).parent / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """What nbval does to each output before it compares: the file's rules, in order."""
    for regex, replace in get_sanitize_patterns(SANITIZE_FILE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def plain_table(this_run: str, verdict: str) -> str:
    bundle = report([Verdict("C5", this_run, "largest cluster <= 1% of the kept tokens", verdict),
                     Verdict("C6", "SNR 0.56 → 0.29", "SNR higher at the last block", "holds")]
                    )._repr_mimebundle_()
    return bundle["text/plain"]


def test_numbers_and_the_padding_they_cause_are_sanitized():
    short = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "does not hold")
    long = plain_table("41 clusters; largest 128 of 2,020 kept tokens (6.34%)", "does not hold")
    assert short != long
    assert sanitize(short) == sanitize(long)
    assert "N clusters; largest N of N kept tokens (FLOAT%)" in sanitize(long)


def test_a_changed_verdict_still_fails_the_comparison():
    before = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "does not hold")
    after = plain_table("3 clusters; largest 7 of 11 kept tokens (63.6%)", "holds")
    assert sanitize(before) != sanitize(after)


def test_integers_floats_signs_and_store_paths():
    text = "rho −0.051 [+0.019, 1e-3] at 12,345 steps in 34 s from /tmp/x/.aptbook-store/ab12"
    assert sanitize(text) == "rho FLOAT [FLOAT, FLOAT] at N steps in N s from STORE"
