"""The lab night with its journal on PostgreSQL against SQLite (goal: within 1.10x).

One lab (3 SAMUs, traffic), the same night twice per round: once journalled in
SQLite (the baseline, in the same run), once in a PostgreSQL server started
for the benchmark; `cutover lab reset` between nights. Wall time of `cutover
run` each time; the ratio of the medians.

    .venv/bin/python -m benchmarks.pg_night_bench [--rounds 2] [--samus 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cutover.journal.postgres import init_schema
from cutover.testing.postgres import start_postgres

CUTOVER = str(Path(sys.executable).parent / "cutover")


def night(state: Path, env: str, run_id: str, journal: list[str]) -> float:
    began = time.perf_counter()
    result = subprocess.run([CUTOVER, "--state-dir", str(state), *journal, "run", "bigbang", "--env", env,
                             "--run-id", run_id, "--auto-approve", "bench"], capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"the night {run_id} failed: {result.stdout[-2000:]}{result.stderr}")
    subprocess.run([CUTOVER, "--state-dir", str(state), "lab", "reset"], check=True, capture_output=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samus", type=int, default=3)
    args = parser.parse_args()
    server = start_postgres()
    try:
        init_schema(server.url)
        with tempfile.TemporaryDirectory(prefix="cutover-bench-") as folder:
            state = Path(folder)
            up = subprocess.run([CUTOVER, "--state-dir", str(state), "lab", "up", "--samus", str(args.samus),
                                 "--json"], capture_output=True, text=True, check=True)
            env = json.loads(up.stdout)["env"]
            try:
                sqlite, postgres = [], []
                for index in range(args.rounds):
                    sqlite.append(night(state, env, f"sqlite-{index}", []))
                    postgres.append(night(state, env, f"pg-{index}", ["--journal", server.url]))
            finally:
                subprocess.run([CUTOVER, "--state-dir", str(state), "lab", "down"], capture_output=True)
        base, ours = statistics.median(sqlite), statistics.median(postgres)
        print(f"lab night ({args.samus} SAMUs): SQLite {base:.1f} s, PostgreSQL {ours:.1f} s "
              f"(medians of {args.rounds}); ratio {ours / base:.2f} (goal <= 1.10)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
