"""What the engine asks an executor to do, and what comes back.

An executor runs one action (the main action of a step, its verification or
its rollback) on a batch of targets and reports one ``ActionResult`` per
target. Executors never raise for a failed command, an unreachable host or a
timeout: those are outcomes, recorded in the journal. They raise only for what
stops the program (a missing tool, a broken inventory).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol

from cutover.core.steps import Action, ActionStep

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

# A step that is not fanned out runs once, on the controller: its target is None.
Target = str | None

OUTPUT_LIMIT = 4000  # characters of output kept per target in the journal


class Phase(str, enum.Enum):
    ACTION = "action"
    VERIFY = "verify"
    ROLLBACK = "rollback"


class Outcome(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"  # ran and reported failure (non-zero exit, failed task)
    TIMEOUT = "timeout"  # did not finish in time; it may or may not have taken effect
    UNREACHABLE = "unreachable"  # could not connect: the action did not start
    REFUSED = "refused"  # refused before running (unknown host key, bad credentials)
    CANCELLED = "cancelled"  # stopped by the operator (Ctrl-C)
    ERROR = "error"  # the executor itself failed: the action may or may not have started

    @property
    def started(self) -> bool:
        """Whether the action may have started on the target (so may need undoing)."""
        return self not in (Outcome.UNREACHABLE, Outcome.REFUSED)


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    detail: str = ""  # one line: why it failed, or a summary of what happened
    output: str = ""  # redacted, truncated output
    exit_status: int | None = None
    hint: str | None = None
    duration: float = 0.0
    summary: Mapping[str, Any] = field(default_factory=dict)  # e.g. Ansible task counts

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"outcome": self.outcome.value, "duration": round(self.duration, 3)}
        for name in ("detail", "output", "exit_status", "hint"):
            value = getattr(self, name)
            if value not in (None, ""):
                payload[name] = value
        if self.summary:
            payload["summary"] = dict(self.summary)
        return payload

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> ActionResult:
        return cls(Outcome(data.get("outcome", "failed")), detail=str(data.get("detail", "")),
                   output=str(data.get("output", "")), exit_status=data.get("exit_status"), hint=data.get("hint"),
                   duration=float(data.get("duration", 0.0)), summary=dict(data.get("summary") or {}))


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the end of long output: the last lines say why something failed."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n{text[-limit:]}"


@dataclass(frozen=True)
class ActionRequest:
    run_id: str
    step_id: str
    phase: Phase
    action: Action  # what to run: a command, an ssh command or a playbook
    targets: tuple[Target, ...]
    timeout: float | None = None
    concurrency: int = 1  # how many targets a batched executor may work on at once (Ansible forks)
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)
    environment: Mapping[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Runs one kind of action.

    ``batched`` executors take a whole batch of targets in one call (Ansible:
    one run, its forks doing the parallel work); the others get one target per
    call and the engine runs calls concurrently.
    """

    batched: bool

    def ready(self, uses: Sequence[tuple[ActionStep, Action]]) -> None:
        """Raise now, before anything is journalled, what can already be told wrong for these uses of the kind
        (each action of the runbook with its step): a program or a key missing, a host without its Python."""

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]: ...

    def close(self) -> None:
        """Release what the executor holds (connections, folders); called once, after the command."""
