"""One night per SAMU and abandon, through the use-cases, with the in-memory journal."""

from __future__ import annotations

import pytest

from cutover.app.queries import load_run
from cutover.app.runs import abandon_run, create_run, drive_run, rollback_run
from cutover.core import records as r
from cutover.core.engine import DriveOptions
from cutover.core.state import RunStatus, fold
from cutover.errors import ClaimHeld, ExitCode, InputError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

WAVE_NIGHT = """
name: night
wave: wave1
steps:
  - id: go
    kind: gate
    approvers: [{name: claire, role: change_manager}]
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    sets_mode: backup
    rollback: {run: nominal}
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    sets_mode: nominal
    rollback: {run: backup}
"""


@pytest.fixture
def journal() -> InMemoryJournal:
    return InMemoryJournal(operator="claire")


def create(journal: InMemoryJournal, run_id: str, **options) -> None:
    create_run(journal, parse_runbook(WAVE_NIGHT, "night.yaml"), tiny_inventory(), run_id=run_id, **options)


def test_a_run_over_the_samus_of_an_unfinished_run_is_refused_with_exit_6_naming_it():
    """Defect: with rep1 paused at a gate, a second run over the same wave started without a word."""
    journal = InMemoryJournal(operator="claire")
    create(journal, "rep1", label="répétition 1")
    drive_run(journal, "rep1", {"command": ScriptedExecutor()}, DriveOptions())  # pauses at its gate
    journal.operator = "marc"
    with pytest.raises(ClaimHeld) as refused:
        create(journal, "doublon", label="doublon")
    assert refused.value.exit_code is ExitCode.LEASE_HELD
    message = str(refused.value)
    assert "run rep1 (répétition 1) holds samu-01, samu-13, samu-30" in message
    assert "it is paused (gate)" in message and "created by claire" in message
    assert "doublon" not in journal.runs()


def test_a_run_that_acted_on_nothing_is_abandoned_journalled_and_frees_its_samus(journal):
    create(journal, "junk")
    state = abandon_run(journal, "junk", "window typed 7 h in the past")
    assert state.status is RunStatus.ABANDONED and state.is_finished() and not state.acted
    abandoned = [e for e in journal.events("junk") if e.kind == r.RunAbandoned.KIND]
    assert [(e.operator, e.payload["reason"]) for e in abandoned] == [("claire", "window typed 7 h in the past")]
    create(journal, "night")  # its SAMUs are free again
    with pytest.raises(InputError, match="was abandoned"):
        drive_run(journal, "junk", {"command": ScriptedExecutor()}, DriveOptions())
    with pytest.raises(InputError, match="already abandoned"):
        abandon_run(journal, "junk", "again")


def test_a_run_that_acted_is_not_abandoned_and_the_hint_is_the_rollback(journal):
    create(journal, "acted")
    drive_run(journal, "acted", {"command": ScriptedExecutor()}, DriveOptions(auto_approve="lab-bot", until="backup"))
    assert load_run(journal, "acted").acted
    with pytest.raises(InputError) as refused:
        abandon_run(journal, "acted", "changed my mind")
    assert refused.value.hint == "undo what it did with `cutover rollback acted`"
    assert load_run(journal, "acted").status is RunStatus.PAUSED
    rollback_run(journal, "acted", {"command": ScriptedExecutor()}, DriveOptions())
    create(journal, "next")  # rolled back: its claims ended


def test_acted_is_false_until_an_action_step_starts_even_with_a_gate_open(journal):
    create(journal, "r1")
    assert not load_run(journal, "r1").acted
    journal.append("r1", r.GateOpened.KIND, r.GateOpened("go").to_payload())
    assert not fold(journal.events("r1")).acted
    journal.append("r1", r.StepStarted.KIND, r.StepStarted("backup", "samu-13").to_payload())
    assert fold(journal.events("r1")).acted


def test_abandon_needs_a_reason(journal):
    create(journal, "r1")
    with pytest.raises(InputError, match="needs a reason"):
        abandon_run(journal, "r1", "  ")


def test_abandon_asks_for_the_run_id_on_a_terminal_and_refuses_without_one_unless_yes(monkeypatch, tmp_path):
    import click

    from cutover.cli import confirm
    from cutover.cli.app import App

    answers = iter(["r1", "r2", click.exceptions.Abort()])

    def typed(*args, **kwargs):
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    app = App(project_dir=tmp_path, state_dir=tmp_path / "state", operator="claire")
    command = "cutover runs abandon r1 --reason x"
    monkeypatch.setattr(confirm.click, "prompt", typed)
    monkeypatch.setattr(confirm.sys.stdin, "isatty", lambda: True)
    confirm.confirm_by_run_id(app, "r1", "abandon run r1", yes=False, command=command)  # typed right
    with pytest.raises(InputError, match="not confirmed"):  # another id typed
        confirm.confirm_by_run_id(app, "r1", "abandon run r1", yes=False, command=command)
    with pytest.raises(InputError, match="not confirmed"):  # EOF or Ctrl-C at the prompt
        confirm.confirm_by_run_id(app, "r1", "abandon run r1", yes=False, command=command)
    monkeypatch.setattr(confirm.sys.stdin, "isatty", lambda: False)
    with pytest.raises(InputError) as refused:
        confirm.confirm_by_run_id(app, "r1", "abandon run r1", yes=False, command=command)
    assert "--yes" in (refused.value.hint or "")
    confirm.confirm_by_run_id(app, "r1", "abandon run r1", yes=True, command=command)  # no terminal needed
