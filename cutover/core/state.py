"""A run's state is a pure fold over its journal events.

``fold(events)`` rebuilds everything the engine, ``status`` and the reports
need: each step x target's state, the rollback points, gate approvals, the
point of no return, whether the run is paused and why. Nothing else is
persisted, so a controller that dies at any instant loses nothing: the next
one folds the same events.

Event vocabulary (``kind`` -> payload):

    run_created       runbook{name,path,sha256,text}, env, steps[...], window_end,
                      params{}, wave{group, samus[]}|null, kind (live|rehearsal),
                      programme_override{reason, samus[]}|null
    drive_started     command (run | resume | rollback), holder
    step_started      step, target, attempt
    action_done       step, target, result           (main action ok; verification pending)
    step_succeeded    step, target, result, resolution?
    step_failed       step, target, phase, result
    step_skipped      step, target, reason
    in_doubt          step, target, reason           (a failure that may have taken effect)
    in_doubt_resolved step, target, decision (done | rerun), reason
    rollback_point    step
    gate_opened       step
    gate_approved     step, approver, role, reason, auto
    gate_passed       step, point_of_no_return
    run_paused        reason, detail
    run_failed        step, detail
    run_completed
    rollback_requested to
    undo_started      step, target
    undo_succeeded    step, target, result
    undo_failed       step, target, result
    step_rolled_back  step
    run_rolled_back   to
    target_excluded   target, reason
    window_override   step, reason
    lease_acquired / lease_released / lease_taken_over   holder, previous
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover.core.actions import Target
from cutover.core.events import Event


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class TargetStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    IN_DOUBT = "in_doubt"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"


class UndoStatus(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class StepInfo:
    """What the run recorded about a step when it was created (the plan is frozen then)."""

    id: str
    kind: str
    title: str
    targets: tuple[str, ...] | None
    idempotent: bool = False
    has_verify: bool = False
    has_rollback: bool = False
    point_of_no_return: bool = False
    expected_duration: float | None = None
    rollback_expected_duration: float | None = None
    sets_mode: str | None = None

    @property
    def is_gate(self) -> bool:
        return self.kind == "gate"

    def keys(self) -> list[Target]:
        return list(self.targets) if self.targets is not None else [None]

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> StepInfo:
        targets = data.get("targets")
        return cls(
            id=data["id"], kind=data["kind"], title=data.get("title") or data["id"],
            targets=tuple(targets) if targets is not None else None,
            idempotent=bool(data.get("idempotent")), has_verify=bool(data.get("has_verify")),
            has_rollback=bool(data.get("has_rollback")), point_of_no_return=bool(data.get("point_of_no_return")),
            expected_duration=data.get("expected_duration"),
            rollback_expected_duration=data.get("rollback_expected_duration"), sets_mode=data.get("sets_mode"),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "title": self.title,
            "targets": list(self.targets) if self.targets is not None else None,
            "idempotent": self.idempotent, "has_verify": self.has_verify, "has_rollback": self.has_rollback,
            "point_of_no_return": self.point_of_no_return, "expected_duration": self.expected_duration,
            "rollback_expected_duration": self.rollback_expected_duration, "sets_mode": self.sets_mode,
        }


@dataclass
class TargetState:
    step_id: str
    target: Target
    status: TargetStatus = TargetStatus.PENDING
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    action_done: bool = False  # the main action is known to have succeeded
    failure_phase: str | None = None
    outcome: str | None = None
    detail: str | None = None
    undo: UndoStatus | None = None

    @property
    def may_need_undo(self) -> bool:
        """Whether this target's action may have taken effect, so rollback must undo it."""
        if self.undo is UndoStatus.DONE:
            return False
        if self.status in (TargetStatus.SUCCEEDED, TargetStatus.IN_DOUBT, TargetStatus.RUNNING):
            return True
        # a failure before anything started (unreachable, refused) left nothing to undo
        return self.status is TargetStatus.FAILED and self.outcome not in ("unreachable", "refused")


@dataclass
class GateState:
    opened_at: str | None = None
    passed_at: str | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def approvers(self) -> set[str]:
        return {a["approver"] for a in self.approvals}


@dataclass
class RunState:
    run_id: str
    runbook_name: str = ""
    runbook_path: str = ""
    runbook_sha256: str = ""
    runbook_text: str = ""
    env: str = ""
    kind: str = "rehearsal"  # live (production inventory) or rehearsal
    params: dict[str, Any] = field(default_factory=dict)  # resolved runbook parameters, fixed at creation
    wave_group: str | None = None  # the inventory group the run moves
    wave_samus: tuple[str, ...] = ()  # its SAMU hosts, frozen at creation
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    window_end: str | None = None
    steps: list[StepInfo] = field(default_factory=list)
    targets: dict[tuple[str, Target], TargetState] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING
    pause_reason: str | None = None
    pause_detail: str | None = None
    completed: list[str] = field(default_factory=list)  # rollback points, oldest first
    gates: dict[str, GateState] = field(default_factory=dict)
    point_of_no_return_passed: str | None = None
    mode: str = "forward"  # or "rollback" while a rollback is under way
    rollback_to: str | None = None
    excluded: set[str] = field(default_factory=set)
    lease_holder: dict[str, Any] | None = None
    finished_at: str | None = None
    events: int = 0

    def step(self, step_id: str) -> StepInfo:
        for info in self.steps:
            if info.id == step_id:
                return info
        raise KeyError(step_id)

    def step_targets(self, step_id: str) -> list[TargetState]:
        return [self.targets[(step_id, key)] for key in self.step(step_id).keys()]

    def step_status(self, step_id: str) -> TargetStatus:
        """One status for a whole step (the worst of its targets, in a sensible order)."""
        states = {t.status for t in self.step_targets(step_id)}
        for status in (TargetStatus.RUNNING, TargetStatus.IN_DOUBT, TargetStatus.FAILED):
            if status in states:
                return status
        if states <= {TargetStatus.SUCCEEDED, TargetStatus.SKIPPED} and TargetStatus.SUCCEEDED in states:
            return TargetStatus.SUCCEEDED
        if states == {TargetStatus.SKIPPED}:
            return TargetStatus.SKIPPED
        if TargetStatus.ROLLED_BACK in states:
            return TargetStatus.ROLLED_BACK
        if TargetStatus.SUCCEEDED in states:
            return TargetStatus.RUNNING  # partly done
        return TargetStatus.PENDING

    def in_doubt(self) -> list[TargetState]:
        return [t for t in self.targets.values() if t.status is TargetStatus.IN_DOUBT]

    def is_finished(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.ROLLED_BACK)


# ----------------------------------------------------------------------------- the fold


def fold(events: Iterable[Event]) -> RunState:
    """Rebuild a run's state from its events, oldest first."""
    state: RunState | None = None
    for event in events:
        if state is None:
            state = RunState(run_id=event.run_id)
        apply(state, event)
    if state is None:
        raise ValueError("no events: the run does not exist")
    return state


def apply(state: RunState, event: Event) -> None:
    """Fold one more event into ``state`` (the engine keeps its state current this way)."""
    handler = _HANDLERS.get(event.kind)
    if handler is not None:
        handler(state, event.payload, event)
    state.updated_at = event.at
    state.events += 1


def _key(payload: Mapping[str, Any]) -> tuple[str, Target]:
    return payload["step"], payload.get("target")


def _result_fields(target: TargetState, payload: Mapping[str, Any]) -> None:
    result = payload.get("result") or {}
    target.outcome = result.get("outcome")
    target.detail = result.get("detail")


def _run_created(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    runbook = p["runbook"]
    state.runbook_name, state.runbook_path = runbook["name"], runbook.get("path", "")
    state.runbook_sha256, state.runbook_text = runbook.get("sha256", ""), runbook.get("text", "")
    state.env, state.created_at, state.created_by = p["env"], e.at, e.operator
    # created, not yet driven: nobody runs it until a `run` or `resume` starts a drive
    state.status, state.pause_reason = RunStatus.PAUSED, "not_started"
    state.pause_detail = f"created but not started: `cutover resume {e.run_id}` starts it"
    state.window_end = p.get("window_end")
    state.kind, state.params = p.get("kind", "rehearsal"), dict(p.get("params") or {})
    wave = p.get("wave") or {}
    state.wave_group, state.wave_samus = wave.get("group"), tuple(wave.get("samus") or ())
    state.steps = [StepInfo.from_payload(s) for s in p["steps"]]
    for info in state.steps:
        for key in info.keys():
            state.targets[(info.id, key)] = TargetState(info.id, key)
        if info.is_gate:
            state.gates[info.id] = GateState()


def _drive_started(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    # Whatever the previous driver left running, it never recorded the end of: in doubt.
    for target in state.targets.values():
        if target.status is TargetStatus.RUNNING:
            target.status = TargetStatus.IN_DOUBT
        if target.undo is UndoStatus.RUNNING:
            target.undo = UndoStatus.FAILED  # an interrupted undo is retried
    state.status, state.pause_reason, state.pause_detail, state.finished_at = RunStatus.RUNNING, None, None, None


def _step_started(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.status, target.started_at, target.finished_at = TargetStatus.RUNNING, e.at, None
    target.attempts = int(p.get("attempt", target.attempts + 1))
    target.action_done, target.failure_phase, target.outcome, target.detail, target.undo = False, None, None, None, None


def _action_done(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.targets[_key(p)].action_done = True


def _step_succeeded(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    target.failure_phase = None
    _result_fields(target, p)


def _step_failed(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.status, target.finished_at, target.failure_phase = TargetStatus.FAILED, e.at, p.get("phase")
    if p.get("phase") == "verify":
        target.action_done = True
    _result_fields(target, p)


def _step_skipped(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.status, target.finished_at, target.detail = TargetStatus.SKIPPED, e.at, p.get("reason")


def _in_doubt(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.status, target.detail = TargetStatus.IN_DOUBT, p.get("reason")


def _in_doubt_resolved(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    if p["decision"] == "done":
        target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    else:  # rerun
        target.status, target.action_done = TargetStatus.PENDING, False
    target.detail = p.get("reason")


def _rollback_point(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    if p["step"] not in state.completed:
        state.completed.append(p["step"])


def _gate_opened(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    gate = state.gates[p["step"]]
    gate.opened_at = gate.opened_at or e.at
    target = state.targets[(p["step"], None)]
    target.status, target.started_at = TargetStatus.RUNNING, target.started_at or e.at


def _gate_approved(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.gates[p["step"]].approvals.append({**p, "at": e.at, "recorded_by": e.operator})


def _gate_passed(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.gates[p["step"]].passed_at = e.at
    target = state.targets[(p["step"], None)]
    target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    if p.get("point_of_no_return"):
        state.point_of_no_return_passed = p["step"]


def _run_paused(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.status, state.pause_reason, state.pause_detail = RunStatus.PAUSED, p.get("reason"), p.get("detail")
    _nobody_drives(state)


def _run_failed(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.status, state.pause_reason, state.pause_detail = RunStatus.FAILED, p.get("reason", "failed"), p.get("detail")
    _nobody_drives(state)


def _nobody_drives(state: RunState) -> None:
    """The run stopped: a gate waiting is pending; an action still marked running is in doubt."""
    for target in state.targets.values():
        if target.status is TargetStatus.RUNNING:
            target.status = TargetStatus.PENDING if target.step_id in state.gates else TargetStatus.IN_DOUBT


def _run_completed(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.status, state.finished_at = RunStatus.COMPLETED, e.at


def _rollback_requested(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.mode, state.rollback_to, state.status = "rollback", p.get("to"), RunStatus.RUNNING


def _undo_started(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.targets[_key(p)].undo = UndoStatus.RUNNING


def _undo_succeeded(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.undo, target.status, target.finished_at = UndoStatus.DONE, TargetStatus.ROLLED_BACK, e.at


def _undo_failed(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    target = state.targets[_key(p)]
    target.undo = UndoStatus.FAILED
    _result_fields(target, p)


def _step_rolled_back(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    step_id = p["step"]
    if step_id in state.completed:
        state.completed.remove(step_id)
    if state.point_of_no_return_passed == step_id:
        state.point_of_no_return_passed = None
    if step_id in state.gates:  # a gate undone must be approved again
        state.gates[step_id] = GateState()
    for target in state.step_targets(step_id):
        if target.status is not TargetStatus.PENDING:
            target.status, target.undo = TargetStatus.ROLLED_BACK, UndoStatus.DONE


def _run_rolled_back(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.status, state.mode, state.finished_at = RunStatus.ROLLED_BACK, "forward", e.at


def _target_excluded(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.excluded.add(p["target"])


def _lease(state: RunState, p: Mapping[str, Any], e: Event) -> None:
    state.lease_holder = p.get("holder") if e.kind != "lease_released" else None


_HANDLERS: dict[str, Callable[[RunState, Mapping[str, Any], Event], None]] = {
    "run_created": _run_created,
    "drive_started": _drive_started,
    "step_started": _step_started,
    "action_done": _action_done,
    "step_succeeded": _step_succeeded,
    "step_failed": _step_failed,
    "step_skipped": _step_skipped,
    "in_doubt": _in_doubt,
    "in_doubt_resolved": _in_doubt_resolved,
    "rollback_point": _rollback_point,
    "gate_opened": _gate_opened,
    "gate_approved": _gate_approved,
    "gate_passed": _gate_passed,
    "run_paused": _run_paused,
    "run_failed": _run_failed,
    "run_completed": _run_completed,
    "rollback_requested": _rollback_requested,
    "undo_started": _undo_started,
    "undo_succeeded": _undo_succeeded,
    "undo_failed": _undo_failed,
    "step_rolled_back": _step_rolled_back,
    "run_rolled_back": _run_rolled_back,
    "target_excluded": _target_excluded,
    "lease_acquired": _lease,
    "lease_taken_over": _lease,
    "lease_released": _lease,
}
