"""Use-cases over past runs: timings, comparisons and the forecast of the next night.

Runs are chosen from the journal by runbook name and environment (or named
one by one); each is measured from its own events (``cutover.core.timings``),
never from a stopwatch. Runs that must not count (``left_out_because``) are
left out of every figure, and every answer says which and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cutover.app.queries import runbook_of
from cutover.core.events import Journal, parse_time
from cutover.core.forecast import Outlook
from cutover.core.records import StepInfo, WindowInfo
from cutover.core.state import RunState, fold
from cutover.core.steps import ActionStep, RunbookSpec
from cutover.core.timings import (
    RunMeasure,
    Selection,
    left_out_because,
    left_out_note,
    measure_run,
    select,
    spread_known,
    summarise,
)
from cutover.core.whatif import Change
from cutover.core.windows import first_open_window, window_of
from cutover.errors import InputError, NotFound
from cutover.model.inventory import Inventory
from cutover.model.runbook import LoadedRunbook
from cutover.planning.plan import numbered_window, plan_cutover, to_spec, window_infos

if TYPE_CHECKING:
    from cutover.core.montecarlo import PlannedDuration


def measure(journal: Journal, run_id: str) -> RunMeasure:
    events = journal.events(run_id)
    if not events:
        raise NotFound(f"no run {run_id!r} in this journal", hint="`cutover runs` lists the runs")
    state = fold(events)
    measured = measure_run(events, state.status.value, state.finished_at)
    measured.left_out = left_out_because(state)
    return measured


def select_runs(journal: Journal, runbook: str, env: str, *, last: int | None = None,
                run_ids: list[str] | None = None, exclude: str | None = None) -> Selection:
    """The runs of ``runbook`` on ``env`` that count, oldest first (the last N, or those named), and those left out.

    ``exclude``: a run not even read (the one being resumed reads itself once, for its drive).
    """
    if run_ids:
        chosen = [measure(journal, run_id) for run_id in run_ids]
        mixed = [m.run_id for m in chosen if (m.runbook, m.env) != (runbook, env)]
        if mixed:
            raise InputError(f"run(s) {', '.join(mixed)} are not runs of {runbook!r} on {env!r}",
                             hint="compare like with like: one runbook, one environment")
        return select(chosen)
    found = [m for m in (measure(journal, run_id) for run_id in journal.runs() if run_id != exclude)
             if (m.runbook, m.env) == (runbook, env)]
    return select(found, last)


def timings_json(runbook: str, env: str, selection: Selection) -> dict[str, Any]:
    runs = selection.runs
    return {"runbook": runbook, "env": env,
            "runs": [{"run_id": m.run_id, "label": m.label, "kind": m.kind, "state": m.state,
                      "started_at": m.started_at, "finished_at": m.finished_at,
                      "execution_s": round(m.execution_s(), 3), "gate_wait_s": round(m.gate_wait_s(), 3),
                      "paused_s": round(m.paused_s(), 3)} for m in runs],
            "left_out": selection.left_out_json(),
            "spread_known": spread_known(len(runs)),
            "steps": summarise(runs)}


def compare_json(journal: Journal, run_ids: list[str]) -> dict[str, Any]:
    """The runs side by side, step by step: durations, deltas against the first, outcomes that differ, totals.

    A duration is execution only; a gate's cell holds its wait (``gate_wait_s``), apart.
    """
    if len(run_ids) < 2:
        raise InputError("compare needs at least two runs", hint="cutover compare RUN RUN [RUN...]")
    selection = select(measure(journal, run_id) for run_id in run_ids)
    runs = selection.runs
    if len(runs) < 2:
        note = left_out_note(selection.left_out_json())
        raise InputError(f"fewer than two of these runs count as measurements ({note})",
                         hint="compare runs that acted (`cutover runs` lists them)")
    if len({m.runbook for m in runs}) > 1:
        raise InputError(f"the runs are of different runbooks: {', '.join(sorted({m.runbook for m in runs}))}",
                         hint="compare runs of one runbook")
    order = list(dict.fromkeys(step for m in runs for step in m.order))
    steps = []
    for step in order:
        cells = _with_deltas([_cell(m, step) for m in runs])
        outcomes = {(c["failed"], c["retries"], c["in_doubt"]) for c in cells}
        steps.append({"id": step, "gate": any(step in m.gates for m in runs), "runs": cells,
                      "outcomes_differ": len(outcomes) > 1})
    return {"runs": [{"run_id": m.run_id, "label": m.label, "env": m.env, "state": m.state} for m in runs],
            "left_out": selection.left_out_json(), "steps": steps,
            "total": _with_deltas([_total(m, steps, index) for index, m in enumerate(runs)])}


def _with_deltas(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = cells[0]["duration_s"]
    for cell in cells[1:]:
        cell["delta_s"] = round(cell["duration_s"] - base, 3) if None not in (cell["duration_s"], base) else None
    return cells


def _cell(run: RunMeasure, step: str) -> dict[str, Any]:
    m = run.steps.get(step)
    return {"run_id": run.run_id, "duration_s": _rounded(m.wall_s if m else None),
            "failed": m.failed if m else 0, "retries": m.retries if m else 0, "in_doubt": m.in_doubt if m else 0,
            "gate_wait_s": _rounded(m.gate_wait_s if m else None), "paused_s": _rounded(m.paused_s if m else None)}


def _total(run: RunMeasure, steps: list[dict[str, Any]], index: int) -> dict[str, Any]:
    """One run's column summed: its execution (the durations above), its gate waits and its pauses, apart."""
    cells = [row["runs"][index] for row in steps]
    return {"run_id": run.run_id, "duration_s": round(sum(c["duration_s"] or 0.0 for c in cells), 3),
            "gate_wait_s": round(sum(c["gate_wait_s"] or 0.0 for c in cells), 3),
            "paused_s": round(sum(c["paused_s"] or 0.0 for c in cells), 3),
            "failed": sum(c["failed"] for c in cells), "retries": sum(c["retries"] for c in cells),
            "in_doubt": sum(c["in_doubt"] for c in cells)}


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def forecast_json(journal: Journal, loaded: LoadedRunbook, inventory: Inventory, *, from_env: str | None,
                  last: int | None, start: datetime | None, window_end: datetime | None, samples: int,
                  changes: Sequence[Change] = (), window: int | None = None,
                  now: datetime | None = None, spec: RunbookSpec | None = None) -> dict[str, Any]:
    """The night of ``loaded`` on ``inventory``, forecast from the runs of the same runbook (on ``from_env``).

    The window is the runbook's: the candidate ``window`` asked for, else the first still open (its start
    is the night's start, its end and latest PNR what the night must hold), unless ``start`` or
    ``window_end`` are given. With ``changes`` (what-if), the answer carries the unchanged night beside.
    ``spec``: the runbook as the core sees it, when the caller has converted it already.
    """
    from cutover.core.montecarlo import forecast_night  # numpy: only for commands that forecast

    if not 100 <= samples <= 1_000_000:
        raise InputError(f"--samples {samples} is out of range", hint="between 100 and 1,000,000")
    moment = now or datetime.now(timezone.utc)
    chosen = _forecast_window(loaded, window, moment)
    begin = start or (max(moment, parse_time(chosen.start)) if chosen else moment)
    end = window_end or (parse_time(chosen.end) if chosen else None) or (
        datetime.fromisoformat(loaded.runbook.window.end) if loaded.runbook.window and loaded.runbook.window.end
        else None)
    latest_pnr = parse_time(chosen.latest_pnr) if chosen and chosen.latest_pnr else None
    spec = spec or to_spec(loaded.runbook)
    plan = planned_durations([p.info for p in plan_cutover(spec, inventory)], spec)
    source_env = from_env or inventory.name
    selection = select_runs(journal, loaded.runbook.name, source_env, last=last)

    def night(asked: Sequence[Change]) -> dict[str, Any]:
        return forecast_night(plan, selection.runs, start=begin, window_end=end, samples=samples, changes=asked,
                              latest_pnr=latest_pnr)

    result = night(changes)
    if changes:
        unchanged = night(())
        result["baseline"] = {key: unchanged[key] for key in ("end", "duration_s", "backup_mode_s", "pnr_reached",
                                                               "holds", "critical_step", "outcome")}
    later = _later_window(loaded, chosen) if result["holds"]["window"] is False else None
    return {"runbook": loaded.runbook.name, "env": inventory.name, "measured_on": source_env,
            "left_out": selection.left_out_json(), "window": chosen.to_payload() if chosen else None,
            "next_window": later.to_payload() if later else None, **result}


def _later_window(loaded: LoadedRunbook, chosen: WindowInfo | None) -> WindowInfo | None:
    """The fallback night a forecast that misses its window offers: the runbook's next candidate window."""
    if chosen is None:
        return None
    return next((w for w in window_infos(loaded.runbook) if w.number > chosen.number), None)


def _forecast_window(loaded: LoadedRunbook, number: int | None, now: datetime) -> WindowInfo | None:
    """The window a forecast weighs: the one asked for (even closed: a night can be looked back on), else the
    first still open (None when all have closed: the forecast then starts now, without a window)."""
    if number is not None:
        return numbered_window(loaded, number)
    return first_open_window(window_infos(loaded.runbook), now)


def measured_p90s(journal: Journal, runbook: str, env: str, *, exclude: str | None = None
                  ) -> tuple[dict[str, float], dict[str, float]]:
    """Per step, the P90 of its measured durations and of its measured rollbacks (the window check uses them)."""
    runs = select_runs(journal, runbook, env, exclude=exclude).runs
    rows = summarise(runs) if runs else []
    durations = {row["id"]: row["p90_s"] for row in rows if row["p90_s"] is not None}
    rollbacks = {row["id"]: row["rollback"]["p90_s"] for row in rows if row["rollback"]}
    return durations, rollbacks


def planned_durations(infos: list[StepInfo], spec: RunbookSpec) -> list[PlannedDuration]:
    """What the forecast models of each planned step: its targets (frozen in ``infos``) and its concurrency."""
    from cutover.core.montecarlo import PlannedDuration  # numpy: only for commands that forecast

    concurrency = {s.id: s.concurrency for s in spec.steps if isinstance(s, ActionStep)}
    return [PlannedDuration(info, concurrency.get(info.id, 1)) for info in infos]


def past_runs(journal: Journal, state: RunState) -> Selection:
    """The other runs of this run's runbook on its environment, measured: what its forecast draws from."""
    selection = select_runs(journal, state.runbook_name, state.env)
    return Selection([m for m in selection.runs if m.run_id != state.run_id],
                     [m for m in selection.left_out if m.run_id != state.run_id])


class LiveForecasts:
    """Live forecasts asked again and again (a board, the notifier): each run's past runs are measured once,
    and its runbook converted once.

    The runs a forecast draws from do not change while a run goes on;
    measuring them reads and folds every one of them. A run's runbook is fixed when it is created.
    """

    def __init__(self, journal: Journal, specs: Mapping[str, RunbookSpec] | None = None) -> None:
        """``specs``: runs' runbooks already converted, by run id (the command that checked the runbook has it)."""
        self.journal = journal
        self._past: dict[str, Selection] = {}
        self._specs: dict[str, RunbookSpec] = dict(specs or {})

    def of(self, state: RunState, *, now: datetime) -> Outlook | None:
        if state.is_finished():
            return None
        if state.run_id not in self._past:
            self._past[state.run_id] = past_runs(self.journal, state)
        return live_forecast(self.journal, state, now=now, runs=self._past[state.run_id], spec=self.spec(state))

    def spec(self, state: RunState) -> RunbookSpec:
        """The run's runbook as journalled (``runbook_of``), converted the first time it is asked for."""
        if state.run_id not in self._specs:
            self._specs[state.run_id] = runbook_of(state)
        return self._specs[state.run_id]


def live_forecast(journal: Journal, state: RunState, *, now: datetime, samples: int = 1000,
                  runs: Selection | None = None, spec: RunbookSpec | None = None) -> Outlook | None:
    """The rest of a run under way, forecast from measurements: what is done is done, the remainder is drawn.

    ``runs`` (from ``past_runs``) and ``spec`` (``runbook_of``): the past runs already measured and the
    run's runbook already converted (``LiveForecasts`` keeps them).
    """
    if state.is_finished():
        return None
    from cutover.core.montecarlo import forecast_night  # numpy: only for commands that forecast

    plan = planned_durations(state.steps, spec if spec is not None else runbook_of(state))
    remaining = [p for p in plan if p.info.id not in state.completed]
    selection = past_runs(journal, state) if runs is None else runs
    measured = selection.runs
    window_end = datetime.fromisoformat(state.window_end) if state.window_end else None
    window = window_of(state)  # the window the run is in: a night postponed starts when its window opens
    start = max(now, parse_time(window.start)) if window is not None and not state.acted else now
    latest_pnr = parse_time(window.latest_pnr) if window is not None and window.latest_pnr else None
    ahead = forecast_night(remaining, measured, start=start, window_end=None, samples=samples)
    whole = forecast_night(plan, measured, start=start, window_end=window_end, samples=samples,
                           latest_pnr=latest_pnr)
    pnr_deadline = whole["pnr_deadline"] if state.point_of_no_return_passed is None else None
    # the source of what is left to run: past runs that measured none of it do not make it "measured"
    return Outlook(datetime.fromisoformat(ahead["end"]["p50"]), datetime.fromisoformat(ahead["end"]["p90"]),
                   datetime.fromisoformat(pnr_deadline) if pnr_deadline else None,
                   ahead["source"], ahead["spread_known"], selection.left_out_json())


def window_risk(journal: Journal, loaded: LoadedRunbook, inventory: Inventory, window_end: str, *,
                now: datetime, spec: RunbookSpec | None = None) -> str | None:
    """Why a night started ``now`` would not fit a window ending at ``window_end``, or None if it fits.

    A window end in the past is a typo more often than a choice (a wrong date or
    offset at 3 a.m.); one before the forecast's P90 end means a night more
    likely than not to be cut short by its own window checks.
    """
    end = datetime.fromisoformat(window_end)
    if end <= now:
        return f"the window end ({window_end}) is {_how_long((now - end).total_seconds())} ago"
    outlook = forecast_json(journal, loaded, inventory, from_env=None, last=None, start=now, window_end=end,
                            samples=1000, spec=spec)
    p90 = datetime.fromisoformat(outlook["end"]["p90"])
    if end < p90:
        runs = outlook.get("runs") or []
        source = f"{len(runs)} measured run(s)" if runs else "the runbook's expected durations"
        return (f"the window end ({window_end}) is {_how_long((p90 - end).total_seconds())} before the forecast's "
                f"P90 end ({p90.isoformat(timespec='seconds')}, from {source})")
    return None


def _how_long(seconds: float) -> str:
    """7 h, 40 min, 12 s: the size of a gap as a person says it."""
    if seconds >= 5400:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def replay_json(journal: Journal, run_id: str, changes: Sequence[Change] = ()) -> dict[str, Any]:
    """`cutover replay`: the recorded night again in simulated time, with ``changes``, beside what happened.

    The board's clocks count on the same measurements as the night's own window
    check: the P90s of the other runs of its runbook on its environment.
    """
    from cutover.core.replay import Durations, compare_json, replay_night

    events = journal.events(run_id)
    if not events:
        raise NotFound(f"no run {run_id!r} in this journal", hint="`cutover runs` lists the runs")
    state = fold(events)
    durations = Durations(*measured_p90s(journal, state.runbook_name, state.env, exclude=run_id))
    replay = replay_night(events, runbook_of(state), changes=changes, durations=durations)
    return {"run_id": run_id, "runbook": state.runbook_name, "env": state.env, "label": state.label,
            "changes": [c.describe() for c in changes], **compare_json(events, replay, durations)}


@dataclass(frozen=True)
class GateOutlook:
    """What a gate's forecast built-ins weigh (ISO 8601 times): the rest of the run's P90 end, the PNR's."""

    end_p90: str
    pnr_reached_p90: str | None  # None once the point of no return is passed, or when the runbook has none
    pnr_deadline: str | None
    window_end: str | None
    source: str  # what the estimate draws from (``timings.measured_source``)


def gate_outlook(journal: Journal, state: RunState, *, now: datetime, samples: int = 1000,
                 spec: RunbookSpec | None = None) -> GateOutlook:
    """What the forecast built-ins of a gate's criteria weigh, as the run stands at the gate.

    The P90 end of the rest of the run, the P90 moment the point of no return is
    reached (now, when the run stands at it) and its deadline, from the same
    measurements as the live forecast. ``spec``: the run's runbook, when the caller has it converted already.
    """
    from cutover.core.montecarlo import forecast_night  # numpy: only for commands that forecast

    plan = planned_durations(state.steps, spec if spec is not None else runbook_of(state))
    remaining = [p for p in plan if p.info.id not in state.completed]
    measured = past_runs(journal, state).runs
    window_end = datetime.fromisoformat(state.window_end) if state.window_end else None
    window = window_of(state)  # the window the run is in, as the live forecast weighs it
    start = max(now, parse_time(window.start)) if window is not None and not state.acted else now
    latest_pnr = parse_time(window.latest_pnr) if window is not None and window.latest_pnr else None
    ahead = forecast_night(remaining, measured, start=start, window_end=None, samples=samples)
    whole = forecast_night(plan, measured, start=start, window_end=window_end, samples=samples,
                           latest_pnr=latest_pnr)
    pnr_at = next((i for i, p in enumerate(remaining) if p.info.point_of_no_return), None)
    reached = None
    if pnr_at is not None and state.point_of_no_return_passed is None:
        before = remaining[:pnr_at]
        reached = forecast_night(before, measured, start=start, window_end=None, samples=samples)["end"]["p90"] \
            if before else start.isoformat()
    deadline = whole["pnr_deadline"] if state.point_of_no_return_passed is None else None
    return GateOutlook(end_p90=ahead["end"]["p90"], pnr_reached_p90=reached, pnr_deadline=deadline,
                       window_end=state.window_end, source=ahead["source"])
