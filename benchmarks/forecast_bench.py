"""The forecast's Monte Carlo: 10,000 samples of a 100-SAMU night (target: under 1 s).

The plan is the big-bang runbook's shape over 100 SAMUs (fan-outs of 100
targets at concurrency 10, platform steps, two gates), measured by five
synthetic rehearsals. The baseline, measured in the same run, is the bare cost
of drawing the same number of durations with numpy; the ratio says what the
model (batches, backup-mode spans, criticality) adds on top of sampling.

    .venv/bin/python -m benchmarks.forecast_bench [--samples 10000] [--samus 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timezone

import numpy as np

from cutover.core.montecarlo import PlannedDuration, forecast_night
from cutover.core.records import StepInfo
from cutover.core.timings import RunMeasure, StepMeasure

SHAPE = [("preflight", True, None), ("go-no-go", False, None), ("backup-mode", True, "backup"),
         ("freeze-legacy", False, None), ("migrate", False, None), ("point-to-cloud", True, None),
         ("verify-cloud", False, None), ("point-of-no-return", False, None), ("return-to-nominal", True, "nominal"),
         ("sign-off", False, None)]


def plan_and_history(samus: int, runs: int = 5) -> tuple[list[PlannedDuration], list[RunMeasure]]:
    hosts = tuple(f"samu-{n:03d}" for n in range(samus))
    gates = ("go-no-go", "point-of-no-return")
    plan = [PlannedDuration(StepInfo(id=step, kind="gate" if step in gates else "playbook", title=step,
                                     targets=hosts if fans else None, sets_mode=mode,
                                     point_of_no_return=step == "point-of-no-return"), 10)
            for step, fans, mode in SHAPE]
    rng = random.Random(15)
    history = []
    for index in range(runs):
        steps = {}
        for step, fans, _ in SHAPE:
            measure = StepMeasure(step, wall_s=rng.uniform(20, 90), rollback_s=rng.uniform(10, 60))
            if fans:
                measure.targets = {h: rng.uniform(2, 9) for h in hosts}
            if step in ("go-no-go", "point-of-no-return"):
                measure.gate_wait_s = rng.uniform(30, 300)
            steps[step] = measure
        history.append(RunMeasure(f"r{index}", "bigbang", "rehearsal", "rehearsal", None, "completed", "", None,
                                  steps, [s for s, _, _ in SHAPE]))
    return plan, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--samus", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    plan, history = plan_and_history(args.samus)
    start = datetime(2026, 11, 29, 21, tzinfo=timezone.utc)
    end = datetime(2026, 11, 30, 7, tzinfo=timezone.utc)
    timings, baselines = [], []
    draws = args.samples * (args.samus * 4 + len(SHAPE) * 2)
    for _ in range(args.repeat):
        began = time.perf_counter()
        forecast_night(plan, history, start=start, window_end=end, samples=args.samples)
        timings.append(time.perf_counter() - began)
        began = time.perf_counter()
        np.random.default_rng(1).choice(np.arange(5.0), size=draws)
        baselines.append(time.perf_counter() - began)
    best, base = min(timings), min(baselines)
    print(f"forecast: {args.samples} samples x {args.samus} SAMUs: {best:.3f} s (target < 1 s)")
    print(f"baseline: drawing the same {draws:,} durations with numpy: {base:.3f} s; ratio {best / base:.2f}")


if __name__ == "__main__":
    main()
