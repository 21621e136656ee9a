"""The Journal contract, run against the in-memory journal and the SQLite one alike."""

from __future__ import annotations

import itertools
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cutover.core.events import GENESIS, Event, Journal, LeaseHolder, canonical_json, event_hash, utc_now
from cutover.errors import ClaimHeld, CutoverError, LeaseHeld, LeaseLost, NotFound
from cutover.journal.leases import current_holder, process_start_time
from cutover.journal.postgres import PostgresJournal, init_schema
from cutover.journal.sqlite import SqliteJournal
from cutover.testing import InMemoryJournal
from cutover.testing.postgres import PostgresServer, start_postgres


@dataclass
class Kit:
    """Opens journals of one implementation and damages them the way an intruder (or a bug) would."""

    make: Callable[..., Any]
    edit: Callable[[Any, int, dict[str, Any]], None]
    delete: Callable[[Any, int], None]


def _sqlite_raw(journal: SqliteJournal, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(journal.path)  # a second connection, as another program would use
    try:
        with conn:
            conn.execute("DROP TRIGGER IF EXISTS events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
            conn.execute(sql, args)
    finally:
        conn.close()


def _sqlite_edit(journal: SqliteJournal, seq: int, changes: dict[str, Any]) -> None:
    columns = {k: canonical_json(v) if k == "payload" else v for k, v in changes.items()}
    assignments = ", ".join(f"{name} = ?" for name in columns)
    _sqlite_raw(journal, f"UPDATE events SET {assignments} WHERE seq = ?", *columns.values(), seq)


def _memory_edit(journal: InMemoryJournal, seq: int, changes: dict[str, Any]) -> None:
    journal.tamper(seq, **changes)


def _pg_raw(journal: PostgresJournal, statement: str, *args: Any) -> None:
    """As the database owner would, triggers off: what the journal cannot prevent, only detect."""
    import psycopg

    with psycopg.connect(_OWNERS[journal.url], autocommit=True) as conn:
        conn.execute("ALTER TABLE cutover_events DISABLE TRIGGER USER")
        conn.execute(statement, args)
        conn.execute("ALTER TABLE cutover_events ENABLE TRIGGER USER")


def _pg_edit(journal: PostgresJournal, seq: int, changes: dict[str, Any]) -> None:
    columns = {k: canonical_json(v) if k == "payload" else v for k, v in changes.items()}
    assignments = ", ".join(f"{name} = %s" for name in columns)
    _pg_raw(journal, f"UPDATE cutover_events SET {assignments} WHERE seq = %s", *columns.values(), seq)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


def _fresh_database(server: PostgresServer) -> str:
    """A new journal database; the journal under test writes through the controller role, as a night does."""
    import psycopg

    name = f"journal_{next(_DATABASES)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    owner = server.url.replace("/postgres?", f"/{name}?")
    init_schema(owner, controller_password=_CONTROLLER_PW)
    controller = server.url_for("cutover_controller", _CONTROLLER_PW, name)
    _OWNERS[controller] = owner
    return controller


_DATABASES = itertools.count(1)
_CONTROLLER_PW = "contract-controller-pw"
_OWNERS: dict[str, str] = {}  # controller URL -> owner URL of the same database (for the tampering helpers)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    opened: list[Any] = []

    def make(**options: Any) -> Any:
        if request.param == "memory":
            journal: Any = InMemoryJournal("alice", **options)
        elif request.param == "sqlite":
            journal = SqliteJournal(tmp_path / f"journal-{len(opened)}.db", "alice", **options)
        else:
            journal = PostgresJournal(_fresh_database(request.getfixturevalue("postgres")), "alice", **options)
        opened.append(journal)
        return journal

    if request.param == "memory":
        yield Kit(make, _memory_edit, lambda j, seq: j.drop(seq))
    elif request.param == "sqlite":
        yield Kit(make, _sqlite_edit, lambda j, seq: _sqlite_raw(j, "DELETE FROM events WHERE seq = ?", seq))
    else:
        yield Kit(make, _pg_edit, lambda j, seq: _pg_raw(j, "DELETE FROM cutover_events WHERE seq = %s", seq))
    for journal in opened:
        journal.close()


@pytest.fixture
def journal(kit: Kit) -> Any:
    return kit.make()


def _fill(journal: Journal, count: int = 5) -> list[Event]:
    return [journal.append(f"run-{i % 2}", "step_started", {"step": f"s{i}", "target": "30"}) for i in range(count)]


def _holder(operator: str, *, host: str | None = None, pid: int | None = None, start: str | None = None) -> LeaseHolder:
    pid = os.getppid() if pid is None else pid  # our parent: alive, and not us
    return LeaseHolder(host or socket.gethostname(), pid, operator, utc_now(),
                       process_start_time(pid) if start is None else start)


# --- appending and reading ---

def test_appended_events_form_a_hash_chain_from_genesis(journal: Journal) -> None:
    first, second = _fill(journal, 2)
    assert (first.seq, first.prev_hash, second.seq, second.prev_hash) == (1, GENESIS, 2, first.hash)
    assert first.hash == event_hash(1, "run-0", "step_started", first.at, "alice", first.payload, GENESIS)
    assert second.expected_hash() == second.hash


def test_every_event_carries_the_journal_operator(journal: Journal) -> None:
    assert {event.operator for event in _fill(journal)} == {"alice"}


def test_events_returns_one_run_in_seq_order_as_appended(journal: Journal) -> None:
    appended = _fill(journal, 6)
    assert journal.events("run-1") == [e for e in appended if e.run_id == "run-1"]
    assert [e.seq for e in journal.events("run-0")] == [1, 3, 5]


def test_events_of_an_unknown_run_is_empty(journal: Journal) -> None:
    _fill(journal)
    assert journal.events("never") == []


def test_runs_are_listed_in_order_of_their_first_event(journal: Journal) -> None:
    for run in ["b", "a", "b", "c", "a"]:
        journal.append(run, "note", {})
    assert journal.runs() == ["b", "a", "c"]


def test_payload_is_stored_as_canonical_json(journal: Journal) -> None:
    event = journal.append("r", "note", {"b": (1, 2), "a": "é"})
    assert event.payload == {"a": "é", "b": [1, 2]}
    assert journal.events("r") == [event]


HOSTILE_TEXT = ['quote " backslash \\ slash /', "controls \x01\x07\x08\x0c\n\r\t\x1b\x1f\x7f", "é ß 中文 😀 \u2028\u2029",
                "\u202e right-to-left", "</script><b>", "\\u0041 not an escape", "\ud7ff\ue000\uffff"]


def test_text_that_json_escapes_hashes_the_same_in_every_journal(journal: Journal) -> None:
    """PostgreSQL's append function chains in SQL: its bytes must be Python's, or copies stop verifying."""
    for text in HOSTILE_TEXT:
        event = journal.append(f"run {text}", f"kind {text}", {text: [text, 1.5, -2, None, True], "n": {text: text}})
        assert event.hash == event_hash(event.seq, f"run {text}", f"kind {text}", event.at, "alice",
                                        event.payload, event.prev_hash)
    report = journal.verify()
    assert (report.ok, report.events_checked) == (True, len(HOSTILE_TEXT))


def test_a_payload_that_is_not_json_fails_alone(journal: Journal) -> None:
    with pytest.raises(TypeError):
        journal.append("r", "note", {"bad": object()})
    assert journal.append("r", "note", {}).seq == 1
    assert journal.verify().ok


def test_concurrent_appends_keep_one_valid_chain(journal: Journal) -> None:
    def work(thread: int) -> None:
        for i in range(50):
            journal.append(f"run-{thread}", "step_finished", {"i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = journal.verify()
    assert (report.ok, report.events_checked) == (True, 500)
    assert all([e.payload["i"] for e in journal.events(f"run-{t}")] == list(range(50)) for t in range(10))


def test_append_after_close_is_refused(journal: Journal) -> None:
    journal.close()
    with pytest.raises(CutoverError, match="closed"):
        journal.append("r", "note", {})


# --- verify ---

def test_verify_of_an_untouched_journal_is_ok_and_names_its_runs(journal: Journal) -> None:
    _fill(journal)
    report = journal.verify()
    assert (report.ok, report.events_checked, report.runs) == (True, 5, ("run-0", "run-1"))


def test_verify_of_one_run_checks_the_whole_chain(journal: Journal) -> None:
    _fill(journal)
    report = journal.verify("run-1")
    assert (report.ok, report.events_checked, report.runs) == (True, 5, ("run-1",))


def test_verify_of_an_unknown_run_is_not_found(journal: Journal) -> None:
    _fill(journal)
    with pytest.raises(NotFound):
        journal.verify("never")


def test_an_edited_payload_is_the_first_bad_event(kit: Kit) -> None:
    journal = kit.make()
    _fill(journal)
    kit.edit(journal, 3, {"payload": {"step": "s2", "target": "31"}})
    report = journal.verify()
    assert not report.ok and report.first_bad is not None
    assert (report.first_bad.seq, report.first_bad.payload["target"]) == (3, "31")
    assert "edited" in report.reason


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(kit: Kit) -> None:
    journal = kit.make()
    events = _fill(journal)
    e = events[1]
    forged = event_hash(e.seq, e.run_id, e.kind, e.at, "mallory", e.payload, e.prev_hash)
    kit.edit(journal, 2, {"operator": "mallory", "hash": forged})
    report = journal.verify()
    assert report.first_bad is not None and report.first_bad.seq == 3
    assert "does not link to event 2" in report.reason


def test_a_deleted_event_is_reported_at_the_gap(kit: Kit) -> None:
    journal = kit.make()
    _fill(journal)
    kit.delete(journal, 2)
    report = journal.verify()
    assert report.first_bad is not None and report.first_bad.seq == 3
    assert "event 2 deleted" in report.reason


def test_deleting_the_newest_event_is_detected_by_the_head(kit: Kit) -> None:
    journal = kit.make()
    _fill(journal)
    kit.delete(journal, 5)
    report = journal.verify()
    assert not report.ok and report.first_bad is None
    assert "head records event 5 but the last event is 4" in report.reason


# --- leases ---

def test_a_free_run_is_leased_and_the_acquisition_journalled(journal: Journal) -> None:
    me = current_holder("alice")
    journal.acquire_lease("r", me)
    assert journal.lease_holder("r") == me
    (event,) = journal.events("r")
    assert (event.kind, event.payload) == ("lease_acquired", {"holder": me.to_payload(), "epoch": 1})


def test_the_same_holder_may_acquire_again_without_a_new_event(journal: Journal) -> None:
    me = current_holder("alice")
    journal.acquire_lease("r", me)
    journal.acquire_lease("r", LeaseHolder(me.host, me.pid, me.operator, "later", me.process_start))
    assert [e.kind for e in journal.events("r")] == ["lease_acquired"]
    assert journal.lease_holder("r") == me  # still held since the first acquisition


def test_a_live_holder_is_refused_even_with_take_over_and_named(journal: Journal) -> None:
    other = _holder("bob")
    journal.acquire_lease("r", other)
    for take_over in (False, True):
        with pytest.raises(LeaseHeld) as refused:
            journal.acquire_lease("r", current_holder("alice"), take_over=take_over)
        assert f"bob on {other.host} (pid {other.pid}) since {other.since}" in refused.value.message
        assert refused.value.hint
    assert journal.lease_holder("r") == other


def test_a_provably_dead_holder_is_taken_over_without_a_flag_and_the_reason_journalled(journal: Journal) -> None:
    dead = _holder("bob", pid=os.getpid(), start="1")  # our pid with another start time: a recycled pid
    me = current_holder("alice")
    assert journal.acquire_lease("r", dead) == 1
    assert journal.acquire_lease("r", me) == 2
    assert journal.lease_holder("r") == me
    last = journal.events("r")[-1]
    assert last.kind == "lease_taken_over"
    assert last.payload["previous_holder"] == dead.to_payload() and last.payload["epoch"] == 2
    assert f"process {os.getpid()} is no longer running" in last.payload["reason"]


def test_a_holder_on_another_host_is_live_while_its_heartbeat_is_fresh(kit: Kit) -> None:
    journal = kit.make(stale_after=60)
    journal.acquire_lease("r", _holder("bob", host="elsewhere.invalid"))
    with pytest.raises(LeaseHeld, match="driven by bob on elsewhere.invalid"):
        journal.acquire_lease("r", current_holder("alice"), take_over=True)


def test_a_holder_on_another_host_without_recent_heartbeat_is_stale(kit: Kit) -> None:
    journal = kit.make(stale_after=0)
    journal.acquire_lease("r", _holder("bob", host="elsewhere.invalid"))
    with pytest.raises(LeaseHeld, match="no heartbeat from elsewhere.invalid"):
        journal.acquire_lease("r", current_holder("alice"))
    journal.acquire_lease("r", current_holder("alice"), take_over=True)


def test_heartbeat_is_refused_to_a_controller_that_lost_the_lease(journal: Journal) -> None:
    me, other = current_holder("alice"), _holder("bob")
    journal.acquire_lease("r", me)
    journal.heartbeat("r", me)
    with pytest.raises(LeaseLost, match="lost the lease on run r: it is now held by alice"):
        journal.heartbeat("r", other)


def test_a_fenced_controller_taken_over_can_append_nothing_more(kit: Kit) -> None:
    """The SIGSTOP case: a stale driver on another host comes back after a takeover; its appends are refused."""
    journal = kit.make(stale_after=0)
    stale = _holder("bob", host="elsewhere.invalid")
    epoch = journal.acquire_lease("r", stale)
    journal.fence("r", stale, epoch)
    journal.append("r", "step_started", {"step": "s1"})
    rescuer = current_holder("alice")
    assert journal.acquire_lease("r", rescuer, take_over=True) == epoch + 1
    before = len(journal.events("r"))
    with pytest.raises(LeaseLost, match="it is now held by alice"):
        journal.append("r", "step_succeeded", {"step": "s1"})
    assert len(journal.events("r")) == before
    assert journal.verify().ok


def test_appends_from_others_are_not_fenced_and_a_released_lease_keeps_its_epoch(journal: Journal) -> None:
    me = current_holder("alice")
    epoch = journal.acquire_lease("r", me)
    journal.fence("r", me, epoch)
    journal.append("r", "step_started", {"step": "s1"})  # ours, fenced and still holding
    journal.release_lease("r", me)
    assert journal.acquire_lease("r", _holder("bob", host="elsewhere.invalid")) == epoch + 1


def test_release_frees_the_run_and_is_journalled(journal: Journal) -> None:
    me = current_holder("alice")
    journal.acquire_lease("r", me)
    journal.release_lease("r", me)
    journal.release_lease("r", me)  # releasing a free run is a no-op
    assert journal.lease_holder("r") is None
    assert [e.kind for e in journal.events("r")] == ["lease_acquired", "lease_released"]


def test_release_by_someone_else_is_refused(journal: Journal) -> None:
    journal.acquire_lease("r", current_holder("alice"))
    with pytest.raises(LeaseHeld):
        journal.release_lease("r", _holder("bob"))


def test_leases_are_per_run(journal: Journal) -> None:
    journal.acquire_lease("r1", _holder("bob"))
    journal.acquire_lease("r2", current_holder("alice"))
    assert journal.lease_holder("r2") is not None and journal.lease_holder("r2").operator == "alice"


# --- claims: one night per SAMU ---

def _created(samus: tuple[str, ...], *, env: str = "production", partitions: tuple[str, ...] = (),
             label: str | None = None) -> dict[str, Any]:
    from cutover.core import records as r

    created = r.RunCreated(r.RunbookRef("bigbang"), env, (), label=label, claims=r.Claims(samus, partitions))
    return created.to_payload()


def test_a_run_overlapping_an_unfinished_run_is_refused_naming_it_and_nothing_is_written(journal: Journal) -> None:
    journal.create_run("rep1", _created(("samu-01", "samu-02"), label="répétition 1"))
    head = journal.verify().events_checked
    with pytest.raises(ClaimHeld, match=r"run rep1 \(répétition 1\) holds samu-02; it is paused .* created by alice"):
        journal.create_run("doublon", _created(("samu-02", "samu-03")))
    assert journal.events("doublon") == [] and journal.verify().events_checked == head
    journal.create_run("p1", _created(("samu-09",), partitions=("legacy/samu-09",)))
    with pytest.raises(ClaimHeld, match="holds legacy/samu-09"):  # a platform partition is claimed as well
        journal.create_run("p2", _created((), partitions=("legacy/samu-09",)))


def test_runs_over_disjoint_samus_or_other_environments_are_created_side_by_side(journal: Journal) -> None:
    journal.create_run("wave1", _created(("samu-01",)))
    journal.create_run("wave2", _created(("samu-13",)))
    journal.create_run("lab1", _created(("samu-01",), env="lab"))
    assert journal.runs() == ["wave1", "wave2", "lab1"]


@pytest.mark.parametrize("ending", ["run_completed", "run_rolled_back", "run_abandoned"])
def test_claims_end_when_the_run_completes_is_rolled_back_or_is_abandoned(journal: Journal, ending: str) -> None:
    journal.create_run("first", _created(("samu-01",)))
    journal.append("first", "run_failed", {"detail": "freeze failed"})
    with pytest.raises(ClaimHeld, match="it is failed"):  # failed and not rolled back: still held
        journal.create_run("second", _created(("samu-01",)))
    journal.append("first", ending, {"reason": "junk"} if ending == "run_abandoned" else {})
    journal.create_run("second", _created(("samu-01",)))
    assert journal.events("second")[0].kind == "run_created"


def test_a_run_id_is_created_once(journal: Journal) -> None:
    journal.create_run("r1", _created(()))
    with pytest.raises(CutoverError, match="already exists"):
        journal.create_run("r1", _created(()))


def test_two_creations_at_the_same_instant_over_one_samu_let_exactly_one_through(kit: Kit) -> None:
    """Two journals (two controllers) on one store, released together: one run is created, the other refused."""
    first = kit.make()
    if isinstance(first, SqliteJournal):
        second: Any = SqliteJournal(first.path, "bob")
    elif isinstance(first, PostgresJournal):
        second = PostgresJournal(first.url, "bob")
    else:  # in memory, one store is one object
        second = first
    barrier, outcomes = threading.Barrier(2), []

    def create(journal: Any, run_id: str) -> None:
        barrier.wait()
        try:
            journal.create_run(run_id, _created(("samu-05",)))
            outcomes.append("created")
        except ClaimHeld:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(j, name)) for j, name in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if second is not first:
        second.close()
    assert sorted(outcomes) == ["created", "refused"]
    assert len([r for r in first.runs() if r in ("a", "b")]) == 1
