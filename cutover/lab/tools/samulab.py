#!/usr/bin/python3
"""The lab's data plane: SAMU sites (SQLite) and call-handling platforms (PostgreSQL), stdlib only.

This one file is both a library (``cutover.lab.tools.samulab``, used by the
traffic generator and ``cutover lab calls``) and the two control tools that
playbooks run over SSH on the lab's hosts. ``cutover lab up`` copies it to
``<lab>/tools/samulab.py`` and installs two wrappers in ``<lab>/bin``::

    samu-site      -> /usr/bin/python3 <lab>/tools/samulab.py site ...
    samu-platform  -> /usr/bin/python3 <lab>/tools/samulab.py platform ...

It runs with the hosts' system python (the inventory's
``ansible_python_interpreter``), so it imports nothing outside the standard
library. A host knows who it is from its sshd environment: ``CUTOVER_LAB_DIR``
(the lab folder), ``CUTOVER_LAB_SITE`` (a SAMU's département code) or
``CUTOVER_LAB_PLATFORM`` (``legacy`` or ``cloud``).

A platform is a PostgreSQL cluster of its own (``cutover.lab.platforms``
starts them), reached over its unix socket by ``Platform`` (see below). It
serves many SAMUs; each SAMU's data is a *partition* of it (``calls`` and
``interventions`` are list-partitioned by ``samu_code``). Freeze, unfreeze, checksums, verify, migrate and copy-back
take ``--samus CODE,CODE`` and act on those partitions only, so a night moves
its wave while the platform keeps answering and recording every other SAMU's
calls. Without ``--samus`` they act on the whole platform (every partition):
that is how a platform-wide operation loses the calls of SAMUs outside the
wave, which the lab must be able to show.

Calls go over real SIP (docs/lab.md): Kamailio routes each SAMU's number by
its ``routes`` htable, the lab's answering agents answer and, at each call's
end, record it through ``record_call`` (the one way a call is recorded). No
lock is held for the life of a call: ``set_mode`` and ``point_at`` change the
SAMU's route through the router's control socket (``sipcall``) and its own
state, and calls in progress end where they started. So switching every SAMU
of a wave to backup mode, waiting for its calls in progress on the platform
to end (``in_progress``), then freezing the wave's partitions loses nothing;
freezing first, or without the wait, loses calls or their records, as it
would in real life. Without a router (a lab folder made by
``create_lab_data`` alone, as unit tests do) there is no route to change, and
``place_call`` places a zero-length call without SIP.
A platform records a call when it ends, through ``answer_on_platform`` alone,
in one transaction: a frozen partition refuses the record. So a call still in
progress on the platform when its partition freezes loses its record, unless
the freeze drained first (``drain``: wait until the platform's calls in
progress for those SAMUs, counted from their answer to their record, end).

Exit codes of the tools: 0 done; 1 a check failed (test call answered by
someone else or lost, ``--expect*`` not met, ``verify`` found a difference);
2 bad usage; 3 refused because of the lab's state (platform frozen or down,
migrating from a platform still serving, unknown lab folder or site).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import random
import socket
import sqlite3
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:  # as the package module (controller, tests) or as the copy on the lab's hosts (tools/ holds both files)
    from cutover.lab.tools import sipcall
except ImportError:  # pragma: no cover - on a lab host (even under `python3 -I`, which drops the script's folder)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sipcall  # type: ignore[no-redef]

PLATFORMS = ("legacy", "cloud")
MODES = ("nominal", "backup")
SERVING, FROZEN, DOWN = "serving", "frozen", "down"
LOCAL = "local"  # who answers a call in backup mode: the SAMU itself
# Data tables of a platform and their primary keys; counts and checksums cover these only.
DATA_TABLES = {"calls": "call_id", "interventions": "intervention_id"}
CALL_COLUMNS = ("call_id", "samu_code", "placed_at", "answered_at", "caller", "outcome", "answered_by")
INTERVENTION_COLUMNS = ("intervention_id", "call_id", "samu_code", "kind", "decided_at")
OUTCOMES = {"advice": "medical-advice", "smur": "smur-dispatch", "ambulance": "ambulance-dispatch",
            "gp": "gp-referral", "fire": "fire-brigade-transfer"}
BUSY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 60.0  # a return to nominal waits at most this for the backup position's calls to end
DRAIN_POLL_S = 0.2
PG_TIMEOUT_S = 60.0  # a statement waiting longer than this (a lock held by a stuck session) fails

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class LabError(Exception):
    """The lab's state forbids the operation (exit 3); ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --------------------------------------------------------------------------
# Files and connections


def site_db(lab_dir: Path, code: str) -> Path:
    return Path(lab_dir) / "sites" / f"{code}.db"


def ledger_db(lab_dir: Path) -> Path:
    return Path(lab_dir) / "ledger.db"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (``write_txn``)."""
    path = Path(path)
    if not create and not path.is_file():
        raise LabError(f"no lab database at {path}", "is the lab up? run `cutover lab up`")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    if create:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block the call path
        os.chmod(path, 0o600)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextlib.contextmanager
def write_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE``: take the database's write lock now, for the whole block."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def read_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One consistent snapshot for several reads (WAL: no lock taken against writers)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


# --------------------------------------------------------------------------
# The platforms' PostgreSQL, over its unix socket (stdlib only)
#
# The tools run with the hosts' system python, which has no PostgreSQL driver.
# Rather than start a `psql` per statement (tens of milliseconds, at every call
# the traffic records), this speaks PostgreSQL's frontend/backend protocol
# (version 3, simple query) itself: one connection per platform, kept open.
# It trusts the server's unix socket, whose folder only the lab's owner (or the
# server user) can enter; values reach SQL through ``lit`` (standard-conforming
# strings are forced at connection time, so doubling quotes is the whole escape).

PG_PORT = 5432  # one cluster per socket folder: the port only names the socket file
PG_USER, PG_DATABASE = "cutover_lab", "samu"
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: the frozen partitions' refusal


class PlatformDown(LabError):
    """The platform's database cannot be reached (its cluster is stopped: ``platform-db-down``)."""


class PgError(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields.get("M", "PostgreSQL error"))
        self.sqlstate = fields.get("C", "")
        self.fields = fields


def lit(value: object) -> str:
    """A SQL literal: NULL, a number, or a quoted string (NUL refused)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\x00" in text:
        raise LabError("a value holds a NUL character", "lab values are plain text")
    return "'" + text.replace("'", "''") + "'"


def lit_array(values: Sequence[str]) -> str:
    return "ARRAY[" + ",".join(lit(v) for v in values) + "]::text[]"


@dataclass
class PgResult:
    tag: str  # the command tag: "INSERT 0 3", "SELECT 2", ...
    rows: list[list[str | None]]

    @property
    def count(self) -> int:
        """Rows affected (INSERT/UPDATE/DELETE) or returned (SELECT)."""
        last = self.tag.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0


class Platform:
    """One platform's database: a connection made on first use and remade after the server restarts.

    Thread-safe (one statement batch at a time). ``run`` sends one batch of
    statements (one implicit transaction unless it says BEGIN/COMMIT) and
    returns each statement's result.
    """

    def __init__(self, name: str, socket_dir: Path, database: str = PG_DATABASE) -> None:
        self.name = name
        self.socket_dir = Path(socket_dir)
        self.database = database
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    # -- connection

    def _connect(self) -> socket.socket:
        path = self.socket_dir / f".s.PGSQL.{PG_PORT}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(PG_TIMEOUT_S)
        try:
            sock.connect(str(path))
            params = {"user": PG_USER, "database": self.database, "application_name": f"samulab-{os.getpid()}",
                      "options": "-c standard_conforming_strings=on -c client_encoding=UTF8"}
            body = struct.pack("!i", 196608) + b"".join(
                k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
            sock.sendall(struct.pack("!i", len(body) + 4) + body)
            self._sock = sock
            self._until_ready(expect_auth=True)
        except (OSError, PgError) as exc:
            sock.close()
            self._sock = None
            raise PlatformDown(f"the {self.name} platform's database is down ({exc})",
                               "it answers nothing until it is healed (`cutover lab heal`)") from exc
        return sock

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendall(b"X\0\0\0\4")
                self._sock.close()
                self._sock = None

    # -- protocol

    def _recv_exact(self, size: int) -> bytes:
        assert self._sock is not None
        chunks, left = [], size
        while left:
            chunk = self._sock.recv(left)
            if not chunk:
                raise OSError("the server closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _message(self) -> tuple[bytes, bytes]:
        head = self._recv_exact(5)
        return head[:1], self._recv_exact(struct.unpack("!i", head[1:])[0] - 4)

    def _until_ready(self, *, expect_auth: bool = False) -> tuple[list[PgResult], PgError | None, bytes]:
        results: list[PgResult] = []
        rows: list[list[str | None]] = []
        error: PgError | None = None
        while True:
            kind, body = self._message()
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise PgError({"M": "the platform's database asks for a password: the lab trusts its socket"})
            if kind == b"D":
                rows.append(_data_row(body))
            elif kind == b"C":
                results.append(PgResult(body.rstrip(b"\0").decode(), rows))
                rows = []
            elif kind == b"E":
                error = PgError(_fields(body))
                if expect_auth:
                    raise error
            elif kind == b"Z":
                return results, error, body[:1]

    def run(self, sql: str) -> list[PgResult]:
        """Send ``sql`` (one or more statements); raise ``PgError`` or ``PlatformDown``."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._sock is None
                sock = self._sock or self._connect()
                try:
                    payload = sql.encode() + b"\0"
                    sock.sendall(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
                    results, error, status = self._until_ready()
                except OSError as exc:
                    sock.close()
                    self._sock = None
                    if fresh or attempt == 2:
                        raise PlatformDown(f"the {self.name} platform's database is down ({exc})",
                                           "it answers nothing until it is healed (`cutover lab heal`)") from exc
                    continue  # a connection broken by a restart: the statement never ran; once more, anew
                if status == b"E":  # an error inside an explicit BEGIN: leave the failed transaction
                    self._send_rollback()
                if error is not None:
                    raise error
                return results
        raise AssertionError("unreachable")

    def _send_rollback(self) -> None:
        assert self._sock is not None
        payload = b"ROLLBACK\0"
        self._sock.sendall(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
        self._until_ready()

    def rows(self, sql: str) -> list[list[str | None]]:
        """The rows of the last statement of ``sql`` that returned any."""
        results = self.run(sql)
        return next((r.rows for r in reversed(results) if r.rows), [])


def _fields(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def _data_row(body: bytes) -> list[str | None]:
    (count,) = struct.unpack("!h", body[:2])
    values: list[str | None] = []
    at = 2
    for _ in range(count):
        (size,) = struct.unpack("!i", body[at:at + 4])
        at += 4
        if size < 0:
            values.append(None)
        else:
            values.append(body[at:at + size].decode())
            at += size
    return values


# --------------------------------------------------------------------------
# Creating a platform's schema


def platform_socket_dir(lab_dir: Path, name: str) -> Path:
    """Where the platform's cluster listens (``<lab>/pg/<name>``, resolved: a socket path must stay short)."""
    return (Path(lab_dir) / "pg" / check_platform_name(name)).resolve()


def open_platform(lab_dir: Path, name: str) -> Platform:
    return Platform(check_platform_name(name), platform_socket_dir(lab_dir, name))


def partition_name(table: str, code: str) -> str:
    """``calls`` and ``2A`` -> ``calls_p_2a``: one partition per SAMU, like production's ``P_<code>``."""
    if not (code.isascii() and code.isalnum() and 0 < len(code) <= 3):
        raise LabError(f"{code!r} is not a département code", "codes are like 01, 13, 2A, 974")
    return f"{table}_p_{code.lower()}"


# Data tables, list-partitioned by samu_code (the partition key is part of every key).
# interventions.call_id is deliberately not unique: a careless copy or replay
# that mints new intervention ids duplicates interventions, and `cutover lab
# calls` must see it. `read_only` is the freeze: a row trigger on a partition
# refuses every write to it, as Oracle refuses writes to a READ ONLY partition
# (ORA-14466); copies between platforms set session_replication_role = replica,
# which ordinary triggers ignore, as a DBA's import does.
_PLATFORM_SCHEMA = """
CREATE TABLE calls (
    call_id text NOT NULL, samu_code text NOT NULL, placed_at text NOT NULL, answered_at text NOT NULL,
    caller text NOT NULL, outcome text NOT NULL, answered_by text NOT NULL,
    PRIMARY KEY (samu_code, call_id)) PARTITION BY LIST (samu_code);
CREATE TABLE interventions (
    intervention_id text NOT NULL, call_id text NOT NULL, samu_code text NOT NULL,
    kind text NOT NULL, decided_at text NOT NULL,
    PRIMARY KEY (samu_code, intervention_id)) PARTITION BY LIST (samu_code);
CREATE INDEX interventions_by_call ON interventions (call_id);
-- Calls the platform answered and has not recorded yet (their record is written when they end):
-- what `samu-platform drain` waits for before a freeze.
CREATE TABLE calls_in_progress (call_id text PRIMARY KEY, samu_code text NOT NULL, started_at text NOT NULL);
CREATE TABLE lab_faults (call_id text PRIMARY KEY, original_caller text NOT NULL);
-- 'state' = 'frozen' when the whole platform was frozen at once (every partition, no --samus):
-- freezing a wave's partitions leaves the platform serving every other SAMU.
CREATE TABLE lab_control (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO lab_control VALUES ('state', 'serving');
CREATE FUNCTION read_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'partition % is read only (frozen)', TG_TABLE_NAME USING ERRCODE = 'read_only_sql_transaction';
END $$;
CREATE FUNCTION lab_fault_corrupt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM lab_faults) THEN
    INSERT INTO lab_faults VALUES (NEW.call_id, NEW.caller);
    NEW.caller := NEW.caller || ' [corrupted]';
  END IF;
  RETURN NEW;
END $$;
"""


def create_platform(lab_dir: Path, name: str, codes: Sequence[str]) -> None:
    """A fresh schema on the platform's (running) cluster: both data tables with one partition per SAMU."""
    db = open_platform(lab_dir, name)
    try:
        partitions = "".join(
            f"CREATE TABLE {partition_name(table, code)} PARTITION OF {table} FOR VALUES IN ({lit(code)});\n"
            for table in DATA_TABLES for code in codes)
        db.run("DROP SCHEMA IF EXISTS public CASCADE; DROP SCHEMA IF EXISTS link CASCADE; "
               "DROP SERVER IF EXISTS other_platform CASCADE; CREATE SCHEMA public;"
               + _PLATFORM_SCHEMA + partitions)
    finally:
        db.close()


def create_link(lab_dir: Path, name: str) -> None:
    """The database link to the other platform: ``postgres_fdw`` server ``other_platform``, tables in schema ``link``.

    Like production's database links (created by the DBAs before the first
    wave), it is made once, when the lab starts; migrate, copy back and verify
    read the other side through it.
    """
    other = other_platform(name)
    db = open_platform(lab_dir, name)
    try:
        db.run("CREATE EXTENSION IF NOT EXISTS postgres_fdw; DROP SERVER IF EXISTS other_platform CASCADE; "
               f"CREATE SERVER other_platform FOREIGN DATA WRAPPER postgres_fdw OPTIONS ("
               f"host {lit(str(platform_socket_dir(lab_dir, other)))}, port {lit(str(PG_PORT))}, "
               f"dbname {lit(PG_DATABASE)}, application_name {lit('link-from-' + name)});"
               f"CREATE USER MAPPING FOR CURRENT_USER SERVER other_platform OPTIONS (user {lit(PG_USER)});"
               "DROP SCHEMA IF EXISTS link CASCADE; CREATE SCHEMA link;"
               "IMPORT FOREIGN SCHEMA public LIMIT TO (calls, interventions) FROM SERVER other_platform INTO link;")
    finally:
        db.close()


def other_platform(name: str) -> str:
    return "cloud" if check_platform_name(name) == "legacy" else "legacy"


def create_platforms(lab_dir: Path, codes: Sequence[str]) -> None:
    """Both platforms' schemas, then the link each has to the other (it needs the other's tables)."""
    for name in PLATFORMS:
        create_platform(lab_dir, name, codes)
    for name in PLATFORMS:
        create_link(lab_dir, name)


# --------------------------------------------------------------------------
# Creating the lab's databases

_SITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS site (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backup_buffer (
    call_id TEXT PRIMARY KEY, samu_code TEXT NOT NULL, placed_at TEXT NOT NULL, answered_at TEXT NOT NULL,
    caller TEXT NOT NULL, outcome TEXT NOT NULL, answered_by TEXT NOT NULL,
    intervention_id TEXT NOT NULL, kind TEXT NOT NULL, decided_at TEXT NOT NULL,
    replayed_to TEXT, replayed_at TEXT);
"""

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL UNIQUE, samu_code TEXT NOT NULL,
    placed_at TEXT NOT NULL, answered_by TEXT, lost_reason TEXT, source TEXT NOT NULL,
    ended_at TEXT);  -- NULL while an answered call is still talking: its record is written at its end
"""


def create_site(lab_dir: Path, code: str, platform: str = "legacy") -> None:
    conn = connect(site_db(lab_dir, code), create=True)
    with conn:
        conn.executescript(_SITE_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO site VALUES ('code', ?), ('mode', 'nominal'), ('platform', ?)",
                     (code, platform))
    conn.close()


def create_ledger(lab_dir: Path) -> None:
    conn = connect(ledger_db(lab_dir), create=True)
    conn.executescript(_LEDGER_SCHEMA)
    conn.close()


def create_lab_data(lab_dir: Path, codes: Sequence[str]) -> None:
    """Both platforms (serving; their clusters must be running), one site per SAMU (nominal on legacy), a ledger."""
    create_platforms(lab_dir, codes)
    for code in codes:
        create_site(lab_dir, code)
    create_ledger(lab_dir)


# --------------------------------------------------------------------------
# Call records


@dataclass(frozen=True)
class CallRecord:
    """What a SAMU records for an answered call: the call and the decision taken (intervention)."""

    call_id: str
    samu_code: str
    placed_at: str
    answered_at: str
    caller: str
    outcome: str
    answered_by: str
    intervention_id: str
    kind: str
    decided_at: str

    def call_row(self) -> tuple[str, ...]:
        return tuple(getattr(self, c) for c in CALL_COLUMNS)

    def intervention_row(self) -> tuple[str, ...]:
        return (self.intervention_id, self.call_id, self.samu_code, self.kind, self.decided_at)


@dataclass(frozen=True)
class CallResult:
    """How one call went: answered by ``legacy``/``cloud``/``local``, or lost and why."""

    call_id: str
    samu_code: str
    placed_at: str
    answered_by: str | None
    lost_reason: str | None = None

    @property
    def answered(self) -> bool:
        return self.answered_by is not None


def new_record(code: str, answered_by: str, *, caller: str, placed_at: str, rng: random.Random) -> CallRecord:
    outcome = rng.choice(sorted(OUTCOMES))
    stamp = now()
    return CallRecord(
        call_id=f"{code}-{uuid.uuid4().hex[:16]}", samu_code=code, placed_at=placed_at, answered_at=stamp,
        caller=caller, outcome=outcome, answered_by=answered_by, intervention_id=uuid.uuid4().hex,
        kind=OUTCOMES[outcome], decided_at=stamp,
    )


def synthetic_caller(rng: random.Random) -> str:
    return "+33 6 " + " ".join(f"{rng.randrange(100):02d}" for _ in range(4))


def insert_sql(record: CallRecord) -> str:
    """The statements that record a call and its intervention, idempotent by key (a repeated record is no-op)."""
    return (f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join(lit(v) for v in record.call_row())}) "
            "ON CONFLICT DO NOTHING;"
            f"INSERT INTO interventions ({', '.join(INTERVENTION_COLUMNS)}) "
            f"VALUES ({', '.join(lit(v) for v in record.intervention_row())}) ON CONFLICT DO NOTHING;")


def insert_records(db: Platform, records: Sequence[CallRecord]) -> int:
    """Record calls in one transaction, idempotently by key; how many calls were new.

    Refused (``LabError``) if one of their partitions is frozen, or the platform down.
    """
    if not records:
        return 0
    try:
        results = db.run("BEGIN;" + "".join(insert_sql(r) for r in records) + "COMMIT;")
    except PgError as exc:
        raise _refusal(db, exc) from exc
    return sum(r.count for r in results[1::2][:len(records)])


def insert_record(db: Platform, record: CallRecord) -> bool:
    """Insert a call and its intervention, idempotently by key; True if the call was new."""
    return insert_records(db, [record]) == 1


def _refusal(db: Platform, exc: PgError) -> LabError:
    if exc.sqlstate == READ_ONLY_SQLSTATE:
        return LabError(f"the {db.name} platform refused the write: {exc}",
                        f"unfreeze that partition of the {db.name} platform first")
    return LabError(f"the {db.name} platform's database refused the write: {exc}", "see the platform's log")


# --------------------------------------------------------------------------
# Platforms


def partition_states(db: Platform, codes: Sequence[str] | None) -> dict[str, str]:
    """State per SAMU partition (``serving`` or ``frozen``): the ``codes`` asked for, or every partition."""
    names = ("SELECT substr(c.relname, 9) AS code, c.oid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = 'calls'::regclass")
    rows = db.rows(f"SELECT upper(p.code), EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = p.oid "
                   f"AND t.tgname = 'read_only') FROM ({names}) p ORDER BY 1")
    known = {str(code): FROZEN if frozen == "t" else SERVING for code, frozen in rows}
    if codes is None:
        return known
    missing = [c for c in codes if c.upper() not in known]
    if missing:
        raise LabError(f"the {db.name} platform has no partition for SAMU(s) {', '.join(missing)}",
                       "the lab's platforms have one partition per SAMU of the lab")
    return {code: known[code.upper()] for code in codes}


def partition_state(db: Platform, code: str) -> str:
    return partition_states(db, [code])[code]


def platform_state(db: Platform) -> str:
    """``down`` (unreachable), ``frozen`` (frozen as a whole, every partition at once) or ``serving``."""
    try:
        return str(db.rows("SELECT value FROM lab_control WHERE key = 'state'")[0][0])
    except PlatformDown:
        return DOWN


def parse_codes(text: str | None) -> list[str] | None:
    """``--samus 01,13,2A`` -> ['01', '13', '2A']; None (no option) means every partition."""
    if text is None:
        return None
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if not codes:
        raise LabError("--samus names no SAMU", "give département codes separated by commas, e.g. --samus 01,13")
    return codes


def check_platform_name(name: str) -> str:
    if name not in PLATFORMS:
        raise LabError(f"unknown platform {name!r}", f"platforms are: {', '.join(PLATFORMS)}")
    return name


def call_started(db: Platform, samu_code: str, call_id: str) -> None:
    """The platform answered a call that is still in progress (its record comes at its end).

    ``drain`` waits for these before a freeze; ``answer_on_platform`` ends them.
    """
    db.run(f"INSERT INTO calls_in_progress VALUES ({lit(call_id)}, {lit(samu_code)}, {lit(now())}) "
           "ON CONFLICT DO NOTHING")


def answer_on_platform(db: Platform, record: CallRecord) -> str | None:
    """Record an answered call on a platform, at the end of the call; the reason it was lost otherwise.

    The one function through which a call's record reaches a platform. It
    takes no lock beyond its own transaction (the record and the end of the
    call in progress commit together), so a caller holds nothing for the life
    of the call. A frozen partition refuses the record: the call is lost,
    which is why a freeze waits for the wave's calls in progress (``drain``).
    """
    done = f"DELETE FROM calls_in_progress WHERE call_id = {lit(record.call_id)};"
    try:
        db.run("BEGIN;" + insert_sql(record) + done + "COMMIT;")
    except PlatformDown:
        return f"{record.answered_by} platform down"
    except PgError as exc:
        with contextlib.suppress(PgError, PlatformDown):
            db.run(done)  # the call has ended, recorded or not: it no longer holds up a drain
        if exc.sqlstate == READ_ONLY_SQLSTATE:
            return f"{record.answered_by} platform partition {record.samu_code} frozen"
        return f"{record.answered_by} platform refused the record: {exc}"
    return None


def call_ended(db: Platform, call_id: str) -> None:
    """The call has ended though its record could not be written (its platform's database was down).

    Without this its in-progress mark would outlive the outage, and every
    later drain of its SAMU would wait for a call that no longer exists.
    Raises ``PlatformDown`` while the database is still down.
    """
    db.run(f"DELETE FROM calls_in_progress WHERE call_id = {lit(call_id)}")


def calls_in_progress(db: Platform, codes: Sequence[str] | None = None) -> int:
    where = "" if codes is None else f" WHERE samu_code = ANY ({lit_array(codes)})"
    return int(db.rows(f"SELECT count(*) FROM calls_in_progress{where}")[0][0] or 0)


def drain(db: Platform, codes: Sequence[str] | None, timeout: float = 60.0, poll: float = 0.1) -> dict[str, Any]:
    """Wait until the platform has no call in progress for ``codes``' SAMUs (their records are written).

    Run after the wave's SAMUs stopped sending calls here (backup mode) and
    before the freeze: a call still in progress when its partition freezes
    would have its record refused at its end.
    """
    started = time.monotonic()
    while True:
        left = calls_in_progress(db, codes)
        waited = round(time.monotonic() - started, 3)
        if left == 0 or waited >= timeout:
            return {"platform": db.name, "samus": list(codes) if codes is not None else None,
                    "drained": left == 0, "in_progress": left, "waited_s": waited}
        time.sleep(poll)


def _partition_ddl(codes: Sequence[str], statement: str) -> str:
    return "".join(statement.format(table=partition_name(table, code)) for code in codes for table in DATA_TABLES)


def set_frozen(db: Platform, frozen: bool, codes: Sequence[str] | None = None) -> bool:
    """Freeze (writes refused) or unfreeze the partitions of ``codes`` (None: every partition); True if any changed.

    The DDL waits for the transactions writing those partitions to commit (its
    lock), so no record is half-written; it does not wait for calls still in
    progress: that is ``drain``'s job, before.
    """
    before = partition_states(db, codes)
    wanted = FROZEN if frozen else SERVING
    statement = ("CREATE OR REPLACE TRIGGER read_only BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                 "FOR EACH ROW EXECUTE FUNCTION read_only();" if frozen
                 else "DROP TRIGGER IF EXISTS read_only ON {table};")
    whole = "" if codes is not None else f"UPDATE lab_control SET value = {lit(wanted)} WHERE key = 'state';"
    db.run("BEGIN; SET LOCAL lock_timeout = '30s';" + _partition_ddl(list(before), statement) + whole + "COMMIT;")
    return any(state != wanted for state in before.values())


def _scope(codes: Sequence[str] | None, alias: str = "t") -> str:
    return "" if codes is None else f" WHERE {alias}.samu_code = ANY ({lit_array(codes)})"


# An order-independent digest of a set of rows: the sum of the first 60 bits of
# each row's md5 (over its text form, every column). Equal sets give equal sums
# whatever the order the rows are read in, here and across the link.
ROW_HASH = "('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint"


def table_checksums(db: Platform, codes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per data table: row count and the order-independent digest of ``codes``' partitions."""
    sql = " UNION ALL ".join(f"SELECT {lit(table)}, count(*), coalesce(sum({ROW_HASH}), 0) FROM {table} t"
                             + _scope(codes) for table in DATA_TABLES)
    return {str(table): {"rows": int(rows or 0), "checksum": f"md5sum60:{digest}"}
            for table, rows, digest in db.rows(sql)}


def compare_checksums(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> list[str]:
    """Tables whose counts or checksums differ (empty when the two platforms hold the same data)."""
    return [t for t in DATA_TABLES if left.get(t) != right.get(t)]


def verify_across_link(db: Platform, codes: Sequence[str] | None) -> list[dict[str, Any]]:
    """Per table and SAMU: rows and digest here and, through the link, on the other platform, in one query."""
    wanted = lit_array(codes) if codes is not None else \
        "ARRAY(SELECT DISTINCT samu_code FROM (SELECT samu_code FROM calls UNION SELECT samu_code FROM link.calls) s)"
    sides = []
    for side, prefix in (("here", ""), ("there", "link.")):
        sides.append(f"{side} AS (" + " UNION ALL ".join(
            f"SELECT {lit(table)} AS tbl, t.samu_code, count(*) AS n, sum({ROW_HASH}) AS d "
            f"FROM {prefix}{table} t WHERE t.samu_code = ANY ({wanted}) GROUP BY t.samu_code"
            for table in DATA_TABLES) + ")")
    sql = (f"WITH {', '.join(sides)}, "
           f"wanted AS (SELECT tbl, samu_code FROM unnest({wanted}) AS samu_code, "
           f"unnest({lit_array(list(DATA_TABLES))}) AS tbl) "
           "SELECT w.tbl, w.samu_code, coalesce(h.n, 0), coalesce(h.d, 0), coalesce(r.n, 0), coalesce(r.d, 0) "
           "FROM wanted w LEFT JOIN here h USING (tbl, samu_code) LEFT JOIN there r USING (tbl, samu_code) "
           "ORDER BY 1, 2")
    return [{"table": tbl, "samu": code, "here": {"rows": int(hn or 0), "digest": hd},
             "there": {"rows": int(rn or 0), "digest": rd}, "equal": (hn, hd) == (rn, rd)}
            for tbl, code, hn, hd, rn, rd in db.rows(sql)]


def copy_over_link(db: Platform, codes: Sequence[str] | None) -> dict[str, int]:
    """Copy into this platform, from the other over the link, every row of ``codes``' partitions it lacks.

    ``ON CONFLICT DO NOTHING`` on the primary key: a rerun copies nothing twice
    (production: Data Pump's TABLE_EXISTS_ACTION=APPEND with
    SKIP_CONSTRAINT_ERRORS). As a replication session (``replica``), the copy
    writes into partitions frozen here (a copy-back into legacy's frozen wave).
    """
    statements = "".join(f"INSERT INTO {table} SELECT * FROM link.{table} t{_scope(codes)} ON CONFLICT DO NOTHING;"
                         for table in DATA_TABLES)
    try:
        results = db.run("BEGIN; SET LOCAL session_replication_role = replica;" + statements + "COMMIT;")
    except PgError as exc:
        raise LabError(f"the copy into the {db.name} platform failed: {exc}",
                       "is the other platform up? (`cutover lab status`)") from exc
    inserts = [r for r in results if r.tag.startswith("INSERT")]
    return {table: result.count for table, result in zip(DATA_TABLES, inserts)}


def _copy_frozen(lab_dir: Path, source: str, target: str, codes: Sequence[str] | None,
                 live: bool) -> dict[str, Any]:
    """Copy the partitions of ``codes`` from ``source`` once they are frozen there (or ``live``: a pre-copy)."""
    if source == target:
        raise LabError("migrating a platform onto itself", "use --from legacy --to cloud")
    src, dst = open_platform(lab_dir, source), open_platform(lab_dir, target)
    try:
        states = partition_states(src, codes)
        serving = sorted(code for code, state in states.items() if state == SERVING)
        if serving and not live:
            what = "platform" if codes is None else f"partition(s) {', '.join(serving)}"
            raise LabError(f"the {source} {what} still serving: records taken after the copy would be missed",
                           f"freeze first (samu-platform freeze --platform {source}"
                           + ("" if codes is None else f" --samus {','.join(codes)}") + "), or pass --live")
        copied = copy_over_link(dst, codes)
    finally:
        src.close()
        dst.close()
    return {"from": source, "to": target, "copied": copied, "samus": list(codes) if codes is not None else None,
            "source_state": "serving" if serving else FROZEN}


def migrate(lab_dir: Path, source: str, target: str, *, live: bool = False,
            codes: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy frozen partitions to another platform, which then serves them (idempotent: nothing copied twice).

    With ``codes``, the target's partitions of those SAMUs are unfrozen: a
    rollback's copy-back froze them, and the SAMUs (in backup mode while this
    runs) return to nominal on the target once it is verified.
    """
    result = _copy_frozen(lab_dir, source, target, codes, live)
    if codes is not None:
        db = open_platform(lab_dir, target)
        try:
            set_frozen(db, False, codes)
        finally:
            db.close()
    return result


def copy_back(lab_dir: Path, source: str = "cloud", target: str = "legacy",
              codes: Sequence[str] | None = None) -> dict[str, Any]:
    """Rollback: freeze the abandoned partitions, then copy back the records the other platform lacks.

    Freezing first matters: a call the source took after the copy would be lost to
    the rollback. A SAMU still nominal on the source loses calls from here on,
    which is the runbook's mistake to see, not to hide.
    """
    db = open_platform(lab_dir, source)
    try:
        set_frozen(db, True, codes)
    finally:
        db.close()
    result = _copy_frozen(lab_dir, source, target, codes, live=False)
    return {**result, "source_frozen": True}


def corrupt_one_record(db: Platform) -> str:
    """Fault: alter one call record (counts unchanged, checksums differ); undone by ``repair_records``.

    With no record yet, a trigger corrupts the next record written (typically by
    the migration, hence ``ENABLE ALWAYS``: it fires in replication sessions too),
    so the fault can be set before the night starts.
    """
    row = db.rows("SELECT samu_code, call_id, caller FROM calls ORDER BY answered_at DESC LIMIT 1")
    if not row:
        db.run("BEGIN; DROP TRIGGER IF EXISTS lab_fault_corrupt ON calls;"
               "CREATE TRIGGER lab_fault_corrupt BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION lab_fault_corrupt();"
               "ALTER TABLE calls ENABLE ALWAYS TRIGGER lab_fault_corrupt; COMMIT;")
        return "armed: the next record written will be corrupted"
    code, call_id, caller = row[0]
    db.run(f"BEGIN; SET LOCAL session_replication_role = replica;"
           f"INSERT INTO lab_faults VALUES ({lit(call_id)}, {lit(caller)}) ON CONFLICT DO NOTHING;"
           f"UPDATE calls SET caller = caller || ' [corrupted]' WHERE samu_code = {lit(code)} AND call_id = {lit(call_id)};"
           "COMMIT;")
    return f"record {call_id} corrupted"


def repair_records(db: Platform) -> int:
    """Undo ``corrupt_one_record``; returns how many records were restored."""
    results = db.run("BEGIN; SET LOCAL session_replication_role = replica; "
                     "DROP TRIGGER IF EXISTS lab_fault_corrupt ON calls;"
                     "UPDATE calls c SET caller = f.original_caller FROM lab_faults f WHERE c.call_id = f.call_id;"
                     "DELETE FROM lab_faults; COMMIT;")
    return next(r.count for r in results if r.tag.startswith("DELETE"))


def platform_status(db: Platform, name: str, codes: Sequence[str] | None = None) -> dict[str, Any]:
    """The platform's own state, its faults, and its partitions' states and record counts (of ``codes``)."""
    try:
        partitions = partition_states(db, codes)
        state = platform_state(db)
        [[records, corrupted, armed, in_progress]] = db.rows(
            f"SELECT (SELECT count(*) FROM calls t{_scope(codes)}), (SELECT count(*) FROM lab_faults), "
            "(SELECT count(*) FROM pg_trigger WHERE tgname = 'lab_fault_corrupt' AND tgrelid = 'calls'::regclass), "
            f"(SELECT count(*) FROM calls_in_progress t{_scope(codes)})")
    except PlatformDown:
        return {"platform": name, "state": DOWN, "records": None, "faults": ["platform-db-down"],
                "partitions": {code: DOWN for code in codes or ()}, "in_progress": None}
    faults = ["checksum-mismatch"] if int(corrupted or 0) or int(armed or 0) else []
    return {"platform": name, "state": state, "records": int(records or 0),
            "faults": faults, "partitions": partitions, "in_progress": int(in_progress or 0)}


def partitions_in(status: dict[str, Any], expected: str) -> bool:
    """Whether every partition of a status (the whole platform when none) is in the ``expected`` state."""
    states = list(status["partitions"].values()) or [status["state"]]
    return all(state == expected for state in states)


# --------------------------------------------------------------------------
# Sites


def site_settings(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM site").fetchall())


def place_call(site: sqlite3.Connection, platforms: dict[str, Platform], code: str, *,
               caller: str, rng: random.Random) -> CallResult:
    """A zero-length call without SIP, for unit tests: answered where the SAMU's state routes it, then recorded.

    No lock is held between reading the route and recording, as over SIP (where
    the router reads ``routes`` and the answering agent records at the call's
    end, ``record_call``): a switch in between is a race the runbook must drain.
    """
    placed_at = now()
    settings = site_settings(site)
    who = LOCAL if settings["mode"] == "backup" else settings["platform"]
    record = new_record(code, who, caller=caller, placed_at=placed_at, rng=rng)
    lost = _record_on(site, platforms.get(who), record)
    return CallResult(record.call_id, code, placed_at, None if lost else who, lost)


def record_call(lab: LabData, record: CallRecord) -> str | None:
    """Record an answered call in the database of whoever answered it, at the end of the call.

    The one way a call is recorded (the SIP answering agents and ``place_call``
    use it): the SAMU's backup buffer when its backup position answered
    (``answered_by`` local), else the SAMU's partition of that platform
    (``answer_on_platform``). None when recorded, else why the record was lost.
    """
    if record.answered_by == LOCAL:
        return _record_on(lab.site(record.samu_code), None, record)
    return _record_on(None, lab.platform(record.answered_by), record)


def _record_on(site: sqlite3.Connection | None, platform: Platform | None,
               record: CallRecord) -> str | None:
    if record.answered_by == LOCAL:
        assert site is not None
        _buffer(site, record)  # one autocommit INSERT: atomic without holding anything
        return None
    assert platform is not None
    return answer_on_platform(platform, record)


def refusal(lab: LabData, platform: str, code: str) -> str | None:
    """Why ``platform`` would not take a call for SAMU ``code`` now (its partition frozen, the platform down); None if it would."""
    db = lab.platform(platform)
    whole = platform_state(db)
    if whole == DOWN:
        return f"{platform} platform {whole}"
    state = partition_state(db, code)
    if state == SERVING:
        return None
    return f"{platform} platform {state}" if whole != SERVING else f"{platform} platform partition {code} {state}"


def _buffer(site: sqlite3.Connection, record: CallRecord) -> None:
    site.execute("INSERT INTO backup_buffer VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
                 record.call_row() + (record.intervention_id, record.kind, record.decided_at))


def pending_records(site: sqlite3.Connection) -> list[CallRecord]:
    rows = site.execute(
        f"SELECT {', '.join(CALL_COLUMNS)}, intervention_id, kind, decided_at FROM backup_buffer "
        "WHERE replayed_to IS NULL ORDER BY placed_at").fetchall()
    return [CallRecord(*row) for row in rows]


def replay_buffer(site: sqlite3.Connection, platform: Platform, target: str) -> dict[str, int]:
    """Replay the calls answered in backup mode into a platform, idempotently by call id.

    Runs under the site lock (no call lands in the buffer meanwhile); the
    records go to the platform in one transaction. A crash between the two
    commits leaves records replayed but not marked; the next replay finds them
    present and only marks them.
    """
    with write_txn(site):
        return _replay_locked(site, platform, target)


def _replay_locked(site: sqlite3.Connection, platform: Platform, target: str) -> dict[str, int]:
    pending = pending_records(site)
    code = site_settings(site)["code"]
    if partition_state(platform, code) != SERVING:
        raise LabError(f"cannot replay into the {target} platform: its partition {code} is frozen",
                       f"unfreeze or heal the {target} platform first")
    copied = insert_records(platform, pending)
    stamp = now()
    site.executemany("UPDATE backup_buffer SET replayed_to = ?, replayed_at = ? WHERE call_id = ?",
                     [(target, stamp, r.call_id) for r in pending])
    return {"replayed": copied, "already_present": len(pending) - copied}


def set_mode(site: sqlite3.Connection, platforms: dict[str, Platform], mode: str, *,
             lab_dir: Path | None = None, drain_timeout: float = DRAIN_TIMEOUT_S) -> dict[str, Any]:
    """Switch a SAMU to backup mode, or return it to nominal.

    In a lab with a call router (``lab_dir`` given and routing over SIP), the
    SAMU's route changes first, through the router's control socket: backup
    routes its number to its backup position; nominal routes it back to its
    platform, *then* waits for the calls still talking on the backup position
    to end (their records land in the buffer at their end), then replays the
    buffer and switches in one site transaction. Calls in progress on the
    platform at a switch to backup end there and are recorded there.
    """
    if mode not in MODES:
        raise LabError(f"unknown mode {mode!r}", "modes are: nominal, backup")
    settings = site_settings(site)
    code = settings["code"]
    routed = lab_dir is not None and sipcall.has_router(lab_dir)
    if mode == "nominal" and routed:
        assert lab_dir is not None
        _refuse_unless_serving(platforms[settings["platform"]], settings["platform"], code)
        _route(lab_dir, code, settings["platform"])
        _drain(lab_dir, "local", code, drain_timeout)
    elif routed:
        assert lab_dir is not None
        _route(lab_dir, code, LOCAL)
    with write_txn(site):
        replayed = {"replayed": 0, "already_present": 0}
        if mode == "nominal":
            replayed = _replay_locked(site, platforms[settings["platform"]], settings["platform"])
        site.execute("UPDATE site SET value = ? WHERE key = 'mode'", (mode,))
    return {"mode": mode, "previous": settings["mode"], "changed": settings["mode"] != mode,
            "platform": settings["platform"], **replayed}


def _refuse_unless_serving(platform: Platform, name: str, code: str) -> None:
    state = partition_state(platform, code)
    if state != SERVING:
        raise LabError(f"the {name} platform's partition of SAMU {code} is {state}: calls routed there would be lost",
                       f"bring it back first (unfreeze or migrate), then return SAMU {code} to nominal")


def _route(lab_dir: Path, code: str, where: str) -> None:
    try:
        sipcall.set_route(lab_dir, code, where)
    except sipcall.RouterError as exc:
        raise LabError(f"cannot route SAMU {code} to {where}: {exc}", exc.hint) from exc


def _drain(lab_dir: Path, where: str, code: str, timeout: float) -> None:
    """Wait until no call of SAMU ``code`` is in progress on ``where`` (the router's dialogs)."""
    deadline = time.monotonic() + timeout
    while (left := in_progress(lab_dir, where, [code])[code]) > 0:
        if time.monotonic() > deadline:
            raise LabError(f"{left} call(s) to SAMU {code} still in progress on {where} after {timeout:g}s",
                           "rerun when they have ended (the command is idempotent)")
        time.sleep(DRAIN_POLL_S)


def in_progress(lab_dir: Path, where: str, codes: Sequence[str]) -> dict[str, int]:
    """Calls in progress on ``where`` (legacy, cloud or local), per SAMU of ``codes``, until their record is written.

    The router counts a call from its INVITE to its BYE (its dialogs); the
    answering agent writes the record just after the BYE. So a call is in
    progress while either says so: the router's dialogs, or the ledger's
    answered calls not yet ended (recorded). The larger of the two counts
    covers both, without counting a call twice.
    """
    try:
        routed = sipcall.calls_in_progress(lab_dir, where, codes)
    except sipcall.RouterError as exc:
        raise LabError(str(exc), exc.hint) from exc
    unrecorded = _unrecorded(lab_dir, where, codes)
    return {code: max(routed[code], unrecorded.get(code, 0)) for code in codes}


UNRECORDED_HORIZON_S = 60.0  # the answering agents end a call no one hung up 30 s after its answer


def _unrecorded(lab_dir: Path, where: str, codes: Sequence[str]) -> dict[str, int]:
    """Answered calls of ``codes`` on ``where`` whose record is not written yet (the ledger's view)."""
    path = ledger_db(lab_dir)
    if not path.is_file():
        return {}
    since = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=UNRECORDED_HORIZON_S)).isoformat(
        timespec="microseconds")
    conn = connect(path)
    try:
        rows = conn.execute(
            f"SELECT samu_code, COUNT(*) FROM calls WHERE answered_by = ? AND ended_at IS NULL AND placed_at > ? "
            f"AND samu_code IN ({','.join('?' * len(codes))}) GROUP BY samu_code", (where, since, *codes)).fetchall()
    finally:
        conn.close()
    return {code: int(count) for code, count in rows}


def point_at(site: sqlite3.Connection, platforms: dict[str, Platform], target: str, *,
             lab_dir: Path | None = None) -> dict[str, Any]:
    """Point a SAMU at a platform. Refused in nominal mode if that platform does not serve (calls would be lost).

    In nominal mode with a call router, the SAMU's route moves to ``target`` at
    once (new calls go there; calls in progress end where they are); in backup
    mode the route stays on the backup position until the return to nominal.
    """
    check_platform_name(target)
    with write_txn(site):
        settings = site_settings(site)
        if settings["mode"] == "nominal":
            state = platform_state(platforms[target])
            if state != SERVING:
                raise LabError(f"the SAMU is in nominal mode and the {target} platform is {state}: calls would be lost",
                               "switch the SAMU to backup mode first (samu-site mode backup)")
            if lab_dir is not None and sipcall.has_router(lab_dir):
                _route(lab_dir, settings["code"], target)
        site.execute("UPDATE site SET value = ? WHERE key = 'platform'", (target,))
    return {"platform": target, "previous": settings["platform"], "changed": settings["platform"] != target,
            "mode": settings["mode"]}


def site_status(site: sqlite3.Connection) -> dict[str, Any]:
    with read_txn(site):
        settings = site_settings(site)
        pending = site.execute("SELECT COUNT(*) FROM backup_buffer WHERE replayed_to IS NULL").fetchone()[0]
        replayed = dict(site.execute(
            "SELECT replayed_to, COUNT(*) FROM backup_buffer WHERE replayed_to IS NOT NULL GROUP BY replayed_to"))
    return {"site": settings["code"], "mode": settings["mode"], "platform": settings["platform"],
            "buffer": {"pending": pending, "replayed": replayed}}


# --------------------------------------------------------------------------
# The ledger: every call placed in the lab, as the telephone network saw it


def record_in_ledger(ledger: sqlite3.Connection, result: CallResult, source: str) -> None:
    """A call that has ended (answered and recorded, or lost and why)."""
    ledger.execute("INSERT INTO calls (call_id, samu_code, placed_at, answered_by, lost_reason, source, ended_at) "
                   "VALUES (?,?,?,?,?,?,?)",
                   (result.call_id, result.samu_code, result.placed_at, result.answered_by, result.lost_reason,
                    source, now()))


def ledger_answered(ledger: sqlite3.Connection, call_id: str, code: str, placed_at: str, answered_by: str | None,
                    source: str, lost_reason: str | None = None) -> None:
    """An answering agent took (or refused: ``answered_by`` None) a call; a refused call has ended."""
    ledger.execute("INSERT OR IGNORE INTO calls (call_id, samu_code, placed_at, answered_by, lost_reason, source, "
                   "ended_at) VALUES (?,?,?,?,?,?,?)",
                   (call_id, code, placed_at, answered_by, lost_reason, source,
                    now() if answered_by is None else None))


def ledger_ended(ledger: sqlite3.Connection, call_id: str, lost_reason: str | None) -> None:
    """An answered call ended: its record was written (``lost_reason`` None) or lost and why."""
    ledger.execute("UPDATE calls SET ended_at = ?, lost_reason = ? WHERE call_id = ?", (now(), lost_reason, call_id))


def ledger_row(ledger: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    row = ledger.execute("SELECT call_id, samu_code, placed_at, answered_by, lost_reason, ended_at FROM calls "
                         "WHERE call_id = ?", (call_id,)).fetchone()
    return dict(zip(("call_id", "samu_code", "placed_at", "answered_by", "lost_reason", "ended_at"), row)) \
        if row else None


class LabData:
    """Connections to one lab's databases, opened once (the traffic generator places many calls)."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = Path(lab_dir)
        self._sites: dict[str, sqlite3.Connection] = {}
        self._platforms: dict[str, Platform] = {}
        self._ledger: sqlite3.Connection | None = None

    def site(self, code: str) -> sqlite3.Connection:
        if code not in self._sites:
            path = site_db(self.lab_dir, code)
            if not path.is_file():
                raise LabError(f"no SAMU site {code!r} in the lab at {self.lab_dir}", "check CUTOVER_LAB_SITE / --site")
            self._sites[code] = connect(path)
        return self._sites[code]

    def platform(self, name: str) -> Platform:
        if name not in self._platforms:
            self._platforms[name] = open_platform(self.lab_dir, name)
        return self._platforms[name]

    @property
    def platforms(self) -> dict[str, Platform]:
        return {name: self.platform(name) for name in PLATFORMS}

    def ledger(self) -> sqlite3.Connection:
        if self._ledger is None:
            self._ledger = connect(ledger_db(self.lab_dir))
        return self._ledger

    def call(self, code: str, *, caller: str, rng: random.Random, source: str = "traffic") -> CallResult:
        """Place a call to SAMU ``code`` and write it in the ledger."""
        result = place_call(self.site(code), self.platforms, code, caller=caller, rng=rng)
        record_in_ledger(self.ledger(), result, source)
        return result

    def close(self) -> None:
        for conn in [*self._sites.values(), *([self._ledger] if self._ledger else [])]:
            conn.close()
        for platform in self._platforms.values():
            platform.close()
        self._sites.clear()
        self._platforms.clear()
        self._ledger = None


def sip_test_call(lab: LabData, code: str) -> CallResult:
    """A real call through the router to SAMU ``code``; who answered and whether its record was written (ledger)."""
    try:
        outcome = sipcall.place_call(lab.lab_dir, code)
    except sipcall.RouterError as exc:
        raise LabError(str(exc), exc.hint) from exc
    row = ledger_row(lab.ledger(), outcome.call_id)
    if not outcome.completed:
        why = outcome.reason or f"SIP {outcome.invite_status}"
        return CallResult(outcome.call_id, code, now(), None, (row or {}).get("lost_reason") or why)
    if row is None:
        return CallResult(outcome.call_id, code, now(), None, "answered but unknown to every answering agent")
    lost = row["lost_reason"]
    return CallResult(outcome.call_id, code, row["placed_at"], None if lost else row["answered_by"], lost)


# --------------------------------------------------------------------------
# Command line: `samu-site ...` and `samu-platform ...`


def _lab_dir(args: argparse.Namespace) -> Path:
    value = args.lab_dir or os.environ.get("CUTOVER_LAB_DIR")
    if not value or not Path(value).is_dir():
        raise LabError(f"no lab folder ({value or 'CUTOVER_LAB_DIR is not set'})",
                       "run this on a lab host (its sshd sets CUTOVER_LAB_DIR) or pass --lab-dir")
    return Path(value)


def _identity(args: argparse.Namespace, option: str, variable: str) -> str:
    value = getattr(args, option) or os.environ.get(variable)
    if not value:
        raise LabError(f"this host does not know which {option} it is ({variable} is not set)",
                       f"run it on a lab {option} host or pass --{option}")
    return str(value)


def _site_command(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    lab = LabData(_lab_dir(args))
    code = _identity(args, "site", "CUTOVER_LAB_SITE")
    site = lab.site(code)
    if args.command == "mode":
        return {"site": code, **set_mode(site, lab.platforms, args.mode, lab_dir=lab.lab_dir)}, EXIT_OK
    if args.command == "platform":
        return {"site": code, **point_at(site, lab.platforms, args.platform, lab_dir=lab.lab_dir)}, EXIT_OK
    if args.command == "replay":
        target = args.platform or site_settings(site)["platform"]
        return {"site": code, "platform": target, **replay_buffer(site, lab.platform(target), target)}, EXIT_OK
    if args.command == "test-call":
        return _test_call(lab, code, args.expect)
    status = site_status(site)
    failed = (args.expect_mode and status["mode"] != args.expect_mode) or \
             (args.expect_platform and status["platform"] != args.expect_platform)
    return status, EXIT_CHECK_FAILED if failed else EXIT_OK


def _test_call(lab: LabData, code: str, expect: str | None) -> tuple[dict[str, Any], int]:
    if sipcall.has_router(lab.lab_dir):
        result = sip_test_call(lab, code)
    else:
        result = lab.call(code, caller="TEST CALL", rng=random.Random(), source="test-call")
    ok = result.answered and (expect is None or result.answered_by == expect)
    return {**asdict(result), "expected": expect, "ok": ok}, EXIT_OK if ok else EXIT_CHECK_FAILED


def _platform_command(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    lab_dir = _lab_dir(args)
    codes = parse_codes(args.samus)
    if args.command == "migrate":
        return migrate(lab_dir, args.source, args.target, live=args.live, codes=codes), EXIT_OK
    if args.command == "copy-back":
        return copy_back(lab_dir, args.source, args.target, codes=codes), EXIT_OK
    name = check_platform_name(_identity(args, "platform", "CUTOVER_LAB_PLATFORM"))
    db = open_platform(lab_dir, name)
    try:
        return _on_platform(args, db, codes)
    finally:
        db.close()


def _on_platform(args: argparse.Namespace, db: Platform, codes: list[str] | None) -> tuple[dict[str, Any], int]:
    if args.command in ("freeze", "unfreeze"):
        changed = set_frozen(db, args.command == "freeze", codes)
        return {"platform": db.name, "state": platform_state(db), "changed": changed,
                "partitions": partition_states(db, codes)}, EXIT_OK
    if args.command == "drain":
        report = drain(db, codes, timeout=args.timeout)
        return report, EXIT_OK if report["drained"] else EXIT_CHECK_FAILED
    if args.command == "checksums":
        return {"platform": db.name, "samus": codes, "tables": table_checksums(db, codes)}, EXIT_OK
    if args.command == "verify":
        return _verify(db, args.against, codes)
    if args.command == "in-progress":
        return _in_progress(_lab_dir(args), db.name, codes, args.wait_zero)
    status = platform_status(db, db.name, codes)
    expected = args.expect is None or (partitions_in(status, args.expect) if codes is not None
                                       else status["state"] == args.expect)
    return status, EXIT_OK if expected else EXIT_CHECK_FAILED


def _in_progress(lab_dir: Path, name: str, codes: Sequence[str] | None,
                 wait: float | None) -> tuple[dict[str, Any], int]:
    """Calls in progress on this platform for ``codes`` (the router's dialogs); ``wait``: until none, at most that long."""
    if codes is None:
        raise LabError("in-progress needs --samus", "name the wave's SAMUs, e.g. --samus 01,13")
    deadline = time.monotonic() + (wait or 0.0)
    while True:
        counts = in_progress(lab_dir, name, codes)
        if not any(counts.values()) or time.monotonic() >= deadline:
            break
        time.sleep(DRAIN_POLL_S)
    total = sum(counts.values())
    report = {"platform": name, "samus": list(codes), "in_progress": counts, "total": total}
    return report, EXIT_CHECK_FAILED if wait is not None and total else EXIT_OK


def _verify(db: Platform, other: str, codes: Sequence[str] | None) -> tuple[dict[str, Any], int]:
    """Counts and digests per table and SAMU, here and over the link to ``other``, compared in one query."""
    if other != other_platform(db.name):
        raise LabError(f"the {db.name} platform's link goes to the {other_platform(db.name)} platform, not {other}",
                       f"run verify on the {other_platform(other)} platform")
    rows = verify_across_link(db, codes)
    differ = sorted({r["table"] for r in rows if not r["equal"]})
    tables = {t: {side_name: {"rows": sum(r[side]["rows"] for r in rows if r["table"] == t),
                              "checksum": "md5sum60:" + str(sum(int(r[side]["digest"] or 0)
                                                                for r in rows if r["table"] == t))}
                  for side, side_name in (("here", db.name), ("there", other))}
              for t in DATA_TABLES}
    report = {"platform": db.name, "against": other, "samus": codes, "equal": not differ, "differing_tables": differ,
              "tables": tables, "partitions": [r for r in rows if not r["equal"]]}
    return report, EXIT_CHECK_FAILED if differ else EXIT_OK


# --------------------------------------------------------------------------
# The lab's supervision: what production reads from the telephony's supervision API and from
# Météo-France's vigilance feed, the lab serves from its own ledger and a file of levels.

LOAD_WINDOW_S = 60
VIGILANCE_FILE = "vigilance.json"
VIGILANCE_COLOURS = {"green": 1, "yellow": 2, "orange": 3, "red": 4}


def call_load(lab_dir: Path, window_s: int = LOAD_WINDOW_S) -> dict[str, Any]:
    """Calls placed in the last ``window_s`` seconds, per minute: the shape of the supervision's answer."""
    since = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=window_s)).isoformat(timespec="microseconds")
    ledger = connect(ledger_db(lab_dir))
    try:
        placed = ledger.execute("SELECT count(*) FROM calls WHERE placed_at >= ?", (since,)).fetchone()[0]
    finally:
        ledger.close()
    return {"calls_per_minute": round(placed * 60 / window_s, 1), "window_s": window_s, "at": now()}


def vigilance_feed(levels: dict[str, int]) -> dict[str, Any]:
    """A vigilance file in the shape of Météo-France's feed (colour 1 green .. 4 red, per département)."""
    return {"product": {"warning_type": "vigilance", "update_time": now(), "periods": [
        {"echeance": "J", "timelaps": {"domain_ids": [
            {"domain_id": code, "max_color_id": level} for code, level in sorted(levels.items())]}}]}}


def read_vigilance(lab_dir: Path) -> dict[str, int]:
    path = Path(lab_dir) / VIGILANCE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(d["domain_id"]): int(d["max_color_id"])
            for d in data["product"]["periods"][0]["timelaps"]["domain_ids"]}


def write_vigilance(lab_dir: Path, levels: dict[str, int]) -> None:
    path = Path(lab_dir) / VIGILANCE_FILE
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(vigilance_feed(levels), indent=1) + "\n", encoding="utf-8")
    temp.replace(path)  # a probe reading it never sees half a file


def _supervision_command(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    return call_load(_lab_dir(args), args.window), EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samulab", description="The cutover lab's site and platform tools.")
    tools = parser.add_subparsers(dest="tool", required=True)
    _site_parser(tools.add_parser("site", prog="samu-site", help="control this SAMU site"))
    _platform_parser(tools.add_parser("platform", prog="samu-platform", help="control a call-handling platform"))
    supervision = tools.add_parser("supervision", help="the lab's telephony supervision: the call load now")
    supervision.add_argument("command", choices=("load",))
    supervision.add_argument("--window", type=int, default=LOAD_WINDOW_S, help="seconds counted [default: 60]")
    _common(supervision)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--lab-dir", help="the lab folder [default: $CUTOVER_LAB_DIR]")


def _site_parser(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    specs = {
        "mode": "switch to backup mode, or return to nominal (replaying the backup buffer)",
        "platform": "point this SAMU at a platform",
        "status": "mode, platform and backup buffer",
        "test-call": "place one call and check who answered it",
        "replay": "replay the backup buffer into a platform (idempotent by call id)",
    }
    subs = {name: commands.add_parser(name, help=text, description=text) for name, text in specs.items()}
    subs["mode"].add_argument("mode", choices=MODES)
    subs["platform"].add_argument("platform", choices=PLATFORMS)
    subs["status"].add_argument("--expect-mode", choices=MODES)
    subs["status"].add_argument("--expect-platform", choices=PLATFORMS)
    subs["test-call"].add_argument("--expect", choices=(LOCAL, *PLATFORMS), help="who must answer")
    subs["replay"].add_argument("--platform", choices=PLATFORMS, help="[default: the SAMU's platform]")
    for sub in subs.values():
        _common(sub)
        sub.add_argument("--site", help="the SAMU's code [default: $CUTOVER_LAB_SITE]")


def _platform_parser(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    specs = {
        "status": "state and record count",
        "freeze": "stop answering calls (records stay readable for the migration)",
        "unfreeze": "answer calls again",
        "drain": "wait until the platform has no call in progress for these SAMUs (exit 1 on timeout)",
        "checksums": "per-table row counts and checksums",
        "verify": "compare counts and checksums with another platform (exit 1 if they differ)",
        "migrate": "copy the records a platform lacks from a frozen one (idempotent by primary key)",
        "copy-back": "rollback: freeze the source, copy back the records the target lacks",
        "in-progress": "calls in progress on this platform per SAMU, as the call router counts them",
    }
    subs = {name: commands.add_parser(name, help=text, description=text) for name, text in specs.items()}
    for name in ("status", "freeze", "unfreeze", "drain", "checksums", "verify", "in-progress"):
        subs[name].add_argument("--platform", choices=PLATFORMS, help="[default: $CUTOVER_LAB_PLATFORM]")
    subs["status"].add_argument("--expect", choices=(SERVING, FROZEN, DOWN))
    subs["verify"].add_argument("--against", choices=PLATFORMS, required=True)
    subs["drain"].add_argument("--timeout", type=float, default=60.0, help="seconds to wait [default: 60]")
    for name, (source, target) in {"migrate": ("legacy", "cloud"), "copy-back": ("cloud", "legacy")}.items():
        subs[name].add_argument("--from", dest="source", choices=PLATFORMS, default=source)
        subs[name].add_argument("--to", dest="target", choices=PLATFORMS, default=target)
    subs["in-progress"].add_argument("--wait-zero", type=float, metavar="SECONDS",
                                     help="wait until none is left (exit 1 if some still are after SECONDS)")
    subs["migrate"].add_argument("--live", action="store_true", help="allow a serving source (a pre-copy)")
    for sub in subs.values():
        _common(sub)
        sub.add_argument("--samus", metavar="CODE,CODE", default=None,
                         help="act on these SAMUs' partitions only [default: the whole platform]")


def _render(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v}"
                    for k, v in data.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        command = {"site": _site_command, "platform": _platform_command}.get(args.tool, _supervision_command)
        data, code = command(args)
    except LabError as exc:
        error = {"error": str(exc), "hint": exc.hint}
        print(json.dumps(error) if getattr(args, "json", False) else f"error: {exc}\n  hint: {exc.hint}",
              file=sys.stderr)
        return EXIT_REFUSED
    except (sqlite3.Error, PgError) as exc:
        print(f"error: lab database: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(data, ensure_ascii=False) if args.json else _render(data))
    return code


if __name__ == "__main__":
    sys.exit(main())
