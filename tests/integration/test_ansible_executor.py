"""The playbook executor with real ansible-runner runs against real sshds on loopback."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cutover.app.queries import load_run
from cutover.app.runs import create_run, drive_run
from cutover.core.actions import ActionRequest, Outcome, Phase, Target
from cutover.core.engine import DriveOptions
from cutover.core.state import RunStatus, TargetStatus
from cutover.executors.ansible import AnsibleExecutor
from cutover.lab.sshd import SshdProcess
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor
from cutover.model.runbook import PlaybookAction, parse_runbook
from cutover.testing import InMemoryJournal

PYTHON = {"ansible_python_interpreter": "/usr/bin/python3"}

# Touches <marker_dir>/<host> on each host: proof that a task ran there (all hosts are this machine).
# One cheap task per playbook: every module run costs CPU on this (2-core) machine.
MARK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: mark the site
      command: touch "{{ marker_dir }}/{{ inventory_hostname }}"
"""

FAIL_ON_13 = """
- hosts: all
  gather_facts: false
  tasks:
    - name: switch to backup mode
      command: /bin/sh -c "echo 'backup buffer missing' >&2; exit 3"
      when: inventory_hostname == 'samu-13'
    - block:
        - name: a failure that is rescued
          fail: {msg: first try failed}
          when: inventory_hostname == 'samu-30'
      rescue:
        - name: second try
          debug: {msg: recovered}
"""

SLEEP = """
- hosts: all
  gather_facts: false
  tasks:
    - name: a long migration
      command: sleep 60
"""


@pytest.fixture
def sites(sshd_pool: Callable[[int], list[SshdProcess]], make_inventory: Callable[..., Inventory],
          tmp_path: Path) -> tuple[list[SshdProcess], Inventory]:
    """Three SAMU sites, each its own sshd, host keys known, Python named."""
    servers = sshd_pool(3)
    inventory = make_inventory({name: s.port for name, s in zip(NAMES, servers)},
                               known_hosts=[s.known_hosts_line() for s in servers],
                               extra_vars={**PYTHON, "marker_dir": str(tmp_path / "markers"),
                                           "db_password": "Vr41-s3cret-pw"})
    (tmp_path / "markers").mkdir()
    return servers, inventory


NAMES = ("samu-01", "samu-13", "samu-30")


def executor(project: Path, inventory: Inventory, state: Path) -> AnsibleExecutor:
    return AnsibleExecutor(project, inventory, Redactor.of(inventory.secrets), state)


def request(playbook: str, targets: Sequence[Target], *, timeout: float | None = None,
            cancel: threading.Event | None = None, extra_vars: dict[str, object] | None = None) -> ActionRequest:
    return ActionRequest(run_id="night-1", step_id="backup_mode", phase=Phase.ACTION,
                         action=PlaybookAction(playbook=playbook, extra_vars=extra_vars or {}),
                         targets=tuple(targets), timeout=timeout, concurrency=5,
                         **({"cancel": cancel} if cancel else {}))


def write(project: Path, name: str, text: str) -> str:
    (project / "playbooks" / name).write_text(text)
    return name


def test_every_site_ok_is_ok_with_task_counts(sites, ansible_project: Path, tmp_path: Path) -> None:
    """One run covers all three sites; each is OK, its tasks counted, its marker written."""
    _, inventory = sites
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "mark.yml", MARK), NAMES))
    assert {t: r.outcome for t, r in results.items()} == dict.fromkeys(NAMES, Outcome.OK)
    assert results["samu-30"].summary["tasks"] == {"ok": 1, "changed": 1}
    assert sorted(p.name for p in (tmp_path / "markers").iterdir()) == sorted(NAMES)


def test_a_failed_task_fails_only_its_site_with_the_task_name(sites, ansible_project: Path, tmp_path: Path) -> None:
    """samu-13's task fails: FAILED with the task and the message; the others (samu-30 rescued) are OK."""
    _, inventory = sites
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "fail.yml", FAIL_ON_13), NAMES))
    failed = results["samu-13"]
    assert failed.outcome is Outcome.FAILED
    assert "switch to backup mode" in failed.detail and "backup buffer missing" in failed.detail
    assert failed.summary["failed_tasks"] == ["switch to backup mode"]
    assert results["samu-01"].ok and results["samu-30"].ok


def test_a_stopped_sshd_is_unreachable_and_the_others_run(sites, ansible_project: Path, tmp_path: Path) -> None:
    """samu-30's sshd is stopped: it is UNREACHABLE (not started), the others OK."""
    servers, inventory = sites
    servers[2].stop()
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "mark.yml", MARK), NAMES))
    assert results["samu-30"].outcome is Outcome.UNREACHABLE
    assert not results["samu-30"].outcome.started
    assert results["samu-01"].ok and results["samu-13"].ok


def test_an_unknown_host_key_is_refused_and_nothing_runs(sshd_pool, make_inventory, ansible_project: Path,
                                                         tmp_path: Path) -> None:
    """A host whose key is not in known_hosts is REFUSED; no task ran there and the key was not added."""
    known, unknown = sshd_pool(2)
    markers = tmp_path / "markers"
    markers.mkdir()
    inventory = make_inventory({"samu-01": known.port, "samu-13": unknown.port},
                               known_hosts=[known.known_hosts_line()],
                               extra_vars={**PYTHON, "marker_dir": str(markers)})
    known_hosts_before = inventory.known_hosts.read_text()
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "mark.yml", MARK), ["samu-01", "samu-13"]))
    assert results["samu-13"].outcome is Outcome.REFUSED
    assert "host key" in results["samu-13"].detail.lower()
    assert results["samu-01"].ok
    assert [p.name for p in markers.iterdir()] == ["samu-01"]  # the control host did run: the check is fair
    assert inventory.known_hosts.read_text() == known_hosts_before


def test_a_host_the_playbook_does_not_target_does_not_look_ok(sites, ansible_project: Path, tmp_path: Path) -> None:
    """A host of the limit that yields no event at all is FAILED, never OK."""
    _, inventory = sites
    only_01 = MARK.replace("hosts: all", "hosts: samu-01")
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "only01.yml", only_01), ["samu-01", "samu-13"]))
    assert results["samu-01"].ok
    assert results["samu-13"].outcome is Outcome.FAILED and "no result" in results["samu-13"].detail


def test_the_timeout_stops_the_playbook(sites, ansible_project: Path, tmp_path: Path) -> None:
    """A playbook still running at the step's timeout is stopped: every site TIMEOUT, promptly."""
    _, inventory = sites
    started = time.monotonic()
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "sleep.yml", SLEEP), NAMES[:2], timeout=2))
    assert {r.outcome for r in results.values()} == {Outcome.TIMEOUT}
    assert time.monotonic() - started < 10


def test_cancellation_stops_the_playbook(sites, ansible_project: Path, tmp_path: Path) -> None:
    """Setting request.cancel mid-run stops ansible-playbook: every site CANCELLED, promptly."""
    _, inventory = sites
    cancel = threading.Event()
    threading.Timer(2.0, cancel.set).start()
    started = time.monotonic()
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "sleep.yml", SLEEP), NAMES[:2], cancel=cancel))
    assert {r.outcome for r in results.values()} == {Outcome.CANCELLED}
    assert time.monotonic() - started < 10


LEAKY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: print the credentials
      command: echo "db={{ db_password }} token={{ api_token }}"
    - name: hidden task
      command: echo "{{ db_password }}"
      no_log: true
    - name: fail loudly
      fail:
        msg: "cannot log in with {{ db_password }}"
      when: inventory_hostname == 'samu-13'
"""


def test_secrets_are_redacted_and_kept_out_of_private_artifacts(sites, ansible_project: Path, tmp_path: Path) -> None:
    """Inventory and extra-var secrets are masked in results and absent from the 0700/0600 artifacts."""
    _, inventory = sites
    state = tmp_path / "state"
    results = executor(ansible_project, inventory, state).run(
        request(write(ansible_project, "leaky.yml", LEAKY), ["samu-01", "samu-13"],
                extra_vars={"api_token": "tok-7781-zzq", "wave": 1}))
    secrets = ("Vr41-s3cret-pw", "tok-7781-zzq")
    assert results["samu-01"].ok and results["samu-13"].outcome is Outcome.FAILED
    for result in results.values():
        assert "********" in result.output
        assert not any(s in str(result.to_payload()) for s in secrets)
    folder = state / "ansible" / "night-1" / "backup_mode-action"
    assert (folder / "command").is_file() and (folder / "stdout").is_file() and (folder / "summary.json").is_file()
    for path in [state / "ansible", *(state / "ansible").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
        if path.is_file():
            assert not any(s in path.read_text(errors="replace") for s in secrets), path
    assert not list((state / "ansible" / ".transient").iterdir())  # the secret extra-vars file is gone


def test_a_missing_playbook_is_refused_without_running(sites, ansible_project: Path, tmp_path: Path) -> None:
    """A playbook that is not there: every target REFUSED with a hint, no exception."""
    _, inventory = sites
    results = executor(ansible_project, inventory, tmp_path / "state").run(request("nope.yml", NAMES))
    assert {r.outcome for r in results.values()} == {Outcome.REFUSED}
    assert "nope.yml" in results["samu-01"].detail and results["samu-01"].hint


def test_a_syntax_error_is_refused_with_ansibles_message(sites, ansible_project: Path, tmp_path: Path) -> None:
    """An unparsable playbook: REFUSED (nothing ran), the detail quoting Ansible's error."""
    _, inventory = sites
    broken = write(ansible_project, "broken.yml", "- hosts: all\n  tasks:\n    - name: x\n      no_such_module: {}\n")
    results = executor(ansible_project, inventory, tmp_path / "state").run(request(broken, ["samu-01"]))
    assert results["samu-01"].outcome is Outcome.REFUSED
    assert "before running any task" in results["samu-01"].detail


def test_no_target_means_the_playbooks_own_hosts_and_one_result(sites, ansible_project: Path, tmp_path: Path) -> None:
    """Target None: no --limit, one overall result covering every host of the play."""
    _, inventory = sites
    results = executor(ansible_project, inventory, tmp_path / "state").run(
        request(write(ansible_project, "mark.yml", MARK), [None]))
    assert list(results) == [None] and results[None].ok
    assert results[None].summary["tasks"] == {"changed": 3}
    assert len(list((tmp_path / "markers").iterdir())) == 3


RUNBOOK = """
name: night
steps:
  - id: backup_mode
    kind: playbook
    playbook: fail.yml
    for_each: sites
    concurrency: 3
    failure_budget: 1
    rollback: {playbook: mark.yml}
"""


def test_engine_fans_a_playbook_step_out_with_per_site_states(sites, ansible_project: Path, tmp_path: Path) -> None:
    """drive_run with the real executor: one run for the group, samu-13 failed, the others succeeded."""
    _, inventory = sites
    write(ansible_project, "fail.yml", FAIL_ON_13)
    write(ansible_project, "mark.yml", MARK)
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), inventory, run_id="r1", project_dir=ansible_project)
    status = drive_run(journal, "r1", {"playbook": executor(ansible_project, inventory, tmp_path / "state")},
                       DriveOptions())
    state = load_run(journal, "r1")
    targets = {t.target: t.status for t in state.step_targets("backup_mode")}
    assert targets == {"samu-01": TargetStatus.SUCCEEDED, "samu-13": TargetStatus.FAILED,
                       "samu-30": TargetStatus.SUCCEEDED}
    assert status is RunStatus.PAUSED  # within the failure budget: a decision, not an abort
    failed = [e for e in journal.events("r1") if e.kind == "step_failed"]
    assert failed[0].payload["result"]["summary"]["failed_tasks"] == ["switch to backup mode"]


ENVIRONMENT = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Say what the controller's process environment holds
      ansible.builtin.debug:
        msg: "pg=[{{ lookup('env', 'PGPASSWORD') }}] db=[{{ lookup('env', 'DB_HOST') }}]"
"""


def test_ansible_gets_the_runbook_env_never_the_controllers_secrets(sites, ansible_project: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`PGPASSWORD` in the operator's shell does not reach ansible-playbook; the step's `env:` does."""
    from dataclasses import replace

    monkeypatch.setenv("PGPASSWORD", "pg-secret-in-the-shell")
    _, inventory = sites
    asked = replace(request(write(ansible_project, "environment.yml", ENVIRONMENT), ["samu-01"]),
                    environment={"DB_HOST": "db.samu.example", "CUTOVER_RUN_ID": "night-1"})
    result = executor(ansible_project, inventory, tmp_path / "state").run(asked)["samu-01"]
    assert result.ok, result
    assert "db=[db.samu.example]" in result.output and "pg=[]" in result.output, result.output
