"""The night's playbooks and runbooks, checked with the real tools (no lab needed).

- every playbook passes ``ansible-playbook --syntax-check`` against the lab and
  the production inventories;
- ``ansible-lint`` (profile ``production``, offline, see ``.ansible-lint``)
  finds nothing in ``playbooks/``, the Oracle tasks included; a missing
  ansible-lint FAILS the test with the reason, it is never skipped;
- every database engine has the same tasks, and every Oracle task that
  handles the migration account's credentials hides them (``no_log``);
- ``cutover validate`` accepts ``bigbang`` on lab and production, and
  refuses ``wrong_order`` naming the SAMUs at risk.

The end-to-end nights (full night, rollbacks, wrong order) are in the lead's
end-to-end tests; they need the lab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
BIN = Path(sys.executable).parent
ENGINES = ("sqlite", "oracle")


def playbook_names() -> list[str]:
    return sorted(p.name for p in PLAYBOOKS.glob("*.yml"))


def ansible_env() -> dict[str, str]:
    """The project's ansible.cfg (or none): never a user's or the system's."""
    config = ROOT / "ansible.cfg"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["ANSIBLE_CONFIG"] = str(config) if config.is_file() else os.devnull
    return env


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=ansible_env(), text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def test_the_night_has_its_playbooks() -> None:
    """Each action of the night has its playbook, its rollback counterpart and a verification."""
    expected = {"preflight", "backup_mode", "verify_backup_mode", "return_to_nominal", "verify_nominal",
                "freeze_legacy", "verify_legacy_frozen", "unfreeze_legacy", "migrate", "verify_migration",
                "copy_back", "point_to_cloud", "verify_pointed_at_cloud", "point_to_legacy", "verify_cloud",
                "sign_off"}
    assert expected <= {Path(name).stem for name in playbook_names()}


@pytest.mark.parametrize("env", ["lab", "production"])
def test_every_playbook_passes_syntax_check(env: str) -> None:
    """ansible-playbook --syntax-check accepts every playbook with the environment's inventory.

    One ansible-playbook for all of them (its start-up is most of the cost); a
    failure names the playbook, and the loop below proves each was read.
    """
    names = playbook_names()
    result = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i",
                  str(ROOT / "inventories" / env / "hosts.yml"), *(str(PLAYBOOKS / name) for name in names)])
    assert result.returncode == 0, f"on {env}:\n{result.stdout}\n{result.stderr}"
    for name in names:
        assert f"playbook: {PLAYBOOKS / name}" in result.stdout, f"{name} was not checked on {env}"


def test_ansible_lint_finds_nothing() -> None:
    """ansible-lint (profile production, offline) passes on playbooks/, Oracle tasks included."""
    lint = BIN / "ansible-lint"
    if not lint.is_file():
        pytest.fail(f"ansible-lint is not installed next to this Python ({lint}): it is in the `test` extra; "
                    f"install it with `{sys.executable} -m pip install -e '.[test]'`. Not skipped: an unlinted "
                    "playbook must not count as a passing one.")
    result = run([str(lint), "--offline", "--nocolor", "playbooks/"], timeout=600)
    report = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"ansible-lint found violations (or could not run):\n{report}"
    # the profile really applied is the one .ansible-lint asks for
    assert "Profile 'production' was required, and it passed" in report, report


def tasks_files(engine: str) -> set[str]:
    return {p.name for p in (PLAYBOOKS / "tasks" / engine).glob("*.yml") if not p.name.startswith("_")}


def test_every_database_engine_has_the_same_tasks() -> None:
    """include_tasks: tasks/{{ platform_db_engine }}/X.yml finds X for every engine."""
    assert tasks_files("postgresql"), "no postgresql tasks"
    assert tasks_files("postgresql") == tasks_files("oracle")
    assert "drain.yml" in tasks_files("oracle")


def _tasks(items: list[dict]) -> list[dict]:
    found = []
    for task in items or []:
        found.append(task)
        for key in ("block", "rescue", "always"):
            found += _tasks(task.get(key) or [])
    return found


def test_oracle_credentials_never_reach_an_output() -> None:
    """Every task that uses the migration account's credentials has no_log, and no file holds a literal secret."""
    users = []
    for path in sorted((PLAYBOOKS / "tasks" / "oracle").glob("*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            if "block" not in task and "oracle_migration_password" in yaml.safe_dump(task):
                users.append(path.name)
                assert task.get("no_log") is True, f"{path.name}: task {task.get('name')!r} lacks no_log: true"
    assert users, "no Oracle task uses the migration credentials: the test is looking in the wrong place"
    production = yaml.safe_load((ROOT / "inventories/production/group_vars/platforms.yml").read_text())
    assert production["platform_db_engine"] == "oracle"
    for name, value in production.items():
        if "password" in name or name.endswith("_user") and name.startswith("oracle_migration"):
            assert str(value).startswith("{{ vault_"), f"{name} must reference a vault variable, not a value"


@pytest.mark.parametrize(("runbook", "env"), [("bigbang", "lab"), ("bigbang", "production")])
def test_cutover_validate_accepts_the_runbook(runbook: str, env: str) -> None:
    """cutover validate exits 0: steps, groups, gates, every playbook named, the blast radius."""
    result = run([str(BIN / "cutover"), "--project-dir", str(ROOT), "validate", runbook, "--env", env])
    assert result.returncode == 0, f"{runbook} on {env}:\n{result.stdout}\n{result.stderr}"


def test_cutover_validate_refuses_the_wrong_order_naming_the_samus_at_risk() -> None:
    result = run([str(BIN / "cutover"), "--project-dir", str(ROOT), "validate", "wrong_order", "--env", "lab"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "freeze-legacy acts on legacy-platform while SAMU(s) it serves are not in backup mode" in result.stderr
    assert "30 (samu-30)" in result.stderr


def _includes(playbook: str) -> list[str]:
    plays = yaml.safe_load((PLAYBOOKS / playbook).read_text())
    return [str(task.get("ansible.builtin.include_tasks", "")) for play in plays for task in play.get("tasks", [])]


@pytest.mark.parametrize(("playbook", "freezing"), [("freeze_legacy.yml", "freeze.yml"),
                                                     ("copy_back.yml", "copy_back.yml")])
def test_every_freeze_drains_the_calls_in_progress_first(playbook: str, freezing: str) -> None:
    """A call still in progress when its partition freezes would have its record refused (tests/lab/test_drain.py)."""
    steps = [Path(name).name for name in _includes(playbook) if "platform_db_engine" in name]
    assert "drain.yml" in steps and freezing in steps, steps
    assert steps.index("drain.yml") < steps.index(freezing), steps
