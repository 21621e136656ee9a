"""Replay a recorded night in simulated time: the same engine, fed from the journal, with what-if changes.

The journal is the source of truth; replaying it is a pure function of it.
``replay_night`` drives the core ``Engine`` again, drive by drive as the
operators drove it, against:

- a simulated clock (``SimClock``) that only moves when the replay says so;
- a journal of its own (``SimJournal``), stamped by that clock;
- a simulated executor (``ReplayExecutor``) that runs nothing: each action,
  verification and rollback returns the outcome the journal recorded for it,
  after the duration the journal measured (a batch of ``concurrency``
  targets as slow as its slowest), times the factor a what-if asks for; a
  what-if ``fail`` makes the action fail instead;
- the operators' words as recorded: each gate's approvals after the wait
  they took, a no-go where they said no, decisions and exclusions between
  drives, ``--until`` and window overrides.

Never a real executor, never the real journal. Without changes it gives
back the recorded night: every step and gate in the recorded order, and
every target's own sequence of events; only the interleaving of targets
running concurrently (which no night promises) may differ. With changes it
shows what the room would have seen: when the board would have shown the
point-of-no-return deadline at risk, when the window would have been
missed, what each gate would have shown when it opened, against what
happened. A failure before the PNR takes the rollback path.

What a replay cannot reproduce it says (``notes``): a drive stopped by
Ctrl-C stops after its last rollback point, one cut short by a killed
controller is driven on; durations nobody measured (a rollback that never
ran) come from the runbook's expected durations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cutover.core import records as r
from cutover.core.actions import ActionRequest, ActionResult, Outcome, Phase, Target
from cutover.core.criteria import Criterion
from cutover.core.engine import Approval, DriveOptions, Engine
from cutover.core.events import GENESIS, Event, event_hash, parse_time
from cutover.core.forecast import backup_mode_seconds
from cutover.core.records import StepInfo
from cutover.core.state import RunState, RunStatus, apply, fold
from cutover.core.steps import Action, ActionStep, GateStep, RunbookSpec
from cutover.core.whatif import Change, check_changes, step_factor
from cutover.core.windows import window_of

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

# Events that are not the night itself: who held the lease, who was told, the signed head.
NOT_THE_NIGHT = frozenset({r.LeaseAcquired.KIND, r.LeaseTakenOver.KIND, r.LeaseReleased.KIND,
                           r.NotificationSent.KIND, r.NotificationFailed.KIND, r.RunAnchored.KIND})
# Events that end a drive.
DRIVE_ENDS = frozenset({r.RunPaused.KIND, r.RunFailed.KIND, r.RunCompleted.KIND, r.RunRolledBack.KIND})
# Per-target events: their order is the target's own; targets running side by side may interleave.
PER_TARGET = frozenset({r.StepStarted.KIND, r.ActionDone.KIND, r.StepSucceeded.KIND, r.StepFailed.KIND,
                        r.StepSkipped.KIND, r.InDoubt.KIND, r.UndoStarted.KIND, r.UndoSucceeded.KIND,
                        r.UndoFailed.KIND})
ENGINE_KINDS = ("command", "ssh", "playbook")
TICK = timedelta(minutes=1)  # how finely the replay watches the board's clocks between two events


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class SimClock:
    """Simulated time: it moves only when told to (never backwards)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=max(0.0, seconds))

    def move_to(self, moment: datetime) -> None:
        with self._lock:
            self.now = max(self.now, moment)


class SimJournal:
    """The replay's own journal: hash-chained like any other, stamped by the simulated clock."""

    def __init__(self, clock: SimClock, operator: str = "replay") -> None:
        self.clock = clock
        self.operator = operator
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self.on_append: Callable[[Event], None] | None = None

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any], *, operator: str | None = None) -> Event:
        with self._lock:
            seq = len(self._events) + 1
            prev = self._events[-1].hash if self._events else GENESIS
            at, who = iso(self.clock()), operator or self.operator
            event = Event(seq, run_id, kind, at, who, dict(payload), prev,
                          event_hash(seq, run_id, kind, at, who, payload, prev))
            self._events.append(event)
        if self.on_append is not None:
            self.on_append(event)
        return event

    def events(self, run_id: str | None = None) -> list[Event]:
        return [e for e in self._events if run_id is None or e.run_id == run_id]

    def runs(self) -> list[str]:
        return list(dict.fromkeys(e.run_id for e in self._events))


# ---------------------------------------------------------------------- what the journal recorded


@dataclass
class Recorded:
    """One recorded action, verification or rollback of one target: its result and how long it took."""

    result: ActionResult
    seconds: float


@dataclass
class Drive:
    """One recorded drive (run, resume, rollback) and what the operators did just before it."""

    command: str
    started: datetime
    events: list[Event] = field(default_factory=list)
    before: list[Event] = field(default_factory=list)  # approvals, decisions, exclusions between drives

    def ending(self) -> Event | None:
        return next((e for e in reversed(self.events) if e.kind in DRIVE_ENDS), None)

    def records(self, cls: type[r.R]) -> list[r.R]:
        return [rec for e in self.events if isinstance(rec := r.read(e), cls)]


def recorded_work(events: Sequence[Event]) -> dict[tuple[str, Phase, Target], list[Recorded]]:
    """Per step x phase x target, in order: each outcome the journal recorded and its measured duration."""
    work: dict[tuple[str, Phase, Target], list[Recorded]] = {}
    since: dict[tuple[str, Phase, Target], datetime] = {}
    for event in events:
        record, at = r.read(event), parse_time(event.at)
        if isinstance(record, r.StepSucceeded) and (record.step, Phase.VERIFY, record.target) in since:
            record = r.StepSucceeded(record.step, record.target, verify=record.verify or ActionResult(Outcome.OK))
        for key, result in _work_of(record):
            if result is None:  # a start
                since[key] = at
            elif key in since:
                work.setdefault(key, []).append(Recorded(result, (at - since.pop(key)).total_seconds()))
        if isinstance(record, r.ActionDone):  # the verification starts as the action is done
            since[(record.step, Phase.VERIFY, record.target)] = at
    return work


def _work_of(record: r.Record) -> list[tuple[tuple[str, Phase, Target], ActionResult | None]]:
    ok = ActionResult(Outcome.OK)
    if isinstance(record, r.StepStarted):
        return [((record.step, Phase.ACTION, record.target), None)]
    if isinstance(record, r.ActionDone):
        return [((record.step, Phase.ACTION, record.target), record.result or ok)]
    if isinstance(record, r.StepSucceeded):
        if record.verify is not None:
            return [((record.step, Phase.VERIFY, record.target), record.verify)]
        return [((record.step, Phase.ACTION, record.target), record.result or ok)]
    if isinstance(record, r.StepFailed):
        phase = Phase.VERIFY if record.phase == "verify" else Phase.ACTION
        return [((record.step, phase, record.target), record.verify or record.result or ActionResult(Outcome.FAILED))]
    if isinstance(record, r.UndoStarted):
        return [((record.step, Phase.ROLLBACK, record.target), None)]
    if isinstance(record, (r.UndoSucceeded, r.UndoFailed)):
        failed = ActionResult(Outcome.FAILED)
        return [((record.step, Phase.ROLLBACK, record.target),
                 record.result or (ok if isinstance(record, r.UndoSucceeded) else failed))]
    return []


def recorded_drives(events: Sequence[Event]) -> list[Drive]:
    """The recorded night as drives: each with its events and the operators' words just before it."""
    drives: list[Drive] = []
    between: list[Event] = []
    driving: Drive | None = None  # the drive under way (None once it ended)
    for event in events[1:]:
        if event.kind in NOT_THE_NIGHT:
            continue
        record = r.read(event)
        if isinstance(record, r.DriveStarted):
            driving = Drive(record.command, parse_time(event.at), [event], between)
            drives.append(driving)
            between = []
        elif driving is not None:
            driving.events.append(event)
            driving = None if event.kind in DRIVE_ENDS else driving
        else:
            between.append(event)
    return drives


# ---------------------------------------------------------------------- the simulated executor


class ReplayExecutor:
    """Runs nothing: returns what the journal recorded, after the time it took, with the changes asked for."""

    batched = True  # one call per step and phase: the replay, not threads, decides what runs side by side

    def __init__(self, work: Mapping[tuple[str, Phase, Target], list[Recorded]], clock: SimClock,
                 steps: Sequence[StepInfo], changes: Sequence[Change] = ()) -> None:
        self.work = {key: list(queue) for key, queue in work.items()}
        self.clock = clock
        self.steps = {info.id: info for info in steps}
        self.changes = changes
        self.failed: set[tuple[str, Target]] = set()
        self.estimated: set[str] = set()  # steps whose duration nobody measured: the runbook's expected one

    def ready(self, uses: Sequence[tuple[ActionStep, Action]]) -> None:
        return None  # nothing to check: it runs nothing

    def close(self) -> None:
        return None

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        results: dict[Target, ActionResult] = {}
        seconds: list[float] = []
        for target in request.targets:
            result, took = self._one(request.step_id, request.phase, target)
            results[target] = result
            seconds.append(took * step_factor(self.changes, request.step_id, target))
        self.clock.advance(batch_time(seconds, request.concurrency))
        return results

    def _one(self, step: str, phase: Phase, target: Target) -> tuple[ActionResult, float]:
        queue = self.work.get((step, phase, target))
        recorded = queue.pop(0) if queue else None
        if recorded is None:
            self.estimated.add(step)
            recorded = Recorded(ActionResult(Outcome.OK, detail="replayed: nothing recorded"),
                                self._expected(step, phase))
        if phase is Phase.ACTION and self._fails(step, target):
            self.failed.add((step, target))
            return ActionResult(Outcome.FAILED, detail="what-if: fails", exit_status=1), recorded.seconds
        return recorded.result, recorded.seconds

    def _fails(self, step: str, target: Target) -> bool:
        asked = any(c.fails and c.step == step and c.target in (None, target) for c in self.changes)
        return asked and (step, target) not in self.failed  # the first attempt fails

    def _expected(self, step: str, phase: Phase) -> float:
        info = self.steps.get(step)
        if info is None:
            return 0.0
        if phase is Phase.ROLLBACK:
            return info.rollback_expected_duration or info.expected_duration or 0.0
        if phase is Phase.ACTION:
            return info.expected_duration or 0.0
        return 0.0  # a verification nobody measured: counted in the step's expected duration


def batch_time(seconds: Sequence[float], concurrency: int) -> float:
    """Targets in plan order, ``concurrency`` at a time, each batch as slow as its slowest (as the forecast)."""
    size = max(1, concurrency)
    return sum(max(seconds[i:i + size]) for i in range(0, len(seconds), size)) if seconds else 0.0


# ---------------------------------------------------------------------- what the room would have seen


@dataclass(frozen=True)
class Durations:
    """What the board's clocks count on for each step: measured P90s where rehearsals measured it."""

    step: Mapping[str, float] = field(default_factory=dict)
    rollback: Mapping[str, float] = field(default_factory=dict)

    def of(self, info: StepInfo) -> float:
        return self.step.get(info.id, info.expected_duration or 0.0)

    def undo(self, info: StepInfo) -> float:
        return self.rollback.get(info.id, info.rollback_expected_duration or info.expected_duration or 0.0)


@dataclass
class Watch:
    """Folds a night event by event and notes the first moment each alarm would have shown."""

    durations: Durations
    state: RunState | None = None
    pnr_at_risk: str | None = None  # the PNR could not be reached before its deadline
    window_at_risk: str | None = None  # the predicted end is past the window's end
    window_missed: str | None = None  # the window closed with the night not over
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps_done: dict[str, str] = field(default_factory=dict)  # step -> when it became a rollback point

    def see(self, event: Event) -> None:
        now = parse_time(event.at)
        if self.state is None:
            self.state = RunState(run_id=event.run_id)
        else:
            self._between(self.state, now)
        apply(self.state, event)
        record = r.read(event)
        if isinstance(record, r.RollbackPoint):
            self.steps_done.setdefault(record.step, event.at)
        self._alarms(self.state, now)
        self._gate(self.state, record, event.at, now)

    def _between(self, state: RunState, until: datetime) -> None:
        """The board keeps counting between two events (a long step writes nothing): look every TICK."""
        if state.window_end is None or state.is_finished() or state.pause_reason in ("postponed", "not_started"):
            return  # nothing of this night is under way yet
        moment = parse_time(state.updated_at) + TICK
        while moment < until and self.window_missed is None:  # once missed, nothing new to say
            self._alarms(state, moment)
            moment += TICK

    def _alarms(self, state: RunState, now: datetime) -> None:
        if state.is_finished() or state.window_end is None:
            return
        end = parse_time(state.window_end)
        if self.window_missed is None and now > end:
            self.window_missed = iso(end)  # the window closed with the night not over
        predicted, reach, deadline = outlook(state, now, self.durations)
        if self.window_at_risk is None and predicted > end:
            self.window_at_risk = iso(now)
        if self.pnr_at_risk is None and reach is not None and deadline is not None and reach > deadline:
            self.pnr_at_risk = iso(now)

    def _gate(self, state: RunState, record: r.Record, at: str, now: datetime) -> None:
        if isinstance(record, r.GateOpened):
            predicted, reach, deadline = outlook(state, now, self.durations)
            self.gates[record.step] = {
                "opened_at": at, "passed_at": None, "no_go_at": None, "approvers": [],
                "predicted_end": iso(predicted), "window_end": state.window_end,
                "pnr_margin_s": round((deadline - reach).total_seconds(), 1) if reach and deadline else None}
        elif isinstance(record, r.GateApproved) and record.step in self.gates:
            self.gates[record.step]["approvers"].append(record.approver)
        elif isinstance(record, r.GatePassed) and record.step in self.gates:
            self.gates[record.step]["passed_at"] = at
        elif isinstance(record, r.RunPaused) and record.reason == "gate" and record.step in self.gates:
            self.gates[record.step]["no_go_at"] = self.gates[record.step]["no_go_at"] or at


def outlook(state: RunState, now: datetime, durations: Durations) -> tuple[datetime, datetime | None, datetime | None]:
    """What the board's clocks say at ``now``: the predicted end, when the PNR is reached, and its deadline.

    The remaining steps count their measured P90 (else expected) durations; the deadline is the
    window's end less rolling back everything before the PNR, never later than the window's latest PNR.
    """
    def left(info: StepInfo) -> float:  # a step under way counts what is left of it, never less than nothing
        started = [parse_time(t.started_at) for t in state.step_targets(info.id) if t.started_at]
        spent = (now - min(started)).total_seconds() if started else 0.0
        return max(0.0, durations.of(info) - spent)

    remaining = [s for s in state.steps if s.id not in state.completed]
    predicted = now + timedelta(seconds=sum(left(s) for s in remaining))
    pnr = next((i for i, s in enumerate(state.steps) if s.point_of_no_return), None)
    if pnr is None or state.point_of_no_return_passed or state.window_end is None:
        return predicted, None, None
    reach = now + timedelta(seconds=sum(left(s) for s in state.steps[: pnr + 1] if s.id not in state.completed))
    undo = sum(durations.undo(s) for s in state.steps[:pnr] if not s.is_gate and s.has_rollback)
    deadline = parse_time(state.window_end) - timedelta(seconds=undo)
    window = window_of(state)
    if window is not None and window.latest_pnr:
        deadline = min(deadline, parse_time(window.latest_pnr))
    return predicted, reach, deadline


def watch(events: Iterable[Event], durations: Durations) -> Watch:
    seen = Watch(durations)
    for event in events:
        if event.kind not in NOT_THE_NIGHT:
            seen.see(event)
    return seen


# ---------------------------------------------------------------------- the replay


@dataclass
class Replay:
    events: list[Event]
    state: RunState
    watched: Watch
    diverged: str | None = None
    notes: list[str] = field(default_factory=list)


def replay_night(recorded: Sequence[Event], spec: RunbookSpec, *, changes: Sequence[Change] = (),
                 durations: Durations | None = None) -> Replay:
    """The recorded run's night again, in simulated time, with ``changes``; pure (nothing real runs)."""
    created = recorded[0]
    state = fold(recorded)
    check_changes(changes, state.steps)
    clock = SimClock(parse_time(created.at))
    journal = SimJournal(clock, created.operator)
    seen = Watch(durations or Durations())
    journal.on_append = seen.see
    journal.append(created.run_id, created.kind, created.payload, operator=created.operator)
    executor = ReplayExecutor(recorded_work(recorded), clock, state.steps, changes)
    replay = Replay([], state, seen)
    last_recorded = parse_time(created.at)
    for drive in recorded_drives(recorded):
        _between(journal, clock, created.run_id, drive, last_recorded)
        _drive(journal, clock, created.run_id, spec, executor, drive, durations or Durations())
        ending = drive.ending()
        replay.diverged = _divergence(journal.events(), ending)
        if ending is not None:
            last_recorded = parse_time(ending.at)
        if replay.diverged:
            _after_divergence(journal, clock, created.run_id, spec, executor, changes, replay)
            break
        if ending is None:
            replay.notes.append(f"a {drive.command} drive was cut short (a controller killed); the replay drove on")
        elif _interrupted(drive):
            replay.notes.append(f"a {drive.command} drive stopped on Ctrl-C: the replay stops it after its last "
                                "rollback point (what was under way then starts afresh on the next drive)")
    replay.events = journal.events()
    replay.state = fold(replay.events)
    if executor.estimated:
        replay.notes.append(f"nothing measured for {', '.join(sorted(executor.estimated))}: "
                            "the runbook's expected durations stand in")
    return replay


def _between(journal: SimJournal, clock: SimClock, run_id: str, drive: Drive, last_recorded: datetime) -> None:
    """The operators' words between two drives, at the same distance from the drive before as recorded."""
    base = clock()
    for event in drive.before:
        clock.move_to(base + (parse_time(event.at) - last_recorded))
        journal.append(run_id, event.kind, event.payload, operator=event.operator)
    clock.move_to(base + (drive.started - last_recorded))


def _drive(journal: SimJournal, clock: SimClock, run_id: str, spec: RunbookSpec, executor: ReplayExecutor,
           drive: Drive, durations: Durations) -> RunStatus:
    options = DriveOptions(auto_approve=_auto_approver(drive), prompt=GateReplay(drive, clock, journal, run_id),
                           override_window=_override(drive), until=_until(drive), clock=clock,
                           measured_p90=durations.step, measured_rollback_p90=durations.rollback,
                           measure_criteria=RecordedCriteria(drive),
                           count_calls=lambda: next(iter(drive.records(r.CallsCounted)), None))
    # the engine only appends to and reads its journal (leases are the use-cases'), hence the narrower SimJournal
    engine = Engine(journal, run_id, spec, {kind: executor for kind in ENGINE_KINDS}, options)  # type: ignore[arg-type]
    if drive.command == "rollback":
        asked = drive.records(r.RollbackRequested)
        return engine.roll_back(asked[0].to if asked else None)
    return engine.drive(drive.command)


class RecordedCriteria:
    """A gate's criteria as the drive measured them: the replay runs no probe, it gives the journal's back."""

    def __init__(self, drive: Drive) -> None:
        self.measured = drive.records(r.CriteriaMeasured)

    def __call__(self, criteria: Sequence[Criterion], state: RunState) -> list[r.MeasuredCriterion]:
        wanted = [c.id for c in criteria]
        for index, record in enumerate(self.measured):
            if [m.criterion for m in record.measurements] == wanted:
                return list(self.measured.pop(index).measurements)
        return [c.judge(None, "not measured in the recorded night") for c in criteria]


def _auto_approver(drive: Drive) -> str | None:
    return next((a.approver for a in drive.records(r.GateApproved) if a.auto), None)


def _override(drive: Drive) -> str | None:
    found = drive.records(r.WindowOverride)
    return found[0].reason.split(" (needs ")[0] if found else None


def _until(drive: Drive) -> str | None:
    """Where the drive stopped on its own: `--until STEP`, or a Ctrl-C after the last rollback point it made."""
    asked = next((p.step for p in drive.records(r.RunPaused) if p.reason == "until"), None)
    if asked is not None or not _interrupted(drive):
        return asked
    points = drive.records(r.RollbackPoint)
    return points[-1].step if points else None


def _interrupted(drive: Drive) -> bool:
    return any(p.reason == "interrupted" for p in drive.records(r.RunPaused))


class GateReplay:
    """The approvers as recorded: each approval after the wait it took, a no-go when they stopped."""

    def __init__(self, drive: Drive, clock: SimClock, journal: SimJournal, run_id: str) -> None:
        self.drive, self.clock, self.journal, self.run_id = drive, clock, journal, run_id
        self.approvals = [(parse_time(e.at), rec) for e in drive.events
                          if isinstance(rec := r.read(e), r.GateApproved) and not rec.auto]
        self.opened = {rec.step: parse_time(e.at) for e in drive.events if isinstance(rec := r.read(e), r.GateOpened)}

    def __call__(self, step: GateStep, approved: Sequence[str]) -> Approval | None:
        opened_now = self._opened_in_replay(step.id)
        opened_then = self.opened.get(step.id, self.drive.started)
        for index, (at, record) in enumerate(self.approvals):
            if record.step == step.id:
                del self.approvals[index]
                self.clock.move_to(opened_now + (at - opened_then))
                return Approval(record.approver_id or record.approver, record.reason)
        no_go = next((parse_time(e.at) for e in self.drive.events
                      if isinstance(rec := r.read(e), r.RunPaused) and rec.step == step.id), None)
        if no_go is not None:
            self.clock.move_to(opened_now + (no_go - opened_then))
        return None

    def _opened_in_replay(self, step: str) -> datetime:
        opened = [e for e in self.journal.events() if e.kind == r.GateOpened.KIND and e.payload.get("step") == step]
        return parse_time(opened[-1].at) if opened else self.clock()


def _divergence(replayed: Sequence[Event], ending: Event | None) -> str | None:
    """How the replayed drive ended differently from the recorded one (None: the same way)."""
    if ending is None:
        return None
    got = next((e for e in reversed(replayed) if e.kind in DRIVE_ENDS), None)
    want, have = _drive_end(ending), _drive_end(got)
    if want == have or (_said_reason(ending) == "interrupted" and _said_reason(got) == "until"):
        return None
    detail = getattr(r.read(got), "detail", "") if got is not None else ""
    return f"the recorded drive ended with {want}; replayed, it ends with {have}" + (f": {detail}" if detail else "")


def _said_reason(event: Event | None) -> str | None:
    return getattr(r.read(event), "reason", None) if event is not None else None


def _drive_end(event: Event | None) -> str:
    if event is None:
        return "nothing (still running)"
    record = r.read(event)
    reason, step = getattr(record, "reason", None), getattr(record, "step", None)
    return event.kind + (f" ({reason})" if reason else "") + (f" at {step}" if step else "")


def _after_divergence(journal: SimJournal, clock: SimClock, run_id: str, spec: RunbookSpec,
                      executor: ReplayExecutor, changes: Sequence[Change], replay: Replay) -> None:
    """Off the recorded path: a failure before the PNR is rolled back (what a change manager does)."""
    state = fold(journal.events())
    if any(c.fails for c in changes) and executor.failed and not state.point_of_no_return_passed \
            and state.status in (RunStatus.FAILED, RunStatus.PAUSED):
        engine = Engine(journal, run_id, spec, {kind: executor for kind in ENGINE_KINDS},  # type: ignore[arg-type]
                        DriveOptions(clock=clock))
        engine.roll_back(None)
        replay.notes.append("the what-if failure is before the point of no return: the replay rolls the night back")


def compare_json(recorded: Sequence[Event], replay: Replay, durations: Durations) -> dict[str, Any]:
    """What happened, and what the replay says would have happened, side by side."""
    then = watch(recorded, durations)
    assert then.state is not None
    return {"recorded": _night_json(then, then.state), "replayed": _night_json(replay.watched, replay.state),
            "diverged": replay.diverged, "notes": replay.notes,
            "same_order": same_order(recorded, replay.events)}


def _night_json(seen: Watch, state: RunState) -> dict[str, Any]:
    end = parse_time(state.finished_at or state.updated_at)
    return {"status": state.status.value, "pause": state.pause_detail, "end": iso(end),
            "window_end": state.window_end, "window_missed": seen.window_missed,
            "window_at_risk": seen.window_at_risk, "pnr_at_risk": seen.pnr_at_risk,
            "pnr_passed": state.point_of_no_return_passed,
            "steps_done": seen.steps_done, "gates": seen.gates,
            "backup_mode_s": {t: round(s, 3) for t, s in sorted(backup_mode_seconds(state, end).items())}}


# ---------------------------------------------------------------------- the order of events


def night_order(events: Iterable[Event]) -> tuple[list[tuple[str, str | None]], dict[tuple[str, Target], list[str]]]:
    """The order a night's events keep: the run's and steps' events in sequence, and each target's own.

    Lease, notification and anchor events are not the night. Targets of one
    step running side by side may interleave differently: each target's own
    sequence is kept, not their interleaving.
    """
    steps: list[tuple[str, str | None]] = []
    targets: dict[tuple[str, Target], list[str]] = {}
    for event in events:
        if event.kind in NOT_THE_NIGHT:
            continue
        record = r.read(event)
        if event.kind in PER_TARGET:
            targets.setdefault((getattr(record, "step"), getattr(record, "target")), []).append(event.kind)
        else:
            steps.append((event.kind, getattr(record, "step", None) or getattr(record, "reason", None)
                          or getattr(record, "command", None)))
    return steps, targets


def same_order(recorded: Sequence[Event], replayed: Sequence[Event]) -> bool:
    return night_order(recorded) == night_order(replayed)

