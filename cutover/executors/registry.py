"""Which executor runs which action kind, built once per command from the inventory."""

from __future__ import annotations

from pathlib import Path

from cutover.core.actions import Executor
from cutover.executors.ansible import AnsibleExecutor
from cutover.executors.local import LocalExecutor
from cutover.executors.ssh import SshExecutor
from cutover.inventory import Inventory
from cutover.redact import Redactor
from cutover.runbook import Runbook


def build_executors(project_dir: Path, inventory: Inventory, state_dir: Path) -> dict[str, Executor]:
    redactor = Redactor.of(inventory.secrets)
    return {
        "command": LocalExecutor(project_dir, inventory, redactor),
        "ssh": SshExecutor(inventory, redactor),
        "playbook": AnsibleExecutor(project_dir, inventory, redactor, state_dir),
    }


def check_ready(executors: dict[str, Executor], runbook: Runbook) -> None:
    """Refuse to start (exit 2) when the runbook needs SSH material the inventory lacks.

    Found during a step, the same problem would leave its targets "in doubt"
    for what is only a set-up mistake.
    """
    kinds = {action.kind for step in runbook.steps for action in _actions(step)}
    ssh = executors.get("ssh")
    if kinds & {"ssh", "playbook"} and isinstance(ssh, SshExecutor):
        ssh.ready()


def _actions(step: object) -> list[object]:
    main = [step.action()] if hasattr(step, "action") else []
    return main + [a for a in (getattr(step, "verify", None), getattr(step, "rollback", None)) if a is not None]
