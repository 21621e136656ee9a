"""Which executor runs which action kind, built once per command from the inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cutover.blast import playbook_hosts
from cutover.core.actions import Executor
from cutover.executors.ansible import AnsibleExecutor
from cutover.executors.local import LocalExecutor
from cutover.executors.ssh import SshExecutor
from cutover.inventory import Inventory
from cutover.redact import Redactor
from cutover.runbook import PlaybookAction, Runbook


def build_executors(project_dir: Path, inventory: Inventory, state_dir: Path) -> dict[str, Executor]:
    redactor = Redactor.of(inventory.secrets)
    return {
        "command": LocalExecutor(project_dir, inventory, redactor),
        "ssh": SshExecutor(inventory, redactor),
        "playbook": AnsibleExecutor(project_dir, inventory, redactor, state_dir),
    }


def check_ready(executors: dict[str, Executor], runbook: Runbook, inventory: Inventory, project_dir: Path) -> None:
    """Refuse to start (exit 2), before anything is journalled, what the executors can already tell is wrong.

    SSH material (key, known_hosts), the ``ansible-playbook`` program, and an
    explicit Python interpreter on every host a playbook will run on. Found
    during a step, the same problem would leave its targets failed or in doubt
    for what is only a set-up mistake.
    """
    actions = [(step, action) for step in runbook.steps for action in _actions(step)]
    kinds = {action.kind for _, action in actions}
    ssh = executors.get("ssh")
    if kinds & {"ssh", "playbook"} and isinstance(ssh, SshExecutor):
        ssh.ready()
    ansible = executors.get("playbook")
    if "playbook" in kinds and isinstance(ansible, AnsibleExecutor):
        hosts: set[str] = set()
        for step, action in actions:
            if isinstance(action, PlaybookAction):
                hosts |= _playbook_hosts(step, action, inventory, project_dir)
        ansible.ready(sorted(hosts))


def _playbook_hosts(step: Any, action: PlaybookAction, inventory: Inventory, project_dir: Path) -> set[str]:
    hosts = playbook_hosts(project_dir / "playbooks" / action.playbook, inventory, action.extra_vars)
    for_each = getattr(step, "for_each", None)
    return set(hosts & set(inventory.resolve_targets(for_each))) if for_each else set(hosts)


def _actions(step: object) -> list[Any]:
    main = [step.action()] if hasattr(step, "action") else []
    return main + [a for a in (getattr(step, "verify", None), getattr(step, "rollback", None)) if a is not None]
