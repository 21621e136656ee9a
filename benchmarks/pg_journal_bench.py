"""The journal on PostgreSQL against SQLite: append latency (one and ten threads) and folding 100,000 events.

A PostgreSQL server is started for the run (``cutover.testing.postgres``:
initdb in a temporary folder, fsync on, loopback), and SQLite runs in a
temporary folder on the same disk, so the two are measured side by side.
Goal: a P99 append on local PostgreSQL under 5 ms.

    .venv/bin/python -m benchmarks.pg_journal_bench [--appends 500] [--fold 100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cutover.core.state import fold
from cutover.core.timings import percentile
from cutover.journal.postgres import PostgresJournal, init_schema
from cutover.journal.sqlite import SqliteJournal
from cutover.testing.postgres import start_postgres

PAYLOAD = {"step": "backup-mode", "target": "samu-30", "attempt": 1}


def latencies(journal: Any, count: int) -> list[float]:
    found = []
    for index in range(count):
        began = time.perf_counter()
        journal.append("latency", "step_started", {**PAYLOAD, "attempt": index + 1})
        found.append(time.perf_counter() - began)
    return found


def threaded(journal: Any, threads: int, each: int) -> tuple[float, list[float]]:
    found: list[float] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        for index in range(each):
            began = time.perf_counter()
            journal.append(f"fan-{thread}", "step_started", {**PAYLOAD, "attempt": index + 1})
            with lock:
                found.append(time.perf_counter() - began)

    began = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began, found


def fold_time(journal: Any, count: int) -> tuple[float, float]:
    created = {"runbook": {"name": "bench"}, "env": "bench", "steps": [{"id": "s", "kind": "command", "title": "s",
                                                                        "targets": None}]}
    journal.append("big", "run_created", created)
    for index in range(count - 1):
        journal.append("big", "step_started", {"step": "s", "target": None, "attempt": index + 1})
    began = time.perf_counter()
    events = journal.events("big")
    read = time.perf_counter() - began
    began = time.perf_counter()
    fold(events)
    return read, time.perf_counter() - began


def report(name: str, single: list[float], wall: float, multi: list[float]) -> None:
    ms = [s * 1000 for s in single]
    print(f"{name:10} one thread: P50 {statistics.median(ms):.2f} ms, P99 {percentile(ms, 99):.2f} ms; "
          f"ten threads: {len(multi) / wall:.0f} appends/s, P99 {percentile([m * 1000 for m in multi], 99):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--fold", type=int, default=100_000)
    args = parser.parse_args()
    server = start_postgres()
    try:
        init_schema(server.url)
        with tempfile.TemporaryDirectory() as folder, SqliteJournal(Path(folder) / "j.db", "bench") as sqlite, \
                PostgresJournal(server.url, "bench") as postgres:
            for name, journal in (("sqlite", sqlite), ("postgresql", postgres)):
                single = latencies(journal, args.appends)
                wall, multi = threaded(journal, 10, args.appends // 10)
                report(name, single, wall, multi)
            for name, journal in (("sqlite", sqlite), ("postgresql", postgres)):
                read, folded = fold_time(journal, args.fold)
                print(f"{name:10} {args.fold:,} events: read {read:.2f} s, fold {folded:.2f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
