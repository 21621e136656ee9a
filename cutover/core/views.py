"""What every view of a run shows alike, decided once: the header's clocks, the notification totals, the symbols.

The terminal (``cutover.cli.render``) and the crisis-room board
(``cutover.web.board``) draw these differently (colours and a grid of
characters; HTML in two languages) but must never disagree on them: which end
estimate is shown and from what source, whether its P90 is worth showing,
which point-of-no-return deadline counts, how many notifications failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cutover.core.events import parse_time
from cutover.core.forecast import Outlook, forecast
from cutover.core.state import RunState, TargetStatus
from cutover.core.timings import spread_unknown

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

# One character a target state, on the terminal's grid and the board's cells alike.
SYMBOLS: dict[TargetStatus, str] = {
    TargetStatus.PENDING: "·",
    TargetStatus.RUNNING: "▶",
    TargetStatus.IN_DOUBT: "?",
    TargetStatus.SUCCEEDED: "✓",
    TargetStatus.FAILED: "✗",
    TargetStatus.ROLLED_BACK: "↺",
    TargetStatus.SKIPPED: "-",
}


# The event kinds a person is shown (the terminal's plain lines, the board's latest events); the others are
# bookkeeping (leases, outputs, notifications, anchors). Each shown kind has its plain line (cli.render) and its
# words in every language (web.i18n); a test holds all three together.
SHOWN_KINDS: frozenset[str] = frozenset({
    "step_started", "step_succeeded", "step_failed", "step_skipped", "in_doubt", "gate_opened", "gate_approved",
    "gate_passed", "rollback_point", "undo_started", "undo_succeeded", "undo_failed", "run_paused", "run_failed",
    "run_completed", "run_rolled_back", "run_abandoned", "run_postponed", "criteria_measured",
    "criterion_overridden", "calls_counted",
})


@dataclass(frozen=True)
class EndEstimate:
    """When the run should end, and what says so."""

    p50: datetime
    p90: datetime | None  # None where the spread is unknown: a P90 would only repeat the P50
    source: str  # "expected durations", or the measured forecast's source (saying when its spread is unknown)
    unknown_steps: int = 0  # remaining steps with no expected duration (expected durations only)
    measured: bool = False


@dataclass(frozen=True)
class Clocks:
    """The header's clocks of a run at ``now``."""

    elapsed_s: float | None
    window_left_s: float | None  # negative: the window has closed
    end: EndEstimate | None
    pnr_passed: str | None
    pnr_deadline: datetime | None
    pnr_left_s: float | None  # negative: the deadline has passed


def header_clocks(state: RunState, outlook: Outlook | None, now: datetime) -> Clocks:
    """The clocks of ``state`` at ``now``; ``outlook`` is the measured forecast of the rest of the run, if any.

    A measured forecast, when there is one, decides the end and the PNR deadline;
    otherwise the runbook's expected durations do.
    """
    expected = forecast(state, now)
    end: EndEstimate | None = None
    if outlook is not None:
        source = outlook.source if outlook.spread_known else f"{outlook.source}; {spread_unknown(outlook.source)}"
        end = EndEstimate(outlook.end_p50, outlook.end_p90 if outlook.spread_known else None, source, measured=True)
    elif expected.predicted_end is not None:
        end = EndEstimate(expected.predicted_end, None, "expected durations", expected.unknown_durations)
    deadline = outlook.pnr_deadline if outlook is not None and outlook.pnr_deadline else expected.pnr_deadline
    return Clocks(
        elapsed_s=(now - parse_time(state.created_at)).total_seconds() if state.created_at else None,
        window_left_s=(parse_time(state.window_end) - now).total_seconds() if state.window_end else None,
        end=end,
        pnr_passed=state.point_of_no_return_passed,
        pnr_deadline=deadline,
        pnr_left_s=(deadline - now).total_seconds() if deadline is not None else None,
    )


@dataclass(frozen=True)
class NotificationTotals:
    """What a run's notifications came to."""

    sent: int
    failed_attempts: int  # every failed attempt, retried or not
    undelivered: int  # messages given up on: they never arrived
    undelivered_to: tuple[str, ...]  # their targets, sorted, each once

    @property
    def troubled(self) -> bool:
        return bool(self.failed_attempts or self.undelivered)


def notification_totals(state: RunState) -> NotificationTotals:
    undelivered = state.notifications_undelivered
    return NotificationTotals(state.notifications_sent, state.notifications_retrying, len(undelivered),
                              tuple(sorted({u.target for u in undelivered})))
