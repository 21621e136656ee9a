"""Leases outside the core: who this process is, whether a holder on this host is still alive, and the SQL
journals' leases table (``LeaseTable``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cutover.core.events import LeaseHolder, canonical_json, utc_now
from cutover.core.journal_rules import decide_lease, lease_payload, lost_lease, same_holder, takeover_reason


def current_holder(operator: str) -> LeaseHolder:
    """This controller process, as the journal records it."""
    import socket  # here, not at the top: reading commands open the journal and never take a lease

    return LeaseHolder(socket.gethostname(), os.getpid(), operator, utc_now(), process_start_time(os.getpid()))


def holder_alive(holder: LeaseHolder) -> bool | None:
    """True/False when we can tell (same host), None when the holder is elsewhere."""
    import socket

    if holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not holder.process_start or process_start_time(holder.pid) == holder.process_start


def process_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), or '' if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # the command name may contain spaces; fields after the last ')' are fixed
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class LeaseTable:
    """A SQL journal's leases table: each lease change, in the caller's transaction, for SQLite and PostgreSQL alike.

    One row a run (holder JSON, '' once released; last heartbeat; epoch). What a
    change means is decided in ``cutover.core.journal_rules``; the backend
    journals the event each change returns, atomically with it, its own way.
    """

    name: str  # the table
    mark: str  # the parameter placeholder of the driver: ? or %s
    lock: str = ""  # what locks the row for the transaction, where the database has it (FOR UPDATE)

    def row(self, conn: Any, run_id: str, *, locked: bool = True) -> tuple[LeaseHolder | None, str | None, int]:
        """(holder or None when free, last heartbeat, epoch); a released lease keeps its epoch."""
        lock = f" {self.lock}" if locked and self.lock else ""
        found = conn.execute(f"SELECT holder, heartbeat_at, epoch FROM {self.name} WHERE run_id = {self.mark}{lock}",
                             (run_id,)).fetchone()
        if found is None:
            return None, None, 0
        if not found[0]:
            return None, None, int(found[2])
        return LeaseHolder.from_payload(json.loads(found[0])), str(found[1]), int(found[2])

    def acquire(self, conn: Any, run_id: str, holder: LeaseHolder, *, take_over: bool,
                stale_after: float) -> tuple[int, tuple[str, dict[str, Any]] | None]:
        """Take (or renew) the run's lease: its epoch, and the event to journal (None when renewed)."""
        current, heartbeat_at, epoch = self.row(conn, run_id)
        change = decide_lease(run_id, current, heartbeat_at, holder, take_over, stale_after, holder_alive)
        if change == "renewed":  # keep the holder as first recorded (its "since")
            self._beat(conn, run_id)
            return epoch, None
        reason = takeover_reason(current, heartbeat_at, stale_after, holder_alive) if current else ""
        epoch += 1
        conn.execute(f"INSERT INTO {self.name} (run_id, holder, heartbeat_at, epoch) "
                     f"VALUES ({self.mark}, {self.mark}, {self.mark}, {self.mark}) "
                     "ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder, "
                     "heartbeat_at = excluded.heartbeat_at, epoch = excluded.epoch",
                     (run_id, canonical_json(holder.to_payload()), utc_now(), epoch))
        return epoch, lease_payload(change, holder, current, epoch=epoch, reason=reason)

    def heartbeat(self, conn: Any, run_id: str, holder: LeaseHolder) -> None:
        """The holder is alive; LeaseLost when it no longer holds the lease."""
        current, _, _ = self.row(conn, run_id)
        if current is None or not same_holder(current, holder):
            raise lost_lease(run_id, holder, current)
        self._beat(conn, run_id)

    def release(self, conn: Any, run_id: str, holder: LeaseHolder) -> tuple[str, dict[str, Any]] | None:
        """Give the run up: the event to journal; None when nobody held it, LeaseLost when someone else does."""
        current, _, _ = self.row(conn, run_id)
        if current is None:
            return None
        if not same_holder(current, holder):
            raise lost_lease(run_id, holder, current)
        conn.execute(f"UPDATE {self.name} SET holder = '' WHERE run_id = {self.mark}", (run_id,))
        return lease_payload("released", current, None)

    def _beat(self, conn: Any, run_id: str) -> None:
        conn.execute(f"UPDATE {self.name} SET heartbeat_at = {self.mark} WHERE run_id = {self.mark}", (utc_now(), run_id))
