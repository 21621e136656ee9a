"""Which executor runs which action kind, built once per command from the inventory."""

from __future__ import annotations

from pathlib import Path

from cutover.core.actions import Executor
from cutover.executors.ansible import AnsibleExecutor
from cutover.executors.local import LocalExecutor
from cutover.executors.ssh import SshExecutor
from cutover.inventory import Inventory
from cutover.redact import Redactor


def build_executors(project_dir: Path, inventory: Inventory, state_dir: Path) -> dict[str, Executor]:
    redactor = Redactor.of(inventory.secrets)
    return {
        "command": LocalExecutor(project_dir, inventory, redactor),
        "ssh": SshExecutor(inventory, redactor),
        "playbook": AnsibleExecutor(project_dir, inventory, redactor, state_dir),
    }
