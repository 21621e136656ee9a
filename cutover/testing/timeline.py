"""A run's events on a clock the test chooses: each record at so many seconds after a start.

Measurements are read from the journal's timestamps, and a real drive takes
milliseconds: a test that needs a 40-second pause or a 43.5-second gate wait
writes them here, then imports the events (``journal.import_run`` keeps their
times) into the in-memory journal or a real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from cutover.core import records as r
from cutover.core.events import GENESIS, Event, event_hash

START = datetime(2026, 11, 28, 21, 0, tzinfo=timezone.utc)


def timed_run(run_id: str, timeline: Sequence[tuple[float, r.Record]], *, start: datetime = START,
              operator: str = "tester") -> list[Event]:
    """The events of ``run_id``: each ``(seconds after start, record)``, in order, chained from genesis."""
    events: list[Event] = []
    prev = GENESIS
    for seq, (offset, record) in enumerate(timeline, start=1):
        at = (start + timedelta(seconds=offset)).isoformat(timespec="microseconds").replace("+00:00", "Z")
        payload = record.to_payload()
        digest = event_hash(seq, run_id, record.KIND, at, operator, payload, prev)
        events.append(Event(seq, run_id, record.KIND, at, operator, payload, prev, digest))
        prev = digest
    return events
