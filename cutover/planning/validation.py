"""A runbook checked against what only the environment can tell: its inventory, its playbooks, its signers.

The schema (``cutover.model.runbook``) checks the runbook alone; ``check_against``
checks it against one environment: groups and hosts that exist, a wave of SAMUs,
playbooks that exist, approvers with keys (outside a lab), and the blast radius.
Each command that needs it calls it once and passes the ``CheckedRunbook`` along.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cutover.core.steps import RunbookSpec
from cutover.errors import InputError, Problem, ValidationError
from cutover.executors.playbooks import playbook_hosts
from cutover.model.inventory import Inventory
from cutover.model.runbook import LoadedRunbook, PlaybookAction
from cutover.model.signers import allowed_signers_path, signer_lines
from cutover.model.yamlsource import field_path
from cutover.planning.blast import StepReach, check_blast_radius
from cutover.planning.plan import to_spec


@dataclass(frozen=True)
class CheckedRunbook:
    """A runbook that ``check_against`` passed for one environment, with what the check worked out.

    A command checks its runbook once and passes this along: nothing checks it
    again or reads its playbooks again (``reaches``, the blast radius's work),
    and it is converted to the core's spec once (``spec``), when first asked.
    """

    loaded: LoadedRunbook
    inventory: Inventory
    project_dir: Path | None
    reaches: tuple[StepReach, ...]  # every action step's reach; none without a project folder

    def is_for(self, inventory: Inventory, project_dir: Path | None) -> bool:
        """Whether it was checked against this very inventory and project folder (else it must be checked)."""
        return self.inventory is inventory and self.project_dir == project_dir

    @cached_property
    def spec(self) -> RunbookSpec:
        """The runbook as the engine sees it."""
        return to_spec(self.loaded.runbook)

    @cached_property
    def shown_spec(self) -> RunbookSpec:
        """The spec with each secret parameter masked: what is shown and journalled of its steps."""
        masked = self.loaded.masked()
        return self.spec if masked is self.loaded else to_spec(masked.runbook)


def check_against(loaded: LoadedRunbook, inventory: Inventory, project_dir: Path | None = None) -> CheckedRunbook:
    """Problems only the inventory (and project) can reveal: unknown groups or hosts, missing playbooks.

    ValidationError (exit 2) naming them; else the runbook checked, to pass along.
    """
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
    problems += _group_problems(loaded, inventory)
    if project_dir is not None:
        problems += _probe_problems(loaded, inventory, project_dir)
    if not inventory.is_lab:
        problems += _signed_approver_problems(loaded, inventory)
    if problems:
        raise ValidationError(problems, what="runbook")
    reaches = check_blast_radius(loaded, inventory, project_dir) if project_dir is not None else []
    return CheckedRunbook(loaded, inventory, project_dir, tuple(reaches))


def _group_problems(loaded: LoadedRunbook, inventory: Inventory) -> list[Problem]:
    """Group parameters name an allowed inventory group; the runbook's wave is a group of SAMUs."""
    problems = []
    for name, param in loaded.runbook.params.items():
        value = loaded.params.get(name)
        if param.type != "group" or value is None:
            continue
        line = loaded.document.line_of(("params", name))
        allowed = sorted(g for g in inventory.groups if any(fnmatch.fnmatchcase(g, p) for p in param.groups or ["*"]))
        if value not in allowed:
            problems.append(Problem(loaded.path, f"parameter {name!r}: {value!r} is not an allowed group of "
                                    f"inventory {inventory.name!r}", line=line, field=f"params.{name}",
                                    hint=f"allowed: {', '.join(allowed) or 'none'}"))
    wave = loaded.runbook.wave
    if wave is not None and not problems:
        members = inventory.groups.get(wave, ())
        if not members or any(host not in inventory.samus for host in members):
            problems.append(Problem(loaded.path, f"wave {wave!r} is not a group of SAMUs in inventory "
                                    f"{inventory.name!r}", line=loaded.document.line_of(("wave",)), field="wave",
                                    hint=f"waves: {', '.join(f'wave{n}' for n in inventory.waves()) or 'none'}"))
    return problems


def _signed_approver_problems(loaded: LoadedRunbook, inventory: Inventory) -> list[Problem]:
    """Outside a lab, approvals are signed: every approver needs an id with a key in allowed_signers."""
    problems = []
    signers = allowed_signers_path(inventory.path)
    for index, step in enumerate(loaded.runbook.steps):
        for number, approver in enumerate(getattr(step, "approvers", [])):
            where = ("steps", index, "approvers", number)
            if approver.id is None:
                problems.append(Problem(loaded.path, f"approver {approver.name!r} of gate {step.id!r} has no id",
                                        line=loaded.document.line_of(where), field=field_path(where),
                                        hint=f"inventory {inventory.name!r} is not a lab: approvals are signed, and "
                                             "name the approver by id (e.g. `id: cm-duty-1`), listed with a key "
                                             f"in {signers}"))
                continue
            try:
                signer_lines(signers, approver.id)
            except InputError as exc:
                problems.append(Problem(loaded.path, f"approver {approver.id!r} of gate {step.id!r}: {exc.message}",
                                        line=loaded.document.line_of(where), field=field_path((*where, "id")),
                                        hint=exc.hint))
    return problems


def _probe_problems(loaded: LoadedRunbook, inventory: Inventory, project_dir: Path) -> list[Problem]:
    """A playbook probe exists and runs on the controller only (read-only evidence, never a host of the night)."""
    problems = []
    for index, step in enumerate(loaded.runbook.steps):
        for number, criterion in enumerate(getattr(step, "criteria", [])):
            probe = criterion.probe
            if probe.playbook is None:
                continue
            where = ("steps", index, "criteria", number, "probe", "playbook")
            path = project_dir / "playbooks" / probe.playbook
            if not path.is_file():
                problems.append(Problem(loaded.path, f"probe playbook {probe.playbook!r} not found in {path.parent}",
                                        line=loaded.document.line_of(where), field=field_path(where),
                                        hint="check the name; playbooks live in the project's playbooks/ folder"))
                continue
            hosts = playbook_hosts(path, inventory, probe.extra_vars)
            if hosts:
                problems.append(Problem(loaded.path, f"probe playbook {probe.playbook!r} runs on "
                                        f"{', '.join(sorted(hosts)[:5])}: a probe runs on the controller only",
                                        line=loaded.document.line_of(where), field=field_path(where),
                                        hint="write its plays with `hosts: localhost` and `connection: local`"))
    return problems


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
