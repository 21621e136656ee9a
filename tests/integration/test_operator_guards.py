"""What a tired operator types cannot silently rewrite a night: the `cutover` CLI in-process, a real SQLite journal.

Destructive commands confirm or refuse (changing nothing), a window the night
cannot fit is refused before anything is created, every pause names the
command that moves it on, and runs, plan and status read in 80 columns.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from scripts.night import typed_command

REPO = Path(__file__).resolve().parents[2]

NIGHT = """name: night
steps:
  - id: prepare
    title: Prepare the platforms
    kind: command
    run: echo prepare >> effects.log
    rollback: {run: echo undo-prepare >> effects.log}
  - id: backup-mode
    title: Every SAMU of the wave to backup mode
    kind: command
    run: echo backup-$CUTOVER_TARGET >> effects.log
    for_each: wave1
    rollback: {run: echo undo-backup-$CUTOVER_TARGET >> effects.log}
  - id: point-of-no-return
    title: Point of no return
    kind: gate
    point_of_no_return: true
    approvers: [{name: Claire Martin, role: change_manager}]
  - id: return-to-nominal
    title: Every SAMU back to nominal on the cloud platform
    kind: command
    run: echo nominal-$CUTOVER_TARGET >> effects.log
    for_each: wave1
    rollback: {run: echo undo-nominal-$CUTOVER_TARGET >> effects.log}
  - id: sign-off
    title: Sign-off (PV de recette)
    kind: gate
    approvers: [{name: Claire Martin, role: change_manager}]
"""
REHEARSAL = """name: rehearsal
steps:
  - id: prepare
    kind: command
    run: echo prepare >> effects.log
    expected_duration: 2h
    rollback: {run: echo undo-prepare >> effects.log}
  - id: done
    kind: command
    run: echo done >> effects.log
    rollback: none
    rollback_reason: a record only
"""


class Cli:
    """`cutover` in this process, against a throwaway project folder and state folder."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.capsys = root, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = run_cli(["--project-dir", str(self.root), "--state-dir", str(self.root / "state"), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def events(self, run_id: str) -> list[tuple[str, dict]]:
        with sqlite3.connect(f"file:{self.root / 'state' / 'journal.db'}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT kind, payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
            return [(kind, json.loads(payload)) for kind, payload in rows]

    def effects(self) -> list[str]:
        log = self.root / "effects.log"
        return log.read_text().split() if log.exists() else []


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab", ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "night.yaml").write_text(NIGHT)
    (root / "runbooks" / "rehearsal.yaml").write_text(REHEARSAL)
    monkeypatch.chdir(root)  # command steps run in the project folder; so does the effects log
    monkeypatch.setenv("COLUMNS", "80")
    return Cli(root, capsys)


def completed_night(cli: Cli, run_id: str = "n1") -> None:
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", run_id, "--auto-approve", "lab-bot")
    assert code == 0, out + err


# ---------------------------------------------------------------------- confirm what destroys


def test_rollback_to_a_step_without_a_terminal_or_yes_is_refused_and_changes_nothing(cli: Cli):
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "r1", "--until", "backup-mode")
    assert code == 3, out + err
    before = cli.events("r1")
    code, _, err = cli("rollback", "r1", "--to", "prepare")
    assert code == 2 and "--yes" in err and "nothing was changed" in err, err
    assert cli.events("r1") == before
    code, out, err = cli("rollback", "r1", "--to", "prepare", "--yes")
    assert code == 5, out + err
    wave = ("01", "13", "2A", "30", "31", "33", "34", "38", "59", "69")
    undone = [e for e in cli.effects() if e.startswith("undo-")]
    assert sorted(undone) == sorted(f"undo-backup-samu-{code}" for code in wave)  # prepare stays done


def test_a_completed_run_past_its_point_of_no_return_is_never_rolled_back_even_with_yes(cli: Cli):
    completed_night(cli)
    before, effects = cli.events("n1"), cli.effects()
    for args in (("--to", "return-to-nominal"), ("--to", "point-of-no-return"), ()):
        code, _, err = cli("rollback", "n1", *args, "--yes")
        assert code == 2 and "nothing was changed" in err, (args, err)
    assert "completed past its point of no return" in err
    assert cli.events("n1") == before and cli.effects() == effects  # still completed, nothing undone
    code, out, _ = cli("status", "n1", "--json")
    assert json.loads(out)["state"] == "completed"


def test_rolling_back_to_a_step_after_the_point_of_no_return_is_refused(cli: Cli):
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "p1", "--auto-approve", "lab-bot",
                         "--until", "return-to-nominal")
    assert code == 3, out + err
    before = cli.events("p1")
    code, _, err = cli("rollback", "p1", "--to", "return-to-nominal", "--yes")
    assert code == 2 and "after the point of no return" in err and "--to point-of-no-return" in err, err
    assert cli.events("p1") == before


def test_a_completed_run_asks_before_it_is_rolled_back_and_is_never_relabelled_without_undoing(cli: Cli):
    code, out, err = cli("run", "rehearsal", "--env", "lab", "--run-id", "c1")
    assert code == 0, out + err
    code, _, err = cli("rollback", "c1")
    assert code == 2 and "completed" in err and "`cutover rollback c1 --yes`" in err, err
    code, _, err = cli("rollback", "c1", "--to", "prepare", "--yes")  # after prepare: `done`, nothing to undo
    assert code == 2 and "would only relabel it" in err, err
    code, out, err = cli("rollback", "c1", "--yes")
    assert code == 5 and cli.effects()[-1] == "undo-prepare", out + err


# ---------------------------------------------------------------------- a window the night fits


def test_a_window_end_in_the_past_is_refused_before_a_run_is_created(cli: Cli):
    past = (datetime.now(timezone.utc) - timedelta(hours=7)).isoformat(timespec="seconds")
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "w1", "--window-end", past)
    assert code == 2 and "is 7 h ago" in err and "--accept-window-risk" in err, out + err
    assert not (cli.root / "state" / "journal.db").exists() or cli.events("w1") == []
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "w1", "--window-end", past,
                         "--accept-window-risk", "replaying last night's window in a drill")
    assert code == 3, out + err  # created; the engine's own window check pauses it before the first step
    created = cli.events("w1")[0][1]
    assert created["window_risk"].startswith("replaying last night's window in a drill (the window end")


def test_a_window_end_before_the_forecasts_p90_end_is_refused(cli: Cli):
    soon = (datetime.now(timezone.utc) + timedelta(minutes=30)).isoformat(timespec="seconds")
    code, out, err = cli("run", "rehearsal", "--env", "lab", "--run-id", "w2", "--window-end", soon)
    assert code == 2 and "before the forecast's P90 end" in err and "expected durations" in err, out + err
    later = (datetime.now(timezone.utc) + timedelta(hours=5)).isoformat(timespec="seconds")  # 2 h, 2 h to undo
    code, out, err = cli("run", "rehearsal", "--env", "lab", "--run-id", "w2", "--window-end", later)
    assert code == 0, out + err


# ---------------------------------------------------------------------- hints and ids


def test_a_run_paused_at_a_gate_names_the_approve_command_not_resume(cli: Cli):
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "g1", "--until", "backup-mode")
    assert code == 3 and "next: `cutover resume g1` continues" in out, out + err
    code, out, err = cli("resume", "g1")
    assert code == 3, out + err
    assert "next: `cutover approve g1 point-of-no-return --as 'Claire Martin'`, then `cutover resume g1`" in \
        " ".join(out.split())  # as one line, however the terminal's width wrapped it
    code, out, _ = cli("status", "g1")
    assert "cutover approve g1 point-of-no-return --as 'Claire Martin'" in " ".join(out.split())


def test_resume_remembers_the_lab_runs_auto_approve(cli: Cli):
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", "a1", "--auto-approve", "lab-bot",
                         "--until", "backup-mode")
    assert code == 3, out + err
    code, out, err = cli("resume", "a1")
    assert code == 0, out + err
    approved = [(p["step"], p["approver"], p["auto"]) for kind, p in cli.events("a1") if kind == "gate_approved"]
    assert approved == [("point-of-no-return", "lab-bot", True), ("sign-off", "lab-bot", True)]


def test_make_night_prints_a_cutover_command_that_works_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "cutover").write_text("#!/bin/sh\n")
    (venv / "cutover").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as `make night` leaves it: the virtualenv is not activated
    assert typed_command(str(venv / "cutover")) == ".venv/bin/cutover"
    monkeypatch.setenv("PATH", f"{venv}:/usr/bin:/bin")  # activated
    assert typed_command(str(venv / "cutover")) == "cutover"


# ---------------------------------------------------------------------- 80 columns


def _fits(out: str, width: int = 80) -> str:
    too_wide = [line for line in out.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)
    return out


def test_runs_plan_and_status_read_in_80_columns_with_ids_whole(cli: Cli):
    run_id = "night-20261129-013000-ab12"
    code, out, err = cli("run", "night", "--env", "lab", "--run-id", run_id, "--label", "répétition 3",
                         "--until", "backup-mode")
    assert code == 3, out + err
    _, out, _ = cli("runs")
    listed = _fits(out)
    assert run_id in listed and "répétition 3" in listed and "paused" in listed
    _, out, _ = cli("plan", "night", "--env", "lab")
    plan = _fits(out)
    for step_id, title in (("backup-mode", "Every SAMU of the wave to backup mode"),
                           ("return-to-nominal", "Every SAMU back to nominal"),
                           ("point-of-no-return", "Point of no return")):
        assert any(step_id in line and title in line for line in plan.splitlines()), plan
    assert "POINT OF NO RETURN" in plan and "samu-2A" in plan
    _, out, _ = cli("status", run_id)
    status = _fits(out)
    for number, step_id in enumerate(("prepare", "backup-mode", "point-of-no-return", "return-to-nominal",
                                      "sign-off"), start=1):
        assert any(line.split()[:3][::2] == [str(number), step_id] for line in status.splitlines()
                   if line.split()), status
    assert "samu-69" in status and "next:" in status
