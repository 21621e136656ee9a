"""``pulumi preview`` and ``pulumi up`` on ``infra/`` through the Automation API, for users with the CLI.

The Automation API drives the ``pulumi`` program; without it on PATH nothing
here can run, and we say so before trying (``require_pulumi``). The stack file
and the inventory are validated first, exactly as for ``infra plan``; the
policy check that gates both runs before, in ``cutover.cli.infra_cmds``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cutover.errors import CutoverError, ToolMissing
from cutover.infra.stack import StackConfig, check_region, load_stack
from cutover.infra.validate import require_infrastructure
from cutover.model.inventory import load_inventory

INSTALL_HINT = (
    "install the Pulumi CLI (https://www.pulumi.com/docs/install/, e.g. `curl -fsSL https://get.pulumi.com | sh`), "
    "then `pulumi login`; without it, `cutover infra plan|diff|check` work offline"
)


@dataclass(frozen=True)
class StackOutcome:
    stack: str
    summary: dict[str, int]


def require_pulumi(which: Callable[[str], str | None] = shutil.which) -> str:
    """The path of the ``pulumi`` CLI; ToolMissing when it is not on PATH."""
    found = which("pulumi")
    if found is None:
        raise ToolMissing("the Pulumi CLI (`pulumi`) is not on PATH: infra preview/up need it", hint=INSTALL_HINT)
    return found


def validated_stack(project_dir: Path, env: str) -> StackConfig:
    stack = load_stack(project_dir, env)
    inventory = load_inventory(project_dir, stack.inventory)
    check_region(stack, require_infrastructure(inventory).region)
    return stack


def preview(project_dir: Path, env: str, on_output: Callable[[str], None], message: str | None = None) -> StackOutcome:
    stack = _select(project_dir, env)
    try:
        result = stack.preview(on_output=on_output, diff=True, message=message)
    except Exception as exc:  # the Automation API raises CommandError subclasses
        raise CutoverError(f"pulumi preview failed for stack {env!r}: {exc}") from exc
    return StackOutcome(env, dict(result.change_summary))


def up(project_dir: Path, env: str, on_output: Callable[[str], None], message: str | None = None) -> StackOutcome:
    """``message`` (an accepted violation's reason) is kept by the backend in the stack's history."""
    stack = _select(project_dir, env)
    try:
        result = stack.up(on_output=on_output, diff=True, message=message)
    except Exception as exc:
        raise CutoverError(f"pulumi up failed for stack {env!r}: {exc}",
                           hint="read the output above; `pulumi stack` shows the stack's state") from exc
    return StackOutcome(env, dict(result.summary.resource_changes or {}))


def _select(project_dir: Path, env: str):  # -> pulumi.automation.Stack (imported lazily)
    validated = validated_stack(project_dir, env)
    require_pulumi()
    from pulumi import automation

    try:
        return automation.create_or_select_stack(stack_name=env, work_dir=str(validated.program_dir))
    except Exception as exc:
        raise CutoverError(f"cannot select stack {env!r}: {exc}", hint="run `pulumi login` first") from exc
