#!/usr/bin/python3
"""The lab's data plane: SAMU sites and call-handling platforms on SQLite (stdlib only).

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

A platform serves many SAMUs; each SAMU's data is a *partition* of it (rows
by ``samu_code``). Freeze, unfreeze, checksums, verify, migrate and copy-back
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

Exit codes of the tools: 0 done; 1 a check failed (test call answered by
someone else or lost, ``--expect*`` not met, ``verify`` found a difference);
2 bad usage; 3 refused because of the lab's state (platform frozen or down,
migrating from a platform still serving, unknown lab folder or site).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

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

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class LabError(Exception):
    """The lab's state forbids the operation (exit 3); ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --------------------------------------------------------------------------
# Files and connections


def platform_db(lab_dir: Path, name: str) -> Path:
    return Path(lab_dir) / "platforms" / f"{name}.db"


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
# Creating the lab's databases

_PLATFORM_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY, samu_code TEXT NOT NULL, placed_at TEXT NOT NULL,
    answered_at TEXT NOT NULL, caller TEXT NOT NULL, outcome TEXT NOT NULL, answered_by TEXT NOT NULL);
-- No UNIQUE on call_id here on purpose: a careless copy or replay that mints new
-- intervention ids duplicates interventions, and `cutover lab calls` must see it.
CREATE TABLE IF NOT EXISTS interventions (
    intervention_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, samu_code TEXT NOT NULL,
    kind TEXT NOT NULL, decided_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS interventions_by_call ON interventions (call_id);
CREATE TABLE IF NOT EXISTS lab_control (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per SAMU partition that was ever frozen or unfrozen by itself; no row: serving.
CREATE TABLE IF NOT EXISTS partitions (samu_code TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lab_faults (call_id TEXT PRIMARY KEY, original_caller TEXT NOT NULL);
"""

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


def create_platform(lab_dir: Path, name: str) -> None:
    conn = connect(platform_db(lab_dir, name), create=True)
    with conn:
        conn.executescript(_PLATFORM_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO lab_control VALUES ('state', ?), ('down', '0')", (SERVING,))
    conn.close()


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
    """Both platforms (serving), one site per SAMU (nominal on legacy), an empty ledger."""
    for name in PLATFORMS:
        create_platform(lab_dir, name)
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


def insert_record(conn: sqlite3.Connection, record: CallRecord) -> bool:
    """Insert a call and its intervention, idempotently by key; True if the call was new."""
    cur = conn.execute(f"INSERT OR IGNORE INTO calls ({', '.join(CALL_COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
                       record.call_row())
    conn.execute(f"INSERT OR IGNORE INTO interventions ({', '.join(INTERVENTION_COLUMNS)}) VALUES (?,?,?,?,?)",
                 record.intervention_row())
    return cur.rowcount == 1


# --------------------------------------------------------------------------
# Platforms


def platform_state(conn: sqlite3.Connection) -> str:
    """``serving``, ``frozen`` (every partition, at once) or ``down`` (down wins: a down platform answers nothing)."""
    control = dict(conn.execute("SELECT key, value FROM lab_control").fetchall())
    return DOWN if control.get("down") == "1" else control.get("state", SERVING)


def partition_state(conn: sqlite3.Connection, code: str) -> str:
    """The state of one SAMU's partition: the platform's when it is down or wholly frozen, else its own."""
    whole = platform_state(conn)
    if whole != SERVING:
        return whole
    row = conn.execute("SELECT state FROM partitions WHERE samu_code = ?", (code,)).fetchone()
    return row[0] if row else SERVING


def partition_states(conn: sqlite3.Connection, codes: Sequence[str] | None) -> dict[str, str]:
    """State per partition: the ``codes`` asked for, or every partition that holds data or a state."""
    if codes is None:
        known = {r[0] for r in conn.execute("SELECT samu_code FROM partitions")}
        known |= {r[0] for r in conn.execute("SELECT DISTINCT samu_code FROM calls")}
        codes = sorted(known)
    return {code: partition_state(conn, code) for code in codes}


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


def answer_on_platform(conn: sqlite3.Connection, record: CallRecord) -> str | None:
    """Record a call on a platform if the SAMU's partition serves; the reason it was lost otherwise.

    The state check and the insert share the platform's write lock, so a freeze
    (which takes the same lock) is either wholly before or wholly after the call.
    """
    with write_txn(conn):
        state = partition_state(conn, record.samu_code)
        if state != SERVING:
            return f"{record.answered_by} platform {state}" if platform_state(conn) != SERVING \
                else f"{record.answered_by} platform partition {record.samu_code} {state}"
        conn.execute(f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES (?,?,?,?,?,?,?)", record.call_row())
        conn.execute(f"INSERT INTO interventions ({', '.join(INTERVENTION_COLUMNS)}) VALUES (?,?,?,?,?)",
                     record.intervention_row())
    return None


def set_frozen(conn: sqlite3.Connection, frozen: bool, codes: Sequence[str] | None = None) -> bool:
    """Freeze or unfreeze the partitions of ``codes`` (None: the whole platform); True if anything changed.

    Refused while the platform is down.
    """
    wanted = FROZEN if frozen else SERVING
    with write_txn(conn):
        _refuse_if_down(conn)
        if codes is None:
            changed = platform_state(conn) != wanted
            conn.execute("UPDATE lab_control SET value = ? WHERE key = 'state'", (wanted,))
            return changed
        before = {c: partition_state(conn, c) for c in codes}
        conn.executemany("INSERT INTO partitions (samu_code, state) VALUES (?, ?) "
                         "ON CONFLICT (samu_code) DO UPDATE SET state = excluded.state",
                         [(c, wanted) for c in codes])
        return any(partition_state(conn, c) != before[c] for c in codes)


def set_down(conn: sqlite3.Connection, down: bool) -> None:
    """The lab's fault: a platform down answers no call and refuses every operation."""
    with write_txn(conn):
        conn.execute("UPDATE lab_control SET value = ? WHERE key = 'down'", ("1" if down else "0",))


def _refuse_if_down(conn: sqlite3.Connection, name: str = "the platform") -> None:
    if platform_state(conn) == DOWN:
        raise LabError(f"{name} is down", "it answers nothing until it is healed (`cutover lab heal`)")


def _scope(codes: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (and its parameters) limiting rows to the partitions of ``codes``."""
    if codes is None:
        return "", ()
    return f" WHERE samu_code IN ({','.join('?' * len(codes))})", tuple(codes)


def table_checksums(conn: sqlite3.Connection, codes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per data table: row count and a SHA-256 over every row in primary-key order (of ``codes``' partitions)."""
    result: dict[str, dict[str, Any]] = {}
    where, args = _scope(codes)
    with read_txn(conn):
        _refuse_if_down(conn)
        for table, key in DATA_TABLES.items():
            digest = hashlib.sha256()
            rows = 0
            for row in conn.execute(f"SELECT * FROM {table}{where} ORDER BY {key}", args):
                digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                rows += 1
            result[table] = {"rows": rows, "checksum": "sha256:" + digest.hexdigest()}
    return result


def compare_checksums(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> list[str]:
    """Tables whose counts or checksums differ (empty when the two platforms hold the same data)."""
    return [t for t in DATA_TABLES if left.get(t) != right.get(t)]


def copy_records(source: sqlite3.Connection, target: sqlite3.Connection,
                 codes: Sequence[str] | None = None) -> dict[str, int]:
    """Copy every row the target lacks, by primary key, of ``codes``' partitions; rows already there stay."""
    where, args = _scope(codes)
    with read_txn(source):
        rows = {t: source.execute(f"SELECT * FROM {t}{where} ORDER BY {k}", args).fetchall()
                for t, k in DATA_TABLES.items()}
    copied: dict[str, int] = {}
    with write_txn(target):
        _refuse_if_down(target, "the target platform")
        for table, table_rows in rows.items():
            before = target.total_changes
            if table_rows:
                marks = ",".join("?" * len(table_rows[0]))
                target.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", table_rows)
            copied[table] = target.total_changes - before
    return copied


def _copy_frozen(lab_dir: Path, source: str, target: str, codes: Sequence[str] | None,
                 live: bool) -> dict[str, Any]:
    """Copy the partitions of ``codes`` from ``source`` once they are frozen there (or ``live``: a pre-copy)."""
    if source == target:
        raise LabError("migrating a platform onto itself", "use --from legacy --to cloud")
    src = connect(platform_db(lab_dir, check_platform_name(source)))
    dst = connect(platform_db(lab_dir, check_platform_name(target)))
    _refuse_if_down(src, f"the {source} platform")
    states = partition_states(src, codes) if codes is not None else {"*": platform_state(src)}
    serving = sorted(code for code, state in states.items() if state == SERVING)
    if serving and not live:
        what = "platform" if codes is None else f"partition(s) {', '.join(serving)}"
        raise LabError(f"the {source} {what} still serving: records taken after the copy would be missed",
                       f"freeze first (samu-platform freeze --platform {source}"
                       + ("" if codes is None else f" --samus {','.join(codes)}") + "), or pass --live for a pre-copy")
    copied = copy_records(src, dst, codes)
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
        set_frozen(connect(platform_db(lab_dir, target)), False, codes)
    return result


def copy_back(lab_dir: Path, source: str = "cloud", target: str = "legacy",
              codes: Sequence[str] | None = None) -> dict[str, Any]:
    """Rollback: freeze the abandoned partitions, then copy back the records the other platform lacks.

    Freezing first matters: a call the source took after the copy would be lost to
    the rollback. A SAMU still nominal on the source loses calls from here on,
    which is the runbook's mistake to see, not to hide.
    """
    set_frozen(connect(platform_db(lab_dir, check_platform_name(source))), True, codes)
    result = _copy_frozen(lab_dir, source, target, codes, live=False)
    return {**result, "source_frozen": True}


def corrupt_one_record(conn: sqlite3.Connection) -> str:
    """Fault: alter one call record (counts unchanged, checksums differ); undone by ``repair_records``.

    With no record yet, a one-shot trigger corrupts the next record written
    (typically by the migration), so the fault can be set before the night starts.
    """
    with write_txn(conn):
        row = conn.execute("SELECT call_id, caller FROM calls ORDER BY rowid DESC LIMIT 1").fetchone()
        if row is None:
            conn.execute(
                "CREATE TRIGGER IF NOT EXISTS lab_fault_corrupt AFTER INSERT ON calls "
                "WHEN (SELECT COUNT(*) FROM lab_faults) = 0 BEGIN "
                "INSERT INTO lab_faults VALUES (NEW.call_id, NEW.caller); "
                "UPDATE calls SET caller = NEW.caller || ' [corrupted]' WHERE call_id = NEW.call_id; END")
            return "armed: the next record written will be corrupted"
        conn.execute("INSERT OR IGNORE INTO lab_faults VALUES (?, ?)", row)
        conn.execute("UPDATE calls SET caller = caller || ' [corrupted]' WHERE call_id = ?", (row[0],))
        return f"record {row[0]} corrupted"


def repair_records(conn: sqlite3.Connection) -> int:
    """Undo ``corrupt_one_record``; returns how many records were restored."""
    with write_txn(conn):
        conn.execute("DROP TRIGGER IF EXISTS lab_fault_corrupt")
        faults = conn.execute("SELECT call_id, original_caller FROM lab_faults").fetchall()
        for call_id, caller in faults:
            conn.execute("UPDATE calls SET caller = ? WHERE call_id = ?", (caller, call_id))
        conn.execute("DELETE FROM lab_faults")
    return len(faults)


def platform_status(conn: sqlite3.Connection, name: str, codes: Sequence[str] | None = None) -> dict[str, Any]:
    """The platform's own state, its faults, and its partitions' states and record counts (of ``codes``)."""
    where, args = _scope(codes)
    with read_txn(conn):
        records = conn.execute(f"SELECT COUNT(*) FROM calls{where}", args).fetchone()[0]
        corrupted = conn.execute("SELECT COUNT(*) FROM lab_faults").fetchone()[0]
        armed = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'lab_fault_corrupt'").fetchone()[0]
        state = platform_state(conn)
        partitions = partition_states(conn, codes)
    faults = (["platform-down"] if state == DOWN else []) + (["checksum-mismatch"] if corrupted or armed else [])
    return {"platform": name, "state": state, "records": records, "faults": faults, "partitions": partitions}


def partitions_in(status: dict[str, Any], expected: str) -> bool:
    """Whether every partition of a status (the whole platform when none) is in the ``expected`` state."""
    states = list(status["partitions"].values()) or [status["state"]]
    return all(state == expected for state in states)


# --------------------------------------------------------------------------
# Sites


def site_settings(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM site").fetchall())


def place_call(site: sqlite3.Connection, platforms: dict[str, sqlite3.Connection], code: str, *,
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


def record_call(lab: "LabData", record: CallRecord) -> str | None:
    """Record an answered call in the database of whoever answered it, at the end of the call.

    The one way a call is recorded (the SIP answering agents and ``place_call``
    use it): the SAMU's backup buffer when its backup position answered
    (``answered_by`` local), else the SAMU's partition of that platform
    (``answer_on_platform``). None when recorded, else why the record was lost.
    """
    if record.answered_by == LOCAL:
        return _record_on(lab.site(record.samu_code), None, record)
    return _record_on(None, lab.platform(record.answered_by), record)


def _record_on(site: sqlite3.Connection | None, platform: sqlite3.Connection | None,
               record: CallRecord) -> str | None:
    if record.answered_by == LOCAL:
        assert site is not None
        _buffer(site, record)  # one autocommit INSERT: atomic without holding anything
        return None
    assert platform is not None
    return answer_on_platform(platform, record)


def refusal(lab: "LabData", platform: str, code: str) -> str | None:
    """Why ``platform`` would not take a call for SAMU ``code`` now (its partition frozen, the platform down); None if it would."""
    conn = lab.platform(platform)
    with read_txn(conn):
        state = partition_state(conn, code)
        whole = platform_state(conn)
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


def replay_buffer(site: sqlite3.Connection, platform: sqlite3.Connection, target: str) -> dict[str, int]:
    """Replay the calls answered in backup mode into a platform, idempotently by call id.

    Runs under the site lock (no call lands in the buffer meanwhile) and the
    platform lock. A crash between the two commits leaves records replayed but
    not marked; the next replay finds them present and only marks them.
    """
    with write_txn(site):
        return _replay_locked(site, platform, target)


def _replay_locked(site: sqlite3.Connection, platform: sqlite3.Connection, target: str) -> dict[str, int]:
    pending = pending_records(site)
    copied = 0
    with write_txn(platform):
        state = platform_state(platform)
        if state != SERVING:
            raise LabError(f"cannot replay into the {target} platform: it is {state}",
                           f"unfreeze or heal the {target} platform first")
        for record in pending:
            copied += insert_record(platform, record)
    stamp = now()
    site.executemany("UPDATE backup_buffer SET replayed_to = ?, replayed_at = ? WHERE call_id = ?",
                     [(target, stamp, r.call_id) for r in pending])
    return {"replayed": copied, "already_present": len(pending) - copied}


def set_mode(site: sqlite3.Connection, platforms: dict[str, sqlite3.Connection], mode: str, *,
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


def _refuse_unless_serving(platform: sqlite3.Connection, name: str, code: str) -> None:
    with read_txn(platform):
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


UNRECORDED_HORIZON_S = 300.0  # the answering agents end a call no one hung up after this


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


def point_at(site: sqlite3.Connection, platforms: dict[str, sqlite3.Connection], target: str, *,
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
        self._platforms: dict[str, sqlite3.Connection] = {}
        self._ledger: sqlite3.Connection | None = None

    def site(self, code: str) -> sqlite3.Connection:
        if code not in self._sites:
            path = site_db(self.lab_dir, code)
            if not path.is_file():
                raise LabError(f"no SAMU site {code!r} in the lab at {self.lab_dir}", "check CUTOVER_LAB_SITE / --site")
            self._sites[code] = connect(path)
        return self._sites[code]

    def platform(self, name: str) -> sqlite3.Connection:
        if name not in self._platforms:
            self._platforms[name] = connect(platform_db(self.lab_dir, check_platform_name(name)))
        return self._platforms[name]

    @property
    def platforms(self) -> dict[str, sqlite3.Connection]:
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
        for conn in [*self._sites.values(), *self._platforms.values(), *([self._ledger] if self._ledger else [])]:
            conn.close()
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
    conn = connect(platform_db(lab_dir, name))
    if args.command in ("freeze", "unfreeze"):
        changed = set_frozen(conn, args.command == "freeze", codes)
        return {"platform": name, "state": platform_state(conn), "changed": changed,
                "partitions": partition_states(conn, codes)}, EXIT_OK
    if args.command == "checksums":
        return {"platform": name, "samus": codes, "tables": table_checksums(conn, codes)}, EXIT_OK
    if args.command == "verify":
        return _verify(lab_dir, name, args.against, codes)
    if args.command == "in-progress":
        return _in_progress(lab_dir, name, codes, args.wait_zero)
    status = platform_status(conn, name, codes)
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


def _verify(lab_dir: Path, name: str, other: str, codes: Sequence[str] | None) -> tuple[dict[str, Any], int]:
    mine = table_checksums(connect(platform_db(lab_dir, name)), codes)
    theirs = table_checksums(connect(platform_db(lab_dir, check_platform_name(other))), codes)
    differ = compare_checksums(mine, theirs)
    report = {"platform": name, "against": other, "samus": codes, "equal": not differ, "differing_tables": differ,
              "tables": {t: {name: mine[t], other: theirs[t]} for t in DATA_TABLES}}
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
        "checksums": "per-table row counts and checksums",
        "verify": "compare counts and checksums with another platform (exit 1 if they differ)",
        "migrate": "copy the records a platform lacks from a frozen one (idempotent by primary key)",
        "copy-back": "rollback: freeze the source, copy back the records the target lacks",
        "in-progress": "calls in progress on this platform per SAMU, as the call router counts them",
    }
    subs = {name: commands.add_parser(name, help=text, description=text) for name, text in specs.items()}
    for name in ("status", "freeze", "unfreeze", "checksums", "verify", "in-progress"):
        subs[name].add_argument("--platform", choices=PLATFORMS, help="[default: $CUTOVER_LAB_PLATFORM]")
    subs["status"].add_argument("--expect", choices=(SERVING, FROZEN, DOWN))
    subs["verify"].add_argument("--against", choices=PLATFORMS, required=True)
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
    except sqlite3.Error as exc:
        print(f"error: lab database: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(data, ensure_ascii=False) if args.json else _render(data))
    return code


if __name__ == "__main__":
    sys.exit(main())
