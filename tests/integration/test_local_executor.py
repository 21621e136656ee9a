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
