"""The journal on PostgreSQL (psycopg 3): the same chain, leases and fencing as SQLite, for several machines.

When a night needs a standby controller or many watchers, the journal lives
in the hosting teams' own PostgreSQL. Same semantics as ``SqliteJournal``:

- ``cutover_events`` is append-only: triggers refuse UPDATE, DELETE and
  TRUNCATE, even to the owner; each event is hash-chained to the previous one
  (``cutover.core.events.event_hash``, byte for byte the SQLite journal's), and
  ``cutover_head`` records the last one so deleting the newest is detected;
- an append is durable when it returns (``synchronous_commit = on``, set per
  session), and appends are group-committed: concurrent callers ride in one
  transaction; the head row is locked (``FOR UPDATE``) for the transaction,
  so the chain stays linear across processes and machines;
- ``cutover_leases`` holds one row per driven run with its holder, heartbeat
  and epoch; every append of a fenced run checks holder and epoch in its own
  transaction (``cutover.core.journal_rules``).

``init_schema`` (``cutover journal init URL``) creates the tables, the
triggers and two roles: a controller role that may only INSERT and SELECT
events and write lease rows, and a read-only role for watchers.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from cutover.core.events import Event, LeaseHolder, VerifyReport, canonical_json, event_hash, utc_now
from cutover.core.journal_rules import (STALE_AFTER, check_fence, decide_lease, lease_payload, lost_lease,
                                        same_holder, takeover_reason, verify_chain)
from cutover.errors import CutoverError, InputError, JournalCorrupt, NotFound
from cutover.leases import holder_alive
from cutover.redact import PLACEHOLDER, SECRET_NAME, Redactor

GENESIS_HEAD = (0, "0" * 64)
_COLUMNS = "seq, run_id, kind, at, operator, payload, prev_hash, hash"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cutover_events (
    seq BIGINT PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, operator TEXT NOT NULL,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cutover_events_by_run ON cutover_events (run_id, seq);
CREATE TABLE IF NOT EXISTS cutover_head (id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO cutover_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS cutover_leases (
    run_id TEXT PRIMARY KEY, holder TEXT NOT NULL, heartbeat_at TEXT NOT NULL, epoch INT NOT NULL DEFAULT 0);
CREATE OR REPLACE FUNCTION cutover_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'journal events are append-only'; END $$;
CREATE OR REPLACE FUNCTION cutover_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.seq < OLD.seq THEN RAISE EXCEPTION 'the journal head only moves forward'; END IF; RETURN NEW; END $$;
DROP TRIGGER IF EXISTS cutover_events_no_change ON cutover_events;
CREATE TRIGGER cutover_events_no_change BEFORE UPDATE OR DELETE ON cutover_events
    FOR EACH ROW EXECUTE FUNCTION cutover_append_only();
DROP TRIGGER IF EXISTS cutover_events_no_truncate ON cutover_events;
CREATE TRIGGER cutover_events_no_truncate BEFORE TRUNCATE ON cutover_events
    FOR EACH STATEMENT EXECUTE FUNCTION cutover_append_only();
DROP TRIGGER IF EXISTS cutover_head_forward_only ON cutover_head;
CREATE TRIGGER cutover_head_forward_only BEFORE UPDATE ON cutover_head
    FOR EACH ROW EXECUTE FUNCTION cutover_head_forward();
"""


def redacted_url(url: str) -> str:
    """The URL with its passwords replaced (``user:PASSWORD@`` and ``?password=``), for every message and log."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{PLACEHOLDER}@", 1)
    query = "&".join(_redacted_query_item(item) for item in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redacted_for(url: str, text: str) -> str:
    """``text`` (a driver's error) with the URL's passwords removed, wherever the driver quoted them."""
    parts = urlsplit(url)
    secrets = [parts.password or "", *(unquote(v) for k, _, v in (i.partition("=") for i in parts.query.split("&"))
                                       if _secret_param(k))]
    return Redactor.of([s for s in secrets if s])(text)


def _secret_param(name: str) -> bool:
    name = unquote(name)
    return bool(SECRET_NAME.search(name)) and not name.endswith(("file", "_path"))


def _redacted_query_item(item: str) -> str:
    """``name=value`` with the value masked when the name says it is a secret (``password``, ``sslpassword``...)."""
    name, equals, value = item.partition("=")
    return f"{name}{equals}{PLACEHOLDER}" if _secret_param(name) and value else item


def init_schema(url: str, *, controller_password: str | None = None, watcher_password: str | None = None) -> None:
    """Tables, triggers and the two least-privilege roles (``cutover_controller``, ``cutover_watcher``)."""
    from psycopg import sql

    with _connect(url) as conn:
        conn.execute(SCHEMA)
        for role, password in (("cutover_controller", controller_password), ("cutover_watcher", watcher_password)):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            if password is not None:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute("REVOKE ALL ON cutover_events, cutover_head, cutover_leases FROM PUBLIC")
        conn.execute("GRANT SELECT, INSERT ON cutover_events TO cutover_controller")
        conn.execute("GRANT SELECT, UPDATE ON cutover_head TO cutover_controller")
        conn.execute("GRANT SELECT, INSERT, UPDATE ON cutover_leases TO cutover_controller")
        conn.execute("GRANT SELECT ON cutover_events, cutover_head, cutover_leases TO cutover_watcher")


def _connect(url: str) -> Any:
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise CutoverError(f"cannot connect to the journal {redacted_url(url)}: {redacted_for(url, str(exc).strip())}",
                           hint="check the URL, the server, and the credentials (.pgpass and PG* variables work)") \
            from None
    conn.execute("SET synchronous_commit = on")  # an append returns only once its commit is durable
    return conn


class _Item:
    def __init__(self, run_id: str, kind: str, payload: Mapping[str, Any], operator: str, at: str = "") -> None:
        self.payload_json = canonical_json(dict(payload))
        self.payload: dict[str, Any] = json.loads(self.payload_json)
        self.run_id, self.kind, self.operator, self.at = run_id, kind, operator, at
        self.done = False
        self.event: Event | None = None
        self.error: Exception | None = None


class PostgresJournal:
    """The Journal protocol on PostgreSQL; safe to share between threads (one connection, one lock)."""

    def __init__(self, url: str, operator: str, *, stale_after: float = STALE_AFTER) -> None:
        self.url, self.operator, self.stale_after = url, operator, stale_after
        self._conn = _connect(url)
        self._db = threading.Lock()  # the connection: one transaction at a time
        self._cond = threading.Condition()  # the group-commit queue
        self._queue: list[_Item] = []
        self._leading = False
        self._fences: dict[str, tuple[LeaseHolder, int]] = {}
        self._check_schema()

    def _check_schema(self) -> None:
        with self._reading() as conn:
            if conn.execute("SELECT to_regclass('cutover_events')").fetchone()[0] is None:
                raise InputError(f"{redacted_url(self.url)} holds no cutover journal",
                                 hint="create it once with `cutover journal init URL`")

    # -- appending (group commit: the first caller leads, the others ride in its transaction) --

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event:
        item = _Item(run_id, kind, payload, self.operator)
        with self._cond:
            item.at = utc_now()
            self._queue.append(item)
            while not item.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading, batch, self._queue = True, self._queue, []
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        assert item.event is not None
        return item.event

    def _commit(self, batch: list[_Item]) -> None:
        error: Exception | None = None
        try:
            with self._transaction() as conn:
                self._check_fences(conn, batch)
                self._insert(conn, batch)
        except Exception as exc:  # every caller of the batch gets it; none of its events is written
            error = exc
        for item in batch:
            item.done, item.error = True, error

    def _check_fences(self, conn: Any, items: list[_Item]) -> None:
        for run_id in {item.run_id for item in items} & self._fences.keys():
            current, _, epoch = self._lease_row(conn, run_id)
            check_fence(run_id, self._fences[run_id], current, epoch)

    def _insert(self, conn: Any, items: list[_Item]) -> None:
        seq, prev = conn.execute("SELECT seq, hash FROM cutover_head WHERE id = 1 FOR UPDATE").fetchone()
        rows = []
        for item in items:
            seq += 1
            digest = event_hash(seq, item.run_id, item.kind, item.at, item.operator, item.payload, prev)
            item.event = Event(seq, item.run_id, item.kind, item.at, item.operator, item.payload, prev, digest)
            rows.append((seq, item.run_id, item.kind, item.at, item.operator, item.payload_json, prev, digest))
            prev = digest
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO cutover_events ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
        conn.execute("UPDATE cutover_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        with self._db:
            try:
                with self._conn.transaction():
                    yield self._conn
            except psycopg.Error as exc:
                raise CutoverError(f"the journal {redacted_url(self.url)} could not write: {str(exc).strip()}",
                                   hint="check the server and the controller role's privileges") from None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._db:
            yield self._conn

    # -- reading --

    def events(self, run_id: str) -> list[Event]:
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM cutover_events WHERE run_id = %s ORDER BY seq", (run_id,))
            return [_event(row) for row in rows.fetchall()]

    def runs(self) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute("SELECT run_id FROM cutover_events GROUP BY run_id ORDER BY MIN(seq)").fetchall()
            return [r[0] for r in rows]

    def verify(self, run_id: str | None = None) -> VerifyReport:
        with self._reading() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot: head and events
            known = tuple(r[0] for r in conn.execute(
                "SELECT run_id FROM cutover_events GROUP BY run_id ORDER BY MIN(seq)").fetchall())
            if run_id is not None and run_id not in known:
                raise NotFound(f"no run {run_id} in the journal", hint="`cutover runs` lists the runs")
            head = tuple(conn.execute("SELECT seq, hash FROM cutover_head WHERE id = 1").fetchone() or GENESIS_HEAD)
            rows = conn.execute(f"SELECT {_COLUMNS} FROM cutover_events ORDER BY seq").fetchall()
            return verify_chain((_audited(row) for row in rows), (int(head[0]), str(head[1])),
                                known if run_id is None else (run_id,))

    def import_run(self, run_id: str, events: list[Event]) -> None:
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM cutover_events WHERE run_id = %s LIMIT 1", (run_id,)).fetchone():
                raise InputError(f"run {run_id!r} is already in this journal", hint="nothing was imported")
            self._insert(conn, [_Item(run_id, e.kind, e.payload, e.operator, e.at) for e in events])

    # -- leases --

    def _lease_row(self, conn: Any, run_id: str) -> tuple[LeaseHolder | None, str | None, int]:
        row = conn.execute("SELECT holder, heartbeat_at, epoch FROM cutover_leases WHERE run_id = %s FOR UPDATE",
                           (run_id,)).fetchone()
        if row is None:
            return None, None, 0
        if not row[0]:
            return None, None, int(row[2])
        return LeaseHolder.from_payload(json.loads(row[0])), str(row[1]), int(row[2])

    def acquire_lease(self, run_id: str, holder: LeaseHolder, *, take_over: bool = False) -> int:
        with self._transaction() as conn:
            current, heartbeat_at, epoch = self._lease_row(conn, run_id)
            change = decide_lease(run_id, current, heartbeat_at, holder, take_over, self.stale_after, holder_alive)
            if change == "renewed":
                conn.execute("UPDATE cutover_leases SET heartbeat_at = %s WHERE run_id = %s", (utc_now(), run_id))
                return epoch
            reason = takeover_reason(current, heartbeat_at, self.stale_after, holder_alive) if current else ""
            epoch += 1
            conn.execute("INSERT INTO cutover_leases (run_id, holder, heartbeat_at, epoch) VALUES (%s, %s, %s, %s) "
                         "ON CONFLICT (run_id) DO UPDATE SET holder = EXCLUDED.holder, "
                         "heartbeat_at = EXCLUDED.heartbeat_at, epoch = EXCLUDED.epoch",
                         (run_id, canonical_json(holder.to_payload()), utc_now(), epoch))
            kind, payload = lease_payload(change, holder, current, epoch=epoch, reason=reason)
            self._insert(conn, [_Item(run_id, kind, payload, self.operator, utc_now())])
            return epoch

    def fence(self, run_id: str, holder: LeaseHolder, epoch: int) -> None:
        with self._cond:
            self._fences[run_id] = (holder, epoch)

    def heartbeat(self, run_id: str, holder: LeaseHolder) -> None:
        with self._transaction() as conn:
            current, _, _ = self._lease_row(conn, run_id)
            if current is None or not same_holder(current, holder):
                raise lost_lease(run_id, holder, current)
            conn.execute("UPDATE cutover_leases SET heartbeat_at = %s WHERE run_id = %s", (utc_now(), run_id))

    def release_lease(self, run_id: str, holder: LeaseHolder) -> None:
        with self._transaction() as conn:
            current, _, _ = self._lease_row(conn, run_id)
            if current is None:
                return
            if not same_holder(current, holder):
                raise lost_lease(run_id, holder, current)
            conn.execute("UPDATE cutover_leases SET holder = '' WHERE run_id = %s", (run_id,))
            kind, payload = lease_payload("released", current, None)
            self._insert(conn, [_Item(run_id, kind, payload, self.operator, utc_now())])
        with self._cond:
            self._fences.pop(run_id, None)

    def lease_holder(self, run_id: str) -> LeaseHolder | None:
        with self._reading() as conn:
            row = conn.execute("SELECT holder FROM cutover_leases WHERE run_id = %s", (run_id,)).fetchone()
            return LeaseHolder.from_payload(json.loads(row[0])) if row and row[0] else None

    def lease_state(self, run_id: str) -> tuple[LeaseHolder | None, str | None]:
        """The holder and its last heartbeat, for a standby or a watcher."""
        with self._reading() as conn:
            row = conn.execute("SELECT holder, heartbeat_at FROM cutover_leases WHERE run_id = %s",
                               (run_id,)).fetchone()
            if row is None or not row[0]:
                return None, None
            return LeaseHolder.from_payload(json.loads(row[0])), str(row[1])

    # -- lifetime --

    def close(self) -> None:
        with self._db:
            self._conn.close()

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _event(row: tuple[Any, ...]) -> Event:
    seq, run_id, kind, at, operator, payload, prev_hash, digest = row
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise JournalCorrupt(f"event {seq} of run {run_id} has an unreadable payload",
                             hint="run `cutover journal verify` to find the first damaged event") from exc
    return Event(int(seq), run_id, kind, at, operator, data, prev_hash, digest)


def _audited(row: tuple[Any, ...]) -> Event:
    """As SQLite's: a stored payload that is not exactly its canonical JSON cannot match its hash."""
    seq, run_id, kind, at, operator, payload, prev_hash, digest = row
    try:
        data = json.loads(payload)
        if canonical_json(data) != payload:
            data = {"unreadable_payload": payload}
    except ValueError:
        data = {"unreadable_payload": payload}
    return Event(int(seq), run_id, kind, at, operator, data, prev_hash, digest)
