"""What the crisis-room board shows of a run: plain data, ready for a template.

The same facts as the terminal's live view (``cutover.cli.render``; what both decide alike is in ``cutover.core.views``): SAMUs by
steps with their states, each SAMU's time in backup mode, the predicted end
(measured P50/P90 when rehearsals exist, else the runbook's expected
durations), the point-of-no-return deadline, and the run's pause, plus what a
room needs that a terminal cannot hold: the gates with their approvers and who
approved, the latest events, and notifications that failed to reach anyone.

Everything shown passes through the redactor once more: outputs were redacted
before they were journalled, and a board on a wall screen must not be where a
missed one first appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cutover.core import records as r
from cutover.core.criteria import criteria_json
from cutover.core.events import Event, parse_time
from cutover.core.forecast import Outlook, backup_mode_seconds
from cutover.core.guidance import next_move
from cutover.core.state import GateApproval, RunState, RunStatus, TargetStatus
from cutover.core.steps import Approver, GateStep, RunbookSpec
from cutover.core.views import SYMBOLS, header_clocks, notification_totals
from cutover.core.windows import fallback_night
from cutover.model.redact import redacted
from cutover.web.i18n import event_word, state_word

LATEST_EVENTS = 15
NOTIFICATION_FAILURES = 20


def board_view(state: RunState, spec: RunbookSpec | None, outlook: Outlook | None,
               events: Sequence[Event], now: datetime, lang: str) -> dict[str, Any]:
    """The board of one run at ``now``, in ``lang``."""
    view = {
        "run": _run_header(state, now, lang, spec),
        "time": _time_outlook(state, outlook, now),
        "steps": [{"id": s.id, "title": s.title or s.id, "is_gate": s.is_gate, "pnr": s.point_of_no_return}
                  for s in state.steps],
        "rows": _rows(state, now, lang),
        "gates": _gates(state, spec),
        "latest": latest_events(events, lang),
        "notifications": notifications(state, events),
        "legend": [{"state": s.value, "symbol": symbol, "word": state_word(s.value, lang)}
                   for s, symbol in SYMBOLS.items()],
    }
    return dict(redacted(view))


def _run_header(state: RunState, now: datetime, lang: str, spec: RunbookSpec | None) -> dict[str, Any]:
    elapsed = (now - parse_time(state.created_at)).total_seconds() if state.created_at else None
    return {
        "id": state.run_id, "runbook": state.runbook_name, "env": state.env, "label": state.label,
        "kind": state.kind, "kind_word": state_word(state.kind, lang), "wave": state.wave_group,
        "state": state.status.value, "state_word": state_word(state.status.value, lang),
        "rolling_back": state.mode == "rollback" and state.status is RunStatus.RUNNING,
        "finished": state.is_finished(), "created_at": state.created_at, "finished_at": state.finished_at,
        "elapsed_s": elapsed if not state.is_finished() else None,
        "pause": {"reason": state.pause_reason, "detail": state.pause_detail, "next": next_move(state, spec)}
        if state.pause_reason else None,
    }


def _time_outlook(state: RunState, measured: Outlook | None, now: datetime) -> dict[str, Any]:
    """The header's clocks, as the core decides them for the terminal too (``core.views.header_clocks``)."""
    clocks = header_clocks(state, measured, now)
    end = clocks.end
    shown = None if end is None else {
        "p50": end.p50.isoformat(), "p90": end.p90.isoformat() if end.p90 else None, "source": end.source,
        "unknown": end.unknown_steps}
    finished = state.is_finished()
    return {
        "now": now.isoformat(),
        "window_end": state.window_end,
        "window_left_s": clocks.window_left_s if not finished else None,
        "end": shown if not finished else None,
        "pnr_passed": clocks.pnr_passed,
        "pnr_deadline": clocks.pnr_deadline.isoformat() if clocks.pnr_deadline and not finished else None,
        "pnr_left_s": clocks.pnr_left_s if not finished else None,
        "next_window": _next_window(state, now, end.p90 if end else None),
    }


def _next_window(state: RunState, now: datetime, end_p90: datetime | None) -> dict[str, Any] | None:
    """The fallback night offered on a no-go, or when the forecast misses the window."""
    later = fallback_night(state, now, end_p90)
    if later is None:
        return None
    return {**later.to_payload(),
            "command": f"cutover runs postpone {state.run_id} --window {later.number} --reason TEXT"}


def _rows(state: RunState, now: datetime, lang: str) -> list[dict[str, Any]]:
    """One row per target (the controller first, for whole-platform steps), one cell per step."""
    in_backup = backup_mode_seconds(state, now)
    # A clock runs when time passing adds to it: the SAMU is still in backup mode.
    later = backup_mode_seconds(state, now + timedelta(seconds=1)) if not state.is_finished() else in_backup
    order: list[str | None] = [None]
    for info in state.steps:
        order.extend(t for t in info.targets or () if t not in order)
    rows = []
    for target in order:
        cells = [_cell(state, info.id, target, lang) for info in state.steps]
        if target is None and all(cell is None for cell in cells):
            continue
        rows.append({"target": target, "backup_s": in_backup.get(target or ""),
                     "backup_running": target is not None and later.get(target, 0.0) > in_backup.get(target, 0.0),
                     "cells": cells})
    return rows


def _cell(state: RunState, step_id: str, target: str | None, lang: str) -> dict[str, Any] | None:
    cell = state.targets.get((step_id, target))
    if cell is None:
        return None
    symbol = SYMBOLS[cell.status]
    detail = f"{cell.outcome}: {cell.detail}" if cell.detail and cell.status is not TargetStatus.SUCCEEDED else None
    return {"step": step_id, "state": cell.status.value, "word": state_word(cell.status.value, lang),
            "symbol": symbol, "attempts": cell.attempts, "detail": detail}


def _gates(state: RunState, spec: RunbookSpec | None) -> list[dict[str, Any]]:
    """Every gate of the run: its approvers as the runbook lists them, and who has approved so far."""
    steps = {s.id: s for s in spec.steps} if spec else {}
    gates = []
    for info in (s for s in state.steps if s.is_gate):
        gate = state.gates.get(info.id)
        step = steps.get(info.id)
        approvals = list(gate.approvals) if gate else []
        listed = step.approvers if isinstance(step, GateStep) else ()
        status = "passed" if gate and gate.passed_at else "waiting" if gate and gate.opened_at else "closed"
        keys = {key for a in listed for key in _names_of(a)}
        gates.append({
            "id": info.id, "title": info.title or info.id, "pnr": info.point_of_no_return, "status": status,
            "opened_at": gate.opened_at if gate else None, "passed_at": gate.passed_at if gate else None,
            "quorum": step.quorum if isinstance(step, GateStep) else None,
            "required_roles": list(step.required_roles) if isinstance(step, GateStep) else [],
            "approvers": [{"name": a.name, "role": a.role, "id": getattr(a, "id", None),
                           "approval": _approval(_approval_of(approvals, _names_of(a)))} for a in listed],
            # approvals by someone the runbook does not list by name (the lab's auto-approver)
            "others": [_approval(a) for a in approvals if a.approver not in keys],
            **(criteria_json(gate) if gate else {"criteria": []}),
        })
    return gates


def _names_of(approver: Approver) -> tuple[str, ...]:
    """How an approval may name a listed approver: its id (signed approvals, issue 10) or its name."""
    ident = getattr(approver, "id", None)
    return (str(ident), approver.name) if ident else (approver.name,)


def _approval_of(approvals: list[GateApproval], names: tuple[str, ...]) -> GateApproval | None:
    return next((a for a in approvals if a.approver in names), None)


def _approval(approval: GateApproval | None) -> dict[str, Any] | None:
    if approval is None:
        return None
    # Signed approvals (issue 10) add ``signed`` to the fold's GateApproval; None says "not known here".
    signed = getattr(approval, "signed", None)
    return {"approver": approval.approver, "role": approval.role, "reason": approval.reason, "auto": approval.auto,
            "at": approval.at, "recorded_by": approval.recorded_by,
            "signed": bool(signed) if signed is not None else None}


def latest_events(events: Sequence[Event], lang: str, limit: int = LATEST_EVENTS) -> list[dict[str, Any]]:
    """The newest events that mean something to the room, newest first (leases and outputs left out)."""
    shown: list[dict[str, Any]] = []
    for event in reversed(events):
        word = event_word(event.kind, lang)
        if word is None:
            continue
        record = r.read(event)
        shown.append({"at": event.at, "kind": event.kind, "step": getattr(record, "step", None),
                      "target": getattr(record, "target", None), "word": word, "extra": _extra(record),
                      "operator": event.operator})
        if len(shown) == limit:
            break
    return shown


def _extra(record: r.Record) -> str:
    if isinstance(record, r.GateApproved):
        return record.approver + (" (auto)" if record.auto else "")
    if isinstance(record, (r.StepFailed, r.UndoFailed)) and record.result is not None:
        return f"{record.result.outcome.value}: {record.result.detail}"
    if isinstance(record, (r.RunPaused, r.RunFailed)) and record.detail:
        return record.detail
    if isinstance(record, r.CriteriaMeasured):
        return "; ".join(f"{m.criterion} {m.shown_value()} ({m.expected}) {m.verdict()}" for m in record.measurements)
    if isinstance(record, r.CriterionOverridden):
        return f"{record.criterion} = {record.value}, {record.approver}: {record.reason}"
    if isinstance(record, r.CallsCounted):
        return f"{record.placed} / {record.lost} ({record.source})"
    return ""


def notifications(state: RunState, events: Sequence[Event], limit: int = NOTIFICATION_FAILURES) -> dict[str, Any]:
    """What reached people and what did not: the run's totals (``core.views``), and the failed attempts
    themselves, newest first (at most ``limit``).

    An attempt marked ``final`` was given up on: that message never arrived. Targets are
    journalled redacted to their scheme and host; they are redacted again here.
    """
    totals = notification_totals(state)
    failed = [(event, record) for event in events if event.kind == r.NotificationFailed.KIND
              for record in (r.read(event),) if isinstance(record, r.NotificationFailed)]
    return {"sent": totals.sent, "failed_attempts": totals.failed_attempts, "undelivered": totals.undelivered,
            "failures": [_failure(event, record) for event, record in reversed(failed[-limit:])]}


def _failure(event: Event, record: r.NotificationFailed) -> dict[str, Any]:
    return {"at": event.at, "notice": record.notice, "target": record.target, "samu": record.samu,
            "step": record.step, "attempt": record.attempt, "final": record.final, "error": record.error}
