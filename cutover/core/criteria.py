"""Go/no-go on evidence: the criteria a gate is decided on, judged, and the built-in probes.

A gate may declare criteria (``cutover.runbook`` validates them). Each names a
probe, what it must show (``min``/``max`` thresholds, or an ``expect``ed
value) and a severity. When the run reaches the gate (and each time a drive
reaches it again, and before the point of no return) the engine has every
criterion measured and journals the measurements (``criteria_measured``).
A ``blocking`` criterion that failed keeps the gate shut whatever the
approvals, until an approver of a required role overrides it, signed like an
approval (``criterion_overridden``). An override names the value it accepted
and covers later measurements no worse than it (a call load re-measured
lower, not higher).

Probes are of two sorts. ``command`` and ``playbook`` run on the controller,
read-only (``cutover.app.criteria`` runs them). The built-ins are pure
functions of data the use-case reads from the journal, and live here:

- ``rehearsals``: how many completed rehearsals of this runbook and wave lost
  no call (their journalled call account);
- ``forecast``: seconds between the forecast P90 end and the window's end;
- ``pnr_margin``: seconds between the forecast P90 moment the point of no
  return is reached and its deadline;
- ``programme``: how many SAMUs outside the wave are not where the programme
  says (earlier waves migrated; later ones not started).

A value that cannot be measured (a probe that failed, no window) is ``None``
and fails its criterion: a gate never passes on missing evidence unless a
person says so, signed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cutover.core.records import MeasuredCriterion
from cutover.core.state import GateState

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

BUILTINS = ("rehearsals", "forecast", "pnr_margin", "programme")
PROBE_KINDS = ("command", "playbook", *BUILTINS)
SEVERITIES = ("blocking", "advisory")
# the built-ins whose values are durations: shown as such, thresholds given as 30m, 1h...
DURATION_PROBES = frozenset({"forecast", "pnr_margin"})


@dataclass(frozen=True)
class Probe:
    """How a criterion is measured. ``kind`` is one of ``PROBE_KINDS``.

    ``command``: ``argv`` run without a shell; its output is JSON or a number.
    ``playbook``: a playbook on the controller; the value is its
    ``set_stats`` ``cutover_value``. ``value`` picks a field of a JSON output
    (``load.calls_per_minute``).
    """

    kind: str
    argv: tuple[str, ...] = ()
    playbook: str = ""
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    value: str | None = None
    timeout: float = 60.0

    @property
    def builtin(self) -> bool:
        return self.kind in BUILTINS

    def describe(self) -> str:
        if self.kind == "command":
            return " ".join(self.argv)
        if self.kind == "playbook":
            return f"playbook {self.playbook}"
        return f"built-in {self.kind}"


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    probe: Probe
    severity: str = "blocking"
    min: float | None = None
    max: float | None = None
    expect: Any = None  # None: no expected value (then min and/or max say what is wanted)

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"

    def expected(self) -> str:
        """What it must show, for people: ``≤ 2``, ``≥ 3``, ``= green``, ``≥ 30m00s``."""
        if self.expect is not None:
            return f"= {_shown(self.expect)}"
        show = _duration if self.probe.kind in DURATION_PROBES else _shown
        parts = ([f"≥ {show(self.min)}"] if self.min is not None else []) + \
                ([f"≤ {show(self.max)}"] if self.max is not None else [])
        return " and ".join(parts)

    def holds(self, value: Any) -> bool:
        if value is None:
            return False
        if self.expect is not None:
            return _same(value, self.expect)
        number = as_number(value)
        if number is None:
            return False
        return (self.min is None or number >= self.min) and (self.max is None or number <= self.max)

    def judge(self, value: Any, detail: str = "") -> MeasuredCriterion:
        """The measurement as journalled: value, what was expected, the verdict and why."""
        if value is None and not detail:
            detail = "could not be measured"
        shown = _duration(as_number(value)) if self.probe.kind in DURATION_PROBES and as_number(value) is not None \
            else None
        return MeasuredCriterion(self.id, self.title, self.severity, _json_value(value), self.expected(),
                                 self.holds(value), detail, self.probe.describe(), shown)

    def covered_by(self, overridden: Any, value: Any) -> bool:
        """Whether an override that accepted ``overridden`` also accepts ``value`` (no worse than it)."""
        if _same(value, overridden):
            return True
        number, accepted = as_number(value), as_number(overridden)
        if self.expect is not None or number is None or accepted is None:
            return False
        if self.min is not None and number < min(accepted, self.min):
            return False
        if self.max is not None and number > max(accepted, self.max):
            return False
        return True


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _same(a: Any, b: Any) -> bool:
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return x == y
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    return a is not None and b is not None and str(a).strip() == str(b).strip()


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    sign, seconds = ("-" if seconds < 0 else ""), abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours}h{minutes:02d}m" if hours else f"{sign}{minutes}m{secs:02d}s"


# ---------------------------------------------------------------------- the gate's decision


@dataclass(frozen=True)
class Accepted:
    """An override as the gate weighs it: the criterion and the value the approver accepted."""

    criterion: str
    value: Any


def unresolved(criteria: Sequence[Criterion], measured: Mapping[str, MeasuredCriterion],
               overrides: Mapping[str, Accepted]) -> list[MeasuredCriterion]:
    """The blocking criteria whose latest measurement failed and that no override covers.

    A blocking criterion never measured counts as failed: the gate does not pass on missing evidence.
    """
    blocked = []
    for criterion in criteria:
        if not criterion.blocking:
            continue
        latest = measured.get(criterion.id) or criterion.judge(None, "not measured")
        if latest.passed:
            continue
        accepted = overrides.get(criterion.id)
        if accepted is not None and criterion.covered_by(accepted.value, latest.value):
            continue
        blocked.append(latest)
    return blocked


def blocked_summary(gate: str, blocked: Sequence[MeasuredCriterion], run_id: str) -> str:
    names = "; ".join(f"{m.criterion} measured {m.shown_value()} (expected {m.expected})"
                      + (f": {m.detail}" if m.detail else "") for m in blocked)
    return (f"go/no-go {gate}: blocking criteria failed, approvals alone do not open it: {names}. "
            f"Fix and `cutover resume {run_id}` (they are measured again), or override each with "
            f"`cutover approve {run_id} {gate} --as ID --override CRITERION --reason TEXT`")


# ---------------------------------------------------------------------- views


def criteria_json(gate: GateState) -> dict[str, Any]:
    """A gate's criteria as last measured, each with its verdict and any override: status, board and report."""
    rows = []
    for measured in gate.criteria.values():
        override = gate.overrides.get(measured.criterion)
        rows.append({**measured.to_payload(), "shown": measured.shown_value(), "verdict": measured.verdict(),
                     "override": None if override is None else {
                         "value": override.value, "reason": override.reason, "approver": override.approver,
                         "approver_id": override.approver_id, "role": override.role, "at": override.at,
                         "signed": override.signed}})
    return {"criteria": rows, "criteria_measured_at": gate.measured_at, "criteria_measurements": gate.measurements}


# ---------------------------------------------------------------------- built-ins (pure)


@dataclass(frozen=True)
class PastRun:
    """What the ``rehearsals`` built-in needs of a run in the journal."""

    run_id: str
    runbook: str
    wave: str | None
    kind: str
    status: str
    calls_lost: int | None  # lost + missing + duplicated records of its journalled call account; None: none


def rehearsals_passed(runs: Sequence[PastRun], *, runbook: str, wave: str | None,
                      exclude: str | None = None) -> tuple[int, str]:
    """Completed rehearsals of ``runbook`` on ``wave`` whose call account shows nothing lost."""
    same = [r for r in runs if r.runbook == runbook and r.wave == wave and r.kind == "rehearsal"
            and r.status == "completed" and r.run_id != exclude]
    clean = [r.run_id for r in same if r.calls_lost == 0]
    lossy = [r.run_id for r in same if r.calls_lost]
    unknown = [r.run_id for r in same if r.calls_lost is None]
    detail = f"{len(clean)} completed with zero lost calls"
    if clean:
        detail += f" ({', '.join(clean[-3:])}{'…' if len(clean) > 3 else ''})"
    if lossy:
        detail += f"; {len(lossy)} lost calls ({', '.join(lossy[-3:])})"
    if unknown:
        detail += f"; {len(unknown)} without a call account ({', '.join(unknown[-3:])})"
    return len(clean), detail


def forecast_slack(end_p90: datetime | None, window_end: datetime | None, source: str = "") -> tuple[float | None, str]:
    """Seconds from the forecast P90 end to the window's end (negative: the window is missed)."""
    if window_end is None:
        return None, "the run has no window end (runbook `window:` or `--window-end`)"
    if end_p90 is None:
        return None, "no forecast"
    slack = (window_end - end_p90).total_seconds()
    return slack, f"P90 end {end_p90.isoformat(timespec='seconds')}, window end " \
                  f"{window_end.isoformat(timespec='seconds')}" + (f" ({source})" if source else "")


def pnr_slack(reached_p90: datetime | None, deadline: datetime | None, source: str = "") -> tuple[float | None, str]:
    """Seconds from the forecast P90 moment the PNR is reached to the PNR deadline."""
    if deadline is None:
        return None, "no point-of-no-return deadline (no window end, no PNR gate, or the PNR is passed)"
    if reached_p90 is None:
        return None, "no forecast"
    slack = (deadline - reached_p90).total_seconds()
    return slack, f"PNR reached at P90 {reached_p90.isoformat(timespec='seconds')}, deadline " \
                  f"{deadline.isoformat(timespec='seconds')}" + (f" ({source})" if source else "")


def programme_misplaced(states: Mapping[str, str], waves: Mapping[str, int | None], codes: Mapping[str, str],
                        *, wave: int | None, inside: Sequence[str]) -> tuple[int, str]:
    """SAMUs outside the wave not where the programme says they should be tonight.

    ``states``: host -> position (``migrated``, ``not started``, ``in progress``,
    ``in backup``: ``cutover.app.programme``); ``waves``: host -> wave number.
    Before wave N, every SAMU of an earlier wave is migrated; every other SAMU
    outside the wave is still on legacy (not started); none is in the middle of
    another night or left in backup mode.
    """
    wrong = []
    for host, position in sorted(states.items()):
        if host in inside:
            continue
        own = waves.get(host)
        earlier = wave is not None and own is not None and own < wave
        expected = ("migrated",) if earlier else ("not started",)
        if position not in expected:
            wrong.append(f"{codes.get(host, host)} {position} (expected {' or '.join(expected)})")
    detail = f"{len(wrong)} SAMU(s) outside the wave misplaced" + (f": {'; '.join(wrong[:5])}" if wrong else "") \
        + ("…" if len(wrong) > 5 else "")
    return len(wrong), detail
