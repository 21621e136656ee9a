"""The journal's pure rules, shared by every journal (SQLite, PostgreSQL to come, the in-memory fake).

Verifying a hash chain, deciding who may hold a run's lease, fencing a
controller that lost it, and the lease events: plain functions over plain
data. Whether a holder's process is still alive is an OS question; callers
pass the answer in as ``alive`` (``cutover.journal.leases.holder_alive``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from cutover.core.events import GENESIS, Event, LeaseHolder, VerifyReport, parse_time, utc_now
from cutover.core.records import (
    CriterionOverridden,
    GateApproved,
    LeaseAcquired,
    LeaseReleased,
    LeaseTakenOver,
    Record,
    RunAnchored,
    RunCreated,
)
from cutover.errors import LeaseHeld, LeaseLost

STALE_AFTER = 30.0  # seconds without a heartbeat before a holder on another host is stale (--lease-ttl)

LeaseChange = Literal["acquired", "renewed", "taken_over"]
# True: alive; False: provably dead (same host, process gone); None: cannot tell (another host)
Liveness = Callable[[LeaseHolder], "bool | None"]


def verify_chain(events: Iterable[Event], head: tuple[int, str], runs: tuple[str, ...], *,
                 start: tuple[int, str] = (0, GENESIS)) -> VerifyReport:
    """Check seqs are 1..n, each event links to its predecessor and matches its hash, and the head is the last.

    ``start``: a point (seq, hash) verified before; ``events`` are then the ones after it.
    """
    checked, (last_seq, last_hash) = 0, start
    approvals, anchors, created, hashes = [], [], [], {}
    reported = set(runs)
    for event in events:
        checked += 1
        reason = _link_fault(event, last_seq, last_hash)
        if reason:
            return VerifyReport(checked, event, reason, runs)
        last_seq, last_hash = event.seq, event.hash
        if event.run_id in reported:
            hashes[event.seq] = event.hash
            if event.kind in (GateApproved.KIND, CriterionOverridden.KIND):  # signed: re-verified
                approvals.append(event)
            elif event.kind == RunAnchored.KIND:
                anchors.append(event)
            elif event.kind == RunCreated.KIND:
                created.append(event)
    reason = _head_fault(head, last_seq, last_hash)
    return VerifyReport(checked, None, reason, runs, last_hash, tuple(approvals), tuple(anchors), hashes,
                        head_seq=last_seq, created=tuple(created))


def since_fault(since: tuple[int, str], found: str | None) -> str:
    """Why the event at a point verified before no longer holds that hash ("" when it does)."""
    seq, digest = since
    if found is None:
        return f"event {seq}, verified before, is no longer in the journal"
    if found != digest:
        return f"event {seq} is not the one verified before: it was replaced"
    return ""


def _link_fault(event: Event, last_seq: int, last_hash: str) -> str:
    if event.seq > last_seq + 1:
        missing = f"event {last_seq + 1}" if event.seq == last_seq + 2 else f"events {last_seq + 1}-{event.seq - 1}"
        return f"{missing} deleted: event {event.seq} follows event {last_seq}"
    if event.seq != last_seq + 1:
        return f"event {event.seq} is out of order: expected event {last_seq + 1}"
    if event.prev_hash != last_hash:
        before = f"event {last_seq}" if last_seq else "the start of the journal"
        return f"event {event.seq} does not link to {before}: an event was replaced or removed"
    if event.expected_hash() != event.hash:
        return f"event {event.seq} does not match its hash: it was edited after it was written"
    return ""


def _head_fault(head: tuple[int, str], last_seq: int, last_hash: str) -> str:
    head_seq, head_hash = head
    if head_seq > last_seq:
        return (f"the journal head records event {head_seq} but the last event is {last_seq}: "
                "the newest events were deleted")
    if head_seq < last_seq:
        return (f"the journal head records event {head_seq} but the last event is {last_seq}: "
                "events were added outside the journal, or the head was removed")
    if head_hash != last_hash:
        return f"event {last_seq} differs from the one recorded in the journal head: it was replaced"
    return ""


def same_holder(a: LeaseHolder, b: LeaseHolder) -> bool:
    """Same controller process: host, pid and process start time (so a recycled pid is someone else)."""
    return (a.host, a.pid, a.process_start) == (b.host, b.pid, b.process_start)


def decide_lease(run_id: str, current: LeaseHolder | None, heartbeat_at: str | None,
                 holder: LeaseHolder, take_over: bool, stale_after: float, alive: Liveness) -> LeaseChange:
    """What acquiring means now; raises LeaseHeld when ``holder`` may not drive ``run_id``."""
    if current is None:
        return "acquired"
    if same_holder(current, holder):
        return "renewed"
    stale_because = _staleness(current, heartbeat_at, stale_after, alive)
    if not stale_because:
        raise LeaseHeld(f"run {run_id} is driven by {current.describe()}",
                        hint="wait for that controller to finish, or stop it; if it is gone for good, "
                             "run again with --take-over")
    if alive(current) is False:
        return "taken_over"  # provably dead (same host, process gone or recycled): no flag needed
    if not take_over:
        raise LeaseHeld(f"run {run_id} is held by {current.describe()}, which looks stale: {stale_because}",
                        hint="make sure that controller is really gone, then pass --take-over "
                             "(the takeover is recorded in the journal)")
    return "taken_over"


def _staleness(current: LeaseHolder, heartbeat_at: str | None, stale_after: float, alive: Liveness) -> str:
    """Why ``current`` no longer drives its run, or '' while it is alive."""
    living = alive(current)
    if living is False:
        return f"process {current.pid} is no longer running on {current.host}"
    if living:
        return ""
    # another host: only its heartbeats tell us it is alive
    if heartbeat_at is not None:
        age = (parse_time(utc_now()) - parse_time(heartbeat_at)).total_seconds()
        if age < stale_after:
            return ""
    return f"no heartbeat from {current.host} since {heartbeat_at or current.since}"


def lease_payload(change: LeaseChange | Literal["released"], holder: LeaseHolder, previous: LeaseHolder | None,
                  *, epoch: int = 0, reason: str = "") -> tuple[str, dict[str, Any]]:
    """The journal event (kind, payload) recording a change of lease holder."""
    record: Record
    if change == "taken_over":
        assert previous is not None
        record = LeaseTakenOver(holder, previous, epoch, reason)
    elif change == "released":
        record = LeaseReleased(holder)
    else:
        record = LeaseAcquired(holder, epoch)
    return record.KIND, record.to_payload()


def lease_staleness(current: LeaseHolder, heartbeat_at: str | None, stale_after: float, alive: Liveness) -> str:
    """Why ``current`` no longer drives its run ('' while it does): what a standby waits for."""
    return _staleness(current, heartbeat_at, stale_after, alive)


def takeover_reason(current: LeaseHolder, heartbeat_at: str | None, stale_after: float, alive: Liveness) -> str:
    """Why the previous holder no longer drives its run, for the journal."""
    return _staleness(current, heartbeat_at, stale_after, alive)


def lost_lease(run_id: str, holder: LeaseHolder, current: LeaseHolder | None) -> LeaseLost:
    who = current.describe() if current else "nobody (it was released)"
    return LeaseLost(f"this controller ({holder.describe()}) lost the lease on run {run_id}: it is now held by "
                     f"{who}; it stopped and starts nothing more",
                     hint="another controller took the run over; check `cutover status` and let that one drive")


def check_fence(run_id: str, fence: tuple[LeaseHolder, int], current: LeaseHolder | None, epoch: int) -> None:
    """Raise LeaseLost unless the lease still has the fenced holder and epoch."""
    holder, fenced_epoch = fence
    if current is None or not same_holder(current, holder) or epoch != fenced_epoch:
        raise lost_lease(run_id, holder, current)
