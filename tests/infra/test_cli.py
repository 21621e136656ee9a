"""The infra and tenant commands as a user runs them: exit codes, --json, errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover.cli.main import run_cli
from cutover.errors import ExitCode, ToolMissing
from cutover.infra.automation import require_pulumi
from cutover.infra.policy import RULES


def cutover(project: Path, *args: str) -> int:
    return run_cli(["--project-dir", str(project), *args])


def test_check_passes_on_production_and_says_so_in_json(project_copy, capsys):
    assert cutover(project_copy, "infra", "check", "--env", "production", "--json") == ExitCode.OK
    report = json.loads(capsys.readouterr().out)
    assert report["violations"] == [] and report["passed"] and len(report["rules"]) == len(RULES)


def test_check_exits_9_and_names_rule_clause_resource_and_fix(project_copy, edit, capsys):
    # The policy now says the array's backend hands out RBD: the RAC disks cannot be reached.
    edit("infra/policy.yaml", lambda t: t.replace("array-iscsi: iscsi", "array-iscsi: rbd"))
    assert cutover(project_copy, "infra", "check", "--env", "production") == ExitCode.POLICY_VIOLATIONS
    out = capsys.readouterr().out
    assert "rac-national-db" in out and "rac-storage-reachable" in out and "A.8.14" in out and "fix:" in out


def test_plan_out_then_diff_exit_codes_and_formats(project_copy, capsys, tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert cutover(project_copy, "infra", "plan", "--env", "rehearsal", "--out", str(old)) == ExitCode.OK
    assert "infra plan: rehearsal" in capsys.readouterr().out
    assert cutover(project_copy, "infra", "diff", str(old), str(old)) == ExitCode.OK
    capsys.readouterr()
    assert cutover(project_copy, "tenant", "add", "--env", "rehearsal", "--code", "2B", "--name", "Bastia",
                   "--wave", "2") == ExitCode.OK
    assert cutover(project_copy, "infra", "plan", "--env", "rehearsal", "--out", str(new)) == ExitCode.OK
    capsys.readouterr()
    assert cutover(project_copy, "infra", "diff", str(old), str(new), "--json") == ExitCode.CHANGES_PRESENT
    report = json.loads(capsys.readouterr().out)
    assert {c["op"] for c in report["changes"]} == {"create"}
    assert {"type", "name", "op"} <= set(report["changes"][0])
    assert cutover(project_copy, "infra", "diff", str(old), str(new), "--markdown") == ExitCode.CHANGES_PRESENT
    assert "| `+` create | `samu-2B` |" in capsys.readouterr().out


def test_a_diff_side_that_is_not_a_plan_file_is_invalid_input(project_copy, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"resources": 3}')
    assert cutover(project_copy, "infra", "diff", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")) == 2
    assert "bad.json" in capsys.readouterr().err


def test_an_inventory_mistake_is_shown_with_file_and_line_and_no_traceback(project_copy, edit, capsys):
    edit("inventories/production/host_vars/samu-30.yml", lambda t: t.replace('samu_code: "30"', "samu_code: 20"))
    assert cutover(project_copy, "infra", "plan", "--env", "production") == ExitCode.INVALID_INPUT
    err = capsys.readouterr().err
    assert "samu-30.yml:1" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["infra", "preview", "--env", "production"],
                                     ["infra", "up", "--env", "production", "--yes"]])
def test_preview_and_up_without_the_pulumi_cli_say_what_to_install(project_copy, monkeypatch, capsys, command):
    monkeypatch.setenv("PATH", str(project_copy))  # a PATH with no `pulumi` on it
    assert cutover(project_copy, *command) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "Pulumi CLI" in err and "not on PATH" in err and "get.pulumi.com" in err and "Traceback" not in err


def test_require_pulumi_finds_the_cli_when_it_is_there():
    assert require_pulumi(lambda name: f"/opt/bin/{name}") == "/opt/bin/pulumi"
    with pytest.raises(ToolMissing):
        require_pulumi(lambda name: None)


def test_tenant_list_json_and_duplicate_add(project_copy, capsys):
    assert cutover(project_copy, "tenant", "list", "--env", "production", "--json") == ExitCode.OK
    rows = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in rows] == ["01", "13", "2A", "30", "31", "33", "34", "38", "59", "69"]
    assert cutover(project_copy, "tenant", "add", "--env", "production", "--code", "30", "--name", "Nîmes",
                   "--wave", "1") == ExitCode.INVALID_INPUT
    assert "already in inventory" in capsys.readouterr().err
