"""Numbers in the book's checked outputs, compared to two significant digits (nbval).

nbval compares the outputs of cells marked NBVAL_CHECK_OUTPUT (verdict records, chapter 1's
per-model record, key tables) with the executed book's, after its regex sanitizer
(`tests/nbval_sanitize.cfg`). A regex cannot round, and rounding each side on its own is flaky
anyway: 0.2349 and 0.2351 round to 0.23 and 0.24. So the comparison is made in pairs instead:
where a new output reads like the stored one apart from its numbers, each new number that
*agrees* with the stored number in its place is written as the stored text before nbval
compares. Two numbers agree when they differ by at most half a unit of the second significant
digit of the larger (`agree`): no rounding boundary, and a drift in a published figure's second
significant digit fails. A number the book writes with decimals was rounded to its last digit, so
the written texts also get half a unit of each one's last digit (`agree_written`): 0.060 and 0.061
may both be 0.0605, but 0.060 and 0.062 cannot agree. Integers are counts, compared exactly to
two significant digits. Words, verdicts and the numbers' places must match exactly.

A pytest plugin (`-p aptutils.plugins.nbval_numbers` in pyproject.toml's addopts): its
`pytest_configure` calls `install_nbval_comparison`, which wraps nbval's comparison, so
`pytest book/` and the tests get it.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any

SIGNIFICANT_DIGITS = 2
# A decimal number on its own (not inside a word or a hex key such as ed6c545f): an optional
# sign (ASCII or the minus sign), digits with optional thousands commas, decimals, an exponent.
NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")
BLANKS = re.compile(r"[ \t]+")


def value(text: str) -> float:
    """The number a matched text writes: '−1,234.5e-3' -> -1.2345."""
    return float(text.replace("\u2212", "-").replace(",", ""))


def half_unit(largest: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Half a unit of the `digits`-th significant digit of a magnitude (0.24 -> 0.005)."""
    if largest == 0.0:
        return 0.0
    return 0.5 * 10.0 ** (math.floor(math.log10(largest)) - digits + 1)


def agree(a: float, b: float, digits: int = SIGNIFICANT_DIGITS, slack: float = 0.0) -> bool:
    """True when a and b differ by at most half a unit of the `digits`-th significant digit of
    the larger magnitude, plus `slack` (0.2349 ~ 0.2351, 0.23 !~ 0.24, 1138 ~ 1140, 7 !~ 8)."""
    if a == b:
        return True
    largest = max(abs(a), abs(b))
    if not math.isfinite(largest):
        return False
    return abs(a - b) <= (half_unit(largest, digits) + slack) * (1 + 1e-9)


def rounding(text: str) -> float:
    """Half a unit of the last digit a number is written with ('0.061' -> 0.0005); 0 for an
    integer or an exponent form, which are not taken as rounded."""
    if "." not in text or "e" in text.lower():
        return 0.0
    return 0.5 * 10.0 ** -len(text.split(".")[1])


def agree_written(a: str, b: str, digits: int = SIGNIFICANT_DIGITS) -> bool:
    """`agree` for two written numbers, allowing each its own rounding: '0.060' ~ '0.061' (both
    may be 0.0605), '0.060' !~ '0.062', '0.23' !~ '0.25', '7' !~ '8'."""
    return agree(value(a), value(b), digits, slack=rounding(a) + rounding(b))


def skeleton(text: str) -> list[str]:
    """The text between the numbers, blanks collapsed (tables pad columns to their widest entry)."""
    return [BLANKS.sub(" ", part) for part in NUMBER.split(text)]


def align_numbers(reference: str, test: str, digits: int = SIGNIFICANT_DIGITS) -> str:
    """`test` with each number that agrees with the reference's number in its place written as
    the reference writes it. Unchanged when the texts differ other than in their numbers."""
    wanted, found = NUMBER.findall(reference), NUMBER.findall(test)
    if len(wanted) != len(found) or skeleton(reference) != skeleton(test):
        return test
    pieces = iter(wanted)
    found_pieces = iter(found)

    def replace(match: re.Match) -> str:
        ours, theirs = next(found_pieces), next(pieces)
        return theirs if agree_written(ours, theirs, digits) else ours

    return NUMBER.sub(replace, test)


def align_outputs(test: list[Any], reference: list[Any]) -> list[Any]:
    """A copy of a cell's new outputs with their numbers aligned on the stored outputs
    (output by output, field by field; outputs that do not pair up are left as they are)."""
    if len(test) != len(reference):
        return test
    aligned = copy.deepcopy(test)
    for new, old in zip(aligned, reference):
        for key in ("text", "data"):
            if key not in new or key not in old:
                continue
            if key == "text" and isinstance(new[key], str) and isinstance(old[key], str):
                new[key] = align_numbers(old[key], new[key])
            elif key == "data":
                for mime, text in new[key].items():
                    if isinstance(text, str) and isinstance(old[key].get(mime), str):
                        new[key][mime] = align_numbers(old[key][mime], text)
    return aligned


def install_nbval_comparison() -> None:
    """Make nbval compare numbers to two significant digits (see the module's docstring)."""
    try:
        from nbval.plugin import IPyNbCell, transform_streams_for_comparison
    except ImportError:  # nbval not installed: nothing to compare
        return
    original = IPyNbCell.compare_outputs
    if getattr(original, "aligns_numbers", False):
        return

    def compare_outputs(self, test, ref, skip_compare=None):
        test, ref = transform_streams_for_comparison(test), transform_streams_for_comparison(ref)
        return original(self, align_outputs(test, ref), ref, skip_compare)

    compare_outputs.aligns_numbers = True
    IPyNbCell.compare_outputs = compare_outputs


def pytest_configure(config) -> None:
    """pytest hook: install the comparison before nbval compares anything."""
    install_nbval_comparison()
