"""One night per SAMU, through the real `cutover` command: claims at creation, refusals, abandon.

Two `cutover run` processes are released at the same instant over the same
SAMUs, on SQLite and on PostgreSQL: exactly one run is created, the other is
refused with exit 6 naming it. Runs over disjoint SAMUs run side by side. A
run that acted on nothing is abandoned (which frees its SAMUs); one that
acted is not.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from cutover.testing.postgres import PostgresServer, start_postgres
from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e

# the gate keeps the winner unfinished (paused, exit 3: no approver on a pipe) while the loser tries
HELD = """\
name: held
steps:
  - id: go
    kind: gate
    approvers: [{{name: Claire Martin, role: change_manager}}]
  - id: backup
    kind: command
    for_each: {targets}
    run: echo "backup $CUTOVER_TARGET" >> effects.log
    rollback: {{run: echo "undo $CUTOVER_TARGET" >> effects.log}}
"""


def released_together(project: Project, *runs: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Start one `cutover` per argument list, each waiting for one file, then create it: they start as one."""
    go = project.root / "go"
    waiting = [subprocess.Popen(["sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.005; done; exec "$@"', str(go),
                                 *project.base(), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
               for args in runs]
    time.sleep(0.2)
    go.touch()
    done = []
    for process in waiting:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def exactly_one_refused(results: list[subprocess.CompletedProcess[str]]) -> tuple[subprocess.CompletedProcess[str],
                                                                                  subprocess.CompletedProcess[str]]:
    codes = sorted(r.returncode for r in results)
    assert codes == [3, 6], [(r.returncode, r.stderr) for r in results]
    refused = next(r for r in results if r.returncode == 6)
    created = next(r for r in results if r.returncode == 3)
    assert "Traceback" not in refused.stderr
    return created, refused


def test_two_runs_started_at_once_over_one_wave_on_sqlite_one_is_refused_naming_the_other(project: Project):
    project.write_runbook("held", HELD.format(targets="wave1"))
    results = released_together(project, ("run", "held", "--env", "lab", "--run-id", "rep1", "--label", "répétition 1"),
                                ("run", "held", "--env", "lab", "--run-id", "doublon", "--label", "doublon"))
    _, refused = exactly_one_refused(results)
    named = re.search(r"run (\w+) was not created: run (\w+) \(([^)]*)\) holds", refused.stderr)
    assert named is not None, refused.stderr
    loser, winner, label = named.groups()
    assert {loser, winner} == {"rep1", "doublon"} and label == {"rep1": "répétition 1", "doublon": "doublon"}[winner]
    assert "samu-01" in refused.stderr and "paused" in refused.stderr and "runs abandon" in refused.stderr
    runs = {r["run_id"]: r["state"] for r in json.loads(project.cutover("runs", "--json", check=0).stdout)}
    assert runs == {winner: "paused"}  # nothing at all was journalled for the refused one
    assert not (project.root / "effects.log").exists()


def test_runs_over_disjoint_samus_run_side_by_side_and_abandon_frees_what_a_run_held(project: Project):
    project.write_runbook("one", HELD.format(targets="samu-01").replace("name: held", "name: one"))
    project.write_runbook("other", HELD.format(targets="samu-13").replace("name: held", "name: other"))
    results = released_together(project, ("run", "one", "--env", "lab", "--run-id", "a1"),
                                ("run", "other", "--env", "lab", "--run-id", "b1"))
    assert [r.returncode for r in results] == [3, 3], [r.stderr for r in results]
    project.cutover("run", "one", "--env", "lab", "--run-id", "a2", check=6)

    refused = project.cutover("runs", "abandon", "a1", "--reason", "wrong window")  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = project.cutover("--operator", "claire", "runs", "abandon", "a1", "--reason", "wrong window", "--yes",
                           check=0)
    assert "a1: abandoned by claire: wrong window" in done.stdout
    project.cutover("run", "one", "--env", "lab", "--run-id", "a2", check=3)  # samu-01 is free again


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    started = start_postgres()
    yield started
    started.stop()


def test_two_runs_started_at_once_over_one_wave_on_postgresql_one_is_refused(project: Project, server: PostgresServer):
    init = project.cutover("journal", "init", server.url)
    assert init.returncode == 0, init.stderr
    project.write_runbook("held", HELD.format(targets="wave1"))
    journal = ("--journal", server.url)
    results = released_together(project, (*journal, "run", "held", "--env", "lab", "--run-id", "pg-a"),
                                (*journal, "run", "held", "--env", "lab", "--run-id", "pg-b"))
    _, refused = exactly_one_refused(results)
    assert "holds samu-01" in refused.stderr
    runs = json.loads(project.cutover("--journal", server.url, "runs", "--json", check=0).stdout)
    assert len(runs) == 1 and runs[0]["state"] == "paused"


NIGHT = """\
name: night
wave: wave1
steps:
  - id: go
    kind: gate
    approvers: [{name: Claire Martin, role: change_manager}]
  - id: backup-mode
    kind: command
    for_each: wave1
    run: "true"
    sets_mode: backup
    rollback: {run: "true"}
  - id: point-to-cloud
    kind: command
    for_each: wave1
    run: "true"
    serves: cloud
    rollback: {run: "true"}
  - id: return-to-nominal
    kind: command
    for_each: wave1
    run: "true"
    sets_mode: nominal
    rollback: {run: "true"}
"""


def test_the_programme_shows_where_each_samu_is_served_and_a_junk_run_changes_nothing(project: Project):
    """Defect: after a completed night, a junk run rolled back made the programme say 0 migrated, "rolled back"."""
    project.write_runbook("night", NIGHT)
    project.cutover("run", "night", "--env", "lab", "--run-id", "n1", "--auto-approve", "bot", check=0)
    project.cutover("run", "night", "--env", "lab", "--run-id", "past1", check=3)  # waits at its gate
    project.cutover("rollback", "past1", check=5)  # nothing to undo
    summary = json.loads(project.cutover("programme", "--env", "lab", "--json", check=0).stdout)
    samus = [s for w in summary["waves"] for s in w["samus"]]
    assert (summary["migrated"], summary["total"]) == (10, 10)
    assert {(s["state"], s["served_by"], s["mode"], s["run_id"], s["step"]) for s in samus} == {
        ("migrated", "cloud", "nominal", "n1", "return-to-nominal")}
    assert {s["effects"]["served"]["step"] for s in samus} == {"point-to-cloud"}
    text = project.cutover("programme", "--env", "lab", check=0).stdout
    assert "10/10 SAMUs migrated" in text and "n1 / return-to-nominal" in text
