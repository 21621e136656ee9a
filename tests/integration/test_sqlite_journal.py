"""The SQLite journal as a file: modes, settings, damage on disk, and other processes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.errors import CutoverError, JournalCorrupt, LeaseHeld
from cutover.journal.leases import current_holder
from cutover.journal.sqlite import SqliteJournal

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state / "journal.db"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _raw(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _fill(db: Path, count: int = 20) -> None:
    with SqliteJournal(db, "alice") as journal:
        for i in range(count):
            journal.append("night-1", "step_finished", {"step": "backup_mode", "target": f"SAMU-{i:02d}"})


def test_the_database_and_its_wal_files_are_owner_only(db: Path) -> None:
    with SqliteJournal(db, "alice") as journal:
        journal.append("r", "note", {})
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_journal_readable_by_others_is_tightened(db: Path) -> None:
    _fill(db, 1)
    os.chmod(db, 0o644)
    with SqliteJournal(db, "alice"):
        assert _mode(db) == 0o600


def test_wal_and_full_synchronous_writes_are_in_force(db: Path) -> None:
    with SqliteJournal(db, "alice") as journal:
        assert journal.pragmas()["journal_mode"] == "wal"
        assert journal.pragmas()["synchronous"] == 2  # FULL
    conn = sqlite3.connect(db)  # WAL is a property of the file, seen by any reader
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_sqlite_itself_refuses_to_update_or_delete_events(db: Path) -> None:
    _fill(db, 2)
    for statement in ("UPDATE events SET operator = 'mallory'", "DELETE FROM events WHERE seq = 2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            _raw(db, statement)


def test_events_and_the_chain_survive_reopening(db: Path) -> None:
    _fill(db, 3)
    with SqliteJournal(db, "bob") as journal:
        event = journal.append("night-1", "note", {})
        assert (event.seq, event.operator, journal.verify().ok) == (4, "bob", True)
        assert [e.operator for e in journal.events("night-1")] == ["alice"] * 3 + ["bob"]


def test_one_byte_changed_in_a_payload_on_disk_names_the_event(db: Path) -> None:
    _fill(db)
    _raw(db, "PRAGMA wal_checkpoint(TRUNCATE)")  # every event is in the main file now
    data = bytearray(db.read_bytes())
    offset = data.index(b'"SAMU-07"')
    assert data.count(b'"SAMU-07"') == 1
    data[offset + 7] = ord("8")  # SAMU-07 -> SAMU-08
    db.write_bytes(bytes(data))
    with SqliteJournal(db, "alice") as journal:
        report = journal.verify()
    assert report.first_bad is not None
    assert (report.first_bad.seq, report.first_bad.payload["target"]) == (8, "SAMU-08")
    assert "edited" in report.reason


def _rewrite_payload(db: Path, seq: int, text: str) -> None:
    _raw(db, "DROP TRIGGER events_no_update", f"UPDATE events SET payload = '{text}' WHERE seq = {seq}")


def test_a_payload_rewritten_with_the_same_content_but_other_bytes_is_detected(db: Path) -> None:
    _fill(db, 3)
    _rewrite_payload(db, 2, '{"step": "backup_mode", "target": "SAMU-01"}')  # spaces added
    with SqliteJournal(db, "alice") as journal:
        report = journal.verify()
    assert report.first_bad is not None and report.first_bad.seq == 2


def test_an_unreadable_payload_is_journal_corrupt_when_read_and_named_by_verify(db: Path) -> None:
    _fill(db, 3)
    _rewrite_payload(db, 2, '{"step":"backup_mo')
    with SqliteJournal(db, "alice") as journal:
        with pytest.raises(JournalCorrupt, match="event 2 of run night-1"):
            journal.events("night-1")
        report = journal.verify()
    assert report.first_bad is not None and report.first_bad.seq == 2


def test_a_file_that_is_not_a_database_is_journal_corrupt_with_a_hint(db: Path) -> None:
    _fill(db)
    data = bytearray(db.read_bytes())
    data[0:6] = b"XQLite"  # the file header's magic string
    db.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="not a database") as raised:
        SqliteJournal(db, "alice")
    assert raised.value.hint


def test_a_damaged_page_header_is_journal_corrupt_on_verify(db: Path) -> None:
    _fill(db)
    page_size = 4096
    conn = sqlite3.connect(db)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size
    conn.close()
    data = bytearray(db.read_bytes())
    data[(root - 1) * page_size] = 0x6B  # the b-tree page type byte: no valid page has this type
    db.write_bytes(bytes(data))
    with SqliteJournal(db, "alice") as journal, pytest.raises(JournalCorrupt) as raised:
        journal.verify()
    assert raised.value.hint


def test_two_journals_on_one_file_append_concurrently_into_one_chain(db: Path) -> None:
    first, second = SqliteJournal(db, "alice"), SqliteJournal(db, "bob")  # as two processes would

    def work(journal: SqliteJournal) -> None:
        for i in range(100):
            journal.append(journal.operator, "note", {"i": i})

    threads = [threading.Thread(target=work, args=(j,)) for j in (first, second) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = first.verify()
    assert (report.ok, report.events_checked) == (True, 600)
    first.close()
    second.close()


def test_appends_fail_cleanly_while_another_process_holds_the_write_lock(db: Path) -> None:
    with SqliteJournal(db, "alice", busy_timeout=0.05) as journal:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        errors: list[Exception] = []

        def work() -> None:
            try:
                journal.append("r", "note", {})
            except CutoverError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert len(errors) == 3 and all("locked" in e.message for e in errors)
        assert journal.append("r", "note", {}).seq == 1 and journal.verify().ok


# --- a lease held by another process ---

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cutover.journal.leases import current_holder
    from cutover.journal.sqlite import SqliteJournal
    journal = SqliteJournal(Path(sys.argv[1]), "carol")
    journal.acquire_lease("night-1", current_holder("carol"))
    journal.append("night-1", "step_started", {"step": "freeze_legacy"})
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def holder_process(db: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_lease_held_by_a_live_process_is_refused_naming_it(db: Path, holder_process: subprocess.Popen[str]) -> None:
    with SqliteJournal(db, "alice") as journal:
        with pytest.raises(LeaseHeld) as refused:
            journal.acquire_lease("night-1", current_holder("alice"), take_over=True)
    assert f"carol on {socket.gethostname()} (pid {holder_process.pid}) since" in refused.value.message


def test_a_killed_holder_on_this_host_is_taken_over_without_a_flag_saying_why(
        db: Path, holder_process: subprocess.Popen[str]) -> None:
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait()
    me = current_holder("alice")
    with SqliteJournal(db, "alice") as journal:
        journal.acquire_lease("night-1", me)  # provably dead: same host, process gone
        kinds = [e.kind for e in journal.events("night-1")]
        taken = journal.events("night-1")[-1]
        assert journal.verify().ok
    # the killed process's append had returned, so it was durable
    assert kinds == ["lease_acquired", "step_started", "lease_taken_over"]
    assert taken.payload["previous_holder"]["pid"] == holder_process.pid
    assert taken.payload["holder"] == me.to_payload()
    assert f"process {holder_process.pid} is no longer running" in taken.payload["reason"]
