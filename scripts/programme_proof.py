"""The whole programme in the lab: 100 SAMUs in ten waves, one night per wave, traffic to all 100.

Run by `make proof` (``scripts/proof.py``), or alone::

    .venv/bin/python scripts/programme_proof.py [--samus 100] [--waves 10] [--rate 0.2]

A lab of SAMUS sites in WAVES waves comes up in a temporary state folder,
SIPp calling every SAMU throughout (``--rate`` calls per second per SAMU). The
nights run in sequence, `cutover run bigbang --param wave=waveN`. After each:
the run completed; the SAMUs of the waves moved so far are nominal on the
cloud and every other SAMU nominal on legacy; across all SAMUs no call lost
and no record missing or duplicated, and SIPp's own count of failed calls at
zero; its sign-off report written. At the end
`cutover programme --json` must say SAMUS/SAMUS migrated.

What it costs is measured for each night, and written with the reports and
the programme's JSON under ``.cutover/proof/programme/``:

- the controller: CPU seconds (user + system) of the `cutover run` process
  and every process it waited for (its ansible-playbook runs), from
  ``getrusage(RUSAGE_CHILDREN)``; the largest resident set among them;
- the lab: the resident memory of its long-lived processes (sshd per host,
  the answering agents, Kamailio, SIPp, the PostgreSQL clusters), sampled
  every two seconds, its peak; their CPU seconds over the night;
- the machine: its CPU busy share over the night (``/proc/stat``) and the
  lowest ``MemAvailable`` seen.

Exit 0 when every night held, 1 with the first failure otherwise; a lab that
cannot come up at this size says so (run a smaller one with ``--samus``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from night import stop_on_sigterm  # scripts/ is on the path: it is this script's folder
from rich.console import Console

CUTOVER = str(Path(sys.executable).parent / "cutover")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / ".cutover" / "proof" / "programme"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class ProofFailed(Exception):
    pass


def cutover(state: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CUTOVER, "--state-dir", str(state), *args], text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def read_json(state: Path, *args: str) -> Any:
    result = cutover(state, *args, "--json")
    if result.returncode != 0:
        raise ProofFailed(f"cutover {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- measuring


def lab_pids(state: Path) -> list[int]:
    """The lab's long-lived processes: their command line names the lab's folder, or a lab cluster."""
    marker = str(state)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (marker in command and "cutover" not in command.split(" ", 1)[0]) or command.startswith("postgres: cutover-lab"):
            found.append(int(entry.name))
    return found


def proc_usage(pids: list[int]) -> tuple[float, int]:
    """CPU seconds and resident bytes of ``pids`` (those still alive)."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        rss += int(fields[21]) * PAGE
    return cpu, rss


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class NightCost:
    wave: int
    wall_s: float = 0.0
    controller_cpu_s: float = 0.0
    controller_max_rss_mb: float = 0.0
    lab_peak_rss_mb: float = 0.0
    lab_cpu_s: float = 0.0
    machine_busy_pct: float = 0.0
    machine_min_available_mb: float = 0.0
    calls_placed: int = 0
    samples: list[float] = field(default_factory=list, repr=False)


@contextmanager
def measured(state: Path, wave: int) -> Iterator[NightCost]:
    cost = NightCost(wave)
    pids = lab_pids(state)
    lab_cpu_before, _ = proc_usage(pids)
    busy0, total0 = machine_cpu()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop = threading.Event()
    low = [mem_available()]

    def sample() -> None:
        while not stop.wait(2.0):
            cost.samples.append(proc_usage(pids)[1] / 2**20)
            low[0] = min(low[0], mem_available())

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    try:
        yield cost
    finally:
        stop.set()
        sampler.join()
        cost.wall_s = round(time.monotonic() - started, 1)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cost.controller_cpu_s = round(children.ru_utime + children.ru_stime
                                      - children0.ru_utime - children0.ru_stime, 1)
        cost.controller_max_rss_mb = round(children.ru_maxrss / 1024, 1)  # KiB on Linux; the largest so far
        lab_cpu_after, _ = proc_usage(pids)
        cost.lab_cpu_s = round(lab_cpu_after - lab_cpu_before, 1)
        cost.lab_peak_rss_mb = round(max(cost.samples, default=0.0), 1)
        busy1, total1 = machine_cpu()
        cost.machine_busy_pct = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
        cost.machine_min_available_mb = round(low[0] / 2**20, 1)


# ----------------------------------------------------------------------------- the proof


@contextmanager
def programme_lab(samus: int, waves: int, rate: float) -> Iterator[tuple[Path, str, float]]:
    with tempfile.TemporaryDirectory(prefix="cutover-programme-") as folder:
        state = Path(folder)
        started = time.monotonic()
        up = cutover(state, "lab", "up", "--samus", str(samus), "--waves", str(waves), "--rate", f"{rate:g}",
                     "--json")
        if up.returncode != 0:
            cutover(state, "lab", "down")
            raise ProofFailed(f"a {samus}-SAMU lab did not come up (exit {up.returncode}): "
                              f"{up.stderr.strip()[-2000:]}\nrun a smaller one: --samus N")
        try:
            yield state, json.loads(up.stdout)["env"], time.monotonic() - started
        finally:
            cutover(state, "lab", "down")


def run_night(console: Console, state: Path, env: str, wave: int, waves: int) -> NightCost:
    run_id = f"programme-wave{wave}"
    with measured(state, wave) as cost:
        run = cutover(state, "run", "bigbang", "--env", env, "--param", f"wave=wave{wave}", "--run-id", run_id,
                      "--label", f"vague {wave}", "--auto-approve", "proof")
    if run.returncode != 0:
        raise ProofFailed(f"the wave{wave} night exited {run.returncode}:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    sites = {s["code"]: (s["mode"], s["platform"]) for s in read_json(state, "lab", "status")["sites"]}
    positions = read_json(state, "programme", "--env", env)
    moved = {s["code"] for w in positions["waves"][:wave] for s in w["samus"]}
    wrong = {code: where for code, where in sites.items()
             if where != ("nominal", "cloud" if code in moved else "legacy")}
    if wrong:
        raise ProofFailed(f"after the wave{wave} night, SAMUs are not where they should be: {wrong}")
    calls = read_json(state, "lab", "calls")
    sipp_failed = (calls.get("sipp") or {}).get("failed")
    if (calls["lost"], calls["records_missing"], calls["records_duplicated"], sipp_failed) != (0, 0, 0, 0):
        kept = keep_evidence(calls, OUT / f"{run_id}-failed")
        raise ProofFailed(f"after the wave{wave} night (SIPp failed {sipp_failed}; its files kept in {kept}): "
                          f"{json.dumps(calls)[:2000]}")
    silent = [code for code, account in calls["samus"].items() if account["placed"] == 0]
    if silent:
        raise ProofFailed(f"no call was placed to SAMU(s) {', '.join(silent)}")
    report = cutover(state, "report", run_id, "--out", str(OUT / f"{run_id}.html"))
    if report.returncode != 0:
        raise ProofFailed(f"the report of {run_id} exited {report.returncode}: {report.stderr[-2000:]}")
    cost.calls_placed = calls["placed"]
    console.print(f"[green]✓[/] wave{wave}/{waves}: {cost.wall_s:.0f} s; {len(moved)} SAMUs on the cloud, "
                  f"{len(sites) - len(moved)} on legacy, all nominal; calls placed so far {calls['placed']}, "
                  f"lost 0, missing 0, duplicated 0; controller {cost.controller_cpu_s:.0f} CPU-s, lab "
                  f"{cost.lab_cpu_s:.0f} CPU-s, lab memory peak {cost.lab_peak_rss_mb:.0f} MB, machine busy "
                  f"{cost.machine_busy_pct:.0f}%")
    return cost


def keep_evidence(calls: dict[str, Any], folder: Path) -> Path:
    """Copy the callers' files (statistics, errors, SIP error codes) out of the lab before it is taken down."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calls.json").write_text(json.dumps(calls, indent=2, ensure_ascii=False))
    for files in (calls.get("sipp") or {}).get("files", []):
        for path in files.values():
            if Path(path).is_file():
                shutil.copy2(path, folder / Path(path).name)
    return folder.relative_to(REPO)


def prove(console: Console, samus: int, waves: int, rate: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with programme_lab(samus, waves, rate) as (state, env, up_s):
        console.print(f"lab up: {samus} SAMUs in {waves} waves, {rate:g} call/s per SAMU, in {up_s:.0f} s")
        costs = [run_night(console, state, env, wave, waves) for wave in range(1, waves + 1)]
        summary = read_json(state, "programme", "--env", env)
        calls = read_json(state, "lab", "calls")
    (OUT / "programme.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    (OUT / "costs.json").write_text(json.dumps({
        "samus": samus, "waves": waves, "rate_per_samu": rate, "lab_up_s": round(up_s, 1),
        "total_s": round(time.monotonic() - started, 1), "cpus": os.cpu_count(),
        "calls": {k: calls[k] for k in ("placed", "answered", "lost", "records_missing", "records_duplicated")},
        "sipp": calls.get("sipp"),
        "nights": [{k: v for k, v in asdict(c).items() if k != "samples"} for c in costs]}, indent=2))
    if (summary["migrated"], summary["total"]) != (samus, samus):
        raise ProofFailed(f"programme: {summary['migrated']}/{summary['total']} migrated")
    console.print(f"[green]✓[/] programme: {summary['migrated']}/{summary['total']} SAMUs migrated in {waves} "
                  f"nights; calls placed {calls['placed']}, lost 0, missing 0, duplicated 0; reports and costs "
                  f"in {OUT.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samus", type=int, default=100)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.2, help="calls per second per SAMU")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    console = Console(highlight=False)
    os.environ.setdefault("CUTOVER_OPERATOR", "proof")
    try:
        prove(console, args.samus, args.waves, args.rate)
    except ProofFailed as failure:
        console.print(f"[bold red]✗ proof failed:[/] {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
