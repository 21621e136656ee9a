"""The main job: the whole big-bang night in the local lab, end to end (`make night`).

It types what an operator would: `cutover lab up`, `cutover run bigbang --env
lab --auto-approve ...` (the live view on a terminal), then reads `cutover lab
status` and `cutover lab calls`, and always `cutover lab down`, after which it
prints SIPp's final count and where its statistics files are. It exits 0 only
if the run completed, every SAMU of the wave is nominal on the cloud platform,
SIPp counts no failed call, and no call record was lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CUTOVER = str(Path(sys.executable).parent / "cutover")
RUNBOOK = "bigbang"
APPROVER = "lab-demo"
SETTLE_SECONDS = 3.0  # traffic before the night starts and after it ends, so both edges are covered


def typed_command(cutover_path: str = CUTOVER) -> str:
    """How to type `cutover` in this shell: its bare name if PATH finds this one, else its path from here.

    `make night` does not activate the virtual environment, so a bare `cutover` is
    usually not found (exit 127): the commands printed at the end must work as printed.
    """
    found = shutil.which("cutover")
    if found and Path(found).resolve() == Path(cutover_path).resolve():
        return "cutover"
    try:
        return str(Path(cutover_path).relative_to(Path.cwd()))
    except ValueError:
        return cutover_path


def cutover(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen([CUTOVER, *args], text=True, stdout=pipe, stderr=pipe, stdin=subprocess.DEVNULL) as process:
        try:
            out, err = process.communicate()
        except SystemExit:  # SIGTERM (stop_on_sigterm): passed on, so a drive pauses, journalled, before we go
            process.terminate()
            process.communicate(timeout=120)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def read_json(*args: str) -> Any:
    result = cutover(*args, "--json", capture=True)
    if result.returncode != 0:
        raise RuntimeError(f"cutover {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def night(console: Console, run_id: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    console.rule("[bold]1. the lab: one sshd per SAMU site and platform, real databases, "
                 "Kamailio routing, SIPp calling")
    up = cutover("lab", "up")
    if up.returncode != 0:
        raise SystemExit(up.returncode)
    time.sleep(SETTLE_SECONDS)
    roll_back_unfinished_nights(console)
    console.rule(f"[bold]2. the night: runbooks/{RUNBOOK}.yaml on the lab (gates approved by {APPROVER}, lab only)")
    started = time.monotonic()
    run = cutover("run", RUNBOOK, "--env", "lab", "--run-id", run_id, "--auto-approve", APPROVER)
    console.print(f"the night took {time.monotonic() - started:.0f} s (exit {run.returncode})")
    time.sleep(SETTLE_SECONDS)
    return run.returncode, read_json("lab", "status"), read_json("lab", "calls")


def roll_back_unfinished_nights(console: Console) -> None:
    """An earlier `make night` that was stopped left its run unfinished, holding the lab's SAMUs: roll it back.

    One night acts on a SAMU at a time, so the new night would be refused (exit 6). The lab just came up
    fresh, and rollback actions are idempotent: rolling the old run back on it ends the run as an
    operator would, journalled (`--take-over` when its controller died without releasing its lease).
    """
    for run in read_json("runs"):
        if run["env"] == "lab" and run["state"] in ("running", "paused", "failed"):
            console.print(f"an earlier night, {run['run_id']}, was left {run['state']}: rolling it back first")
            cutover("rollback", run["run_id"], "--take-over", "--yes")


def report(console: Console, code: int, status: dict[str, Any], calls: dict[str, Any]) -> bool:
    console.rule("[bold]3. the outcome")
    table = Table(header_style="bold")
    for column in ("SAMU", "mode", "platform", "left in buffer"):
        table.add_column(column)
    on_cloud = True
    for site in status["sites"]:
        ok = site["mode"] == "nominal" and site["platform"] == "cloud" and site["buffer"] == 0
        on_cloud &= ok
        style = "green" if ok else "bold red"
        table.add_row(site["code"], site["mode"], site["platform"], str(site["buffer"]), style=style)
    console.print(table)
    figures = ("placed", "answered", "lost", "records_missing", "records_duplicated")
    console.print("calls: " + ", ".join(f"{name.replace('_', ' ')} {calls[name]}" for name in figures))
    sipp = calls.get("sipp") or {}
    if sipp:
        console.print(f"SIPp: placed {sipp['placed']}, successful {sipp['successful']}, failed {sipp['failed']}, "
                      f"in progress {sipp['in_progress']}")
    success = code == 0 and on_cloud and calls["lost"] == 0 and calls["records_missing"] == 0 \
        and calls["records_duplicated"] == 0 and calls["placed"] > 0
    verdict = "[bold green]every SAMU nominal on the cloud platform; no call and no record lost" if success \
        else "[bold red]the night did not end as it must: see above"
    console.print(verdict)
    return success


def final_count(console: Console) -> None:
    """Once SIPp has stopped (its calls in progress ended): its own final figures and raw files."""
    try:
        sipp = read_json("lab", "calls").get("sipp") or {}
    except RuntimeError as exc:
        console.print(f"[red]{exc}")
        return
    if sipp:
        console.print(f"SIPp's final count: placed {sipp['placed']}, successful {sipp['successful']}, "
                      f"failed {sipp['failed']}; its statistics: {sipp['files'][-1]['stat']}")


def stop_on_sigterm() -> None:
    """SIGTERM (a `kill`, a CI timeout) ends the script as Ctrl-C does: its `finally` blocks take the lab down.

    Python's default for SIGTERM is to die on the spot, which would leave the lab's processes running.
    """
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]).parse_args(argv)  # --help; nothing else
    stop_on_sigterm()
    console = Console(highlight=False)
    os.environ.setdefault("CUTOVER_OPERATOR", "demo")
    run_id = f"night-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        code, status, calls = night(console, run_id)
        success = report(console, code, status, calls)
        written = cutover("report", run_id, capture=True)  # while the lab is up: the report holds its call account
        console.print(written.stdout.strip() if written.returncode == 0 else f"[red]report failed: {written.stderr}")
    finally:
        cutover("lab", "down")
    final_count(console)
    command = typed_command()
    console.print(f"[dim]journal: `{command} status {run_id}`, `{command} journal verify {run_id} --anchors`[/]")
    if command != "cutover":
        console.print(f"[dim](or `. {Path(command).parent}/activate` first, then `cutover ...`)[/]")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
