"""The engine's guarantees through the real `cutover` command: nothing left running, zombies fenced."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import CUTOVER, REPO, Project

pytestmark = pytest.mark.e2e


def test_an_inventory_without_interpreters_is_refused_before_any_run_exists(tmp_path: Path):
    """The reported defect: twelve preflight targets journalled `started`, then the run left `running`."""
    root = tmp_path / "project"
    for folder in ("runbooks", "playbooks"):
        shutil.copytree(REPO / folder, root / folder)
    labx = root / "inventories" / "labx"
    shutil.copytree(REPO / "inventories" / "lab", labx, ignore=shutil.ignore_patterns("lab-ssh"))
    all_vars = labx / "group_vars" / "all.yml"
    all_vars.write_text("\n".join(l for l in all_vars.read_text().splitlines()
                                  if not l.startswith("ansible_python_interpreter")) + "\n")
    (labx / "lab-ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(labx / "lab-ssh" / "id_ed25519")],
                   check=True, capture_output=True)
    (labx / "lab-ssh" / "known_hosts").write_text("")
    project = Project(root, tmp_path / "state")
    result = project.cutover("run", "runbooks/bigbang.yaml", "--env", "labx", "--auto-approve", "x")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no ansible_python_interpreter for" in result.stderr and "samu-30" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(project.cutover("runs", "--json", check=0).stdout) == []


SLOW = """\
name: slow
steps:
  - id: s1
    kind: command
    run: echo s1 >> effects.log
    verify: {run: grep -qx s1 effects.log}
    rollback: none
    rollback_reason: test
  - id: s2
    kind: command
    run: echo s2 >> effects.log; sleep 4
    verify: {run: grep -qx s2 effects.log}
    idempotent: true
    rollback: none
    rollback_reason: test
  - id: s3
    kind: command
    run: echo s3 >> effects.log
    verify: {run: grep -qx s3 effects.log}
    rollback: none
    rollback_reason: test
  - id: s4
    kind: command
    run: echo s4 >> effects.log
    verify: {run: grep -qx s4 effects.log}
    rollback: none
    rollback_reason: test
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) to run a controller under another host name")
def test_a_frozen_controller_taken_over_from_another_host_comes_back_fenced(project: Project):
    """The reported defect: SIGSTOP during step 2 of 4, takeover, SIGCONT; it appended 12 events and failed the run."""
    project.write_runbook("slow", SLOW)
    base = [CUTOVER, "--project-dir", str(project.root), "--state-dir", str(project.state), "--lease-ttl", "3"]
    # the first controller believes it runs on another machine (its own UTS namespace, its own host name)
    zombie = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname frozen-vm && exec "$@"', "sh",
                               *base, "run", "slow", "--env", "lab", "--run-id", "z1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        project.wait_for_event("z1", "step_started", "s2", timeout=30)
        os.kill(zombie.pid, signal.SIGSTOP)
        time.sleep(4)  # past the lease's staleness: no heartbeat from frozen-vm
        rescue = subprocess.run([*base, "resume", "z1", "--take-over"], capture_output=True, text=True, timeout=60)
        assert rescue.returncode == 0, rescue.stdout + rescue.stderr
        events_after_rescue = len(project.journal_kinds("z1"))
        os.kill(zombie.pid, signal.SIGCONT)
        out, err = zombie.communicate(timeout=30)
    finally:
        if zombie.poll() is None:
            os.kill(zombie.pid, signal.SIGCONT)
            zombie.kill()
    assert zombie.returncode == 6, out + err
    assert "lost the lease on run z1" in err and "frozen-vm" in err
    assert len(project.journal_kinds("z1")) == events_after_rescue  # the zombie wrote nothing
    status = json.loads(project.cutover("status", "z1", "--json", check=0).stdout)
    assert status["state"] == "completed"
    assert project.cutover("journal", "verify", "z1").returncode == 0
