"""The lab's traffic generator: synthetic "15" calls to every SAMU, continuously.

Started by ``cutover lab up`` as a background process in its own session::

    python -m cutover.lab.traffic --lab-dir DIR --samus 01,13,30 --rate 1.0 --alive-file DIR/lab.json

``--rate`` is calls per second *per SAMU*; calls go round-robin over the
SAMUs at evenly spaced instants. Each call goes through
``samulab.LabData.call`` (the same code path as a site's test call) and into
the ledger. The process stops on SIGTERM/SIGINT after finishing the call in
hand, and by itself when ``--alive-file`` disappears (so a lab folder that is
deleted does not leave a generator running forever).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cutover.lab.tools.samulab import LabData, synthetic_caller

ALIVE_CHECK_S = 1.0
MAX_LAG_S = 1.0  # after a stall (a long lock), skip missed slots instead of bursting


@dataclass(frozen=True)
class TrafficPlan:
    lab_dir: Path
    codes: tuple[str, ...]
    rate: float  # calls per second per SAMU
    seed: int | None = None

    @property
    def interval(self) -> float:
        return 1.0 / (self.rate * len(self.codes))


@dataclass
class TrafficCounts:
    placed: int = 0
    answered: int = 0
    lost: int = 0
    errors: int = 0


def run_traffic(plan: TrafficPlan, should_stop: Callable[[], bool], *, max_calls: int | None = None,
                log: Callable[[str], None] = lambda _: None) -> TrafficCounts:
    """Place calls until ``should_stop()`` (or ``max_calls``); returns what happened."""
    rng = random.Random(plan.seed)
    lab = LabData(plan.lab_dir)
    counts = TrafficCounts()
    next_at = time.monotonic()
    turn = 0
    try:
        while not should_stop() and (max_calls is None or counts.placed < max_calls):
            _place_one(lab, plan.codes[turn % len(plan.codes)], rng, counts, log)
            turn += 1
            next_at = _wait_for_slot(next_at + plan.interval, should_stop)
    finally:
        lab.close()
    return counts


def _place_one(lab: LabData, code: str, rng: random.Random, counts: TrafficCounts,
               log: Callable[[str], None]) -> None:
    try:
        result = lab.call(code, caller=synthetic_caller(rng), rng=rng)
    except Exception as exc:  # keep calling the other SAMUs; the log says what broke
        counts.errors += 1
        log(f"call to SAMU {code} failed: {type(exc).__name__}: {exc}")
        return
    counts.placed += 1
    if result.answered:
        counts.answered += 1
    else:
        counts.lost += 1
        log(f"LOST call {result.call_id} to SAMU {code}: {result.lost_reason}")


def _wait_for_slot(slot: float, should_stop: Callable[[], bool]) -> float:
    now = time.monotonic()
    if now - slot > MAX_LAG_S:
        return now
    while not should_stop() and (remaining := slot - time.monotonic()) > 0:
        time.sleep(min(remaining, 0.2))
    return slot


def _stop_condition(alive_file: Path | None) -> tuple[threading.Event, Callable[[], bool]]:
    stop = threading.Event()
    checked = [time.monotonic()]

    def should_stop() -> bool:
        if stop.is_set():
            return True
        if alive_file is not None and time.monotonic() - checked[0] > ALIVE_CHECK_S:
            checked[0] = time.monotonic()
            if not alive_file.exists():
                stop.set()
        return stop.is_set()

    return stop, should_stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cutover.lab.traffic", description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--samus", required=True, help="comma-separated SAMU codes")
    parser.add_argument("--rate", type=float, default=1.0, help="calls per second per SAMU")
    parser.add_argument("--alive-file", type=Path, help="stop when this file disappears")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    codes = tuple(c for c in args.samus.split(",") if c)
    if not codes or args.rate <= 0:
        parser.error("need at least one SAMU and a positive rate")
    stop, should_stop = _stop_condition(args.alive_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    plan = TrafficPlan(args.lab_dir, codes, args.rate, args.seed)

    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    log(f"traffic started: {len(codes)} SAMUs, {args.rate:g} call/s each")
    counts = run_traffic(plan, should_stop, log=log)
    log(f"traffic stopped: placed {counts.placed}, answered {counts.answered}, lost {counts.lost}, "
        f"errors {counts.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
