"""What the crisis-room board shows of a run: plain data, ready for a template.

The same facts as the terminal's live view (``cutover.cli.render``): SAMUs by
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

from cutover.cli.render import STYLE
from cutover.core import records as r
from cutover.core.criteria import criteria_json
from cutover.core.events import Event, parse_time
from cutover.core.guidance import next_move
from cutover.core.forecast import backup_mode_seconds, forecast
from cutover.core.state import GateApproval, RunState, RunStatus, TargetStatus
from cutover.core.steps import Approver, GateStep, RunbookSpec
from cutover.core.timings import spread_unknown
from cutover.core.windows import fallback_night
from cutover.model.redact import redacted
from cutover.web.i18n import event_word, state_word

LATEST_EVENTS = 15
NOTIFICATION_FAILURES = 20


def board_view(state: RunState, spec: RunbookSpec | None, outlook: dict[str, Any] | None,
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
        "notifications": notifications(events),
        "legend": [{"state": s.value, "symbol": symbol, "word": state_word(s.value, lang)}
                   for s, (symbol, _) in STYLE.items()],
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


def _time_outlook(state: RunState, measured: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The header's clocks, decided exactly as the terminal's header decides them."""
    expected = forecast(state, now)
    if measured is not None:  # P90 only where the spread is known: else it would repeat P50
        known = measured["spread_known"]
        end = {"p50": measured["end_p50"], "p90": measured["end_p90"] if known else None,
               "source": measured["source"] if known else f"{measured['source']}; {spread_unknown(measured['source'])}",
               "unknown": 0}
    elif expected.predicted_end is not None:
        end = {"p50": expected.predicted_end.isoformat(), "p90": None, "source": "expected durations",
               "unknown": expected.unknown_durations}
    else:
        end = None
    pnr_deadline = measured["pnr_deadline"] if measured and measured["pnr_deadline"] else (
        expected.pnr_deadline.isoformat() if expected.pnr_deadline else None)
    finished = state.is_finished()
    return {
        "now": now.isoformat(),
        "window_end": state.window_end,
        "window_left_s": _seconds_until(state.window_end, now) if state.window_end and not finished else None,
        "end": end if not finished else None,
        "pnr_passed": state.point_of_no_return_passed,
        "pnr_deadline": pnr_deadline if not finished else None,
        "pnr_left_s": _seconds_until(pnr_deadline, now) if pnr_deadline and not finished else None,
        "next_window": _next_window(state, now, end["p90"] if end else None),
    }


def _next_window(state: RunState, now: datetime, end_p90: str | None) -> dict[str, Any] | None:
    """The fallback night offered on a no-go, or when the forecast misses the window."""
    later = fallback_night(state, now, parse_time(end_p90) if end_p90 else None)
    if later is None:
        return None
    return {**later.to_payload(),
            "command": f"cutover runs postpone {state.run_id} --window {later.number} --reason TEXT"}


def _seconds_until(moment: str, now: datetime) -> float:
    return (parse_time(moment) - now).total_seconds()


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
    symbol, _ = STYLE[cell.status]
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


def notifications(events: Sequence[Event], limit: int = NOTIFICATION_FAILURES) -> dict[str, Any]:
    """What reached people and what did not: messages sent, failed attempts (newest first, at most ``limit``).

    Read from the ``notification_sent`` / ``notification_failed`` events (issue 10); an
    attempt marked ``final`` was given up on: that message never arrived. Targets are
    journalled redacted to their scheme and host; they are redacted again here.
    """
    sent = sum(1 for event in events if event.kind == "notification_sent")
    failed = [event for event in events if event.kind.startswith("notification") and _says_failed(event)]
    return {"sent": sent, "failed_attempts": len(failed),
            "undelivered": sum(1 for event in failed if event.payload.get("final")),
            "failures": [_failure(event) for event in reversed(failed[-limit:])]}


def _failure(event: Event) -> dict[str, Any]:
    payload = event.payload
    return {"at": event.at, "notice": payload.get("notice") or payload.get("event") or event.kind,
            "target": payload.get("target") or payload.get("url"), "samu": payload.get("samu"),
            "step": payload.get("step"), "attempt": payload.get("attempt"),
            "final": bool(payload.get("final")), "error": payload.get("error") or payload.get("detail")}


def _says_failed(event: Event) -> bool:
    payload = event.payload
    return (event.kind.endswith(("failed", "gave_up")) or payload.get("ok") is False
            or str(payload.get("status", "")).lower() in ("failed", "error", "gave_up"))
