"""The lab's callers: SIPp placing continuous "15" calls to every SAMU through the router.

``cutover lab up`` starts one SIPp (Debian ``sip-tester``) as a user agent
client: calls to every SAMU in turn (``samus.csv``, one line per SAMU) at the
lab's rate, each answered call held ``--hold`` seconds, then hung up. SIPp is
the independent count: it writes its own statistics under ``<lab>/sipp/``:

    caller.xml              the scenario (INVITE, 200, ACK, pause, BYE, 200)
    samus.csv               the numbers it dials
    run-<n>/stat.csv        ``-trace_stat -stf``: cumulative counters every second
    run-<n>/errors.log      ``-trace_err``: every unexpected message
    run-<n>/caller_<pid>_counts.csv       ``-trace_counts``: messages per scenario step
    run-<n>/caller_<pid>_error_codes.csv  ``-trace_error_codes``: the status codes that failed calls
    run-<n>/screen.log      ``-trace_screen``: SIPp's final screen

A new run folder starts each time SIPp starts (``lab up``, ``lab reset``).
``read_stats`` reads the last line of a run's ``stat.csv``: calls created,
successful, failed and why, in progress.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.errors import CutoverError, ToolMissing

SIPP = Path("/usr/bin/sipp")
DEFAULT_HOLD_S = 3.0
ANSWER_TIMEOUT_MS = 8000  # a call with no 200 within this is failed (SIPp: FailedTimeoutOnRecv)
STOP_GRACE_S = 2.0  # after SIGUSR1 (stop placing calls), calls in progress get their hold plus this to end
# SIPp's cumulative failure counters, by what they mean
FAILURES = {
    "FailedCannotSendMessage(C)": "cannot send",
    "FailedMaxUDPRetrans(C)": "no answer (UDP retransmissions exhausted)",
    "FailedUnexpectedMessage(C)": "unexpected message (a 4xx/5xx answer)",
    "FailedCallRejected(C)": "rejected",
    "FailedCmdNotSent(C)": "command not sent",
    "FailedRegexpDoesntMatch(C)": "regexp mismatch",
    "FailedRegexpHdrNotFound(C)": "header not found",
    "FailedOutboundCongestion(C)": "outbound congestion",
    "FailedTimeoutOnRecv(C)": "timeout waiting for an answer",
    "FailedTimeoutOnSend(C)": "timeout sending",
    "OutOfCallMsgs(C)": "message outside any call",
    "DeadCallMsgs(C)": "message for a dead call",
    "Retransmissions(C)": None,  # not a failure: shown apart
}


class TrafficFailed(CutoverError):
    """SIPp did not start."""


SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- The cutover lab's caller: one "15" call to the next SAMU of samus.csv, held, then hung up. -->
<scenario name="cutover lab caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:15-[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:15-[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Subject: cutover lab call to SAMU [field0]
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" timeout="{answer_timeout}"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:15-[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
[routes]
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:15-[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
[routes]
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" timeout="{answer_timeout}"/>
  <ResponseTimeRepartition value="10, 20, 50, 100, 200, 500, 1000"/>
  <CallLengthRepartition value="1000, 3000, 5000, 10000"/>
</scenario>
"""


@dataclass(frozen=True)
class SippRun:
    folder: Path

    @property
    def stat(self) -> Path:
        return self.folder / "stat.csv"

    def files(self) -> dict[str, str]:
        """SIPp's raw files of this run (counts and error codes are named by SIPp: ``caller_<pid>_*.csv``)."""
        names = {"stat": "stat.csv", "errors": "errors.log", "screen": "screen.log", "log": "sipp.log"}
        found = {k: str(self.folder / v) for k, v in names.items()}
        for key, suffix in (("counts", "_counts.csv"), ("error_codes", "_error_codes.csv")):
            match = sorted(self.folder.glob(f"caller_*{suffix}"))
            found[key] = str(match[-1]) if match else str(self.folder / f"caller_<pid>{suffix}")
        return found


def require_sipp() -> None:
    if not SIPP.is_file():
        raise ToolMissing(f"the lab's callers need SIPp ({SIPP}), which is not installed",
                          hint="install it (Debian/Ubuntu: sudo apt-get install sip-tester), or run `make system-deps`")


def new_run(folder: Path) -> SippRun:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    taken = [int(p.name.split("-", 1)[1]) for p in folder.glob("run-*") if p.name.split("-", 1)[1].isdigit()]
    run = SippRun(folder / f"run-{max(taken, default=0) + 1}")
    run.folder.mkdir(mode=0o700)
    return run


def runs(folder: Path) -> list[SippRun]:
    found = [p for p in folder.glob("run-*") if p.name.split("-", 1)[1].isdigit()]
    return [SippRun(p) for p in sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))]


def start_sipp(folder: Path, router: tuple[str, int], codes: Sequence[str], *, rate: float,
               hold: float = DEFAULT_HOLD_S, local_port: int) -> tuple[int, SippRun]:
    """Start SIPp calling every SAMU of ``codes`` (``rate`` calls/s per SAMU); its pid and its run folder."""
    require_sipp()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    scenario, numbers = folder / "caller.xml", folder / "samus.csv"
    scenario.write_text(SCENARIO.format(answer_timeout=ANSWER_TIMEOUT_MS))
    numbers.write_text("SEQUENTIAL\n" + "".join(f"{code};\n" for code in codes))
    run = new_run(folder)
    files = run.files()
    total_rate = rate * len(codes)
    # at most this many calls at once: those held, plus those waiting for an answer that may never come
    limit = max(50, int(total_rate * (hold + 2 * ANSWER_TIMEOUT_MS / 1000)) + 10)
    command = [str(SIPP), f"{router[0]}:{router[1]}", "-sf", str(scenario), "-inf", str(numbers),
               "-i", router[0], "-p", str(local_port), "-r", f"{total_rate * 1000:.0f}", "-rp", "1000000",
               "-d", str(int(hold * 1000)), "-l", str(limit), "-nostdin", "-trace_stat", "-stf", files["stat"], "-fd", "1",
               "-trace_err", "-error_file", files["errors"], "-trace_counts", "-trace_error_codes",
               "-trace_screen", "-screen_file", files["screen"], "-max_recv_loops", "100", "-timeout_error"]
    fd = os.open(files["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        process = subprocess.Popen(command, cwd=run.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    time.sleep(0.3)
    if process.poll() is not None:
        raise TrafficFailed(f"SIPp exited at start (code {process.returncode})", hint=f"see {files['log']}")
    return process.pid, run


def is_sipp_running(pid: int | None) -> bool:
    """True if ``pid`` is a live SIPp (a reused pid is not ours)."""
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if we are its parent (tests)
    except ChildProcessError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return cmdline.startswith(str(SIPP).encode()) and status != "Z"


def stop_sipp(pid: int | None, hold: float = DEFAULT_HOLD_S, *, graceful: bool = True) -> bool:
    """SIGUSR1 (SIPp stops placing calls and lets those in progress end), then SIGTERM, SIGKILL; True if it ran."""
    if not is_sipp_running(pid):
        return False
    assert pid is not None
    steps = ([(signal.SIGUSR1, hold + STOP_GRACE_S)] if graceful else []) + \
        [(signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)]
    for sig, wait in steps:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while is_sipp_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not is_sipp_running(pid):
            break
    return True


@dataclass
class SippStats:
    """SIPp's own count of one run or several (summed): what ``lab calls`` reports beside the ledger."""

    created: int = 0
    successful: int = 0
    failed: int = 0
    in_progress: int = 0
    retransmissions: int = 0
    failed_by: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: SippStats) -> None:
        self.created += other.created
        self.successful += other.successful
        self.failed += other.failed
        self.in_progress += other.in_progress
        self.retransmissions += other.retransmissions
        for reason, count in other.failed_by.items():
            self.failed_by[reason] = self.failed_by.get(reason, 0) + count
        self.files += other.files

    def to_json(self) -> dict[str, Any]:
        return {"placed": self.created, "successful": self.successful, "failed": self.failed,
                "in_progress": self.in_progress, "retransmissions": self.retransmissions,
                "failed_by": dict(sorted(self.failed_by.items())), "files": self.files}


def read_stats(run: SippRun) -> SippStats:
    """The last line of a run's ``stat.csv`` (SIPp writes it every second, and once more as it exits)."""
    stats = SippStats(files=[run.files()])
    row = _last_row(run.stat)
    if row is None:
        return stats
    number = lambda name: int(row.get(name) or 0)  # noqa: E731 - a local reader
    stats.created = number("TotalCallCreated")
    stats.successful = number("SuccessfulCall(C)")
    stats.failed = number("FailedCall(C)")
    stats.in_progress = number("CurrentCall")
    stats.retransmissions = number("Retransmissions(C)")
    stats.failed_by = {why: number(key) for key, why in FAILURES.items() if why and number(key)}
    return stats


def _last_row(path: Path) -> dict[str, str] | None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = next(csv.reader([lines[0]], delimiter=";"))
    for line in reversed(lines[1:]):  # the last line may be half-written
        values = next(csv.reader([line], delimiter=";"), [])
        if len(values) >= len(header) - 1:
            return dict(zip(header, values))
    return None


def all_stats(folder: Path) -> SippStats:
    """Every SIPp run of this lab (since the last reset), summed."""
    total = SippStats()
    for run in runs(folder):
        total.add(read_stats(run))
    return total
