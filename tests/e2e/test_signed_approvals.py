"""Signed approvals, through the real `cutover` command and the real `ssh-keygen -Y`.

`staging` (the project fixture) is an inventory not marked as a lab: there an
approval counts only when signed with the key allowed_signers lists for the
approver's id, for this run and this gate.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cutover.core.events import event_hash
from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e

GATED = """name: gated
steps:
  - id: go
    kind: gate
    approvers:
      - {id: cm-duty-1, name: Claire Martin, role: change_manager}
      - {id: samu-med-1, name: Dr Marc Petit, role: samu_medical_lead}
    quorum: 2
  - id: act
    kind: command
    run: echo acted > acted.txt
    rollback: {run: rm -f acted.txt}
  - id: again
    kind: gate
    approvers:
      - {id: cm-duty-1, name: Claire Martin, role: change_manager}
"""


@pytest.fixture
def signed(project: Project, tmp_path: Path) -> dict[str, Path]:
    """Three keys: Claire's and Marc's are listed for their ids; Mallory's is listed for nobody."""
    keys = {}
    for who in ("claire", "marc", "mallory"):
        key = tmp_path / "keys" / who
        key.parent.mkdir(exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(key)], check=True)
        keys[who] = key
    lines = [f"cm-duty-1 {_public(keys['claire'])}", f"samu-med-1 {_public(keys['marc'])}"]
    (project.root / "inventories" / "staging" / "allowed_signers").write_text("\n".join(lines) + "\n")
    project.write_runbook("gated", GATED)
    return keys


def _public(key: Path) -> str:
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def _approvals(project: Project, run_id: str) -> int:
    return sum(1 for kind, _, _ in project.journal_kinds(run_id) if kind == "gate_approved")


def test_a_signed_approval_counts_and_is_verified_again_by_journal_verify_and_the_report(project: Project,
                                                                                         signed: dict[str, Path]):
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    first = project.cutover("--operator", "claire", "approve", "g1", "go", "--as", "cm-duty-1",
                            "--key", str(signed["claire"]), "--reason", "all green", check=0)
    assert "signed, verified" in first.stdout
    project.cutover("approve", "g1", "go", "--as", "samu-med-1", "--key", str(signed["marc"]), check=0)
    project.cutover("resume", "g1", check=3)  # the second gate waits
    assert (project.root / "acted.txt").exists()

    gate = json.loads(project.cutover("status", "g1", "--json", check=0).stdout)["gates"]["go"]
    assert [(a["approver"], a["reason"]) for a in gate["approvals"]] == [("Claire Martin", "all green"),
                                                                         ("Dr Marc Petit", "")]
    verified = project.cutover("journal", "verify", "g1", "--json", check=0)
    checks = json.loads(verified.stdout)["approvals"]
    assert [(c["approver"], c["signed"], c["valid"]) for c in checks] == [("Claire Martin", True, True),
                                                                          ("Dr Marc Petit", True, True)]
    project.cutover("report", "g1", "--format", "markdown", check=0)
    report = (project.state / "reports" / "g1.md").read_text()
    assert report.count("signature verified") == 2, report


def test_outside_a_lab_an_approval_without_a_valid_signature_is_refused_and_nothing_is_journalled(
        project: Project, signed: dict[str, Path]):
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    cases = [
        ((), "must be signed"),                                            # unsigned
        (("--key", str(signed["mallory"])), "does not verify"),            # a key listed for nobody
        (("--key", str(signed["marc"])), "does not verify"),               # a key listed for another id
    ]
    for args, message in cases:
        refused = project.cutover("approve", "g1", "go", "--as", "cm-duty-1", *args)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert _approvals(project, "g1") == 0


def test_a_statement_signed_for_one_gate_or_run_is_refused_on_another(project: Project, signed: dict[str, Path],
                                                                       tmp_path: Path):
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g2", check=3)
    statement = tmp_path / "claire-g1-go.json"
    made = project.cutover("approve", "g1", "go", "--as", "cm-duty-1", "--key", str(signed["claire"]),
                           "--sign-only", check=0)
    statement.write_text(made.stdout)
    assert _approvals(project, "g1") == 0  # --sign-only journals nothing

    onto_other_run = project.cutover("approve", "g2", "go", "--as", "cm-duty-1", "--signed", str(statement))
    assert onto_other_run.returncode == 2 and "replay" in onto_other_run.stderr
    assert _approvals(project, "g2") == 0

    # the same file is good for the gate it was signed for, by the controller that brings it
    project.cutover("approve", "g1", "go", "--as", "cm-duty-1", "--signed", str(statement), check=0)
    project.cutover("approve", "g1", "go", "--as", "samu-med-1", "--key", str(signed["marc"]), check=0)
    project.cutover("resume", "g1", check=3)  # now waiting at gate `again`
    onto_other_gate = project.cutover("approve", "g1", "again", "--as", "cm-duty-1", "--signed", str(statement))
    assert onto_other_gate.returncode == 2 and "replay" in onto_other_gate.stderr
    assert _approvals(project, "g1") == 2


def test_a_signature_edited_in_the_journal_fails_journal_verify_even_with_the_chain_recomputed(
        project: Project, signed: dict[str, Path]):
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    project.cutover("approve", "g1", "go", "--as", "cm-duty-1", "--key", str(signed["claire"]), check=0)
    project.cutover("journal", "verify", check=0)

    # a forger swaps in Mallory's signature of the same statement and recomputes every hash after it
    db = project.state / "journal.db"
    with sqlite3.connect(db) as conn:
        seq, payload = conn.execute("SELECT seq, payload FROM events WHERE kind = 'gate_approved'").fetchone()
        data = json.loads(payload)
        forged = subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-f", str(signed["mallory"]), "-n",
                                 "cutover-approval"], input=data["statement"].encode(), capture_output=True,
                                check=True).stdout.decode()
        assert forged != data["signature"]
        data["signature"] = forged
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")  # the append-only guard is no obstacle to the file's owner
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?",
                     (json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False), seq))
        _rechain(conn)
    result = project.cutover("journal", "verify")
    assert result.returncode == 7 and "does not verify" in result.stderr, result.stderr


def _rechain(conn: sqlite3.Connection) -> None:
    """Recompute every event's hash and the head, as a forger with write access to the file could."""
    rows = conn.execute("SELECT seq, run_id, kind, at, operator, payload FROM events ORDER BY seq").fetchall()
    previous = rows[0] and conn.execute("SELECT prev_hash FROM events WHERE seq = 1").fetchone()[0]
    for seq, run_id, kind, at, operator, payload in rows:
        digest = event_hash(seq, run_id, kind, at, operator, json.loads(payload), previous)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (previous, digest, seq))
        previous = digest
    conn.execute("UPDATE head SET hash = ?", (previous,))


def test_on_a_terminal_the_gate_asks_for_the_key_and_signs(project: Project, signed: dict[str, Path]):
    """The driver's terminal (a real pseudo-terminal): approver id, reason, key; the approvals are signed."""
    import os
    import pty
    import select
    import time

    from tests.e2e.conftest import CUTOVER

    controller, terminal = pty.openpty()
    process = subprocess.Popen([CUTOVER, "--project-dir", str(project.root), "--state-dir", str(project.state),
                                "run", "gated", "--env", "staging", "--run-id", "t1"],
                               stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    answers = [("approve as", "cm-duty-1"), ("reason", "all green"), ("SSH key", str(signed["claire"])),
               ("approve as", "samu-med-1"), ("reason", ""), ("SSH key", str(signed["marc"])),
               ("approve as", "")]  # the second gate: decide later
    seen, deadline = b"", time.monotonic() + 60
    try:
        while answers and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:
                    break
            question, answer = answers[0]
            if question.encode() in seen:
                seen = b""
                os.write(controller, answer.encode() + b"\r")
                answers.pop(0)
        assert process.wait(timeout=60) == 3  # paused at the second gate
    finally:
        process.kill()
        os.close(controller)
    assert not answers
    checks = json.loads(project.cutover("journal", "verify", "t1", "--json", check=0).stdout)["approvals"]
    assert [(c["approver"], c["signed"], c["valid"]) for c in checks] == [("Claire Martin", True, True),
                                                                          ("Dr Marc Petit", True, True)]
