"""Redact everything that leaves the controller: labels, parameters, titles and the runbook text.

A parameter declared `secret: true` is journalled as a digest and shown masked
everywhere (status, runs, report, plan, board); its value reaches the commands
and must be given again, the same, at resume and rollback. A plain parameter,
a runbook text or a label holding one of the inventory's secrets never enters
the journal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from cutover.app.queries import runs_json, status_json
from cutover.app.report import Evidence, render, report_data
from cutover.app.runs import create_run, drive_run, rollback_run
from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target
from cutover.core.engine import DriveOptions
from cutover.core.state import fold
from cutover.errors import InputError, ValidationError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, tiny_inventory
from cutover.web.board import board_view

VAULT = "vault-value-0d5e11"  # an inventory secret (a decrypted vault value)
TOKEN = "api-token-77c1a9f3"  # a secret parameter's value
RUNBOOK = """
name: secrets
params:
  api_token: {description: the platform's API token, secret: true}
  wave: {description: the wave}
steps:
  - id: call
    title: "Call the API with ((api_token)) on ((wave))"
    kind: command
    run: 'curl -H "Authorization: Bearer ((api_token))" https://api.example/((wave))'
    rollback: {run: undo ((api_token))}
  - id: stop
    kind: gate
    approvers: [{name: Claire Martin, role: change_manager}]
"""


class _Recorder:
    """Records each command it is given."""

    batched = False

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        self.commands.append(request.action.run)
        return {t: ActionResult(Outcome.OK) for t in request.targets}


def _created(journal: InMemoryJournal, label: str | None = None) -> None:
    loaded = parse_runbook(RUNBOOK, "secrets.yaml", params={"api_token": TOKEN, "wave": "wave1"})
    create_run(journal, loaded, replace(tiny_inventory(), secrets=(VAULT,)), run_id="s1", label=label)


def test_a_secret_parameter_is_journalled_as_a_digest_and_shown_masked_everywhere():
    journal = InMemoryJournal()
    _created(journal)
    recorder = _Recorder()
    drive_run(journal, "s1", {"command": recorder}, DriveOptions(secret_params={"api_token": TOKEN}))
    assert recorder.commands == [f'curl -H "Authorization: Bearer {TOKEN}" https://api.example/wave1']  # the real one
    state = fold(journal.events("s1"))
    outputs = {
        "journal": json.dumps([e.payload for e in journal.events("s1")]),
        "status": json.dumps(status_json(state)), "runs": json.dumps(runs_json(journal)),
        "report": render(report_data(journal, "s1", Evidence(True, 1, "0" * 64)), "html"),
        "markdown": render(report_data(journal, "s1", Evidence(True, 1, "0" * 64)), "markdown"),
        "board": json.dumps(board_view(state, None, None, journal.events("s1"), datetime.now(timezone.utc), "en")),
    }
    leaks = [name for name, text in outputs.items() if TOKEN in text]
    assert not leaks
    assert state.params["api_token"].startswith("sha256:") and state.shown_params["api_token"] == "********"
    assert status_json(state)["params"] == {"api_token": "********", "wave": "wave1"}
    assert state.step("call").title == "Call the API with ******** on wave1"


def test_resume_and_rollback_need_the_secret_again_and_the_same_one():
    journal = InMemoryJournal()
    _created(journal)
    recorder = _Recorder()
    for given, message in (({}, "keeps only their digest"), ({"api_token": "another"}, "differ"),
                           ({"api_token": TOKEN, "wave": "wave2"}, "only secret ones")):
        with pytest.raises(InputError, match=message):
            drive_run(journal, "s1", {"command": recorder}, DriveOptions(secret_params=given))
    assert recorder.commands == []  # refused before anything ran
    drive_run(journal, "s1", {"command": recorder}, DriveOptions(secret_params={"api_token": f" {TOKEN} "}))
    with pytest.raises(InputError, match="keeps only their digest"):
        rollback_run(journal, "s1", {"command": recorder}, DriveOptions())
    rollback_run(journal, "s1", {"command": recorder}, DriveOptions(secret_params={"api_token": TOKEN}))
    assert recorder.commands[-1] == f"undo {TOKEN}"


def test_a_secret_parameter_is_a_string_without_a_default():
    for declaration in ("{description: x, secret: true, default: abc}", "{description: x, secret: true, type: integer}"):
        with pytest.raises(ValidationError, match="secret"):
            parse_runbook(f"name: x\nparams:\n  p: {declaration}\nsteps:\n  - {{id: a, kind: command, run: 'true', "
                          "rollback: none, rollback_reason: r}\n", "x.yaml", params={"p": "1"})


def test_a_label_is_redacted_before_it_is_journalled():
    journal = InMemoryJournal()
    _created(journal, label=f"répétition {VAULT} db_password=hunter2hunter2 postgresql://u:pw1234pw@h/db")
    label = fold(journal.events("s1")).label
    assert label == "répétition ******** db_password=******** postgresql://u:********@h/db"


def test_a_plain_parameter_or_a_runbook_holding_an_inventory_secret_is_refused():
    inventory = replace(tiny_inventory(), secrets=(VAULT,))
    plain = RUNBOOK.replace("secret: true", "secret: false")
    with pytest.raises(InputError, match="holds a secret"):
        create_run(InMemoryJournal(), parse_runbook(plain, "s.yaml", params={"api_token": VAULT, "wave": "w"}),
                   inventory, run_id="s2")
    with pytest.raises(InputError, match="holds a secret"):
        create_run(InMemoryJournal(), parse_runbook(plain, "s.yaml", params={"api_token": "password=x1", "wave": "w"}),
                   inventory, run_id="s3")
    written = RUNBOOK.replace("https://api.example", f"https://{VAULT}.example")
    with pytest.raises(InputError, match="holds the value of a secret inventory variable"):
        create_run(InMemoryJournal(), parse_runbook(written, "s.yaml", params={"api_token": TOKEN, "wave": "w"}),
                   inventory, run_id="s4")
