"""A crash at every journal boundary, for run and for rollback: resume always ends where no crash would have.

The scenario is four commands of the real `cutover` process on a small
runbook of `command` steps: `run --until fan` (pauses), `resume` (the gate is
auto-approved; `flaky`'s verification fails once, so the run halts), `resume`
(completes), `rollback --to prepare` (rolled back). The steps hold a fan-out
with concurrency and a failure budget, non-idempotent steps whose effect
appends a line to a file, a verification that fails once, a gate, `--until`,
and rollback actions (idempotent, as rollback actions must be).

A reference run without crash counts each command's durable appends. Then, for
every command and every append N of it, before and after
(`CUTOVER_CRASH_AT=N:before|after`, the test-only hook of cutover/journal/crashpoint.py),
the scenario is replayed from a snapshot taken before that command: the
command is killed with SIGKILL at the boundary, and an operator finishes the
scenario, resuming as often as needed and answering in-doubt pauses from the
effects file, as a person would check the real system. Every scenario must
end rolled back to `prepare`, with each effect in the file exactly once, and a
journal that verifies. The number of boundaries covered is printed.

make test crashes at a fixed fifth of the boundaries (each command's first and
last append on both sides among them); make proof, with
``--every-crash-boundary``, at every one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cutover.app.queries import status_json
from cutover.core.state import fold
from cutover.journal.sqlite import SqliteJournal
from tests.e2e.conftest import CUTOVER, REPO

pytestmark = pytest.mark.e2e

TARGETS = ("samu-01", "samu-13")
RUNBOOK = """\
name: crashy
steps:
  - id: prepare
    kind: command
    run: echo prepare >> effects.log
    verify: {run: grep -qx prepare effects.log}
    rollback: {run: grep -qx undo-prepare effects.log || echo undo-prepare >> effects.log}
  - id: fan
    kind: command
    for_each: wave1
    concurrency: 2
    failure_budget: 1
    run: echo "fan $CUTOVER_TARGET" >> effects.log
    verify: {run: grep -qx "fan $CUTOVER_TARGET" effects.log}
    rollback: {run: grep -qx "undo-fan $CUTOVER_TARGET" effects.log || echo "undo-fan $CUTOVER_TARGET" >> effects.log}
  - id: go
    kind: gate
    approvers: [{name: Claire Martin, role: change_manager}]
  - id: flaky
    kind: command
    run: echo flaky >> effects.log
    # fails the first time it is asked, whatever the truth: the run halts, resume verifies again
    verify: {run: "test -e verified-once || { touch verified-once; exit 1; }; grep -qx flaky effects.log"}
    rollback: {run: grep -qx undo-flaky effects.log || echo undo-flaky >> effects.log}
  - id: last
    kind: command
    run: echo last >> effects.log
    verify: {run: grep -qx last effects.log}
    rollback: none
    rollback_reason: the scenario rolls back to prepare; last has nothing to undo
"""
APPROVE = ("--auto-approve", "lab-bot")
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("run", "crashy", "--env", "crash", "--run-id", "c1", "--until", "fan", *APPROVE),
    ("resume", "c1", *APPROVE),
    ("resume", "c1", *APPROVE),
    ("rollback", "c1", "--to", "prepare", "--yes"),
)
EXPECTED_EXITS = (3, 4, 0, 5)
FORWARD_EFFECTS = ["prepare", *(f"fan {t}" for t in TARGETS), "flaky", "last"]
UNDO_EFFECTS = ["undo-flaky", *(f"undo-fan {t}" for t in TARGETS)]


@dataclass(frozen=True)
class Boundary:
    command: int
    append: int
    when: str

    def __str__(self) -> str:
        return f"command {self.command + 1} ({COMMANDS[self.command][0]}), append {self.append}:{self.when}"


class Scenario:
    """One project folder and state folder; the real `cutover` command run in it."""

    def __init__(self, root: Path) -> None:
        self.root, self.state = root / "project", root / "state"
        self.in_doubt_pauses = 0

    def cutover(self, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "CUTOVER_CRASH_AT"}
        if crash:
            env["CUTOVER_CRASH_AT"] = crash
        return subprocess.run([CUTOVER, "--project-dir", str(self.root), "--state-dir", str(self.state), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)

    # Read the way `cutover status --json` and `journal verify` do, in this process: the scenario
    # runs one command at a time, and a hundred extra interpreter start-ups would only cost time.
    def journal(self) -> SqliteJournal:
        return SqliteJournal(self.state / "journal.db", "auditor")

    def appends(self) -> int:
        if not (self.state / "journal.db").exists():
            return 0
        with self.journal() as journal:
            return journal.verify().events_checked

    def effects(self) -> list[str]:
        path = self.root / "effects.log"
        return path.read_text().splitlines() if path.exists() else []

    def status(self) -> dict:
        with self.journal() as journal:
            return status_json(fold(journal.events("c1")))

    def exists(self) -> bool:
        with self.journal() as journal:
            return "c1" in journal.runs()

    def verified(self) -> bool:
        with self.journal() as journal:
            return journal.verify().ok


def make_project(root: Path) -> Scenario:
    scenario = Scenario(root)
    inventory = scenario.root / "inventories" / "crash"
    shutil.copytree(REPO / "inventories" / "lab" / "group_vars", inventory / "group_vars")
    (inventory / "host_vars").mkdir()
    for host in TARGETS:
        shutil.copy(REPO / "inventories" / "lab" / "host_vars" / f"{host}.yml", inventory / "host_vars")
    hosts = "\n".join(f"            {h}:" for h in TARGETS)
    (inventory / "hosts.yml").write_text(f"all:\n  children:\n    samu:\n      children:\n        wave1:\n"
                                         f"          hosts:\n{hosts}\n")
    (scenario.root / "runbooks").mkdir()
    (scenario.root / "playbooks").mkdir()
    (scenario.root / "runbooks" / "crashy.yaml").write_text(RUNBOOK)
    return scenario


def finish(scenario: Scenario, from_command: int) -> None:
    """The operator after a crash: drive the scenario to its end from whatever the journal says."""
    if not scenario.exists():  # the crash came before the run was created: start again
        from_command = 0
        scenario.cutover(*COMMANDS[0])
    rolling_back = from_command == 3 or scenario.status()["mode"] == "rollback"
    for _ in range(12):
        state = scenario.status()
        if state["state"] == "rolled_back":
            return
        if state["state"] == "completed":
            rolling_back = True
        if rolling_back:
            scenario.cutover(*COMMANDS[3])
            continue
        pause = state["pause"] or {}
        if state["state"] == "paused" and pause.get("reason") == "in_doubt":
            scenario.cutover("resume", "c1", *APPROVE, *decide(scenario, state))
        else:
            scenario.cutover("resume", "c1", *APPROVE)
    raise AssertionError(f"the scenario did not end: {scenario.status()}")


def decide(scenario: Scenario, state: dict) -> list[str]:
    """In doubt: look at the real system (the effects file) and say whether each action took effect."""
    scenario.in_doubt_pauses += 1
    effects = scenario.effects()
    args: list[str] = []
    for row in state["steps"]:
        if row["state"] == "in_doubt":
            line = row["id"] if row["target"] is None else f"{row['id']} {row['target']}"
            key = row["id"] if row["target"] is None else f"{row['id']}:{row['target']}"
            args += ["--mark-done" if line in effects else "--rerun", key]
    assert args, f"paused in doubt naming no target: {state}"
    return args


def check_end(scenario: Scenario, where: str) -> None:
    state = scenario.status()
    assert state["state"] == "rolled_back" and state["rollback_points"] == ["prepare"], (where, state)
    counts = Counter(scenario.effects())
    for effect in FORWARD_EFFECTS + UNDO_EFFECTS:
        assert counts[effect] == 1, f"{where}: {effect!r} happened {counts[effect]} times: {scenario.effects()}"
    assert "undo-prepare" not in counts, where
    assert scenario.verified(), where


def snapshot(scenario: Scenario, folder: Path) -> None:
    shutil.copytree(scenario.root.parent, folder)


def sample(boundaries: list[Boundary]) -> list[Boundary]:
    """make test's share: every command's first and last append on both sides, and every fifth boundary.

    The rest of the sweep is the same code path at other offsets; make proof
    (``--every-crash-boundary``) crashes at each of them.
    """
    ends = {(b.command, b.append) for b in boundaries
            if b.append in (1, max(x.append for x in boundaries if x.command == b.command))}
    return [b for index, b in enumerate(boundaries) if (b.command, b.append) in ends or index % 5 == 0]


def test_a_crash_at_every_journal_boundary_then_resume_ends_as_without_the_crash(tmp_path: Path,
                                                                                  request: pytest.FixtureRequest):
    # the reference: the scenario without any crash, a snapshot before each command, its appends counted
    reference = make_project(tmp_path / "reference")
    appends: list[int] = []
    for index, command in enumerate(COMMANDS):
        snapshot(reference, tmp_path / f"before-{index}")
        before = reference.appends()
        result = reference.cutover(*command)
        assert result.returncode == EXPECTED_EXITS[index], result.stdout + result.stderr
        appends.append(reference.appends() - before)
    check_end(reference, "reference run")

    every = [Boundary(c, n, when) for c, count in enumerate(appends) for n in range(1, count + 1)
             for when in ("before", "after")]
    boundaries = every if request.config.getoption("--every-crash-boundary") else sample(every)

    def replay(boundary: Boundary) -> tuple[Boundary, str | None, int]:
        folder = tmp_path / f"b{boundary.command}-{boundary.append}-{boundary.when}"
        shutil.copytree(tmp_path / f"before-{boundary.command}", folder)
        scenario = Scenario(folder)
        try:
            crashed = scenario.cutover(*COMMANDS[boundary.command], crash=f"{boundary.append}:{boundary.when}")
            assert crashed.returncode == -9, f"not killed at the boundary: exit {crashed.returncode}"
            finish(scenario, boundary.command)
            check_end(scenario, str(boundary))
        except AssertionError as failure:
            return boundary, str(failure), scenario.in_doubt_pauses
        shutil.rmtree(folder)
        return boundary, None, scenario.in_doubt_pauses

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(replay, boundaries))
    failures = [f"{b}: {why}" for b, why, _ in outcomes if why]
    in_doubt = sum(pauses for _, _, pauses in outcomes)
    print(f"\ncrash boundaries covered: {len(boundaries)} of {len(every)} ({sum(appends)} appends x before/after, "
          f"per command {appends}); in-doubt pauses answered by the operator: {in_doubt}")
    assert len(every) >= 80 and {b.command for b in boundaries} == set(range(len(COMMANDS)))
    assert not failures, "\n".join(failures[:10])
