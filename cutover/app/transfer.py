"""Runs travel between machines: `cutover runs export RUN > FILE` and `cutover runs import FILE`.

An export is JSON lines: a header, the run's events exactly as the journal
holds them (each with its seq, hash and previous hash), and a trailer holding
the SHA-256 of the event lines. Import checks everything before it writes
anything: the header, that every event's hash matches its content, that the
seqs only grow and all belong to the run, that the run starts with its
creation, and the trailer's digest; a garbled, truncated or edited file is
refused (exit 2) and nothing is imported. The events are then chained into
the local journal, keeping their kind, time, operator and payload (timings
and reports read those), after the run's own chain was verified.

What it does not prove: who made the file. Anyone can rebuild a consistent
export; an export's authority comes from where it is kept (the evidence
store) until exports are signed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from cutover.core.events import Event, Journal, canonical_json
from cutover.core.text import name_problem
from cutover.errors import InputError, NotFound

FORMAT, VERSION = "cutover-run-export", 1


def export_lines(journal: Journal, run_id: str) -> Iterator[str]:
    events = journal.events(run_id)
    if not events:
        raise NotFound(f"no run {run_id!r} in this journal", hint="`cutover runs` lists the runs")
    lines = [canonical_json(_event_json(e)) for e in events]
    yield canonical_json({"format": FORMAT, "version": VERSION, "run_id": run_id, "events": len(lines)})
    yield from lines
    yield canonical_json({"digest": _digest(lines)})


def import_lines(journal: Journal, lines: Iterable[str], source: str) -> str:
    """Verify an export completely, then import it; returns the run id."""
    rows = [line for line in (l.strip() for l in lines) if line]
    if len(rows) < 3:
        raise _refused(source, "it is not a cutover run export (too short)")
    header, body, trailer = _json(rows[0], source, 1), rows[1:-1], _json(rows[-1], source, len(rows))
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise _refused(source, f"line 1 is not a {FORMAT} version {VERSION} header")
    run_id = str(header.get("run_id"))
    problem = name_problem(run_id)
    if problem is not None:  # it becomes file names (reports) and URLs (the board)
        raise _refused(source, problem)
    if header.get("events") != len(body):
        raise _refused(source, f"the header announces {header.get('events')} events, the file holds {len(body)}")
    if trailer.get("digest") != _digest(body):
        raise _refused(source, "its digest does not match its events: it was truncated or edited")
    events = [_event(_json(line, source, n), source, n) for n, line in enumerate(body, start=2)]
    _check_run(events, run_id, source)
    journal.import_run(run_id, events)
    return run_id


def _check_run(events: list[Event], run_id: str, source: str) -> None:
    last = 0
    for event in events:
        if event.run_id != run_id:
            raise _refused(source, f"event {event.seq} belongs to run {event.run_id!r}, not {run_id!r}")
        if event.seq <= last:
            raise _refused(source, f"event {event.seq} is out of order")
        if event.expected_hash() != event.hash:
            raise _refused(source, f"event {event.seq} ({event.kind}) does not match its hash: it was edited")
        last = event.seq
    if events[0].kind != "run_created":
        raise _refused(source, "the run does not start with its creation")
    for step in events[0].payload.get("steps") or ():
        problem = name_problem(step.get("id") if isinstance(step, dict) else step, "step id")
        if problem is not None:
            raise _refused(source, problem)


def _event_json(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "run_id": event.run_id, "kind": event.kind, "at": event.at,
            "operator": event.operator, "payload": event.payload, "prev_hash": event.prev_hash, "hash": event.hash}


def _event(data: dict[str, Any], source: str, line: int) -> Event:
    try:
        return Event(int(data["seq"]), str(data["run_id"]), str(data["kind"]), str(data["at"]), str(data["operator"]),
                     dict(data["payload"]), str(data["prev_hash"]), str(data["hash"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _refused(source, f"line {line} is not an event ({exc})") from exc


def _json(line: str, source: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise _refused(source, f"line {number} is not JSON") from exc
    if not isinstance(value, dict):
        raise _refused(source, f"line {number} is not a JSON object")
    return value


def _digest(lines: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _refused(source: str, why: str) -> InputError:
    return InputError(f"{source}: {why}; nothing was imported",
                      hint="export the run again from its journal (`cutover runs export RUN_ID > FILE`)")
