"""The steps the engine executes: frozen, typed, free of the YAML and pydantic they came from.

``cutover.planning.plan`` turns a validated runbook (the pydantic boundary model of
``cutover.model.runbook``) into a ``RunbookSpec``; the engine, the use-cases and the
executors only ever see these. An ``Action`` is one thing to do (a step's main
action, its verification or its rollback), of one of three kinds:

- ``command``: ``run`` with /bin/sh on the controller;
- ``ssh``: ``command`` on each target over SSH;
- ``playbook``: ``playbook`` (with ``extra_vars`` and ``tags``) through Ansible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any, Literal, get_args

from cutover.errors import NotFound

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

if TYPE_CHECKING:  # criteria -> records -> actions -> steps: the type only, at run time
    from cutover.core.criteria import Criterion

ActionKind = Literal["command", "ssh", "playbook"]
ACTION_KINDS: tuple[ActionKind, ...] = get_args(ActionKind)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    run: str = ""  # command
    command: str = ""  # ssh
    playbook: str = ""  # playbook
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # the runbook's `env:`, added to the command's environment

    def describe(self) -> str:
        if self.kind == "playbook":
            return f"playbook {self.playbook}" + (f" {dict(self.extra_vars)}" if self.extra_vars else "")
        return self.run if self.kind == "command" else self.command


@dataclass(frozen=True)
class ActionStep:
    id: str
    title: str
    action: Action
    verify: Action | None
    rollback: Action | None
    rollback_reason: str | None = None
    for_each: str | None = None
    concurrency: int = 10
    failure_budget: int = 0
    timeout: float | None = None
    idempotent: bool = False
    read_only: bool = False
    sets_mode: str | None = None
    serves: str | None = None
    expected_duration: float | None = None
    rollback_expected_duration: float | None = None

    @property
    def kind(self) -> str:
        return self.action.kind

    @property
    def label(self) -> str:
        return self.title or self.id


@dataclass(frozen=True)
class Approver:
    name: str
    role: str
    id: str | None = None  # what an approval names and an SSH key is listed for (no spaces)

    @property
    def key(self) -> str:
        """How an approval names this approver: the id, or the name for runbooks without ids."""
        return self.id or self.name

    @property
    def label(self) -> str:
        """How a hint or a prompt shows the approver: ``cm-duty-1 (Claire Martin)``, or the name alone."""
        return f"{self.id} ({self.name})" if self.id else self.name


@dataclass(frozen=True)
class GateStep:
    """A go/no-go: the run waits until enough named approvers say go."""

    id: str
    title: str
    approvers: tuple[Approver, ...]
    quorum: int = 1
    required_roles: tuple[str, ...] = ()
    point_of_no_return: bool = False
    question: str | None = None
    expected_duration: float | None = None
    kind: str = "gate"
    criteria: tuple[Criterion, ...] = ()  # the evidence the gate is decided on (cutover.core.criteria)

    @property
    def label(self) -> str:
        return self.title or self.id

    def approver(self, name: str) -> Approver | None:
        """By id, or by name (lab runbooks, and runs created before approvers had ids)."""
        return next((a for a in self.approvers if a.id == name), None) or \
            next((a for a in self.approvers if a.name == name), None)


Step = ActionStep | GateStep


@dataclass(frozen=True)
class RunbookSpec:
    name: str
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise NotFound(f"runbook {self.name!r} has no step {step_id!r}",
                       hint=f"steps: {', '.join(s.id for s in self.steps)}")

    def action_step(self, step_id: str) -> ActionStep:
        step = self.step(step_id)
        assert isinstance(step, ActionStep), f"{step_id} is a gate"
        return step

    def gate(self, step_id: str) -> GateStep | None:
        step = self.step(step_id)
        return step if isinstance(step, GateStep) else None

    def gates(self) -> list[GateStep]:
        return [s for s in self.steps if isinstance(s, GateStep)]

    def criteria_at(self, gate_id: str) -> tuple[Criterion, ...]:
        """The criteria weighed at a gate: its own; at the point of no return, every earlier gate's too."""
        gate = self.gate(gate_id)
        if gate is None:
            return ()
        if not gate.point_of_no_return:
            return gate.criteria
        earlier: list[Criterion] = []
        for step in self.steps:
            if step.id == gate_id:
                break
            if isinstance(step, GateStep):
                earlier += step.criteria
        return (*earlier, *gate.criteria)
