"""Anchors: each drive's end signed with the controller's SSH key, through the real `cutover` and `ssh-keygen -Y`.

The hash chain has no key: whoever can write the journal's file can edit an
event and recompute every hash after it, and `journal verify` passes. The
anchor (the run's newest event signed when a drive ends) does not move with
it: `journal verify --anchors` checks it against an allowed-signers file the
auditor holds, and a recomputed chain fails with exit 7.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cutover.core.events import canonical_json, event_hash
from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e

NIGHT = """\
name: anchored
steps:
  - id: first
    kind: command
    run: echo first
    rollback: none
    rollback_reason: test
  - id: second
    kind: command
    run: echo second
    rollback: none
    rollback_reason: test
"""


def _controller_key(folder: Path) -> tuple[Path, Path]:
    """The controller's key, and the auditor's allowed-signers file that lists it for anchors only."""
    key = folder / "controller_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "controller", "-f", str(key)], check=True)
    signers = folder / "auditor_allowed_signers"
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    signers.write_text(f'ctl-samu namespaces="cutover-anchor" {kind} {blob}\n')
    return key, signers


def recompute_chain_after_edit(path: Path, seq: int, payload: dict[str, object]) -> None:
    """What the file's owner can do: edit an event, then rehash it and every later event, and the head."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (canonical_json(payload), seq))
        rows = conn.execute("SELECT seq, run_id, kind, at, operator, payload FROM events WHERE seq >= ? ORDER BY seq",
                            (seq,)).fetchall()
        prev = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()[0]
        for number, run_id, kind, at, operator, text in rows:
            digest = event_hash(number, run_id, kind, at, operator, json.loads(text), prev)
            conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, number))
            prev = digest
        conn.execute("UPDATE head SET hash = ? WHERE id = 1", (prev,))
    conn.close()


def test_a_chain_recomputed_after_an_edit_passes_verify_but_not_its_anchor(project: Project, tmp_path: Path):
    key, signers = _controller_key(tmp_path)
    project.write_runbook("anchored", NIGHT)
    project.cutover("--anchor-key", str(key), "run", "anchored", "--env", "lab", "--run-id", "a1", check=0)
    report = project.cutover("report", "a1", "--format", "markdown", "--out", "-", check=0).stdout
    assert "Anchor: event" in report and "cutover-anchor" in report
    anchored = ["journal", "verify", "--anchors", "--allowed-signers", str(signers)]
    project.cutover(*anchored, check=0)
    (tmp_path / "other").mkdir()
    _, strangers = _controller_key(tmp_path / "other")  # an auditor who does not hold this controller's key
    foreign = project.cutover("journal", "verify", "--anchors", "--allowed-signers", str(strangers), check=7)
    assert "does not verify against" in foreign.stderr

    journal = project.state / "journal.db"
    with sqlite3.connect(journal) as conn:
        seq, text = conn.execute("SELECT seq, payload FROM events WHERE run_id = 'a1' AND kind = 'step_succeeded' "
                                 "ORDER BY seq LIMIT 1").fetchone()
    conn.close()
    edited = json.loads(text)
    edited["detail"] = "rewritten after the night"  # any change: the hashes are recomputed
    recompute_chain_after_edit(journal, seq, edited)

    project.cutover("journal", "verify", check=0)  # the chain alone is consistent again
    caught = project.cutover(*anchored, check=7)
    assert "run a1" in caught.stderr and "no longer has the hash the controller signed" in caught.stderr


def test_a_run_driven_without_a_key_is_unanchored_in_the_report_and_fails_verify_anchors(project: Project,
                                                                                           tmp_path: Path):
    _, signers = _controller_key(tmp_path)
    project.write_runbook("anchored", NIGHT)
    project.cutover("run", "anchored", "--env", "lab", "--run-id", "bare", check=0)
    report = project.cutover("report", "bare", "--format", "markdown", "--out", "-", check=0).stdout
    assert "Anchor: unanchored" in report
    result = project.cutover("journal", "verify", "--anchors", "--allowed-signers", str(signers), "--json", check=7)
    anchors = json.loads(result.stdout)["anchors"]
    assert anchors == [{"run_id": "bare", "seq": None, "signed_seq": None, "valid": False,
                        "reason": "unanchored: no signed anchor in the journal", "signer": None}]
