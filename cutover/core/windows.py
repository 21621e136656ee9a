"""Candidate windows and fallback nights: which window a run is in, and which one comes next.

A runbook may name its candidate windows (``windows:``: start, end, latest
point of no return). A run is created in the first one that has not closed;
a no-go, or a forecast that misses the window, offers the next one, and
``cutover runs postpone RUN --window N`` moves the run there (journalled as
``run_postponed``). Everything that reasons about "the window" (the engine's
window check, the forecast, the criteria at a gate, the board) asks
``window_of`` which one the run is in, so all of them agree.

Pure functions over the run's state and the windows frozen in its journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cutover.core.events import parse_time
from cutover.core.records import WindowInfo
from cutover.core.state import RunState, RunStatus


def window_of(state: RunState, windows: Sequence[WindowInfo] | None = None) -> WindowInfo | None:
    """The window the run is in (created in, or postponed to); None for a run whose runbook names none.

    ``windows`` defaults to those frozen in the run's journal at its creation.
    """
    if state.window is None:
        return None
    found = state.windows if windows is None else windows
    return next((w for w in found if w.number == state.window), None)


def first_open_window(windows: Sequence[WindowInfo], now: datetime) -> WindowInfo | None:
    """The window a new run goes into: the first that has not closed by ``now`` (None: all are past)."""
    return next((w for w in windows if parse_time(w.end) > now), None)


def next_window(state: RunState, now: datetime, windows: Sequence[WindowInfo] | None = None) -> WindowInfo | None:
    """The fallback night: the first window after the run's own that has not closed by ``now``."""
    found = state.windows if windows is None else windows
    current = state.window or 0
    return next((w for w in found if w.number > current and parse_time(w.end) > now), None)


def postpone_problem(state: RunState, number: int, now: datetime) -> str | None:
    """Why the run may not move to window ``number`` now, or None when it may.

    A run moves only while nobody drives it, before its point of no return,
    with nothing it did still standing that a rollback would have to undo
    (what stands would wait days in the state a night left it in), and only
    to a later window that has not closed.
    """
    target = next((w for w in state.windows if w.number == number), None)
    if not state.windows:
        return f"run {state.run_id}'s runbook names no candidate windows (`windows:`)"
    if target is None:
        return f"window {number} is not one of the runbook's windows (1 to {len(state.windows)})"
    if state.is_finished() or state.status is RunStatus.ABANDONED:
        return f"run {state.run_id} is already {state.status.value}"
    if state.status is RunStatus.RUNNING:
        return f"run {state.run_id} is being driven: pause it first (a no-go at its gate, or Ctrl-C)"
    if state.point_of_no_return_passed:
        return f"run {state.run_id} passed its point of no return ({state.point_of_no_return_passed})"
    if number <= (state.window or 0):
        return f"window {number} is not after the run's window {state.window}: a run moves only to a later night"
    if parse_time(target.end) <= now:
        return f"{target.describe()} has already closed"
    standing = standing_effects(state)
    if standing:
        return f"what run {state.run_id} did still stands ({', '.join(standing)}): roll it back first"
    return None


def standing_effects(state: RunState) -> list[str]:
    """Steps with a rollback whose effect may still stand (a SAMU in backup mode, a frozen platform)."""
    return [info.id for info in state.steps
            if not info.is_gate and info.has_rollback
            and any(t.may_need_undo for t in state.step_targets(info.id))]


def postpone_offer(state: RunState, now: datetime) -> str:
    """What a no-go, or a forecast that misses the window, offers: the next window, as a command ('' if none)."""
    later = next_window(state, now)
    if later is None:
        return ""
    return (f"the next window is {later.describe()}: "
            f"`cutover runs postpone {state.run_id} --window {later.number} --reason TEXT`")


def fallback_night(state: RunState, now: datetime, end_p90: datetime | None) -> WindowInfo | None:
    """The next window, when the run needs one: paused at a gate (a no-go) or forecast past its window's end."""
    if state.is_finished() or state.point_of_no_return_passed:
        return None
    misses = end_p90 is not None and state.window_end is not None and end_p90 > parse_time(state.window_end)
    no_go = state.status is RunStatus.PAUSED and state.pause_reason == "gate"
    return next_window(state, now) if misses or no_go else None


def window_json(window: WindowInfo | None) -> dict[str, object] | None:
    return window.to_payload() if window is not None else None
