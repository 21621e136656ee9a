"""Executors are chosen by kind from one registry: each checked ready with its own uses and closed; no fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.core.steps import ACTION_KINDS, Action, ActionStep, RunbookSpec
from cutover.errors import InputError
from cutover.executors import registry
from cutover.planning import plan
from cutover.testing import ScriptedExecutor, tiny_inventory


class Recording(ScriptedExecutor):
    def __init__(self, log: list[tuple[str, object]], kind: str) -> None:
        super().__init__()
        self.log, self.kind = log, kind

    def ready(self, uses):  # type: ignore[no-untyped-def]
        self.log.append(("ready", self.kind, [(step.id, action.kind) for step, action in uses]))

    def close(self) -> None:
        self.log.append(("close", self.kind))


def _step(step_id: str, action: Action, rollback: Action | None = None) -> ActionStep:
    return ActionStep(step_id, step_id, action, None, rollback)


def test_every_action_kind_of_the_core_has_one_executor_factory():
    assert set(registry.FACTORIES) == set(ACTION_KINDS)


def test_an_unknown_kind_is_refused_not_run_by_another_executor(tmp_path: Path):
    with pytest.raises(InputError, match="no executor for action kind.*telnet"):
        registry.build_executors(tmp_path, tiny_inventory(), tmp_path, {"command", "telnet"})


def test_each_executor_is_checked_ready_with_its_own_uses_and_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log: list[tuple[str, object]] = []
    monkeypatch.setattr(registry, "FACTORIES", {kind: (lambda *args, kind=kind: Recording(log, kind))
                                                for kind in ACTION_KINDS})
    spec = RunbookSpec("night", (_step("a", Action("command", run="x"), Action("ssh", command="undo")),
                                 _step("b", Action("ssh", command="y"))))
    with registry.open_executors(tmp_path, tiny_inventory(), tmp_path, spec) as executors:
        assert sorted(executors) == ["command", "ssh"]
    assert log == [("ready", "command", [("a", "command")]), ("ready", "ssh", [("a", "ssh"), ("b", "ssh")]),
                   ("close", "command"), ("close", "ssh")]


def test_a_schema_action_the_core_does_not_know_is_an_error_not_a_command():
    class Telnet:
        env: dict[str, str] = {}

    with pytest.raises(TypeError, match="Telnet"):
        plan._action(Telnet())
