"""Approvals anchored outside the journal: forged inventories and forged journals, through the real `cutover`.

A run fixes at creation whether it is a lab run and the digest of its
allowed_signers; a copy of the inventory used through --project-dir cannot
change either. An auditor checks approvals against their own allowed_signers.
resume, rollback, approve and status verify the chain before they act or show.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from cutover.core.events import event_hash
from tests.e2e.conftest import Project
from tests.e2e.test_signed_approvals import _approvals, _public, _rechain, signed  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e


def test_a_copy_of_the_inventory_marked_lab_or_listing_an_attackers_key_cannot_approve_a_staging_run(
        project: Project, signed: dict[str, Path], tmp_path: Path):  # noqa: F811
    """The same state directory, another --project-dir: its staging inventory says lab, its signers Mallory."""
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    forged = tmp_path / "forged"
    shutil.copytree(project.root, forged)
    all_vars = forged / "inventories" / "staging" / "group_vars" / "all.yml"
    all_vars.write_text(all_vars.read_text().replace("cutover_lab: false", "cutover_lab: true"))
    mallory = _public(signed["mallory"])
    (forged / "inventories" / "staging" / "allowed_signers").write_text(f"cm-duty-1 {mallory}\nsamu-med-1 {mallory}\n")
    from_forged = Project(forged, project.state)

    unsigned = from_forged.cutover("approve", "g1", "go", "--as", "cm-duty-1")
    assert unsigned.returncode == 2 and "not created as a lab run" in unsigned.stderr, unsigned.stderr
    auto = from_forged.cutover("resume", "g1", "--auto-approve", "lab-bot")
    assert auto.returncode == 2 and "not created as a lab run" in auto.stderr, auto.stderr
    signed_by_mallory = from_forged.cutover("approve", "g1", "go", "--as", "samu-med-1", "--key", str(signed["mallory"]))
    assert signed_by_mallory.returncode == 2, signed_by_mallory.stdout + signed_by_mallory.stderr
    assert "is not the allowed_signers run g1 was created with" in signed_by_mallory.stderr
    assert _approvals(project, "g1") == 0
    assert not (project.root / "acted.txt").exists() and not (forged / "acted.txt").exists()
    # from the folder the run was created from, the real keys still count
    project.cutover("approve", "g1", "go", "--as", "cm-duty-1", "--key", str(signed["claire"]), check=0)


def test_journal_verify_with_the_auditors_own_allowed_signers_lists_approvals_it_does_not_hold(
        project: Project, signed: dict[str, Path], tmp_path: Path):  # noqa: F811
    """The staging inventory listed Mallory's key for both approver ids when the run was created."""
    mallory = _public(signed["mallory"])
    (project.root / "inventories" / "staging" / "allowed_signers").write_text(
        f"cm-duty-1 {mallory}\nsamu-med-1 {mallory}\n")
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    for approver in ("cm-duty-1", "samu-med-1"):
        project.cutover("approve", "g1", "go", "--as", approver, "--key", str(signed["mallory"]), check=0)
    project.cutover("journal", "verify", "g1", check=0)  # the journal's own signer lines agree with themselves

    auditor = tmp_path / "auditor_allowed_signers"  # Claire's real key; Marc is not listed at all
    auditor.write_text(f"cm-duty-1 {_public(signed['claire'])}\n")
    audited = project.cutover("journal", "verify", "g1", "--allowed-signers", str(auditor))
    assert audited.returncode == 7, audited.stdout + audited.stderr
    assert "2 approval(s) not held" in audited.stderr
    assert "signed with a key" in audited.stdout and "'cm-duty-1'" in audited.stdout
    assert "principal 'samu-med-1' is not in" in audited.stdout
    as_json = json.loads(project.cutover("journal", "verify", "--json", "--allowed-signers", str(auditor),
                                         check=7).stdout)
    assert not as_json["ok"] and [f["approver"] for f in as_json["not_held"]] == ["Claire Martin", "Dr Marc Petit"]

    honest = tmp_path / "honest"
    honest.write_text(f"cm-duty-1 {mallory}\nsamu-med-1 {mallory}\n")
    project.cutover("journal", "verify", "--allowed-signers", str(honest), check=0)


def _insert_auto_approval(db: Path, run_id: str) -> None:
    """An `auto: true` approval of gate go added to the file by hand, as the newest event and the head.

    Not re-chained: its hash is the one of an honest approval, not of what it says, so the
    journal keeps accepting appends after it but the chain no longer verifies.
    """
    with sqlite3.connect(db) as conn:
        seq, last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        honest = {"step": "go", "approver": "lab-bot", "role": "lab", "reason": "lab auto-approval", "auto": False}
        forged = {**honest, "auto": True}
        at = "2026-12-01T01:00:00.000000Z"
        digest = event_hash(seq + 1, run_id, "gate_approved", at, "mallory", honest, last)
        conn.execute("INSERT INTO events (seq, run_id, kind, at, operator, payload, prev_hash, hash) "
                     "VALUES (?, ?, 'gate_approved', ?, 'mallory', ?, ?, ?)",
                     (seq + 1, run_id, at, json.dumps(forged, sort_keys=True, separators=(",", ":")), last, digest))
        conn.execute("UPDATE head SET seq = ?, hash = ?", (seq + 1, digest))


def test_an_auto_approval_inserted_in_a_staging_journal_stops_every_command_and_rechained_does_not_pass_the_gate(
        project: Project, signed: dict[str, Path]):  # noqa: F811
    project.cutover("run", "gated", "--env", "staging", "--run-id", "g1", check=3)
    project.cutover("status", "g1", check=0)  # the head verified so far is remembered
    db = project.state / "journal.db"
    _insert_auto_approval(db, "g1")
    for command in (("resume", "g1"), ("status", "g1", "--json"), ("rollback", "g1"),
                    ("approve", "g1", "go", "--as", "cm-duty-1", "--key", str(signed["claire"]))):
        stopped = project.cutover(*command)
        assert stopped.returncode == 7, (command, stopped.stdout, stopped.stderr)
        assert "hash chain is broken" in stopped.stderr and "Traceback" not in stopped.stderr

    # a forger who also recomputes the chain and the head gets past the chain check: the approval still does not count
    with sqlite3.connect(db) as conn:
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        _rechain(conn)
        conn.execute("UPDATE head SET seq = (SELECT MAX(seq) FROM events)")
    project.cutover("resume", "g1", check=3)
    gate = json.loads(project.cutover("status", "g1", "--json", check=0).stdout)["gates"]["go"]
    assert gate["passed_at"] is None and [a["auto"] for a in gate["approvals"]] == [True]
    assert not (project.root / "acted.txt").exists()
