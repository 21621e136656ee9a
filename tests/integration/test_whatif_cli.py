"""Forecast what-if, postpone and programme as printed, in process, over a real SQLite journal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from tests.e2e.conftest import REPO
from tests.e2e.test_replay_cli import NIGHT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "night.yaml").write_text(NIGHT, encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "200")
    return ["--project-dir", str(root), "--state-dir", str(tmp_path / "state")]


def cutover(base: list[str], capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    assert run_cli([*base, *args]) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_forecast_what_if_answers_beside_the_night_as_measured(project, capsys):
    cutover(project, capsys, "run", "night", "--env", "lab", "--run-id", "n1", "--auto-approve", "lab-bot")
    out, _ = cutover(project, capsys, "forecast", "night", "--env", "lab", "--samples", "200",
                     "--what-if", "migrate=x3", "--what-if", "backup@samu-30=x2")
    assert "what if migrate=x3, backup@samu-30=x2: the night completes" in out
    for row in ("end P90", "PNR deadline holds", "window holds", "critical step", "samu-30 in backup mode (P90)"):
        assert row in out
    data = json.loads(cutover(project, capsys, "forecast", "night", "--env", "lab", "--samples", "200",
                              "--what-if", "backup@samu-30=fail", "--json")[0])
    assert data["outcome"].startswith("rolls back: backup fails") and data["baseline"]["outcome"] == "completes"
    assert data["window"]["number"] == 1 and data["holds"]["window"] is True
    _, err = cutover(project, capsys, "forecast", "night", "--env", "lab", "--what-if", "backup@samu-99=x2", code=2)
    assert "step 'backup' has no target 'samu-99'" in err


def test_a_no_go_night_is_postponed_confirmed_and_the_programme_shows_its_window(project, capsys):
    out, _ = cutover(project, capsys, "run", "night", "--env", "lab", "--run-id", "n2", code=3)
    assert "`cutover runs postpone n2 --window 2 --reason TEXT`" in out  # the no-go offers the next window
    _, err = cutover(project, capsys, "runs", "postpone", "n2", "--window", "2", "--reason", "no-go", code=2)
    assert "no terminal to confirm it on" in err
    out, _ = cutover(project, capsys, "runs", "postpone", "n2", "--window", "2", "--reason", "no-go", "--yes")
    assert "postponed to window 2" in out
    _, err = cutover(project, capsys, "runs", "postpone", "n2", "--window", "1", "--reason", "back", "--yes", code=2)
    assert "window 1 is not after the run's window 2" in err
    plan = json.loads(cutover(project, capsys, "programme", "--env", "lab", "--json")[0])
    assert [(n["run_id"], n["window"], n["windows"]) for n in plan["nights"]] == [("n2", 2, 2)]
    out, _ = cutover(project, capsys, "programme", "--env", "lab")
    assert "nights: which run moves which wave, in which window" in out and "2 of 2" in out


def test_a_forecast_that_misses_its_window_offers_the_next(project, capsys):
    cutover(project, capsys, "run", "night", "--env", "lab", "--run-id", "n1", "--auto-approve", "lab-bot")
    late = "2020-01-01T00:00:00+00:00"  # a window that closed long ago: no night fits in it
    out, _ = cutover(project, capsys, "forecast", "night", "--env", "lab", "--samples", "200", "--window", "1",
                     "--start", "2019-12-31T23:59:59+00:00", "--window-end", late, "--what-if", "migrate=x1000")
    assert "window NO" in out and "the next is window 2" in out and "--window 2" in out


def test_a_night_that_cannot_fit_the_window_it_goes_into_is_refused_before_it_starts(project, capsys):
    root = Path(project[1])
    short = NIGHT.replace("    run: sleep 0.2\n", "    run: sleep 0.2\n    expected_duration: 72h\n")
    (root / "runbooks" / "night.yaml").write_text(short, encoding="utf-8")
    _, err = cutover(project, capsys, "run", "night", "--env", "lab", "--run-id", "n3", code=2)
    assert "before the forecast's P90 end" in err and "nothing was started" in err


def test_replay_prints_what_happened_beside_the_replayed_night(project, capsys):
    cutover(project, capsys, "run", "night", "--env", "lab", "--run-id", "n1", "--auto-approve", "lab-bot")
    out, _ = cutover(project, capsys, "replay", "n1")
    assert "replay of n1 as recorded (simulated time; nothing runs)" in out
    assert "order of events: as recorded" in out and "gate pnr" in out and "samu-2A in backup mode" in out
    out, _ = cutover(project, capsys, "replay", "n1", "--what-if", "backup@samu-2A=fail")
    assert "replay of n1 with backup@samu-2A=fail" in out and "rolled_back" in out
    assert "diverged from the recording: the recorded drive ended with run_completed" in out
