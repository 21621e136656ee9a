"""Engine overhead and journal folding, each against a baseline measured in the same run.

    .venv/bin/python -m benchmarks.engine_bench [--steps 20] [--targets 100] [--concurrency 10]

1. Engine overhead: a runbook of STEPS `command` steps (each `sleep 0.05`)
   fanned out over TARGETS hosts with CONCURRENCY, run by the real `cutover
   run` (journal, fsyncs, process start-up included), against the same
   STEPS x TARGETS commands run with the same parallelism by `xargs -P`.
   Target (issue 12): at most 1.05x.
   A third contender places the floor: the same commands started by
   CONCURRENCY Python threads, one step after the other as a runbook's steps
   must be (each waits for its slowest command), with no journal and no
   start-up. The runs are interleaved (xargs, floor, cutover, then again), so
   a machine that slows down mid-benchmark slows all three alike. The
   journal then splits cutover's time: start-up (process start to the first
   command), the steps, and the end (last event to exit).
2. Folding: 100,000 journal events into a run state (the pure fold),
   and the same events read back from a real SQLite journal then folded.
   Target: the fold under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cutover.core.events import GENESIS, Event, event_hash, parse_time
from cutover.core.state import StepInfo, fold
from cutover.journal.sqlite import SqliteJournal

CUTOVER = str(Path(sys.executable).parent / "cutover")
SLEEP = 0.05


def write_project(root: Path, steps: int, targets: int, concurrency: int) -> None:
    inventory = root / "inventories" / "bench"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = "\n".join(f"            t{i:03d}:" for i in range(targets))
    (inventory / "hosts.yml").write_text(f"all:\n  children:\n    fleet:\n      children:\n        targets:\n"
                                         f"          hosts:\n{hosts}\n")
    (inventory / "group_vars" / "all.yml").write_text("cutover_lab: true\n")
    step_text = "".join(
        f"  - id: s{n:02d}\n    kind: command\n    for_each: targets\n    concurrency: {concurrency}\n"
        f"    run: sleep {SLEEP}\n    rollback: none\n    rollback_reason: benchmark\n" for n in range(steps))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "bench.yaml").write_text(f"name: bench\nsteps:\n{step_text}")


def time_cutover(root: Path, run: int) -> tuple[float, float, float]:
    """Wall time of `cutover run`, and its start-up and end as its journal dates them."""
    state = root / f"state-{run}"
    started_at, started = time.time(), time.perf_counter()
    result = subprocess.run([CUTOVER, "--project-dir", str(root), "--state-dir", str(state), "run", "bench",
                             "--env", "bench", "--run-id", f"bench-{run}"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cutover run failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    journal = SqliteJournal(state / "journal.db", "bench")
    events = journal.events(f"bench-{run}")
    journal.close()
    first_action = next(parse_time(e.at).timestamp() for e in events if e.kind == "step_started")
    last_event = parse_time(events[-1].at).timestamp()
    return elapsed, first_action - started_at, started_at + elapsed - last_event


def time_xargs(steps: int, targets: int, concurrency: int) -> float:
    lines = "\n".join(str(i) for i in range(steps * targets)) + "\n"
    started = time.perf_counter()
    subprocess.run(["xargs", "-P", str(concurrency), "-I{}", "/bin/sh", "-c", f"sleep {SLEEP}"],
                   input=lines, text=True, check=True)
    return time.perf_counter() - started


def time_threads(steps: int, targets: int, concurrency: int) -> float:
    """The floor: CONCURRENCY threads start the commands, step after step, and nothing else."""
    def slot(pending: list[int], lock: threading.Lock) -> None:
        while True:
            with lock:
                if not pending:
                    return
                pending.pop()
            subprocess.run(["/bin/sh", "-c", f"sleep {SLEEP}"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True, check=True)

    started = time.perf_counter()
    for _ in range(steps):
        pending, lock = list(range(targets)), threading.Lock()
        slots = [threading.Thread(target=slot, args=(pending, lock)) for _ in range(concurrency)]
        for thread in slots:
            thread.start()
        for thread in slots:
            thread.join()
    return time.perf_counter() - started


def bench_overhead(steps: int, targets: int, concurrency: int, repeat: int) -> None:
    base, floor, ours, start_up, end = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, steps, targets, concurrency)
        for n in range(repeat):
            base.append(time_xargs(steps, targets, concurrency))
            floor.append(time_threads(steps, targets, concurrency))
            wall, head, tail = time_cutover(root, n)
            ours.append(wall)
            start_up.append(head)
            end.append(tail)
    ideal = steps * targets * SLEEP / concurrency
    b, f, o = statistics.median(base), statistics.median(floor), statistics.median(ours)
    head, tail = statistics.median(start_up), statistics.median(end)
    print(f"engine overhead: {steps} steps x {targets} targets, concurrency {concurrency} "
          f"({steps * targets} commands of sleep {SLEEP}s; ideal {ideal:.2f}s), medians of {repeat} interleaved runs")
    print(f"  xargs -P {concurrency:<3}                     {b:7.2f} s")
    print(f"  Python threads, step by step    {f:7.2f} s   {f / b:6.3f}x xargs (the floor: no journal, no start-up)")
    print(f"  cutover run                     {o:7.2f} s   {o / b:6.3f}x xargs (target <= 1.05), "
          f"{o / f:.3f}x the floor")
    print(f"    start-up, to the first command {head:6.2f} s")
    print(f"    the steps                      {o - head - tail:6.2f} s   {(o - head - tail) / f:6.3f}x the floor")
    print(f"    the end, last event to exit    {tail:6.2f} s")


def synthetic_events(count: int) -> list[Event]:
    """A run of 20 fanned-out steps whose targets each start and succeed: COUNT events in all."""
    steps = 20
    per_step = (count - 1) // (2 * steps)
    targets = [f"t{i:04d}" for i in range(per_step)]
    infos = [StepInfo(f"s{n:02d}", "command", f"s{n:02d}", tuple(targets)).to_payload() for n in range(steps)]
    payloads = [("run_created", {"runbook": {"name": "bench"}, "env": "bench", "steps": infos})]
    for info in infos:
        for target in targets:
            payloads.append(("step_started", {"step": info["id"], "target": target, "attempt": 1}))
            payloads.append(("step_succeeded", {"step": info["id"], "target": target,
                                                 "result": {"outcome": "ok", "duration": 0.05}}))
    events, prev = [], GENESIS
    for seq, (kind, payload) in enumerate(payloads, start=1):
        at = f"2026-11-28T22:{seq // 60000 % 60:02d}:{seq // 1000 % 60:02d}.{seq % 1000:03d}000Z"
        digest = event_hash(seq, "bench", kind, at, "bench", payload, prev)
        events.append(Event(seq, "bench", kind, at, "bench", payload, prev, digest))
        prev = digest
    return events


def bench_fold(count: int) -> None:
    events = synthetic_events(count)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        state = fold(events)
        times.append(time.perf_counter() - started)
    assert state.events == len(events)
    print(f"fold: {len(events)} events into a run state")
    print(f"  pure fold (median of 5)        {statistics.median(times) * 1000:7.1f} ms   (target < 1000 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        journal = SqliteJournal(Path(tmp) / "journal.db", "bench")
        started = time.perf_counter()
        for event in events:
            journal.append(event.run_id, event.kind, event.payload)
        load = time.perf_counter() - started
        started = time.perf_counter()
        state = fold(journal.events("bench"))
        read_fold = time.perf_counter() - started
        journal.close()
    print(f"  SQLite read + fold             {read_fold * 1000:7.1f} ms   (loading them took {load:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    bench_overhead(args.steps, args.targets, args.concurrency, args.repeat)
    bench_fold(args.events)


if __name__ == "__main__":
    main()
