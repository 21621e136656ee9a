"""`cutover lab` errors a user can cause: clear message, hint, exit code, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from cutover.lab import sshd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "inventories" / "lab", tmp_path / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    return tmp_path


def _run(project: Path, *args: str) -> int:
    return run_cli(["--project-dir", str(project), "--state-dir", str(project / "state"), "lab", *args])


def test_lab_up_without_openssh_server_says_what_to_install(project, monkeypatch, capsys):
    monkeypatch.setattr(sshd, "SSHD", project / "no-such-sshd")
    assert _run(project, "up") == 1
    err = capsys.readouterr().err
    assert "OpenSSH server" in err and "apt-get install openssh-server" in err
    assert "Traceback" not in err
    assert not (project / "state" / "lab" / "lab.json").exists()


def test_commands_on_a_lab_that_is_not_up_explain_themselves(project, capsys):
    assert _run(project, "down") == 0
    assert _run(project, "status", "--json") == 0
    assert '"up": false' in capsys.readouterr().out
    assert _run(project, "fault", "30", "sshd-stopped") == 1
    assert _run(project, "calls") == 1
    err = capsys.readouterr().err
    assert "no lab is up" in err and "cutover lab up" in err


def test_an_unknown_fault_kind_is_a_usage_error(project):
    assert _run(project, "fault", "30", "meteor") == 2


def test_too_many_samus_is_a_usage_error(project):
    assert _run(project, "up", "--samus", "102") == 2
