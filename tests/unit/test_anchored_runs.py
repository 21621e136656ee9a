"""Approvals anchored at a run's creation: its lab marker and its allowed signers, whatever the inventory says later.

A run journals at creation whether it is a lab run and the sha256 of its
environment's allowed_signers; approve, resume and the engine use those, so a
copy of the inventory (``--project-dir``) can neither make a run a lab run after
the fact nor bring its own signers. And a run's chain is verified before a
command acts on it, from the last verified head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import pytest

from cutover.app.queries import load_run
from cutover.app.runs import approve_gate, check_auto_approve, create_run, drive_run
from cutover.core import records as r
from cutover.core.actions import Phase
from cutover.core.engine import Approval, DriveOptions
from cutover.core.state import RunStatus
from cutover.errors import InputError, JournalCorrupt
from cutover.journal.chaincheck import VerifiedHeads, check_run_chain
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

RUNBOOK = """
name: night
steps:
  - id: go
    kind: gate
    approvers:
      - {id: cm-duty-1, name: claire, role: change_manager}
      - {id: samu-med-1, name: marc, role: medical_lead}
    quorum: 2
  - id: act
    kind: command
    run: act
    rollback: {run: undo}
"""

SIGNERS = b"cm-duty-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDP46Ty2AkJe claire\n"


def created_as(journal: InMemoryJournal, *, lab: bool, signers: bytes | None = SIGNERS, run_id: str = "r1") -> str:
    """A run as `cutover run` creates it on a lab or a non-lab inventory (the non-lab one's files are not needed)."""
    scratch = InMemoryJournal()
    create_run(scratch, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id=run_id)
    created = r.read(scratch.events(run_id)[0])
    assert isinstance(created, r.RunCreated) and created.lab  # tiny_inventory is a lab
    digest = None if signers is None else hashlib.sha256(signers).hexdigest()
    anchored = dataclasses.replace(created, lab=lab, allowed_signers_sha256=digest)
    journal.append(run_id, anchored.KIND, anchored.to_payload())
    return run_id


def paused_at_go(journal: InMemoryJournal, *, lab: bool) -> None:
    created_as(journal, lab=lab)
    assert drive_run(journal, "r1", {"command": ScriptedExecutor()}, DriveOptions()) is RunStatus.PAUSED


def test_a_run_journals_at_creation_whether_it_is_a_lab_run_and_its_signers_digest():
    journal = InMemoryJournal()
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1")
    state = load_run(journal, "r1")
    assert state.lab is True
    assert state.allowed_signers_sha256 == hashlib.sha256(b"").hexdigest()  # no file: nobody may sign


def test_a_run_journalled_before_the_anchors_reads_as_not_a_lab_run_with_no_signers():
    journal = InMemoryJournal()
    created_as(journal, lab=True)
    payload = dict(journal.events("r1")[0].payload)
    del payload["lab"], payload["allowed_signers_sha256"]
    old = InMemoryJournal()
    old.append("r1", r.RunCreated.KIND, payload)
    state = load_run(old, "r1")
    assert (state.lab, state.allowed_signers_sha256) == (False, None)


def test_an_unsigned_approval_is_refused_in_a_run_not_created_as_a_lab_run_even_if_the_inventory_says_lab():
    journal = InMemoryJournal()
    paused_at_go(journal, lab=False)
    before = len(journal.events("r1"))
    with pytest.raises(InputError, match="not created as a lab run: an approval must be signed"):
        approve_gate(journal, "r1", "go", Approval("cm-duty-1", "ready"), tiny_inventory(lab=True))
    assert len(journal.events("r1")) == before


def test_auto_approve_on_resume_follows_the_run_not_the_inventory():
    journal = InMemoryJournal()
    created_as(journal, lab=False)
    with pytest.raises(InputError, match="not created as a lab run"):
        check_auto_approve(tiny_inventory(lab=True), "bot", load_run(journal, "r1"))
    check_auto_approve(tiny_inventory(lab=True), "bot")  # a new run on a lab inventory


def test_an_auto_or_unsigned_approval_found_in_a_non_lab_run_does_not_pass_its_gate():
    journal = InMemoryJournal()
    paused_at_go(journal, lab=False)
    # what a forger re-chaining the journal could insert: cutover never writes these outside a lab
    auto = r.GateApproved("go", "lab-bot", "lab", "lab auto-approval", auto=True)
    journal.append("r1", auto.KIND, auto.to_payload())
    for name, role in (("claire", "change_manager"), ("marc", "medical_lead")):
        unsigned = r.GateApproved("go", name, role, "ready")
        journal.append("r1", unsigned.KIND, unsigned.to_payload())
    executor = ScriptedExecutor()
    options = DriveOptions(auto_approve="lab-bot")  # and the engine writes no auto-approval of its own there
    assert drive_run(journal, "r1", {"command": executor}, options, command="resume") is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.gates["go"].passed_at is None and state.pause_reason == "gate"
    assert sum(a.auto for a in state.gates["go"].approvals) == 1
    assert executor.calls_for("act", Phase.ACTION) == []


def test_in_a_lab_run_an_auto_approval_passes_the_gate():
    journal = InMemoryJournal()
    created_as(journal, lab=True)
    options = DriveOptions(auto_approve="lab-bot")
    assert drive_run(journal, "r1", {"command": ScriptedExecutor()}, options) is RunStatus.COMPLETED


@pytest.mark.parametrize("anchored, message", [
    (SIGNERS + b"samu-med-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMallory mallory\n", "not the allowed_signers"),
    (None, "created before"),
])
def test_a_signed_approval_is_checked_only_against_the_signers_the_run_was_created_with(tmp_path: Path, anchored,
                                                                                         message):
    """An inventory copy listing another key (or a run without anchor) is refused before any signature check."""
    journal = InMemoryJournal()
    created_as(journal, lab=False, signers=anchored)
    assert drive_run(journal, "r1", {"command": ScriptedExecutor()}, DriveOptions()) is RunStatus.PAUSED
    (tmp_path / "allowed_signers").write_bytes(SIGNERS)
    elsewhere = dataclasses.replace(tiny_inventory(lab=False), path=tmp_path)
    signed = Approval("cm-duty-1", "ready", statement="{}", signature="-----BEGIN SSH SIGNATURE-----")
    with pytest.raises(InputError, match=message):
        approve_gate(journal, "r1", "go", signed, elsewhere)
    assert [e.kind for e in journal.events("r1")].count("gate_approved") == 0


# ---------------------------------------------------------------------- the chain, from the last verified head


def test_the_chain_check_remembers_the_head_and_then_reads_only_what_is_new(tmp_path: Path):
    journal = InMemoryJournal()
    created_as(journal, lab=True)
    heads = VerifiedHeads(tmp_path / "verified-heads.json")
    first = check_run_chain(journal, "r1", heads, "memory://j")
    assert first.events_checked == 1 and heads.get("memory://j") == (1, journal.events("r1")[0].hash)
    assert (tmp_path / "verified-heads.json").stat().st_mode & 0o777 == 0o600
    journal.append("r1", "drive_started", {"command": "run"})
    again = check_run_chain(journal, "r1", VerifiedHeads(tmp_path / "verified-heads.json"), "memory://j")
    assert again.events_checked == 1  # only the new event: the remembered head was the start


def test_an_event_inserted_after_the_verified_head_without_rechaining_stops_the_command(tmp_path: Path):
    journal = InMemoryJournal()
    created_as(journal, lab=False)
    heads = VerifiedHeads(tmp_path / "verified-heads.json")
    check_run_chain(journal, "r1", heads, "memory://j")
    forged = journal.append("r1", "gate_approved", {"step": "go", "approver": "lab-bot", "auto": True})
    journal.tamper(forged.seq, payload={"step": "go", "approver": "lab-bot", "auto": True, "reason": "x"})
    with pytest.raises(JournalCorrupt, match=f"event {forged.seq} .*does not match its hash"):
        check_run_chain(journal, "r1", heads, "memory://j")


def test_an_edit_before_the_verified_head_is_found_once_the_head_no_longer_matches(tmp_path: Path):
    journal = InMemoryJournal()
    created_as(journal, lab=False)
    journal.append("r1", "drive_started", {"command": "run"})
    heads = VerifiedHeads(tmp_path / "verified-heads.json")
    check_run_chain(journal, "r1", heads, "memory://j")
    journal.tamper(2, hash="0" * 64)  # the remembered head itself replaced
    with pytest.raises(JournalCorrupt, match="event 2"):
        check_run_chain(journal, "r1", heads, "memory://j")


def test_a_journal_started_afresh_is_verified_whole_and_its_new_head_remembered(tmp_path: Path):
    heads = VerifiedHeads(tmp_path / "verified-heads.json")
    old = InMemoryJournal()
    created_as(old, lab=True)
    old.append("r1", "drive_started", {"command": "run"})
    check_run_chain(old, "r1", heads, "memory://j")
    fresh = InMemoryJournal()  # the same URL, a new file: the remembered seq 2 is not in it
    created_as(fresh, lab=True)
    assert check_run_chain(fresh, "r1", heads, "memory://j").ok
    assert heads.get("memory://j") == (1, fresh.events("r1")[0].hash)


def test_the_board_verifies_the_chain_before_it_shows_a_run_and_stops_showing_it_on_a_break():
    """The web board folds what it shows from the journal too: an event slipped in by hand is never shown."""
    from cutover.web.app import create_app
    from cutover.web.security import Access
    from tests.unit.test_web import paused_at_go_no_go, serving

    journal = InMemoryJournal()
    paused_at_go_no_go(journal)
    with serving(create_app(journal, Access(token=None, loopback_only=True), poll_s=0.05)) as served:
        assert served.request("/api/runs/r")[0] == 200
        forged = journal.append("r", "gate_approved", {"step": "go-no-go", "approver": "lab-bot", "auto": True})
        journal.tamper(forged.seq, payload={**forged.payload, "reason": "forged"})
        time.sleep(0.1)  # past the board's poll period: it reads the journal again
        status, _, body = served.request("/api/runs/r?lang=en")
        assert status == 500 and b"hash chain is broken" in body, body
        status, _, page = served.request("/runs/r?lang=en")
        assert status == 500 and b"journal verify" in page
