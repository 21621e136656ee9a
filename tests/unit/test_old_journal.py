"""A journal written by main before waves and hardening (commit e03a4f1) still folds, to the same state.

``tests/fixtures/journal-main-e03a4f1.db`` was written by that version (three
runs: a pause within budget, gate approvals, a failed verification, an
exclusion, a completion; a full rollback; a timeout left in doubt), and
``journal-main-e03a4f1.status.json`` is what its ``status --json`` said of each
run. Today's typed events and fold must read the same file to the same state,
and its chain must still verify, read-only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cutover.app.queries import status_json
from cutover.core.state import fold
from cutover.journal.sqlite import SqliteJournal, verify_journal_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
JOURNAL = FIXTURES / "journal-main-e03a4f1.db"


def _as_old(new: object, old: object) -> object:
    """NEW with only the fields OLD has, at every level: fields added since (signed approvals...) are additive."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {key: _as_old(new.get(key), value) for key, value in old.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [_as_old(n, o) for n, o in zip(new, old)]
    return new


def test_an_old_journal_verifies_read_only_and_folds_to_the_state_it_had(tmp_path: Path):
    evidence = tmp_path / "evidence" / "journal.db"  # SQLite adds its -shm beside a WAL file it reads
    evidence.parent.mkdir()
    shutil.copy(JOURNAL, evidence)
    report = verify_journal_file(evidence)
    assert report.ok and report.events_checked == 117
    assert evidence.read_bytes() == JOURNAL.read_bytes()  # verify wrote nothing
    copy = tmp_path / "journal.db"
    shutil.copy(JOURNAL, copy)
    expected = json.loads((FIXTURES / "journal-main-e03a4f1.status.json").read_text())
    with SqliteJournal(copy, "auditor") as journal:  # opening upgrades the schema of the copy
        assert journal.runs() == ["r1", "r2", "r3"]
        for run_id, old in expected.items():
            new = status_json(fold(journal.events(run_id)))
            assert _as_old(new, old) == old, run_id
            assert new["kind"] == "rehearsal" and new["params"] == {} and new["wave"] is None
