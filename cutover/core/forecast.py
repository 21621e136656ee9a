"""Time, as the change manager watches it: backup-mode durations, predicted end, PNR deadline.

Pure functions of a run's state and the current time. Expected durations come
from the runbook (learned from rehearsals); a step without one counts as 0,
which the view makes visible rather than guessing.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cutover.core.events import parse_time
from cutover.core.state import RunState, TargetStatus

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass


@dataclass(frozen=True)
class Forecast:
    predicted_end: datetime | None
    pnr_deadline: datetime | None  # the last moment to pass the PNR and still roll back in the window
    unknown_durations: int  # remaining steps with no expected duration


@dataclass(frozen=True)
class Outlook:
    """The measured forecast of the rest of a run under way (``cutover.app.history.live_forecast``)."""

    end_p50: datetime
    end_p90: datetime
    pnr_deadline: datetime | None  # None once the point of no return is passed
    source: str  # what the estimate draws from (``timings.measured_source``)
    spread_known: bool  # False: too few runs measured for a P90 worth showing
    left_out: list[dict[str, Any]] = field(default_factory=list)  # past runs not counted, and why

    def to_json(self) -> dict[str, Any]:
        return {"end_p50": self.end_p50.isoformat(), "end_p90": self.end_p90.isoformat(),
                "pnr_deadline": self.pnr_deadline.isoformat() if self.pnr_deadline else None,
                "source": self.source, "spread_known": self.spread_known, "left_out": self.left_out}


def backup_mode_seconds(state: RunState, now: datetime) -> dict[str, float]:
    """Per target: seconds spent in backup mode so far (between a `sets_mode: backup` and a `nominal` mark)."""
    entered: dict[str, datetime] = {}
    total: dict[str, float] = {}
    for info in state.steps:
        if info.sets_mode is None or info.targets is None:
            continue
        for target in info.targets:
            ts = state.targets[(info.id, target)]
            if info.sets_mode == "backup" and ts.finished_at and ts.status in (TargetStatus.SUCCEEDED, TargetStatus.ROLLED_BACK):
                entered[target] = parse_time(ts.finished_at)
                if ts.status is TargetStatus.ROLLED_BACK:  # back to nominal by the rollback
                    total[target] = total.get(target, 0.0)
            if info.sets_mode == "nominal" and ts.status is TargetStatus.SUCCEEDED and target in entered and ts.finished_at:
                total[target] = total.get(target, 0.0) + (parse_time(ts.finished_at) - entered.pop(target)).total_seconds()
    for target, since in entered.items():
        if _still_in_backup(state, target):
            total[target] = total.get(target, 0.0) + (now - since).total_seconds()
    return total


def _still_in_backup(state: RunState, target: str) -> bool:
    backup_steps = [s for s in state.steps if s.sets_mode == "backup" and s.targets and target in s.targets]
    return any(state.targets[(s.id, target)].status is TargetStatus.SUCCEEDED for s in backup_steps)


def forecast(state: RunState, now: datetime) -> Forecast:
    remaining = [s for s in state.steps if s.id not in state.completed]
    unknown = sum(1 for s in remaining if s.expected_duration is None and not s.is_gate)
    seconds = sum(s.expected_duration or 0.0 for s in remaining)
    predicted = now + timedelta(seconds=seconds) if not state.is_finished() else None
    return Forecast(predicted, _pnr_deadline(state), unknown)


def _pnr_deadline(state: RunState) -> datetime | None:
    """Window end minus the time to undo everything done before the PNR (if not yet passed)."""
    pnr = next((s for s in state.steps if s.point_of_no_return), None)
    if pnr is None or state.window_end is None or state.point_of_no_return_passed:
        return None
    before = state.steps[: [s.id for s in state.steps].index(pnr.id)]
    undo = sum(s.rollback_expected_duration or s.expected_duration or 0.0 for s in before if not s.is_gate)
    return parse_time(state.window_end) - timedelta(seconds=undo)
