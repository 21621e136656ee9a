"""What-if questions, as data: a step (or one of its targets) slower by a factor, or failing.

``--what-if`` takes ``STEP=xFACTOR`` (every target of the step), ``STEP@TARGET=xFACTOR``
(one SAMU) and ``STEP@TARGET=fail`` (or ``STEP=fail``). ``parse_change`` reads
one; ``check_changes`` refuses a step or target the plan does not have, naming
it. The forecast (``cutover.core.montecarlo``) and the replay of a recorded
night (``cutover.core.replay``) take the same changes, so a question asked of
either means the same thing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cutover.core.records import StepInfo
from cutover.errors import InputError

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

MAX_FACTOR = 1000.0
_CHANGE = re.compile(r"^(?P<step>[^@=\s]+)(?:@(?P<target>[^=\s]+))?=(?P<what>\S+)$")
_FACTOR = re.compile(r"^[x×*]?(?P<value>\d+(?:\.\d+)?)$")
SYNTAX = "STEP=xFACTOR, STEP@TARGET=xFACTOR or STEP@TARGET=fail (e.g. migrate=x1.5, backup@samu-30=fail)"


@dataclass(frozen=True)
class Change:
    """One what-if: ``factor`` times the measured duration, or (``factor`` None) a failure."""

    step: str
    target: str | None = None
    factor: float | None = None

    @property
    def fails(self) -> bool:
        return self.factor is None

    def describe(self) -> str:
        where = self.step + (f"@{self.target}" if self.target else "")
        return f"{where}=fail" if self.fails else f"{where}=x{self.factor:g}"

    def factor_for(self, step: str, target: str | None) -> float:
        """This change's factor on ``step`` x ``target`` (1 where it does not apply; a failure is no factor)."""
        if self.fails or self.step != step or (self.target is not None and self.target != target):
            return 1.0
        return float(self.factor or 1.0)


def parse_change(text: str) -> Change:
    """One ``--what-if`` value; InputError (exit 2) saying the expected form."""
    match = _CHANGE.match(text.strip())
    if match is None:
        raise InputError(f"--what-if {text!r} is not a change I understand", hint=f"write {SYNTAX}")
    step, target, what = match["step"], match["target"], match["what"].lower()
    if what == "fail":
        return Change(step, target, None)
    factor = _FACTOR.match(what)
    value = float(factor["value"]) if factor else math.nan
    if not 0 < value <= MAX_FACTOR:
        raise InputError(f"--what-if {text!r}: {match['what']!r} is not a factor or `fail`",
                         hint=f"a factor is x followed by a number above 0 and at most {MAX_FACTOR:g}; {SYNTAX}")
    return Change(step, target, value)


def parse_changes(texts: Iterable[str]) -> tuple[Change, ...]:
    return tuple(parse_change(text) for text in texts)


def check_changes(changes: Sequence[Change], steps: Sequence[StepInfo]) -> None:
    """Refuse (exit 2) a change naming a step or target the plan does not have, or a gate that fails."""
    by_id = {info.id: info for info in steps}
    for change in changes:
        info = by_id.get(change.step)
        if info is None:
            raise InputError(f"--what-if {change.describe()}: no step {change.step!r} in the plan",
                             hint=f"steps: {', '.join(by_id)}")
        if change.target is not None and change.target not in (info.targets or ()):
            targets = ", ".join(info.targets or ()) or "none: it runs once, on the controller"
            raise InputError(f"--what-if {change.describe()}: step {change.step!r} has no target {change.target!r}",
                             hint=f"its targets: {targets}")
        if change.fails and info.is_gate:
            raise InputError(f"--what-if {change.describe()}: a gate does not fail, it waits",
                             hint="a no-go moves the run to another window (`cutover runs postpone`); "
                                  "ask how long it waits with a factor on its expected duration")


def step_factor(changes: Sequence[Change], step: str, target: str | None) -> float:
    """Every factor asked for ``step`` x ``target``, multiplied (a step-wide one applies to each target)."""
    return math.prod(change.factor_for(step, target) for change in changes)
