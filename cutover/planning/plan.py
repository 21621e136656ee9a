"""Planning: the validated runbook as the engine's frozen steps, and every step x target in execution order.

``to_spec`` turns the pydantic boundary model (``cutover.model.runbook``) into the
core's frozen dataclasses (``cutover.core.steps``): the only place the two
meet. ``plan_cutover`` resolves each step's ``for_each`` against the inventory
once; the result is frozen into the run when it is created, so a later
inventory edit never changes a night already under way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutover.core.criteria import Criterion, Probe
from cutover.core.records import WindowInfo
from cutover.core.state import StepInfo
from cutover.core.steps import Action, ActionStep, Approver, GateStep, RunbookSpec, Step
from cutover.errors import InputError
from cutover.model import runbook as model
from cutover.model.inventory import Inventory


def to_spec(runbook: model.Runbook) -> RunbookSpec:
    """The engine's view of a validated runbook."""
    return RunbookSpec(runbook.name, tuple(_step(step) for step in runbook.steps))


def _step(step: model.Step) -> Step:
    if isinstance(step, model.GateStep):
        return GateStep(id=step.id, title=step.label, approvers=tuple(Approver(a.name, a.role, a.id) for a in step.approvers),
                        quorum=step.quorum, required_roles=tuple(step.required_roles),
                        point_of_no_return=step.point_of_no_return, question=step.question,
                        expected_duration=step.expected_duration,
                        criteria=tuple(_criterion(c) for c in step.criteria))
    return ActionStep(
        id=step.id, title=step.label, action=_action(step.action()), verify=_optional(step.verify),
        rollback=_optional(step.rollback), rollback_reason=step.rollback_reason, for_each=step.for_each,
        concurrency=step.concurrency, failure_budget=step.failure_budget, timeout=step.timeout,
        idempotent=step.idempotent, read_only=step.read_only, sets_mode=step.sets_mode, serves=step.serves,
        expected_duration=step.expected_duration, rollback_expected_duration=step.rollback_expected_duration)


def _criterion(criterion: model.CriterionModel) -> Criterion:
    probe = criterion.probe
    kind = probe.builtin or ("command" if probe.command is not None else "playbook")
    return Criterion(criterion.id, criterion.title,
                     Probe(kind, argv=tuple(probe.command or ()), playbook=probe.playbook or "",
                           extra_vars=dict(probe.extra_vars), env=dict(probe.env), value=probe.value,
                           timeout=probe.timeout),
                     severity=criterion.severity, min=criterion.min, max=criterion.max, expect=criterion.expect)


def _action(action: model.Action) -> Action:
    env = dict(action.env)
    if isinstance(action, model.PlaybookAction):
        return Action("playbook", playbook=action.playbook, extra_vars=dict(action.extra_vars), tags=tuple(action.tags),
                      env=env)
    if isinstance(action, model.SshAction):
        return Action("ssh", command=action.command, env=env)
    if isinstance(action, model.CommandAction):
        return Action("command", run=action.run, env=env)
    raise TypeError(f"no core action for {type(action).__name__}")  # a kind the schema has and the core has not


def _optional(action: model.Action | None) -> Action | None:
    return None if action is None else _action(action)


@dataclass(frozen=True)
class PlannedStep:
    info: StepInfo
    step: Step

    def to_json(self, inventory: Inventory) -> dict[str, Any]:
        info = self.info
        targets = None
        if info.targets is not None:
            targets = [{"target": t, "samu_code": inventory.samus[t].code if t in inventory.samus else None}
                       for t in info.targets]
        return {"id": info.id, "kind": info.kind, "title": info.title, "targets": targets,
                "idempotent": info.idempotent, "expected_duration": info.expected_duration,
                "rollback_expected_duration": info.rollback_expected_duration, **_step_json(self.step)}


def _step_json(step: Step) -> dict[str, Any]:
    if isinstance(step, GateStep):
        return {"action": None, "verify": None, "rollback": None, "rollback_reason": None, "concurrency": None,
                "failure_budget": None,
                "gate": {"approvers": [{"name": a.name, "role": a.role, **({"id": a.id} if a.id else {})}
                                       for a in step.approvers],
                         "quorum": step.quorum, "required_roles": list(step.required_roles),
                         "point_of_no_return": step.point_of_no_return}}
    fans_out = step.for_each is not None
    return {"action": step.action.describe(), "verify": step.verify.describe() if step.verify else None,
            "rollback": step.rollback.describe() if step.rollback else None, "rollback_reason": step.rollback_reason,
            "concurrency": step.concurrency if fans_out else None,
            "failure_budget": step.failure_budget if fans_out else None, "gate": None}


def plan_cutover(spec: RunbookSpec, inventory: Inventory) -> list[PlannedStep]:
    return [PlannedStep(_info(step, inventory), step) for step in spec.steps]


def _info(step: Step, inventory: Inventory) -> StepInfo:
    if isinstance(step, GateStep):
        return StepInfo(id=step.id, kind="gate", title=step.label, targets=None,
                        point_of_no_return=step.point_of_no_return, expected_duration=step.expected_duration)
    targets = inventory.resolve_targets(step.for_each) if step.for_each else None
    return StepInfo(
        id=step.id, kind=step.kind, title=step.label, targets=tuple(targets) if targets is not None else None,
        idempotent=step.idempotent, has_verify=step.verify is not None, has_rollback=step.rollback is not None,
        expected_duration=step.expected_duration, rollback_expected_duration=step.rollback_expected_duration,
        sets_mode=step.sets_mode, serves=step.serves,
    )


def window_infos(runbook: model.Runbook) -> tuple[WindowInfo, ...]:
    """The runbook's candidate windows as the core knows them, numbered from 1."""
    return tuple(WindowInfo(number, w.start, w.end, w.latest_pnr)
                 for number, w in enumerate(runbook.windows or (), start=1))


def numbered_window(loaded: model.LoadedRunbook, number: int) -> WindowInfo:
    """The runbook's candidate window ``number`` (`--window N`); refused (exit 2) when it has none such."""
    windows = window_infos(loaded.runbook)
    found = next((w for w in windows if w.number == number), None)
    if found is None:
        raise InputError(f"--window {number}: runbook {loaded.runbook.name!r} has {len(windows) or 'no'} "
                         "candidate window(s)",
                         hint="its `windows:` are numbered from 1" if windows else "declare them under `windows:`")
    return found
