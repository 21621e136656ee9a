"""Planning: every step x target in execution order, with what undoes it.

``plan_cutover`` resolves each step's ``for_each`` against the inventory once;
the result is frozen into the run when it is created, so a later inventory
edit never changes a night already under way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutover.core.state import StepInfo
from cutover.inventory import Inventory
from cutover.runbook import GateStep, Runbook


@dataclass(frozen=True)
class PlannedStep:
    info: StepInfo
    action: str | None
    verify: str | None
    rollback: str | None
    rollback_reason: str | None
    concurrency: int | None
    failure_budget: int | None
    gate: dict[str, Any] | None

    def to_json(self, inventory: Inventory) -> dict[str, Any]:
        info = self.info
        targets = None
        if info.targets is not None:
            targets = [{"target": t, "samu_code": inventory.samus[t].code if t in inventory.samus else None}
                       for t in info.targets]
        return {
            "id": info.id, "kind": info.kind, "title": info.title, "targets": targets,
            "action": self.action, "verify": self.verify, "rollback": self.rollback,
            "rollback_reason": self.rollback_reason, "idempotent": info.idempotent,
            "concurrency": self.concurrency, "failure_budget": self.failure_budget,
            "expected_duration": info.expected_duration,
            "rollback_expected_duration": info.rollback_expected_duration, "gate": self.gate,
        }


def plan_cutover(runbook: Runbook, inventory: Inventory) -> list[PlannedStep]:
    return [_plan_step(step, inventory) for step in runbook.steps]


def _plan_step(step: Any, inventory: Inventory) -> PlannedStep:
    if isinstance(step, GateStep):
        info = StepInfo(id=step.id, kind="gate", title=step.label, targets=None,
                        point_of_no_return=step.point_of_no_return, expected_duration=step.expected_duration)
        gate = {"approvers": [a.model_dump() for a in step.approvers], "quorum": step.quorum,
                "required_roles": step.required_roles, "point_of_no_return": step.point_of_no_return}
        return PlannedStep(info, None, None, None, None, None, None, gate)
    targets = inventory.resolve_targets(step.for_each) if step.for_each else None
    info = StepInfo(
        id=step.id, kind=step.kind, title=step.label, targets=tuple(targets) if targets is not None else None,
        idempotent=step.idempotent, has_verify=step.verify is not None, has_rollback=step.rollback is not None,
        expected_duration=step.expected_duration, rollback_expected_duration=step.rollback_expected_duration,
        sets_mode=step.sets_mode,
    )
    return PlannedStep(
        info, step.action().describe(), step.verify.describe() if step.verify else None,
        step.rollback.describe() if step.rollback else None, step.rollback_reason,
        step.concurrency if step.for_each else None, step.failure_budget if step.for_each else None, None,
    )
