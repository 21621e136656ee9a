"""The night's forecast: a Monte Carlo over what rehearsals measured.

Model (what the engine does): steps run in order; a fanned-out step runs its
targets in batches of ``concurrency`` (in plan order), each batch as slow as
its slowest target. A gate is waiting, not execution: its measured waits
(a rehearsal's approver at lunch, a lab's instant auto-approval) say nothing
of the night's committee, so a gate counts its ``expected_duration`` if the
runbook gives one, else nothing, and the measured waits are reported apart.
Each sample draws every duration from the measurements (bootstrap: a measured
value, at random):

- a target's own measurements where it has some, else the step's pooled
  per-target measurements (another environment's SAMUs, new SAMUs);
- for a step not fanned out, its measured wall times;
- where nothing was measured, the runbook's ``expected_duration`` (a fixed
  value), and where there is none either, 0: each step says which source it
  used, so a forecast never hides a guess.

The whole estimate says its source: ``measured (n runs)`` (n: the fewest runs
any step was measured by), ``expected durations``, or a mix, counted; and
whether its spread is known: with fewer than three measured runs, or any
fixed expected duration in it, P90 says nothing that P50 does not.

From the samples: P50/P90 of the duration and the end, each SAMU's time in
backup mode (from the end of its batch in the ``sets_mode: backup`` step to
the end of its batch in the ``nominal`` one), each step's criticality (its
share of the variance of the end; steps are drawn independently), and the
point-of-no-return deadline: the window's end minus the P90 of rolling back
everything before the PNR gate, from measured rollback durations (never later
than the window's own ``latest_pnr``), and whether the night holds: the P90
of reaching the PNR against that deadline, the P90 end against the window.

What-if changes (``cutover.core.whatif``) are data: a factor multiplies the
drawn durations of a step or one target (after every draw, so the same seed
draws the same night and a slower step can never give an earlier P90); a
failure before the PNR takes the rollback path (the night ends once every
step done so far is undone, newest first); after the PNR nothing is undone,
and the failed target is counted as retried once (its duration doubled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cutover.core.records import StepInfo
from cutover.core.timings import RunMeasure, StepMeasure, measured_source, spread, spread_known
from cutover.core.whatif import Change, check_changes, step_factor

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

RETRY_FACTOR = 2.0  # a target failing after the PNR: fixed and run again, counted as twice its duration

Samples = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PlannedDuration:
    """What the forecast needs of one planned step."""

    info: StepInfo
    concurrency: int = 1


@dataclass
class StepDraw:
    step: str
    source: str
    total: Samples  # the step's duration, per sample
    batch_end: dict[str, Samples] = field(default_factory=dict)  # per target: offset of its batch's end
    rollback: Samples | None = None
    rollback_source: str = "none"
    runs: int = 0  # how many runs measured it (0: the runbook's expected duration, or nothing)
    gate: bool = False


@dataclass
class NightPath:
    """The night as the samples run it: each step's contribution, in order, and how it ends."""

    contributions: list[Samples]  # per step: its duration (and, on the rollback path, its undo), 0 if not run
    duration: Samples
    backup_mode: dict[str, dict[str, float]]
    outcome: str
    pnr_reached: Samples | None  # offset at which the PNR gate is passed; None: no PNR, or never reached


def forecast_night(plan: Sequence[PlannedDuration], runs: Sequence[RunMeasure], *, start: datetime,
                   window_end: datetime | None, samples: int = 10_000, seed: int = 15,
                   changes: Sequence[Change] = (), latest_pnr: datetime | None = None) -> dict[str, Any]:
    check_changes(changes, [p.info for p in plan])
    factors, failing = _effective_changes(plan, changes)
    rng = np.random.default_rng(seed)
    draws = [_draw_step(p, runs, samples, rng, factors) for p in plan]
    path = _night_path(plan, draws, failing, samples)
    source, known = _source(draws)
    deadline = _pnr_deadline(plan, draws, window_end, latest_pnr)
    steps = [_step_json(d, c, path.duration) for d, c in zip(draws, path.contributions)]
    return {
        "samples": samples,
        "runs": [run.run_id for run in runs],
        "source": source,
        "spread_known": known,
        "changes": [c.describe() for c in changes],
        "outcome": path.outcome,
        "start": start.isoformat(),
        "end": {"p50": _at(start, path.duration, 50), "p90": _at(start, path.duration, 90)},
        "duration_s": {"p50": _q(path.duration, 50), "p90": _q(path.duration, 90)},
        "backup_mode_s": path.backup_mode,
        "pnr_deadline": deadline,
        "pnr_reached": ({"p50": _at(start, path.pnr_reached, 50), "p90": _at(start, path.pnr_reached, 90)}
                        if path.pnr_reached is not None else None),
        "window_end": window_end.isoformat() if window_end else None,
        "holds": _holds(start, path, deadline, window_end),
        "critical_step": _critical(steps),
        "steps": steps,
        "gate_waits_s": _gate_waits(plan, runs),
    }


def _effective_changes(plan: Sequence[PlannedDuration], changes: Sequence[Change]) -> tuple[list[Change], int | None]:
    """The factors to apply, and the index of the first step failing before the PNR (the rollback path).

    A failure after the PNR cannot be rolled back: its target is counted as retried (RETRY_FACTOR).
    """
    ids = [p.info.id for p in plan]
    pnr = next((i for i, p in enumerate(plan) if p.info.point_of_no_return), None)
    factors: list[Change] = [c for c in changes if not c.fails]
    failing: int | None = None
    for change in (c for c in changes if c.fails):
        index = ids.index(change.step)
        if pnr is None or index < pnr:
            failing = index if failing is None else min(failing, index)
        else:
            factors.append(Change(change.step, change.target, RETRY_FACTOR))
    return factors, failing


def _night_path(plan: Sequence[PlannedDuration], draws: Sequence[StepDraw], failing: int | None,
                samples: int) -> NightPath:
    if failing is None:
        contributions = [d.total for d in draws]
        duration = np.sum(contributions, axis=0) if draws else np.zeros(samples)
        outcome = "completes"
        backup = _backup_mode(plan, draws)
    else:
        contributions, backup = _rollback_path(plan, draws, failing)
        duration = np.sum(contributions, axis=0)
        outcome = (f"rolls back: {plan[failing].info.id} fails before the point of no return, and everything "
                   "done so far is undone, newest first")
    return NightPath(contributions, duration, backup, outcome, _pnr_reached(plan, contributions, failing))


def _rollback_path(plan: Sequence[PlannedDuration], draws: Sequence[StepDraw],
                   failing: int) -> tuple[list[Samples], dict[str, dict[str, float]]]:
    """Steps up to the failing one run; then each is undone, newest first; later steps never run."""
    zero = np.zeros_like(draws[0].total)
    undo = [d.rollback if d.rollback is not None and i <= failing else zero for i, d in enumerate(draws)]
    contributions = [d.total + undo[i] if i <= failing else zero for i, d in enumerate(draws)]
    offsets = np.cumsum([zero] + [d.total for d in draws[:failing]], axis=0)
    failed_at = offsets[failing] + draws[failing].total
    backup: dict[str, dict[str, float]] = {}
    for index, (planned, draw) in enumerate(zip(plan[: failing + 1], draws)):
        if planned.info.sets_mode != "backup":
            continue
        back_at = failed_at + np.sum(undo[index: failing + 1], axis=0)  # undone newest first, down to this step
        for target, end in draw.batch_end.items():
            spent = back_at - (offsets[index] + end)
            backup[target] = {"p50": _q(spent, 50), "p90": _q(spent, 90)}
    return contributions, dict(sorted(backup.items()))


def _pnr_reached(plan: Sequence[PlannedDuration], contributions: Sequence[Samples],
                 failing: int | None) -> Samples | None:
    pnr = next((i for i, p in enumerate(plan) if p.info.point_of_no_return), None)
    if pnr is None or (failing is not None and failing < pnr):
        return None
    reached: Samples = np.sum(contributions[: pnr + 1], axis=0)
    return reached


def _holds(start: datetime, path: NightPath, deadline: str | None,
           window_end: datetime | None) -> dict[str, bool | None]:
    """Whether the P90 reaches the PNR by its deadline and ends inside the window (None: nothing to hold to)."""
    pnr: bool | None = None
    if deadline is not None and path.pnr_reached is not None:
        pnr = start + timedelta(seconds=_q(path.pnr_reached, 90)) <= datetime.fromisoformat(deadline)
    window = start + timedelta(seconds=_q(path.duration, 90)) <= window_end if window_end is not None else None
    return {"pnr_deadline": pnr, "window": window}


def _critical(steps: Sequence[dict[str, Any]]) -> str | None:
    """The step that weighs most on the P90 end: the largest P90 duration (its variance share breaks ties).

    ``criticality`` (the variance share) says what makes the end uncertain; this says where the night's
    time goes, which is what a slower step changes.
    """
    running = [s for s in steps if s["p90_s"] > 0]
    if not running:
        return None
    return str(max(running, key=lambda s: (s["p90_s"], s["criticality"]))["id"])


def _source(draws: Sequence[StepDraw]) -> tuple[str, bool]:
    """Where the whole estimate comes from, and whether its spread is known."""
    steps = [d for d in draws if not d.gate]
    measured = [d.runs for d in steps if d.runs]
    fallback = len(steps) - len(measured)
    if not steps:
        return "nothing left to run", True
    if not measured:
        return "expected durations", False
    fewest = min(measured)
    if not fallback:
        return measured_source(fewest), spread_known(fewest)
    return (f"mixed: {len(measured)} step(s) {measured_source(fewest)}, "
            f"{fallback} from expected durations"), False


def _gate_waits(plan: Sequence[PlannedDuration], runs: Sequence[RunMeasure]) -> dict[str, dict[str, Any]]:
    """What each gate's wait measured: reported apart, never in the night's duration."""
    waits = {p.info.id: [w for run in runs if (w := _wait(run, p.info.id)) is not None]
             for p in plan if p.info.is_gate}
    return {step: spread(values) for step, values in waits.items() if values}


def _wait(run: RunMeasure, step: str) -> float | None:
    measure = run.steps.get(step)
    return measure.gate_wait_s if measure else None


def _draw_step(planned: PlannedDuration, runs: Sequence[RunMeasure], n: int, rng: np.random.Generator,
               changes: Sequence[Change] = ()) -> StepDraw:
    info = planned.info
    measures = [run.steps[info.id] for run in runs if info.id in run.steps]
    rollback, rollback_source = _rollback(info, measures, n, rng)
    if info.is_gate:
        total, source = _measured_or_expected([], info.expected_duration, n, rng)
        return StepDraw(info.id, "waiting, not counted" if source == "none (0)" else source,
                        total * step_factor(changes, info.id, None), rollback=rollback,
                        rollback_source=rollback_source, gate=True)
    pooled = [s for m in measures for t, s in m.targets.items() if t is not None]
    if info.targets and pooled:
        return _fan_out(planned, measures, pooled, n, rng, rollback, rollback_source, changes)
    walls = [m.wall_s for m in measures if m.wall_s is not None]
    total, source = _measured_or_expected(walls, info.expected_duration, n, rng)
    # one duration for the whole step: it is as slow as its slowest target
    total = total * max((step_factor(changes, info.id, t) for t in info.keys()), default=1.0)
    ends = {t: total for t in info.targets or ()}
    return StepDraw(info.id, source, total, ends, rollback, rollback_source, runs=len(walls))


def _fan_out(planned: PlannedDuration, measures: list[StepMeasure], pooled: list[float], n: int,
             rng: np.random.Generator, rollback: Samples | None, rollback_source: str,
             changes: Sequence[Change] = ()) -> StepDraw:
    targets = list(planned.info.targets or ())
    own = {t: [m.targets[t] for m in measures if t in m.targets] for t in targets}
    matrix = np.stack([rng.choice(np.array(own[t] or pooled), size=n) for t in targets], axis=1)
    matrix = matrix * np.array([step_factor(changes, planned.info.id, t) for t in targets])  # after every draw
    size = max(1, planned.concurrency)
    batch_max = [matrix[:, i:i + size].max(axis=1) for i in range(0, len(targets), size)]
    cumulative = np.cumsum(np.stack(batch_max, axis=1), axis=1)
    ends = {t: cumulative[:, index // size] for index, t in enumerate(targets)}
    measured_targets = sum(1 for t in targets if own[t])
    runs = sum(1 for m in measures if any(t is not None for t in m.targets))
    source = f"measured ({runs} run(s); {measured_targets}/{len(targets)} targets their own, others pooled)"
    return StepDraw(planned.info.id, source, cumulative[:, -1], ends, rollback, rollback_source, runs=runs)


def _rollback(info: StepInfo, measures: list[StepMeasure], n: int, rng: np.random.Generator) -> tuple[Samples | None, str]:
    if info.is_gate:
        return None, "none"
    measured = [m.rollback_s for m in measures if m.rollback_s is not None]
    expected = info.rollback_expected_duration if info.rollback_expected_duration is not None \
        else info.expected_duration
    return _measured_or_expected(measured, expected, n, rng)


def _measured_or_expected(values: list[float], expected: float | None, n: int,
                          rng: np.random.Generator) -> tuple[Samples, str]:
    if values:
        return rng.choice(np.array(values, dtype=float), size=n), f"measured ({len(values)} sample(s))"
    if expected is not None:
        return np.full(n, float(expected)), "expected_duration"
    return np.zeros(n), "none (0)"


def _backup_mode(plan: Sequence[PlannedDuration], draws: Sequence[StepDraw]) -> dict[str, dict[str, float]]:
    if not draws:
        return {}
    offsets: Samples = np.cumsum([np.zeros_like(draws[0].total)] + [d.total for d in draws[:-1]], axis=0)
    entered: dict[str, Samples] = {}
    result: dict[str, dict[str, float]] = {}
    for planned, draw, offset in zip(plan, draws, offsets):
        for target, end in draw.batch_end.items():
            if planned.info.sets_mode == "backup":
                entered[target] = offset + end
            elif planned.info.sets_mode == "nominal" and target in entered:
                spent = offset + end - entered.pop(target)
                result[target] = {"p50": _q(spent, 50), "p90": _q(spent, 90)}
    return dict(sorted(result.items()))


def _pnr_deadline(plan: Sequence[PlannedDuration], draws: Sequence[StepDraw], window_end: datetime | None,
                  latest_pnr: datetime | None = None) -> str | None:
    """The last moment to pass the PNR: rolling back all before it still ends in the window, and the
    window's own ``latest_pnr`` (whichever comes first)."""
    ids = [p.info.id for p in plan]
    pnr = next((p.info.id for p in plan if p.info.point_of_no_return), None)
    if pnr is None or window_end is None:
        return latest_pnr.isoformat() if pnr is not None and latest_pnr is not None else None
    before = [d.rollback for d in draws[: ids.index(pnr)] if d.rollback is not None]
    undo = np.sum(before, axis=0) if before else np.zeros(1)
    deadline = window_end - timedelta(seconds=_q(undo, 90))
    return min(deadline, latest_pnr).isoformat() if latest_pnr is not None else deadline.isoformat()


def _step_json(draw: StepDraw, contribution: Samples, duration: Samples) -> dict[str, Any]:
    variance = float(np.var(duration))
    share = float(np.var(contribution)) / variance if variance > 0 else 0.0
    return {"id": draw.step, "source": draw.source, "p50_s": _q(contribution, 50), "p90_s": _q(contribution, 90),
            "spread_known": draw.gate or spread_known(draw.runs),  # a gate counts a fixed figure, said as such
            "criticality": round(share, 3),
            "rollback_source": draw.rollback_source}


def _q(values: Samples, q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def _at(start: datetime, duration: Samples, q: float) -> str:
    return (start + timedelta(seconds=_q(duration, q))).isoformat()
