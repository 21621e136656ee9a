"""Every way a run stops names the command that moves it on (cutover.core.guidance), with the run's own ids."""

from __future__ import annotations

import pytest

from cutover.app.queries import load_run, runbook_of
from cutover.app.runs import create_run, drive_run
from cutover.core.actions import ActionRequest, Outcome, Phase, Target
from cutover.core.engine import DriveOptions, GateUnanswered
from cutover.core.guidance import next_move
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

RUNBOOK = """
name: night
steps:
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    failure_budget: 1
    rollback: {run: nominal}
  - id: go
    kind: gate
    approvers:
      - {id: cm-duty-1, name: Claire Martin, role: change_manager}
      - {id: samu-med-1, name: Dr Marc Petit, role: samu_medical_lead}
    quorum: 2
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    rollback: {run: backup-again}
"""


class Crash(BaseException):
    """Stands for the controller dying mid-action."""


@pytest.fixture
def journal() -> InMemoryJournal:
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1")
    return journal


def drive(journal: InMemoryJournal, executor: ScriptedExecutor, **options: object) -> str | None:
    drive_run(journal, "r1", {"command": executor}, DriveOptions(**options))  # type: ignore[arg-type]
    state = load_run(journal, "r1")
    return next_move(state, runbook_of(state), signed=False)


def test_a_failed_target_within_budget_names_resume_and_exclude(journal):
    move = drive(journal, ScriptedExecutor().script("backup", Phase.ACTION, "samu-13", Outcome.FAILED))
    assert move is not None
    assert "`cutover resume r1` (retries samu-13)" in move and "`cutover resume r1 --exclude samu-13`" in move


def test_a_gate_names_the_approve_command_with_the_ids_still_awaited(journal):
    move = drive(journal, ScriptedExecutor())
    assert move == ("`cutover approve r1 go --as ID` (ID: one of cm-duty-1, samu-med-1), then `cutover resume r1`; "
                    "or `cutover rollback r1`")
    state = load_run(journal, "r1")
    assert "--key YOUR_SSH_KEY" in (next_move(state, runbook_of(state), signed=True) or "")


def test_a_gate_prompt_nobody_answered_pauses_at_the_gate_and_names_approve(journal):
    def closed(step: object, approved: object) -> None:
        raise GateUnanswered("the prompt of gate go was closed (end of input)")

    move = drive(journal, ScriptedExecutor(), prompt=closed)
    state = load_run(journal, "r1")
    assert state.pause_reason == "gate" and state.pause_detail.startswith("the prompt of gate go was closed")
    assert move is not None and move.startswith("`cutover approve r1 go --as ID`")


def test_an_in_doubt_target_names_mark_done_and_rerun(journal):
    def crash(request: ActionRequest, target: Target) -> None:
        if request.step_id == "backup" and target == "samu-30" and request.phase is Phase.ACTION:
            raise Crash()

    with pytest.raises(Crash):
        drive(journal, ScriptedExecutor(hook=crash))
    move = drive(journal, ScriptedExecutor())  # the dead driver's lease is this process's own: resumed
    assert move is not None
    assert "`cutover resume r1 --mark-done backup:samu-30`" in move and "`cutover resume r1 --rerun backup:samu-30`" in move


def test_until_names_resume_and_a_finished_run_names_nothing(journal):
    move = drive(journal, ScriptedExecutor(), until="backup")
    assert move == "`cutover resume r1` continues, or `cutover rollback r1`"
    assert drive(journal, ScriptedExecutor(), auto_approve="lab-bot") is None
