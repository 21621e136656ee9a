"""Ids are names, not paths: every entry point refuses a run id that is not a name (exit 2), and nothing is written
outside the state directory.

A run whose id is a path gets into a journal two ways: an old journal (before
ids were checked) and a crafted export. Both are made here over real SQLite
journals, with the `cutover` command run in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.app.runs import create_run, drive_run, new_run_id
from cutover.app.transfer import export_lines
from cutover.cli.main import run_cli
from cutover.core.engine import DriveOptions
from cutover.core.text import as_name, is_name
from cutover.errors import ExitCode, InputError
from cutover.journal.sqlite import SqliteJournal
from cutover.model.runbook import parse_runbook
from cutover.testing import ScriptedExecutor, tiny_inventory
from cutover.web.app import create_app
from cutover.web.security import Access
from tests.unit.test_web import serving

ESCAPING = "../../../escaped-run"
RUNBOOK = """
name: tiny
steps:
  - id: check
    kind: command
    run: "true"
    rollback: none
    rollback_reason: it only checks
"""


def _journal_with(path: Path, run_id: str) -> None:
    """A journal holding a completed run under ``run_id``, journalled as an old version would have."""
    with SqliteJournal(path, "tester") as journal:
        create_run(journal, parse_runbook(RUNBOOK, "tiny.yaml"), tiny_inventory(), run_id="good")
        drive_run(journal, "good", {"command": ScriptedExecutor()}, DriveOptions(auto_approve=None))
        for event in journal.events("good"):  # the same events under the bad id (ids were not checked then)
            journal.append(run_id, event.kind, event.payload)


@pytest.mark.parametrize("name", ["r1", "night-1", "répétition 3", "a/b", "..", ".hidden", "a\nb", "x" * 129, ""])
def test_one_pattern_says_what_a_name_is(name: str):
    assert is_name(name) is (name in ("r1", "night-1"))


def test_a_generated_run_id_is_a_name_whatever_the_runbook_is_called():
    assert is_name(new_run_id("Bascule vague 2 / nuit")) and is_name(as_name("../.."))


def test_report_refuses_a_run_id_that_is_a_path_and_writes_nothing_outside_the_state_dir(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    state = tmp_path / "a" / "b" / "state"
    state.mkdir(parents=True)
    _journal_with(state / "journal.db", ESCAPING)
    code = run_cli(["--state-dir", str(state), "report", ESCAPING])
    assert code == ExitCode.INVALID_INPUT, capfd.readouterr()
    assert "is not a name" in capfd.readouterr().err
    assert not [p for p in tmp_path.rglob("*escaped-run*")]
    assert run_cli(["--state-dir", str(state), "report", "good"]) == ExitCode.OK  # a name is written where it should
    assert (state / "reports" / "good.html").is_file()


def test_runs_import_refuses_a_crafted_export_whose_run_id_is_a_path(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    _journal_with(tmp_path / "old.db", ESCAPING)
    with SqliteJournal(tmp_path / "old.db", "tester") as old:
        crafted = tmp_path / "crafted.jsonl"
        crafted.write_text("\n".join(export_lines(old, ESCAPING)) + "\n")
    state = tmp_path / "state"
    code = run_cli(["--state-dir", str(state), "runs", "import", str(crafted)])
    assert code == ExitCode.INVALID_INPUT and "is not a name" in capfd.readouterr().err
    with SqliteJournal(state / "journal.db", "tester") as journal:
        assert journal.runs() == []


def test_journal_copy_refuses_a_run_id_that_is_a_path(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    _journal_with(tmp_path / "old.db", ESCAPING)
    code = run_cli(["journal", "copy", f"sqlite:///{tmp_path / 'old.db'}", f"sqlite:///{tmp_path / 'new.db'}",
                    ESCAPING])
    assert code == ExitCode.INVALID_INPUT and "is not a name" in capfd.readouterr().err


def test_run_refuses_a_run_id_that_is_a_path_before_reading_anything(tmp_path: Path,
                                                                    capfd: pytest.CaptureFixture[str]):
    code = run_cli(["--project-dir", str(tmp_path), "--state-dir", str(tmp_path / "state"), "run", "tiny",
                    "--env", "lab", "--run-id", ESCAPING])
    assert code == ExitCode.INVALID_INPUT and "is not a name" in capfd.readouterr().err
    with pytest.raises(InputError, match="is not a name"):
        with SqliteJournal(tmp_path / "j.db", "tester") as journal:
            create_run(journal, parse_runbook(RUNBOOK, "tiny.yaml"), tiny_inventory(), run_id=ESCAPING)


def test_the_board_knows_no_run_whose_id_is_a_path(tmp_path: Path):
    _journal_with(tmp_path / "old.db", ESCAPING)
    with SqliteJournal(tmp_path / "old.db", "tester") as journal, \
            serving(create_app(journal, Access(token=None, loopback_only=True))) as board:
        for path in ("/runs/..%2F..%2F..%2Fescaped-run/report", "/api/runs/..%2F..%2F..%2Fescaped-run"):
            status, _, body = board.request(path)
            assert status == 404, (path, body[:200])
        assert board.request("/api/runs/good")[0] == 200
