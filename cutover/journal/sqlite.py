"""The SQLite journal: append-only, hash-chained, durable, with one lease per run.

One file (``<state_dir>/journal.db``) in WAL mode with ``synchronous=FULL``, so
an event is on disk when :meth:`SqliteJournal.append` returns. Tables:

``events``  append-only (triggers abort UPDATE and DELETE); each row's
            ``prev_hash`` is the previous row's ``hash`` across the whole file.
``head``    one row, the last seq and hash, written in the same transaction as
            the events, so deleting the newest events is detected as well.
``leases``  mutable, one row per driven run with its holder and an epoch that
            grows with every new holder; every change of holder is also
            appended to ``events`` in the same transaction (the audit trail).

Fencing: a controller that acquired a run's lease ``fence``s its journal
with the epoch it got. From then on every append for that run checks, in
the same transaction as the insert, that the lease still has that holder and
epoch; a controller that was taken over (frozen VM, partition, SIGSTOP past
its staleness) gets ``LeaseLost`` on its first append and writes nothing.

Concurrency: engine threads call ``append`` at once (a fan-out of 10-100
targets). Appends are group-committed: one caller at a time leads, writing
every pending event in one transaction (one fsync), while the others wait for
their own event to be durable. Other processes (``cutover approve``) may append
to the same file: the head is read inside each ``BEGIN IMMEDIATE`` transaction,
never cached, so the chain stays linear across processes.

The pure rules (verifying a chain, deciding a lease, fencing) are in
:mod:`cutover.core.journal_rules`, so every journal, the in-memory one of
:mod:`cutover.testing` included, applies exactly the same ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from cutover.core.claims import check_claims
from cutover.core.events import (
    GENESIS,
    Event,
    Journal,
    LeaseHolder,
    VerifyReport,
    canonical_json,
    event_hash,
    utc_now,
)
from cutover.core.journal_rules import (
    STALE_AFTER,
    check_fence,
    since_fault,
    verify_chain,
)
from cutover.errors import ClaimHeld, CutoverError, InputError, JournalCorrupt, LeaseHeld, LeaseLost, NotFound
from cutover.journal import crashpoint
from cutover.journal.leases import LeaseTable

BUSY_TIMEOUT = 10.0  # seconds to wait for another process's write transaction
MAX_BATCH = 1000  # events per group commit; bounds one transaction's size
SCHEMA_VERSION = 2  # 2: leases.epoch (fencing)
PRIVATE = 0o600


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS head_forward_only BEFORE UPDATE ON head WHEN NEW.seq < OLD.seq
BEGIN SELECT RAISE(ABORT, 'the journal head only moves forward'); END;
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,          -- '' once released (the row keeps the epoch)
    heartbeat_at TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0
);
"""

_SCHEMA_OBJECTS = frozenset(line.split()[5] for line in _SCHEMA.splitlines()
                            if line.startswith(("CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS",
                                                "CREATE TRIGGER IF NOT EXISTS")))

_COLUMNS = "seq, run_id, kind, at, operator, payload, prev_hash, hash"
LEASES = LeaseTable("leases", "?")


# --- the SQLite journal -----------------------------------------------------------

class _Pending:
    """One append waiting for a group commit."""

    __slots__ = ("run_id", "kind", "payload", "payload_json", "at", "operator", "done", "event", "error", "wake")

    def __init__(self, run_id: str, kind: str, payload: Mapping[str, Any], operator: str = "") -> None:
        # serialised by the caller, so a payload that is not JSON fails its own append only
        self.payload_json = canonical_json(dict(payload))
        self.payload: dict[str, Any] = json.loads(self.payload_json)
        self.run_id, self.kind, self.at, self.operator = run_id, kind, "", operator
        self.done = False
        self.event: Event | None = None
        self.error: Exception | None = None
        self.wake: Any = None  # a held lock, released once: "done" or "you lead now"

    def outcome(self) -> Event:
        if self.error is not None:
            raise _copy_error(self.error) from self.error
        assert self.event is not None
        return self.event


class SqliteJournal:
    """The Journal protocol on one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, operator: str, *, stale_after: float = STALE_AFTER,
                 max_batch: int = MAX_BATCH, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.operator = operator
        self.stale_after = stale_after
        self._max_batch = max(1, max_batch)
        self._mutex = threading.Lock()  # guards _queue, _leader, _closed
        self._idle = threading.Condition(self._mutex)  # notified when nobody leads any more
        self._queue: list[_Pending] = []
        self._leader: _Pending | None = None  # whose caller commits batches now
        self._closed = False
        self._fences: dict[str, tuple[LeaseHolder, int]] = {}  # run -> (our holder, our epoch)
        self._crash = crashpoint.from_environment()  # test-only fault hook (cutover/journal/crashpoint.py)
        self._write_lock = threading.Lock()  # the write connection: one transaction at a time
        self._read_lock = threading.Lock()
        self._write, self._read = _open(self.path, busy_timeout)
        _OPEN_HERE.add(self)

    # -- appending (group commit) --
    #
    # Leader/follower: the first caller finding no leader leads; it commits the queue in
    # one transaction, wakes the callers whose events it wrote, and hands the lead to the
    # oldest caller still queued. Each waiter sleeps on its own lock (no thundering herd).

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event:
        ordinal = self._crash.before_append() if self._crash.armed else 0
        event = self._append(run_id, kind, payload)
        if ordinal:
            self._crash.after_append(ordinal)
        return event

    def _append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event:
        item = _Pending(run_id, kind, payload)
        with self._mutex:
            self._check_open()
            item.at = utc_now()  # under the lock, so queue order (hence seq order) follows time
            self._queue.append(item)
            if self._leader is None:
                self._leader = item
            else:
                item.wake = threading.Lock()
                item.wake.acquire()
        if item.wake is not None:
            self._sleep(item)
        while not item.done:  # woken without being done: we lead now
            self._lead_once(item)
        return item.outcome()

    def _sleep(self, item: _Pending) -> None:
        try:
            item.wake.acquire()
        except BaseException:  # Ctrl-C while waiting: leave no orphan in the queue or the lead
            with self._mutex:
                if item in self._queue:
                    self._queue.remove(item)  # never taken: it will never be written
                if self._leader is item:
                    self._hand_over()
            raise

    def _lead_once(self, mine: _Pending) -> None:
        """Commit the oldest queued events in one transaction, then wake their callers."""
        batch: list[_Pending] = []
        error: Exception | None = None
        try:
            with self._transaction() as conn:
                head = _read_head(conn)
                # taken as late as possible: callers that queued while we waited for
                # SQLite's write lock ride in this transaction too
                batch = self._take_batch()
                self._check_fences(conn, batch)
                self._insert(conn, batch, head)
        except Exception as exc:  # every caller in the batch gets it; none of its events is written
            error = exc
            batch = batch or self._take_batch()  # failed before taking it (busy, I/O): fail it, never spin
        finally:
            with self._mutex:
                for item in batch:
                    item.done, item.error = True, error
                    if error is not None:
                        item.event = None
                if mine.done:
                    self._hand_over()
            for item in batch:
                if item is not mine:
                    item.wake.release()

    def _take_batch(self) -> list[_Pending]:
        # the leader is always the oldest queued caller, so its own event is in the batch
        with self._mutex:
            batch = self._queue[:self._max_batch]
            del self._queue[:self._max_batch]
            return batch

    def _hand_over(self) -> None:
        """Pass the lead to the oldest queued caller, or to nobody; the caller holds _mutex."""
        if self._queue:
            self._leader = self._queue[0]
            self._leader.wake.release()
        else:
            self._leader = None
            self._idle.notify_all()

    def _check_fences(self, conn: sqlite3.Connection, items: list[_Pending]) -> None:
        """In the insert's own transaction: every fenced run still has our holder and epoch."""
        for run_id in {item.run_id for item in items} & self._fences.keys():
            current, _, epoch = LEASES.row(conn, run_id)
            check_fence(run_id, self._fences[run_id], current, epoch)

    def _insert(self, conn: sqlite3.Connection, items: list[_Pending], head: tuple[int, str]) -> None:
        """Chain ``items`` after ``head`` (read in this transaction), insert them, move the head."""
        seq, prev = head
        rows = []
        for item in items:
            seq += 1
            operator = item.operator or self.operator
            digest = event_hash(seq, item.run_id, item.kind, item.at, operator, item.payload, prev)
            item.event = Event(seq, item.run_id, item.kind, item.at, operator, item.payload, prev, digest)
            rows.append((seq, item.run_id, item.kind, item.at, operator, item.payload_json, prev, digest))
            prev = digest
        conn.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO head (id, seq, hash) VALUES (1, ?, ?) "
                     "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, prev))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes SQLite's write lock up front (waiting up to BUSY_TIMEOUT for
        # another process), so the head we read cannot move before we commit.
        with self._write_lock, _translated(self.path):
            conn = self._write
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")  # synchronous=FULL: the WAL is fsynced before this returns
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def create_run(self, run_id: str, payload: Mapping[str, Any]) -> Event:
        """The run's creation, appended in the transaction that checks its id and its claims.

        BEGIN IMMEDIATE holds SQLite's write lock from the first read: another
        process creating a run at the same instant waits, then sees this one.
        """
        self._check_open()
        item = _Pending(run_id, "run_created", payload)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM events WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                raise InputError(f"run {run_id!r} already exists", hint=f"continue it with `cutover resume {run_id}`")
            creations = [(other, _decode(text)[0]) for other, text in
                         conn.execute("SELECT run_id, payload FROM events WHERE kind = 'run_created' ORDER BY seq")]
            check_claims(run_id, item.payload, creations, lambda other: _run_events(conn, other))
            ordinal = self._crash.before_append() if self._crash.armed else 0
            item.at = utc_now()
            self._insert(conn, [item], _read_head(conn))
        if ordinal:
            self._crash.after_append(ordinal)
        return item.outcome()

    def import_run(self, run_id: str, events: list[Event]) -> None:
        """Chain another journal's events of one run into this one, in one transaction.

        Each keeps its kind, time, operator and payload (what timings and
        reports read); it gets this journal's seq and hashes. The caller has
        verified the events' own hashes (``cutover.app.transfer``).
        """
        self._check_open()
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM events WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                raise InputError(f"run {run_id!r} is already in this journal", hint="nothing was imported")
            items = []
            for event in events:
                item = _Pending(run_id, event.kind, event.payload, event.operator)
                item.at = event.at
                items.append(item)
            self._insert(conn, items, _read_head(conn))

    # -- reading --

    def events(self, run_id: str) -> list[Event]:
        """The run's events in seq order; [] for a run the journal has never seen."""
        with self._reading() as conn:
            return _run_events(conn, run_id)

    def runs(self) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute("SELECT run_id FROM events GROUP BY run_id ORDER BY MIN(seq)")
            return [run_id for (run_id,) in rows]

    def verify(self, run_id: str | None = None) -> VerifyReport:
        """Check the whole file's chain; ``run_id`` only names the run the report is about."""
        with self._reading() as conn:
            _check_integrity(conn, self.path)
            conn.execute("BEGIN")  # one snapshot for the head and the events
            try:
                runs = self._runs_to_report(conn, run_id)
                head = _read_head(conn)
                rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
                return verify_chain((_audited_event(row) for row in rows), head, runs)
            finally:
                with contextlib.suppress(sqlite3.Error):  # a read-only snapshot: nothing to lose
                    conn.execute("COMMIT")

    def verify_since(self, since: tuple[int, str], run_id: str | None = None) -> VerifyReport:
        """Check the chain from a point verified before: that event still has its hash, and every later one.

        Cheap for a long journal (only what was appended since is read); it does not
        re-read what came before ``since``, nor run SQLite's structural check.
        """
        with self._reading() as conn:
            conn.execute("BEGIN")
            try:
                runs = self._runs_to_report(conn, run_id)
                row = conn.execute("SELECT hash FROM events WHERE seq = ?", (since[0],)).fetchone()
                fault = since_fault(since, None if row is None else str(row[0]))
                if fault:
                    return VerifyReport(0, None, fault, runs)
                rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq", (since[0],))
                return verify_chain((_audited_event(row) for row in rows), _read_head(conn), runs, start=since)
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    def _runs_to_report(self, conn: sqlite3.Connection, run_id: str | None) -> tuple[str, ...]:
        return _runs_to_report(conn, run_id, self.path)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock, _translated(self.path):
            self._check_open()
            yield self._read

    def pragmas(self) -> dict[str, Any]:
        """The settings the durability guarantee rests on, as SQLite reports them."""
        with self._write_lock, _translated(self.path):
            self._check_open()
            return {name: self._write.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("journal_mode", "synchronous", "busy_timeout")}

    # -- leases --

    def acquire_lease(self, run_id: str, holder: LeaseHolder, *, take_over: bool = False) -> int:
        """Take (or renew) the run's lease; returns its epoch. LeaseHeld when another controller drives it."""
        self._check_open()
        with self._transaction() as conn:
            epoch, event = LEASES.acquire(conn, run_id, holder, take_over=take_over, stale_after=self.stale_after)
            if event is None:  # renewed
                return epoch
            ordinal = self._append_in(conn, run_id, *event)
        if ordinal:
            self._crash.after_append(ordinal)
        return epoch

    def fence(self, run_id: str, holder: LeaseHolder, epoch: int) -> None:
        """From now on, appends for ``run_id`` succeed only while ``holder`` holds its lease at ``epoch``."""
        with self._mutex:
            self._fences[run_id] = (holder, epoch)

    def heartbeat(self, run_id: str, holder: LeaseHolder) -> None:
        """Tell other hosts the holder is alive; raises LeaseLost if it lost the lease."""
        self._check_open()
        with self._transaction() as conn:
            LEASES.heartbeat(conn, run_id, holder)

    def release_lease(self, run_id: str, holder: LeaseHolder) -> None:
        """Give the run up; a no-op when nobody holds it, LeaseLost when someone else does."""
        self._check_open()
        with self._transaction() as conn:
            event = LEASES.release(conn, run_id, holder)
            if event is None:
                return
            ordinal = self._append_in(conn, run_id, *event)
        with self._mutex:
            self._fences.pop(run_id, None)
        if ordinal:
            self._crash.after_append(ordinal)

    def lease_holder(self, run_id: str) -> LeaseHolder | None:
        with self._reading() as conn:
            return LEASES.row(conn, run_id)[0]

    def lease_state(self, run_id: str) -> tuple[LeaseHolder | None, str | None]:
        """The holder and its last heartbeat, for a standby or a watcher."""
        with self._reading() as conn:
            holder, heartbeat_at, _ = LEASES.row(conn, run_id)
            return holder, heartbeat_at

    def _append_in(self, conn: sqlite3.Connection, run_id: str, kind: str, payload: Mapping[str, Any]) -> int:
        """Append one event inside the caller's transaction (atomic with its lease change).

        Returns the crash hook's ordinal: the caller reports it after its commit.
        """
        ordinal = self._crash.before_append() if self._crash.armed else 0
        item = _Pending(run_id, kind, payload)
        item.at = utc_now()
        self._insert(conn, [item], _read_head(conn))
        return ordinal

    # -- lifetime --

    def close(self) -> None:
        """Wait for appends already accepted, then close; later calls raise."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            while self._leader is not None:
                self._idle.wait()
        with self._write_lock, self._read_lock:
            self._write.close()
            self._read.close()
        _OPEN_HERE.discard(self)

    def _check_open(self) -> None:
        if self._closed:
            raise CutoverError(f"the journal {self.path} is closed", hint="this is a bug in cutover; report it")

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_journal_url(url: str, operator: str, *, stale_after: float = STALE_AFTER) -> Journal:
    """A journal from its URL: ``sqlite:///PATH`` (the default, one file) or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return SqliteJournal(path, operator, stale_after=stale_after)
    if url.startswith(("postgresql://", "postgres://")):
        from cutover.journal.postgres import PostgresJournal  # psycopg only when PostgreSQL is used

        return PostgresJournal(url, operator, stale_after=stale_after)
    raise InputError(f"unknown journal URL {url.split('://')[0]}://...",
                     hint="use sqlite:///PATH or postgresql://user@host:port/db?sslmode=verify-full")


def verify_journal_file(path: Path, run_id: str | None = None) -> VerifyReport:
    """``cutover journal verify``: check a journal file read-only, never writing to the evidence.

    A file that is not a SQLite database, or one without the journal's tables,
    is refused as not a journal (exit 2); a damaged file or a broken chain is
    JournalCorrupt (exit 7) naming what is wrong.

    When this process already has the file open (the web board, ``cutover
    report``), its own connections verify it: a second handle on the file
    would drop their locks when it closes (see ``_OPEN_HERE``).
    """
    mine = _open_here(path)
    if mine is not None:
        return mine.verify(run_id)
    if not path.is_file():
        raise NotFound(f"no journal at {path}", hint="check --state-dir; `cutover run` creates the journal")
    with path.open("rb") as file:
        if file.read(16) != b"SQLite format 3\x00":
            raise InputError(f"{path} is not a journal (not a SQLite database)",
                             hint="point --state-dir at the folder holding the run's journal.db")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise _corrupt(path, str(exc)) from exc
    try:
        return _verify_readonly(conn, path, run_id)
    except sqlite3.Error as exc:  # read-only: whatever SQLite cannot read is damage, not a full disk
        raise _corrupt(path, str(exc)) from exc
    finally:
        conn.close()


def _verify_readonly(conn: sqlite3.Connection, path: Path, run_id: str | None) -> VerifyReport:
    _check_integrity(conn, path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"events", "head"} <= tables:
        raise InputError(f"{path} is a SQLite database but not a cutover journal (no events and head tables)",
                         hint="point --state-dir at the folder holding the run's journal.db")
    conn.execute("BEGIN")  # one snapshot for the head and the events
    try:
        runs = _runs_to_report(conn, run_id, path)
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
        return verify_chain((_audited_event(row) for row in rows), _read_head(conn), runs)
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("COMMIT")


def _runs_to_report(conn: sqlite3.Connection, run_id: str | None, path: Path) -> tuple[str, ...]:
    if run_id is None:
        rows = conn.execute("SELECT run_id FROM events GROUP BY run_id ORDER BY MIN(seq)")
        return tuple(r for (r,) in rows)
    if conn.execute("SELECT 1 FROM events WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is None:
        raise NotFound(f"no run {run_id} in the journal {path}", hint="`cutover runs` lists the runs")
    return (run_id,)


# --- SQLite plumbing --------------------------------------------------------------

# The journals this process has open. SQLite's locks on a file are POSIX record locks, which
# belong to the process, not to a connection: closing *any* other descriptor of the same file
# in this process (a Python ``open()``, a second read-only connection) drops every lock our
# connections hold. Another process closing the journal then believes it is the last one out,
# checkpoints and deletes the WAL and shared-memory files under our live connections, and they
# read stale pages, then "database disk image is malformed". So a file open here is never
# opened a second time: verification goes through the journal already open.
_OPEN_HERE: weakref.WeakSet[SqliteJournal] = weakref.WeakSet()


def _open_here(path: Path) -> SqliteJournal | None:
    try:
        wanted = path.resolve()
    except OSError:
        return None
    return next((j for j in list(_OPEN_HERE) if not j._closed and j.path.resolve() == wanted), None)


def _open(path: Path, busy_timeout: float) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """Create the file owner-only, set WAL and the schema; a write and a read connection."""
    _create_private(path)
    with _translated(path):
        write = _connect(path, busy_timeout)
        try:
            _prepare(write, path)
            read = _connect(path, busy_timeout)
        except BaseException:
            write.close()
            raise
    for suffix in ("", "-wal", "-shm"):
        _restrict(Path(f"{path}{suffix}"))
    return write, read


def _create_private(path: Path) -> None:
    # Created by us with 0600 before SQLite opens it: SQLite gives the -wal and -shm files
    # the database's own mode, so the journal is never readable by others, not even briefly.
    # An existing file is not opened here: closing that descriptor would drop the POSIX locks
    # of any connection this process already has on it (see _OPEN_HERE).
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE)
    except OSError as exc:
        raise CutoverError(f"cannot open the journal {path}: {exc.strerror}",
                           hint="check the state directory exists and is yours (--state-dir)") from exc
    os.close(fd)


def _restrict(path: Path) -> None:
    """Tighten an existing file to 0600 (a journal created by something else, or an old umask)."""
    try:
        if path.stat().st_mode & 0o777 != PRIVATE:
            os.chmod(path, PRIVATE)
    except FileNotFoundError:
        pass  # -wal/-shm appear with the first transaction and vanish on the last close


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread=False: our
    # locks, not sqlite3's thread check, keep each connection to one thread at a time.
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = FULL")  # per connection, not stored in the file
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise CutoverError(f"the journal {path} cannot use write-ahead logging (mode {mode})",
                           hint="put the state directory on a local file system (--state-dir)")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise CutoverError(f"the journal {path} was written by a newer cutover (schema {version})",
                           hint="upgrade cutover before reading this journal")
    if version == SCHEMA_VERSION and _schema_complete(conn):
        return  # nothing to create: opening writes nothing (no write lock, no fsync for `status`)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _create_schema(conn)
        if version == 1:  # a journal written before fencing: its leases gain an epoch
            conn.execute("ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _schema_complete(conn: sqlite3.Connection) -> bool:
    """Whether every table, index and trigger of the schema is there (a dropped trigger is made again)."""
    present = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    return _SCHEMA_OBJECTS <= present


def _create_schema(conn: sqlite3.Connection) -> None:
    # executescript would COMMIT our transaction first; run the statements one by one
    for statement in _split_statements(_SCHEMA):
        conn.execute(statement)


def _split_statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.strip().splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


_decode = json.JSONDecoder().raw_decode  # skips json.loads' whitespace checks: ~30% of reading 100k events


def _run_events(conn: sqlite3.Connection, run_id: str) -> list[Event]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
    return [_read_event(row) for row in rows]


def _read_event(row: tuple[Any, ...]) -> Event:
    """A stored row as an Event, for folding: fast, trusts the text it reads (verify does not)."""
    seq, run_id, kind, at, operator, payload, prev_hash, digest = row
    try:
        data = _decode(payload)[0]
    except (TypeError, ValueError) as exc:
        raise JournalCorrupt(f"event {seq} of run {run_id} has an unreadable payload",
                             hint="run `cutover journal verify` to find the first damaged event") from exc
    return Event(seq, run_id, kind, at, operator, data, prev_hash, digest)


def _audited_event(row: tuple[Any, ...]) -> Event:
    """A stored row as an Event whose hash cannot match if its payload text was altered in any byte.

    The hash covers the payload's canonical JSON, so a stored text that is not exactly
    that (an added space, a trailing byte, broken JSON) is replaced by a marker.
    """
    seq, run_id, kind, at, operator, payload, prev_hash, digest = row
    try:
        data = json.loads(payload)
        canonical = canonical_json(data) == payload
    except (TypeError, ValueError):
        canonical = False
    if not canonical:
        data = {"unreadable_payload": str(payload)}
    return Event(seq, run_id, kind, at, operator, data, prev_hash, digest)


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's own structural check: a damaged page is reported before we trust any row."""
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise _corrupt(path, " ".join(problems[:3]).replace("\n", " "))


_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into domain errors with a hint: no raw traceback for a damaged file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from exc
    except sqlite3.ProgrammingError as exc:  # a closed connection: our bug, not the user's
        raise CutoverError(f"the journal {path} is closed ({exc})",
                           hint="this is a bug in cutover; report it") from exc


def _translate(exc: sqlite3.DatabaseError, path: Path) -> CutoverError:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # primary code, without the extended bits
    if code in _CORRUPT_CODES or "malformed" in str(exc) or "not a database" in str(exc):
        return _corrupt(path, str(exc))
    if code in _BUSY_CODES:
        return CutoverError(f"the journal {path} stayed locked by another process",
                            hint="another cutover command is writing to it; try again in a moment")
    return CutoverError(f"the journal {path} could not be used: {exc}",
                        hint="check the disk is not full and the state directory is writable")


def _corrupt(path: Path, detail: str) -> JournalCorrupt:
    return JournalCorrupt(f"the journal {path} is damaged and cannot be read: {detail}",
                          hint="the file itself is damaged, not only an event: copy it aside as evidence "
                               "(do not edit it) and restore the journal from its latest backup")


def _copy_error(error: Exception) -> Exception:
    """A fresh exception per waiting caller (one instance raised in many threads tangles tracebacks)."""
    if type(error) in (CutoverError, JournalCorrupt, LeaseHeld, LeaseLost, ClaimHeld):
        assert isinstance(error, CutoverError)
        return type(error)(error.message, hint=error.hint)
    return CutoverError(f"the journal could not write the event: {error}",
                        hint="check the disk is not full and the state directory is writable")
