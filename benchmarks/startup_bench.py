"""Start-up: what every `cutover` command pays before doing anything (target: at most 150 ms).

    .venv/bin/python -m benchmarks.startup_bench [--repeat 15]

Times `cutover --help`, `cutover status` and `cutover runs` as whole
processes, against `python -c pass` measured in the same run (the interpreter's
own start-up, the floor no command can go under). The runs are interleaved
(floor, --help, status, runs, then again), so a machine that slows down
mid-benchmark slows them all alike. `status` and `runs` read a real SQLite
journal holding one completed run of a one-step runbook, made beforehand by
`cutover run` (not timed). Each figure is the median, as wall time and as the
process's CPU time (user + system), which a machine busy with other work
inflates least; the target is on the command's wall time.

    .venv/bin/python -m benchmarks.startup_bench --instructions

On a machine shared with other work even the CPU time moves by tens of
percent from one run to the next. ``--instructions`` counts instead the
instructions each process executes, under valgrind (callgrind), once each:
the same count whatever the load, so two versions compare exactly. Each
command is then shown as a multiple of the floor, and as the wall time that
multiple of the floor's fastest wall time (of 15, in the same run) would be.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.engine_bench import CUTOVER, write_project

TARGET_S = 0.150


def timed(command: list[str]) -> tuple[float, float]:
    """Wall time, and CPU time (user + system) of the process: the CPU time is what a busy machine inflates least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def instructions(command: list[str]) -> int:
    """Instructions the process executed (valgrind's callgrind; the command's children are not followed)."""
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed under valgrind ({result.returncode}):\n{result.stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise SystemExit(f"no instruction count from valgrind:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def report_instructions(commands: dict[str, list[str]]) -> int:
    floor_wall = min(timed(commands["python -c pass"])[0] for _ in range(15))  # the fastest: the least disturbed
    counts = {name: instructions(command) for name, command in commands.items()}
    floor = counts["python -c pass"]
    print(f"start-up in instructions (valgrind), as a multiple of the floor's; the floor ran in {floor_wall * 1000:.0f} ms "
          f"(the fastest of 15), which scales the multiples to wall time (target <= {TARGET_S * 1000:.0f} ms a command)")
    over = []
    for name, count in counts.items():
        wall = floor_wall * count / floor
        over += [name] if name != "python -c pass" and wall > TARGET_S else []
        print(f"  {name:<16} {count / 1e6:7.0f} M   {count / floor:5.2f}x the floor   ~{wall * 1000:4.0f} ms")
    if over:
        print(f"over the target: {', '.join(over)}")
    return 1 if over else 0


def contenders(root: Path) -> dict[str, list[str]]:
    project = [CUTOVER, "--project-dir", str(root), "--state-dir", str(root / "state")]
    return {"python -c pass": [sys.executable, "-c", "pass"],
            "cutover --help": [CUTOVER, "--help"],
            "cutover status": [*project, "status"],
            "cutover runs": [*project, "runs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under valgrind instead of timing (independent of the machine's load)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, steps=1, targets=2, concurrency=2)
        timed([*contenders(root)["cutover runs"][:-1], "run", "bench", "--env", "bench", "--run-id", "startup"])
        commands = contenders(root)
        if args.instructions:
            return report_instructions(commands)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                elapsed, cpu = timed(command)
                walls[name].append(elapsed)
                cpus[name].append(cpu)
    floor, floor_cpu = statistics.median(walls["python -c pass"]), statistics.median(cpus["python -c pass"])
    print(f"start-up: medians of {args.repeat} interleaved runs (target <= {TARGET_S * 1000:.0f} ms a command)")
    print(f"  {'':<16} {'wall':>7}   {'over the floor':>14}   {'CPU':>7}   {'over the floor':>14}")
    over = []
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        over += [name] if name != "python -c pass" and wall > TARGET_S else []
        print(f"  {name:<16} {wall * 1000:5.0f} ms   {(wall - floor) * 1000:+11.0f} ms   {cpu * 1000:5.0f} ms   "
              f"{(cpu - floor_cpu) * 1000:+11.0f} ms")
    if over:
        print(f"over the target (wall): {', '.join(over)}; on a busy machine read the CPU column and the floor")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
