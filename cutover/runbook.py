"""Runbooks: the cutover night as data, validated before anything runs.

A runbook is a YAML file of ordered steps. Step kinds form a discriminated
union on ``kind``:

- ``command``: a local command on the controller (once, or once per target);
- ``ssh``: a command on each target host, through paramiko;
- ``playbook``: an Ansible playbook, one ansible-runner run per batch of targets;
- ``gate``: a go/no-go that needs named approvers (a quorum, roles), possibly
  the point of no return.

An action step may fan out over an inventory group (``for_each``) with a
``concurrency`` limit and a ``failure_budget``; it has an optional ``verify``
and a ``rollback`` (actions whose ``kind`` defaults to the step's), or
``rollback: none`` with a ``rollback_reason``. A new action kind is one
action model, one step model, and their place in the unions below.

``load_runbook`` reports every problem with its file and line; checks that
need the inventory (unknown groups or hosts) run in ``check_against``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cutover.errors import NotFound, Problem, ValidationError
from cutover.inventory import Inventory
from cutover.yamlsource import YamlDocument, parse_yaml, problems_from_pydantic

STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DURATION = re.compile(r"^\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m)?\s*(?:(?P<s>\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> float:
    """'90', 90, '30s', '5m', '1h30m' -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h30m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        match = _DURATION.match(text)
        if text.replace(".", "", 1).isdigit():
            seconds = float(text)
        elif match and any(match.groupdict().values()):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            seconds = parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
        else:
            raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 5m, 1h30m or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, pydantic.BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- actions


class CommandAction(_Model):
    """A local command on the controller, run by /bin/sh in the project folder.

    When the step fans out, it runs once per target with CUTOVER_TARGET (and,
    for a SAMU, CUTOVER_SAMU_CODE) in its environment.
    """

    kind: Literal["command"] = "command"
    run: str = Field(min_length=1)

    def describe(self) -> str:
        return self.run


class SshAction(_Model):
    """A shell command on each target host, over SSH with strict host-key checking."""

    kind: Literal["ssh"] = "ssh"
    command: str = Field(min_length=1)

    def describe(self) -> str:
        return self.command


class PlaybookAction(_Model):
    """An Ansible playbook from the project's playbooks/ folder, run through ansible-runner.

    Fanned out, one Ansible run covers the whole batch of targets (``--limit``),
    Ansible's forks (the step's ``concurrency``) doing the parallel work.
    """

    kind: Literal["playbook"] = "playbook"
    playbook: str = Field(min_length=1)
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)

    @field_validator("playbook")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("name a playbook inside the project's playbooks/ folder, e.g. backup_mode.yml")
        return value

    def describe(self) -> str:
        return f"playbook {self.playbook}" + (f" {self.extra_vars}" if self.extra_vars else "")


ACTION_KINDS: tuple[type[_Model], ...] = (CommandAction, SshAction, PlaybookAction)
Action = Annotated[Union[CommandAction, SshAction, PlaybookAction], Field(discriminator="kind")]


# ----------------------------------------------------------------------------- steps


class Approver(_Model):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class _StepBase(_Model):
    id: str
    title: str | None = None
    expected_duration: Duration | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError(f"step id {value!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @property
    def label(self) -> str:
        return self.title or self.id


class _ActionStep(_StepBase):
    for_each: str | None = None
    concurrency: int = Field(default=10, ge=1, le=1000)
    failure_budget: int = Field(default=0, ge=0)
    timeout: Duration | None = None
    idempotent: bool = False
    verify: Action | None = None
    rollback: Action | None
    rollback_reason: str | None = None
    rollback_expected_duration: Duration | None = None
    # the mode a SAMU is in once this step succeeded on it: the live view and the
    # reports measure each SAMU's time in backup mode from these marks
    sets_mode: Literal["backup", "nominal"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_action_kinds(cls, data: Any) -> Any:
        """verify/rollback are actions of the step's own kind unless they say otherwise."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("verify", "rollback"):
            value = data.get(name)
            if isinstance(value, dict) and "kind" not in value:
                data[name] = {"kind": data.get("kind"), **value}
            if name == "rollback" and isinstance(value, str) and value.strip().lower() == "none":
                data[name] = None
        return data

    @model_validator(mode="after")
    def _rollback_declared(self) -> _ActionStep:
        if self.rollback is None and not (self.rollback_reason or "").strip():
            raise ValueError("`rollback: none` needs a `rollback_reason` saying why nothing has to be undone")
        if self.rollback is not None and self.rollback_reason:
            raise ValueError("`rollback_reason` is only for `rollback: none`; remove it or the rollback")
        return self

    def action(self) -> Action:
        raise NotImplementedError

    @property
    def fans_out(self) -> bool:
        return self.for_each is not None


class CommandStep(_ActionStep):
    kind: Literal["command"]
    run: str = Field(min_length=1)

    def action(self) -> CommandAction:
        return CommandAction(run=self.run)


class SshStep(_ActionStep):
    kind: Literal["ssh"]
    command: str = Field(min_length=1)

    @model_validator(mode="after")
    def _needs_targets(self) -> SshStep:
        if self.for_each is None:
            raise ValueError("an ssh step needs `for_each` (the inventory group or host to run on)")
        return self

    def action(self) -> SshAction:
        return SshAction(command=self.command)


class PlaybookStep(_ActionStep):
    kind: Literal["playbook"]
    playbook: str = Field(min_length=1)
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)

    def action(self) -> PlaybookAction:
        return PlaybookAction(playbook=self.playbook, extra_vars=self.extra_vars, tags=self.tags)


class GateStep(_StepBase):
    """A go/no-go: the run waits until enough named approvers say go."""

    kind: Literal["gate"]
    question: str | None = None
    approvers: list[Approver] = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    required_roles: list[str] = Field(default_factory=list)
    point_of_no_return: bool = False

    @model_validator(mode="after")
    def _quorum_reachable(self) -> GateStep:
        names = [a.name for a in self.approvers]
        if len(set(names)) != len(names):
            raise ValueError("an approver is listed twice")
        if self.quorum > len(names):
            raise ValueError(f"quorum {self.quorum} is more than the {len(names)} approvers listed")
        missing = sorted(set(self.required_roles) - {a.role for a in self.approvers})
        if missing:
            raise ValueError(f"required role(s) {', '.join(missing)} held by no listed approver")
        return self

    def approver(self, name: str) -> Approver | None:
        return next((a for a in self.approvers if a.name == name), None)


STEP_KINDS: tuple[type[_StepBase], ...] = (CommandStep, SshStep, PlaybookStep, GateStep)
Step = Annotated[Union[CommandStep, SshStep, PlaybookStep, GateStep], Field(discriminator="kind")]


class Window(_Model):
    """The cutover window: the engine refuses steps that could not be rolled back before its end."""

    end: str | None = None  # ISO 8601 with offset, e.g. 2026-11-29T06:00:00+01:00

    @field_validator("end")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            from datetime import datetime

            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2026-11-29T06:00:00+01:00") from exc
            if parsed.tzinfo is None:
                raise ValueError("give the window end with its UTC offset, e.g. +01:00")
        return value


class Runbook(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    window: Window | None = None
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise NotFound(f"runbook {self.name!r} has no step {step_id!r}",
                       hint=f"steps: {', '.join(s.id for s in self.steps)}")


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    document: YamlDocument
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def path(self) -> str:
        return self.document.path


def load_runbook(path: Path, *, display: str | None = None) -> LoadedRunbook:
    """Read and validate a runbook file (syntax, schema, step ids)."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"runbook {shown} not found", hint="runbooks live in runbooks/; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem(shown, f"cannot read runbook: {exc}")], what="runbook") from exc
    return parse_runbook(text, shown)


def parse_runbook(text: str, display: str) -> LoadedRunbook:
    doc = parse_yaml(text, display)
    if not isinstance(doc.data, dict):
        raise ValidationError([Problem(display, "a runbook is a mapping with 'name' and 'steps'", line=1)],
                              what="runbook")
    problems = list(_duplicate_ids(doc))
    try:
        runbook = Runbook.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ValidationError(problems + problems_from_pydantic(doc, exc), what="runbook") from exc
    if problems:
        raise ValidationError(problems, what="runbook")
    return LoadedRunbook(runbook, doc, text)


def _duplicate_ids(doc: YamlDocument) -> Iterator[Problem]:
    """Checked on the raw data so it is reported even when other problems exist."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    first: dict[str, int] = {}
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        step_id = step.get("id") if isinstance(step, dict) else None
        if not isinstance(step_id, str):
            continue
        line = doc.line_of(("steps", index, "id")) or 0
        if step_id in first:
            yield Problem(doc.path, f"duplicate step id {step_id!r} (first at line {first[step_id]})",
                          line=line, field=f"steps[{index}].id", hint="give every step its own id")
        else:
            first[step_id] = line


def check_against(loaded: LoadedRunbook, inventory: Inventory, project_dir: Path | None = None) -> None:
    """Problems only the inventory (and project) can reveal: unknown groups or hosts, missing playbooks."""
    problems = list(_missing_playbooks(loaded, project_dir)) if project_dir is not None else []
    for index, step in enumerate(loaded.runbook.steps):
        pattern = getattr(step, "for_each", None)
        if pattern is None:
            continue
        line = loaded.document.line_of(("steps", index, "for_each"))
        if pattern not in inventory.groups and pattern not in inventory.hosts:
            problems.append(Problem(
                loaded.path, f"for_each {pattern!r} is neither a group nor a host of inventory {inventory.name!r}",
                line=line, field=f"steps[{index}].for_each",
                hint=f"groups: {', '.join(sorted(g for g in inventory.groups if g != 'all'))}"))
        elif not inventory.resolve_targets(pattern):
            problems.append(Problem(loaded.path, f"group {pattern!r} has no hosts", line=line,
                                    field=f"steps[{index}].for_each", hint="add hosts to the group or remove the step"))
    if problems:
        raise ValidationError(problems, what="runbook")


def _missing_playbooks(loaded: LoadedRunbook, project_dir: Path) -> Iterator[Problem]:
    folder = project_dir / "playbooks"
    for index, step in enumerate(loaded.runbook.steps):
        for name in ("action", "verify", "rollback"):
            action = step.action() if name == "action" and hasattr(step, "action") else getattr(step, name, None)
            if isinstance(action, PlaybookAction) and not (folder / action.playbook).is_file():
                key = "playbook" if name == "action" else name
                yield Problem(loaded.path, f"playbook {action.playbook!r} not found in {folder}",
                              line=loaded.document.line_of(("steps", index, key)), field=f"steps[{index}].{key}",
                              hint="check the name; playbooks live in the project's playbooks/ folder")
