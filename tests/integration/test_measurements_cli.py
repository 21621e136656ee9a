"""What `timings`, `compare` and `forecast` print of clean measurements, on a real SQLite journal.

The runs are written with chosen timestamps (``cutover.testing.timeline``) and
imported the way `cutover runs import` keeps them; the commands run in process.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from cutover.journal.sqlite import SqliteJournal
from cutover.testing.timeline import START, timed_run
from tests.e2e.conftest import REPO
from tests.unit.test_timings import RUNBOOK, night, rolled_back_before_acting


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A project with the lab inventory and the night's runbook; two rehearsals and a junk run journalled."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "night.yaml").write_text(RUNBOOK, encoding="utf-8")
    runs = {"rep1": night("rep1", migrate_s=20, gate_wait_s=43.5),
            "rep2": night("rep2", migrate_s=22, paused_s=40),
            "past1": rolled_back_before_acting()}
    (tmp_path / "state").mkdir(mode=0o700)
    with SqliteJournal(tmp_path / "state" / "journal.db", "tester") as journal:
        for index, (run_id, timeline) in enumerate(runs.items()):
            journal.import_run(run_id, timed_run(run_id, timeline, start=START + timedelta(hours=index)))
    monkeypatch.setenv("COLUMNS", "200")
    return ["--project-dir", str(root), "--state-dir", str(tmp_path / "state")]


def cutover(base: list[str], capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert run_cli([*base, *args]) == 0
    return capsys.readouterr().out


def test_timings_show_gate_waits_as_waiting_and_say_which_run_was_left_out(project, capsys):
    out = cutover(project, capsys, "timings", "night", "--env", "lab")
    pnr = next(line for line in out.splitlines() if "pnr" in line)
    assert "(gate)" in pnr and "wait 43.5s" in pnr  # the same figure compare shows, marked as waiting
    migrate = next(line for line in out.splitlines() if "migrate" in line)
    assert "22.0s" in migrate and "62.0s" not in migrate and "paused (left out)" in migrate
    assert "left out: 1 run(s): 1 rolled back before acting (past1)" in out
    assert "unknown" in migrate and "P90 unknown: spread unknown, fewer than 3 measured runs (2 measured)" in out


def test_compare_has_a_total_row_and_labels_the_gate_wait(project, capsys):
    out = cutover(project, capsys, "compare", "rep1", "rep2")
    total = next(line for line in out.splitlines() if "total" in line)
    assert "27.0s" in total and "29.0s (+2.0s)" in total
    assert "wait 43.5s" in out and "left out: none" in out


def test_forecast_text_shows_each_samus_time_in_backup_mode_and_an_unknown_spread(project, capsys):
    out = cutover(project, capsys, "forecast", "night", "--env", "lab", "--samples", "200")
    assert "time in backup mode" in out and "samu-01" in out and "samu-2A" in out
    assert "P90 unknown: spread unknown, fewer than 3 measured runs" in out
    assert "source: measured (2 runs)" in out and "left out: 1 run(s)" in out
    assert "gate waits measured (waiting, not counted above): pnr" in out
