"""Which executor runs which action kind, built once per command from the inventory.

One entry a kind (``FACTORIES``): a new executor is a module of this folder
implementing ``core.actions.Executor`` (``ready``, ``run``, ``close``) and one
line here. A kind without an entry is an error, never another kind's executor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cutover.core.actions import Executor
from cutover.core.steps import ACTION_KINDS, Action, ActionStep, RunbookSpec
from cutover.errors import InputError
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor

# What an executor is built from: the project folder, the inventory, the redactor, the state folder.
Factory = Callable[[Path, Inventory, Redactor, Path], Executor]


def _local(project_dir: Path, inventory: Inventory, redactor: Redactor, state_dir: Path) -> Executor:
    from cutover.executors.local import LocalExecutor

    return LocalExecutor(project_dir, inventory, redactor)


def _ssh(project_dir: Path, inventory: Inventory, redactor: Redactor, state_dir: Path) -> Executor:
    from cutover.executors.ssh import SshExecutor  # paramiko: a quarter of a command's start-up, only when used

    return SshExecutor(inventory, redactor)


def _ansible(project_dir: Path, inventory: Inventory, redactor: Redactor, state_dir: Path) -> Executor:
    from cutover.executors.ansible import AnsibleExecutor

    return AnsibleExecutor(project_dir, inventory, redactor, state_dir)


FACTORIES: dict[str, Factory] = {"command": _local, "ssh": _ssh, "playbook": _ansible}
KINDS = frozenset(FACTORIES)
assert KINDS == set(ACTION_KINDS), "every action kind of the core has its executor"


def build_executors(project_dir: Path, inventory: Inventory, state_dir: Path,
                    kinds: Iterable[str] = KINDS, secrets: Iterable[str] = ()) -> dict[str, Executor]:
    """The executors of these action kinds, and no other: only what is needed is imported.

    What they print is redacted of the inventory's secrets and of ``secrets`` (the run's secret parameters).
    """
    wanted = sorted(set(kinds))
    unknown = [kind for kind in wanted if kind not in FACTORIES]
    if unknown:
        raise InputError(f"no executor for action kind(s) {', '.join(unknown)}",
                         hint=f"action kinds: {', '.join(sorted(FACTORIES))}")
    redactor = Redactor.of([*inventory.secrets, *secrets])
    return {kind: build_executor(kind, project_dir, inventory, state_dir, redactor) for kind in wanted}


def build_executor(kind: str, project_dir: Path, inventory: Inventory, state_dir: Path,
                   redactor: Redactor) -> Executor:
    """One executor of a known kind (a gate's playbook probe runs through this), printing through ``redactor``."""
    return FACTORIES[kind](project_dir, inventory, redactor, state_dir)


def runbook_actions(runbook: RunbookSpec) -> list[tuple[ActionStep, Action]]:
    """Every action of the runbook (its steps' actions, verifications and rollbacks), with its step."""
    return [(step, action) for step in runbook.steps if isinstance(step, ActionStep)
            for action in (step.action, step.verify, step.rollback) if action is not None]


def action_kinds(runbook: RunbookSpec) -> set[str]:
    return {action.kind for _, action in runbook_actions(runbook)}


@contextmanager
def open_executors(project_dir: Path, inventory: Inventory, state_dir: Path,
                   runbook: RunbookSpec, secrets: Iterable[str] = ()) -> Iterator[dict[str, Executor]]:
    """The executors a runbook needs, checked ready before anything is journalled, closed afterwards.

    Ready means what each can tell before a step would find it: pidfds to wait for
    commands (Linux 5.3+), SSH material (key, known_hosts), the ``ansible-playbook``
    program, an explicit Python interpreter on every host a playbook will run on,
    and the vault password file when the inventory holds vault values.
    """
    executors = build_executors(project_dir, inventory, state_dir, action_kinds(runbook), secrets)
    try:
        uses = runbook_actions(runbook)
        for kind, executor in executors.items():
            executor.ready([(step, action) for step, action in uses if action.kind == kind])
        yield executors
    finally:
        for executor in executors.values():
            executor.close()
