"""The journal on PostgreSQL (psycopg 3): the same chain, leases and fencing as SQLite, for several machines.

When a night needs a standby controller or many watchers, the journal lives
in the hosting teams' own PostgreSQL. Same semantics as ``SqliteJournal``:

- ``cutover_events`` is append-only: triggers refuse UPDATE, DELETE and
  TRUNCATE, even to the owner; each event is hash-chained to the previous one
  (``cutover.core.events.event_hash``, byte for byte the SQLite journal's), and
  ``cutover_head`` records the last one so deleting the newest is detected;
- events are written only by ``cutover_append``, a ``SECURITY DEFINER``
  function owned by the tables' owner: it takes the head, numbers the events
  and computes their chain itself, so the controller role, which may call it
  but neither INSERT nor UPDATE the tables, cannot write a forged history
  (the client recomputes each hash and refuses a difference: same bytes as
  SQLite, so ``journal copy`` keeps chains verifiable both ways);
- an append is durable when it returns (``synchronous_commit = on``, set per
  session), and appends are group-committed: concurrent callers ride in one
  transaction; the head row is locked (``FOR UPDATE``) for the transaction,
  so the chain stays linear across processes and machines;
- no writer can stall the others for long: the server ends a role's session
  idle inside a transaction for longer than the stall bound (``journal init
  --stall-bound``, default ``STALL_BOUND``; a controller frozen or cut off in
  the middle of an append), and a writer stops waiting for the head after
  ``LOCK_WAIT_FACTOR`` stall bounds; a controller whose transaction was
  ended treats it as a lost lease (``LeaseLost``, exit 6);
- ``cutover_leases`` holds one row per driven run with its holder, heartbeat
  and epoch; every append of a fenced run checks holder and epoch in its own
  transaction (``cutover.core.journal_rules``).

``init_schema`` (``cutover journal init URL``) creates the tables, the
triggers, the append function and two roles: a controller role that may read
events, append through ``cutover_append`` and write lease rows, and a
read-only role for watchers. Neither owns anything: the tables belong to the
account that ran ``journal init``, which should never drive runs.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from cutover.core.claims import check_claims
from cutover.core.events import Event, LeaseHolder, VerifyReport, canonical_json, event_hash, utc_now
from cutover.core.journal_rules import (
    STALE_AFTER,
    check_fence,
    verify_chain,
)
from cutover.errors import CutoverError, InputError, JournalCorrupt, LeaseLost, NotFound
from cutover.journal import crashpoint
from cutover.journal.leases import LeaseTable
from cutover.model.redact import PLACEHOLDER, SECRET_NAME, Redactor

GENESIS_HEAD = (0, "0" * 64)
STALL_BOUND = 10  # seconds a session may sit idle inside a transaction before the server ends it
LOCK_WAIT_FACTOR = 3  # a writer waits at most this many stall bounds for the head (then: lost lease)
ROLES = ("cutover_controller", "cutover_watcher")
# TCP keepalives, unless the URL sets them: a controller waiting on a vanished server notices in ~25 s
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3"}
CREATE_RUN_LOCK = 0x6375746F  # pg_advisory_xact_lock key that lines up run creations ("cuto")
_COLUMNS = "seq, run_id, kind, at, operator, payload, prev_hash, hash"
LEASES = LeaseTable("cutover_leases", "%s", lock="FOR UPDATE")

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

# The only way the roles that drive runs write history. The hashed body is
# canonical_json([seq, run_id, kind, at, operator, payload, prev_hash]) as
# cutover.core.events.event_hash builds it: to_json(text) escapes exactly as
# Python's json.dumps(ensure_ascii=False) does (\" \\ \b \f \n \r \t, other
# controls as \u00xx), and the payload arrives already in canonical JSON.
APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION cutover_append(run_ids TEXT[], kinds TEXT[], ats TEXT[], operators TEXT[],
                                          payloads TEXT[])
RETURNS TABLE (event_seq BIGINT, event_prev TEXT, event_hash TEXT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    n INT := coalesce(array_length(run_ids, 1), 0);
    last_seq BIGINT;
    last_hash TEXT;
    body TEXT;
BEGIN
    IF coalesce(array_length(kinds, 1), 0) <> n OR coalesce(array_length(ats, 1), 0) <> n
       OR coalesce(array_length(operators, 1), 0) <> n OR coalesce(array_length(payloads, 1), 0) <> n THEN
        RAISE EXCEPTION 'cutover_append: the five arrays must have the same length';
    END IF;
    SELECT h.seq, h.hash INTO last_seq, last_hash FROM cutover_head h WHERE h.id = 1 FOR UPDATE;
    FOR i IN 1 .. n LOOP
        IF json_typeof(payloads[i]::json) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'cutover_append: a payload must be a JSON object';
        END IF;
        body := '[' || (last_seq + 1)::text || ',' || to_json(run_ids[i])::text || ',' || to_json(kinds[i])::text
                || ',' || to_json(ats[i])::text || ',' || to_json(operators[i])::text || ',' || payloads[i]
                || ',' || to_json(last_hash)::text || ']';
        event_seq := last_seq + 1;
        event_prev := last_hash;
        event_hash := encode(sha256(convert_to(body, 'UTF8')), 'hex');
        INSERT INTO cutover_events (seq, run_id, kind, at, operator, payload, prev_hash, hash)
            VALUES (event_seq, run_ids[i], kinds[i], ats[i], operators[i], payloads[i], event_prev, event_hash);
        RETURN NEXT;
        last_seq := event_seq;
        last_hash := event_hash;
    END LOOP;
    IF n > 0 THEN
        UPDATE cutover_head SET seq = last_seq, hash = last_hash WHERE id = 1;
    END IF;
END $$;
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


def init_schema(url: str, *, controller_password: str | None = None, watcher_password: str | None = None,
                stall_bound: int = STALL_BOUND) -> None:
    """Tables, triggers, the append function and the roles (``cutover_controller``, ``cutover_watcher``).

    Run again on an existing journal, it brings an older one to the same
    privileges (the controller loses direct INSERT on events and UPDATE on the head).
    """
    from psycopg import sql

    with _connect(url) as conn:
        encoding = conn.execute("SHOW server_encoding").fetchone()[0]
        if encoding.upper() not in ("UTF8", "UTF-8"):
            raise InputError(f"the journal's database uses encoding {encoding}, not UTF8",
                             hint="create it with ENCODING 'UTF8': the chain hashes UTF-8 bytes")
        conn.execute(SCHEMA)
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(sql.SQL(APPEND_FUNCTION).format(schema=sql.Identifier(schema)))
        database = conn.execute("SELECT current_database()").fetchone()[0]
        for role, password in zip(ROLES, (controller_password, watcher_password), strict=True):
            _create_role(conn, role, password, database, stall_bound)
        _grant(conn)


def _create_role(conn: Any, role: str, password: str | None, database: str, stall_bound: int) -> None:
    """A login role whose sessions on this journal cannot hold a transaction, or wait for a lock, for long."""
    from psycopg import sql

    name = sql.Identifier(role)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
    if password is not None:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
    for setting, seconds in (("idle_in_transaction_session_timeout", stall_bound),
                             ("lock_timeout", stall_bound * LOCK_WAIT_FACTOR)):
        conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
            name, sql.Identifier(database), sql.Identifier(setting), sql.Literal(f"{seconds}s")))


def _grant(conn: Any) -> None:
    """Who may do what: the tables' owner (whoever ran init) alone writes them directly."""
    conn.execute("REVOKE ALL ON cutover_events, cutover_head, cutover_leases FROM PUBLIC")
    conn.execute("REVOKE ALL ON cutover_events, cutover_head, cutover_leases FROM cutover_controller, cutover_watcher")
    conn.execute("GRANT SELECT ON cutover_events, cutover_head TO cutover_controller")
    conn.execute("GRANT SELECT, INSERT, UPDATE ON cutover_leases TO cutover_controller")
    conn.execute("GRANT SELECT ON cutover_events, cutover_head, cutover_leases TO cutover_watcher")
    signature = "cutover_append(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[])"
    conn.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    conn.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO cutover_controller")


def _connect(url: str) -> Any:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
        keepalives: dict[str, Any] = {k: v for k, v in KEEPALIVES.items() if k not in given}
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10, **keepalives)
    except psycopg.Error as exc:
        raise CutoverError(f"cannot connect to the journal {redacted_url(url)}: {redacted_for(url, str(exc).strip())}",
                           hint="check the URL, the server, and the credentials (.pgpass and PG* variables work)") \
            from None
    conn.execute("SET synchronous_commit = on")  # an append returns only once its commit is durable
    # the roles carry the stall bound (journal init); a session without it (an older init, the owner) gets it here
    for setting, seconds in (("idle_in_transaction_session_timeout", STALL_BOUND),
                             ("lock_timeout", STALL_BOUND * LOCK_WAIT_FACTOR)):
        conn.execute("SELECT set_config(%s, %s, false) WHERE current_setting(%s) = '0'",
                     (setting, f"{seconds}s", setting))
    return conn


def _session_lost(url: str, exc: Exception) -> LeaseLost:
    return LeaseLost(f"this controller's session on the journal {redacted_url(url)} ended in the middle of a "
                     f"transaction ({str(exc).strip() or exc.__class__.__name__}): it held it open past the "
                     "journal's stall bound (frozen, stopped or cut off) or waited too long for the head; "
                     "it stopped and starts nothing more",
                     hint="nothing of that transaction was written; check `cutover status RUN`, then "
                          "`cutover resume RUN` (the lease of a controller that is gone is taken over)")


class _Item:
    def __init__(self, run_id: str, kind: str, payload: Mapping[str, Any], operator: str, at: str = "") -> None:
        self.payload_json = canonical_json(dict(payload))
        self.payload: dict[str, Any] = json.loads(self.payload_json)
        self.run_id, self.kind, self.operator, self.at = run_id, kind, operator, at
        self.ordinal = 0  # its rank among this process's appends, for the test-only crash point
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
        self._crash = crashpoint.from_environment()  # test-only fault hook (cutover/journal/crashpoint.py)
        self._check_schema()

    def _check_schema(self) -> None:
        with self._reading() as conn:
            if conn.execute("SELECT to_regclass('cutover_events')").fetchone()[0] is None:
                raise InputError(f"{redacted_url(self.url)} holds no cutover journal",
                                 hint="create it once with `cutover journal init URL`")

    # -- appending (group commit: the first caller leads, the others ride in its transaction) --

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event:
        item = _Item(run_id, kind, payload, self.operator)
        item.ordinal = self._crash.before_append() if self._crash.armed else 0
        event = self._append(item)
        if item.ordinal:
            self._crash.after_append(item.ordinal)
        return event

    def _append(self, item: _Item) -> Event:
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
            current, _, epoch = LEASES.row(conn, run_id)
            check_fence(run_id, self._fences[run_id], current, epoch)

    def _insert(self, conn: Any, items: list[_Item]) -> None:
        """Append through ``cutover_append``, which chains the events; check it chained them as we would."""
        rows = conn.execute("SELECT event_seq, event_prev, event_hash FROM cutover_append(%s, %s, %s, %s, %s)",
                            ([i.run_id for i in items], [i.kind for i in items], [i.at for i in items],
                             [i.operator for i in items], [i.payload_json for i in items])).fetchall()
        for item, (seq, prev, digest) in zip(items, rows, strict=True):
            expected = event_hash(seq, item.run_id, item.kind, item.at, item.operator, item.payload, prev)
            if digest != expected:  # the transaction is rolled back: nothing unverifiable is written
                raise JournalCorrupt(f"the journal's append function hashed event {seq} as {digest[:12]}…, "
                                     f"not {expected[:12]}… as every cutover journal does",
                                     hint="re-run `cutover journal init URL` to restore cutover_append")
            item.event = Event(int(seq), item.run_id, item.kind, item.at, item.operator, item.payload, prev, digest)
        for item in items:
            if item.ordinal:
                self._crash.inside_append(item.ordinal)  # test-only: may stop us here, the head still locked

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        with self._db:
            try:
                with self._conn.transaction():
                    yield self._conn
            except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
                raise _session_lost(self.url, exc) from None
            except psycopg.Error as exc:
                raise CutoverError(f"the journal {redacted_url(self.url)} could not write: {str(exc).strip()}",
                                   hint="check the server and the controller role's privileges") from None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        import psycopg

        with self._db:
            try:
                yield self._conn
            except psycopg.OperationalError as exc:
                if self._conn.broken:  # the server ended this session (see _transaction)
                    raise _session_lost(self.url, exc) from None
                raise CutoverError(f"the journal {redacted_url(self.url)} could not be read: {str(exc).strip()}",
                                   hint="check the server and the role's privileges") from None

    # -- reading --

    def events(self, run_id: str) -> list[Event]:
        with self._reading() as conn:
            return self._run_events(conn, run_id)

    @staticmethod
    def _run_events(conn: Any, run_id: str) -> list[Event]:
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

    def create_run(self, run_id: str, payload: Mapping[str, Any]) -> Event:
        """The run's creation, appended in the transaction that checks its id and its claims.

        A transaction-scoped advisory lock lines creations up across machines: the
        second waits for the first to commit, and its reads (READ COMMITTED, a new
        snapshot per statement) then see the first run's claims.
        """
        item = _Item(run_id, "run_created", payload, self.operator)
        item.ordinal = self._crash.before_append() if self._crash.armed else 0  # an append like any other
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_RUN_LOCK,))
            if conn.execute("SELECT 1 FROM cutover_events WHERE run_id = %s LIMIT 1", (run_id,)).fetchone():
                raise InputError(f"run {run_id!r} already exists", hint=f"continue it with `cutover resume {run_id}`")
            rows = conn.execute("SELECT run_id, payload FROM cutover_events WHERE kind = 'run_created' "
                                "ORDER BY seq").fetchall()
            check_claims(run_id, item.payload, [(other, json.loads(text)) for other, text in rows],
                         lambda other: self._run_events(conn, other))
            item.at = utc_now()
            self._insert(conn, [item])
        if item.ordinal:
            self._crash.after_append(item.ordinal)
        assert item.event is not None
        return item.event

    def import_run(self, run_id: str, events: list[Event]) -> None:
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM cutover_events WHERE run_id = %s LIMIT 1", (run_id,)).fetchone():
                raise InputError(f"run {run_id!r} is already in this journal", hint="nothing was imported")
            self._insert(conn, [_Item(run_id, e.kind, e.payload, e.operator, e.at) for e in events])

    # -- leases --

    def acquire_lease(self, run_id: str, holder: LeaseHolder, *, take_over: bool = False) -> int:
        with self._transaction() as conn:
            epoch, event = LEASES.acquire(conn, run_id, holder, take_over=take_over, stale_after=self.stale_after)
            if event is not None:
                self._insert(conn, [_Item(run_id, *event, self.operator, utc_now())])
            return epoch

    def fence(self, run_id: str, holder: LeaseHolder, epoch: int) -> None:
        with self._cond:
            self._fences[run_id] = (holder, epoch)

    def heartbeat(self, run_id: str, holder: LeaseHolder) -> None:
        with self._transaction() as conn:
            LEASES.heartbeat(conn, run_id, holder)

    def release_lease(self, run_id: str, holder: LeaseHolder) -> None:
        with self._transaction() as conn:
            event = LEASES.release(conn, run_id, holder)
            if event is None:
                return
            self._insert(conn, [_Item(run_id, *event, self.operator, utc_now())])
        with self._cond:
            self._fences.pop(run_id, None)

    def lease_holder(self, run_id: str) -> LeaseHolder | None:
        with self._reading() as conn:
            return LEASES.row(conn, run_id, locked=False)[0]

    def lease_state(self, run_id: str) -> tuple[LeaseHolder | None, str | None]:
        """The holder and its last heartbeat, for a standby or a watcher."""
        with self._reading() as conn:
            holder, heartbeat_at, _ = LEASES.row(conn, run_id, locked=False)
            return holder, heartbeat_at

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
