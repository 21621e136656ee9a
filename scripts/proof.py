"""`make proof`: the proofs too long for `make test`, each printing what it proved.

1. A crash inside every step of the lab night: on a 3-SAMU lab with traffic
   flowing, for each action step of the big-bang runbook, the controller is
   killed (SIGKILL) while that step runs, then `cutover resume` finishes the
   night; the lab is then reset for the next step (`lab down`, `lab up`).
   Each night must complete with every SAMU nominal on the cloud and, across
   the lab, lost 0, missing 0, duplicated 0.

3. (after 2) A standby takes over the lab night on PostgreSQL: controller A,
   under another host name (``unshare --uts``, so liveness comes from
   heartbeats, not pids), drives the night with the journal on a PostgreSQL
   server started for the proof; controller B waits with ``resume
   --standby``; A is killed during the migration; B takes over within the
   lease TTL + 10 s and completes the night: lost 0, missing 0, duplicated 0.
   Needs root (for unshare); skipped, and said so, otherwise.

2. The programme in the lab: 100 SAMUs in ten waves, one night per wave,
traffic to all 100 throughout, each night's report written and its cost
measured (scripts/programme_proof.py, which says what it checks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import programme_proof as programme  # noqa: E402  (scripts/ is not a package)
from night import stop_on_sigterm  # noqa: E402
from programme_proof import CUTOVER, ProofFailed, cutover, read_json  # noqa: E402

CRASH_SAMUS = 3
NIGHT_STEPS = ("preflight", "backup-mode", "freeze-legacy", "migrate", "point-to-cloud", "verify-cloud",
               "return-to-nominal", "sign-off")


@contextmanager
def proof_lab(*options: str) -> Iterator[tuple[Path, str]]:
    """A lab up in a temporary state folder (its state folder and --env), always brought down."""
    with tempfile.TemporaryDirectory(prefix="cutover-proof-") as folder:
        state = Path(folder)
        up = cutover(state, "lab", "up", *options, "--json")
        if up.returncode != 0:
            raise ProofFailed(f"lab up failed: {up.stderr}")
        try:
            yield state, json.loads(up.stdout)["env"]
        finally:
            cutover(state, "lab", "down")


def crash_inside_step(console: Console, step: str) -> None:
    with proof_lab("--samus", str(CRASH_SAMUS), "--rate", "3") as (state, env):
        controller = subprocess.Popen([CUTOVER, "--state-dir", str(state), "run", "bigbang", "--env", env,
                                       "--run-id", "crash", "--auto-approve", "proof"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL)
        started = wait_for_step(state, step, controller)
        controller.kill()
        controller.wait()
        resumed = cutover(state, "resume", "crash", "--auto-approve", "proof")
        if resumed.returncode != 0:
            raise ProofFailed(f"resume after a crash inside {step} exited {resumed.returncode}:\n"
                              f"{resumed.stdout[-3000:]}{resumed.stderr}")
        sites = {s["code"]: (s["mode"], s["platform"]) for s in read_json(state, "lab", "status")["sites"]}
        if set(sites.values()) != {("nominal", "cloud")}:
            raise ProofFailed(f"after a crash inside {step} and resume: {sites}")
        calls = read_json(state, "lab", "calls")
        if (calls["lost"], calls["records_missing"], calls["records_duplicated"]) != (0, 0, 0):
            raise ProofFailed(f"after a crash inside {step}: {json.dumps(calls)[:2000]}")
        console.print(f"[green]✓[/] killed inside {step} ({started}), resumed: every SAMU nominal on the "
                      f"cloud; calls placed {calls['placed']}, lost 0, missing 0, duplicated 0")


def wait_for_step(state: Path, step: str, controller: subprocess.Popen[bytes]) -> str:
    """Block until ``step`` has started (its step_started is durable); returns how far in it is."""
    import sqlite3

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if controller.poll() is not None:
            raise ProofFailed(f"the night ended (exit {controller.returncode}) before {step} started")
        try:
            with sqlite3.connect(f"file:{state / 'journal.db'}?mode=ro", uri=True, timeout=5) as conn:
                rows = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'step_started' "
                                    "AND json_extract(payload, '$.step') = ?", (step,)).fetchone()
            if rows[0]:
                return f"{rows[0]} target(s) started"
        except sqlite3.Error:
            pass  # the journal is being created
        time.sleep(0.05)
    raise ProofFailed(f"{step} never started")


def standby_proof(console: Console) -> None:
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        console.print("[yellow]skipped[/]: the standby proof needs root and unshare(1) (another host name for A)")
        return
    from cutover.journal.postgres import init_schema
    from cutover.testing.postgres import start_postgres

    server = start_postgres()
    try:
        init_schema(server.url)
        with proof_lab("--samus", str(CRASH_SAMUS), "--rate", "3") as (state, env):
            _standby_night(console, state, env, server.url)
    finally:
        server.stop()


def _standby_night(console: Console, state: Path, env: str, url: str) -> None:
    ttl = "6"
    base = [CUTOVER, "--state-dir", str(state), "--journal", url, "--lease-ttl", ttl]
    driver = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname controller-a && exec "$@"', "sh", *base,
                               "run", "bigbang", "--env", env, "--run-id", "standby", "--auto-approve", "proof"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    standby: subprocess.Popen[str] | None = None
    try:
        _wait_pg(url, "standby", "preflight", driver)  # the run exists: B can stand by for it
        standby = subprocess.Popen([*base, "resume", "standby", "--standby", "--auto-approve", "proof"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        _wait_pg(url, "standby", "migrate", driver)
        driver.kill()
        killed_at = time.monotonic()
        driver.wait()
        if standby.wait(timeout=900) != 0:
            detail = standby.stderr.read()[-2000:] if standby.stderr else ""
            raise ProofFailed(f"the standby exited {standby.returncode}: {detail}")
    finally:
        for process in (driver, standby):
            if process is not None and process.poll() is None:
                process.kill()
    took_over = _takeover_delay(url, "standby")
    if took_over is None or took_over - killed_at > float(ttl) + 10:
        raise ProofFailed(f"the standby did not take over within the TTL + 10 s ({took_over})")
    sites = {s["code"]: (s["mode"], s["platform"]) for s in read_json(state, "lab", "status")["sites"]}
    calls = read_json(state, "lab", "calls")
    if set(sites.values()) != {("nominal", "cloud")} or \
            (calls["lost"], calls["records_missing"], calls["records_duplicated"]) != (0, 0, 0):
        raise ProofFailed(f"after the standby's takeover: {sites}, {json.dumps(calls)[:1000]}")
    console.print(f"[green]✓[/] A (host controller-a) killed during the migration; B took over "
                  f"{took_over - killed_at:.1f} s later (TTL {ttl} s) and completed the night; calls placed "
                  f"{calls['placed']}, lost 0, missing 0, duplicated 0")


def _wait_pg(url: str, run_id: str, step: str, driver: subprocess.Popen[bytes]) -> None:
    import psycopg

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise ProofFailed(f"controller A ended (exit {driver.returncode}) before {step} started")
        with psycopg.connect(url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM cutover_events WHERE run_id = %s AND kind = 'step_started' "
                            "AND payload LIKE %s", (run_id, f'%"step":"{step}"%')).fetchone():
                return
        time.sleep(0.1)
    raise ProofFailed(f"{step} never started")


def _takeover_delay(url: str, run_id: str) -> float | None:
    """When the takeover was journalled, on this process's monotonic clock."""
    import datetime as dt

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT at FROM cutover_events WHERE run_id = %s AND kind = 'lease_taken_over'",
                           (run_id,)).fetchone()
    if row is None:
        return None
    at = dt.datetime.fromisoformat(row[0].replace("Z", "+00:00"))
    return time.monotonic() - (dt.datetime.now(dt.timezone.utc) - at).total_seconds()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                            epilog="Runs for about two hours; give it the machine alone.").parse_args(argv)
    stop_on_sigterm()
    console = Console(highlight=False)
    os.environ.setdefault("CUTOVER_OPERATOR", "proof")
    started = time.monotonic()
    try:
        console.rule(f"[bold]proof 1: a crash inside every step of the lab night ({CRASH_SAMUS} SAMUs, traffic)")
        for step in NIGHT_STEPS:
            crash_inside_step(console, step)
        console.rule("[bold]proof 2: the programme, 100 SAMUs in ten waves, ten nights, traffic to every SAMU")
        programme.prove(console, samus=100, waves=10, rate=0.2)
        console.rule("[bold]proof 3: a standby controller takes over the lab night on PostgreSQL")
        standby_proof(console)
    except ProofFailed as failure:
        console.print(f"[bold red]✗ proof failed:[/] {failure}")
        return 1
    console.print(f"[bold green]proved[/] in {time.monotonic() - started:.0f} s: a crash inside each of the "
                  f"{len(NIGHT_STEPS)} action steps of the night; the programme of 100 SAMUs in ten "
                  "nights, each touching only its wave; a standby taking over a dead driver on PostgreSQL; "
                  "nothing lost anywhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
