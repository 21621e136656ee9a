"""Each decision once a command: one check against the inventory, one conversion to the core's spec, one fold.

`cutover run`, `resume` and `rollback` run in process on a real SQLite journal
with the `command` executor (nothing leaves the machine); a counting spy stands
in for ``check_against``, ``to_spec`` and ``fold`` wherever they were imported.
`cutover plan` on the project's own big-bang runbook counts the readings of its
playbooks.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import cutover.cli.history_cmds
import cutover.cli.run_cmds  # noqa: F401 - imported before the spies, so that they replace the names it imported
from cutover.cli.main import run_cli
from cutover.core.events import Event
from cutover.core.state import RunState, fold
from cutover.errors import ExitCode
from cutover.executors.playbooks import playbook_hosts
from cutover.model.inventory import load_inventory
from cutover.model.runbook import load_runbook
from cutover.planning.plan import to_spec
from cutover.planning.validation import check_against
from tests.e2e.conftest import REPO

RUNBOOK = """
name: tiny
windows:
  - {start: "2026-01-01T20:00:00+01:00", end: "2099-01-01T06:00:00+01:00"}
steps:
  - id: check
    kind: command
    run: "true"
    rollback: none
    rollback_reason: it only checks
  - id: go
    kind: gate
    approvers: [{name: claire, role: change_manager}]
  - id: switch
    kind: command
    run: "true"
    rollback: {run: "true"}
"""


def spy(monkeypatch: pytest.MonkeyPatch, function: Callable[..., Any],
        seen: Callable[..., Any] = lambda *args: args) -> list[Any]:
    """What ``seen`` makes of every call of ``function`` from now on, in whichever module imported it by name."""
    calls: list[Any] = []

    @functools.wraps(function)
    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(seen(*args))
        return function(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__dict__", {}).get(function.__name__) is function:
            monkeypatch.setattr(module, function.__name__, counting)
    return calls


def spy_folds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run folded by every call of ``fold`` from now on (other runs are folded for other reasons)."""
    runs: list[str] = []
    folding = fold  # this module's name is replaced too

    def counting(events: Iterable[Event]) -> RunState:
        events = list(events)
        runs.append(events[0].run_id if events else "")
        return folding(events)

    for module in list(sys.modules.values()):
        if getattr(module, "__dict__", {}).get("fold") is fold:
            monkeypatch.setattr(module, "fold", counting)
    return runs


@pytest.fixture
def project(tmp_path: Path) -> list[str]:
    """A project with the lab inventory and a runbook of `command` steps; a state folder."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "tiny.yaml").write_text(RUNBOOK, encoding="utf-8")
    (tmp_path / "state").mkdir(mode=0o700)
    return ["--project-dir", str(root), "--state-dir", str(tmp_path / "state")]


def test_run_checks_converts_and_folds_its_runbook_once(project, monkeypatch, capfd):
    checks, conversions, folds = spy(monkeypatch, check_against), spy(monkeypatch, to_spec), spy_folds(monkeypatch)
    code = run_cli([*project, "run", "tiny", "--env", "lab", "--run-id", "r1", "--auto-approve", "claire",
                    "--notify", "off"])
    assert code == ExitCode.OK, capfd.readouterr()
    # load_checked checks (create_run takes the checked runbook as it is); start_run, create_run, the window's
    # forecast and the engine share one conversion; the drive folds the run once, then follows it
    assert (len(checks), len(conversions), folds.count("r1")) == (1, 1, 1)


def test_a_gate_weighing_the_forecast_shares_the_runs_one_conversion(project, monkeypatch, capfd):
    """The gate's forecast criterion, the board and the notifier draw from the runbook the command checked."""
    runbooks = Path(project[1]) / "runbooks"
    (runbooks / "tiny.yaml").write_text(RUNBOOK.replace(
        "    approvers: [{name: claire, role: change_manager}]\n",
        "    approvers: [{name: claire, role: change_manager}]\n"
        "    criteria:\n"
        "      - {id: forecast, title: Forecast end before the window closes, probe: forecast, min: 0m}\n"),
        encoding="utf-8")
    conversions = spy(monkeypatch, to_spec)
    code = run_cli([*project, "run", "tiny", "--env", "lab", "--run-id", "r1", "--auto-approve", "claire",
                    "--notify", "off"])
    assert code == ExitCode.OK, capfd.readouterr()
    assert len(conversions) == 1


def test_resume_and_rollback_fold_and_convert_the_run_once(project, monkeypatch, capfd):
    assert run_cli([*project, "run", "tiny", "--env", "lab", "--run-id", "r1", "--auto-approve", "claire",
                    "--notify", "off", "--until", "check"]) == ExitCode.PAUSED, capfd.readouterr()
    conversions, folds = spy(monkeypatch, to_spec), spy_folds(monkeypatch)
    assert run_cli([*project, "resume", "r1", "--notify", "off"]) == ExitCode.OK, capfd.readouterr()
    assert (folds.count("r1"), len(conversions)) == (1, 1)
    conversions.clear()
    folds.clear()
    assert run_cli([*project, "rollback", "r1", "--yes", "--notify", "off"]) == ExitCode.ROLLED_BACK, capfd.readouterr()
    assert (folds.count("r1"), len(conversions)) == (1, 1)


def test_plan_reads_each_playbook_as_often_as_one_check_does(monkeypatch, capfd):
    def question(path: Path, inventory: Any, extra_vars: Any, *_: Any) -> tuple[str, str]:
        return path.name, repr(sorted(extra_vars.items()))

    readings = spy(monkeypatch, playbook_hosts, question)
    check_against(load_runbook(REPO / "runbooks" / "bigbang.yaml", params={"wave": "wave1"}),
                  load_inventory(REPO, "lab"), REPO)
    one_check = Counter(readings)
    readings.clear()
    assert run_cli(["--project-dir", str(REPO), "plan", "bigbang", "--env", "lab", "--json"]) == ExitCode.OK
    capfd.readouterr()
    assert one_check and Counter(readings) == one_check  # the blast radius's reaches are not worked out again
