"""An N-SAMU lab inventory (``cutover lab up --samus N``), written under the state directory.

The ten-SAMU lab is ``inventories/lab/`` itself. Any other size gets a
generated inventory of the same shape: the first N département codes, one
``wave1`` (or ``--waves K`` groups ``wave1``..``waveK`` of consecutive
codes, as even as can be), free loopback ports, and the lab inventory's own ``group_vars``
copied verbatim (so the two never drift apart).
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import shutil
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from cutover.errors import InputError
from cutover.model.inventory import Inventory, all_departement_codes

FIRST_PORT = 23001
PLATFORM_HOSTS = {"legacy": "legacy-platform", "cloud": "cloud-platform"}


def max_samus() -> int:
    return len(all_departement_codes())


def port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As sshd does: connections of a previous lab lingering in TIME_WAIT
        # do not make the port busy; a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int = FIRST_PORT) -> list[int]:
    """``count`` ports free right now, scanning upwards from ``start``."""
    found: list[int] = []
    port = start
    while len(found) < count and port < 65536:
        if port_is_free(port):
            found.append(port)
        port += 1
    if len(found) < count:
        raise InputError(f"not enough free loopback ports from {start}", hint="stop what holds them")
    return found


def write_lab_inventory(dest: Path, template: Inventory, count: int, waves: int = 1) -> Path:
    """Write an inventory of ``count`` SAMUs plus the two platforms at ``dest``; returns ``dest``."""
    if not 1 <= count <= max_samus():
        raise InputError(f"a lab has 1 to {max_samus()} SAMUs, not {count}",
                         hint="there are that many départements")
    codes = all_departement_codes()[:count]
    ports = free_ports(count + len(PLATFORM_HOSTS))
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "host_vars").mkdir(parents=True, mode=0o700)
    shutil.copytree(template.path / "group_vars", dest / "group_vars")
    names = {s.code: s.name for s in template.samus.values()}
    samu_hosts = [f"samu-{code}" for code in codes]
    _dump(dest / "hosts.yml", _hosts_tree(samu_hosts, waves))
    for index, (code, port) in enumerate(zip(codes, ports), start=1):
        _dump(dest / "host_vars" / f"samu-{code}.yml", _samu_vars(code, names.get(code), index, port, template))
    for (role, host), port in zip(PLATFORM_HOSTS.items(), ports[count:]):
        _dump(dest / "host_vars" / f"{host}.yml", {"platform_role": role, **_reach(port)})
    return dest


def split_waves(hosts: Sequence[str], waves: int) -> list[list[str]]:
    """Consecutive slices, the first ones one longer when the count does not divide evenly."""
    size, extra = divmod(len(hosts), waves)
    slices, start = [], 0
    for index in range(waves):
        end = start + size + (1 if index < extra else 0)
        slices.append(list(hosts[start:end]))
        start = end
    return slices


def _hosts_tree(samu_hosts: Sequence[str], waves: int = 1) -> dict[str, object]:
    groups = {f"wave{n}": {"hosts": {h: None for h in members}}
              for n, members in enumerate(split_waves(samu_hosts, waves), start=1)}
    return {"all": {"children": {
        "samu": {"children": groups},
        "platforms": {"hosts": {h: None for h in PLATFORM_HOSTS.values()}},
    }}}


def _samu_vars(code: str, name: str | None, index: int, port: int, template: Inventory) -> dict[str, object]:
    return {
        "samu_code": code,
        "samu_name": name or f"SAMU {code} (lab)",
        "samu_cidr": str(_nth_subnet(template, index)),
        "samu_telephony": {"primary": f"sip:15@samu{code.lower()}.lab.invalid"},
        **_reach(port),
    }


def _reach(port: int) -> dict[str, object]:
    # The lab's sshds let in the user who started them; say so rather than
    # inheriting a user that only works when the lab runs as root.
    return {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": _current_user()}


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())


def _nth_subnet(template: Inventory, index: int) -> ipaddress.IPv4Network:
    pool = template.settings.cutover_tenant_pool or ipaddress.IPv4Network("10.130.0.0/16")
    subnets: Iterator[ipaddress.IPv4Network] = pool.subnets(new_prefix=24)
    for _ in range(index):
        next(subnets)
    return next(subnets)


def _dump(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
