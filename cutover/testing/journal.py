"""InMemoryJournal: the Journal protocol in memory, for unit tests of the pure core.

Same hash chain (``event_hash``), same lease rules and lease events as the SQLite
journal (the very same functions, from ``cutover.core.journal_rules``), plus ``tamper`` and ``drop`` so a
test can show what ``verify`` detects.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from cutover.core.claims import check_claims
from cutover.core.events import GENESIS, Event, LeaseHolder, VerifyReport, canonical_json, event_hash, utc_now
from cutover.core.journal_rules import (
    STALE_AFTER,
    check_fence,
    decide_lease,
    lease_payload,
    lost_lease,
    same_holder,
    since_fault,
    takeover_reason,
    verify_chain,
)
from cutover.errors import CutoverError, InputError, NotFound
from cutover.journal.leases import holder_alive

RUN_CREATED = "run_created"


class InMemoryJournal:
    """A journal that lives as long as the object; thread-safe, "durable" on return by definition."""

    def __init__(self, operator: str = "tester", *, stale_after: float = STALE_AFTER) -> None:
        self.operator = operator
        self.stale_after = stale_after
        self._lock = threading.RLock()
        self._events: list[Event] = []
        self._head: tuple[int, str] = (0, GENESIS)
        self._leases: dict[str, tuple[LeaseHolder, str]] = {}  # run -> (holder, last heartbeat)
        self._epochs: dict[str, int] = {}  # run -> epoch of its latest holder (kept after release)
        self._fences: dict[str, tuple[LeaseHolder, int]] = {}
        self._closed = False

    def append(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> Event:
        # a round trip through canonical JSON, as the SQLite journal stores it
        data = json.loads(canonical_json(dict(payload)))
        with self._lock:
            self._check_open()
            if run_id in self._fences:
                check_fence(run_id, self._fences[run_id], self.lease_holder(run_id), self._epochs.get(run_id, 0))
            seq, prev = self._head
            at = utc_now()
            event = Event(seq + 1, run_id, kind, at, self.operator, data, prev,
                          event_hash(seq + 1, run_id, kind, at, self.operator, data, prev))
            self._events.append(event)
            self._head = (event.seq, event.hash)
            return event

    def create_run(self, run_id: str, payload: Mapping[str, Any]) -> Event:
        with self._lock:  # the lock makes the check and the append one step, as a transaction does
            self._check_open()
            if run_id in self.runs():
                raise InputError(f"run {run_id!r} already exists", hint=f"continue it with `cutover resume {run_id}`")
            creations = [(e.run_id, e.payload) for e in self._events if e.kind == RUN_CREATED]
            check_claims(run_id, payload, creations, self.events)
            return self.append(run_id, RUN_CREATED, payload)

    def import_run(self, run_id: str, events: list[Event]) -> None:
        with self._lock:
            if run_id in self.runs():
                raise InputError(f"run {run_id!r} is already in this journal", hint="nothing was imported")
            for event in events:
                seq, prev = self._head
                data = json.loads(canonical_json(dict(event.payload)))
                imported = Event(seq + 1, run_id, event.kind, event.at, event.operator, data, prev,
                                 event_hash(seq + 1, run_id, event.kind, event.at, event.operator, data, prev))
                self._events.append(imported)
                self._head = (imported.seq, imported.hash)

    def events(self, run_id: str) -> list[Event]:
        with self._lock:
            return [event for event in self._events if event.run_id == run_id]

    def runs(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(event.run_id for event in self._events))

    def verify(self, run_id: str | None = None) -> VerifyReport:
        with self._lock:
            known = tuple(self.runs())
            if run_id is not None and run_id not in known:
                raise NotFound(f"no run {run_id} in the journal", hint="`cutover runs` lists the runs")
            return verify_chain(list(self._events), self._head, known if run_id is None else (run_id,))

    def verify_since(self, since: tuple[int, str], run_id: str | None = None) -> VerifyReport:
        with self._lock:
            known = tuple(self.runs())
            if run_id is not None and run_id not in known:
                raise NotFound(f"no run {run_id} in the journal", hint="`cutover runs` lists the runs")
            runs = known if run_id is None else (run_id,)
            found = next((e.hash for e in self._events if e.seq == since[0]), None)
            fault = since_fault(since, found)
            if fault:
                return VerifyReport(0, None, fault, runs)
            later = [e for e in self._events if e.seq > since[0]]
            return verify_chain(later, self._head, runs, start=since)

    def acquire_lease(self, run_id: str, holder: LeaseHolder, *, take_over: bool = False) -> int:
        with self._lock:
            self._check_open()
            current, heartbeat_at = self._leases.get(run_id, (None, None))
            change = decide_lease(run_id, current, heartbeat_at, holder, take_over, self.stale_after, holder_alive)
            if change == "renewed":  # keep the holder as first recorded (its "since")
                self._leases[run_id] = (self._leases[run_id][0], utc_now())
                return self._epochs[run_id]
            reason = takeover_reason(current, heartbeat_at, self.stale_after, holder_alive) if current else ""
            self._leases[run_id] = (holder, utc_now())
            self._epochs[run_id] = epoch = self._epochs.get(run_id, 0) + 1
            self._events_append_unfenced(run_id, *lease_payload(change, holder, current, epoch=epoch, reason=reason))
            return epoch

    def fence(self, run_id: str, holder: LeaseHolder, epoch: int) -> None:
        with self._lock:
            self._fences[run_id] = (holder, epoch)

    def _events_append_unfenced(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        fence = self._fences.pop(run_id, None)  # a lease event is the lease's own change: not fenced
        try:
            self.append(run_id, kind, payload)
        finally:
            if fence is not None:
                self._fences[run_id] = fence

    # test hook: what a controller on another machine does to a run this one drives
    def steal_lease(self, run_id: str, thief: LeaseHolder) -> None:
        with self._lock:
            current = self.lease_holder(run_id)
            self._leases[run_id] = (thief, utc_now())
            self._epochs[run_id] = epoch = self._epochs.get(run_id, 0) + 1
            self._events_append_unfenced(run_id, *lease_payload("taken_over", thief, current or thief, epoch=epoch,
                                                                reason="test: taken over"))

    def heartbeat(self, run_id: str, holder: LeaseHolder) -> None:
        with self._lock:
            self._check_open()
            current = self.lease_holder(run_id)
            if current is None or not same_holder(current, holder):
                raise lost_lease(run_id, holder, current)
            self._leases[run_id] = (current, utc_now())

    def release_lease(self, run_id: str, holder: LeaseHolder) -> None:
        with self._lock:
            self._check_open()
            current = self.lease_holder(run_id)
            if current is None:
                return
            if not same_holder(current, holder):
                raise lost_lease(run_id, holder, current)
            self.append(run_id, *lease_payload("released", current, None))
            del self._leases[run_id]
            self._fences.pop(run_id, None)

    def lease_state(self, run_id: str) -> tuple[LeaseHolder | None, str | None]:
        with self._lock:
            lease = self._leases.get(run_id)
            return (lease[0], lease[1]) if lease else (None, None)

    def lease_holder(self, run_id: str) -> LeaseHolder | None:
        with self._lock:
            lease = self._leases.get(run_id)
            return lease[0] if lease else None

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __enter__(self) -> InMemoryJournal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- for tests: what an attacker (or a bug) could do to a stored journal --

    def tamper(self, seq: int, **changes: Any) -> Event:
        """Replace fields of event ``seq`` without recomputing any hash; returns the altered event."""
        with self._lock:
            index = self._index(seq)
            self._events[index] = dataclasses.replace(self._events[index], **changes)
            return self._events[index]

    def drop(self, seq: int) -> None:
        """Remove event ``seq``, leaving the head as it was."""
        with self._lock:
            del self._events[self._index(seq)]

    def _index(self, seq: int) -> int:
        for index, event in enumerate(self._events):
            if event.seq == seq:
                return index
        raise KeyError(f"no event {seq}")

    def _check_open(self) -> None:
        if self._closed:
            raise CutoverError("the journal is closed", hint="this is a bug in cutover; report it")
