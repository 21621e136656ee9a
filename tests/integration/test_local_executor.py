"""The `command` executor on real processes: output, exit, timeout, cancel, and death with its controller."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.core.actions import ActionRequest, Outcome, Phase
from cutover.core.steps import Action
from cutover.executors.local import LocalExecutor
from cutover.executors.reaper import GroupReaper
from tests.processes import alive, wait_until


def request(run: str, *, targets=("t1",), timeout: float | None = None,
            cancel: threading.Event | None = None) -> ActionRequest:
    return ActionRequest(run_id="r", step_id="s", phase=Phase.ACTION, action=Action(kind="command", run=run),
                         targets=tuple(targets), timeout=timeout, cancel=cancel or threading.Event(), concurrency=1,
                         environment={"CUTOVER_STEP": "s"})


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[LocalExecutor]:
    local = LocalExecutor(tmp_path)
    yield local
    local.close()


def test_output_exit_status_and_environment(executor: LocalExecutor, tmp_path: Path):
    ok = executor.run(request('echo "$CUTOVER_TARGET $CUTOVER_STEP $(basename "$PWD")"'))["t1"]
    failed = executor.run(request("echo partial; exit 3"))["t1"]
    assert ok.outcome is Outcome.OK and ok.output.strip() == f"t1 s {tmp_path.name}"
    assert failed.outcome is Outcome.FAILED and failed.exit_status == 3 and failed.output.strip() == "partial"


def test_what_the_last_child_writes_after_the_command_exited_is_kept(executor: LocalExecutor):
    result = executor.run(request("(sleep 0.3; echo late) & echo early"))["t1"]
    assert result.outcome is Outcome.OK and result.output.split() == ["early", "late"]


def test_large_output_does_not_block_the_command(executor: LocalExecutor):
    result = executor.run(request("head -c 1000000 /dev/zero | tr '\\0' x; echo"))["t1"]
    assert result.outcome is Outcome.OK and result.duration < 30


def test_a_timeout_stops_the_whole_group_even_if_a_child_holds_the_output(executor: LocalExecutor,
                                                                          tmp_path: Path):
    result = executor.run(request("sleep 60 & echo $! > bg.pid; sleep 60", timeout=0.5))["t1"]
    assert result.outcome is Outcome.TIMEOUT and result.duration < 10
    assert wait_until(lambda: not alive(int((tmp_path / "bg.pid").read_text())))


def test_cancel_stops_a_running_command(executor: LocalExecutor):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    # it ignores SIGTERM: SIGKILL follows
    result = executor.run(request("trap '' TERM; sleep 60", cancel=cancel))["t1"]
    assert result.outcome is Outcome.CANCELLED and result.duration < 15


def test_a_watcher_killed_by_hand_is_replaced_and_still_kills_what_runs():
    reaper = GroupReaper()
    first = os.spawnlp(os.P_NOWAIT, "setsid", "setsid", "sleep", "60")  # its own group, like a command
    wait_until(lambda: os.getpgid(first) == first)
    reaper.running(first)
    watcher = reaper._watcher
    assert watcher is not None
    watcher.kill()
    watcher.wait()
    second = os.spawnlp(os.P_NOWAIT, "setsid", "setsid", "sleep", "60")
    wait_until(lambda: os.getpgid(second) == second)
    reaper.running(second)  # finds the pipe broken: a new watcher learns both groups
    assert reaper._watcher is not watcher
    reaper.close()  # as the controller's death would: end of file for the watcher
    assert wait_until(lambda: not alive(first) and not alive(second))
    for pid in (first, second):
        os.waitpid(pid, 0)


def test_a_command_that_ended_is_not_killed_later_under_a_reused_id():
    """The watcher forgets a group once its command ended: closing kills nothing it no longer owns."""
    reaper = GroupReaper()
    pid = os.spawnlp(os.P_NOWAIT, "setsid", "setsid", "sleep", "60")
    wait_until(lambda: os.getpgid(pid) == pid)
    reaper.running(pid)
    reaper.ended(pid)
    reaper.close()
    time.sleep(0.2)
    assert alive(pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_command_gets_the_allow_list_the_run_and_the_runbook_env_never_the_controllers_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`PGPASSWORD` (the docs' way to reach a PostgreSQL journal) is in the controller's environment, not the command's."""
    from cutover.app.runs import create_run, drive_run
    from cutover.core import records
    from cutover.core.engine import DriveOptions
    from cutover.model.runbook import parse_runbook
    from cutover.testing import InMemoryJournal, tiny_inventory

    monkeypatch.setenv("PGPASSWORD", "pg-secret-in-the-shell")
    monkeypatch.setenv("CUTOVER_JOURNAL", "postgresql://ctl:pw-in-url@db/j")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-in-the-shell")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    runbook = parse_runbook("""
name: envs
steps:
  - id: show
    kind: command
    run: env | sort; exit 1
    env: {DB_HOST: db.samu.example, DB_PORT: 5432}
    rollback: none
    rollback_reason: it only prints
""", "envs.yaml")
    journal = InMemoryJournal()
    create_run(journal, runbook, tiny_inventory(), run_id="e1")
    local = LocalExecutor(tmp_path)
    try:
        drive_run(journal, "e1", {"command": local}, DriveOptions(auto_approve=None, environment={"CUTOVER_ENV": "unit"}))
    finally:
        local.close()
    failed = next(rec for rec in map(records.read, journal.events("e1")) if isinstance(rec, records.StepFailed))
    names = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in failed.result.output.splitlines() if "=" in line}
    assert "pg-secret" not in failed.result.output and "aws-secret" not in failed.result.output
    assert "PGPASSWORD" not in names and "CUTOVER_JOURNAL" not in names and "AWS_SECRET_ACCESS_KEY" not in names
    assert names["DB_HOST"] == "db.samu.example" and names["DB_PORT"] == "5432"  # the runbook's env
    assert names["CUTOVER_RUN_ID"] == "e1" and names["CUTOVER_ENV"] == "unit" and names["CUTOVER_STEP"] == "show"
    assert names["LC_ALL"] == "C.UTF-8" and names["PATH"] == os.environ["PATH"]  # the allow-list
    assert set(names) - {"PWD", "SHLVL", "_", "OLDPWD"} <= {
        "DB_HOST", "DB_PORT", "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
        *(n for n in names if n.startswith(("LC_", "CUTOVER_")))}, sorted(names)
