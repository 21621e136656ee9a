"""Where a lab lives on disk, and its description (``lab.json``).

``<state_dir>/lab/`` (owner-only)::

    lab.json              the running lab: hosts, ports, pids, traffic, faults
    ledger.db             every call placed (see cutover.lab.ledger)
    pg -> /tmp/cutover-lab-pg-XXXX/   the legacy and cloud platforms' PostgreSQL clusters
                          (``<name>/data``, ``<name>/log``, ``<name>/.s.PGSQL.5432``; see cutover.lab.platforms)
    sites/<code>.db       each SAMU site's mode, platform and backup buffer
    tools/samulab.py      the site and platform tools (stdlib only)
    bin/samu-site         wrappers the sshds put on PATH
    bin/samu-platform
    ssh/authorized_keys   the client key allowed on every lab host
    ssh/<host>/           one sshd's config, host key and log
    sip/                  the call router: kamailio.cfg, kamailio.ctl (control socket), router.json,
                          kamailio.log; answerers.json and answerer.log (the answering agents)
    sipp/                 the callers: caller.xml, samus.csv, run-<n>/ (SIPp's own statistics files)
    inventory/            an N-SAMU inventory (``lab up --samus N``, N != 10)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cutover.errors import CutoverError

HostKind = Literal["site", "platform"]


@dataclass(frozen=True)
class LabLayout:
    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> LabLayout:
        return cls(Path(state_dir) / "lab")

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def tools(self) -> Path:
        return self.root / "tools"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def traffic_log(self) -> Path:
        return self.root / "traffic.log"

    @property
    def sip(self) -> Path:
        return self.root / "sip"

    @property
    def sipp(self) -> Path:
        return self.root / "sipp"

    @property
    def answerer_log(self) -> Path:
        return self.sip / "answerer.log"

    @property
    def generated_inventory(self) -> Path:
        return self.root / "inventory"

    def sshd_workdir(self, host: str) -> Path:
        return self.ssh / host


class LabHost(BaseModel):
    """One lab host: a SAMU site or a platform, and the sshd that plays it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at import

    name: str
    kind: HostKind
    identity: str  # the SAMU's code, or the platform's role (legacy, cloud)
    port: int
    pid: int | None = None
    host_key_pub: str = ""
    db_pid: int | None = None  # a platform's PostgreSQL server (postmaster)
    faults: list[str] = Field(default_factory=list)


class TrafficInfo(BaseModel):
    """The callers: one SIPp (``pid``) placing ``rate`` calls/s per SAMU, each held ``hold`` seconds."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at import

    pid: int | None = None
    rate: float
    codes: list[str]
    hold: float = 3.0
    port: int = 0  # SIPp's own UDP port


class SipInfo(BaseModel):
    """The call router (Kamailio) and the answering agents, and the faults set on the SIP path."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at import

    router_port: int
    router_pid: int | None = None
    answerer_pid: int | None = None
    faults: list[str] = Field(default_factory=list)  # router-down, packet-loss:<platform>:<percent>


class LabState(BaseModel):
    """``lab.json``: written before anything is started, so ``lab down`` can always clean up."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at import

    version: Literal[1] = 1
    lab_dir: str
    inventory: str  # the inventory folder the lab was built from
    env: str  # what to pass as ``--env``
    started_at: str
    hosts: list[LabHost]
    traffic: TrafficInfo
    sip: SipInfo | None = None
    up: bool = True

    def sites(self) -> list[LabHost]:
        return [h for h in self.hosts if h.kind == "site"]

    def platforms(self) -> list[LabHost]:
        return [h for h in self.hosts if h.kind == "platform"]


def read_state(layout: LabLayout) -> LabState | None:
    if not layout.state_file.is_file():
        return None
    try:
        return LabState.model_validate_json(layout.state_file.read_text())
    except ValueError as exc:
        raise CutoverError(f"the lab's description {layout.state_file} is unreadable: {exc}",
                           hint="stop any lab processes by hand, then remove that file") from exc


def write_state(layout: LabLayout, state: LabState) -> None:
    """Atomic replace: the traffic generator watches this file's existence."""
    temp = layout.state_file.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(state.model_dump(mode="json"), indent=2))
    os.replace(temp, layout.state_file)


def make_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
