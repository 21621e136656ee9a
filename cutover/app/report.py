"""`cutover report RUN`: the record the change board files (the PV de recette).

Everything comes from the journal: the run's fold for states and approvals,
its typed records for the timeline, rollbacks, decisions and failures, other
rehearsals of the same runbook for the P50-P90 band beside each duration
(time executing; a gate's wait shown apart as waiting; runs that must not
count left out, and said), and
the journal's own verification (event count, head hash) as evidence. In the
lab, the call account is added. Three renderings of the same facts: one
self-contained HTML file (inline CSS and SVG, no script, nothing fetched,
printable), Markdown for a ticket, JSON for tools. Every template autoescapes
(HTML) or escapes for Markdown whatever it interpolates, and outputs were
redacted before they were journalled (and are again here, see ``redacted``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jinja2
import markupsafe

from cutover.app.anchors import latest_anchor
from cutover.app.approvals import reverify
from cutover.app.history import select_runs
from cutover.app.queries import notifications_json
from cutover.core import records as r
from cutover.core.events import Event, parse_time
from cutover.core.forecast import backup_mode_seconds
from cutover.core.state import RunState, fold
from cutover.core.text import visible
from cutover.core.timings import StepMeasure, measure_run, measured_source, spread_known, spread_unknown, summarise
from cutover.model.redact import redacted

FORMATS = ("html", "markdown", "json")


@dataclass(frozen=True)
class Evidence:
    """The journal's verification, done by the caller on the file itself."""

    verified: bool
    events: int
    head_hash: str
    reason: str = ""


def report_data(journal: Any, run_id: str, evidence: Evidence, calls: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's facts, every text in them passed through the redactor once more (as the board's API is)."""
    return dict(redacted(_facts(journal, run_id, evidence, calls)))


def _facts(journal: Any, run_id: str, evidence: Evidence, calls: dict[str, Any] | None) -> dict[str, Any]:
    events = journal.events(run_id)
    state = fold(events)
    measure = measure_run(events, state.status.value, state.finished_at)
    selection = select_runs(journal, state.runbook_name, state.env)
    rehearsals = [m for m in selection.runs if m.run_id != run_id]
    band = {row["id"]: row for row in summarise(rehearsals)} if rehearsals else {}
    known = spread_known(len(rehearsals))
    now = parse_time(state.finished_at or state.updated_at)
    return {
        "run_id": run_id, "state": state.status.value, "env": state.env, "kind": state.kind, "label": state.label,
        "runbook": state.runbook_name, "params": state.shown_params, "window_end": state.window_end,
        "started_at": state.created_at, "finished_at": state.finished_at,
        "point_of_no_return_passed_at": _pnr_at(state),
        "pause": {"reason": state.pause_reason, "detail": state.pause_detail} if state.pause_reason else None,
        "steps": [_step_row(state, info.id, measure.steps.get(info.id), band.get(info.id), known)
                  for info in state.steps],
        "timeline": _timeline(events),
        "backup_mode_s": {t: round(s, 1) for t, s in sorted(backup_mode_seconds(state, now).items())},
        "approvals": _approvals(events),
        "criteria": _criteria(events),
        "overrides": _overrides(events),
        "notifications": notifications_json(state),
        "interventions": _interventions(events),
        "rehearsals": [m.run_id for m in rehearsals],
        "rehearsals_source": measured_source(len(rehearsals)) if rehearsals else None,
        "rehearsals_spread_known": known,
        "left_out": [m for m in selection.left_out_json() if m["run_id"] != run_id],
        "calls": calls,
        "journal": {"verified": evidence.verified, "events": evidence.events, "head_hash": evidence.head_hash,
                    "reason": evidence.reason or None},
        "anchor": latest_anchor(events),  # None: unanchored (the controller had no --anchor-key)
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _approvals(events: list[Event]) -> list[dict[str, Any]]:
    """Every approval ever given, withdrawn by a rollback or not: the record keeps them all.

    Each signed one is verified again here, from the journal alone (cutover.app.approvals).
    """
    checks = {check.seq: check for check in reverify(events)}
    return [{"step": rec.step, "approver": rec.approver, "approver_id": rec.approver_id, "role": rec.role,
             "reason": rec.reason, "auto": rec.auto, "at": event.at, "recorded_by": event.operator,
             "signed": checks[event.seq].signed, "verified": checks[event.seq].signed and checks[event.seq].valid}
            for event in events if isinstance(rec := r.read(event), r.GateApproved)]


def _criteria(events: list[Event]) -> list[dict[str, Any]]:
    """Every criterion each time it was measured at a gate: value, expected, verdict (the evidence decided on)."""
    return [{"step": rec.step, "at": event.at, "occasion": rec.occasion, "criterion": m.criterion, "title": m.title,
             "severity": m.severity, "value": m.shown_value(), "expected": m.expected, "verdict": m.verdict(),
             "detail": m.detail, "probe": m.probe}
            for event in events if isinstance(rec := r.read(event), r.CriteriaMeasured) for m in rec.measurements]


def _overrides(events: list[Event]) -> list[dict[str, Any]]:
    """Every override of a failed criterion, each signed one verified again from the journal alone."""
    checks = {check.seq: check for check in reverify(events)}
    return [{"step": rec.step, "criterion": rec.criterion, "value": rec.value, "reason": rec.reason,
             "approver": rec.approver, "approver_id": rec.approver_id, "role": rec.role, "at": event.at,
             "recorded_by": event.operator, "signed": checks[event.seq].signed,
             "verified": checks[event.seq].signed and checks[event.seq].valid}
            for event in events if isinstance(rec := r.read(event), r.CriterionOverridden)]


def _pnr_at(state: RunState) -> str | None:
    for info in state.steps:
        if info.point_of_no_return and state.gates.get(info.id) and state.gates[info.id].passed_at:
            return state.gates[info.id].passed_at
    return None


def _step_row(state: RunState, step_id: str, measure: StepMeasure | None, band: dict[str, Any] | None,
              known: bool) -> dict[str, Any]:
    """A step's duration (time executing; a gate's wait apart) beside the rehearsals' band."""
    targets = state.step_targets(step_id)
    gate = state.step(step_id).is_gate
    duration = measure.wall_s if measure is not None else None
    wait = measure.gate_wait_s if measure is not None else None
    paused = measure.paused_s if measure is not None else 0.0
    figures = (band or {}).get("gate_wait") if gate else band
    p50 = figures["p50_s"] if figures and figures.get("p50_s") is not None else None
    p90 = figures["p90_s"] if figures and known and p50 is not None else None
    return {"id": step_id, "title": state.step(step_id).title, "state": state.step_status(step_id).value,
            "gate": gate, "duration_s": round(duration, 3) if duration is not None else None,
            "gate_wait_s": round(wait, 3) if wait is not None else None, "paused_s": round(paused, 3),
            "duration_text": _duration_text(gate, duration, wait, paused),
            "p50_s": p50, "p90_s": p90, "band_text": _band_text(gate, p50, p90, known),
            "targets": [{"target": t.target, "state": t.status.value, "outcome": t.outcome, "attempts": t.attempts}
                        for t in targets]}


def _duration_text(gate: bool, duration: float | None, wait: float | None, paused: float) -> str:
    if gate:
        return f"attente / wait {wait:.1f} s" if wait is not None else "—"
    if duration is None:
        return "—"
    return f"{duration:.1f} s" + (f" (+{paused:.1f} s en pause / paused, non compté / left out)" if paused else "")


def _band_text(gate: bool, p50: float | None, p90: float | None, known: bool) -> str:
    if p50 is None:
        return "—"
    wait = "attente / wait " if gate else ""
    if p90 is None:
        return f"{wait}P50 {p50:.1f} s ({spread_unknown('measured')})"
    return f"{wait}{p50:.1f}–{p90:.1f} s"


def _timeline(events: list[Event]) -> list[dict[str, Any]]:
    """One bar per step x target attempt: start and end in seconds from the run's start."""
    origin = parse_time(events[0].at).timestamp()
    open_bars: dict[tuple[str, Any], dict[str, Any]] = {}
    bars: list[dict[str, Any]] = []
    for event in events:
        record, at = r.read(event), parse_time(event.at).timestamp() - origin
        if isinstance(record, (r.StepStarted, r.UndoStarted)):
            phase = "rollback" if isinstance(record, r.UndoStarted) else "action"
            started: dict[str, Any] = {"step": record.step, "target": record.target, "phase": phase,
                                       "start": round(at, 3), "end": None, "outcome": "running"}
            open_bars[(record.step, record.target)] = started
            bars.append(started)
        elif isinstance(record, (r.StepSucceeded, r.StepFailed, r.UndoSucceeded, r.UndoFailed, r.InDoubt)):
            ended = open_bars.pop((record.step, record.target), None)
            if ended is not None:
                ended["end"] = round(at, 3)
                ended["outcome"] = {r.StepSucceeded: "ok", r.UndoSucceeded: "ok", r.InDoubt: "in doubt"}.get(
                    type(record), "failed")
    end = parse_time(events[-1].at).timestamp() - origin
    for bar in bars:
        if bar["end"] is None:
            bar["end"] = round(end, 3)
    return bars


def _interventions(events: list[Event]) -> list[dict[str, Any]]:
    """Rollbacks, operator decisions and failures, in journal order."""
    found = []
    for event in events:
        record = r.read(event)
        entry = _intervention(record)
        if entry is not None:
            found.append({"at": event.at, "by": event.operator, **entry})
    return found


def _intervention(record: r.Record) -> dict[str, Any] | None:
    if isinstance(record, r.RollbackRequested):
        return {"what": "rollback requested", "detail": f"to {record.to or 'the start'}"}
    if isinstance(record, r.InDoubtResolved):
        return {"what": f"operator decision: {record.decision}", "detail": f"{record.step}:{record.target or ''}"}
    if isinstance(record, r.TargetExcluded):
        return {"what": "operator decision: exclude", "detail": f"{record.target} ({record.reason})"}
    if isinstance(record, r.WindowOverride):
        return {"what": "window override", "detail": f"{record.step}: {record.reason}"}
    if isinstance(record, r.RunPostponed):
        return {"what": "postponed", "detail": f"to window {record.window}"
                + (f" (from window {record.previous})" if record.previous else "") + f": {record.reason}"}
    if isinstance(record, r.LeaseTakenOver):
        return {"what": "takeover", "detail": f"{record.holder.describe()} took over from "
                                              f"{record.previous_holder.describe()}: {record.reason}"}
    if isinstance(record, (r.StepFailed, r.UndoFailed)):
        result = record.result
        phase = record.phase if isinstance(record, r.StepFailed) else "rollback"
        return {"what": f"failure ({phase})", "detail": f"{record.step}:{record.target or ''} "
                f"{result.outcome.value if result else ''}: {result.detail if result else ''}",
                "output": result.output if result else ""}
    if isinstance(record, r.RunFailed):
        return {"what": "run failed", "detail": record.detail}
    if isinstance(record, r.StepRolledBack):
        return {"what": "step rolled back", "detail": record.step + (f" ({record.detail})" if record.detail else "")}
    return None


# ---------------------------------------------------------------------- rendering


def markdown_text(value: object) -> str:
    """``value`` as literal Markdown text: nothing in it can make a link, an image, HTML, a code span or a table cell.

    Every interpolation of the Markdown template passes through here (the
    environment's ``finalize``), so a template cannot forget it.
    """
    text = visible(str(value), breaks=False)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    return text.replace("://", ":\\/\\/").replace("www.", "www\\.")  # no autolink either


def shown(value: Any) -> Any:
    """What an HTML template interpolates: text made visible (``cutover.core.text``), then autoescaped."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible(value)
    return value


_MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~]")
# Autoescape is on for every template whatever its name (report.html.j2 once missed a `.html`-only rule).
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("cutover.app", "templates"), autoescape=True, finalize=shown,
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_MARKDOWN = jinja2.Environment(loader=jinja2.PackageLoader("cutover.app", "templates"), autoescape=False,
                               finalize=markdown_text, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return visible(json.dumps(data, indent=2, ensure_ascii=False))  # the same JSON, never a raw override
    if fmt == "html":
        return _ENV.get_template("report.html.j2").render(report=data, gantt=_gantt(data))
    return _MARKDOWN.get_template("report.md.j2").render(report=data)


def _gantt(data: dict[str, Any]) -> dict[str, Any]:
    """Geometry of the inline SVG timeline: one row per step x target, x in seconds scaled to the width."""
    bars = data["timeline"]
    rows = list(dict.fromkeys((b["step"], b["target"]) for b in bars))
    total = max([b["end"] for b in bars] + [1.0])
    width, label, height = 900.0, 220.0, 14
    scale = (width - label - 10) / total
    shapes = [{"x": label + b["start"] * scale, "y": rows.index((b["step"], b["target"])) * (height + 4) + 20,
               "w": max(1.5, (b["end"] - b["start"]) * scale), "h": height, "cls": f"{b['phase']} {_css(b['outcome'])}",
               "title": f"{b['step']} {b['target'] or ''} {b['phase']}: {b['end'] - b['start']:.1f}s ({b['outcome']})"}
              for b in bars]
    labels = [{"y": i * (height + 4) + 20 + height - 3, "text": f"{s} {t or ''}".strip()} for i, (s, t) in enumerate(rows)]
    ticks = [{"x": label + s * scale, "text": f"{s:.0f}s"} for s in _ticks(total)]
    return {"width": width, "height": len(rows) * (height + 4) + 40, "shapes": shapes, "labels": labels,
            "ticks": ticks, "label_width": label}


def _css(outcome: str) -> str:
    return outcome.replace(" ", "-")


def _ticks(total: float) -> list[float]:
    step = max(1.0, 10 ** len(str(int(total))) / 10)
    while total / step > 10:
        step *= 2
    return [i * step for i in range(int(total // step) + 1)]
