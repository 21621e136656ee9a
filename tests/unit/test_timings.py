"""Clean measurements: time executing only, gate waits apart, runs that must not count left out and said."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rich.console import Console

from cutover.app.history import compare_json, live_forecast, select_runs, timings_json
from cutover.app.report import Evidence, report_data
from cutover.cli.render import status_board
from cutover.core import records as r
from cutover.core.events import LeaseHolder
from cutover.core.state import fold
from cutover.core.timings import left_out_because, measure_run, summarise
from cutover.testing import InMemoryJournal
from cutover.testing.timeline import START, timed_run
from cutover.web.board import board_view

RUNBOOK = """
name: night
steps:
  - id: backup-mode
    kind: command
    run: backup
    for_each: wave1
    sets_mode: backup
    expected_duration: 10m
    rollback: {run: nominal}
  - id: migrate
    kind: command
    run: migrate
    expected_duration: 2h
    rollback: {run: unmigrate}
  - id: pnr
    kind: gate
    point_of_no_return: true
    approvers: [{name: claire, role: change_manager}]
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    sets_mode: nominal
    expected_duration: 15m
    rollback: {run: backup}
"""
SAMUS = ("samu-01", "samu-13")
STEPS = (r.StepInfo("backup-mode", "command", "SAMUs to backup mode", SAMUS, has_rollback=True, sets_mode="backup",
                    expected_duration=600.0),
         r.StepInfo("migrate", "command", "Migrate", None, has_rollback=True, expected_duration=7200.0),
         r.StepInfo("pnr", "gate", "Point of no return", None, point_of_no_return=True),
         r.StepInfo("nominal", "command", "SAMUs back to nominal", SAMUS, sets_mode="nominal", expected_duration=900.0))
HOLDER = LeaseHolder("host", 1, "tester", "2026-11-28T21:00:00Z")
CREATED = r.RunCreated(r.RunbookRef("night", "night.yaml", "", RUNBOOK), "lab", STEPS, label=None)


def _fan_out(step: str, at: float, seconds: float) -> list[tuple[float, r.Record]]:
    return ([(at, r.StepStarted(step, samu)) for samu in SAMUS]
            + [(at + seconds, r.StepSucceeded(step, samu)) for samu in SAMUS] + [(at + seconds, r.RollbackPoint(step))])


def night(run_id: str, *, migrate_s: float = 20.0, gate_wait_s: float = 1.0, paused_s: float = 0.0,
          label: str | None = None) -> list[tuple[float, r.Record]]:
    """A completed night; with ``paused_s``, Ctrl-C halfway through the migration, resumed that much later."""
    created = r.RunCreated(CREATED.runbook, CREATED.env, CREATED.steps, label=label or run_id)
    timeline: list[tuple[float, r.Record]] = [(0, created), (1, r.DriveStarted("run")), *_fan_out("backup-mode", 2, 3)]
    t = 6.0
    timeline.append((t, r.StepStarted("migrate", None)))
    if paused_s:
        t += migrate_s / 2
        timeline += [(t, r.RunPaused("interrupted", "stopped by the operator (Ctrl-C)")),
                     (t + paused_s, r.DriveStarted("resume"))]
        t += paused_s + migrate_s / 2
        timeline.append((t, r.StepSucceeded("migrate", None, resolution="in doubt; verification shows it took effect")))
    else:
        t += migrate_s
        timeline.append((t, r.StepSucceeded("migrate", None)))
    timeline += [(t, r.RollbackPoint("migrate")), (t, r.GateOpened("pnr")),
                 (t + gate_wait_s, r.GateApproved("pnr", "claire", "change_manager")),
                 (t + gate_wait_s, r.GatePassed("pnr", True)), (t + gate_wait_s, r.RollbackPoint("pnr"))]
    t += gate_wait_s
    timeline += _fan_out("nominal", t + 1, 4) + [(t + 5, r.RunCompleted())]
    return timeline


def rolled_back_before_acting() -> list[tuple[float, r.Record]]:
    """The junk run: its window was already past, it paused before its first step and was rolled back."""
    return [(0, CREATED), (1, r.DriveStarted("run")), (1, r.RunPaused("window", "the window closed 7 h ago")),
            (60, r.RollbackRequested(None)), (60, r.DriveStarted("rollback")), (61, r.RunRolledBack(None))]


def journal_of(**runs: list[tuple[float, r.Record]]) -> InMemoryJournal:
    journal = InMemoryJournal()
    for index, (run_id, timeline) in enumerate(runs.items()):
        journal.import_run(run_id, timed_run(run_id, timeline, start=START + timedelta(hours=index)))
    return journal


def measured(timeline: list[tuple[float, r.Record]]):
    events = timed_run("r", timeline)
    state = fold(events)
    return measure_run(events, state.status.value, state.finished_at)


# ---------------------------------------------------------------------- pauses are not execution


def test_a_step_paused_after_ctrl_c_counts_only_the_time_it_executed():
    migrate = measured(night("r", migrate_s=10, paused_s=3600)).steps["migrate"]
    assert migrate.wall_s == 10.0 and migrate.targets[None] == 10.0
    assert migrate.paused_s == 3600.0  # kept apart, not lost


def test_a_rollback_interrupted_and_resumed_counts_only_the_time_it_executed():
    timeline = night("r")[:8]  # created, drive, backup-mode on both SAMUs, then the migration starts
    timeline += [(30, r.StepSucceeded("migrate", None)), (30, r.RollbackPoint("migrate")),
                 (31, r.RunPaused("step_failed", "")), (40, r.RollbackRequested(None)),
                 (40, r.DriveStarted("rollback")), (41, r.UndoStarted("migrate", None)),
                 (46, r.RunPaused("interrupted", "Ctrl-C")), (500, r.DriveStarted("rollback")),
                 (502, r.UndoSucceeded("migrate", None)), (502, r.StepRolledBack("migrate")),
                 (503, r.RunRolledBack(None))]
    migrate = measured(timeline).steps["migrate"]
    assert migrate.rollback_s == 7.0 and migrate.paused_s == 454.0


def test_a_controller_killed_mid_step_does_not_count_the_time_it_was_dead():
    timeline = night("r")[:8]  # the migration started at 6 s
    timeline += [(9, r.ActionDone("migrate", None)),  # then kill -9: nothing more from that controller
                 (900, r.LeaseTakenOver(HOLDER, HOLDER, 2, "stale")), (901, r.DriveStarted("resume")),
                 (903, r.StepSucceeded("migrate", None, resolution="verified on retry"))]
    migrate = measured(timeline).steps["migrate"]
    assert migrate.wall_s == 5.0 and migrate.paused_s == 892.0


def test_timings_flag_the_paused_step_and_do_not_call_it_slower():
    runs = [measured(night("a", migrate_s=10)), measured(night("b", migrate_s=10, paused_s=40))]
    row = next(row for row in summarise(runs) if row["id"] == "migrate")
    assert row["trend"] == [10.0, 10.0] and row["paused_s"] == 40.0
    assert "getting slower" not in row["flags"] and "paused (left out)" in row["flags"]


# ---------------------------------------------------------------------- gate waits: waiting, apart, consistent


def test_a_gate_wait_is_the_same_waiting_figure_in_timings_and_compare_and_never_a_duration():
    journal = journal_of(a=night("a", gate_wait_s=43.5), b=night("b", gate_wait_s=12.0))
    rows = {row["id"]: row for row in timings_json("night", "lab", select_runs(journal, "night", "lab"))["steps"]}
    assert rows["pnr"]["gate"] and rows["pnr"]["samples"] == 0 and rows["pnr"]["gate_wait"]["max_s"] == 43.5
    compared = compare_json(journal, ["a", "b"])
    pnr = next(row for row in compared["steps"] if row["id"] == "pnr")
    assert pnr["gate"] and [c["duration_s"] for c in pnr["runs"]] == [None, None]
    assert [c["gate_wait_s"] for c in pnr["runs"]] == [43.5, 12.0]


def test_compare_has_a_total_row_of_execution_with_waits_and_pauses_apart():
    journal = journal_of(a=night("a", migrate_s=20, gate_wait_s=43.5), b=night("b", migrate_s=25, paused_s=40))
    total = compare_json(journal, ["a", "b"])["total"]
    # backup-mode 3 s + migrate + nominal 4 s; the gate's wait and the pause apart
    assert [t["duration_s"] for t in total] == [27.0, 32.0] and total[1]["delta_s"] == 5.0
    assert [t["gate_wait_s"] for t in total] == [43.5, 1.0] and [t["paused_s"] for t in total] == [0.0, 40.0]


# ---------------------------------------------------------------------- runs that must not count


def test_a_run_rolled_back_before_acting_has_not_acted_and_is_left_out_with_its_reason():
    junk = fold(timed_run("junk", rolled_back_before_acting()))
    good = fold(timed_run("good", night("good")))
    assert not junk.acted and good.acted
    assert left_out_because(junk) == "rolled back before acting" and left_out_because(good) is None
    journal = journal_of(good=night("good"), junk=rolled_back_before_acting())
    data = timings_json("night", "lab", select_runs(journal, "night", "lab"))
    assert [run["run_id"] for run in data["runs"]] == ["good"]
    assert data["left_out"] == [{"run_id": "junk", "label": None, "reason": "rolled back before acting"}]


def test_a_run_that_acted_then_rolled_back_still_counts():
    timeline = night("r")[:7] + [(6, r.RollbackRequested(None)), (6, r.DriveStarted("rollback")),
                                 (7, r.RunRolledBack(None))]
    state = fold(timed_run("r", timeline))
    assert state.acted and left_out_because(state) is None


def test_compare_leaves_out_a_run_that_must_not_count_and_says_so():
    journal = journal_of(a=night("a"), b=night("b"), junk=rolled_back_before_acting())
    compared = compare_json(journal, ["a", "b", "junk"])
    assert [run["run_id"] for run in compared["runs"]] == ["a", "b"]
    assert [m["run_id"] for m in compared["left_out"]] == ["junk"]


def test_the_report_band_leaves_out_the_junk_run_and_shows_durations_without_pauses():
    journal = journal_of(a=night("a", migrate_s=10), junk=rolled_back_before_acting(),
                         r=night("r", migrate_s=10, paused_s=40))
    data = report_data(journal, "r", Evidence(True, 1, "0" * 64))
    assert data["rehearsals"] == ["a"] and [m["run_id"] for m in data["left_out"]] == ["junk"]
    migrate = next(step for step in data["steps"] if step["id"] == "migrate")
    assert migrate["duration_s"] == 10.0 and migrate["paused_s"] == 40.0
    assert migrate["p50_s"] == 10.0 and migrate["p90_s"] is None  # one rehearsal: its spread is unknown
    assert "spread unknown" in migrate["band_text"]
    pnr = next(step for step in data["steps"] if step["id"] == "pnr")
    assert pnr["duration_s"] is None and pnr["gate_wait_s"] == 1.0 and "wait" in pnr["duration_text"]


# ---------------------------------------------------------------------- the live estimate names its source


def _under_way(journal: InMemoryJournal) -> None:
    """A night that has just started: nothing done yet."""
    journal.import_run("now", timed_run("now", [(0, CREATED), (1, r.DriveStarted("run"))],
                                        start=datetime.now(timezone.utc) - timedelta(seconds=2)))


def test_the_live_estimate_from_a_run_that_measured_nothing_says_expected_durations():
    journal = journal_of(junk=rolled_back_before_acting())
    _under_way(journal)
    outlook = live_forecast(journal, fold(journal.events("now")), now=datetime.now(timezone.utc))
    assert outlook is not None
    assert outlook.source == "expected durations" and not outlook.spread_known
    assert [m["run_id"] for m in outlook.left_out] == ["junk"]


def test_the_live_estimate_from_a_run_that_measured_part_of_the_night_says_it_is_a_mix():
    partial = night("early")[:7] + [(6, r.RunPaused("until", "stopped after backup-mode"))]  # backup-mode only
    journal = journal_of(early=partial)
    _under_way(journal)
    now = datetime.now(timezone.utc)
    outlook = live_forecast(journal, fold(journal.events("now")), now=now)
    assert outlook is not None and not outlook.spread_known
    assert outlook.source == "mixed: 1 step(s) measured (1 run), 2 from expected durations"
    view = board_view(fold(journal.events("now")), None, outlook, journal.events("now"), now, "en")
    assert view["time"]["end"]["p90"] is None and "spread unknown" in view["time"]["end"]["source"]
    console = Console(record=True, width=300)
    console.print(status_board(fold(journal.events("now")), now, outlook))
    header = console.export_text().splitlines()[0]
    assert "mixed: 1 step(s) measured (1 run)" in header and "spread unknown" in header and "P90" not in header


def test_three_measured_runs_give_a_known_spread():
    journal = journal_of(a=night("a", migrate_s=10), b=night("b", migrate_s=20), c=night("c", migrate_s=60))
    _under_way(journal)
    outlook = live_forecast(journal, fold(journal.events("now")), now=datetime.now(timezone.utc))
    assert outlook is not None and outlook.source == "measured (3 runs)" and outlook.spread_known
    assert outlook.end_p90 > outlook.end_p50


def test_an_abandoned_run_is_left_out_with_its_reason():
    abandoned = rolled_back_before_acting()[:3] + [(2, r.RunAbandoned("typed the wrong window"))]
    journal = journal_of(good=night("good"), junk=abandoned)
    data = timings_json("night", "lab", select_runs(journal, "night", "lab"))
    assert [run["run_id"] for run in data["runs"]] == ["good"]
    assert data["left_out"] == [{"run_id": "junk", "label": None, "reason": "abandoned"}]
