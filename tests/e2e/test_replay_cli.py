"""Replay as an operator types it: the `cutover` command over the SQLite journal of a lab-free night.

A night of local commands is run, then replayed as recorded (the same order
of events) and with a failure before the PNR (the rollback path); a typo in
a change is refused with exit 2. tests/integration/test_whatif_cli.py runs
forecast --what-if, postpone and programme in process.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e


def iso(days: float, hours: float = 0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(days=days, hours=hours)
    return moment.replace(microsecond=0).isoformat()


NIGHT = f"""name: night
wave: wave1
windows:
  - {{start: "{iso(-1)}", end: "{iso(1)}"}}
  - {{start: "{iso(6)}", end: "{iso(6, 8)}", latest_pnr: "{iso(6, 5)}"}}
steps:
  - id: go
    kind: gate
    approvers: [{{name: claire, role: change_manager}}]
  - id: backup
    kind: command
    run: "true"
    for_each: wave1
    concurrency: 4
    sets_mode: backup
    verify: {{run: "true"}}
    rollback: {{run: "true"}}
  - id: migrate
    kind: command
    run: sleep 0.2
    rollback: {{run: "true"}}
  - id: pnr
    kind: gate
    point_of_no_return: true
    approvers: [{{name: claire, role: change_manager}}]
  - id: nominal
    kind: command
    run: "true"
    for_each: wave1
    sets_mode: nominal
    rollback: {{run: "true"}}
"""


def test_a_recorded_night_replays_in_its_recorded_order_and_with_a_failure_rolls_back(project: Project):
    project.write_runbook("night", NIGHT)
    project.cutover("run", "night", "--env", "lab", "--run-id", "n1", "--auto-approve", "lab-bot", check=0)

    as_recorded = json.loads(project.cutover("replay", "n1", "--json", check=0).stdout)
    assert as_recorded["same_order"] is True and as_recorded["diverged"] is None
    assert as_recorded["replayed"]["status"] == as_recorded["recorded"]["status"] == "completed"
    assert list(as_recorded["replayed"]["steps_done"]) == ["go", "backup", "migrate", "pnr", "nominal"]

    failing = json.loads(project.cutover("replay", "n1", "--what-if", "migrate=fail", "--json", check=0).stdout)
    assert failing["replayed"]["status"] == "rolled_back" and failing["changes"] == ["migrate=fail"]
    assert failing["recorded"]["status"] == "completed"

    typo = project.cutover("replay", "n1", "--what-if", "migrat=x2", check=2)
    assert "no step 'migrat' in the plan" in typo.stderr and "Traceback" not in typo.stderr
