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

A runbook may declare parameters (``params:``), so one file serves every
wave: ``((wave))`` anywhere in a value is replaced by the parameter's value
before validation. The ``((name))`` form cannot be mistaken for Ansible's
Jinja2 (``{{ }}``) or the shell's ``$(( ))``, so values pass into extra vars
and commands unambiguously. ``wave:`` names the inventory group the runbook
moves; ``read_only: true`` declares a step that changes nothing. A step
declares its effect on each SAMU it runs on: ``sets_mode: backup|nominal``
(the telephony's mode) and ``serves: legacy|cloud`` (the platform it points
them at); the programme is folded from these marks.

``load_runbook`` reports every problem with its file and line; checks that
need the inventory (unknown groups or hosts, group parameters, the blast
radius) run in ``check_against``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cutover.core.state import MASKED
from cutover.errors import NotFound, Problem, ValidationError
from cutover.model.yamlsource import YamlDocument, field_path, parse_yaml, problems_from_pydantic

STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# ((name)): not preceded by "$", so the shell's arithmetic $((x)) is left alone
PARAM_REF = re.compile(r"(?<!\$)\(\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\)")
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
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env(value: Any) -> dict[str, str]:
    """A step's or action's ``env:``: variable names to text, added to what its command inherits.

    Commands inherit only an allow-list of the controller's environment
    (``cutover.executors.environment``); what else they need is declared here.
    """
    if not isinstance(value, dict):
        raise ValueError("`env` is a mapping of environment variable names to values")
    checked: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ValueError(f"environment variable name {name!r} must be letters, digits or '_', not first a digit")
        if name.upper().startswith("CUTOVER_"):
            raise ValueError(f"{name}: the CUTOVER_* variables are set by cutover itself")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)) or "\x00" in str(item):
            raise ValueError(f"{name}: give a text or a number (write true/false in quotes)")
        checked[name] = str(item)
    return checked


Env = Annotated[dict[str, str], pydantic.BeforeValidator(check_env)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import


# ----------------------------------------------------------------------------- actions


class CommandAction(_Model):
    """A local command on the controller, run by /bin/sh in the project folder.

    When the step fans out, it runs once per target with CUTOVER_TARGET (and,
    for a SAMU, CUTOVER_SAMU_CODE) in its environment.
    """

    kind: Literal["command"] = "command"
    run: str = Field(min_length=1)
    env: Env = Field(default_factory=dict)

    def describe(self) -> str:
        return self.run


class SshAction(_Model):
    """A shell command on each target host, over SSH with strict host-key checking."""

    kind: Literal["ssh"] = "ssh"
    command: str = Field(min_length=1)
    env: Env = Field(default_factory=dict)

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
    env: Env = Field(default_factory=dict)

    @field_validator("playbook")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("name a playbook inside the project's playbooks/ folder, e.g. backup_mode.yml")
        return value

    def describe(self) -> str:
        return f"playbook {self.playbook}" + (f" {self.extra_vars}" if self.extra_vars else "")


ACTION_KINDS: tuple[type[_Model], ...] = (CommandAction, SshAction, PlaybookAction)
Action = Annotated[CommandAction | SshAction | PlaybookAction, Field(discriminator="kind")]


# ----------------------------------------------------------------------------- steps


class Approver(_Model):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    # what `cutover approve --as` names and allowed_signers lists with the approver's SSH key;
    # required on inventories that are not labs (signed approvals), checked by `validate`
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


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
    # declared by the author: the step changes nothing (checks, reports), so it has no blast radius
    read_only: bool = False
    # the mode a SAMU is in once this step succeeded on it: the live view and the
    # reports measure each SAMU's time in backup mode from these marks
    sets_mode: Literal["backup", "nominal"] | None = None
    # added to the environment of the step's action, verification and rollback (each may add its own)
    env: Env = Field(default_factory=dict)
    # the platform that serves each SAMU once this step succeeded on it (the repoint): `cutover
    # programme` folds these marks, with sets_mode's, into where every SAMU stands
    serves: Literal["legacy", "cloud"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_action_kinds(cls, data: Any) -> Any:
        """verify/rollback are actions of the step's own kind unless they say otherwise, with the step's env."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("verify", "rollback"):
            value = data.get(name)
            if isinstance(value, dict) and "kind" not in value:
                data[name] = value = {"kind": data.get("kind"), **value}
            step_env, own_env = data.get("env"), value.get("env", {}) if isinstance(value, dict) else None
            if isinstance(value, dict) and isinstance(step_env, dict) and isinstance(own_env, dict):
                data[name] = {**value, "env": {**step_env, **own_env}}
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

    @model_validator(mode="after")
    def _effects_declared_where_they_can_be(self) -> _ActionStep:
        """A step that declares where SAMUs stand acts on them, one by one, and can be undone."""
        for name in ("serves", "sets_mode"):
            if getattr(self, name) is None:
                continue
            if self.for_each is None:
                raise ValueError(f"`{name}` needs `for_each`: it marks the SAMUs the step runs on")
            if self.read_only:
                raise ValueError(f"a `read_only` step changes nothing: it cannot declare `{name}`")
        if self.serves is not None and self.rollback is None:
            raise ValueError("a step that declares `serves` points SAMUs at a platform: its rollback points them back")
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
        return CommandAction(run=self.run, env=self.env)


class SshStep(_ActionStep):
    kind: Literal["ssh"]
    command: str = Field(min_length=1)

    @model_validator(mode="after")
    def _needs_targets(self) -> SshStep:
        if self.for_each is None:
            raise ValueError("an ssh step needs `for_each` (the inventory group or host to run on)")
        return self

    def action(self) -> SshAction:
        return SshAction(command=self.command, env=self.env)


class PlaybookStep(_ActionStep):
    kind: Literal["playbook"]
    playbook: str = Field(min_length=1)
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)

    def action(self) -> PlaybookAction:
        return PlaybookAction(playbook=self.playbook, extra_vars=self.extra_vars, tags=self.tags, env=self.env)


def _threshold(value: Any) -> float:
    """A criterion's ``min``/``max``: a number, or a duration (``30m``) for the forecast built-ins."""
    if isinstance(value, bool):
        raise ValueError("a threshold is a number or a duration like 30m, not true/false")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return parse_duration(value)


Threshold = Annotated[float, pydantic.BeforeValidator(_threshold)]
BuiltinProbe = Literal["rehearsals", "forecast", "pnr_margin", "programme"]


class ProbeModel(_Model):
    """How a criterion is measured: a built-in by name, or ``command:`` (argv) or ``playbook:``, on the controller."""

    builtin: BuiltinProbe | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    playbook: str | None = None
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    env: Env = Field(default_factory=dict)
    # a field of the JSON output to read (dots for nested ones), e.g. load.calls_per_minute
    value: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    timeout: Duration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _builtin_by_name(cls, data: Any) -> Any:
        return {"builtin": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> ProbeModel:
        given = [name for name in ("builtin", "command", "playbook") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a probe is one of: a built-in (rehearsals, forecast, pnr_margin, programme), "
                             "`command: [argv...]` or `playbook: NAME.yml`" + (f"; it gives {', '.join(given)}"
                                                                               if given else ""))
        if self.extra_vars and self.playbook is None:
            raise ValueError("`extra_vars` is for a playbook probe")
        if self.builtin is not None and (self.value or self.env):
            raise ValueError("a built-in probe takes no `value` or `env`")
        if self.playbook is not None and (self.playbook.startswith("/") or ".." in Path(self.playbook).parts):
            raise ValueError("name a playbook inside the project's playbooks/ folder, e.g. probe_weather.yml")
        return self


class CriterionModel(_Model):
    """Evidence a gate is decided on: a probe, what it must show, and whether a failure blocks the gate."""

    id: str
    title: str = Field(min_length=1)
    probe: ProbeModel
    min: Threshold | None = None
    max: Threshold | None = None
    expect: str | int | float | bool | None = None
    severity: Literal["blocking", "advisory"] = "blocking"

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError(f"criterion id {value!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _what_it_must_show(self) -> CriterionModel:
        if self.expect is None and self.min is None and self.max is None:
            raise ValueError("say what the probe must show: `min:`, `max:` (thresholds) or `expect:` (a value)")
        if self.expect is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either `expect:` or thresholds (`min:`/`max:`), not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min:g}) is above `max` ({self.max:g}): nothing could pass")
        return self


class GateStep(_StepBase):
    """A go/no-go: the run waits until enough named approvers say go."""

    kind: Literal["gate"]
    question: str | None = None
    approvers: list[Approver] = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    required_roles: list[str] = Field(default_factory=list)
    point_of_no_return: bool = False
    criteria: list[CriterionModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> GateStep:
        names = [a.name for a in self.approvers]
        if len(set(names)) != len(names):
            raise ValueError("an approver is listed twice")
        ids = [a.id for a in self.approvers if a.id]
        if len(set(ids)) != len(ids):
            raise ValueError("an approver id is listed twice")
        if self.quorum > len(names):
            raise ValueError(f"quorum {self.quorum} is more than the {len(names)} approvers listed")
        missing = sorted(set(self.required_roles) - {a.role for a in self.approvers})
        if missing:
            raise ValueError(f"required role(s) {', '.join(missing)} held by no listed approver")
        return self

    def approver(self, name: str) -> Approver | None:
        return next((a for a in self.approvers if a.id == name), None) or \
            next((a for a in self.approvers if a.name == name), None)


STEP_KINDS: tuple[type[_StepBase], ...] = (CommandStep, SshStep, PlaybookStep, GateStep)
Step = Annotated[CommandStep | SshStep | PlaybookStep | GateStep, Field(discriminator="kind")]


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


def _iso_with_offset(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2026-11-29T22:00:00+01:00") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset; write it with one, e.g. +01:00")
    return parsed


class CandidateWindow(_Model):
    """One candidate night (``windows:``): when it opens, when it closes, the latest point of no return."""

    start: str
    end: str
    latest_pnr: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> CandidateWindow:
        start, end = _iso_with_offset(self.start), _iso_with_offset(self.end)
        if end <= start:
            raise ValueError(f"the window ends ({self.end}) before it starts ({self.start})")
        if self.latest_pnr is not None and not start < _iso_with_offset(self.latest_pnr) < end:
            raise ValueError(f"latest_pnr {self.latest_pnr} is not inside the window ({self.start} to {self.end})")
        return self


ParamType = Literal["string", "integer", "boolean", "group"]


class Param(_Model):
    """A runbook parameter, given on the command line as ``--param NAME=VALUE``."""

    type: ParamType = "string"
    description: str = Field(min_length=1)
    default: str | int | bool | None = None
    # for ``group``: the inventory groups allowed, as shell-style patterns (e.g. wave*)
    groups: list[str] | None = None
    # a credential: journalled as a digest, shown masked, given again with --param at each resume or rollback
    secret: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.groups is not None and self.type != "group":
            raise ValueError("`groups` is only for parameters of type group")
        if self.secret and (self.type != "string" or self.default is not None):
            raise ValueError("a `secret` parameter is a string without a default (a default is no secret)")
        if self.default is not None:
            coerce_param(self, self.default)
        return self


def coerce_param(param: Param, value: Any) -> str | int | bool:
    """A parameter's value in its declared type; ValueError says what was expected."""
    if param.type == "integer":
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError(f"{value!r} is not an integer")
        return int(str(value).strip())
    if param.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "yes", "no"):
            raise ValueError(f"{value!r} is not a boolean (true/false)")
        return text in ("true", "yes")
    if isinstance(value, bool) or not str(value).strip():
        raise ValueError(f"{value!r} is not a {'group name' if param.type == 'group' else 'text'}")
    return str(value).strip()


class Runbook(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    # the inventory group of SAMUs this runbook moves; no step may touch a SAMU outside it
    wave: str | None = None
    window: Window | None = None
    # candidate nights, in order: a run goes into the first still open; a no-go offers the next
    windows: list[CandidateWindow] | None = Field(default=None, min_length=1)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _windows_in_order(self) -> Runbook:
        if not self.windows:
            return self
        if self.window is not None and self.window.end is not None:
            raise ValueError("give either `window: {end: ...}` or candidate `windows:`, not both")
        for number, (before, after) in enumerate(zip(self.windows, self.windows[1:]), start=2):
            if _iso_with_offset(after.start) < _iso_with_offset(before.end):
                raise ValueError(f"window {number} starts ({after.start}) before window {number - 1} ends "
                                 f"({before.end}): list the windows in order, without overlap")
        return self


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    document: YamlDocument
    text: str
    params: Mapping[str, Any] = field(default_factory=dict)  # resolved values, in declaration order

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def path(self) -> str:
        return self.document.path

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The parameters declared ``secret: true``."""
        return tuple(name for name, param in self.runbook.params.items() if param.secret)

    @property
    def shown_params(self) -> dict[str, Any]:
        """The parameters as outputs show them: secret ones masked."""
        return {name: MASKED if name in self.secret_names else value for name, value in self.params.items()}

    def masked(self) -> LoadedRunbook:
        """The runbook with each secret parameter masked: what is shown and journalled of its steps."""
        return parse_runbook(self.text, self.path, params=self.shown_params) if self.secret_names else self


def load_runbook(path: Path, *, display: str | None = None, params: Mapping[str, Any] | None = None) -> LoadedRunbook:
    """Read and validate a runbook file (syntax, parameters, schema, step ids)."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"runbook {shown} not found", hint="runbooks live in runbooks/; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem(shown, f"cannot read runbook: {exc}")], what="runbook") from exc
    return parse_runbook(text, shown, params=params)


def parse_runbook(text: str, display: str, *, params: Mapping[str, Any] | None = None) -> LoadedRunbook:
    """Validate a runbook's text; ``params`` are the values given for its ``params:`` (strings or typed)."""
    doc = parse_yaml(text, display)
    if not isinstance(doc.data, dict):
        raise ValidationError([Problem(display, "a runbook is a mapping with 'name' and 'steps'", line=1)],
                              what="runbook")
    values = _resolve_params(doc, dict(params or {}))
    doc = YamlDocument(doc.path, _substitute(doc, values), doc.root)
    problems = list(_duplicate_ids(doc)) + list(_duplicate_criteria(doc))
    try:
        runbook = Runbook.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ValidationError(problems + problems_from_pydantic(doc, exc), what="runbook") from exc
    if problems:
        raise ValidationError(problems, what="runbook")
    return LoadedRunbook(runbook, doc, text, values)


def _declared_params(doc: YamlDocument) -> dict[str, Param]:
    raw = doc.data.get("params")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError([Problem(doc.path, "`params` is a mapping of parameter names to declarations",
                                       line=doc.line_of(("params",)), field="params")], what="runbook")
    problems: list[Problem] = []
    declared: dict[str, Param] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            problems.append(Problem(doc.path, f"parameter name {name!r} must be lowercase letters, digits or '_'",
                                    line=doc.line_of(("params", str(name))), field=f"params.{name}"))
            continue
        try:
            declared[name] = Param.model_validate(body if body is not None else {})
        except pydantic.ValidationError as exc:
            problems += problems_from_pydantic(doc, exc, loc_prefix=("params", name))
    if problems:
        raise ValidationError(problems, what="runbook")
    return declared


def _resolve_params(doc: YamlDocument, given: dict[str, Any]) -> dict[str, Any]:
    """Each declared parameter's value (given, else its default), typed; every problem with its line."""
    declared = _declared_params(doc)
    problems: list[Problem] = []
    for name in sorted(set(given) - set(declared)):
        problems.append(Problem(doc.path, f"unknown parameter {name!r}", line=doc.line_of(("params",)) or 1,
                                field="params", hint=f"declared: {', '.join(declared) or 'none'}"))
    values: dict[str, Any] = {}
    for name, param in declared.items():
        line = doc.line_of(("params", name))
        if name not in given and param.default is None:
            problems.append(Problem(doc.path, f"parameter {name!r} has no value ({param.description})", line=line,
                                    field=f"params.{name}", hint=f"pass --param {name}=VALUE"))
            continue
        try:
            values[name] = coerce_param(param, given.get(name, param.default))
        except ValueError as exc:
            problems.append(Problem(doc.path, f"parameter {name!r}: {exc}; it is declared {param.type}",
                                    line=line, field=f"params.{name}"))
    if problems:
        raise ValidationError(problems, what="runbook")
    return values


def _substitute(doc: YamlDocument, values: Mapping[str, Any]) -> Any:
    """The runbook's data with every ``((name))`` replaced; the ``params`` block itself is left as written."""
    problems: list[Problem] = []

    def walk(value: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: (v if loc == () and k == "params" else walk(v, (*loc, k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "((" not in value:
            return value
        whole = PARAM_REF.fullmatch(value.strip())
        if whole and whole[1] in values:
            return values[whole[1]]  # a value that is only a parameter keeps its type
        for name in PARAM_REF.findall(value):
            if name not in values:
                problems.append(Problem(doc.path, f"(({name})) names no declared parameter", line=doc.line_of(loc),
                                        field=field_path(loc), hint=f"declare it under `params:` "
                                        f"(declared: {', '.join(values) or 'none'})"))
        return PARAM_REF.sub(lambda m: str(values.get(m[1], m[0])), value)

    data = walk(doc.data, ())
    if problems:
        raise ValidationError(problems, what="runbook")
    return data


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


def _duplicate_criteria(doc: YamlDocument) -> Iterator[Problem]:
    """Criterion ids are unique in the runbook: the point of no return weighs every earlier gate's too."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    first: dict[str, int] = {}
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        criteria = step.get("criteria") if isinstance(step, dict) else None
        for number, criterion in enumerate(criteria if isinstance(criteria, list) else []):
            criterion_id = criterion.get("id") if isinstance(criterion, dict) else None
            if not isinstance(criterion_id, str):
                continue
            where = ("steps", index, "criteria", number, "id")
            line = doc.line_of(where) or 0
            if criterion_id in first:
                yield Problem(doc.path, f"duplicate criterion id {criterion_id!r} (first at line {first[criterion_id]})",
                              line=line, field=field_path(where),
                              hint="give every criterion of the runbook its own id (an override names it)")
            else:
                first[criterion_id] = line
