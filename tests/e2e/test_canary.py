"""A canary secret goes in five ways and must come out nowhere.

In a real lab (2 SAMUs), five canaries:

- a vault-encrypted inventory variable (ansible-vault, with the password file
  `cutover lab up` writes), printed by a playbook task;
- an inventory variable whose name says it is secret (`lab_canary_token`),
  printed by a playbook task;
- a command step that prints a file holding the secret-named variable's value,
  and another printed as `db_password=...` (redacted by its shape), and fails,
  so its output lands in the journal's failure record;
- the vaulted value and a `db_password=...` in the run's label (`--label`);
- a parameter declared `secret: true` (`--param api_token=...`), used in a step's
  title and printed by its command.

Then not one canary byte may be found in any file under the state directory
(journal, Ansible artifacts, logs, the lab's own files, the HTML report), nor
in any `--json` output, the Markdown report, or the report and API the board serves.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from cutover.lab.manager import LAB_VAULT_PASSWORD
from tests.e2e.conftest import REPO, Project

pytestmark = pytest.mark.e2e

VAULTED = "canary-vaulted-7f3a9c"
TOKEN = "canary-token-51be02"
PRINTED = "canary-printed-c4d8e6"
LABELLED = "canary-labelled-93ad0b"  # known to nobody: caught by its secret shape in the label
PARAM = "canary-param-5f20e7"  # a `secret: true` parameter's value

PLAYBOOK = """\
---
- name: Print the canaries, as a careless task would
  hosts: samu
  gather_facts: false
  tasks:
    - name: Echo the vaulted and the secret-named values
      ansible.builtin.command:
        argv: [echo, "{{ lab_canary_vaulted }}", "{{ lab_canary_token }}"]
      changed_when: false

    - name: Show them again in a debug message
      ansible.builtin.debug:
        msg: "vaulted={{ lab_canary_vaulted }} token={{ lab_canary_token }}"
"""

RUNBOOK = """\
name: canary
params:
  api_token: {description: the platform's API token, secret: true}
steps:
  - id: print-param
    title: "Use the token ((api_token))"
    kind: command
    run: echo "token ((api_token)) and $API_TOKEN"
    env: {API_TOKEN: ((api_token))}
    rollback: none
    rollback_reason: it only prints
  - id: print-in-playbook
    kind: playbook
    playbook: canary.yml
    for_each: samu
    rollback: none
    rollback_reason: it only prints
  - id: print-and-fail
    kind: command
    run: cat canary.txt; echo "db_password=$(cat other.txt)"; exit 3
    rollback: none
    rollback_reason: it only prints
"""


def test_no_canary_reaches_a_file_of_the_state_directory_or_a_json_output(tmp_path: Path):
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    for folder in ("playbooks",):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    (root / "runbooks").mkdir()
    (root / "runbooks" / "canary.yaml").write_text(RUNBOOK)
    (root / "playbooks" / "canary.yml").write_text(PLAYBOOK)
    (root / "canary.txt").write_text(TOKEN + "\n")  # the secret-named variable's value
    (root / "other.txt").write_text(PRINTED + "\n")  # known to nobody: caught by its secret shape
    vault = VaultLib([("default", VaultSecret(LAB_VAULT_PASSWORD.encode()))])
    ciphertext = "\n".join("  " + line for line in vault.encrypt(VAULTED).decode().splitlines())
    all_vars = root / "inventories" / "lab" / "group_vars" / "all.yml"
    all_vars.write_text(all_vars.read_text() + f"lab_canary_vaulted: !vault |\n{ciphertext}\n"
                        f"lab_canary_token: {TOKEN}\n")

    project = Project(root, tmp_path / "state")
    project.cutover("lab", "up", "--samus", "2", "--rate", "2", check=0)
    try:
        env = str(project.state / "lab" / "inventory")
        result = project.cutover("run", "canary", "--env", env, "--run-id", "c1", "--param", f"api_token={PARAM}",
                                 "--label", f"répétition {VAULTED} db_password={LABELLED}", timeout=180)
        # the playbook step runs (Ansible decrypted the vault value), then the command step fails
        assert result.returncode == 4, result.stdout + result.stderr
        outputs = [result.stdout, result.stderr]
        for args in (("status", "c1", "--json"), ("runs", "--json"),
                     ("plan", "canary", "--env", env, "--json", "--param", f"api_token={PARAM}"),
                     ("lab", "status", "--json"), ("report", "c1", "--format", "markdown", "--out", "-"),
                     ("report", "c1")):
            outputs.append(project.cutover(*args, check=0).stdout)
        status = outputs[2]
        assert '"print-in-playbook"' in status and '"succeeded"' in status
        assert '"api_token": "********"' in status and "répétition ********" in status
        outputs += _served(project.state / "journal.db", "c1")
        with sqlite3.connect(f"file:{project.state / 'journal.db'}?mode=ro", uri=True) as conn:
            (output,) = conn.execute("SELECT json_extract(payload, '$.result.output') FROM events "
                                     "WHERE kind = 'step_failed'").fetchone()
        assert output.count("********") == 2, output  # the failure's output was kept, both values redacted
    finally:
        project.cutover("lab", "down")

    canaries = [c.encode() for c in (VAULTED, TOKEN, PRINTED, LABELLED, PARAM)]
    # the generated lab inventory is the user's own group_vars copied verbatim (an input, 0700), not an output
    generated_inventory = project.state / "lab" / "inventory"
    leaks = [str(path) for path in project.state.rglob("*") if path.is_file()
             and generated_inventory not in path.parents and any(c in path.read_bytes() for c in canaries)]
    assert not leaks, f"canary bytes found in: {leaks}"
    for text in outputs:
        assert not any(c.decode() in text for c in canaries), text
    files = [p for p in project.state.rglob("*") if p.is_file()]
    assert any(p.name == "journal.db" for p in files) and any("ansible" in p.parts for p in files)
    assert any(p.name == "c1.html" for p in files)  # the report was written, and scanned


def _served(journal_file: Path, run_id: str) -> list[str]:
    """What `cutover serve` gives of the run: its report, its board and its API."""
    from cutover.journal.sqlite import SqliteJournal
    from cutover.web.app import create_app
    from cutover.web.security import Access
    from tests.unit.test_web import serving

    with SqliteJournal(journal_file, "auditor") as journal, \
            serving(create_app(journal, Access(token=None, loopback_only=True))) as board:
        pages = [board.text(f"/runs/{run_id}/report"), board.text(f"/runs/{run_id}"),
                 board.text(f"/api/runs/{run_id}"), board.text("/")]
    assert "Use the token ********" in pages[0]
    return pages
