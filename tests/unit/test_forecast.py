"""Backup-mode time, predicted end and the PNR deadline, computed from a run's events."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from cutover.app.history import LiveForecasts
from cutover.app.queries import load_run
from cutover.app.runs import create_run, drive_run
from cutover.core.engine import DriveOptions
from cutover.core.events import Event
from cutover.core.forecast import backup_mode_seconds, forecast
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

NIGHT = """
name: night
steps:
  - id: backup
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
    rollback_expected_duration: 30m
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


def _run(stop_before_nominal: bool) -> InMemoryJournal:
    journal = InMemoryJournal()
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id="r",
               window_end="2026-11-29T06:00:00+01:00")
    options = DriveOptions(auto_approve=None if stop_before_nominal else "bot",
                           clock=lambda: datetime(2026, 11, 28, 22, tzinfo=timezone.utc))
    drive_run(journal, "r", {"command": ScriptedExecutor()}, options)
    return journal


def test_a_samu_still_in_backup_mode_accumulates_time_until_now():
    state = load_run(_run(stop_before_nominal=True), "r")
    entered = max(datetime.fromisoformat(t.finished_at.replace("Z", "+00:00")) for t in state.step_targets("backup"))
    times = backup_mode_seconds(state, entered + timedelta(minutes=5))
    assert set(times) == {"samu-01", "samu-13", "samu-30"}
    assert all(299 <= seconds <= 301 for seconds in times.values())


def test_a_samu_back_to_nominal_stops_its_clock():
    state = load_run(_run(stop_before_nominal=False), "r")
    later = datetime.now(timezone.utc) + timedelta(hours=3)
    times = backup_mode_seconds(state, later)
    assert all(0 <= seconds < 60 for seconds in times.values())  # the scripted night took milliseconds


def test_the_pnr_deadline_leaves_time_to_undo_what_precedes_it():
    state = load_run(_run(stop_before_nominal=True), "r")
    outlook = forecast(state, datetime(2026, 11, 28, 23, tzinfo=timezone.utc))
    # window end 05:00 UTC, minus 10 min (undo backup) and 30 min (undo migrate)
    assert outlook.pnr_deadline == datetime(2026, 11, 29, 4, 20, tzinfo=timezone.utc)
    assert outlook.predicted_end == datetime(2026, 11, 28, 23, 15, tzinfo=timezone.utc)  # nominal remains


def test_live_forecasts_measure_the_past_runs_once_per_run():
    """A board or the notifier asks again and again; the past runs it draws from are read and folded once."""

    class CountingJournal(InMemoryJournal):
        def __init__(self) -> None:
            super().__init__()
            self.reads: Counter[str] = Counter()

        def events(self, run_id: str) -> list[Event]:
            self.reads[run_id] += 1
            return super().events(run_id)

    journal = CountingJournal()
    for run_id, approver in (("before", "bot"), ("r", None)):  # a measured night, then one under way
        create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id=run_id)
        drive_run(journal, run_id, {"command": ScriptedExecutor()}, DriveOptions(auto_approve=approver))
    forecasts, state = LiveForecasts(journal), load_run(journal, "r")
    now = datetime.now(timezone.utc)
    first = forecasts.of(state, now=now)
    reads = journal.reads["before"]
    second = forecasts.of(state, now=now)
    assert first is not None and second is not None
    assert first.source == second.source == "measured (1 run)"
    assert reads >= 1 and journal.reads["before"] == reads


def test_live_forecasts_convert_a_runs_runbook_once(monkeypatch):
    """The board asks every few seconds (the web board every second): the run's runbook does not change."""
    from cutover.app import history

    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id="r")
    drive_run(journal, "r", {"command": ScriptedExecutor()}, DriveOptions(auto_approve=None))  # waits at its gate
    converted: list[str] = []
    parsed = history.runbook_of
    monkeypatch.setattr(history, "runbook_of", lambda state: converted.append(state.run_id) or parsed(state))
    forecasts, state = LiveForecasts(journal), load_run(journal, "r")
    outlooks = [forecasts.of(state, now=datetime.now(timezone.utc)) for _ in range(3)]
    assert all(outlooks) and converted == ["r"]
