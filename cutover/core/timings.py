"""Every run is a measurement: step durations, rollback durations and gate waits, from the journal alone.

``measure_run`` reads one run's typed records and returns what each step took:

- its wall time: from its first ``step_started`` to its last verified target
  (``step_succeeded``), across attempts and resumes, less the time the run
  stood paused in between (a Ctrl-C, a decision awaited: from ``run_paused``
  or ``run_failed`` to the next ``drive_started``; a controller killed
  without a word: from its last event to the next ``drive_started``): the
  time spent executing it (attempts, verifications), with the paused time
  kept apart;
- per target, the last attempt's start to its success, less pauses, so a slow
  SAMU shows;
- its rollback: from the first ``undo_started`` to the step's
  ``step_rolled_back``, less pauses;
- for a gate, the wait from ``gate_opened`` to ``gate_passed``: waiting, not
  execution, reported apart and never added to a duration;
- retries, failures and in-doubt targets, which make a measurement suspect.

Not every run is a measurement: ``left_out_because`` is the one rule that
says which runs must not count (a run rolled back before it acted measured
nothing of the night), and every output says how many it left out and why.

``summarise`` lines many runs up per step (min, P50, P90, max, per target,
flags, trend). Nothing here looks at a clock: a measurement is what the
journal says happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any

from cutover.core import records as r
from cutover.core.actions import Target
from cutover.core.events import Event, parse_time
from cutover.core.state import RunState, RunStatus

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

SPREAD_NEEDS = 3  # measured runs below which a P90 says nothing the P50 does not: the spread is unknown
WIDE_SPREAD = 1.5  # P90 over P50 beyond which a step's duration is flagged unstable
TREND_CHANGE = 0.2  # relative change between the first and the latest run that counts as a trend


@dataclass
class StepMeasure:
    step: str
    wall_s: float | None = None
    targets: dict[Target, float] = field(default_factory=dict)
    rollback_s: float | None = None
    gate_wait_s: float | None = None  # waiting, not execution: never part of a duration
    paused_s: float = 0.0  # the run stood paused inside the step's span: left out of wall_s and rollback_s
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
    gates: frozenset[str] = frozenset()  # the steps that are gates: they wait, they do not execute
    left_out: str | None = None  # why this run must not count as a measurement (``left_out_because``)

    def step(self, step_id: str) -> StepMeasure:
        return self.steps.setdefault(step_id, StepMeasure(step_id))

    def execution_s(self) -> float:
        """Time spent executing: every step's wall time and rollback, no gate wait, no pause."""
        return sum((m.wall_s or 0.0) + (m.rollback_s or 0.0) for m in self.steps.values())

    def gate_wait_s(self) -> float:
        return sum(m.gate_wait_s or 0.0 for m in self.steps.values())

    def paused_s(self) -> float:
        return sum(m.paused_s for m in self.steps.values())


def left_out_because(state: RunState) -> str | None:
    """Why a run must not count as a measurement, or None when it counts.

    The one rule: timings, compare, forecast, the report and the live forecast
    all choose their runs through it.
    """
    if state.status is RunStatus.ROLLED_BACK and not state.acted:
        return "rolled back before acting"
    if state.status is RunStatus.ABANDONED:
        return "abandoned"
    return None


@dataclass(frozen=True)
class Selection:
    """The runs a measurement draws from, and those it left out (each with its reason)."""

    runs: list[RunMeasure]
    left_out: list[RunMeasure] = field(default_factory=list)

    def left_out_json(self) -> list[dict[str, Any]]:
        return [{"run_id": m.run_id, "label": m.label, "reason": m.left_out} for m in self.left_out]



def left_out_note(left_out: Sequence[Mapping[str, Any]]) -> str:
    """What a measurement says of the runs it left out (``Selection.left_out_json``), every time.

    ``left out: 2 run(s): 1 rolled back before acting (past1); 1 abandoned (junk)``, or ``left out: none``.
    """
    if not left_out:
        return "left out: none"
    reasons: dict[str, list[str]] = {}
    for run in left_out:
        reasons.setdefault(str(run["reason"]), []).append(str(run["run_id"]))
    why = "; ".join(f"{len(ids)} {reason} ({', '.join(ids)})" for reason, ids in reasons.items())
    return f"left out: {len(left_out)} run(s): {why}"


def select(runs: Iterable[RunMeasure], last: int | None = None) -> Selection:
    """Split measured runs (oldest first) into those that count (the last N of them) and those left out."""
    runs = list(runs)
    counted = [m for m in runs if m.left_out is None]
    return Selection(counted[-last:] if last else counted, [m for m in runs if m.left_out is not None])


def measured_source(runs: int) -> str:
    """How an estimate names its source when it came from measurements."""
    return f"measured ({runs} run{'s' if runs != 1 else ''})"


def spread_known(runs: int) -> bool:
    return runs >= SPREAD_NEEDS


def spread_unknown(source: str) -> str:
    """Why an estimate from ``source`` cannot give its spread (said instead of a P90 equal to its P50)."""
    if source.startswith("measured"):
        return f"spread unknown, fewer than {SPREAD_NEEDS} measured runs"
    return "spread unknown, expected durations carry none"


def measure_run(events: Sequence[Event], state: str, finished_at: str | None) -> RunMeasure:
    """What one run's journal says each of its steps took."""
    created = r.read(events[0])
    assert isinstance(created, r.RunCreated), "a run's first event is run_created"
    measure = RunMeasure(events[0].run_id, created.runbook.name, created.env, created.kind, created.label, state,
                         events[0].at, finished_at, {}, [s.id for s in created.steps],
                         frozenset(s.id for s in created.steps if s.is_gate))
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
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (paused, driven again), oldest first
    paused_since: float | None = None
    driven: bool = False  # a drive has started
    last_written: float | None = None  # the latest event a driver wrote (lease events are the next one's)

    def paused_within(self, start: float, end: float) -> float:
        """Seconds of [start, end] during which the run stood paused (nobody drove it)."""
        return sum(max(0.0, min(end, until) - max(start, since)) for since, until in self.pauses)

    def executing(self, start: float, end: float) -> float:
        return end - start - self.paused_within(start, end)

    def see(self, run: RunMeasure, record: r.Record, at: float) -> None:
        if isinstance(record, (r.RunPaused, r.RunFailed)):
            self.paused_since = at if self.paused_since is None else self.paused_since
        elif isinstance(record, r.DriveStarted):
            self._drive_started(at)
        else:
            self._see_step(run, record, at)
        if not isinstance(record, (r.LeaseAcquired, r.LeaseTakenOver, r.LeaseReleased)):
            self.last_written = at

    def _drive_started(self, at: float) -> None:
        if self.paused_since is not None:
            self.pauses.append((self.paused_since, at))
        elif self.driven and self.last_written is not None:
            # The previous controller stopped without a word (killed, power lost): nothing it
            # wrote says it executed anything after its last event, so the gap is not counted.
            self.pauses.append((self.last_written, at))
        self.paused_since, self.driven = None, True

    def _see_step(self, run: RunMeasure, record: r.Record, at: float) -> None:
        if isinstance(record, r.StepStarted):
            self.first_start.setdefault(record.step, at)
            self.target_start[(record.step, record.target)] = at
            run.step(record.step).retries += record.attempt > 1
        elif isinstance(record, r.StepSucceeded):
            self.last_success[record.step] = at
            start = self.target_start.get((record.step, record.target))
            if start is not None:
                run.step(record.step).targets[record.target] = self.executing(start, at)
        elif isinstance(record, r.StepFailed):
            run.step(record.step).failed += 1
        elif isinstance(record, r.InDoubt):
            run.step(record.step).in_doubt += 1
        elif isinstance(record, r.UndoStarted):
            self.undo_start.setdefault(record.step, at)
        elif isinstance(record, r.StepRolledBack) and record.step in self.undo_start:
            start = self.undo_start.pop(record.step)
            run.step(record.step).rollback_s = self.executing(start, at)
            run.step(record.step).paused_s += self.paused_within(start, at)
        elif isinstance(record, r.GateOpened):
            self.gate_open.setdefault(record.step, at)
        elif isinstance(record, r.GatePassed) and record.step in self.gate_open:
            run.step(record.step).gate_wait_s = at - self.gate_open[record.step]

    def close(self, run: RunMeasure) -> None:
        for step, end in self.last_success.items():
            start = self.first_start.get(step, end)
            run.step(step).wall_s = self.executing(start, end)
            run.step(step).paused_s += self.paused_within(start, end)


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
    """Per step, across runs (oldest first): spread, rollback, per target, flags and trend.

    A gate's row has no execution samples: its ``gate_wait`` (waiting) is apart.
    """
    order = list(dict.fromkeys(step for run in runs for step in run.order))
    gates = frozenset().union(*(run.gates for run in runs)) if runs else frozenset()
    return [{**_summarise_step(step, [run.steps[step] for run in runs if step in run.steps]), "gate": step in gates}
            for step in order]


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
    row["paused_s"] = round(sum(m.paused_s for m in measures), 3)  # left out of every figure above
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
    if any(m.paused_s for m in measures):
        flags.append("paused (left out)")
    if len(walls) >= 2 and walls[0] > 0:
        change = (walls[-1] - walls[0]) / walls[0]
        if change > TREND_CHANGE:
            flags.append("getting slower")
        elif change < -TREND_CHANGE:
            flags.append("getting faster")
    return flags
