"""The `cutover` command as an operator runs it: validation, failure and rollback, crashes, the lease."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.e2e.conftest import Project
from tests.processes import alive, wait_until

pytestmark = pytest.mark.e2e

SIDE_EFFECT = "echo ran > side-effect.txt"

VALID_HEAD = f"""name: checks
steps:
  - id: first
    kind: command
    run: {SIDE_EFFECT}
    rollback: none
    rollback_reason: test marker only
"""

MALFORMED = {
    "unknown key": (VALID_HEAD + "    retries: 3\n", 8, "unknown key"),
    "wrong type": (VALID_HEAD + "    idempotent: perhaps\n", 8, "valid boolean"),
    "duplicate id": (VALID_HEAD + "  - id: first\n    kind: command\n    run: 'true'\n    rollback: none\n"
                     "    rollback_reason: x\n", 8, "duplicate step id 'first'"),
    "unknown group": (VALID_HEAD + "  - id: second\n    kind: ssh\n    command: uptime\n    for_each: wave9\n"
                      "    rollback: none\n    rollback_reason: x\n", 11, "'wave9' is neither a group nor a host"),
    "missing rollback": (VALID_HEAD + "  - id: second\n    kind: command\n    run: 'true'\n", 8, "rollback"),
    "gate without approvers": (VALID_HEAD + "  - id: go\n    kind: gate\n    quorum: 1\n", 8, "approvers"),
    "yaml syntax": (VALID_HEAD + "  - id: [unclosed\n", 9, "flow sequence started at line 8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_runbook_is_rejected_with_file_and_line_and_nothing_runs(project: Project, case: str):
    text, line, message = MALFORMED[case]
    project.write_runbook("bad", text)
    for command in (["validate", "bad", "--env", "lab"], ["run", "bad", "--env", "lab", "--run-id", "r"]):
        result = project.cutover(*command)
        assert result.returncode == 2, result.stderr
        assert f"runbooks/bad.yaml:{line}" in result.stderr and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (project.root / "side-effect.txt").exists()
    assert project.journal_kinds("r") == []


def test_user_mistakes_get_a_clear_error_and_no_traceback(project: Project):
    project.write_runbook("ok", VALID_HEAD)
    cases = [
        (["validate", "ok", "--env", "nowhere"], 2, "environment 'nowhere' not found"),
        (["validate", "missing", "--env", "lab"], 2, "runbook 'missing' not found"),
        (["status", "no-such-run"], 2, "no run 'no-such-run'"),
        (["run", "ok", "--env", "staging", "--auto-approve", "bot"], 2, "not marked as a lab"),
        (["run", "ok", "--env", "lab", "--window-end", "tomorrow"], 2, "ISO 8601"),
    ]
    for args, code, message in cases:
        result = project.cutover(*args)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (project.root / "side-effect.txt").exists()


FAN_OUT = """name: fanout
steps:
  - id: prepare
    kind: command
    run: echo "do prepare" >> actions.log
    rollback: {run: echo "undo prepare" >> actions.log}
  - id: backup
    kind: command
    for_each: wave1
    concurrency: 4
    run: echo "do backup $CUTOVER_TARGET" >> actions.log
    verify: {run: test "$CUTOVER_SAMU_CODE" != "30"}
    rollback: {run: echo "undo backup $CUTOVER_TARGET" >> actions.log}
  - id: never
    kind: command
    run: echo "do never" >> actions.log
    rollback: {run: echo "undo never" >> actions.log}
"""


def test_a_failed_verification_halts_and_rollback_undoes_every_target_newest_first(project: Project):
    project.write_runbook("fanout", FAN_OUT)
    result = project.cutover("run", "fanout", "--env", "lab", "--run-id", "f1")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "samu-30" in result.stdout
    log = (project.root / "actions.log").read_text().splitlines()
    ran = {l.split()[-1] for l in log if l.startswith("do backup")}
    # the budget (0) was spent by samu-30: targets not yet started were never started
    assert "do never" not in log and "samu-30" in ran and len(ran) < 10

    project.cutover("rollback", "f1", check=5)
    undo = [l for l in (project.root / "actions.log").read_text().splitlines() if l.startswith("undo")]
    # every target whose action ran (samu-30's too) is undone, then the earlier step
    assert undo[-1] == "undo prepare"
    assert sorted(l.split()[-1] for l in undo[:-1]) == sorted(ran)
    status = project.cutover("status", "f1", "--json", check=0)

    data = json.loads(status.stdout)
    assert data["state"] == "rolled_back"
    backup = {s["target"]: s["state"] for s in data["steps"] if s["id"] == "backup"}
    assert {t for t, state in backup.items() if state == "rolled_back"} == ran
    assert {state for t, state in backup.items() if t not in ran} == {"pending"}
    assert next(s for s in data["steps"] if s["id"] == "never")["state"] == "pending"


CRASHY = """name: crashy
steps:
  - id: s1
    kind: command
    run: echo s1 >> effects.log
    verify: {run: grep -qx s1 effects.log}
    rollback: none
    rollback_reason: test
  - id: between
    kind: command
    # the "between steps" kill lands here, and re-running it is harmless
    run: sleep 1
    idempotent: true
    rollback: none
    rollback_reason: test
  - id: s2
    kind: command
    for_each: wave1
    concurrency: 3
    run: echo "s2 $CUTOVER_TARGET" >> effects.log; sleep 0.2
    verify: {run: grep -qx "s2 $CUTOVER_TARGET" effects.log}
    rollback: none
    rollback_reason: test
  - id: s3
    kind: command
    # the side effect, then the controller dies before it can journal the result
    run: echo s3 >> effects.log; kill -9 $PPID
    verify: {run: grep -qx s3 effects.log}
    rollback: none
    rollback_reason: test
  - id: s4
    kind: command
    run: echo s4 >> effects.log; sleep 3
    verify: {run: grep -qx s4 effects.log}
    rollback: none
    rollback_reason: test
  - id: s5
    kind: command
    run: echo s5 >> effects.log
    verify: {run: grep -qx s5 effects.log}
    rollback: none
    rollback_reason: test
"""


def test_sigkill_at_several_points_then_resume_runs_every_side_effect_exactly_once(project: Project):
    project.write_runbook("crashy", CRASHY)
    effects = project.root / "effects.log"

    # 1. killed between steps: as soon as s1's rollback point is durable (the idempotent
    #    `between` step keeps the kill away from s2, whose in-doubt targets would rightly
    #    wait for an operator's decision)
    controller = project.spawn("run", "crashy", "--env", "lab", "--run-id", "k1")
    project.wait_for_event("k1", "rollback_point", "s1")
    controller.send_signal(signal.SIGKILL)
    controller.wait(timeout=10)

    # 2. resume: the dead controller (same host, its process gone) is taken over without a flag, and
    #    the journal says why; s3 then kills its own controller between its action and the journal record
    resumed = project.cutover("resume", "k1")
    assert resumed.returncode == -signal.SIGKILL, resumed.stdout + resumed.stderr
    takeover = project.lease_events("k1")[-1]
    assert takeover["kind"] == "lease_taken_over" and takeover["previous_holder"]["pid"] == controller.pid
    assert f"process {controller.pid} is no longer running" in takeover["reason"]

    # 3. resume again; killed inside s4 (its action is sleeping)
    controller = project.spawn("resume", "k1")
    deadline = time.monotonic() + 30
    while "s4" not in (effects.read_text().split() if effects.exists() else []):
        assert time.monotonic() < deadline, "s4 never started"
        time.sleep(0.02)
    controller.send_signal(signal.SIGKILL)
    controller.wait(timeout=10)

    # 4. the last resume completes the run
    final = project.cutover("resume", "k1")
    assert final.returncode == 0, final.stdout + final.stderr
    lines = effects.read_text().splitlines()
    expected = ["s1", *(f"s2 samu-{c}" for c in ("01", "13", "2A", "30", "31", "33", "34", "38", "59", "69")),
                "s3", "s4", "s5"]
    assert sorted(lines) == sorted(expected), lines  # each exactly once
    assert any("verification shows it took effect" in l for l in final.stdout.splitlines())
    project.cutover("journal", "verify", "k1", check=0)


SLOW = """name: slow
steps:
  - id: wait
    kind: command
    # holds until the test has tried to take it over (a fixed sleep lost that race on a loaded machine)
    run: until [ -e release ]; do sleep 0.05; done
    rollback: none
    rollback_reason: test
"""


ORPHANS = """name: orphans
steps:
  - id: long
    kind: command
    for_each: wave1
    concurrency: 2
    # the command and a background child it started, both in the command's process group
    run: sleep 60 & echo $! > "bg-$CUTOVER_TARGET.pid"; echo $$ > "sh-$CUTOVER_TARGET.pid"; wait
    rollback: none
    rollback_reason: test
"""


def test_a_killed_controller_takes_its_running_commands_and_their_children_with_it(project: Project):
    project.write_runbook("orphans", ORPHANS)
    controller = project.spawn("run", "orphans", "--env", "lab", "--run-id", "o1")
    # two targets running, each with its child
    assert wait_until(lambda: len(list(project.root.glob("*.pid"))) == 4, 30), "the commands never started"
    time.sleep(0.1)  # the pid files are written: let both commands reach `wait`
    pids = [int(path.read_text()) for path in project.root.glob("*.pid")]
    assert all(alive(pid) for pid in pids)
    controller.send_signal(signal.SIGKILL)
    controller.wait(timeout=10)
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), \
        f"still running after their controller died: {[pid for pid in pids if alive(pid)]}"


def test_a_second_driver_is_refused_while_a_run_is_being_driven(project: Project):
    project.write_runbook("slow", SLOW)
    controller = project.spawn("run", "slow", "--env", "lab", "--run-id", "l1")
    project.wait_for_event("l1", "step_started", "wait")
    second = project.cutover("resume", "l1", "--take-over")
    (project.root / "release").touch()
    assert second.returncode == 6, second.stderr
    assert f"pid {controller.pid}" in second.stderr and "still running" in second.stderr.lower() or \
        f"pid {controller.pid}" in second.stderr
    assert controller.wait(timeout=30) == 0


def test_changing_one_byte_of_the_journal_is_detected_and_the_event_named(project: Project):
    project.write_runbook("ok", VALID_HEAD)
    project.cutover("run", "ok", "--env", "lab", "--run-id", "j1", check=0)
    project.cutover("journal", "verify", check=0)
    db = project.state / "journal.db"
    with sqlite3.connect(db) as conn:  # fold the WAL into the main file so the bytes are there
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    marker = b"test marker only"
    index = data.find(marker)
    assert index > 0
    data[index] = ord("T")
    db.write_bytes(bytes(data))
    os.chmod(db, 0o600)
    result = project.cutover("journal", "verify")
    assert result.returncode == 7, result.stdout + result.stderr
    assert "run_created of run j1" in result.stderr


def test_an_ssh_runbook_without_lab_ssh_material_is_refused_before_anything_is_journalled(project: Project):
    project.write_runbook("remote", """name: remote
steps:
  - id: hello
    kind: ssh
    command: echo hello
    for_each: wave1
    rollback: none
    rollback_reason: read-only
""")
    result = project.cutover("run", "remote", "--env", "lab", "--run-id", "s1")
    assert result.returncode == 2, result.stderr
    assert "known_hosts" in result.stderr and "cutover lab up" in result.stderr
    assert project.journal_kinds("s1") == []


PLAYBOOK_ONLY = """name: remote
steps:
  - id: preflight
    kind: playbook
    playbook: ping.yml
    for_each: wave1
    rollback: none
    rollback_reason: read-only
"""


def test_a_playbook_runbook_checks_its_ssh_material_before_anything_is_journalled(project: Project):
    """Without the SSH executor (no paramiko for playbooks), the same checks, asked of OpenSSH."""
    project.write_runbook("remote", PLAYBOOK_ONLY)
    (project.root / "playbooks").mkdir(exist_ok=True)
    (project.root / "playbooks" / "ping.yml").write_text("- hosts: all\n  tasks:\n    - ping:\n")
    missing = project.cutover("run", "remote", "--env", "lab", "--run-id", "p1")
    assert missing.returncode == 2, missing.stderr
    assert "known_hosts" in missing.stderr and "cutover lab up" in missing.stderr

    material = project.root / "inventories" / "lab" / "lab-ssh"  # the inventory's paths are relative to it
    material.mkdir(exist_ok=True)
    (material / "known_hosts").write_text("")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(material / "id_ed25519")],
                   check=True)
    locked = project.cutover("run", "remote", "--env", "lab", "--run-id", "p2")
    assert locked.returncode == 2, locked.stderr
    assert "protected by a passphrase" in locked.stderr and "unattended" in locked.stderr

    (material / "id_ed25519").write_text("not a key\n")
    broken = project.cutover("run", "remote", "--env", "lab", "--run-id", "p3")
    assert broken.returncode == 2, broken.stderr
    assert f"cannot read SSH key {material / 'id_ed25519'}" in broken.stderr
    assert "Traceback" not in missing.stderr + locked.stderr + broken.stderr
    assert all(project.journal_kinds(run) == [] for run in ("p1", "p2", "p3"))


INTERRUPTIBLE = """name: interruptible
steps:
  - id: long
    kind: command
    for_each: wave1
    concurrency: 2
    run: echo "start $CUTOVER_TARGET" >> work.log; sleep 1; echo "end $CUTOVER_TARGET" >> work.log
    verify: {run: grep -qx "end $CUTOVER_TARGET" work.log}
    idempotent: true
    rollback: none
    rollback_reason: test
"""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_safely_and_resume_finishes_the_work(project: Project, stop: signal.Signals):
    """Ctrl-C, or SIGTERM (a `kill`, a service manager, a CI timeout), pauses the run: never left running."""
    project.write_runbook("interruptible", INTERRUPTIBLE)
    controller = project.spawn("run", "interruptible", "--env", "lab", "--run-id", "c1")
    project.wait_for_event("c1", "step_started", "long")
    time.sleep(0.3)
    controller.send_signal(stop)
    assert controller.wait(timeout=30) == 3, controller.stderr.read()
    status = json.loads(project.cutover("status", "c1", "--json", check=0).stdout)
    assert status["state"] == "paused" and status["pause"]["reason"] == "interrupted"
    assert status["lease"] is None  # released: resume needs no take-over
    project.cutover("journal", "verify", "c1", check=0)
    project.cutover("resume", "c1", check=0)
    ends = [l for l in (project.root / "work.log").read_text().splitlines() if l.startswith("end")]
    assert sorted(ends) == sorted(f"end samu-{c}" for c in ("01", "13", "2A", "30", "31", "33", "34", "38", "59", "69"))


GATED = """name: gated
steps:
  - id: go
    kind: gate
    approvers:
      - {name: Claire Martin, role: change_manager}
      - {name: Marc Petit, role: samu_medical_lead}
    quorum: 2
  - id: act
    kind: command
    run: echo acted > acted.txt
    rollback: {run: rm -f acted.txt}
"""


def test_a_gate_pauses_the_run_until_its_approvers_say_go(project: Project):
    project.write_runbook("gated", GATED)
    project.cutover("run", "gated", "--env", "lab", "--run-id", "g1", check=3)
    early = project.cutover("resume", "g1", check=3)
    assert "awaits 2 approval" in early.stdout
    refused = project.cutover("approve", "g1", "go", "--as", "Mallory")
    assert refused.returncode == 2 and "not an approver" in refused.stderr
    project.cutover("--operator", "claire", "approve", "g1", "go", "--as", "Claire Martin", "--reason", "all green",
                    check=0)
    project.cutover("--operator", "marc", "approve", "g1", "go", "--as", "Marc Petit", check=0)
    project.cutover("resume", "g1", check=0)
    assert (project.root / "acted.txt").exists()
    approvals = json.loads(project.cutover("status", "g1", "--json", check=0).stdout)["gates"]["go"]["approvals"]
    assert [(a["approver"], a["reason"]) for a in approvals] == [("Claire Martin", "all green"), ("Marc Petit", "")]
    operators = [op for (op,) in _operators(project, "g1", "gate_approved")]
    assert operators == ["claire", "marc"]


def _operators(project: Project, run_id: str, kind: str) -> list[tuple[str]]:
    with sqlite3.connect(f"file:{project.state / 'journal.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT operator FROM events WHERE run_id = ? AND kind = ? ORDER BY seq",
                            (run_id, kind)).fetchall()
