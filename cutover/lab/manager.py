"""Use-cases behind ``cutover lab``: bring the lab up and down, report on it, break and heal it.

Python API (the CLI is a thin layer over it)::

    lab_up(project_dir, state_dir, samus=10, rate=1.0, hold=3.0) -> LabState
    lab_down(state_dir) -> LabDown
    lab_reset(state_dir) -> LabState                   (every SAMU nominal on legacy, fresh platforms)
    lab_status(state_dir) -> LabStatus                 (.to_json())
    lab_calls(state_dir) -> CallAccount                (cutover.lab.ledger; .to_json(), .ok)
    inject_fault(state_dir, target, kind) -> str       kinds: FAULT_KINDS
    heal(state_dir, target) -> list[str]               target: host, SAMU code, legacy/cloud, or "all"

Processes: two PostgreSQL clusters, the legacy and cloud platforms
(``cutover.lab.platforms``), one sshd per host (``cutover.lab.sshd``), and the
telephone network (``cutover.lab.sipnet``): the answering agents, the call
router (Kamailio) and the callers (SIPp), each in its own session so they
outlive ``cutover lab up``; their pids are in ``lab.json`` and nothing else is
ever stopped. Errors are ``LabError`` (exit 1) or ``InputError`` (exit 2), with hints.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.errors import CutoverError, InputError, ToolMissing
from cutover.lab import inventorygen, pgcluster, platforms, sipnet, sshd, traffic
from cutover.lab.layout import LabHost, LabLayout, LabState, TrafficInfo, make_private_dir, read_state, write_state
from cutover.lab.ledger import CallAccount, account_calls
from cutover.lab.tools import samulab, sipcall
from cutover.model.inventory import Inventory, load_inventory
from cutover.model.signers import allowed_signers_path, anchor_signer_line

LAB_ENV = "lab"
DEFAULT_SAMUS = 10  # the size of inventories/lab
PLATFORMS_GROUP = "platforms"
TOOL_SOURCE = Path(samulab.__file__)
SITE_PYTHON = "/usr/bin/python3"  # the hosts' system python, as the inventory says
HISTORY_PER_SAMU = 20  # calls already on the legacy platform before the night, so migration moves real data
FAULT_KINDS = ("sshd-stopped", "platform-db-down", "checksum-mismatch")
SIP_FAULT_KINDS = (sipnet.ROUTER_DOWN, sipnet.PACKET_LOSS)
SIP_TOOL_SOURCE = Path(sipcall.__file__)
MAX_HOLD_S = 20.0  # below the answering agents' session timer (answerer.MAX_CALL_S), with room for delays
FINAL_CALLS = "calls-final.json"  # the last account, kept by `lab down` before the platforms' databases go


class LabError(CutoverError):
    """The lab cannot do what was asked (already up, not up, a port busy, a process failed)."""


# --------------------------------------------------------------------------
# lab up


def lab_up(project_dir: Path, state_dir: Path, *, samus: int = DEFAULT_SAMUS, waves: int = 1, rate: float = 1.0,
           hold: float = traffic.DEFAULT_HOLD_S, progress: Callable[[str], None] = lambda _: None) -> LabState:
    """Start a lab: databases, one sshd per host, keys and known_hosts, then the telephone network and its calls."""
    if not sshd.SSHD.is_file():
        raise ToolMissing(f"the lab needs the OpenSSH server ({sshd.SSHD}), which is not installed",
                          hint="install it (Debian/Ubuntu: sudo apt-get install openssh-server), then rerun")
    sipnet.require_tools()
    if not pgcluster.installed():
        raise ToolMissing("the lab's platforms need PostgreSQL's server binaries (initdb, pg_ctl), which are missing",
                          hint="install them (Debian/Ubuntu: sudo apt-get install postgresql), then rerun")
    if rate <= 0:
        raise InputError(f"--rate must be positive, not {rate:g}", hint="calls per second per SAMU, e.g. 1")
    if not 0 <= hold <= MAX_HOLD_S:
        raise InputError(f"--hold must be between 0 and {MAX_HOLD_S:g} seconds, not {hold:g}",
                         hint="seconds each call lasts, e.g. 3 (the answering agents end a call 30 s after its "
                              "answer, as a session timer would)")
    layout = LabLayout.under(make_private_dir(Path(state_dir)))
    _refuse_if_up(layout)
    make_private_dir(layout.root)
    inventory, env = _lab_inventory(project_dir, layout, samus, waves)
    hosts = _lab_hosts(inventory)
    _refuse_busy_ports(hosts)
    _prepare_files(layout, inventory)
    state = LabState(lab_dir=str(layout.root), inventory=str(inventory.path), env=env, started_at=_now(),
                     hosts=hosts, traffic=TrafficInfo(rate=rate, hold=hold,
                                                      codes=[h.identity for h in hosts if h.kind == "site"]))
    write_state(layout, state)  # before any process starts: `lab down` can always clean up
    try:
        progress("starting the legacy and cloud platforms (two PostgreSQL clusters)")
        _start_platforms(layout, state)
        progress(f"starting {len(hosts)} sshd")
        _start_all_sshd(layout, state)
        _write_known_hosts(inventory, state)
        progress("starting the call router (Kamailio), the answering agents and the callers (SIPp)")
        sipnet.start(layout, state)
    except BaseException:
        _stop_processes(state, layout)  # a half-started lab is worse than none
        state.up = False
        raise
    finally:
        write_state(layout, state)
    return state


def _refuse_if_up(layout: LabLayout) -> None:
    state = read_state(layout)
    if state is not None and _any_running(state):
        raise LabError(f"a lab is already up here (started {state.started_at}, {len(state.sites())} SAMUs)",
                       hint="run `cutover lab down` first, or use another --state-dir")


def _lab_inventory(project_dir: Path, layout: LabLayout, samus: int, waves: int = 1) -> tuple[Inventory, str]:
    template = load_inventory(project_dir, LAB_ENV)
    if not template.is_lab:
        raise InputError("inventories/lab is not marked as a lab (cutover_lab: true)",
                         hint="the lab refuses to run on anything else")
    if waves > samus:
        raise InputError(f"--waves {waves} is more than the {samus} SAMUs", hint="each wave needs a SAMU")
    if samus == DEFAULT_SAMUS and waves == 1:
        return template, LAB_ENV
    folder = inventorygen.write_lab_inventory(layout.generated_inventory, template, samus, waves)
    return load_inventory(project_dir, str(folder)), str(folder)


def _lab_hosts(inventory: Inventory) -> list[LabHost]:
    sites = [LabHost(name=s.host, kind="site", identity=s.code, port=inventory.hosts[s.host].port)
             for s in inventory.samus.values()]
    platforms = [_platform_host(inventory, name) for name in inventory.groups.get(PLATFORMS_GROUP, ())]
    roles = sorted(p.identity for p in platforms)
    if roles != sorted(samulab.PLATFORMS):
        raise InputError(f"the lab inventory {inventory.path} must have one legacy and one cloud platform "
                         f"in its '{PLATFORMS_GROUP}' group (found: {', '.join(roles) or 'none'})",
                         hint="see inventories/lab/hosts.yml and host_vars/*-platform.yml")
    return sites + platforms


def _platform_host(inventory: Inventory, name: str) -> LabHost:
    role = str(inventory.hosts[name].vars.get("platform_role", ""))
    if role not in samulab.PLATFORMS:
        raise InputError(f"platform host {name} has platform_role {role!r}", hint="set it to legacy or cloud")
    return LabHost(name=name, kind="platform", identity=role, port=inventory.hosts[name].port)


def _refuse_busy_ports(hosts: Sequence[LabHost]) -> None:
    busy = [h for h in hosts if not inventorygen.port_is_free(h.port)]
    if busy:
        listed = ", ".join(f"{h.port} ({h.name})" for h in busy)
        raise LabError(f"lab port(s) already in use: {listed}",
                       hint="another lab (another --state-dir?) or program holds them; "
                            f"see `ss -ltnp 'sport = :{busy[0].port}'`")


def _prepare_files(layout: LabLayout, inventory: Inventory) -> None:
    """Fresh tools and keys, no stale data (host keys are kept so known_hosts stays stable)."""
    platforms.remove_clusters(layout.root)
    (layout.root / FINAL_CALLS).unlink(missing_ok=True)
    for stale in ("platforms", "sites", "tools", "bin", "sip", "sipp"):
        shutil.rmtree(layout.root / stale, ignore_errors=True)
    for ledger_file in layout.root.glob("ledger.db*"):
        ledger_file.unlink()
    layout.traffic_log.unlink(missing_ok=True)
    _install_tools(layout)
    _install_client_key(layout, inventory)
    _install_vault_password(inventory)
    install_anchor_key(inventory)


def _start_platforms(layout: LabLayout, state: LabState) -> None:
    """Both clusters (schemas and link included), the sites, the ledger and the legacy platform's history."""
    codes = [h.identity for h in state.sites()]
    try:
        pids = platforms.start_platforms(layout.root, codes)
    except (platforms.PlatformClusterFailed, pgcluster.ClusterFailed) as exc:
        raise LabError(str(exc), hint=f"see the clusters' logs under {platforms.pg_link(layout.root)}/") from exc
    for host in state.platforms():
        host.db_pid = pids[host.identity]
    _create_sites_and_history(layout.root, codes)


def _create_sites_and_history(lab_dir: Path, codes: Sequence[str]) -> None:
    for code in codes:
        samulab.create_site(lab_dir, code)
    samulab.create_ledger(lab_dir)
    _seed_history(lab_dir, codes)
    samulab.write_vigilance(lab_dir, {code: 1 for code in codes})  # every département green
    _freeze_cloud(lab_dir, codes)


def _freeze_cloud(lab_dir: Path, codes: Sequence[str]) -> None:
    """The cloud serves no SAMU yet: a partition opens when it is migrated there (``migrate --samus``).

    Before that the cloud refuses its calls, so a SAMU routed there too early
    loses them, and SIPp counts them.
    """
    cloud = samulab.open_platform(lab_dir, "cloud")
    try:
        samulab.set_frozen(cloud, True, codes)
    finally:
        cloud.close()


def _seed_history(lab_dir: Path, codes: Sequence[str]) -> None:
    rng = random.Random(15)
    records = [samulab.new_record(code, "legacy", caller=samulab.synthetic_caller(rng), placed_at=samulab.now(),
                                  rng=rng) for code in codes for _ in range(HISTORY_PER_SAMU)]
    db = samulab.open_platform(lab_dir, "legacy")
    try:
        samulab.insert_records(db, records)
    finally:
        db.close()


def _install_tools(layout: LabLayout) -> None:
    make_private_dir(layout.tools)
    make_private_dir(layout.bin)
    tool = layout.tools / "samulab.py"
    shutil.copyfile(TOOL_SOURCE, tool)
    tool.chmod(0o700)
    shutil.copyfile(SIP_TOOL_SOURCE, layout.tools / SIP_TOOL_SOURCE.name)  # samulab imports it on the hosts
    for command, tool_name in (("samu-site", "site"), ("samu-platform", "platform")):
        wrapper = layout.bin / command
        wrapper.write_text(f'#!/bin/sh\nexec {SITE_PYTHON} "{tool}" {tool_name} "$@"\n')
        wrapper.chmod(0o700)


# The lab's ansible-vault password. It protects nothing real: it exists so the lab exercises the
# same vault path as production (encrypted inventory values, a password file, redaction).
LAB_VAULT_PASSWORD = "cutover-lab-vault"


def _install_vault_password(inventory: Inventory) -> None:
    path = inventory.vault_password_file
    if path is None:
        return
    make_private_dir(path.parent)
    path.write_text(LAB_VAULT_PASSWORD + "\n")
    path.chmod(0o600)


ANCHOR_PRINCIPAL = "lab-controller"


def install_anchor_key(inventory: Inventory) -> Path | None:
    """The controller's anchor key the lab inventory names (kept if there), listed in its allowed_signers.

    Lab nights are anchored like production ones (cutover.app.anchors), and `journal verify --anchors`
    checks them against the environment's allowed_signers, where the key is listed for anchors only
    (no approval verifies with it); any other line of that file is kept. None: the inventory names no key.
    """
    if inventory.anchor_key is None:
        return None
    make_private_dir(inventory.anchor_key.parent)
    key = sshd.generate_keypair(inventory.anchor_key, "cutover-lab-controller")  # ed25519, 0600
    line = anchor_signer_line(ANCHOR_PRINCIPAL, key.with_name(key.name + ".pub").read_text())
    signers = allowed_signers_path(inventory.path)
    kept = [old for old in (signers.read_text().splitlines() if signers.is_file() else [])
            if old.split()[:1] != [ANCHOR_PRINCIPAL]]
    signers.write_text("\n".join([*kept, line]) + "\n")
    return key


def _install_client_key(layout: LabLayout, inventory: Inventory) -> None:
    if inventory.ssh_key is None or inventory.known_hosts is None:
        raise InputError(f"the lab inventory {inventory.path} must name ansible_ssh_private_key_file "
                         "and cutover_known_hosts", hint="see inventories/lab/group_vars/all.yml")
    make_private_dir(inventory.ssh_key.parent)
    key = sshd.generate_keypair(inventory.ssh_key, "cutover-lab-operator")
    make_private_dir(layout.ssh)
    layout.authorized_keys.write_text(key.with_name(key.name + ".pub").read_text())
    layout.authorized_keys.chmod(0o600)


def _host_environment(layout: LabLayout, host: LabHost) -> dict[str, str]:
    # What a host knows about itself; PATH puts samu-site / samu-platform first.
    identity = {"CUTOVER_LAB_SITE" if host.kind == "site" else "CUTOVER_LAB_PLATFORM": host.identity}
    return {"CUTOVER_LAB_DIR": str(layout.root), "PATH": f"{layout.bin}:/usr/local/bin:/usr/bin:/bin",
            **identity}


def _start_sshd(layout: LabLayout, host: LabHost, attempts: int = 2) -> None:
    workdir = make_private_dir(layout.sshd_workdir(host.name))
    existing = workdir / sshd.HOST_KEY_NAME
    for attempt in range(attempts):
        (workdir / sshd.PID_NAME).unlink(missing_ok=True)  # so a pid file found below is this attempt's
        try:
            process = sshd.start_sshd(workdir, name=host.name, port=host.port,
                                      authorized_keys=layout.authorized_keys,
                                      host_key=existing if existing.is_file() else None,
                                      environment=_host_environment(layout, host))
        except sshd.SshdFailed:
            # start_sshd can judge a live sshd dead (it polls /proc while sshd
            # rewrites its process title) and then forgets it: stop it by its
            # pid file, or it would hold the port forever; then try once more.
            _stop_by_pid_file(workdir)
            if attempt == attempts - 1:
                raise
            continue
        host.pid = process.pid
        host.host_key_pub = process.host_key_pub
        return


def _stop_by_pid_file(workdir: Path) -> None:
    try:
        pid = int((workdir / sshd.PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return
    sshd.stop_pid(pid)
    (workdir / sshd.PID_NAME).unlink(missing_ok=True)


def _start_all_sshd(layout: LabLayout, state: LabState) -> None:
    # In parallel: each start waits for its sshd's "listening" line; 100 in a row is slow.
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_start_sshd, layout, host) for host in state.hosts]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        first = errors[0]
        raise LabError(f"could not start the lab's sshd: {first}",
                       hint=getattr(first, "hint", None) or "see the sshd logs under the lab folder") from first


def _write_known_hosts(inventory: Inventory, state: LabState) -> None:
    assert inventory.known_hosts is not None  # checked in _install_client_key
    lines = [sshd.known_hosts_line(inventory.hosts[h.name].address, h.port, h.host_key_pub) for h in state.hosts]
    make_private_dir(inventory.known_hosts.parent)
    sshd.write_known_hosts(inventory.known_hosts, lines)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------
# lab down


@dataclass(frozen=True)
class LabDown:
    was_up: bool
    stopped: list[str] = field(default_factory=list)


def lab_down(state_dir: Path) -> LabDown:
    """Stop the calls, the router, every sshd and the platforms; idempotent. The final count stays for ``lab calls``."""
    layout = LabLayout.under(Path(state_dir))
    state = read_state(layout)
    if state is None:
        return LabDown(was_up=False)
    stopped = _stop_processes(state, layout, keep_account=state.up)
    state.up = False
    write_state(layout, state)
    return LabDown(was_up=bool(stopped), stopped=stopped)


# --------------------------------------------------------------------------
# lab reset


def lab_reset(state_dir: Path) -> LabState:
    """Back to the start of a night: every SAMU nominal on legacy, fresh platform databases, traffic running.

    The traffic stops while the databases are rebuilt (so no call straddles the
    reset), the ledger starts afresh with them, and the journal is kept: a lab
    rehearses again and again, and every run stays on record.
    """
    layout, state = _require_up(state_dir)
    sipnet.reset(layout, state)  # the callers, the router and the agents stop while the databases are rebuilt
    shutil.rmtree(layout.root / "sites", ignore_errors=True)
    for ledger_file in layout.root.glob("ledger.db*"):
        ledger_file.unlink()
    codes = [h.identity for h in state.sites()]
    for host in state.platforms():  # a platform's database stopped by a fault starts again: fresh data
        if platforms.cluster_pid(layout.root, host.identity) is None:
            host.db_pid = platforms.start_cluster(layout.root, host.identity)
    samulab.create_platforms(layout.root, codes)
    _create_sites_and_history(layout.root, codes)
    for host in state.hosts:
        host.faults = [f for f in host.faults if f == "sshd-stopped"]  # a stopped sshd stays the operator's to heal
    try:
        sipnet.start(layout, state)
    finally:
        write_state(layout, state)
    return state


def _stop_processes(state: LabState, layout: LabLayout | None = None, *, keep_account: bool = False) -> list[str]:
    """``keep_account``: count the calls once SIPp has stopped, before the platforms' databases go (`lab down`)."""
    stopped = sipnet.stop(state, layout)
    if keep_account and layout is not None:
        _keep_final_account(layout)
    for host in state.hosts:  # traffic first: calls do not need sshd, but a clean order reads better in logs
        if host.pid and sshd.stop_pid(host.pid):
            stopped.append(host.name)
        host.pid = None
    # The platforms last (nothing calls them any more); their databases go with them.
    stopped += [f"{name} platform database" for name in platforms.remove_clusters(Path(state.lab_dir))]
    for host in state.platforms():
        host.db_pid = None
    return stopped


def _keep_final_account(layout: LabLayout) -> None:
    """SIPp has stopped (its calls ended): count once more while the platforms are still there, and keep it.

    `lab calls` after `lab down` reads it: the clusters' data leaves with them.
    """
    try:
        account = lab_calls(layout.root.parent)
    except LabError:  # a platform already down: nothing complete to keep
        (layout.root / FINAL_CALLS).unlink(missing_ok=True)
        return
    path = layout.root / FINAL_CALLS
    path.write_text(json.dumps(account.to_json(), indent=1), encoding="utf-8")
    path.chmod(0o600)


def _any_running(state: LabState) -> bool:
    return sipnet.any_running(state) or any(h.pid and sshd.is_sshd_running(h.pid) for h in state.hosts) \
        or any(platforms.cluster_pid(Path(state.lab_dir), h.identity) for h in state.platforms())


# --------------------------------------------------------------------------
# lab status / lab calls


@dataclass(frozen=True)
class LabStatus:
    state: LabState | None
    sites: list[dict[str, Any]]
    platforms: list[dict[str, Any]]
    traffic_running: bool
    router: dict[str, Any] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.state is not None and self.state.up

    def to_json(self) -> dict[str, Any]:
        if self.state is None:
            return {"up": False, "sites": [], "platforms": [], "traffic": {"running": False}, "router": {}}
        return {
            "up": self.state.up, "lab_dir": self.state.lab_dir, "inventory": self.state.inventory,
            "env": self.state.env, "started_at": self.state.started_at,
            "sites": self.sites, "platforms": self.platforms,
            "traffic": {"running": self.traffic_running, "pid": self.state.traffic.pid,
                        "rate": self.state.traffic.rate, "hold": self.state.traffic.hold},
            "router": self.router,
        }


def lab_status(state_dir: Path) -> LabStatus:
    layout = LabLayout.under(Path(state_dir))
    state = read_state(layout)
    if state is None:
        return LabStatus(None, [], [], False, {})
    lab = samulab.LabData(layout.root)
    try:
        sites = [{**_host_view(h), **_site_view(lab, h)} for h in state.sites()]
        platforms = [{**_host_view(h), **_platform_view(lab, h)} for h in state.platforms()]
    except (samulab.LabError, samulab.PgError) as exc:
        raise LabError(f"the lab's files are damaged: {exc}", hint="`cutover lab down`, then `cutover lab up`") from exc
    finally:
        lab.close()
    return LabStatus(state, sites, platforms, traffic.is_sipp_running(state.traffic.pid), _router_view(state))


def _router_view(state: LabState) -> dict[str, Any]:
    """The call router: running, its port and routes, the answering agents, the faults on the SIP path."""
    sip = state.sip
    if sip is None:
        return {}
    running = router_is_running = sipnet.router.is_running(sip.router_pid)
    routes: dict[str, str] = {}
    if router_is_running:
        try:
            routes = sipcall.routes(Path(state.lab_dir))
        except sipcall.RouterError:
            running = False
    return {"running": running, "pid": sip.router_pid, "port": sip.router_port, "routes": routes,
            "answerer_running": sipnet.is_answerer_running(sip.answerer_pid), "faults": sip.faults}


def _host_view(host: LabHost) -> dict[str, Any]:
    return {"host": host.name, "port": host.port, "reachable": ssh_banner_answers(host.port), "faults": host.faults}


def _site_view(lab: samulab.LabData, host: LabHost) -> dict[str, Any]:
    status = samulab.site_status(lab.site(host.identity))
    return {"code": host.identity, "mode": status["mode"], "platform": status["platform"],
            "buffer": status["buffer"]["pending"]}


def _platform_view(lab: samulab.LabData, host: LabHost) -> dict[str, Any]:
    status = samulab.platform_status(lab.platform(host.identity), host.identity)
    return {"platform": host.identity, "state": status["state"], "records": status["records"],
            "database_pid": platforms.cluster_pid(lab.lab_dir, host.identity)}


def ssh_banner_answers(port: int, address: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True if an SSH server greets us on ``address:port`` (cheaper than logging in)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def lab_calls(state_dir: Path) -> CallAccount:
    """The ledger's account of every call, next to SIPp's own count (when SIPp placed them)."""
    layout = LabLayout.under(Path(state_dir))
    state = read_state(layout)
    if state is None:
        raise LabError(f"no lab in {layout.root}", hint="start one with `cutover lab up`")
    final = layout.root / FINAL_CALLS
    if not state.up and final.is_file():  # after `lab down`: the count it kept
        return CallAccount.from_json(json.loads(final.read_text(encoding="utf-8")))
    sipp = traffic.all_stats(layout.sipp) if state.sip is not None else None
    try:
        return account_calls(layout.root, sipp)
    except samulab.LabError as exc:
        raise LabError(str(exc), hint=exc.hint or None) from exc


# --------------------------------------------------------------------------
# lab fault / lab heal


def _require_up(state_dir: Path) -> tuple[LabLayout, LabState]:
    layout = LabLayout.under(Path(state_dir))
    state = read_state(layout)
    if state is None or not state.up:
        raise LabError("no lab is up", hint="start one with `cutover lab up`")
    return layout, state


def find_hosts(state: LabState, target: str) -> list[LabHost]:
    """A host name, a SAMU code, a platform role (legacy, cloud), or ``all``."""
    found = [h for h in state.hosts if target in ("all", h.name, h.identity)]
    if not found:
        raise InputError(f"no lab host or SAMU {target!r}",
                         hint="use a host name (samu-30, cloud-platform), a SAMU code (30) or legacy/cloud")
    return found


def set_vigilance(state_dir: Path, changes: dict[str, str]) -> dict[str, int]:
    """Change the lab's weather vigilance levels (code -> green/yellow/orange/red or 1..4); returns them all."""
    layout, _ = _require_up(state_dir)
    levels = samulab.read_vigilance(layout.root)
    for code, given in changes.items():
        if code not in levels:
            raise InputError(f"no département {code!r} in the lab's vigilance feed",
                             hint=f"départements: {', '.join(sorted(levels))}")
        level = samulab.VIGILANCE_COLOURS.get(given.lower()) or (int(given) if given.isdigit() else None)
        if level not in (1, 2, 3, 4):
            raise InputError(f"{given!r} is not a vigilance level", hint="green, yellow, orange, red (or 1..4)")
        levels[code] = level
    if changes:
        samulab.write_vigilance(layout.root, levels)
    return levels


def inject_fault(state_dir: Path, target: str, kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise InputError(f"unknown fault {kind!r}", hint=f"faults: {', '.join(FAULT_KINDS + SIP_FAULT_KINDS)}")
    layout, state = _require_up(state_dir)
    [host] = _one_host(state, target)
    if kind != "sshd-stopped" and host.kind != "platform":
        raise InputError(f"{kind} is a platform fault; {host.name} is a SAMU site",
                         hint="target legacy or cloud (or their hosts)")
    detail = _apply_fault(layout, host, kind)
    if kind not in host.faults:
        host.faults.append(kind)
    write_state(layout, state)
    return f"{host.name}: {detail}"


def _one_host(state: LabState, target: str) -> list[LabHost]:
    found = find_hosts(state, target)
    if len(found) != 1:
        raise InputError(f"{target!r} names {len(found)} hosts; a fault hits one", hint="name one host")
    return found


def _apply_fault(layout: LabLayout, host: LabHost, kind: str) -> str:
    if kind == "sshd-stopped":
        if host.pid:
            sshd.stop_pid(host.pid)
        host.pid = None
        return "sshd stopped (the host is unreachable; calls still flow)"
    if kind == "platform-db-down":
        platforms.stop_cluster(layout.root, host.identity)
        host.db_pid = None
        return "platform database stopped (calls to it are lost, its tools refuse; sshd still answers)"
    db = samulab.open_platform(layout.root, host.identity)
    try:
        return samulab.corrupt_one_record(db)
    except samulab.LabError as exc:
        raise LabError(f"cannot corrupt a record of the {host.identity} platform: {exc}",
                       hint=exc.hint or None) from exc
    finally:
        db.close()


def inject_sip_fault(state_dir: Path, kind: str, *, platform: str | None = None, percent: int | None = None) -> str:
    """``router-down`` (Kamailio stopped), or ``packet-loss`` of ``percent``% on ``platform``'s SIP port."""
    layout, state = _require_up(state_dir)
    if kind == sipnet.ROUTER_DOWN:
        detail = sipnet.router_down(layout, state)
    elif kind == sipnet.PACKET_LOSS:
        if platform is None or percent is None:
            raise InputError("packet-loss needs a percentage and a platform",
                             hint="e.g. `cutover lab fault packet-loss 20% --platform legacy`")
        detail = sipnet.packet_loss(layout, state, platform, percent)
    else:
        raise InputError(f"unknown fault {kind!r}", hint=f"faults: {', '.join(FAULT_KINDS + SIP_FAULT_KINDS)}")
    write_state(layout, state)
    return detail


def heal(state_dir: Path, target: str) -> list[str]:
    """Undo every fault on the target(s): restart a stopped sshd (same host key), bring up, repair.

    ``router`` restarts the call router; a platform's heal also lifts its packet loss; ``all`` does everything.
    """
    layout, state = _require_up(state_dir)
    healed = sipnet.heal(layout, state, target)
    write_state(layout, state)
    if target == "router":
        return healed
    for host in find_hosts(state, target):
        healed += [f"{host.name}: {what}" for what in _heal_host(layout, host)]
        host.faults = []
        write_state(layout, state)
    return healed


def _heal_host(layout: LabLayout, host: LabHost) -> list[str]:
    done: list[str] = []
    if not (host.pid and sshd.is_sshd_running(host.pid)):
        _start_sshd(layout, host)
        done.append("sshd restarted")
    if host.kind == "platform":
        if platforms.cluster_pid(layout.root, host.identity) is None:
            host.db_pid = platforms.start_cluster(layout.root, host.identity)
            done.append("platform database started")
        db = samulab.open_platform(layout.root, host.identity)
        try:
            if samulab.repair_records(db):
                done.append("corrupted record repaired")
            elif "checksum-mismatch" in host.faults:
                done.append("corruption disarmed")
        finally:
            db.close()
    return done
