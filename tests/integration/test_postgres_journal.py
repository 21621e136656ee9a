"""The journal on a real PostgreSQL server, through the real `cutover` command.

The server is started by a fixture (initdb + pg_ctl on a free loopback port,
password authentication). `journal init` creates the schema and the two
roles; a night of command steps is driven through the controller role and
read through the watcher role; the roles can do what they must and nothing
more; runs copy between SQLite and PostgreSQL with their chains intact; and a
password never shows in an error.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cutover.testing.postgres import PostgresServer, start_postgres
from tests.e2e.conftest import Project, project  # noqa: F401 - the e2e project fixture, reused here
from tests.e2e.test_hardening import SLOW
from tests.processes import wait_until

pytestmark = pytest.mark.integration

CONTROLLER_PW, WATCHER_PW = "controller-pw-4d1f", "watcher-pw-9a2e"
NIGHT = """\
name: pgnight
steps:
  - id: first
    kind: command
    run: echo first >> effects.log
    verify: {run: grep -qx first effects.log}
    rollback: {run: echo undo-first >> effects.log}
  - id: fan
    kind: command
    for_each: wave1
    concurrency: 5
    run: echo "fan $CUTOVER_TARGET" >> effects.log
    rollback: none
    rollback_reason: test
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    started = start_postgres()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def urls(server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("pw")
    (folder / "controller").write_text(CONTROLLER_PW)
    (folder / "watcher").write_text(WATCHER_PW)
    result = subprocess.run([*Project(folder, folder / "state").base(), "journal", "init", server.url,
                             "--controller-password-file", str(folder / "controller"),
                             "--watcher-password-file", str(folder / "watcher")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "owner-test-secret" not in result.stdout + result.stderr  # the owner's password is redacted
    return {"owner": server.url, "controller": server.url_for("cutover_controller", CONTROLLER_PW),
            "watcher": server.url_for("cutover_watcher", WATCHER_PW)}


def test_a_night_driven_through_the_controller_role_is_read_through_the_watcher_role(project: Project, urls):
    project.write_runbook("pgnight", NIGHT)
    run = project.cutover("--journal", urls["controller"], "run", "pgnight", "--env", "lab", "--run-id", "pg1")
    assert run.returncode == 0, run.stdout + run.stderr
    status = json.loads(project.cutover("--journal", urls["watcher"], "status", "pg1", "--json", check=0).stdout)
    assert status["state"] == "completed" and {s["state"] for s in status["steps"]} == {"succeeded"}
    assert project.cutover("--journal", urls["watcher"], "journal", "verify").returncode == 0
    report = json.loads(project.cutover("--journal", urls["watcher"], "report", "pg1", "--format", "json",
                                        "--out", "-", check=0).stdout)
    assert report["journal"]["verified"] and report["state"] == "completed"
    rolled = project.cutover("--journal", urls["controller"], "rollback", "pg1", "--yes")
    assert rolled.returncode == 5, rolled.stderr
    assert (project.root / "effects.log").read_text().count("undo-first") == 1
    assert not (project.state / "journal.db").exists()  # nothing went to the default SQLite journal


def test_the_roles_may_do_what_they_must_and_nothing_more(urls):
    with psycopg.connect(urls["controller"], autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cutover_events").fetchone()[0] > 0
        for statement in ("DELETE FROM cutover_events", "UPDATE cutover_events SET kind = 'x'",
                          "TRUNCATE cutover_events"):
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
    with psycopg.connect(urls["owner"], autocommit=True) as conn:  # even the owner: the triggers refuse
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("DELETE FROM cutover_events WHERE seq = 1")
    with psycopg.connect(urls["watcher"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO cutover_leases VALUES ('x', 'y', 'z', 1)")


def test_the_controller_role_cannot_write_a_forged_history(urls):
    """It may append only through cutover_append, which chains the event itself; it owns nothing."""
    from cutover.core.events import canonical_json, event_hash

    with psycopg.connect(urls["controller"], autocommit=True) as conn:
        seq, prev = conn.execute("SELECT seq, hash FROM cutover_head WHERE id = 1").fetchone()
        payload = {"step": "point-of-no-return", "approver": "forged", "auto": True}
        at, forged = "2026-01-01T00:00:00.000000Z", seq + 1
        digest = event_hash(forged, "pg1", "gate_approved", at, "mallory", payload, prev)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a correctly chained event, inserted directly
            conn.execute("INSERT INTO cutover_events VALUES (%s, 'pg1', 'gate_approved', %s, 'mallory', %s, %s, %s)",
                         (forged, at, canonical_json(payload), prev, digest))
        for statement in ("UPDATE cutover_head SET seq = seq + 1",
                          "ALTER TABLE cutover_events DISABLE TRIGGER USER",
                          "ALTER TABLE cutover_events DISABLE TRIGGER cutover_events_no_change"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE 'cutover_%'").fetchall()
        assert owners and all(owner not in ("cutover_controller", "cutover_watcher") for (owner,) in owners)
        # the function appends, chained exactly as the Python side chains (rolled back: no stray run)
        with conn.transaction(force_rollback=True):
            row = conn.execute("SELECT * FROM cutover_append(ARRAY['pg-note'], ARRAY['note'], ARRAY[%s], "
                               "ARRAY['ctl'], ARRAY['{}'])", (at,)).fetchone()
        assert row[2] == event_hash(row[0], "pg-note", "note", at, "ctl", {}, row[1])
    with psycopg.connect(urls["watcher"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM cutover_append(ARRAY['x'], ARRAY['note'], ARRAY['t'], ARRAY['w'], ARRAY['{}'])")
    with psycopg.connect(urls["owner"], autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cutover_events WHERE kind = 'gate_approved' "
                            "AND operator = 'mallory'").fetchone()[0] == 0


def test_runs_copy_between_sqlite_and_postgresql_with_their_chains_intact(project: Project, urls, tmp_path: Path):
    project.write_runbook("pgnight", NIGHT)
    assert project.cutover("run", "pgnight", "--env", "lab", "--run-id", "local1").returncode == 0
    sqlite_url = f"sqlite:///{project.state / 'journal.db'}"
    copied = project.cutover("journal", "copy", sqlite_url, urls["controller"], "local1")
    assert copied.returncode == 0, copied.stderr
    back = f"sqlite:///{tmp_path / 'archive.db'}"
    assert project.cutover("journal", "copy", urls["watcher"], back).returncode == 0
    runs = json.loads(project.cutover("--journal", back, "runs", "--json", check=0).stdout)
    assert {"pg1", "local1"} <= {r["run_id"] for r in runs}
    assert project.cutover("--journal", back, "journal", "verify").returncode == 0
    timings = json.loads(project.cutover("--journal", back, "timings", "pgnight", "--env", "lab", "--json",
                                         check=0).stdout)
    assert {r["run_id"] for r in timings["runs"]} >= {"pg1", "local1"}


def test_a_wrong_password_is_a_clear_error_that_never_shows_the_password(project: Project, server: PostgresServer):
    wrong = server.url_for("cutover_controller", "not-the-password-77")
    result = project.cutover("--journal", wrong, "runs")
    assert result.returncode == 1 and "cannot connect to the journal" in result.stderr
    assert "not-the-password-77" not in result.stderr and "********" in result.stderr




def _wait_for(url: str, run_id: str, kind: str, step: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM cutover_events WHERE run_id = %s AND kind = %s AND payload LIKE %s",
                            (run_id, kind, f'%"step":"{step}"%')).fetchone():
                return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} {step} within {timeout}s")


def test_a_standby_takes_over_a_dead_driver_while_watchers_follow(project: Project, urls):
    import signal

    # s2 holds until released, so the run cannot finish before the standby has seen its driver
    held = SLOW.replace("sleep 4", "until [ -e release ]; do sleep 0.05; done")
    assert held != SLOW
    project.write_runbook("slow", held)
    driver = project.spawn("--journal", urls["controller"], "run", "slow", "--env", "lab", "--run-id", "sb1")
    try:
        _wait_for(urls["watcher"], "sb1", "step_started", "s2")
        standby = project.spawn("--journal", urls["controller"], "--lease-ttl", "3", "resume", "sb1", "--standby")
        watcher = project.spawn("--journal", urls["watcher"], "status", "sb1", "--watch", "--every", "0.3")
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(standby.stderr), daemon=True)
        reader.start()
        # the standby has seen the driver alive (a fixed sleep lost that race on a loaded machine)
        assert wait_until(lambda: any("drives run sb1" in line for line in said), 60), said
        assert standby.poll() is None  # the driver is alive: the standby waits
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        (project.root / "release").touch()
        assert standby.wait(timeout=60) == 0, "".join(said)
        reader.join(timeout=10)
        standby_err = "".join(said)
        assert "standby: " in standby_err and "drives run sb1" in standby_err and "taking over" in standby_err
        assert watcher.wait(timeout=30) == 0
        assert watcher.stdout.read().strip().splitlines()[-1].startswith("run sb1: completed")
    finally:
        for process in (driver,):
            if process.poll() is None:
                process.kill()
    with psycopg.connect(urls["watcher"], autocommit=True) as conn:
        reasons = [r[0] for r in conn.execute("SELECT payload FROM cutover_events WHERE run_id = 'sb1' "
                                              "AND kind = 'lease_taken_over'").fetchall()]
    assert len(reasons) == 1 and "is no longer running" in reasons[0]
    assert (project.root / "effects.log").read_text().split().count("s3") == 1


@pytest.mark.skipif(__import__("os").geteuid() != 0 or __import__("shutil").which("unshare") is None,
                    reason="needs root and unshare(1) to run a controller under another host name")
def test_a_zombie_controller_on_another_host_is_fenced_by_postgresql(project: Project, urls):
    """A on host frozen-vm is stopped past the TTL; B takes over; A, continued, appends nothing and exits 6."""
    import os
    import signal
    import time

    project.write_runbook("slow", SLOW)
    zombie = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname frozen-vm && exec "$@"', "sh",
                               *project.base(), "--journal", urls["controller"], "--lease-ttl", "2",
                               "run", "slow", "--env", "lab", "--run-id", "z1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(urls["watcher"], "z1", "step_started", "s2")
        os.kill(zombie.pid, signal.SIGSTOP)
        time.sleep(3)  # past the TTL: frozen-vm's heartbeat is stale
        rescue = project.cutover("--journal", urls["controller"], "--lease-ttl", "2", "resume", "z1", "--take-over")
        assert rescue.returncode == 0, rescue.stdout + rescue.stderr
        with psycopg.connect(urls["watcher"], autocommit=True) as conn:
            before = conn.execute("SELECT COUNT(*) FROM cutover_events WHERE run_id = 'z1'").fetchone()[0]
        os.kill(zombie.pid, signal.SIGCONT)
        _, err = zombie.communicate(timeout=30)
    finally:
        if zombie.poll() is None:
            os.kill(zombie.pid, signal.SIGCONT)
            zombie.kill()
    assert zombie.returncode == 6 and "lost the lease on run z1" in err, err
    with psycopg.connect(urls["watcher"], autocommit=True) as conn:
        after = conn.execute("SELECT COUNT(*) FROM cutover_events WHERE run_id = 'z1'").fetchone()[0]
    assert after == before
    effects = (project.root / "effects.log").read_text().split()
    assert effects.count("s1") == 1 and effects.count("s3") == 1


STALL_BOUND_S = 2  # this test's journal: a session idle 2 s inside a transaction is ended by the server


@pytest.fixture(scope="module")
def stall_urls(server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A second journal database, initialised with a short stall bound (the roles' settings are per database)."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE stall")
    folder = tmp_path_factory.mktemp("stallpw")
    (folder / "controller").write_text(CONTROLLER_PW)
    owner = server.url.replace("/postgres?", "/stall?")
    result = subprocess.run([*Project(folder, folder / "state").base(), "journal", "init", owner,
                             "--controller-password-file", str(folder / "controller"),
                             "--stall-bound", str(STALL_BOUND_S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {"owner": owner, "controller": server.url_for("cutover_controller", CONTROLLER_PW, "stall")}


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_controller_frozen_inside_an_append_stalls_other_runs_only_up_to_the_bound(project: Project, stall_urls):
    """SIGSTOP with the head locked: another run appends within the bound; the frozen one, continued, exits 6."""
    import os
    import signal
    import threading
    import time

    from cutover.journal.postgres import PostgresJournal

    project.write_runbook("pgnight", NIGHT)
    frozen = subprocess.Popen([*project.base(), "--journal", stall_urls["controller"], "run", "pgnight",
                               "--env", "lab", "--run-id", "frozen1"],
                              env={**os.environ, "CUTOVER_CRASH_AT": "3:held"}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    other: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while not _stopped(frozen.pid):
            assert frozen.poll() is None and time.monotonic() < deadline, "the controller never froze"
            time.sleep(0.05)

        def appends() -> None:
            with PostgresJournal(stall_urls["controller"], "bob") as journal:
                started = time.monotonic()
                for i in range(3):
                    journal.append("other-run", "note", {"i": i})
                other["seconds"] = time.monotonic() - started

        writer = threading.Thread(target=appends, daemon=True)
        writer.start()
        writer.join(timeout=STALL_BOUND_S + 15)
        assert "seconds" in other, "another run's appends waited on the frozen controller past the bound"
        assert other["seconds"] < STALL_BOUND_S + 6
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    out, err = frozen.communicate(timeout=60)
    assert frozen.returncode == 6, (out, err)
    assert "ended in the middle of a transaction" in err and "cutover resume" in err
    with psycopg.connect(stall_urls["owner"], autocommit=True) as conn:
        kinds = {run: [k for (k,) in conn.execute("SELECT kind FROM cutover_events WHERE run_id = %s ORDER BY seq",
                                                  (run,))] for run in ("other-run", "frozen1")}
    assert kinds["other-run"] == ["note"] * 3
    # its third append (the first step's start) died with its transaction: nothing of it was written
    assert kinds["frozen1"] == ["run_created", "lease_acquired", "drive_started"]
    assert project.cutover("--journal", stall_urls["controller"], "journal", "verify").returncode == 0


def test_a_chain_the_table_owner_recomputes_passes_verify_but_not_its_anchor(project: Project, urls, tmp_path: Path):
    """The owner can still rewrite history (triggers off, hashes recomputed); the anchor catches it."""
    from cutover.core.events import canonical_json, event_hash
    from tests.e2e.test_anchors import _controller_key

    key, signers = _controller_key(tmp_path)
    project.write_runbook("pgnight", NIGHT)
    project.cutover("--journal", urls["controller"], "--anchor-key", str(key), "run", "pgnight", "--env", "lab",
                    "--run-id", "pga", check=0)
    anchored = ["--journal", urls["watcher"], "journal", "verify", "pga", "--anchors", "--allowed-signers", str(signers)]
    project.cutover(*anchored, check=0)
    with psycopg.connect(urls["owner"], autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE cutover_events DISABLE TRIGGER USER")
        seq, payload = conn.execute("SELECT seq, payload FROM cutover_events WHERE run_id = 'pga' "
                                    "AND kind = 'step_succeeded' ORDER BY seq LIMIT 1").fetchone()
        edited = json.loads(payload)
        edited["detail"] = "rewritten after the night"  # any change: the hashes are recomputed
        conn.execute("UPDATE cutover_events SET payload = %s WHERE seq = %s", (canonical_json(edited), seq))
        prev = conn.execute("SELECT hash FROM cutover_events WHERE seq = %s", (seq - 1,)).fetchone()[0]
        for number, run_id, kind, at, operator, text in conn.execute(
                "SELECT seq, run_id, kind, at, operator, payload FROM cutover_events WHERE seq >= %s ORDER BY seq",
                (seq,)).fetchall():
            digest = event_hash(number, run_id, kind, at, operator, json.loads(text), prev)
            conn.execute("UPDATE cutover_events SET prev_hash = %s, hash = %s WHERE seq = %s", (prev, digest, number))
            prev = digest
        conn.execute("UPDATE cutover_head SET hash = %s WHERE id = 1", (prev,))
        conn.execute("ALTER TABLE cutover_events ENABLE TRIGGER USER")
    project.cutover("--journal", urls["watcher"], "journal", "verify", check=0)  # the chain alone is consistent
    caught = project.cutover(*anchored, check=7)
    assert "no longer has the hash the controller signed" in caught.stderr
