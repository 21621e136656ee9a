"""Lab nights are anchored: `lab up` writes the controller's anchor key the lab inventory names, and lists it.

No lab is brought up: the lab's own step that installs the key runs on a copy of
the shipped lab inventory, then `cutover run --env lab` (in process, a command
step on the controller, no --anchor-key) signs its end with that key, and
`journal verify --anchors` checks it against the lab's allowed_signers.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from cutover.errors import ExitCode
from cutover.lab.manager import ANCHOR_PRINCIPAL, install_anchor_key
from cutover.model.inventory import load_inventory
from tests.e2e.conftest import REPO

NIGHT = """\
name: anchored
steps:
  - id: only
    kind: command
    run: echo done
    rollback: none
    rollback_reason: test
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped lab inventory (without what `lab up` writes) and a one-step runbook; no key from outside."""
    monkeypatch.delenv("CUTOVER_ANCHOR_KEY", raising=False)
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh", "allowed_signers"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "anchored.yaml").write_text(NIGHT, encoding="utf-8")
    return root


def _cutover(root: Path, *args: str) -> int:
    return run_cli(["--project-dir", str(root), "--state-dir", str(root.parent / "state"), *args])


def test_the_lab_writes_an_owner_only_anchor_key_listed_for_anchors_only_and_keeps_it(project: Path):
    signers = project / "inventories" / "lab" / "allowed_signers"
    signers.write_text("cm-duty-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClaire claire\n")  # someone's own line
    inventory = load_inventory(project, "lab")
    key = install_anchor_key(inventory)
    assert key == project / "inventories" / "lab" / "lab-ssh" / "anchor_ed25519" == inventory.anchor_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    public = key.with_name("anchor_ed25519.pub").read_text().split()
    assert public[0] == "ssh-ed25519"
    listed = f'{ANCHOR_PRINCIPAL} namespaces="cutover-anchor" ssh-ed25519 {public[1]}'
    assert signers.read_text().splitlines() == ["cm-duty-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClaire claire", listed]
    assert install_anchor_key(inventory) == key  # the next `lab up` keeps the key: older nights still verify
    assert key.with_name("anchor_ed25519.pub").read_text().split()[1] == public[1]
    assert signers.read_text().splitlines()[-1] == listed and signers.read_text().count(ANCHOR_PRINCIPAL) == 1


def test_a_lab_run_is_anchored_with_the_lab_s_key_and_verify_anchors_passes(project: Path,
                                                                            capsys: pytest.CaptureFixture[str]):
    assert _cutover(project, "run", "anchored", "--env", "lab", "--run-id", "before") == ExitCode.OK
    install_anchor_key(load_inventory(project, "lab"))  # what `cutover lab up` does
    assert _cutover(project, "run", "anchored", "--env", "lab", "--run-id", "night") == ExitCode.OK
    capsys.readouterr()
    assert _cutover(project, "report", "night", "--format", "markdown", "--out", "-") == ExitCode.OK
    assert "Anchor: event" in capsys.readouterr().out
    assert _cutover(project, "journal", "verify", "night", "--anchors", "--json") == ExitCode.OK
    anchors = json.loads(capsys.readouterr().out)["anchors"]
    assert [(a["run_id"], a["valid"], a["signer"]) for a in anchors] == [("night", True, ANCHOR_PRINCIPAL)]
    # a run driven before the lab had written its key is unanchored, and said so
    assert _cutover(project, "journal", "verify", "before", "--anchors", "--json") == ExitCode.JOURNAL_CORRUPT


def test_an_anchor_key_an_inventory_names_but_lacks_stops_a_drive_outside_a_lab(project: Path,
                                                                               capsys: pytest.CaptureFixture[str]):
    staging = project / "inventories" / "staging"
    shutil.copytree(project / "inventories" / "lab", staging)
    settings = staging / "group_vars" / "all.yml"
    settings.write_text(settings.read_text().replace("cutover_lab: true", "cutover_lab: false"))
    code = _cutover(project, "run", "anchored", "--env", "staging", "--run-id", "s1")
    assert code == ExitCode.INVALID_INPUT
    assert "anchor key" in capsys.readouterr().err
