"""Every run is a measurement: step durations, rollback durations and gate waits, from the journal alone.

``measure_run`` reads one run's typed records and returns what each step took:

- its wall time: from its first ``step_started`` to its last verified target
  (``step_succeeded``), across attempts and resumes: the time the night spent
  on it;
- per target, the last attempt's start to its success, so a slow SAMU shows;
- its rollback: from the first ``undo_started`` to the step's
  ``step_rolled_back``;
- for a gate, the wait from ``gate_opened`` to ``gate_passed``;
- retries, failures and in-doubt targets, which make a measurement suspect.

``summarise`` lines many runs up per step (min, P50, P90, max, per target,
flags, trend). Nothing here looks at a clock: a measurement is what the
journal says happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cutover.core import records as r
from cutover.core.actions import Target
from cutover.core.events import Event, parse_time

WIDE_SPREAD = 1.5  # P90 over P50 beyond which a step's duration is flagged unstable
TREND_CHANGE = 0.2  # relative change between the first and the latest run that counts as a trend


@dataclass
class StepMeasure:
    step: str
    wall_s: float | None = None
    targets: dict[Target, float] = field(default_factory=dict)
    rollback_s: float | None = None
    gate_wait_s: float | None = None
    retries: int = 0
    failed: int = 0
    in_doubt: int = 0


@dataclass
class RunMeasure:
    run_id: str
    runbook: str
    env: str
    kind: str
    label: str | None
    state: str
    started_at: str
    finished_at: str | None
    steps: dict[str, StepMeasure]
    order: list[str]  # step ids in runbook order

    def step(self, step_id: str) -> StepMeasure:
        return self.steps.setdefault(step_id, StepMeasure(step_id))


def measure_run(events: Sequence[Event], state: str, finished_at: str | None) -> RunMeasure:
    """What one run's journal says each of its steps took."""
    created = r.read(events[0])
    assert isinstance(created, r.RunCreated), "a run's first event is run_created"
    measure = RunMeasure(events[0].run_id, created.runbook.name, created.env, created.kind, created.label, state,
                         events[0].at, finished_at, {}, [s.id for s in created.steps])
    marks = _Marks()
    for event in events:
        marks.see(measure, r.read(event), parse_time(event.at).timestamp())
    marks.close(measure)
    return measure


@dataclass
class _Marks:
    first_start: dict[str, float] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)
    target_start: dict[tuple[str, Target], float] = field(default_factory=dict)
    undo_start: dict[str, float] = field(default_factory=dict)
    gate_open: dict[str, float] = field(default_factory=dict)

    def see(self, run: RunMeasure, record: r.Record, at: float) -> None:
        if isinstance(record, r.StepStarted):
            self.first_start.setdefault(record.step, at)
            self.target_start[(record.step, record.target)] = at
            run.step(record.step).retries += record.attempt > 1
        elif isinstance(record, r.StepSucceeded):
            self.last_success[record.step] = at
            start = self.target_start.get((record.step, record.target))
            if start is not None:
                run.step(record.step).targets[record.target] = at - start
        elif isinstance(record, r.StepFailed):
            run.step(record.step).failed += 1
        elif isinstance(record, r.InDoubt):
            run.step(record.step).in_doubt += 1
        elif isinstance(record, r.UndoStarted):
            self.undo_start.setdefault(record.step, at)
        elif isinstance(record, r.StepRolledBack) and record.step in self.undo_start:
            run.step(record.step).rollback_s = at - self.undo_start.pop(record.step)
        elif isinstance(record, r.GateOpened):
            self.gate_open.setdefault(record.step, at)
        elif isinstance(record, r.GatePassed) and record.step in self.gate_open:
            run.step(record.step).gate_wait_s = at - self.gate_open[record.step]

    def close(self, run: RunMeasure) -> None:
        for step, end in self.last_success.items():
            run.step(step).wall_s = end - self.first_start.get(step, end)


# ---------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (as numpy's default); ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {"samples": len(values), "min_s": round(min(values), 3), "p50_s": round(percentile(values, 50), 3),
            "p90_s": round(percentile(values, 90), 3), "max_s": round(max(values), 3)}


def summarise(runs: Sequence[RunMeasure]) -> list[dict[str, Any]]:
    """Per step, across runs (oldest first): spread, rollback, per target, flags and trend."""
    order = list(dict.fromkeys(step for run in runs for step in run.order))
    return [_summarise_step(step, [run.steps[step] for run in runs if step in run.steps]) for step in order]


def _summarise_step(step: str, measures: list[StepMeasure]) -> dict[str, Any]:
    walls = [m.wall_s for m in measures if m.wall_s is not None]
    waits = [m.gate_wait_s for m in measures if m.gate_wait_s is not None]
    rollbacks = [m.rollback_s for m in measures if m.rollback_s is not None]
    per_target: dict[str, list[float]] = {}
    for m in measures:
        for target, seconds in m.targets.items():
            if target is not None:
                per_target.setdefault(target, []).append(seconds)
    row: dict[str, Any] = {"id": step, **(spread(walls) if walls else {"samples": 0, "min_s": None, "p50_s": None,
                                                                      "p90_s": None, "max_s": None})}
    row["rollback"] = ({k: v for k, v in spread(rollbacks).items() if k in ("samples", "p50_s", "p90_s")}
                       if rollbacks else None)
    row["gate_wait"] = spread(waits) if waits else None
    row["targets"] = {t: {k: v for k, v in spread(s).items() if k in ("samples", "p50_s", "p90_s")}
                      for t, s in sorted(per_target.items())}
    row["flags"] = _flags(walls, measures)
    row["trend"] = [round(w, 3) for w in walls]
    return row


def _flags(walls: list[float], measures: Iterable[StepMeasure]) -> list[str]:
    flags = []
    measures = list(measures)
    if len(walls) >= 2 and percentile(walls, 50) > 0 and percentile(walls, 90) > WIDE_SPREAD * percentile(walls, 50):
        flags.append("wide spread")
    if any(m.retries for m in measures):
        flags.append("retries")
    if any(m.failed for m in measures):
        flags.append("failed targets")
    if any(m.in_doubt for m in measures):
        flags.append("in doubt")
    if len(walls) >= 2 and walls[0] > 0:
        change = (walls[-1] - walls[0]) / walls[0]
        if change > TREND_CHANGE:
            flags.append("getting slower")
        elif change < -TREND_CHANGE:
            flags.append("getting faster")
    return flags
