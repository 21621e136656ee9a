"""Which executor runs which action kind, built once per command from the inventory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cutover.core.actions import Executor
from cutover.core.steps import Action, ActionStep, RunbookSpec
from cutover.executors.local import LocalExecutor
from cutover.executors.playbooks import playbook_hosts
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor

KINDS = frozenset({"command", "ssh", "playbook"})


def build_executors(project_dir: Path, inventory: Inventory, state_dir: Path,
                    kinds: Iterable[str] = KINDS, secrets: Iterable[str] = ()) -> dict[str, Executor]:
    """The executors of these action kinds.

    Only what is needed is imported: paramiko alone is a quarter of a command's
    start-up, and a playbook-only runbook does not need it (Ansible brings its
    own SSH; its executor checks the SSH material with OpenSSH's tools).
    """
    wanted = set(kinds)
    redactor = Redactor.of([*inventory.secrets, *secrets])  # and the run's secret parameters
    executors: dict[str, Executor] = {}
    if "command" in wanted:
        executors["command"] = LocalExecutor(project_dir, inventory, redactor)
    if "ssh" in wanted:
        from cutover.executors.ssh import SshExecutor

        executors["ssh"] = SshExecutor(inventory, redactor)
    if "playbook" in wanted:
        from cutover.executors.ansible import AnsibleExecutor

        executors["playbook"] = AnsibleExecutor(project_dir, inventory, redactor, state_dir)
    return executors


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

    What they print is redacted of the inventory's secrets and of ``secrets`` (the run's secret parameters).
    """
    executors = build_executors(project_dir, inventory, state_dir, action_kinds(runbook), secrets)
    try:
        check_ready(executors, runbook, inventory, project_dir)
        yield executors
    finally:
        for executor in executors.values():
            close = getattr(executor, "close", None)
            if close is not None:
                close()


def check_ready(executors: dict[str, Executor], runbook: RunbookSpec, inventory: Inventory, project_dir: Path) -> None:
    """Refuse to start (exit 2), before anything is journalled, what the executors can already tell is wrong.

    Waiting for commands through pidfds (Linux 5.3+), SSH material (key,
    known_hosts), the ``ansible-playbook`` program, an explicit Python
    interpreter on every host a playbook will run on, and the vault password
    file when the inventory holds vault values. Found during a step, the same
    problem would leave its targets failed or in doubt for what is only a
    set-up mistake.
    """
    actions = runbook_actions(runbook)
    kinds = {action.kind for _, action in actions}
    local = executors.get("command")
    if isinstance(local, LocalExecutor):
        local.ready()
    if "ssh" in kinds:
        from cutover.executors.ssh import SshExecutor

        ssh = executors.get("ssh")
        if isinstance(ssh, SshExecutor):
            ssh.ready()
    if "playbook" in kinds:
        from cutover.executors.ansible import AnsibleExecutor

        ansible = executors.get("playbook")
        if not isinstance(ansible, AnsibleExecutor):
            return
        hosts: set[str] = set()
        for step, action in actions:
            if action.kind == "playbook":
                hosts |= _playbook_hosts(step, action, inventory, project_dir)
        ansible.ready(sorted(hosts))


def _playbook_hosts(step: ActionStep, action: Action, inventory: Inventory, project_dir: Path) -> set[str]:
    hosts = playbook_hosts(project_dir / "playbooks" / action.playbook, inventory, action.extra_vars)
    return set(hosts & set(inventory.resolve_targets(step.for_each))) if step.for_each else set(hosts)
