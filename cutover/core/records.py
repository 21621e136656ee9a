"""Every kind of event the journal holds, as a typed class with one canonical JSON form.

The journal stores ``(kind, payload)``; this module is the only place that
knows what a payload holds. Writers build a record (``StepStarted("migrate",
None, 1)``) and journal ``record.to_payload()`` under ``record.KIND``; readers
get records back with ``read(event)``. Nobody builds or reads a payload as a
loose dict elsewhere, so a typo is a type error, not a silent ``None``.

Compatibility: ``from_payload`` accepts every shape a journal written by an
earlier version holds (fields added since are optional, with defaults), so
old journals still fold. An unknown kind reads as ``Unrecognised`` and folds
to nothing.

Kinds::

    run_created        RunCreated(runbook, env, steps, window_end, kind, params, wave, programme_override, label,
                                  claims?, lab, allowed_signers_sha256, secret_params?, auto_approve?, window_risk?)
    drive_started      DriveStarted(command)
    step_started       StepStarted(step, target, attempt)
    action_done        ActionDone(step, target, result)
    step_succeeded     StepSucceeded(step, target, result?, verify?, resolution?)
    step_failed        StepFailed(step, target, phase, result, verify?)
    step_skipped       StepSkipped(step, target, reason)
    in_doubt           InDoubt(step, target, reason)
    in_doubt_resolved  InDoubtResolved(step, target, decision, reason)
    rollback_point     RollbackPoint(step)
    gate_opened        GateOpened(step)
    gate_approved      GateApproved(step, approver, role, reason, auto)
    gate_passed        GatePassed(step, point_of_no_return)
    run_paused         RunPaused(reason, detail, step?)
    run_failed         RunFailed(detail, step?, reason)
    run_completed      RunCompleted()
    rollback_requested RollbackRequested(to)
    undo_started       UndoStarted(step, target)
    undo_succeeded     UndoSucceeded(step, target, result)
    undo_failed        UndoFailed(step, target, result)
    step_rolled_back   StepRolledBack(step, detail?)
    run_rolled_back    RunRolledBack(to)
    run_abandoned      RunAbandoned(reason)
    run_postponed      RunPostponed(window, reason, previous?)
    target_excluded    TargetExcluded(target, reason)
    window_override    WindowOverride(step, reason)
    lease_acquired     LeaseAcquired(holder, epoch)
    lease_taken_over   LeaseTakenOver(holder, previous_holder, epoch, reason)
    lease_released     LeaseReleased(holder)
    notification_sent  NotificationSent(notice, target, attempt, samu?, step?)
    notification_failed NotificationFailed(notice, target, attempt, error, final, samu?, step?)
    run_anchored       RunAnchored(statement, signature, key)
    criteria_measured  CriteriaMeasured(step, measurements, occasion)
    criterion_overridden CriterionOverridden(step, criterion, value, reason, approver, role, ...)
    calls_counted      CallsCounted(placed, lost, records_missing, records_duplicated, source)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from cutover.core.actions import ActionResult, Target
from cutover.core.events import Event, LeaseHolder

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    """Base of every journal record: ``KIND`` names it in the journal."""

    KIND: ClassVar[str] = ""

    def to_payload(self) -> dict[str, Any]:
        """The canonical JSON form: fields in declaration order; optional ones left out while unset."""
        payload: dict[str, Any] = {}
        for name, optional, _ in _layout(type(self)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            payload[name] = _encode(value)
        return payload

    @classmethod
    def from_payload(cls: type[R], data: Mapping[str, Any]) -> R:
        return cls(**{name: decode(data[name]) for name, _, decode in _layout(cls) if name in data})


_LAYOUTS: dict[type, tuple[tuple[str, bool, Any], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, bool, Any], ...]:
    """Per record class, once: each field's name, whether it is left out while None, and its decoder.

    Folding reads every event of a run: ``dataclasses.fields`` per event made it 5x slower.
    """
    found = _LAYOUTS.get(cls)
    if found is None:
        found = tuple((spec.name, spec.default is None and spec.name not in _ALWAYS,
                       _DECODERS.get(spec.name, _plain)) for spec in fields(cls))
        _LAYOUTS[cls] = found
    return found


# fields kept in the payload even when None: a fanned-out step's target is None on the controller
_ALWAYS = frozenset({"target", "to", "window_end"})


def _encode(value: Any) -> Any:
    if isinstance(value, (LeaseHolder, ActionResult, StepInfo, RunbookRef, WaveRef, ProgrammeOverride, Claims, WindowInfo,
                          MeasuredCriterion)):
        return value.to_payload()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _plain(value: Any) -> Any:
    return value


# ---------------------------------------------------------------------- nested values


@dataclass(frozen=True)
class RunbookRef:
    """The runbook a run was created from, kept whole so resume and rollback use exactly it."""

    name: str
    path: str = ""
    sha256: str = ""
    text: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "text": self.text}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> RunbookRef:
        return cls(str(data["name"]), str(data.get("path", "")), str(data.get("sha256", "")), str(data.get("text", "")))


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
    serves: str | None = None  # legacy | cloud: the platform the step points its SAMUs at

    @property
    def is_gate(self) -> bool:
        return self.kind == "gate"

    def keys(self) -> list[Target]:
        return list(self.targets) if self.targets is not None else [None]

    def to_payload(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title,
                "targets": list(self.targets) if self.targets is not None else None,
                "idempotent": self.idempotent, "has_verify": self.has_verify, "has_rollback": self.has_rollback,
                "point_of_no_return": self.point_of_no_return, "expected_duration": self.expected_duration,
                "rollback_expected_duration": self.rollback_expected_duration, "sets_mode": self.sets_mode,
                **({"serves": self.serves} if self.serves else {})}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> StepInfo:
        targets = data.get("targets")
        return cls(
            id=str(data["id"]), kind=str(data["kind"]), title=str(data.get("title") or data["id"]),
            targets=tuple(targets) if targets is not None else None,
            idempotent=bool(data.get("idempotent")), has_verify=bool(data.get("has_verify")),
            has_rollback=bool(data.get("has_rollback")), point_of_no_return=bool(data.get("point_of_no_return")),
            expected_duration=data.get("expected_duration"),
            rollback_expected_duration=data.get("rollback_expected_duration"), sets_mode=data.get("sets_mode"),
            serves=data.get("serves"))


@dataclass(frozen=True)
class WaveRef:
    group: str
    samus: tuple[str, ...]

    def to_payload(self) -> dict[str, Any]:
        return {"group": self.group, "samus": list(self.samus)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> WaveRef:
        return cls(str(data["group"]), tuple(data.get("samus") or ()))


@dataclass(frozen=True)
class Claims:
    """What a run claims at creation, so no other unfinished run acts on it (``cutover.core.claims``).

    ``samus``: the SAMU hosts its blast radius can reach (site or partition);
    ``partitions``: ``platform/host`` for each platform partition it can act on.
    """

    samus: tuple[str, ...] = ()
    partitions: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {"samus": list(self.samus), "partitions": list(self.partitions)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Claims:
        return cls(tuple(data.get("samus") or ()), tuple(data.get("partitions") or ()))


@dataclass(frozen=True)
class ProgrammeOverride:
    reason: str
    samus: tuple[str, ...]

    def to_payload(self) -> dict[str, Any]:
        return {"reason": self.reason, "samus": list(self.samus)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> ProgrammeOverride:
        return cls(str(data["reason"]), tuple(data.get("samus") or ()))


@dataclass(frozen=True)
class WindowInfo:
    """One candidate cutover window of a runbook: a night, numbered from 1 in the runbook's order.

    Times are ISO 8601 with their offset. ``latest_pnr`` is the last moment the
    point of no return may be passed in this window (None: only the rollback
    budget bounds it).
    """

    number: int
    start: str
    end: str
    latest_pnr: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"number": self.number, "start": self.start, "end": self.end, "latest_pnr": self.latest_pnr}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> WindowInfo:
        return cls(int(data["number"]), str(data["start"]), str(data["end"]), data.get("latest_pnr"))

    def describe(self) -> str:
        """``window 2 (2026-12-05T22:00:00+01:00 to 2026-12-06T06:00:00+01:00)``, for hints and lines."""
        return f"window {self.number} ({self.start} to {self.end})"


@dataclass(frozen=True)
class MeasuredCriterion:
    """One criterion of a gate as measured: the row of the table people decide on."""

    criterion: str
    title: str
    severity: str  # blocking | advisory
    value: Any  # JSON: a number, a text, a boolean; None when it could not be measured
    expected: str  # what it must show, for people: "≤ 2", "≥ 3", "= green"
    passed: bool
    detail: str = ""
    probe: str = ""
    shown: str | None = None  # the value as people read it (a duration), when not the value itself

    def shown_value(self) -> str:
        if self.shown is not None:
            return self.shown
        return "not measured" if self.value is None else str(self.value).lower() if isinstance(self.value, bool) \
            else str(self.value)

    def verdict(self) -> str:
        """pass, FAIL (blocking) or warn (advisory): what the table says."""
        return "pass" if self.passed else "FAIL" if self.severity == "blocking" else "warn"

    def to_payload(self) -> dict[str, Any]:
        payload = {"criterion": self.criterion, "title": self.title, "severity": self.severity, "value": self.value,
                   "expected": self.expected, "passed": self.passed, "detail": self.detail, "probe": self.probe}
        return payload if self.shown is None else {**payload, "shown": self.shown}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> MeasuredCriterion:
        return cls(str(data["criterion"]), str(data.get("title", data["criterion"])),
                   str(data.get("severity", "blocking")), data.get("value"), str(data.get("expected", "")),
                   bool(data.get("passed")), str(data.get("detail", "")), str(data.get("probe", "")),
                   data.get("shown"))


def _optional(decode: Any) -> Any:
    return lambda value: None if value is None else decode(value)


_DECODERS: dict[str, Any] = {
    "runbook": RunbookRef.from_payload,
    "steps": lambda value: tuple(StepInfo.from_payload(s) for s in value),
    "wave": _optional(WaveRef.from_payload),
    "programme_override": _optional(ProgrammeOverride.from_payload),
    "claims": _optional(Claims.from_payload),
    "windows": _optional(lambda value: tuple(WindowInfo.from_payload(w) for w in value)),
    "result": _optional(ActionResult.from_payload),
    "verify": _optional(ActionResult.from_payload),
    "holder": LeaseHolder.from_payload,
    "previous_holder": LeaseHolder.from_payload,
    "params": lambda value: dict(value or {}),
    "measurements": lambda value: tuple(MeasuredCriterion.from_payload(m) for m in value or ()),
}


# ---------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunCreated(Record):
    KIND: ClassVar[str] = "run_created"
    runbook: RunbookRef
    env: str
    steps: tuple[StepInfo, ...]
    window_end: str | None = None
    kind: str = "rehearsal"  # live (the production inventory) or rehearsal
    params: Mapping[str, Any] = field(default_factory=dict)
    wave: WaveRef | None = None
    programme_override: ProgrammeOverride | None = None
    label: str | None = None  # e.g. "répétition 3": how people name a rehearsal
    # parameters declared `secret: true`: journalled in `params` as a digest, given again at each drive
    secret_params: tuple[str, ...] | None = None
    claims: Claims | None = None  # absent in runs created before claims: their wave stands for them
    # Anchors fixed at creation, whatever project folder later commands run from: whether the
    # run is a lab run (unsigned and auto approvals count only there) and the sha256 of the
    # environment's allowed_signers (an approval is checked only against that file). A run
    # journalled before they existed reads as not a lab, with no signers anchored.
    lab: bool = False
    allowed_signers_sha256: str | None = None
    auto_approve: str | None = None  # a lab run's `--auto-approve NAME`: `resume` approves as NAME too
    window_risk: str | None = None  # `--accept-window-risk REASON`, with the risk it accepted
    # the runbook's candidate windows (``windows:``), frozen at creation, and the one the run was created in
    windows: tuple[WindowInfo, ...] | None = None
    window: int | None = None


@dataclass(frozen=True)
class DriveStarted(Record):
    KIND: ClassVar[str] = "drive_started"
    command: str = "run"  # run | resume | rollback


@dataclass(frozen=True)
class RunPaused(Record):
    KIND: ClassVar[str] = "run_paused"
    reason: str
    detail: str = ""
    step: str | None = None


@dataclass(frozen=True)
class RunFailed(Record):
    KIND: ClassVar[str] = "run_failed"
    detail: str
    step: str | None = None
    reason: str = "failed"  # or internal_error


@dataclass(frozen=True)
class RunCompleted(Record):
    KIND: ClassVar[str] = "run_completed"


@dataclass(frozen=True)
class TargetExcluded(Record):
    KIND: ClassVar[str] = "target_excluded"
    target: str
    reason: str = ""


@dataclass(frozen=True)
class WindowOverride(Record):
    KIND: ClassVar[str] = "window_override"
    step: str
    reason: str


# ---------------------------------------------------------------------- steps and targets


@dataclass(frozen=True)
class StepStarted(Record):
    KIND: ClassVar[str] = "step_started"
    step: str
    target: Target
    attempt: int = 1


@dataclass(frozen=True)
class ActionDone(Record):
    """The main action succeeded; its verification is still to come."""

    KIND: ClassVar[str] = "action_done"
    step: str
    target: Target
    result: ActionResult | None = None


@dataclass(frozen=True)
class StepSucceeded(Record):
    KIND: ClassVar[str] = "step_succeeded"
    step: str
    target: Target
    result: ActionResult | None = None
    verify: ActionResult | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class StepFailed(Record):
    KIND: ClassVar[str] = "step_failed"
    step: str
    target: Target
    phase: str  # action | verify
    result: ActionResult | None = None
    verify: ActionResult | None = None


@dataclass(frozen=True)
class StepSkipped(Record):
    KIND: ClassVar[str] = "step_skipped"
    step: str
    target: Target
    reason: str = ""


@dataclass(frozen=True)
class InDoubt(Record):
    """Started, not recorded finished, and nothing could tell whether it took effect."""

    KIND: ClassVar[str] = "in_doubt"
    step: str
    target: Target
    reason: str = ""


@dataclass(frozen=True)
class InDoubtResolved(Record):
    KIND: ClassVar[str] = "in_doubt_resolved"
    step: str
    target: Target
    decision: str  # done | rerun
    reason: str = ""


@dataclass(frozen=True)
class RollbackPoint(Record):
    KIND: ClassVar[str] = "rollback_point"
    step: str


# ---------------------------------------------------------------------- gates


@dataclass(frozen=True)
class GateOpened(Record):
    KIND: ClassVar[str] = "gate_opened"
    step: str


@dataclass(frozen=True)
class GateApproved(Record):
    KIND: ClassVar[str] = "gate_approved"
    step: str
    approver: str
    role: str = ""
    reason: str = ""
    auto: bool = False
    # A signed approval (cutover.app.approvals): the approver's id, the statement signed, the
    # SSH signature and the allowed-signers lines it was verified against.
    approver_id: str | None = None
    statement: str | None = None
    signature: str | None = None
    signers: str | None = None


@dataclass(frozen=True)
class GatePassed(Record):
    KIND: ClassVar[str] = "gate_passed"
    step: str
    point_of_no_return: bool = False


# ---------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class RollbackRequested(Record):
    KIND: ClassVar[str] = "rollback_requested"
    to: str | None = None


@dataclass(frozen=True)
class UndoStarted(Record):
    KIND: ClassVar[str] = "undo_started"
    step: str
    target: Target


@dataclass(frozen=True)
class UndoSucceeded(Record):
    KIND: ClassVar[str] = "undo_succeeded"
    step: str
    target: Target
    result: ActionResult | None = None


@dataclass(frozen=True)
class UndoFailed(Record):
    KIND: ClassVar[str] = "undo_failed"
    step: str
    target: Target
    result: ActionResult | None = None


@dataclass(frozen=True)
class StepRolledBack(Record):
    KIND: ClassVar[str] = "step_rolled_back"
    step: str
    detail: str | None = None


@dataclass(frozen=True)
class RunRolledBack(Record):
    KIND: ClassVar[str] = "run_rolled_back"
    to: str | None = None


@dataclass(frozen=True)
class RunAbandoned(Record):
    """A run that acted on nothing, ended by an operator: it frees its claims and counts for nothing."""

    KIND: ClassVar[str] = "run_abandoned"
    reason: str


@dataclass(frozen=True)
class RunPostponed(Record):
    """The run moves to a later candidate window of its runbook (a no-go, a forecast that misses the window)."""

    KIND: ClassVar[str] = "run_postponed"
    window: int
    reason: str
    previous: int | None = None


# ---------------------------------------------------------------------- leases


@dataclass(frozen=True)
class LeaseAcquired(Record):
    KIND: ClassVar[str] = "lease_acquired"
    holder: LeaseHolder
    epoch: int = 0


@dataclass(frozen=True)
class LeaseTakenOver(Record):
    KIND: ClassVar[str] = "lease_taken_over"
    holder: LeaseHolder
    previous_holder: LeaseHolder
    epoch: int = 0
    reason: str = ""


@dataclass(frozen=True)
class LeaseReleased(Record):
    KIND: ClassVar[str] = "lease_released"
    holder: LeaseHolder


@dataclass(frozen=True)
class Unrecognised(Record):
    """A kind this version does not know (written by a newer one): kept, folded to nothing."""

    KIND: ClassVar[str] = ""
    kind: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- notifications
# ``target`` is the Apprise URL redacted to its scheme and host (URLs carry credentials) plus
# a short digest of the whole URL, so two targets on one host stay apart.


@dataclass(frozen=True)
class NotificationSent(Record):
    KIND: ClassVar[str] = "notification_sent"
    notice: str
    target: str
    attempt: int = 1
    samu: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class NotificationFailed(Record):
    KIND: ClassVar[str] = "notification_failed"
    notice: str
    target: str
    attempt: int
    error: str
    final: bool = False  # no more attempts: it was never delivered
    samu: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class RunAnchored(Record):
    """The run's newest event (seq and hash) signed with the controller's SSH key when a drive ended.

    The statement is canonical JSON (cutover.app.anchors); ``key`` is the signing key's fingerprint, for
    people: verification uses an allowed-signers file, never anything stored here.
    """

    KIND: ClassVar[str] = "run_anchored"
    statement: str
    signature: str
    key: str = ""


# ---------------------------------------------------------------------- evidence at the gates


@dataclass(frozen=True)
class CriteriaMeasured(Record):
    """A gate's criteria measured (``cutover.core.criteria``): when it opened, when a drive reached it
    again (``gate_reopened``), or re-measured at the point of no return (``before_pnr``)."""

    KIND: ClassVar[str] = "criteria_measured"
    step: str
    measurements: tuple[MeasuredCriterion, ...] = ()
    occasion: str = "gate_opened"


@dataclass(frozen=True)
class CriterionOverridden(Record):
    """A failed blocking criterion accepted by an approver of a required role, with a reason.

    Signed like an approval outside a lab: the statement names the criterion and the value accepted.
    """

    KIND: ClassVar[str] = "criterion_overridden"
    step: str
    criterion: str
    value: Any
    reason: str
    approver: str
    role: str = ""
    approver_id: str | None = None
    statement: str | None = None
    signature: str | None = None
    signers: str | None = None


@dataclass(frozen=True)
class CallsCounted(Record):
    """The call account when a run completed (the lab's ledger): the evidence a rehearsal lost nothing."""

    KIND: ClassVar[str] = "calls_counted"
    placed: int
    lost: int
    records_missing: int = 0
    records_duplicated: int = 0
    source: str = ""

    @property
    def losses(self) -> int:
        return self.lost + self.records_missing + self.records_duplicated


KINDS: dict[str, type[Record]] = {cls.KIND: cls for cls in (
    RunCreated, DriveStarted, RunPaused, RunFailed, RunCompleted, TargetExcluded, WindowOverride,
    StepStarted, ActionDone, StepSucceeded, StepFailed, StepSkipped, InDoubt, InDoubtResolved, RollbackPoint,
    GateOpened, GateApproved, GatePassed, RollbackRequested, UndoStarted, UndoSucceeded, UndoFailed,
    StepRolledBack, RunRolledBack, RunAbandoned, RunPostponed, LeaseAcquired, LeaseTakenOver, LeaseReleased, NotificationSent,
    NotificationFailed, RunAnchored, CriteriaMeasured, CriterionOverridden, CallsCounted)}


def read(event: Event) -> Record:
    """The typed record of a stored event."""
    cls = KINDS.get(event.kind)
    if cls is None:
        return Unrecognised(kind=event.kind, payload=dict(event.payload))
    return cls.from_payload(event.payload)
