"""The read side over runs: a run folded from its journal, its runbook as journalled, and how it is described.

`status`, `runs`, the history and the report, and the web board read runs
through these; none of them needs the write side (``cutover.app.runs``), its
executors, leases or notifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cutover.core.criteria import criteria_json
from cutover.core.events import Journal
from cutover.core.forecast import Outlook
from cutover.core.state import MASKED, RunState, fold
from cutover.core.steps import RunbookSpec
from cutover.core.windows import window_json, window_of
from cutover.errors import InputError, NotFound


def load_run(journal: Journal, run_id: str) -> RunState:
    events = journal.events(run_id)
    if not events:
        known = journal.runs()
        raise NotFound(f"no run {run_id!r} in this journal",
                       hint=f"known runs: {', '.join(known[-5:])}" if known else "start one with `cutover run`")
    return fold(events)


def runbook_of(state: RunState, secrets: Mapping[str, str] | None = None) -> RunbookSpec:
    """The runbook exactly as it was when the run was created (kept in the journal), with its parameters.

    Secret parameters are masked unless ``secrets`` gives them again (to drive
    the run): then each must match its journalled digest.
    """
    # the pydantic runbook models only when a runbook is read, not for every command that reads runs
    from cutover.model.runbook import parse_runbook
    from cutover.planning.plan import to_spec

    params = {**state.params, **_secret_values(state, secrets)}
    return to_spec(parse_runbook(state.runbook_text, state.runbook_path or state.runbook_name, params=params).runbook)


def _secret_values(state: RunState, given: Mapping[str, str] | None) -> dict[str, str]:
    if given is None:
        return {name: MASKED for name in state.secret_params}
    others = sorted(set(given) - set(state.secret_params))
    if others:
        raise InputError(f"run {state.run_id} keeps the parameters it was created with; only secret ones are given "
                         f"again (not {', '.join(others)})", hint="drop those --param options")
    again = " ".join(f"--param {name}=VALUE" for name in state.secret_params)
    missing = [name for name in state.secret_params if name not in given]
    if missing:
        raise InputError(f"run {state.run_id} has secret parameter(s) {', '.join(missing)}: the journal keeps only "
                         "their digest", hint=f"give them again: {again}")
    values = {name: given[name].strip() for name in state.secret_params}  # as parameters are read at creation
    wrong = [name for name, value in values.items()
             if secret_digest(state.run_id, name, value) != state.params.get(name)]
    if wrong:
        raise InputError(f"secret parameter(s) {', '.join(wrong)} differ from the value(s) run {state.run_id} "
                         "was created with", hint=f"give the same values: {again}")
    return values


def secret_digest(run_id: str, name: str, value: str) -> str:
    """What the journal keeps of a secret parameter: enough to check the value given again, not to show it."""
    return "sha256:" + hashlib.sha256(f"cutover secret parameter\0{run_id}\0{name}\0{value}".encode()).hexdigest()


def status_json(state: RunState) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "runbook": state.runbook_name,
        "env": state.env,
        "kind": state.kind,
        "label": state.label,
        "params": state.shown_params,
        "wave": {"group": state.wave_group, "samus": list(state.wave_samus)} if state.wave_group else None,
        "state": state.status.value,
        "mode": state.mode,
        "pause": {"reason": state.pause_reason, "detail": state.pause_detail} if state.pause_reason else None,
        "created_at": state.created_at,
        "created_by": state.created_by,
        "updated_at": state.updated_at,
        "finished_at": state.finished_at,
        "window_end": state.window_end,
        "window": window_json(window_of(state)),  # the candidate window the run is in (None: none declared)
        "windows": [w.to_payload() for w in state.windows],
        "lease": state.lease_holder,
        "rollback_points": list(state.completed),
        "point_of_no_return_passed": state.point_of_no_return_passed,
        "gates": {gid: {"opened_at": g.opened_at, "passed_at": g.passed_at,
                        "approvals": [{"approver": a.approver, "approver_id": a.approver_id, "role": a.role,
                                       "reason": a.reason, "auto": a.auto, "at": a.at, "signed": a.signed}
                                      for a in g.approvals],
                        **criteria_json(g)}
                  for gid, g in state.gates.items()},
        "notifications": notifications_json(state),
        "steps": [
            {"id": t.step_id, "target": t.target, "state": t.status.value, "started_at": t.started_at,
             "finished_at": t.finished_at, "attempts": t.attempts, "outcome": t.outcome, "detail": t.detail}
            for info in state.steps for t in state.step_targets(info.id)
        ],
    }


def notifications_json(state: RunState) -> dict[str, Any]:
    """What the run's notifications came to, for status --json, the web board and the report."""
    return {"sent": state.notifications_sent, "failed_attempts": state.notifications_retrying,
            "undelivered": [{"notice": u.notice, "target": u.target, "samu": u.samu, "error": u.error, "at": u.at}
                            for u in state.notifications_undelivered]}


def runs_json(journal: Journal) -> list[dict[str, Any]]:
    rows = []
    for run_id in journal.runs():
        state = fold(journal.events(run_id))
        rows.append({"run_id": run_id, "runbook": state.runbook_name, "env": state.env, "kind": state.kind,
                     "label": state.label,
                     "params": state.shown_params, "wave": state.wave_group, "state": state.status.value,
                     "started_at": state.created_at, "finished_at": state.finished_at,
                     "created_at": state.created_at, "updated_at": state.updated_at})
    return rows


def status_document(state: RunState, outlook: Outlook | None) -> dict[str, Any]:
    """What `cutover status --json` prints and the board's API serves: the run, and its measured forecast."""
    return {**status_json(state), "forecast": outlook.to_json() if outlook is not None else None}
