"""Journal events and the hash chain that makes edits and deletions detectable.

The journal is append-only. Each event's hash covers its content and the hash
of the event before it (across all runs of the journal), so changing or
removing any event breaks every hash after it. Both the SQLite journal and the
in-memory one compute hashes here, so they agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

GENESIS = "0" * 64


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(seq: int, run_id: str, kind: str, at: str, operator: str, payload: Mapping[str, Any], prev_hash: str) -> str:
    body = canonical_json([seq, run_id, kind, at, operator, payload, prev_hash])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Event:
    seq: int
    run_id: str
    kind: str
    at: str
    operator: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return event_hash(self.seq, self.run_id, self.kind, self.at, self.operator, self.payload, self.prev_hash)


@dataclass(frozen=True)
class LeaseHolder:
    """Who drives a run: enough to tell a person and, on its own host, to tell whether it is still alive.

    ``cutover.journal.leases`` builds the current process's holder and probes liveness
    (the OS side); here it is plain data.
    """

    host: str
    pid: int
    operator: str
    since: str
    process_start: str = ""  # /proc start time, so a recycled pid is not mistaken for the holder

    def describe(self) -> str:
        return f"{self.operator} on {self.host} (pid {self.pid}) since {self.since}"

    def to_payload(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "operator": self.operator, "since": self.since,
                "process_start": self.process_start}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> LeaseHolder:
        return cls(str(data["host"]), int(data["pid"]), str(data["operator"]), str(data["since"]),
                   str(data.get("process_start", "")))


@dataclass(frozen=True)
class VerifyReport:
    events_checked: int
    first_bad: Event | None = None
    reason: str = ""
    runs: tuple[str, ...] = field(default_factory=tuple)
    head_hash: str = ""  # the last event's hash: what a report cites as evidence
    approvals: tuple[Event, ...] = ()  # the reported runs' gate approvals, for re-verifying their signatures
    anchors: tuple[Event, ...] = ()  # the reported runs' signed anchors (run_anchored), for `verify --anchors`
    # seq -> hash of the reported runs' events, as the chain now holds them: what an anchor is checked against
    chain_hashes: Mapping[int, str] = field(default_factory=dict)
    head_seq: int = 0  # the last event's seq: with head_hash, a point later checks resume from
    created: tuple[Event, ...] = ()  # the reported runs' run_created events (their lab marker, for an audit)

    @property
    def ok(self) -> bool:
        return self.first_bad is None and not self.reason


class Journal(Protocol):
    """Append-only event store with one lease per run.

    ``append`` returns only once the event is durable: the engine relies on
    that to write every transition before acting on it. It is safe to call
    from several threads.
    """

    operator: str

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event: ...

    def create_run(self, run_id: str, payload: Mapping[str, Any]) -> Event:
        """Append a run's ``run_created`` event in one transaction with the checks that allow it.

        Its id must be new (InputError) and no unfinished run may hold any of its
        claims (ClaimHeld, ``cutover.core.claims``): two runs created at the same
        instant, from two processes or machines, cannot both take a SAMU.
        """
        ...

    def events(self, run_id: str) -> list[Event]: ...

    def runs(self) -> list[str]: ...

    def import_run(self, run_id: str, events: list[Event]) -> None:
        """Chain another journal's events of one run into this one (kind, time, operator, payload kept)."""
        ...

    def verify(self, run_id: str | None = None) -> VerifyReport: ...

    def acquire_lease(self, run_id: str, holder: LeaseHolder, *, take_over: bool = False) -> int:
        """Take or renew the lease; returns its epoch, which grows with every new holder."""
        ...

    def fence(self, run_id: str, holder: LeaseHolder, epoch: int) -> None:
        """Refuse (LeaseLost) later appends for ``run_id`` unless ``holder`` still holds it at ``epoch``."""
        ...

    def release_lease(self, run_id: str, holder: LeaseHolder) -> None: ...

    def heartbeat(self, run_id: str, holder: LeaseHolder) -> None: ...

    def lease_holder(self, run_id: str) -> LeaseHolder | None: ...

    def lease_state(self, run_id: str) -> tuple[LeaseHolder | None, str | None]:
        """The holder (None when free) and its last heartbeat."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Journal: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Closes the journal."""
