"""The engine: drives a run forward, or back to a rollback point, from its journal.

Rules it keeps (docs/architecture.md follows one step through them):

- every transition is journalled *before* it is acted on (``step_started``
  is durable before the action runs), so a controller killed at any instant
  leaves a journal from which the next one knows what may have happened;
- a target started but not recorded finished is *in doubt*: its verification
  decides; it is re-run only if the step is idempotent; otherwise the run
  pauses for the operator. Nothing recorded as succeeded is run again;
- every step that completes and verifies is a rollback point; rolling back
  undoes later steps newest first, per target, journalling each undo;
- a fanned-out step runs its targets concurrently up to ``concurrency``;
  past its ``failure_budget`` no new target is started and the run halts
  (failed); within budget the other targets finish and the run pauses for a
  decision: a failed SAMU must never be silently left behind;
- gates wait for their quorum of named approvers, or for a lab auto-approval.

The engine talks to the world only through the ``Journal`` and ``Executor``
protocols, so the unit tests drive it with the in-memory fakes of
``cutover.testing``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from cutover.core import records as r
from cutover.core.actions import ActionRequest, ActionResult, Executor, Outcome, Phase, Target
from cutover.core.criteria import Accepted, Criterion, blocked_summary, unresolved
from cutover.core.events import Event, Journal, parse_time
from cutover.core.records import StepInfo
from cutover.core.state import RunState, RunStatus, TargetState, TargetStatus, UndoStatus, apply, caught_up, fold
from cutover.core.steps import Action, ActionStep, GateStep, RunbookSpec
from cutover.core.windows import next_window, postpone_offer
from cutover.errors import CutoverError, InputError, LeaseHeld, ToolMissing

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass


class ExecutorMissing(CutoverError):
    """The runbook uses an action kind no executor was configured for."""


@dataclass(frozen=True)
class Approval:
    approver: str  # the approver's id (or name, in runbooks without ids)
    reason: str = ""
    # a signed approval, already verified by the adapter that collected it (cutover.app.approvals)
    statement: str | None = None
    signature: str | None = None
    signers: str | None = None


class GateUnanswered(Exception):
    """The gate's prompt got no answer (end of input, Ctrl-C, a closed terminal, a timeout): the run pauses there."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# Asked on a terminal when a gate opens: returns an approval, or None for "no-go / not now";
# raises GateUnanswered when nobody can answer.
GatePrompt = Callable[[GateStep, Sequence[str]], "Approval | None"]
# Measures a gate's criteria for the run as it stands (cutover.app.criteria): one measurement each.
CriteriaMeasurer = Callable[[Sequence[Criterion], RunState], Sequence[r.MeasuredCriterion]]
# The call account when a run completes (the lab's ledger), or None where there is none to read.
CallCounter = Callable[[], "r.CallsCounted | None"]


@dataclass
class DriveOptions:
    auto_approve: str | None = None  # lab only: the CLI refuses it on other inventories
    prompt: GatePrompt | None = None
    override_window: str | None = None  # reason, journalled, for starting a step past the window
    until: str | None = None  # pause once this step is a rollback point (rehearsals, drills)
    # step -> P90 of its measured durations and rollback durations (rehearsals); the window check
    # prefers them to the runbook's expected durations, and says which it used
    measured_p90: Mapping[str, float] = field(default_factory=dict)
    measured_rollback_p90: Mapping[str, float] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    # the values of the run's `secret: true` parameters, given again at each drive (never journalled)
    secret_params: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None  # progress display; must not raise
    anchor_key: str | None = None  # the controller's SSH key: the run's head is signed when a drive ends
    measure_criteria: CriteriaMeasurer | None = None  # without one, a gate's criteria fail as not measured
    count_calls: CallCounter | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


class Engine:
    """Drives one run. Create one per ``run``/``resume``/``rollback`` invocation."""

    def __init__(self, journal: Journal, run_id: str, runbook: RunbookSpec,
                 executors: Mapping[str, Executor], options: DriveOptions | None = None, *,
                 state: RunState | None = None) -> None:
        """``state``: the run as the caller has folded it already; brought up to date here, not folded again."""
        self.journal = journal
        self.run_id = run_id
        self.runbook = runbook
        self.executors = executors
        self.options = options or DriveOptions()
        self.cancel = threading.Event()
        self.lost_lease: LeaseHeld | None = None
        self._lock = threading.Lock()
        events = journal.events(run_id)
        self.state: RunState = fold(events) if state is None else caught_up(state, events)

    def lose_lease(self, lost: LeaseHeld) -> None:
        """Another controller took the run over: start nothing more, stop what runs (its appends are fenced)."""
        self.lost_lease = lost
        self.cancel.set()

    # ------------------------------------------------------------------ journal

    def record(self, record: r.Record) -> None:
        """Journal an event (durable on return), then fold it into our state."""
        event = self.journal.append(self.run_id, record.KIND, record.to_payload())
        with self._lock:
            apply(self.state, event)
            if self.options.on_event is not None:
                self.options.on_event(event)

    # ------------------------------------------------------------------ forward

    def drive(self, command: str = "run") -> RunStatus:
        """Run (or continue) the run until it completes, pauses, fails or rolls back."""
        self.record(r.DriveStarted(command))
        if self.state.mode == "rollback":
            return self.roll_back(self.state.rollback_to, resumed=True)
        with self._failures_as_data():
            try:
                return self._forward()
            except KeyboardInterrupt:
                return self._interrupted()
        raise AssertionError("unreachable")  # _failures_as_data re-raises

    @contextmanager
    def _failures_as_data(self) -> Iterator[None]:
        """Whatever goes wrong past this point is journalled, so the run is never left "running" by nobody.

        A lost lease stops the drive without writing (the journal would refuse
        it anyway). Any other exception, a bug included, is journalled as the
        run failing, with what was running left in doubt for the next driver;
        then it propagates (exit 1, with a traceback under --debug).
        """
        try:
            yield
        except LeaseHeld:
            self.cancel.set()
            raise
        except Exception as exc:
            self.cancel.set()
            self._journal_failure(exc)
            raise

    def _journal_failure(self, exc: Exception) -> None:
        detail = (f"the controller stopped on an internal error ({type(exc).__name__}: {exc}); "
                  "what was running is in doubt: `cutover resume` verifies it, or `cutover rollback`")
        try:
            self.record(r.RunFailed(detail, reason="internal_error"))
        except Exception:  # noqa: BLE001 - the journal itself is failing: the next driver folds what it has
            pass

    def _forward(self) -> RunStatus:
        for info in self.state.steps:
            if info.id in self.state.completed:
                continue
            if info.is_gate:
                outcome = self._gate(info)
            else:
                outcome = self._action_step(info)
            if outcome is not None:
                return outcome
            self.record(r.RollbackPoint(info.id))
            if info.id == self.options.until and info is not self.state.steps[-1]:
                self.record(r.RunPaused("until", f"stopped after {info.id} as asked (--until)", step=info.id))
                return RunStatus.PAUSED
        self._count_calls()
        self.record(r.RunCompleted())
        return RunStatus.COMPLETED

    def _count_calls(self) -> None:
        """Journal the call account as the run completes: what says a rehearsal lost no call."""
        if self.options.count_calls is None:
            return
        try:
            counted = self.options.count_calls()
        except Exception:  # noqa: BLE001 - a missing account leaves the rehearsal uncounted, not the night failed
            counted = None
        if counted is not None:
            self.record(counted)

    def _interrupted(self) -> RunStatus:
        if self.lost_lease is not None:  # cancelled because another controller took over: we write nothing
            raise self.lost_lease
        self.cancel.set()
        self.record(r.RunPaused("interrupted", "stopped (Ctrl-C or SIGTERM); `cutover resume` continues"))
        return RunStatus.PAUSED

    def _action_step(self, info: StepInfo) -> RunStatus | None:
        step = self.runbook.action_step(info.id)
        if (refusal := self._window_refusal(info)) is not None:
            return refusal
        self._skip_excluded(info)
        keys = [k for k in info.keys() if self._needs_work(self.state.targets[(info.id, k)])]
        if keys:
            self._fan_out(step, keys)
        if self.cancel.is_set():
            raise KeyboardInterrupt
        return self._judge(info, step)

    def _needs_work(self, target: TargetState) -> bool:
        return target.status not in (TargetStatus.SUCCEEDED, TargetStatus.SKIPPED)

    def _skip_excluded(self, info: StepInfo) -> None:
        for key in info.keys():
            target = self.state.targets[(info.id, key)]
            if key in self.state.excluded and target.status is TargetStatus.PENDING:
                self.record(r.StepSkipped(info.id, key, "target excluded from the run by the operator"))

    def _judge(self, info: StepInfo, step: ActionStep) -> RunStatus | None:
        """After a step's targets ran: carry on, pause for a decision, or halt."""
        targets = self.state.step_targets(info.id)
        failed = [t for t in targets if t.status is TargetStatus.FAILED]
        doubtful = [t for t in targets if t.status is TargetStatus.IN_DOUBT]
        if len(failed) > step.failure_budget:
            self.record(r.RunFailed(_failure_summary(info, failed, step.failure_budget), step=info.id))
            return RunStatus.FAILED
        if failed or doubtful:
            reason = "in_doubt" if doubtful and not failed else "step_failed"
            self.record(r.RunPaused(reason, _pause_summary(self.run_id, info, failed, doubtful), step=info.id))
            return RunStatus.PAUSED
        return None

    # ------------------------------------------------------------------ fan-out

    def _fan_out(self, step: ActionStep, keys: list[Target]) -> None:
        executor = self._executor(step.action.kind)
        if executor.batched:  # one run covers the batch; the tool's own forks do the parallel work
            self._attempt(step, keys)
            return
        slots = _Slots(keys, step.failure_budget, self.cancel)
        workers = min(step.concurrency, len(keys))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"step-{step.id}") as pool:
            running = {pool.submit(self._work_through, step, slots) for _ in range(workers)}
            while running:
                done, running = _wait_interruptibly(running, self.cancel)
                for slot in done:
                    slot.result()  # a slot's exception (a lost lease, a bug) is the step's

    def _work_through(self, step: ActionStep, slots: _Slots) -> int:
        """One of the step's ``concurrency`` slots: the next target as soon as the last one is done.

        Each slot takes its own next target rather than handing back to a
        dispatcher: one thread switch fewer between two commands.
        """
        try:
            while batch := slots.take():
                slots.count_failures(self._attempt(step, batch))
        except BaseException:
            slots.close()  # the other slots start nothing more; the exception reaches the drive
            raise
        return 0

    def _attempt(self, step: ActionStep, keys: list[Target]) -> int:
        """Run the step on ``keys``, resolving in-doubt ones first; returns how many failed."""
        fresh: list[Target] = []
        verify_only: list[Target] = []
        doubtful: list[Target] = []
        for key in keys:
            target = self.state.targets[(step.id, key)]
            if target.status is TargetStatus.IN_DOUBT or target.outcome in ("timeout", "cancelled", "error"):
                doubtful.append(key)
            elif target.status is TargetStatus.FAILED and target.action_done:
                verify_only.append(key)
            else:
                fresh.append(key)
        fresh += self._resolve_doubt(step, doubtful)
        fresh += self._reverify(step, verify_only)
        if fresh and not self.cancel.is_set():
            self._run_fresh(step, fresh)
        return sum(self.state.targets[(step.id, k)].status is TargetStatus.FAILED for k in keys)

    def _resolve_doubt(self, step: ActionStep, keys: list[Target]) -> list[Target]:
        """In-doubt targets: verification says whether the action took effect. Returns those to re-run."""
        if not keys:
            return []
        rerun: list[Target] = []
        results = self._execute(step, Phase.VERIFY, step.verify, keys) if step.verify else {}
        for key in keys:
            result = results.get(key)
            if result is not None and result.ok:
                self.record(r.StepSucceeded(step.id, key, verify=result,
                                            resolution="in doubt; verification shows it took effect"))
            elif step.idempotent:
                rerun.append(key)
            elif self.state.targets[(step.id, key)].status is not TargetStatus.IN_DOUBT:
                self.record(r.InDoubt(step.id, key, _doubt_reason(step, result)))
        return rerun

    def _reverify(self, step: ActionStep, keys: list[Target]) -> list[Target]:
        """The action is known done but its verification failed: verify again; re-run only if idempotent."""
        if not keys:
            return []
        assert step.verify is not None  # only a step with a verification has an action done but unverified
        results = self._execute(step, Phase.VERIFY, step.verify, keys)
        rerun = []
        for key in keys:
            result = results[key]
            if result.ok:
                self.record(r.StepSucceeded(step.id, key, verify=result, resolution="verified on retry"))
            elif step.idempotent:
                rerun.append(key)
            else:
                self.record(r.StepFailed(step.id, key, "verify", result))
        return rerun

    def _run_fresh(self, step: ActionStep, keys: list[Target]) -> None:
        for key in keys:
            attempt = self.state.targets[(step.id, key)].attempts + 1
            self.record(r.StepStarted(step.id, key, attempt))
        results = self._execute(step, Phase.ACTION, step.action, keys)
        to_verify = []
        for key in keys:
            result = results[key]
            if not result.ok:
                self.record(r.StepFailed(step.id, key, "action", result))
            elif step.verify is None:
                self.record(r.StepSucceeded(step.id, key, result=result))
            else:
                self.record(r.ActionDone(step.id, key, result))
                to_verify.append(key)
        if to_verify:
            self._verify_after_action(step, to_verify)

    def _verify_after_action(self, step: ActionStep, keys: list[Target]) -> None:
        assert step.verify is not None  # called only for a step with a verification
        results = self._execute(step, Phase.VERIFY, step.verify, keys)
        for key in keys:
            result = results[key]
            if result.ok:
                self.record(r.StepSucceeded(step.id, key, verify=result))
            else:
                self.record(r.StepFailed(step.id, key, "verify", result, verify=result))

    def _execute(self, step: ActionStep, phase: Phase, action: Action, keys: list[Target]) -> Mapping[Target, ActionResult]:
        request = ActionRequest(
            run_id=self.run_id, step_id=step.id, phase=phase, action=action, targets=tuple(keys),
            timeout=step.timeout, cancel=self.cancel, concurrency=step.concurrency,
            environment={**self.options.environment, **action.env, "CUTOVER_RUN_ID": self.run_id,
                         "CUTOVER_STEP": step.id, "CUTOVER_PHASE": phase.value},
        )
        results = self._run_executor(self._executor(action.kind), request)
        for key in keys:  # an executor that forgot a target must not make it look done
            results.setdefault(key, ActionResult(Outcome.FAILED, detail="the executor returned no result"))
        return results

    @staticmethod
    def _run_executor(executor: Executor, request: ActionRequest) -> dict[Target, ActionResult]:
        """An executor's results; an exception out of it becomes an outcome per target (failures are data)."""
        try:
            return dict(executor.run(request))
        except (InputError, ToolMissing) as exc:  # a set-up problem found before anything started
            return {key: ActionResult(Outcome.REFUSED, detail=exc.message, hint=exc.hint) for key in request.targets}
        except Exception as exc:  # noqa: BLE001 - unknown effect: the target is in doubt, verification decides
            detail = f"the {request.action.kind} executor failed: {type(exc).__name__}: {exc}"
            hint = "it may have started: `cutover resume` verifies whether it took effect before anything else"
            return {key: ActionResult(Outcome.ERROR, detail=detail, hint=hint) for key in request.targets}

    def _executor(self, kind: str) -> Executor:
        try:
            return self.executors[kind]
        except KeyError:
            raise ExecutorMissing(f"no executor for action kind {kind!r}") from None

    # ------------------------------------------------------------------ gates

    def _gate(self, info: StepInfo) -> RunStatus | None:
        step = self.runbook.step(info.id)
        assert isinstance(step, GateStep), f"{info.id} is not a gate"
        reopened = self.state.gates[info.id].opened_at is not None
        if not reopened:
            self.record(r.GateOpened(info.id))
        criteria = self.runbook.criteria_at(info.id)
        if criteria:
            occasion = "before_pnr" if step.point_of_no_return else "gate_reopened" if reopened else "gate_opened"
            self.record(r.CriteriaMeasured(info.id, tuple(self._measure(criteria)), occasion))
        # an auto-approval is written only in a run created as a lab run: elsewhere it would not count
        if self.options.auto_approve and self.state.lab and not approvals_complete(step, self.state):
            self.record(r.GateApproved(info.id, self.options.auto_approve, "lab", "lab auto-approval", auto=True))
        unanswered = ""
        while not approvals_complete(step, self.state) and self.options.prompt is not None:
            try:
                approval = self.options.prompt(step, sorted(self.state.gates[info.id].approvers()))
            except GateUnanswered as exc:  # a prompt nobody can answer must not fail the night
                unanswered = f"{exc.why}; "
                break
            if approval is None:
                break
            self.record(approval_record(step, approval))
        if not approvals_complete(step, self.state):
            offer = postpone_offer(self.state, self.options.clock())
            detail = unanswered + gate_waiting(step, self.state) + (f"; on a no-go, {offer}" if offer else "")
            self.record(r.RunPaused("gate", detail, step=info.id))
            return RunStatus.PAUSED
        blocked = criteria_blocking(criteria, self.state, info.id)
        if blocked:  # approvals alone do not open it: a signed override per failed blocking criterion does
            offer = postpone_offer(self.state, self.options.clock())
            detail = blocked_summary(info.id, blocked, self.run_id) + (f"; or, on a no-go, {offer}" if offer else "")
            self.record(r.RunPaused("criteria", detail, step=info.id))
            return RunStatus.PAUSED
        self.record(r.GatePassed(info.id, step.point_of_no_return))
        return None

    def _measure(self, criteria: Sequence[Criterion]) -> list[r.MeasuredCriterion]:
        """One measurement per criterion; a measurer that fails leaves them failed, said why (failures are data)."""
        if self.options.measure_criteria is None:
            return [c.judge(None, "no probe runner in this drive") for c in criteria]
        try:
            found = {m.criterion: m for m in self.options.measure_criteria(criteria, self.state)}
        except Exception as exc:  # noqa: BLE001 - the gate then stays shut on missing evidence
            return [c.judge(None, f"measuring failed: {type(exc).__name__}: {exc}") for c in criteria]
        return [found.get(c.id) or c.judge(None, "the probe gave no measurement") for c in criteria]

    # ------------------------------------------------------------------ window

    def _window_refusal(self, info: StepInfo) -> RunStatus | None:
        """Refuse to start a step that could not be rolled back before the window closes."""
        if not self.state.window_end:
            return None
        now = self.options.clock()
        own = self.options.measured_p90.get(info.id, info.expected_duration or 0.0)
        undo, sources = rollback_budget(self.state, including=info, measured=self.options.measured_rollback_p90)
        needed = own + undo
        deadline = parse_time(self.state.window_end)
        if now + timedelta(seconds=needed) <= deadline:
            return None
        basis = f"needs {needed:.0f}s: {sources}"
        if self.options.override_window:
            self.record(r.WindowOverride(info.id, f"{self.options.override_window} ({basis})"))
            return None
        self.record(r.RunPaused("window", (
            f"starting {info.id} now could not be rolled back before the window closes at "
            f"{self.state.window_end} ({basis}); resume with --override-window REASON to go on"
            + (f"; or roll back (`cutover rollback {self.run_id}`) and run the night again in a later window: "
               f"{later}" if (later := _rerun_offer(self.state, now)) else "")),
            step=info.id))
        return RunStatus.PAUSED

    # ------------------------------------------------------------------ rollback

    def roll_back(self, to: str | None, *, resumed: bool = False) -> RunStatus:
        """Undo every step after ``to`` (all steps when None), newest first, per target."""
        if not resumed:
            self.record(r.DriveStarted("rollback"))
            self.record(r.RollbackRequested(to))
        with self._failures_as_data():
            return self._roll_back(to)
        raise AssertionError("unreachable")  # _failures_as_data re-raises

    def _roll_back(self, to: str | None) -> RunStatus:
        try:
            for info in reversed(steps_after(self.state, to)):
                if not self._undo_step(info):
                    failed = [str(t.target) for t in self.state.step_targets(info.id) if t.undo is UndoStatus.FAILED]
                    self.record(r.RunFailed(f"rollback of {info.id} failed on {', '.join(failed)}; "
                                            "fix the cause and run `cutover rollback` again", step=info.id))
                    return RunStatus.FAILED
        except KeyboardInterrupt:
            return self._interrupted()
        self.record(r.RunRolledBack(to))
        return RunStatus.ROLLED_BACK

    def _undo_step(self, info: StepInfo) -> bool:
        targets = [t for t in self.state.step_targets(info.id) if t.may_need_undo]
        touched = info.id in self.state.completed or targets or (info.is_gate and self.state.gates[info.id].opened_at)
        if not touched:
            return True
        if info.is_gate:
            self.record(r.StepRolledBack(info.id, "approvals withdrawn"))
            return True
        step = self.runbook.action_step(info.id)
        if step.rollback is None:
            self.record(r.StepRolledBack(info.id, f"nothing to undo: {step.rollback_reason}"))
            return True
        self._undo_targets(step, [t.target for t in targets])
        if any(t.undo is UndoStatus.FAILED for t in self.state.step_targets(info.id)):
            return False
        self.record(r.StepRolledBack(info.id))
        return True

    def _undo_targets(self, step: ActionStep, keys: list[Target]) -> None:
        assert step.rollback is not None  # _undo_step returned early for `rollback: none`
        executor = self._executor(step.rollback.kind)
        batches = [keys] if executor.batched else [[k] for k in keys]
        with ThreadPoolExecutor(max_workers=max(1, min(step.concurrency, len(batches)))) as pool:
            futures = {pool.submit(self._undo_batch, step, batch) for batch in batches}
            while futures:
                _, futures = _wait_interruptibly(futures, self.cancel)
        if self.cancel.is_set():
            raise KeyboardInterrupt

    def _undo_batch(self, step: ActionStep, keys: list[Target]) -> int:
        if self.cancel.is_set():
            return 0
        for key in keys:
            self.record(r.UndoStarted(step.id, key))
        assert step.rollback is not None
        results = self._execute(step, Phase.ROLLBACK, step.rollback, keys)
        for key in keys:
            result = results[key]
            self.record(r.UndoSucceeded(step.id, key, result) if result.ok else r.UndoFailed(step.id, key, result))
        return 0


# ---------------------------------------------------------------------- pure helpers


class _Slots:
    """The targets a fanned-out step has still to start, shared by its slots, and its failures so far."""

    def __init__(self, keys: list[Target], failure_budget: int, cancel: threading.Event) -> None:
        self._pending = deque(keys)
        self._failure_budget = failure_budget
        self._failures = 0
        self._cancel = cancel
        self._closed = False
        self._lock = threading.Lock()

    def take(self) -> list[Target]:
        """The next target to start, as a batch of one (a target may be None: the controller).

        [] once none is left, the failure budget is spent or the run stops.
        """
        with self._lock:
            if self._closed or not self._pending or self._failures > self._failure_budget or self._cancel.is_set():
                return []
            return [self._pending.popleft()]

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def count_failures(self, failures: int) -> None:
        with self._lock:
            self._failures += failures


def _wait_interruptibly(futures: set[Future[int]], cancel: threading.Event) -> tuple[set[Future[int]], set[Future[int]]]:
    """Wait for at least one future, waking regularly so Ctrl-C reaches the main thread."""
    try:
        while True:
            done, not_done = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            if done:
                return done, not_done
    except KeyboardInterrupt:
        cancel.set()  # executors stop their actions; we still collect every result below
        done, not_done = wait(futures)
        return done, not_done


def approvals_complete(step: GateStep, state: RunState) -> bool:
    """The gate has its quorum and roles; an auto-approval passes it alone, in a run created as a lab run only.

    Outside a lab, unsigned and auto approvals are never written by cutover, so one found
    in the journal was put there by hand: it does not count.
    """
    approvals = state.gates[step.id].approvals
    if state.lab and any(a.auto for a in approvals):
        return True
    if not state.lab:
        approvals = [a for a in approvals if a.signed]
    names = {a.approver for a in approvals}
    roles = {a.role for a in approvals}
    return len(names) >= step.quorum and set(step.required_roles) <= roles


def criteria_blocking(criteria: Sequence[Criterion], state: RunState, gate_id: str) -> list[r.MeasuredCriterion]:
    """The gate's failed blocking criteria that no override covers.

    An override given at an earlier gate still covers its criterion re-measured at the point of no
    return, while no worse (criterion ids are unique in a runbook).
    """
    accepted = {c: Accepted(c, o.value) for gate in state.gates.values() for c, o in gate.overrides.items()
                if state.lab or o.signed}  # outside a lab an unsigned override was written by hand: it does not count
    return unresolved(criteria, state.gates[gate_id].criteria, accepted)


def gate_satisfied(step: GateStep, state: RunState, criteria: Sequence[Criterion] | None = None) -> bool:
    """Approvals complete and no failed blocking criterion left unresolved (``criteria``: default the gate's own)."""
    weighed = step.criteria if criteria is None else criteria
    return approvals_complete(step, state) and not criteria_blocking(weighed, state, step.id)


def gate_waiting(step: GateStep, state: RunState) -> str:
    have = sorted(state.gates[step.id].approvers())
    detail = f"go/no-go {step.id} awaits {step.quorum} approval(s)"
    if step.required_roles:
        detail += f" including role(s) {', '.join(step.required_roles)}"
    detail += f"; approved so far: {', '.join(have) or 'nobody'}"
    return detail + f"; approvers: {', '.join(a.name for a in step.approvers)}"


def approval_record(step: GateStep, approval: Approval) -> r.GateApproved:
    approver = step.approver(approval.approver)
    if approver is None:
        raise InputError(f"{approval.approver!r} is not an approver of gate {step.id}",
                         hint=f"approvers: {', '.join(a.label for a in step.approvers)}")
    return r.GateApproved(step.id, approver.name, approver.role, approval.reason, auto=False, approver_id=approver.id,
                          statement=approval.statement, signature=approval.signature, signers=approval.signers)


def steps_after(state: RunState, to: str | None) -> list[StepInfo]:
    ids = [s.id for s in state.steps]
    start = ids.index(to) + 1 if to is not None else 0
    return state.steps[start:]


def rollback_budget(state: RunState, *, including: StepInfo | None = None,
                    measured: Mapping[str, float] | None = None) -> tuple[float, str]:
    """Seconds needed to undo what is done (after the point of no return), plus ``including``; and on what basis.

    A step's measured P90 rollback duration (rehearsals) is preferred to its
    runbook's expected one.
    """
    measured = measured or {}
    total, from_measure, from_runbook = 0.0, 0, 0
    for info in steps_after(state, state.point_of_no_return_passed):
        if info.is_gate or not (info.id in state.completed or info is including):
            continue
        if info.id in measured:
            total, from_measure = total + measured[info.id], from_measure + 1
        else:
            total += info.rollback_expected_duration or info.expected_duration or 0.0
            from_runbook += 1
    return total, (f"rollback of {from_measure} step(s) from the measured P90, "
                   f"{from_runbook} from expected durations")


def _rerun_offer(state: RunState, now: datetime) -> str:
    """After a rollback the run is over: the night starts again as a new run, in the next window."""
    later = next_window(state, now)
    if later is None:
        return ""
    same = " with the same --param values" if state.params else ""
    return (f"`cutover run {state.runbook_name} --env {state.env} --window {later.number}`{same} "
            f"({later.describe()})")


def _failure_summary(info: StepInfo, failed: list[TargetState], budget: int) -> str:
    names = ", ".join(f"{t.target or 'controller'} ({t.outcome}: {t.detail or 'failed'})" for t in failed)
    return (f"{info.id}: {len(failed)} target(s) failed, more than the failure budget of {budget}: {names}. "
            "Fix and `cutover resume` to retry them, or `cutover rollback`")


def _pause_summary(run_id: str, info: StepInfo, failed: list[TargetState], doubtful: list[TargetState]) -> str:
    parts = []
    if failed:
        parts.append(f"failed on {', '.join(str(t.target or 'controller') for t in failed)} "
                     "(within the failure budget; the other targets completed)")
    if doubtful:
        parts.append(f"in doubt on {', '.join(str(t.target or 'controller') for t in doubtful)}: "
                     "the action may or may not have taken effect; check, then "
                     f"`cutover resume {run_id} --mark-done {info.id}[:TARGET]` or `--rerun {info.id}[:TARGET]`")
    return f"{info.id}: " + "; ".join(parts)


def _doubt_reason(step: ActionStep, result: ActionResult | None) -> str:
    if step.verify is None:
        return "started but not recorded finished, no verification to tell whether it took effect, not idempotent"
    return f"verification did not confirm it took effect ({result.detail if result else 'no result'}); not idempotent"
