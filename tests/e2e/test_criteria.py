"""Criteria at the gate through the real `cutover` command: the lab's weather feed and a signed override.

The weather test brings up a two-SAMU lab (real sshds, its traffic, its own
vigilance feed) and runs the shipped weather probe playbook through Ansible
at a gate: red in one département is a no-go, green again lets the night go
on. The override test runs on `staging` (not a lab), where an override of a
failed blocking criterion counts only from an approver of a required role,
signed with the key allowed_signers lists for them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Project

pytestmark = pytest.mark.e2e

WEATHER = """name: weather
params:
  wave: {type: group, description: the wave, groups: ["wave*"], default: wave1}
wave: ((wave))
steps:
  - id: go
    kind: gate
    approvers: [{name: Claire Martin, role: change_manager}]
    criteria:
      - id: weather
        title: Weather vigilance of the wave's départements
        probe: {playbook: probe_weather_vigilance.yml, extra_vars: {wave_group: ((wave))}}
        max: 2
  - id: act
    kind: command
    run: "true"
    rollback: none
    rollback_reason: it does nothing
"""

LOAD = """name: loaded
steps:
  - id: go
    kind: gate
    approvers:
      - {id: cm-duty-1, name: Claire Martin, role: change_manager}
      - {id: samu-med-1, name: Dr Marc Petit, role: samu_medical_lead}
    quorum: 1
    required_roles: [change_manager]
    criteria:
      - {id: load, title: Call load, probe: {command: [echo, '{"per_minute": 7}'], value: per_minute}, max: 5}
  - id: act
    kind: command
    run: echo acted > acted.txt
    rollback: {run: rm -f acted.txt}
"""


@pytest.fixture
def small_lab(tmp_path: Path) -> Iterator[tuple[Project, str]]:
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab", ignore=shutil.ignore_patterns("lab-ssh"))
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / "runbooks").mkdir()
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    lab = Project(root, tmp_path / "state")
    lab.write_runbook("weather", WEATHER)
    lab.cutover("lab", "up", "--samus", "2", "--rate", "1", check=0)
    try:
        yield lab, str(lab.state / "lab" / "inventory")
    finally:
        lab.cutover("lab", "down")


def test_the_lab_weather_feed_at_red_is_a_no_go_and_back_to_green_the_night_goes_on(small_lab):
    lab, env = small_lab
    assert lab.cutover("lab", "vigilance", "01=red", check=0).stdout.strip() == "01 red, 02 green"
    paused = lab.cutover("run", "weather", "--env", env, "--run-id", "w1", "--auto-approve", "lab-bot", check=3)
    assert "weather measured 4 (expected ≤ 2): 01 red, 02 green" in paused.stdout

    lab.cutover("lab", "vigilance", "01=green", check=0)
    lab.cutover("resume", "w1", "--auto-approve", "lab-bot", check=0)
    lab.cutover("report", "w1", "--format", "markdown", check=0)
    report = (lab.state / "reports" / "w1.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| go |") and "| weather:" in line]
    assert len(rows) == 2 and "| 4 | ≤ 2 | FAIL |" in rows[0] and "| 1 | ≤ 2 | pass |" in rows[1], report


@pytest.fixture
def keys(project: Project, tmp_path: Path) -> dict[str, Path]:
    """Claire's and Marc's keys listed for their ids; Mallory's for nobody."""
    found = {}
    for who in ("claire", "marc", "mallory"):
        key = tmp_path / "keys" / who
        key.parent.mkdir(exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(key)], check=True)
        found[who] = key
    public = {who: " ".join(Path(f"{key}.pub").read_text().split()[:2]) for who, key in found.items()}
    (project.root / "inventories" / "staging" / "allowed_signers").write_text(
        f"cm-duty-1 {public['claire']}\nsamu-med-1 {public['marc']}\n")
    project.write_runbook("loaded", LOAD)
    return found


def _overrides(project: Project, run_id: str) -> int:
    return sum(1 for kind, _, _ in project.journal_kinds(run_id) if kind == "criterion_overridden")


def test_a_failed_blocking_criterion_takes_a_signed_override_from_a_required_role(project: Project, keys):
    project.cutover("run", "loaded", "--env", "staging", "--run-id", "o1", check=3)
    project.cutover("approve", "o1", "go", "--as", "cm-duty-1", "--key", str(keys["claire"]), check=0)
    blocked = project.cutover("resume", "o1", check=3)  # approvals alone do not open it
    assert "load measured 7 (expected ≤ 5)" in blocked.stdout and not (project.root / "acted.txt").exists()

    refused = [  # unsigned outside a lab run: tests/unit/test_criteria.py
        (("--as", "samu-med-1", "--key", str(keys["marc"])), "required role"),
        (("--as", "cm-duty-1", "--key", str(keys["mallory"])), "does not verify"),
    ]
    for args, message in refused:
        result = project.cutover("approve", "o1", "go", *args, "--override", "load", "--reason", "peak known")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, args
    assert _overrides(project, "o1") == 0

    accepted = project.cutover("approve", "o1", "go", "--as", "cm-duty-1", "--key", str(keys["claire"]),
                               "--override", "load", "--reason", "known peak, staff doubled", check=0)
    assert "overridden by Claire Martin (signed, verified) at 7" in accepted.stdout
    project.cutover("resume", "o1", check=0)
    assert (project.root / "acted.txt").exists()

    checks = json.loads(project.cutover("journal", "verify", "o1", "--json", check=0).stdout)["approvals"]
    assert [(c["step"], c["signed"], c["valid"]) for c in checks] == [("go", True, True),
                                                                      ("go (override load)", True, True)]
    project.cutover("report", "o1", "--format", "markdown", check=0)
    report = (project.state / "reports" / "o1.md").read_text()
    assert "load accepted at 7 by Claire Martin (change\\_manager) at" in report, report
    assert ": known peak, staff doubled (recorded by" in report and "signature verified (cm-duty-1)" in report


def test_the_gate_prompt_on_a_terminal_shows_the_criteria_measured_before_asking(project: Project):
    from tests.e2e.test_terminal_prompts import PROMPT, Terminal

    project.write_runbook("loaded", LOAD.replace("cm-duty-1", "cm").replace("samu-med-1", "med"))
    terminal = Terminal(project, "run", "loaded", "--env", "lab", "--run-id", "t1")
    try:
        terminal.wait_for(PROMPT)
        terminal.type(b"\x04")  # end of input: decide later
        assert terminal.exit_code() == 3
    finally:
        terminal.close()
    shown = terminal.seen.decode(errors="replace")
    asked = shown[shown.rindex("go/no-go: go"):shown.index("approve as")]  # what the prompt itself shows
    table = asked[asked.index("go/no-go go: criteria measured"):]
    assert "load (Call load)" in table and "7" in table and "≤ 5" in table and "FAIL" in table, table
