"""The lab's telephone network: answering agents, the call router, the callers, and their faults.

``cutover.lab.manager`` calls these at ``lab up`` / ``down`` / ``reset`` /
``fault`` / ``heal``; the pids and ports are kept in ``lab.json`` (``LabState.sip``,
``LabState.traffic``). The order matters:

- up: the answering agents first (they bind their ports and say which), then
  the router (its ``dest`` table needs those ports, its ``routes`` the sites'
  state), then SIPp;
- down: SIPp first, gracefully (it stops placing calls and lets those in
  progress end), then the router and the agents; no process is left behind.

Faults on the SIP path:

- ``router-down``: Kamailio stopped. Calls fail (SIPp counts them), and the
  site tools refuse to switch (they cannot change a route), so a night pauses
  on its first switching step. ``heal`` restarts it with each SAMU's route
  rebuilt from the site's own state.
- ``packet-loss N%`` on a platform: an nftables table of the lab's own
  (``inet cutover_lab_<port>``) drops N% of the UDP packets to and from that
  platform's SIP port on loopback, at random. This machine's kernel has no
  ``netem`` queueing discipline; nftables' ``numgen random`` gives the same
  loss without one. SIP retransmissions (the router's, the agent's) recover
  most calls at moderate loss; SIPp counts the rest.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cutover.errors import CutoverError, InputError, ToolMissing
from cutover.lab import answerer, liveness, router, traffic
from cutover.lab.layout import LabLayout, LabState, SipInfo
from cutover.lab.tools import samulab

ANSWERER_MODULE = "cutover.lab.answerer"
ANSWERER_START_S = 10.0
NFT = Path("/usr/sbin/nft")
ROUTER_DOWN = "router-down"
PACKET_LOSS = "packet-loss"


class SipFailed(CutoverError):
    """A process of the lab's telephone network did not start."""


def require_tools() -> None:
    router.require_kamailio()
    traffic.require_sipp()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------
# up / down


def start(layout: LabLayout, state: LabState) -> None:
    """Start the answering agents, the router and SIPp; their pids go into ``state`` as each starts."""
    codes = state.traffic.codes
    state.sip = SipInfo(router_port=free_udp_port())
    state.sip.answerer_pid, ports = start_answerer(layout, codes)
    state.sip.router_pid = router.start(layout.sip, state.sip.router_port, ports, site_routes(layout, codes))
    start_callers(layout, state)


def start_callers(layout: LabLayout, state: LabState) -> None:
    assert state.sip is not None
    state.traffic.port = free_udp_port()
    state.traffic.pid, _ = traffic.start_sipp(layout.sipp, ("127.0.0.1", state.sip.router_port), state.traffic.codes,
                                              rate=state.traffic.rate, hold=state.traffic.hold,
                                              local_port=state.traffic.port)


def stop(state: LabState, layout: LabLayout | None = None) -> list[str]:
    """SIPp (gracefully), the router, the agents; lift the lab's packet-loss rules. What was stopped."""
    stopped: list[str] = []
    if traffic.stop_sipp(state.traffic.pid, state.traffic.hold):
        stopped.append("sipp")
    state.traffic.pid = None
    if state.sip is None:
        return stopped
    if router.stop(state.sip.router_pid):
        stopped.append("kamailio")
    state.sip.router_pid = None
    if stop_answerer(state.sip.answerer_pid):
        stopped.append("answerer")
    state.sip.answerer_pid = None
    if layout is not None:
        for fault in [f for f in state.sip.faults if f.startswith(PACKET_LOSS)]:
            _lift_loss(_loss_port(layout, fault.split(":")[1]))
    state.sip.faults = [f for f in state.sip.faults if not f.startswith(PACKET_LOSS)]
    return stopped


def start_answerer(layout: LabLayout, codes: Sequence[str]) -> tuple[int, dict[str, int]]:
    answerer.answerers_file(layout.root).unlink(missing_ok=True)
    layout.sip.mkdir(parents=True, exist_ok=True, mode=0o700)
    command = [sys.executable, "-m", ANSWERER_MODULE, "--lab-dir", str(layout.root), "--samus", ",".join(codes)]
    fd = os.open(layout.answerer_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    deadline = time.monotonic() + ANSWERER_START_S
    while time.monotonic() < deadline:
        ports = answerer.read_ports(layout.root)
        if ports is not None:
            return process.pid, ports
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_answerer(process.pid)
    raise SipFailed("the lab's answering agents did not start", hint=f"see {layout.answerer_log}")


def is_answerer_running(pid: int | None) -> bool:
    return liveness.is_live(pid, ANSWERER_MODULE.encode())


def stop_answerer(pid: int | None, timeout: float = 5.0) -> bool:
    if not is_answerer_running(pid):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_answerer_running(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += timeout
        time.sleep(0.02)
    return True


def any_running(state: LabState) -> bool:
    sip = state.sip
    return traffic.is_sipp_running(state.traffic.pid) or (
        sip is not None and (router.is_running(sip.router_pid) or is_answerer_running(sip.answerer_pid)))


def site_routes(layout: LabLayout, codes: Sequence[str]) -> dict[str, str]:
    """Each SAMU's route from its site's own state (backup -> local, else its platform)."""
    lab = samulab.LabData(layout.root)
    try:
        sites = {}
        for code in codes:
            status = samulab.site_status(lab.site(code))
            sites[code] = (status["mode"], status["platform"])
    finally:
        lab.close()
    return router.routes_from_sites(sites)


def reset(layout: LabLayout, state: LabState) -> None:
    """Stop everything, forget SIPp's runs (the ledger starts afresh too); ``start`` follows the rebuild."""
    stop(state, layout)
    shutil.rmtree(layout.sipp, ignore_errors=True)
    if state.sip is not None:
        state.sip.faults = []


# --------------------------------------------------------------------------
# faults


def router_down(layout: LabLayout, state: LabState) -> str:
    sip = _require_sip(state)
    router.stop(sip.router_pid)
    sip.router_pid = None
    if ROUTER_DOWN not in sip.faults:
        sip.faults.append(ROUTER_DOWN)
    return "call router (Kamailio) stopped: calls fail, routes cannot change"


def packet_loss(layout: LabLayout, state: LabState, platform: str, percent: int) -> str:
    sip = _require_sip(state)
    if platform not in samulab.PLATFORMS:
        raise InputError(f"unknown platform {platform!r}", hint="--platform legacy or --platform cloud")
    if not 1 <= percent <= 100:
        raise InputError(f"packet loss of {percent}%", hint="give a percentage from 1 to 100, e.g. 20%")
    port = _loss_port(layout, platform)
    _lift_loss(port)
    chance = f"numgen random mod 100 < {percent}" if percent < 100 else ""  # nft's numgen range stops at 99
    _nft(f"add table inet {_table(port)}",
         f"add chain inet {_table(port)} loss {{ type filter hook input priority 0; policy accept; }}",
         *(f"add rule inet {_table(port)} loss iif lo udp {way} {port} {chance} drop" for way in ("dport", "sport")))
    sip.faults = [f for f in sip.faults if not f.startswith(f"{PACKET_LOSS}:{platform}:")]
    sip.faults.append(f"{PACKET_LOSS}:{platform}:{percent}")
    return f"{platform} platform: {percent}% of SIP packets to and from port {port} dropped"


def heal(layout: LabLayout, state: LabState, target: str) -> list[str]:
    """Undo the SIP faults on ``target``: ``router``, a platform (its packet loss), or ``all``."""
    sip = state.sip
    if sip is None:
        return []
    done: list[str] = []
    if target in ("router", "all") and not router.is_running(sip.router_pid):
        ports = answerer.read_ports(layout.root) or {}
        sip.router_pid = router.start(layout.sip, sip.router_port, ports, site_routes(layout, state.traffic.codes))
        done.append("router: Kamailio restarted, routes rebuilt from the sites' state")
    for fault in list(sip.faults):
        if fault.startswith(PACKET_LOSS) and target in ("all", fault.split(":")[1]):
            _lift_loss(_loss_port(layout, fault.split(":")[1]))
            done.append(f"{fault.split(':')[1]}: packet loss lifted")
            sip.faults.remove(fault)
    if target in ("router", "all"):
        sip.faults = [f for f in sip.faults if f != ROUTER_DOWN]
    return done


def _require_sip(state: LabState) -> SipInfo:
    if state.sip is None:
        raise CutoverError("this lab has no call router", hint="`cutover lab down`, then `cutover lab up`")
    return state.sip


def _loss_port(layout: LabLayout, platform: str) -> int:
    ports = answerer.read_ports(layout.root)
    if not ports or platform not in ports:
        raise CutoverError(f"the {platform} platform's SIP port is unknown", hint="is the lab up?")
    return ports[platform]


def _table(port: int) -> str:
    return f"cutover_lab_{port}"


def _nft(*commands: str) -> None:
    if not NFT.is_file():
        raise ToolMissing(f"packet loss needs nftables ({NFT})",
                          hint="install it (Debian/Ubuntu: sudo apt-get install nftables), or run `make system-deps`")
    for command in commands:
        done = subprocess.run([str(NFT), *command.split()], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise CutoverError(f"nft {command}: {done.stderr.strip()}",
                               hint="packet loss needs root (CAP_NET_ADMIN) and nf_tables in the kernel")


def _lift_loss(port: int) -> None:
    if NFT.is_file():
        subprocess.run([str(NFT), "delete", "table", "inet", _table(port)], capture_output=True, timeout=10)
