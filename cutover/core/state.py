"""A run's state is a pure fold over its journal events.

``fold(events)`` rebuilds everything the engine, ``status`` and the reports
need: each step x target's state, the rollback points, gate approvals, the
point of no return, whether the run is paused and why. Nothing else is
persisted, so a controller that dies at any instant loses nothing: the next
one folds the same events.

Every event is read as its typed record (``cutover.core.records``, which lists
the kinds); the fold never looks at a payload as a dict.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any

from cutover.core import records as r
from cutover.core.actions import ActionResult, Target
from cutover.core.events import Event
from cutover.core.records import StepInfo

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

MASKED = "********"  # how a secret parameter is shown (the redactor's placeholder)


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABANDONED = "abandoned"  # ended by an operator before it acted on anything


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


@dataclass(frozen=True)
class GateApproval:
    """One approval as the run knows it: who, in which role, why, when, and who recorded it."""

    approver: str
    role: str
    reason: str
    auto: bool
    at: str
    recorded_by: str
    approver_id: str | None = None
    signed: bool = False  # verified against the allowed signers when it was counted


@dataclass(frozen=True)
class UndeliveredNotice:
    """A notification cutover gave up on: shown on the boards and in the report."""

    notice: str
    target: str
    error: str
    samu: str | None
    at: str


@dataclass(frozen=True)
class CriterionOverride:
    """A failed blocking criterion accepted by an approver: the value accepted, who, why, when."""

    criterion: str
    value: Any
    reason: str
    approver: str
    role: str
    at: str
    recorded_by: str
    approver_id: str | None = None
    signed: bool = False


@dataclass
class GateState:
    opened_at: str | None = None
    passed_at: str | None = None
    approvals: list[GateApproval] = field(default_factory=list)
    # the latest measurement of each criterion weighed at this gate, and when it was measured
    criteria: dict[str, r.MeasuredCriterion] = field(default_factory=dict)
    measured_at: str | None = None
    measurements: int = 0  # how many times the gate's criteria were measured
    overrides: dict[str, CriterionOverride] = field(default_factory=dict)

    def approvers(self) -> set[str]:
        return {a.approver for a in self.approvals}


@dataclass
class RunState:
    run_id: str
    runbook_name: str = ""
    runbook_path: str = ""
    runbook_sha256: str = ""
    runbook_text: str = ""
    env: str = ""
    kind: str = "rehearsal"  # live (production inventory) or rehearsal
    label: str | None = None
    lab: bool = False  # created as a lab run (fixed at creation: RunCreated.lab)
    allowed_signers_sha256: str | None = None  # the signers fixed at creation; None in runs older than that
    params: dict[str, Any] = field(default_factory=dict)  # resolved runbook parameters, fixed at creation
    secret_params: tuple[str, ...] = ()  # those journalled as a digest (`secret: true`)
    wave_group: str | None = None  # the inventory group the run moves
    wave_samus: tuple[str, ...] = ()  # its SAMU hosts, frozen at creation
    claims: r.Claims = field(default_factory=r.Claims)  # what it holds while unfinished (cutover.core.claims)
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    window_end: str | None = None
    auto_approve: str | None = None  # the lab approver `run --auto-approve` named; `resume` approves as it too
    window_risk: str | None = None  # the risk accepted at creation (`--accept-window-risk`)
    windows: tuple[r.WindowInfo, ...] = ()  # the runbook's candidate windows, frozen at creation
    window: int | None = None  # the one the run is in (created in, or postponed to); None: no windows
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
    lease_holder: dict[str, Any] | None = None  # as journalled (LeaseHolder.to_payload), for status --json
    finished_at: str | None = None
    events: int = 0
    notifications_sent: int = 0
    notifications_undelivered: list[UndeliveredNotice] = field(default_factory=list)  # gave up on these
    notifications_retrying: int = 0  # failed attempts so far (retried with backoff)
    calls: r.CallsCounted | None = None  # the call account journalled when the run completed

    @property
    def shown_params(self) -> dict[str, Any]:
        """The parameters as every output shows them: a secret one masked, not even its digest."""
        return {name: MASKED if name in self.secret_params else value for name, value in self.params.items()}

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
        return self.status in (RunStatus.COMPLETED, RunStatus.ROLLED_BACK, RunStatus.ABANDONED)

    @property
    def acted(self) -> bool:
        """Whether any action step's target has started: from then on the run may have changed something.

        Gates act on nothing; a target skipped (excluded) never started. A
        rollback does not unset it: what was undone had been done.
        """
        return any(target.attempts > 0 for (step_id, _), target in self.targets.items()
                   if step_id not in self.gates)


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


def caught_up(state: RunState, events: Sequence[Event]) -> RunState:
    """``state`` brought up to date with ``events``, all of its run's: only those it has not folded are folded.

    A run's events only ever grow (appended, hash-chained), and the state counts
    those it has folded: a drive folds its run once and then follows it this way.
    """
    if state.events > len(events) or (events and events[0].run_id != state.run_id):
        raise ValueError(f"these are not the events state {state.run_id} was folded from")
    for event in events[state.events:]:
        apply(state, event)
    return state


def apply(state: RunState, event: Event) -> None:
    """Fold one more event into ``state`` (the engine keeps its state current this way)."""
    record = r.read(event)
    handler = _HANDLERS.get(type(record))
    if handler is not None:
        handler(state, record, event)
    state.updated_at = event.at
    state.events += 1


def _result_fields(target: TargetState, result: ActionResult | None) -> None:
    target.outcome = result.outcome.value if result is not None else None
    target.detail = (result.detail or None) if result is not None else None


def _run_created(state: RunState, p: r.RunCreated, e: Event) -> None:
    state.runbook_name, state.runbook_path = p.runbook.name, p.runbook.path
    state.runbook_sha256, state.runbook_text = p.runbook.sha256, p.runbook.text
    state.env, state.created_at, state.created_by = p.env, e.at, e.operator
    # created, not yet driven: nobody runs it until a `run` or `resume` starts a drive
    state.status, state.pause_reason = RunStatus.PAUSED, "not_started"
    state.pause_detail = f"created but not started: `cutover resume {e.run_id}` starts it"
    state.window_end, state.kind, state.params, state.label = p.window_end, p.kind, dict(p.params), p.label
    state.secret_params = tuple(p.secret_params or ())
    state.auto_approve, state.window_risk = p.auto_approve, p.window_risk
    state.wave_group, state.wave_samus = (p.wave.group, p.wave.samus) if p.wave else (None, ())
    state.claims = p.claims if p.claims is not None else r.Claims(state.wave_samus)  # older runs: their wave
    state.lab, state.allowed_signers_sha256 = p.lab, p.allowed_signers_sha256
    state.windows, state.window = tuple(p.windows or ()), p.window
    state.steps = list(p.steps)
    for info in state.steps:
        for key in info.keys():
            state.targets[(info.id, key)] = TargetState(info.id, key)
        if info.is_gate:
            state.gates[info.id] = GateState()


def _drive_started(state: RunState, p: r.DriveStarted, e: Event) -> None:
    # Whatever the previous driver left running, it never recorded the end of: in doubt.
    for target in state.targets.values():
        if target.status is TargetStatus.RUNNING:
            target.status = TargetStatus.IN_DOUBT
        if target.undo is UndoStatus.RUNNING:
            target.undo = UndoStatus.FAILED  # an interrupted undo is retried
    state.status, state.pause_reason, state.pause_detail, state.finished_at = RunStatus.RUNNING, None, None, None


def _step_started(state: RunState, p: r.StepStarted, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.status, target.started_at, target.finished_at = TargetStatus.RUNNING, e.at, None
    target.attempts = p.attempt
    target.action_done, target.failure_phase, target.outcome, target.detail, target.undo = False, None, None, None, None


def _action_done(state: RunState, p: r.ActionDone, e: Event) -> None:
    state.targets[(p.step, p.target)].action_done = True


def _step_succeeded(state: RunState, p: r.StepSucceeded, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    target.failure_phase = None
    _result_fields(target, p.result)


def _step_failed(state: RunState, p: r.StepFailed, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.status, target.finished_at, target.failure_phase = TargetStatus.FAILED, e.at, p.phase
    if p.phase == "verify":
        target.action_done = True
    _result_fields(target, p.result)


def _step_skipped(state: RunState, p: r.StepSkipped, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.status, target.finished_at, target.detail = TargetStatus.SKIPPED, e.at, p.reason


def _in_doubt(state: RunState, p: r.InDoubt, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.status, target.detail = TargetStatus.IN_DOUBT, p.reason


def _in_doubt_resolved(state: RunState, p: r.InDoubtResolved, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    if p.decision == "done":
        target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    else:  # rerun
        target.status, target.action_done = TargetStatus.PENDING, False
    target.detail = p.reason


def _rollback_point(state: RunState, p: r.RollbackPoint, e: Event) -> None:
    if p.step not in state.completed:
        state.completed.append(p.step)


def _gate_opened(state: RunState, p: r.GateOpened, e: Event) -> None:
    gate = state.gates[p.step]
    gate.opened_at = gate.opened_at or e.at
    target = state.targets[(p.step, None)]
    target.status, target.started_at = TargetStatus.RUNNING, target.started_at or e.at


def _gate_approved(state: RunState, p: r.GateApproved, e: Event) -> None:
    state.gates[p.step].approvals.append(GateApproval(p.approver, p.role, p.reason, p.auto, e.at, e.operator,
                                                            p.approver_id, p.signature is not None))


def _gate_passed(state: RunState, p: r.GatePassed, e: Event) -> None:
    state.gates[p.step].passed_at = e.at
    target = state.targets[(p.step, None)]
    target.status, target.finished_at, target.action_done = TargetStatus.SUCCEEDED, e.at, True
    if p.point_of_no_return:
        state.point_of_no_return_passed = p.step


def _run_paused(state: RunState, p: r.RunPaused, e: Event) -> None:
    state.status, state.pause_reason, state.pause_detail = RunStatus.PAUSED, p.reason, p.detail
    _nobody_drives(state)


def _run_failed(state: RunState, p: r.RunFailed, e: Event) -> None:
    state.status, state.pause_reason, state.pause_detail = RunStatus.FAILED, p.reason, p.detail
    _nobody_drives(state)


def _nobody_drives(state: RunState) -> None:
    """The run stopped: a gate waiting is pending; an action still marked running is in doubt."""
    for target in state.targets.values():
        if target.status is TargetStatus.RUNNING:
            target.status = TargetStatus.PENDING if target.step_id in state.gates else TargetStatus.IN_DOUBT


def _run_completed(state: RunState, p: r.RunCompleted, e: Event) -> None:
    state.status, state.finished_at = RunStatus.COMPLETED, e.at


def _rollback_requested(state: RunState, p: r.RollbackRequested, e: Event) -> None:
    state.mode, state.rollback_to, state.status = "rollback", p.to, RunStatus.RUNNING


def _undo_started(state: RunState, p: r.UndoStarted, e: Event) -> None:
    state.targets[(p.step, p.target)].undo = UndoStatus.RUNNING


def _undo_succeeded(state: RunState, p: r.UndoSucceeded, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.undo, target.status, target.finished_at = UndoStatus.DONE, TargetStatus.ROLLED_BACK, e.at


def _undo_failed(state: RunState, p: r.UndoFailed, e: Event) -> None:
    target = state.targets[(p.step, p.target)]
    target.undo = UndoStatus.FAILED
    _result_fields(target, p.result)


def _step_rolled_back(state: RunState, p: r.StepRolledBack, e: Event) -> None:
    if p.step in state.completed:
        state.completed.remove(p.step)
    if state.point_of_no_return_passed == p.step:
        state.point_of_no_return_passed = None
    if p.step in state.gates:  # a gate undone must be approved again
        state.gates[p.step] = GateState()
    for target in state.step_targets(p.step):
        if target.status is not TargetStatus.PENDING:
            target.status, target.undo = TargetStatus.ROLLED_BACK, UndoStatus.DONE


def _run_rolled_back(state: RunState, p: r.RunRolledBack, e: Event) -> None:
    state.status, state.mode, state.finished_at = RunStatus.ROLLED_BACK, "forward", e.at


def _run_abandoned(state: RunState, p: r.RunAbandoned, e: Event) -> None:
    state.status, state.finished_at = RunStatus.ABANDONED, e.at
    state.pause_reason, state.pause_detail = "abandoned", f"by {e.operator}: {p.reason}"


def _run_postponed(state: RunState, p: r.RunPostponed, e: Event) -> None:
    """The run waits for a later window: its end is that window's, and its open gates are decided again."""
    window = next((w for w in state.windows if w.number == p.window), None)
    state.window = p.window
    state.window_end = window.end if window is not None else state.window_end
    for step, gate in state.gates.items():
        if gate.passed_at is None:  # a new night, a new committee: what was said for this one no longer stands
            state.gates[step] = GateState()
    state.status, state.pause_reason = RunStatus.PAUSED, "postponed"
    where = window.describe() if window is not None else f"window {p.window}"
    state.pause_detail = f"postponed to {where} by {e.operator}: {p.reason}; `cutover resume {e.run_id}` then"


def _target_excluded(state: RunState, p: r.TargetExcluded, e: Event) -> None:
    state.excluded.add(p.target)


def _lease_changed(state: RunState, p: r.LeaseAcquired | r.LeaseTakenOver, e: Event) -> None:
    state.lease_holder = p.holder.to_payload()


def _notification_sent(state: RunState, p: r.NotificationSent, e: Event) -> None:
    state.notifications_sent += 1


def _notification_failed(state: RunState, p: r.NotificationFailed, e: Event) -> None:
    state.notifications_retrying += 1
    if p.final:
        state.notifications_undelivered.append(UndeliveredNotice(p.notice, p.target, p.error, p.samu, e.at))


def _criteria_measured(state: RunState, p: r.CriteriaMeasured, e: Event) -> None:
    gate = state.gates[p.step]
    gate.criteria.update({m.criterion: m for m in p.measurements})
    gate.measured_at, gate.measurements = e.at, gate.measurements + 1


def _criterion_overridden(state: RunState, p: r.CriterionOverridden, e: Event) -> None:
    state.gates[p.step].overrides[p.criterion] = CriterionOverride(
        p.criterion, p.value, p.reason, p.approver, p.role, e.at, e.operator, p.approver_id, p.signature is not None)


def _calls_counted(state: RunState, p: r.CallsCounted, e: Event) -> None:
    state.calls = p


def _lease_released(state: RunState, p: r.LeaseReleased, e: Event) -> None:
    state.lease_holder = None


# Journalled for the record (audit, evidence) and folded into nothing: a new kind is either here or handled below.
RECORD_ONLY: frozenset[type[r.Record]] = frozenset({r.WindowOverride, r.RunAnchored})

_HANDLERS: dict[type[r.Record], Callable[[RunState, Any, Event], None]] = {
    r.RunCreated: _run_created,
    r.DriveStarted: _drive_started,
    r.StepStarted: _step_started,
    r.ActionDone: _action_done,
    r.StepSucceeded: _step_succeeded,
    r.StepFailed: _step_failed,
    r.StepSkipped: _step_skipped,
    r.InDoubt: _in_doubt,
    r.InDoubtResolved: _in_doubt_resolved,
    r.RollbackPoint: _rollback_point,
    r.GateOpened: _gate_opened,
    r.GateApproved: _gate_approved,
    r.GatePassed: _gate_passed,
    r.RunPaused: _run_paused,
    r.RunFailed: _run_failed,
    r.RunCompleted: _run_completed,
    r.RollbackRequested: _rollback_requested,
    r.UndoStarted: _undo_started,
    r.UndoSucceeded: _undo_succeeded,
    r.UndoFailed: _undo_failed,
    r.StepRolledBack: _step_rolled_back,
    r.RunRolledBack: _run_rolled_back,
    r.RunAbandoned: _run_abandoned,
    r.RunPostponed: _run_postponed,
    r.TargetExcluded: _target_excluded,
    r.LeaseAcquired: _lease_changed,
    r.LeaseTakenOver: _lease_changed,
    r.LeaseReleased: _lease_released,
    r.NotificationSent: _notification_sent,
    r.NotificationFailed: _notification_failed,
    r.CriteriaMeasured: _criteria_measured,
    r.CriterionOverridden: _criterion_overridden,
    r.CallsCounted: _calls_counted,
}
