"""The site and platform tools run with the hosts' bare system python, and exit as documented."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cutover.lab.tools import samulab

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _tool(lab_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not SYSTEM_PYTHON.is_file():
        pytest.skip("no /usr/bin/python3")
    # -I: isolated mode, no site-packages: proves the tool needs nothing but the standard library.
    return subprocess.run([str(SYSTEM_PYTHON), "-I", samulab.__file__, *args], capture_output=True, text=True,
                          env={"CUTOVER_LAB_DIR": str(lab_dir), **(env or {})}, timeout=30)


def test_a_site_reads_its_identity_from_the_environment(lab_dir):
    result = _tool(lab_dir, "site", "status", "--json", env={"CUTOVER_LAB_SITE": "30"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"site": "30", "mode": "nominal", "platform": "legacy",
                                         "buffer": {"pending": 0, "replayed": {}}}


def test_a_test_call_answered_by_someone_else_exits_1(lab_dir):
    ok = _tool(lab_dir, "site", "test-call", "--expect", "legacy", "--json", "--site", "13")
    wrong = _tool(lab_dir, "site", "test-call", "--expect", "local", "--json", "--site", "13")
    assert (ok.returncode, wrong.returncode) == (0, 1)
    assert json.loads(wrong.stdout)["answered_by"] == "legacy"


def test_refusals_exit_3_with_a_hint(lab_dir):
    refused = _tool(lab_dir, "platform", "migrate", "--json")
    assert refused.returncode == 3
    assert "freeze first" in json.loads(refused.stderr)["hint"]
    nobody = _tool(lab_dir, "site", "status")
    assert nobody.returncode == 3 and "CUTOVER_LAB_SITE" in nobody.stderr


def test_freeze_then_verify_after_migration(lab_dir):
    env = {"CUTOVER_LAB_PLATFORM": "legacy"}
    assert json.loads(_tool(lab_dir, "platform", "freeze", "--json", env=env).stdout)["changed"] is True
    assert _tool(lab_dir, "platform", "status", "--expect", "frozen", env=env).returncode == 0
    assert _tool(lab_dir, "platform", "migrate", "--json").returncode == 0
    assert _tool(lab_dir, "platform", "verify", "--against", "cloud", env=env).returncode == 0


def test_bad_usage_exits_2(lab_dir):
    assert _tool(lab_dir, "site", "mode", "sideways").returncode == 2
