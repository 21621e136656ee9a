"""The lab's telephone network: CPU and memory at rest and during calls, and the calls per second it sustains.

    .venv/bin/python -m benchmarks.sip_bench [--samus 10] [--seconds 10] [--rates 10,20,40,80]

Starts the network of a lab without its sshds (the answering agents, Kamailio,
SIPp; real SQLite platforms), then measures, from /proc, the CPU (user+system,
% of one core) and resident memory of each part:

1. at rest: router and agents up, no call;
2. during calls at the lab's default load (1 call/s per SAMU, held 3 s);
3. then steps up the total call rate (calls held 1 s) and reports, per rate,
   what SIPp placed, its failed calls and the records missing: the highest
   rate with zero failed and zero missing is what this machine sustains.

Not a timed test: the figures depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cutover.lab import router, sipnet, traffic
from cutover.lab.layout import LabLayout, LabState, TrafficInfo
from cutover.lab.ledger import account_calls
from cutover.lab.tools import samulab

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    cpu_percent: float
    rss_mb: float


def _ticks_and_rss(pids: list[int]) -> tuple[int, int]:
    ticks = rss = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        rss += int(fields[21]) * PAGE
    return ticks, rss


def _parts(state: LabState) -> dict[str, list[int]]:
    assert state.sip is not None
    parts = {"kamailio": router.session_members(state.sip.router_pid or 0),
             "answerer": [state.sip.answerer_pid or 0]}
    if state.traffic.pid:
        parts["sipp"] = [state.traffic.pid]
    return parts


def measure(state: LabState, seconds: float) -> dict[str, Usage]:
    parts = _parts(state)
    before = {name: _ticks_and_rss(pids)[0] for name, pids in parts.items()}
    time.sleep(seconds)
    usage = {}
    for name, pids in parts.items():
        ticks, rss = _ticks_and_rss(pids)
        usage[name] = Usage(100.0 * (ticks - before[name]) / TICKS / seconds, rss / 2**20)
    return usage


def _print_usage(title: str, usage: dict[str, Usage]) -> None:
    total_cpu = sum(u.cpu_percent for u in usage.values())
    total_rss = sum(u.rss_mb for u in usage.values())
    parts = ", ".join(f"{name} {u.cpu_percent:.1f}% {u.rss_mb:.0f} MB" for name, u in usage.items())
    print(f"{title}: CPU {total_cpu:.1f}% of one core, RSS {total_rss:.0f} MB ({parts})", flush=True)


def network(folder: Path, codes: list[str], rate: float, hold: float) -> tuple[LabLayout, LabState]:
    layout = LabLayout.under(folder)
    samulab.create_lab_data(layout.root, codes)
    state = LabState(lab_dir=str(layout.root), inventory="", env="", started_at="", hosts=[],
                     traffic=TrafficInfo(rate=rate, codes=codes, hold=hold))
    return layout, state


def step(folder: Path, codes: list[str], total_rate: float, seconds: float) -> tuple[traffic.SippStats, int, Usage]:
    """One rate: a fresh network, SIPp at ``total_rate`` calls/s for ``seconds``, then its final count."""
    layout, state = network(folder, codes, total_rate / len(codes), 1.0)
    try:
        sipnet.start(layout, state)
        usage = measure(state, seconds)
        traffic.stop_sipp(state.traffic.pid, state.traffic.hold)
        state.traffic.pid = None
        sipp = traffic.all_stats(layout.sipp)
        account = account_calls(layout.root, sipp)
    finally:
        sipnet.stop(state, layout)
    return sipp, account.records_missing, Usage(sum(u.cpu_percent for u in usage.values()),
                                                sum(u.rss_mb for u in usage.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sip_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--samus", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="10,20,40,80,120", help="total calls per second to try, in order")
    args = parser.parse_args(argv)
    sipnet.require_tools()
    codes = [f"{n:02d}" for n in range(1, args.samus + 1)]
    with tempfile.TemporaryDirectory(prefix="cutover-sip-bench-") as tmp:
        layout, state = network(Path(tmp) / "rest", codes, 1.0, traffic.DEFAULT_HOLD_S)
        try:
            sipnet.start(layout, state)
            time.sleep(traffic.DEFAULT_HOLD_S + 1)  # into the steady state
            _print_usage(f"during calls ({args.samus} SAMUs, 1 call/s each, held 3 s)", measure(state, args.seconds))
            traffic.stop_sipp(state.traffic.pid, state.traffic.hold)
            state.traffic.pid = None
            _print_usage("at rest (router and agents, no call)", measure(state, args.seconds))
        finally:
            sipnet.stop(state, layout)
        best = 0.0
        for total in (float(r) for r in args.rates.split(",")):
            sipp, missing, usage = step(Path(tmp) / f"rate-{total:g}", codes, total, args.seconds)
            reached = sipp.created / args.seconds
            clean = sipp.failed == 0 and missing == 0 and reached >= 0.9 * total
            print(f"{total:g} calls/s asked: SIPp placed {sipp.created} ({reached:.1f}/s), failed {sipp.failed}, "
                  f"records missing {missing}; CPU {usage.cpu_percent:.0f}%, RSS {usage.rss_mb:.0f} MB"
                  f"{'' if clean else '  <- not sustained'}", flush=True)
            if not clean:
                break
            best = total
        print(f"sustained with zero loss: {best:g} calls/s ({args.samus} SAMUs, calls held 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
