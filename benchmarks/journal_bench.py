"""Journal benchmark: durable append latency, group commit against one transaction per event, reading back.

Run: ``.venv/bin/python -m benchmarks.journal_bench [--read-events N]``. Every figure
comes from this run on this machine, in a temporary directory (put it on the
disk you care about with TMPDIR), so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cutover.journal.sqlite import SqliteJournal

PAYLOAD = {"step": "backup_mode", "target": "SAMU-30", "outcome": "succeeded", "duration": 1.234}


def append_latencies(path: Path, count: int) -> list[float]:
    """Seconds per durable append, one thread, one event per transaction by nature."""
    with SqliteJournal(path, "bench") as journal:
        latencies = []
        for i in range(count):
            start = time.perf_counter()
            journal.append("latency", "step_finished", {**PAYLOAD, "i": i})
            latencies.append(time.perf_counter() - start)
        return latencies


def concurrent_appends(path: Path, threads: int, per_thread: int, max_batch: int) -> float:
    """Wall time for ``threads`` appenders of ``per_thread`` events each; max_batch=1 is the baseline."""
    with SqliteJournal(path, "bench", max_batch=max_batch) as journal:
        def work(thread: int) -> None:
            for i in range(per_thread):
                journal.append("fan-out", "step_finished", {**PAYLOAD, "thread": thread, "i": i})
        elapsed = _timed_threads(work, threads)
        assert journal.verify().ok
        return elapsed


def _timed_threads(work: Callable[[int], None], count: int) -> float:
    workers = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def read_back(path: Path, events: int) -> tuple[float, float, float]:
    """(seconds to write, to read ``events`` events of one run, to verify the chain)."""
    threads = 100  # a wide fan-out: large group commits make the fixture quick to build
    with SqliteJournal(path, "bench") as journal:
        def work(thread: int) -> None:
            for i in range(events // threads):
                journal.append("night-1", "step_finished", {**PAYLOAD, "thread": thread, "i": i})
        written = _timed_threads(work, threads)
    with SqliteJournal(path, "bench") as journal:  # a fresh process would start like this
        start = time.perf_counter()
        read = journal.events("night-1")
        reading = time.perf_counter() - start
        assert len(read) == events // threads * threads
        start = time.perf_counter()
        assert journal.verify().ok
        return written, reading, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--events", type=int, default=4000, help="2,000 targets x 2 events")
    parser.add_argument("--read-events", type=int, default=100_000)
    args = parser.parse_args()
    per_thread = args.events // args.threads
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        root = Path(tmp)
        latencies = sorted(append_latencies(root / "latency.db", args.latency_events))
        grouped = concurrent_appends(root / "grouped.db", args.threads, per_thread, max_batch=1000)
        baseline = concurrent_appends(root / "baseline.db", args.threads, per_thread, max_batch=1)
        written, reading, verifying = read_back(root / "read.db", args.read_events)
    total = per_thread * args.threads
    rows = [
        ("append latency, median (1 thread, synchronous=FULL)", f"{statistics.median(latencies) * 1e3:.3f} ms"),
        ("append latency, p99", f"{latencies[int(len(latencies) * 0.99) - 1] * 1e3:.3f} ms"),
        (f"{total} appends, {args.threads} threads, group commit", f"{grouped:.3f} s  ({total / grouped:,.0f}/s)"),
        (f"{total} appends, {args.threads} threads, 1 transaction each", f"{baseline:.3f} s  ({total / baseline:,.0f}/s)"),
        ("group commit speed-up (baseline / group)", f"{baseline / grouped:.1f}x"),
        (f"write {args.read_events:,} events (100 threads)", f"{written:.2f} s"),
        (f"read {args.read_events:,} events of one run", f"{reading:.3f} s"),
        (f"verify the chain of {args.read_events:,} events", f"{verifying:.3f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
