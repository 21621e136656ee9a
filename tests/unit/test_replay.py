"""Replay of a recorded night: the core engine in simulated time, fed from the journal, with what-if changes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from cutover.app.queries import runbook_of
from cutover.app.runs import create_run, drive_run
from cutover.core import records as r
from cutover.core.engine import DriveOptions
from cutover.core.events import parse_time
from cutover.core.replay import Durations, compare_json, night_order, replay_night
from cutover.core.state import RunStatus, fold
from cutover.core.whatif import parse_change
from cutover.errors import InputError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory
from cutover.testing.timeline import START, timed_run

NIGHT = """
name: night
wave: wave1
steps:
  - id: preflight
    kind: command
    run: check
    rollback: none
    rollback_reason: checks change nothing
  - id: go
    kind: gate
    approvers: [{name: claire, role: change_manager}]
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    concurrency: 2
    sets_mode: backup
    verify: {run: test-call}
    rollback: {run: nominal}
  - id: migrate
    kind: command
    run: migrate
    rollback: {run: restore}
  - id: pnr
    kind: gate
    point_of_no_return: true
    approvers: [{name: claire, role: change_manager}]
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    sets_mode: nominal
    rollback: {run: backup}
"""
SAMUS = ("samu-01", "samu-13", "samu-30")


def recorded_in_memory() -> list:
    """A night driven by the engine: a no-go at `go`, approved on a second drive, a verification per SAMU."""
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id="n1")
    executor = ScriptedExecutor()
    assert drive_run(journal, "n1", {"command": executor}, DriveOptions()) is RunStatus.PAUSED
    assert drive_run(journal, "n1", {"command": executor}, DriveOptions(auto_approve="lab-bot"),
                     command="resume") is RunStatus.COMPLETED
    return journal.events("n1")


def test_replaying_a_recorded_night_without_changes_gives_the_recorded_order_of_events():
    recorded = recorded_in_memory()
    replay = replay_night(recorded, runbook_of(fold(recorded)))
    assert replay.diverged is None and replay.notes == []
    steps, targets = night_order(recorded)
    assert night_order(replay.events) == (steps, targets)
    assert ("run_paused", "go") in steps and ("drive_started", "resume") in steps  # the no-go and the second drive
    assert targets[("backup", "samu-30")] == ["step_started", "action_done", "step_succeeded"]
    assert replay.state.status is RunStatus.COMPLETED
    assert {e.kind for e in replay.events} & {"lease_acquired", "notification_sent"} == set()  # not the night


def test_a_failure_before_the_pnr_replays_the_rollback_path():
    recorded = recorded_in_memory()
    replay = replay_night(recorded, runbook_of(fold(recorded)), changes=[parse_change("migrate=fail")])
    assert replay.state.status is RunStatus.ROLLED_BACK
    assert "replayed, it ends with run_failed (failed) at migrate" in (replay.diverged or "")
    steps, _ = night_order(replay.events)
    assert steps[-6:] == [("rollback_requested", None), ("step_rolled_back", "migrate"),
                          ("step_rolled_back", "backup"), ("step_rolled_back", "go"),
                          ("step_rolled_back", "preflight"), ("run_rolled_back", None)]


def test_a_change_naming_no_step_is_refused_naming_it():
    recorded = recorded_in_memory()
    with pytest.raises(InputError, match="no step 'migration' in the plan"):
        replay_night(recorded, runbook_of(fold(recorded)), changes=[parse_change("migration=x2")])


# ---------------------------------------------------------------------- timed: what the room would have seen

def timed_night() -> list:
    """A night measured in minutes, inside a one-hour window: migrate took 30 min, the PNR gate 1 min."""
    journal = InMemoryJournal(operator="claire")
    window_end = (START + timedelta(hours=1)).isoformat()
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id="t1", window_end=window_end)
    created = r.read(journal.events("t1")[0])
    minute = 60.0
    timeline: list[tuple[float, r.Record]] = [
        (0, created), (minute, r.DriveStarted("run")),
        (minute, r.StepStarted("preflight", None)), (2 * minute, r.StepSucceeded("preflight", None)),
        (2 * minute, r.RollbackPoint("preflight")), (2 * minute, r.GateOpened("go")),
        (5 * minute, r.GateApproved("go", "claire", "change_manager")), (5 * minute, r.GatePassed("go")),
        (5 * minute, r.RollbackPoint("go"))]
    t = 5 * minute
    for batch in (SAMUS[:2], SAMUS[2:]):
        timeline += [(t, r.StepStarted("backup", s)) for s in batch]
        timeline += [(t + minute, r.ActionDone("backup", s)) for s in batch]
        timeline += [(t + 1.5 * minute, r.StepSucceeded("backup", s, verify=None)) for s in batch]
        t += 1.5 * minute
    timeline += [(t, r.RollbackPoint("backup")), (t, r.StepStarted("migrate", None)),
                 (t + 30 * minute, r.StepSucceeded("migrate", None)), (t + 30 * minute, r.RollbackPoint("migrate")),
                 (t + 30 * minute, r.GateOpened("pnr")), (t + 31 * minute, r.GateApproved("pnr", "claire", "change_manager")),
                 (t + 31 * minute, r.GatePassed("pnr", True)), (t + 31 * minute, r.RollbackPoint("pnr"))]
    t += 31 * minute
    timeline += [(t, r.StepStarted("nominal", s)) for s in SAMUS]
    timeline += [(t + minute, r.StepSucceeded("nominal", s)) for s in SAMUS]
    timeline += [(t + minute, r.RollbackPoint("nominal")), (t + minute, r.RunCompleted())]
    return timed_run("t1", timeline)


MEASURED = Durations(step={"preflight": 60, "backup": 180, "migrate": 1800, "nominal": 60},
                     rollback={"backup": 120, "migrate": 900})


def test_a_slower_migration_shows_when_the_pnr_and_the_window_would_have_been_at_risk_and_missed():
    recorded = timed_night()
    spec = runbook_of(fold(recorded))
    as_recorded = replay_night(recorded, spec, durations=MEASURED)
    assert as_recorded.diverged is None and night_order(as_recorded.events) == night_order(recorded)
    slower = replay_night(recorded, spec, changes=[parse_change("migrate=x2")], durations=MEASURED)
    data = compare_json(recorded, slower, MEASURED)
    then, now = data["recorded"], data["replayed"]
    assert then["window_missed"] is None and then["pnr_at_risk"] is None and then["status"] == "completed"
    # the PNR deadline is the window's end less 17 min of rollback (migrate 15, backup 2): 21:43
    # migrate starts at 21:08 and should end at 21:38: the board says at risk once it could not end by 21:43
    assert now["pnr_at_risk"] == "2026-11-28T21:44:00.000000Z"
    assert now["window_missed"] == "2026-11-28T22:00:00.000000Z"
    assert then["window_at_risk"] is None and now["window_at_risk"] <= now["window_missed"]
    # then the window check refuses to start nominal: what the engine would have done
    assert "replayed, it ends with run_paused (window) at nominal" in (data["diverged"] or "")
    assert now["gates"]["pnr"]["opened_at"] == "2026-11-28T22:08:00.000000Z" and then["gates"]["pnr"]["pnr_margin_s"] > 0
    assert now["gates"]["pnr"]["pnr_margin_s"] == -1500  # opened 25 min past the PNR deadline (21:43)
    assert now["steps_done"]["migrate"] == "2026-11-28T22:08:00.000000Z"


def test_one_slow_samu_delays_the_night_by_its_batchs_extra_time():
    recorded = timed_night()
    spec = runbook_of(fold(recorded))
    before = compare_json(recorded, replay_night(recorded, spec, durations=MEASURED), MEASURED)["replayed"]
    after = compare_json(recorded, replay_night(recorded, spec, changes=[parse_change("backup@samu-01=x3")],
                                                durations=MEASURED), MEASURED)["replayed"]
    # samu-01's batch (with samu-13) took 90 s, action and verification: now 270 s, as slow as samu-01
    assert (parse_time(after["end"]) - parse_time(before["end"])).total_seconds() == pytest.approx(180)
    assert (parse_time(after["steps_done"]["backup"]) - parse_time(before["steps_done"]["backup"])).total_seconds() \
        == pytest.approx(180)


def test_a_night_postponed_to_a_later_window_replays_with_its_new_window():
    windows = (f'windows:\n  - {{start: "{START.isoformat()}", end: "{(START + timedelta(hours=8)).isoformat()}"}}\n'
               f'  - {{start: "{(START + timedelta(days=7)).isoformat()}", '
               f'end: "{(START + timedelta(days=7, hours=8)).isoformat()}"}}\nsteps:')
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(NIGHT.replace("steps:", windows, 1), "night.yaml"), tiny_inventory(),
               run_id="p1")
    created = r.read(journal.events("p1")[0])
    assert isinstance(created, r.RunCreated)
    # as if created the night of the first window (START is past by now)
    created = dataclasses.replace(created, window=1, window_end=(START + timedelta(hours=8)).isoformat())
    day = 86_400.0
    timeline: list[tuple[float, r.Record]] = [
        (0, created), (60, r.DriveStarted("run")), (60, r.StepStarted("preflight", None)),
        (120, r.StepSucceeded("preflight", None)), (120, r.RollbackPoint("preflight")), (120, r.GateOpened("go")),
        (600, r.RunPaused("gate", "no-go", step="go")), (900, r.RunPostponed(2, "no-go: vigilance", previous=1)),
        (7 * day + 60, r.GateApproved("go", "claire", "change_manager")), (7 * day + 120, r.DriveStarted("resume")),
        (7 * day + 120, r.GateOpened("go")), (7 * day + 120, r.GatePassed("go")), (7 * day + 120, r.RollbackPoint("go")),
        (7 * day + 120, r.RunPaused("interrupted", "stopped by the operator (Ctrl-C)"))]
    recorded = timed_run("p1", timeline)
    replay = replay_night(recorded, runbook_of(fold(recorded)), durations=MEASURED)
    assert replay.diverged is None
    assert replay.notes == ["a resume drive stopped on Ctrl-C: the replay stops it after its last rollback point "
                            "(what was under way then starts afresh on the next drive)"]
    steps, _ = night_order(replay.events)
    assert steps[:-1] == night_order(recorded)[0][:-1]  # as recorded, up to the stop: Ctrl-C, replayed as --until go
    assert steps[-1] == ("run_paused", "go")
    assert replay.state.window == 2
    assert replay.watched.window_missed is None  # the first window's end passed while postponed: not missed
