"""The full night in the lab: each SAMU's time in backup mode, and how much of it the steps used.

    .venv/bin/python -m benchmarks.night_bench [--samus 10]

Runs `cutover run bigbang` on a fresh lab (the real command, the real
playbooks, traffic flowing), then reads the journal. For each SAMU: the time
between its switch to backup mode and its return to nominal, against the time
covered by the steps that ran meanwhile (each step from its first target's
start to its last target's end, action and verification included). The gap is
orchestration waste: time a SAMU spent in backup mode with no step running.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cutover.app.queries import load_run
from cutover.core.events import parse_time
from cutover.core.state import RunState
from cutover.journal.sqlite import SqliteJournal

REPO = Path(__file__).resolve().parents[1]
CUTOVER = str(Path(sys.executable).parent / "cutover")


def run_night(root: Path, state: Path, samus: int) -> float:
    for name in ("runbooks", "playbooks"):
        shutil.copytree(REPO / name, root / name)
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab", ignore=shutil.ignore_patterns("lab-ssh"))
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    base = [CUTOVER, "--project-dir", str(root), "--state-dir", str(state)]
    subprocess.run([*base, "lab", "up", "--samus", str(samus)], check=True, capture_output=True)
    env = "lab" if samus == 10 else str(state / "lab" / "inventory")
    try:
        started = time.perf_counter()
        result = subprocess.run([*base, "run", "bigbang", "--env", env, "--run-id", "bench", "--auto-approve", "bench"],
                                capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"the night failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr}")
    finally:
        subprocess.run([*base, "lab", "down"], capture_output=True)
    return elapsed


def step_spans(state: RunState) -> dict[str, tuple[datetime, datetime]]:
    spans = {}
    for info in state.steps:
        targets = state.step_targets(info.id)
        starts = [parse_time(t.started_at) for t in targets if t.started_at]
        ends = [parse_time(t.finished_at) for t in targets if t.finished_at]
        if starts and ends:
            spans[info.id] = (min(starts), max(ends))
    return spans


def overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    return max(0.0, (min(a[1], b[1]) - max(a[0], b[0])).total_seconds())


def covered(spans: list[tuple[datetime, datetime]], window: tuple[datetime, datetime]) -> float:
    """Seconds of WINDOW during which at least one step ran (steps run one after another)."""
    return sum(overlap(span, window) for span in spans)


def report(state: RunState, elapsed: float) -> None:
    spans = step_spans(state)
    backup = next(s for s in state.steps if s.sets_mode == "backup")
    nominal = next(s for s in state.steps if s.sets_mode == "nominal")
    print(f"the night: {len(state.steps)} steps, `cutover run` wall time {elapsed:.1f} s")
    print(f"{'SAMU':<10}{'in backup':>11}{'steps ran':>11}{'gap':>9}{'gap %':>8}")
    totals = [0.0, 0.0]
    for target in backup.targets or ():
        entered = parse_time(state.targets[(backup.id, target)].finished_at)
        left = parse_time(state.targets[(nominal.id, target)].finished_at)
        window = (entered, left)
        in_backup = (left - entered).total_seconds()
        busy = covered(list(spans.values()), window)
        totals[0] += in_backup
        totals[1] += busy
        print(f"{target:<10}{in_backup:>10.1f}s{busy:>10.1f}s{in_backup - busy:>8.2f}s{(in_backup - busy) / in_backup:>8.1%}")
    gap = totals[0] - totals[1]
    print(f"{'all':<10}{totals[0]:>10.1f}s{totals[1]:>10.1f}s{gap:>8.2f}s{gap / totals[0]:>8.1%}"
          "   (gap = orchestration waste while SAMUs were in backup mode)")
    print("step durations:", ", ".join(f"{sid} {(end - start).total_seconds():.1f}s" for sid, (start, end) in spans.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samus", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, state_dir = Path(tmp) / "project", Path(tmp) / "state"
        elapsed = run_night(root, state_dir, args.samus)
        with SqliteJournal(state_dir / "journal.db", "bench") as journal:
            report(load_run(journal, "bench"), elapsed)


if __name__ == "__main__":
    main()
