"""Measuring a gate's criteria: the probes run on the controller, the built-ins fed from the journal.

``GateEvidence`` is the engine's ``measure_criteria``: given a gate's criteria
and the run's state, one measurement each (``cutover.core.criteria`` judges
them). Probes that run something do so on the controller, read-only:

- ``command``: the argv, without a shell, in the project folder, with the
  clean environment of ``cutover.executors.environment`` plus the run's
  ``CUTOVER_*`` variables and the probe's ``env:``; its standard output is a
  number or JSON (``value:`` picks a field); a non-zero exit is no value;
- ``playbook``: through the playbook executor (strict host keys, the same
  redaction), on ``localhost`` only (``validate`` refuses any other host); the
  value is what the playbook gives ``set_stats`` as ``cutover_value`` (and
  ``cutover_detail``, shown beside it). In a lab that is up, the playbook gets
  ``cutover_lab_dir`` so it reads the lab's own traffic and weather feed.

Probes run concurrently (a gate with two playbooks waits for the slower, not
for both); a probe that fails or times out is a measurement without a value,
which fails its criterion, said why.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutover.core import criteria as c
from cutover.core.actions import ActionRequest, Phase
from cutover.core.engine import DriveOptions
from cutover.core.events import Journal
from cutover.core.records import CallsCounted, MeasuredCriterion
from cutover.core.state import RunState, fold
from cutover.core.steps import Action
from cutover.executors.environment import inherited
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor

if TYPE_CHECKING:
    from cutover.app.history import LiveForecasts

OUTPUT_SHOWN = 300  # characters of a failing probe's output kept in its detail


@dataclass(frozen=True)
class Value:
    value: Any
    detail: str = ""


class GateEvidence:
    """The engine's ``measure_criteria`` for one drive."""

    def __init__(self, journal: Journal, inventory: Inventory, project_dir: Path, state_dir: Path, *,
                 redactor: Redactor | None = None, lab_dir: Path | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 forecasts: LiveForecasts | None = None) -> None:
        """``forecasts``: the drive's one ``LiveForecasts``, shared with its board and notifier (made if none)."""
        self.journal = journal
        self.inventory = inventory
        self.project_dir = project_dir
        self.state_dir = state_dir
        self.redact = redactor or Redactor.of(inventory.secrets)
        self.lab_dir = lab_dir
        self.clock = clock
        self._forecasts = forecasts

    def __call__(self, criteria: Sequence[c.Criterion], state: RunState) -> list[MeasuredCriterion]:
        if any(criterion.probe.kind == "playbook" for criterion in criteria):
            # imported here, once: two probe threads importing ansible-runner at once see it half-initialised
            import ansible_runner.interface  # noqa: F401
        with ThreadPoolExecutor(max_workers=max(1, len(criteria)), thread_name_prefix="probe") as pool:
            futures = [pool.submit(self.measure, criterion, state) for criterion in criteria]
            return [future.result() for future in futures]

    def measure(self, criterion: c.Criterion, state: RunState) -> MeasuredCriterion:
        try:
            found = self._value(criterion, state)
        except Exception as exc:  # noqa: BLE001 - a probe that breaks is evidence missing, said why
            found = Value(None, f"the probe failed: {type(exc).__name__}: {exc}")
        return criterion.judge(found.value, self.redact(found.detail))

    def _value(self, criterion: c.Criterion, state: RunState) -> Value:
        kind = criterion.probe.kind
        if kind == "command":
            return self._command(criterion, state)
        if kind == "playbook":
            return self._playbook(criterion, state)
        if kind == "rehearsals":
            return Value(*c.rehearsals_passed(past_runs(self.journal), runbook=state.runbook_name,
                                              wave=state.wave_group, exclude=state.run_id))
        if kind in ("forecast", "pnr_margin"):
            return self._forecast(kind, state)
        if kind == "programme":
            return Value(*self._programme(state))
        return Value(None, f"unknown probe kind {kind!r}")

    # ------------------------------------------------------------------ probes that run something

    def _environment(self, criterion: c.Criterion, state: RunState, gate: str) -> dict[str, str]:
        return {"CUTOVER_RUN_ID": state.run_id, "CUTOVER_STEP": gate, "CUTOVER_ENV": self.inventory.name,
                "CUTOVER_CRITERION": criterion.id, "CUTOVER_PROJECT_DIR": str(self.project_dir),
                **({"CUTOVER_LAB_DIR": str(self.lab_dir)} if self.lab_dir else {}), **criterion.probe.env}

    def _command(self, criterion: c.Criterion, state: RunState) -> Value:
        probe = criterion.probe
        env = {**inherited(), **self._environment(criterion, state, _gate_of(state))}
        try:
            done = subprocess.run(list(probe.argv), cwd=self.project_dir, env=env, capture_output=True, text=True,
                                  timeout=probe.timeout, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            return Value(None, f"{probe.argv[0]}: no such program")
        except subprocess.TimeoutExpired:
            return Value(None, f"no answer within {probe.timeout:g} s")
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            return Value(None, f"exit {done.returncode}" + (f": {said[-1][:OUTPUT_SHOWN]}" if said else ""))
        return read_output(done.stdout, probe.value)

    def _playbook(self, criterion: c.Criterion, state: RunState) -> Value:
        from cutover.executors.registry import build_executor  # Ansible: only for gates with playbook probes

        probe = criterion.probe
        gate = _gate_of(state)
        extra = {**probe.extra_vars, **({"cutover_lab_dir": str(self.lab_dir)} if self.lab_dir else {})}
        request = ActionRequest(
            run_id=state.run_id, step_id=f"{gate}-criterion-{criterion.id}", phase=Phase.VERIFY,
            action=Action("playbook", playbook=probe.playbook, extra_vars=extra, env=dict(probe.env)),
            targets=(None,), timeout=probe.timeout, environment=self._environment(criterion, state, gate))
        executor = build_executor("playbook", self.project_dir, self.inventory, self.state_dir, self.redact)
        try:
            result = executor.run(request)[None]
        finally:
            executor.close()
        if not result.ok:
            return Value(None, f"playbook {probe.playbook}: {result.outcome.value}: {result.detail}")
        stats = result.summary.get("set_stats") or {}
        if "cutover_value" not in stats:
            return Value(None, f"playbook {probe.playbook} gave no cutover_value (set_stats)")
        return Value(stats["cutover_value"], str(stats.get("cutover_detail", "")))

    # ------------------------------------------------------------------ built-ins

    def _forecast(self, kind: str, state: RunState) -> Value:
        from cutover.app.history import LiveForecasts, gate_outlook  # numpy: only for gates that weigh the forecast

        if self._forecasts is None:
            self._forecasts = LiveForecasts(self.journal)  # the run's runbook converted once for every gate
        outlook = gate_outlook(self.journal, state, now=self.clock(), spec=self._forecasts.spec(state))
        when = (lambda text: datetime.fromisoformat(text) if text else None)
        if kind == "forecast":
            return Value(*c.forecast_slack(when(outlook.end_p90), when(outlook.window_end), outlook.source))
        return Value(*c.pnr_slack(when(outlook.pnr_reached_p90), when(outlook.pnr_deadline), outlook.source))

    def _programme(self, state: RunState) -> tuple[int, str]:
        from cutover.app.programme import environment_runs, positions

        found = positions(self.inventory, environment_runs(self.journal, self.inventory))
        samus = self.inventory.samus
        wave = int(state.wave_group[4:]) if state.wave_group and state.wave_group[4:].isdigit() else None
        return c.programme_misplaced({h: p.state for h, p in found.items()}, {h: s.wave for h, s in samus.items()},
                                     {h: s.code for h, s in samus.items()}, wave=wave, inside=state.wave_samus)


def _gate_of(state: RunState) -> str:
    """The gate the run stands at: the first step not yet a rollback point."""
    return next((s.id for s in state.steps if s.id not in state.completed), "gate")


def read_output(text: str, field: str | None) -> Value:
    """A probe's output: a number, or JSON (a field of it when ``field`` names one)."""
    stripped = text.strip()
    try:
        data: Any = json.loads(stripped)
    except ValueError:
        return Value(None, f"the output is neither a number nor JSON: {stripped[:80]!r}")
    for name in field.split(".") if field else ():
        if not isinstance(data, Mapping) or name not in data:
            return Value(None, f"the output has no field {field!r}")
        data = data[name]
    if isinstance(data, (Mapping, list)):
        return Value(None, "the output is JSON without a single value: name its field with `value:`")
    return Value(data)


def past_runs(journal: Journal) -> list[c.PastRun]:
    """Every run of the journal as the ``rehearsals`` built-in weighs it."""
    found = []
    for run_id in journal.runs():
        state = fold(journal.events(run_id))
        lost = state.calls.losses if state.calls is not None else None
        found.append(c.PastRun(run_id, state.runbook_name, state.wave_group, state.kind, state.status.value, lost))
    return found


def lab_call_counter(lab_dir: Path) -> Callable[[], CallsCounted | None]:
    """The lab's call account, read as a run completes (``DriveOptions.count_calls``)."""

    def count() -> CallsCounted | None:
        from cutover.lab.ledger import account_calls

        account = account_calls(lab_dir)
        return CallsCounted(account.placed, account.lost, account.records_missing, account.records_duplicated,
                            source="lab ledger")

    return count


def running_lab_dir(state_dir: Path, inventory: Inventory) -> Path | None:
    """The folder of the lab that is up for this inventory on this state directory, if any."""
    if not inventory.is_lab:
        return None
    from cutover.lab.layout import LabLayout, read_state

    try:
        lab = read_state(LabLayout.under(state_dir))
    except Exception:  # noqa: BLE001 - an unreadable lab description: probes run without the lab's folder
        return None
    return Path(lab.lab_dir) if lab is not None and lab.up and lab.env == inventory.name else None


def with_evidence(options: DriveOptions, journal: Journal, inventory: Inventory, project_dir: Path,
                  state_dir: Path, forecasts: LiveForecasts | None = None) -> DriveOptions:
    """The drive's options with its gates' criteria measured, and its call account journalled in a lab."""
    lab_dir = running_lab_dir(state_dir, inventory)
    evidence = GateEvidence(journal, inventory, project_dir, state_dir, lab_dir=lab_dir, forecasts=forecasts)
    return replace(options, measure_criteria=evidence,
                   count_calls=lab_call_counter(lab_dir) if lab_dir is not None else None)
