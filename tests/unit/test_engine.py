"""The engine's semantics, driven with the in-memory journal and a scripted executor."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from cutover.app.queries import load_run, status_json
from cutover.app.runs import (
    Decision,
    EngineHandle,
    approve_gate,
    check_auto_approve,
    check_rollback_allowed,
    create_run,
    drive_run,
    rollback_run,
)
from cutover.core.actions import ActionRequest, Outcome, Phase, Target
from cutover.core.engine import Approval, DriveOptions, Engine
from cutover.core.events import LeaseHolder
from cutover.core.records import StepStarted
from cutover.core.state import RunStatus, caught_up, fold
from cutover.errors import InputError, LeaseHeld, LeaseLost
from cutover.model.runbook import parse_runbook
from cutover.planning.plan import to_spec
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

RUNBOOK = """
name: night
steps:
  - id: preflight
    kind: command
    run: "true"
    rollback: none
    rollback_reason: read-only checks
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    concurrency: 2
    verify: {run: check-backup}
    rollback: {run: nominal}
  - id: go
    kind: gate
    approvers:
      - {name: claire, role: change_manager}
      - {name: marc, role: medical_lead}
    quorum: 2
    required_roles: [change_manager]
  - id: migrate
    kind: command
    run: migrate
    verify: {run: check-migrate}
    rollback: {run: unmigrate}
  - id: pnr
    kind: gate
    approvers: [{name: claire, role: change_manager}]
    point_of_no_return: true
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    rollback: {run: backup-again}
"""

TARGETS = ["samu-01", "samu-13", "samu-30"]


class Crash(BaseException):
    """Stands for the controller dying: nothing in the engine catches it."""


@pytest.fixture
def journal() -> InMemoryJournal:
    return InMemoryJournal(operator="claire")


LAB = tiny_inventory(lab=True)


def start(journal: InMemoryJournal, text: str = RUNBOOK, run_id: str = "r1", **create) -> str:
    loaded = parse_runbook(text, "night.yaml")
    create_run(journal, loaded, tiny_inventory(), run_id=run_id, **create)
    return run_id


def drive(journal, executor, run_id="r1", **kwargs) -> RunStatus:
    options = kwargs.pop("options", DriveOptions(auto_approve="lab-bot"))
    return drive_run(journal, run_id, {"command": executor}, options, **kwargs)


def states(journal, step: str, run_id="r1") -> dict[Target, str]:
    state = load_run(journal, run_id)
    return {t.target: t.status.value for t in state.step_targets(step)}


def test_a_run_completes_with_a_rollback_point_after_every_step(journal):
    executor = ScriptedExecutor()
    start(journal)
    assert drive(journal, executor) is RunStatus.COMPLETED
    state = load_run(journal, "r1")
    assert state.completed == ["preflight", "backup", "go", "migrate", "pnr", "nominal"]
    assert executor.calls_for("backup", Phase.ACTION) == TARGETS or sorted(executor.calls_for("backup", Phase.ACTION)) == TARGETS
    assert all(count == 1 for count in executor.effects.values())


def test_fan_out_never_exceeds_the_concurrency_limit(journal):
    running, peak, lock = [0], [0], threading.Lock()

    def hook(request: ActionRequest, target: Target) -> None:
        if request.step_id == "backup" and request.phase is Phase.ACTION:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1

    start(journal)
    assert drive(journal, ScriptedExecutor(hook=hook)) is RunStatus.COMPLETED
    assert peak[0] == 2


def test_a_verification_failure_beyond_the_budget_halts_the_run(journal):
    executor = ScriptedExecutor().script("backup", Phase.VERIFY, "samu-13", Outcome.FAILED)
    start(journal)
    assert drive(journal, executor) is RunStatus.FAILED
    assert states(journal, "backup")["samu-13"] == "failed"
    assert "backup" not in load_run(journal, "r1").completed
    assert executor.calls_for("migrate", Phase.ACTION) == []


def test_past_the_budget_no_new_target_is_started(journal):
    text = RUNBOOK.replace("concurrency: 2", "concurrency: 1")
    executor = ScriptedExecutor().script("backup", Phase.ACTION, "samu-01", Outcome.FAILED)
    start(journal, text)
    assert drive(journal, executor) is RunStatus.FAILED
    assert executor.calls_for("backup", Phase.ACTION) == ["samu-01"]
    assert states(journal, "backup") == {"samu-01": "failed", "samu-13": "pending", "samu-30": "pending"}


def test_within_the_budget_the_other_targets_finish_and_the_run_pauses(journal):
    text = RUNBOOK.replace("concurrency: 2", "concurrency: 2\n    failure_budget: 1")
    executor = ScriptedExecutor().script("backup", Phase.ACTION, "samu-01", Outcome.UNREACHABLE)
    start(journal, text)
    assert drive(journal, executor) is RunStatus.PAUSED
    assert states(journal, "backup") == {"samu-01": "failed", "samu-13": "succeeded", "samu-30": "succeeded"}
    # the operator fixed the site: resume retries only the failed target
    assert drive(journal, executor, command="resume") is RunStatus.COMPLETED
    assert executor.effects[("backup", "samu-13")] == 1


def test_rollback_undoes_every_completed_step_newest_first_on_every_target(journal):
    executor = ScriptedExecutor().script("nominal", Phase.ACTION, "samu-30", Outcome.FAILED)
    start(journal)
    assert drive(journal, executor) is RunStatus.FAILED
    with pytest.raises(InputError, match="point of no return"):
        check_rollback_allowed(load_run(journal, "r1"), None)
    assert rollback_run(journal, "r1", {"command": executor}, DriveOptions(), to="pnr") is RunStatus.ROLLED_BACK
    undone = [(c.step, c.targets) for c in executor.calls if c.phase is Phase.ROLLBACK]
    # samu-30's nominal action failed (it ran), so it is undone too; steps before the PNR are untouched
    assert sorted(t for _, (t,) in undone) == TARGETS and {s for s, _ in undone} == {"nominal"}
    assert load_run(journal, "r1").status is RunStatus.ROLLED_BACK


def test_a_full_rollback_runs_rollback_actions_in_reverse_order(journal):
    executor = ScriptedExecutor().script("migrate", Phase.VERIFY, None, Outcome.FAILED)
    start(journal)
    assert drive(journal, executor) is RunStatus.FAILED
    assert rollback_run(journal, "r1", {"command": executor}, DriveOptions()) is RunStatus.ROLLED_BACK
    order = [c.step for c in executor.calls if c.phase is Phase.ROLLBACK]
    assert order == ["migrate", "backup", "backup", "backup"]
    assert set(states(journal, "backup").values()) == {"rolled_back"}
    assert load_run(journal, "r1").completed == []


def test_a_crash_mid_action_is_resolved_by_verification_without_rerunning(journal):
    def crash_after_effect(request: ActionRequest, target: Target) -> None:
        if request.step_id == "migrate" and request.phase is Phase.ACTION:
            raise Crash()

    start(journal)
    with pytest.raises(Crash):
        drive(journal, ScriptedExecutor(hook=crash_after_effect))
    assert states(journal, "migrate") == {None: "running"}
    executor = ScriptedExecutor()
    assert drive(journal, executor, command="resume", take_over=True) is RunStatus.COMPLETED
    assert executor.calls_for("migrate", Phase.ACTION) == []  # verified in place, not re-run
    assert executor.calls_for("migrate", Phase.VERIFY) == [None]


def test_an_in_doubt_step_that_is_not_idempotent_and_cannot_be_verified_waits_for_the_operator(journal):
    def crash(request: ActionRequest, target: Target) -> None:
        if request.step_id == "nominal" and target == "samu-13" and request.phase is Phase.ACTION:
            raise Crash()

    start(journal)
    with pytest.raises(Crash):
        drive(journal, ScriptedExecutor(hook=crash))
    executor = ScriptedExecutor()
    assert drive(journal, executor, command="resume", take_over=True) is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.pause_reason == "in_doubt" and states(journal, "nominal")["samu-13"] == "in_doubt"
    assert "samu-13" not in executor.calls_for("nominal", Phase.ACTION)
    decision = Decision.parse("nominal:samu-13", "done")
    assert drive(journal, executor, command="resume", decisions=(decision,)) is RunStatus.COMPLETED
    assert "samu-13" not in executor.calls_for("nominal", Phase.ACTION)


def test_an_idempotent_in_doubt_step_without_verification_is_rerun(journal):
    text = RUNBOOK.replace("    rollback: {run: backup-again}", "    idempotent: true\n    rollback: {run: backup-again}")

    def crash(request: ActionRequest, target: Target) -> None:
        if request.step_id == "nominal" and request.phase is Phase.ACTION:
            raise Crash()

    start(journal, text)
    with pytest.raises(Crash):
        drive(journal, ScriptedExecutor(hook=crash))
    executor = ScriptedExecutor()
    assert drive(journal, executor, command="resume", take_over=True) is RunStatus.COMPLETED
    assert executor.calls_for("nominal", Phase.ACTION)


def test_a_gate_pauses_until_its_quorum_and_roles_approve(journal):
    executor = ScriptedExecutor()
    start(journal)
    assert drive(journal, executor, options=DriveOptions()) is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.pause_reason == "gate" and "awaits 2 approval" in state.pause_detail
    with pytest.raises(InputError, match="not an approver"):
        approve_gate(journal, "r1", "go", Approval("mallory", ""), LAB)
    approve_gate(journal, "r1", "go", Approval("marc", "medical team ready"), LAB)
    with pytest.raises(InputError, match="already approved"):
        approve_gate(journal, "r1", "go", Approval("marc", ""), LAB)
    assert drive(journal, executor, options=DriveOptions(), command="resume") is RunStatus.PAUSED
    approve_gate(journal, "r1", "go", Approval("claire", "go"), LAB)
    assert drive(journal, executor, options=DriveOptions(), command="resume") is RunStatus.PAUSED  # next: the PNR gate
    approve_gate(journal, "r1", "pnr", Approval("claire", "verified"), LAB)
    assert drive(journal, executor, options=DriveOptions(), command="resume") is RunStatus.COMPLETED
    approvals = load_run(journal, "r1").gates["go"].approvals
    assert [(a.approver, a.reason, a.recorded_by) for a in approvals] == [
        ("marc", "medical team ready", "claire"), ("claire", "go", "claire")]


def test_an_interactive_prompt_approves_a_gate(journal):
    asked = []

    def prompt(step, so_far):
        asked.append(step.id)
        return Approval("claire", "ok") if step.id == "pnr" or "claire" not in so_far else Approval("marc", "ok")

    start(journal)
    assert drive(journal, ScriptedExecutor(), options=DriveOptions(prompt=prompt)) is RunStatus.COMPLETED
    assert asked == ["go", "go", "pnr"]


def test_auto_approval_is_refused_outside_a_lab():
    with pytest.raises(InputError, match="not marked as a lab"):
        check_auto_approve(tiny_inventory(lab=False), "bot")
    check_auto_approve(tiny_inventory(lab=True), "bot")


def test_a_second_driver_is_refused_while_the_lease_is_held(journal):
    start(journal)
    other = LeaseHolder("elsewhere", 4242, "marc", "2026-11-28T22:00:00Z")
    journal.acquire_lease("r1", other)
    with pytest.raises(LeaseHeld, match="marc on elsewhere"):
        drive(journal, ScriptedExecutor())


def test_the_window_refuses_a_step_that_could_not_be_rolled_back_in_time(journal):
    text = RUNBOOK.replace("    run: migrate\n", "    run: migrate\n    expected_duration: 2h\n")
    now = datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)
    start(journal, text, window_end=(now + timedelta(hours=1)).isoformat())
    options = DriveOptions(auto_approve="bot", clock=lambda: now)
    assert drive(journal, ScriptedExecutor(), options=options) is RunStatus.PAUSED
    assert load_run(journal, "r1").pause_reason == "window"
    options = DriveOptions(auto_approve="bot", clock=lambda: now, override_window="director agreed")
    assert drive(journal, ScriptedExecutor(), options=options, command="resume") is RunStatus.COMPLETED
    assert any(e.kind == "window_override" for e in journal.events("r1"))


def test_the_window_check_prefers_measured_rollbacks_and_says_so(journal):
    now = datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)
    start(journal, window_end=(now + timedelta(hours=1)).isoformat())  # no expected durations: fits by the book
    measured = DriveOptions(auto_approve="bot", clock=lambda: now, measured_rollback_p90={"backup": 3 * 3600.0})
    assert drive(journal, ScriptedExecutor(), options=measured) is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.pause_reason == "window" and state.completed == ["preflight"]  # backup not started
    assert "rollback of 1 step(s) from the measured P90" in state.pause_detail


@pytest.fixture
def sigint_raises():
    """Ctrl-C raises KeyboardInterrupt here, even when the tests run as a background job (SIGINT ignored)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_pauses_cleanly_and_resume_finishes_without_repeating_work(journal, sigint_raises):
    import _thread

    def interrupt(request: ActionRequest, target: Target) -> None:
        if request.step_id == "backup" and target == "samu-13" and request.phase is Phase.ACTION:
            _thread.interrupt_main()
            time.sleep(0.3)

    executor = ScriptedExecutor(hook=interrupt)
    start(journal)
    assert drive(journal, executor) is RunStatus.PAUSED
    assert load_run(journal, "r1").pause_reason == "interrupted"
    executor.hook = None
    assert drive(journal, executor, command="resume") is RunStatus.COMPLETED
    assert all(count == 1 for count in executor.effects.values())


def test_the_engine_state_equals_a_fresh_fold_of_the_journal(journal):
    start(journal)
    engine = Engine(journal, "r1", to_spec(parse_runbook(RUNBOOK, "n").runbook), {"command": ScriptedExecutor()},
                    DriveOptions(auto_approve="bot"))
    engine.drive()
    assert status_json(engine.state) == status_json(fold(journal.events("r1")))


def test_status_json_has_the_documented_shape(journal):
    start(journal)
    drive(journal, ScriptedExecutor())
    status = status_json(load_run(journal, "r1"))
    assert {"run_id", "runbook", "env", "state", "steps"} <= set(status)
    assert status["state"] == "completed"
    row = next(s for s in status["steps"] if s["id"] == "backup" and s["target"] == "samu-30")
    assert row["state"] == "succeeded" and row["started_at"] and row["finished_at"]
    assert next(s for s in status["steps"] if s["id"] == "preflight")["target"] is None


def test_until_pauses_after_the_named_step_and_resume_goes_on(journal):
    executor = ScriptedExecutor()
    start(journal)
    assert drive(journal, executor, options=DriveOptions(auto_approve="bot", until="backup")) is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.pause_reason == "until" and state.completed == ["preflight", "backup"]
    assert drive(journal, executor, command="resume") is RunStatus.COMPLETED


# ---------------------------------------------------------------------- failures as data, fencing


class Exploding(ScriptedExecutor):
    """An executor with a bug: it raises for one step's action instead of returning outcomes."""

    def __init__(self, step: str, error: Exception) -> None:
        super().__init__()
        self.step, self.error = step, error

    def run(self, request: ActionRequest):
        if request.step_id == self.step and request.phase is Phase.ACTION:
            raise self.error
        return super().run(request)


def test_an_executor_exception_after_step_started_is_journalled_and_the_run_is_not_left_running(journal):
    start(journal)
    status = drive(journal, Exploding("migrate", RuntimeError("socket closed")))
    assert status is RunStatus.FAILED  # a controller step: budget 0
    state = load_run(journal, "r1")
    (target,) = state.step_targets("migrate")
    assert target.status.value == "failed" and target.outcome == "error"
    assert "RuntimeError: socket closed" in target.detail
    assert state.lease_holder is None  # released: nobody pretends to drive it
    # the next drive verifies before anything else: its effect is unknown, not assumed absent
    executor = ScriptedExecutor()
    assert drive(journal, executor) is RunStatus.COMPLETED
    assert executor.calls_for("migrate", Phase.VERIFY)[0] is None
    assert executor.effects[("migrate", None)] == 0  # verification said it took effect: not run again


def test_a_set_up_error_raised_by_an_executor_fails_its_targets_as_not_started(journal):
    start(journal)
    status = drive(journal, Exploding("backup", InputError("no ansible_python_interpreter for samu-13")))
    assert status is RunStatus.FAILED
    rows = states(journal, "backup")
    assert "failed" in rows.values() and set(rows.values()) <= {"failed", "pending"}  # budget 0: no new start
    state = load_run(journal, "r1")
    assert {t.outcome for t in state.step_targets("backup") if t.outcome} == {"refused"}
    assert not any(t.may_need_undo for t in state.step_targets("backup"))


def test_a_bug_in_the_engine_journals_the_run_failed_with_running_targets_in_doubt(journal, monkeypatch):
    start(journal)

    def broken(self, step, keys):
        for key in keys:
            self.record(StepStarted(step.id, key, 1))
        raise KeyError("a bug")

    monkeypatch.setattr(Engine, "_run_fresh", broken)
    with pytest.raises(KeyError):
        drive(journal, ScriptedExecutor())
    state = load_run(journal, "r1")
    assert state.status is RunStatus.FAILED and state.pause_reason == "internal_error"
    assert {t.status.value for t in state.step_targets("preflight")} == {"in_doubt"}
    assert state.lease_holder is None


def test_a_controller_taken_over_mid_run_appends_nothing_more_and_stops_with_lease_lost(journal):
    start(journal)
    thief = LeaseHolder("other-host.invalid", 4242, "bob", "2026-11-30T00:00:00Z")
    stolen = threading.Event()

    def hook(request: ActionRequest, target: Target) -> None:
        if request.step_id == "backup" and not stolen.is_set():
            stolen.set()
            journal.steal_lease("r1", thief)  # as `resume --take-over` on another machine would

    with pytest.raises(LeaseLost, match="it is now held by bob on other-host.invalid"):
        drive(journal, ScriptedExecutor(hook=hook))
    events = journal.events("r1")
    assert events[-1].kind == "lease_taken_over"  # nothing of ours after the takeover
    state = fold(events)
    assert state.lease_holder["operator"] == "bob" and "backup" not in state.completed


def test_a_lost_heartbeat_cancels_the_drive_before_the_next_step(journal):
    start(journal)
    handle = EngineHandle()

    def hook(request: ActionRequest, target: Target) -> None:
        if request.step_id == "preflight":
            assert handle.engine is not None
            handle.engine.lose_lease(LeaseLost("taken over by bob"))

    with pytest.raises(LeaseLost):
        drive_run(journal, "r1", {"command": ScriptedExecutor(hook=hook)}, DriveOptions(auto_approve="x"),
                  engine_handle=handle)
    # the heartbeat's word alone (the journal still lets us write) stops the run at the first boundary
    state = load_run(journal, "r1")
    assert "backup" not in [t.step_id for t in state.targets.values() if t.status.value != "pending"]


def test_a_folded_state_is_brought_up_to_date_with_the_events_since_not_folded_again(journal):
    start(journal)
    state = load_run(journal, "r1")
    drive(journal, ScriptedExecutor(), options=DriveOptions(auto_approve="lab-bot", until="preflight"))
    events = journal.events("r1")
    assert caught_up(state, events) is state and state == fold(events)
    start(journal, run_id="r2")
    with pytest.raises(ValueError, match="not the events"):
        caught_up(fold(journal.events("r2")), events)
