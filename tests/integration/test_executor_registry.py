"""Which executors a runbook gets, and what they cost to start: paramiko only for `ssh` actions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from pathlib import Path
from cutover.executors.registry import build_executors
from cutover.model.inventory import load_inventory
executors = build_executors(Path(sys.argv[1]), load_inventory(Path(sys.argv[1]), "lab"), Path(sys.argv[2]),
                            set(sys.argv[3].split(",")))
print(",".join(sorted(executors)), "paramiko" in sys.modules)
"""


@pytest.mark.parametrize(("kinds", "built", "paramiko"), [
    ("command", "command", False),
    ("playbook", "playbook", False),
    ("command,playbook", "command,playbook", False),
    ("ssh,playbook", "playbook,ssh", True),
])
def test_only_the_executors_a_runbook_uses_are_built_and_imported(tmp_path: Path, kinds: str, built: str,
                                                                    paramiko: bool):
    probe = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(tmp_path), kinds],
                           capture_output=True, text=True, cwd=ROOT)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [built, str(paramiko)]
