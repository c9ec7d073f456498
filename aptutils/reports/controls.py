"""Controls beside the paper's protocol: a claim re-decided under a control (e.g. "C2 at equal
steps") and what the pair of verdicts says together.

The W_S series trains every W_S for the same epochs (the paper's protocol), so a larger W_S also
trains for more steps; the equal-steps series (`training.equal_steps`) trains every W_S for the
largest one's steps. A claim about W_S then reads as a claim about data only where it holds at
equal steps too. Used by chapters 2 and 5.
"""
from __future__ import annotations

from dataclasses import replace

from ..core.verdicts import Verdict

EQUAL_STEPS = "equal steps"

_READINGS = {  # (holds at equal epochs, holds at equal steps) -> what the pair says
    (True, True): "holds at equal steps as at equal epochs: with the steps held fixed, more data "
                  "still carries it, so the claim is about data",
    (True, False): "holds only at equal epochs: with every W_S trained for the same steps it does "
                   "not hold, so the rise along the paper's series comes with the extra steps, "
                   "not with the extra data",
    (False, True): "holds at equal steps but not at equal epochs: at the paper's protocol the "
                   "smaller W_S are held back by their fewer steps",
    (False, False): "holds neither at equal epochs nor at equal steps",
}


def data_or_steps(epochs: Verdict, steps: Verdict) -> str:
    """One clause on what the two verdicts of a claim say together, or "" when either was not
    measured."""
    if "not measured" in (epochs.verdict, steps.verdict):
        return ""
    return _READINGS[(epochs.verdict == "holds", steps.verdict == "holds")]


def equal_steps_verdict(epochs: Verdict, steps: Verdict) -> Verdict:
    """The claim's verdict at equal steps (`steps`, decided by the same rule as `epochs` on the
    equal-steps series), labelled as the control and its reason opened by `data_or_steps`."""
    reading = data_or_steps(epochs, steps)
    reason = f"{reading}. At equal steps: {steps.reason}" if reading else steps.reason
    return replace(steps, control=EQUAL_STEPS, reason=reason)
