"""SAMU tenants in the inventory: list them, add one.

Adding a SAMU is one edit of the inventory (DESIGN: one source of truth): a
host in its wave group in ``hosts.yml`` and a ``host_vars/samu-<code>.yml``
with its code, name and a network allocated from ``cutover_tenant_pool``.
The infra plan, the runbook plan and the playbooks all see it from there.

``hosts.yml`` is edited with ruamel.yaml's round-trip mode so that the
user's comments, order and layout survive. If the result does not load as a
valid inventory, both files are put back as they were.
"""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from cutover.errors import InputError, ValidationError
from cutover.inventory import (
    HOSTS_FILES,
    SAMU_GROUP,
    Inventory,
    Samu,
    all_departement_codes,
    is_departement_code,
    load_inventory,
)

TENANT_PREFIX = 24  # one /24 per SAMU


@dataclass(frozen=True)
class NewTenant:
    code: str
    name: str
    wave: int
    vpn_peer: ipaddress.IPv4Address | None = None
    site_cidr: ipaddress.IPv4Network | None = None


@dataclass(frozen=True)
class TenantRow:
    code: str
    name: str
    host: str
    wave: int | None
    cidr: str
    vpn_peer: str | None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "host": self.host, "wave": self.wave, "cidr": self.cidr,
                "vpnPeer": self.vpn_peer}


def host_name(code: str) -> str:
    return f"samu-{code}"


def list_tenants(inventory: Inventory) -> list[TenantRow]:
    """Every SAMU of the inventory, in département order."""
    order = {code: i for i, code in enumerate(all_departement_codes())}
    samus = sorted(inventory.samus.values(), key=lambda s: order[s.code])
    return [TenantRow(s.code, s.name, s.host, s.wave, str(s.cidr), str(s.vpn_peer) if s.vpn_peer else None)
            for s in samus]


def allocate_cidr(pool: ipaddress.IPv4Network, taken: Iterable[ipaddress.IPv4Network],
                  prefix: int = TENANT_PREFIX) -> ipaddress.IPv4Network | None:
    """The lowest /prefix of ``pool`` that overlaps nothing taken; None when the pool is full."""
    used = list(taken)
    if prefix < pool.prefixlen:
        return None
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in used):
            return candidate
    return None


def add_tenant(project_dir: Path, env: str, tenant: NewTenant) -> Samu:
    """Add a SAMU to ``inventories/<env>/``; the SAMU as the reloaded inventory sees it."""
    inventory = load_inventory(project_dir, env)
    _refuse_bad_request(inventory, tenant)
    cidr = _allocate(inventory)
    hosts_file = _hosts_file(inventory.path)
    vars_file = inventory.path / "host_vars" / f"{host_name(tenant.code)}.yml"
    if vars_file.exists():
        raise InputError(f"{vars_file} already exists", hint="remove it, or it is a SAMU already in progress")
    original = hosts_file.read_text(encoding="utf-8")
    try:
        hosts_file.write_text(_with_host(original, host_name(tenant.code), tenant.wave), encoding="utf-8")
        vars_file.parent.mkdir(exist_ok=True)
        vars_file.write_text(host_vars_text(tenant, cidr), encoding="utf-8")
        return load_inventory(project_dir, env).samu_by_code(tenant.code)
    except (ValidationError, InputError):
        hosts_file.write_text(original, encoding="utf-8")  # leave the inventory as we found it
        vars_file.unlink(missing_ok=True)
        raise


def _refuse_bad_request(inventory: Inventory, tenant: NewTenant) -> None:
    if not is_departement_code(tenant.code):
        raise InputError(f"{tenant.code!r} is not a département code",
                         hint="01-19, 21-95, 2A, 2B, 971-974, 976 (there is no 20); quote it in YAML")
    existing = next((s for s in inventory.samus.values() if s.code == tenant.code), None)
    if existing is not None:
        raise InputError(f"SAMU {tenant.code} is already in inventory {inventory.name!r} ({existing.name}, "
                         f"host {existing.host})", hint="`cutover tenant list` shows the SAMUs")
    if host_name(tenant.code) in inventory.hosts:
        raise InputError(f"host {host_name(tenant.code)} already exists in inventory {inventory.name!r}")
    if not tenant.name.strip():
        raise InputError("the SAMU needs a name", hint='e.g. --name "Nîmes (Gard)"')
    if tenant.wave < 1:
        raise InputError(f"wave {tenant.wave} is not a wave number", hint="waves are numbered from 1")


def _allocate(inventory: Inventory) -> ipaddress.IPv4Network:
    pool = inventory.settings.cutover_tenant_pool
    if pool is None:
        raise InputError(f"inventory {inventory.name!r} has no cutover_tenant_pool to allocate from",
                         hint="add cutover_tenant_pool (e.g. 10.140.0.0/16) to group_vars/all.yml")
    national = inventory.national.networks if inventory.national else None
    taken = [s.cidr for s in inventory.samus.values()] + list(national.by_zone().values() if national else [])
    cidr = allocate_cidr(pool, taken)
    if cidr is None:
        raise InputError(f"cutover_tenant_pool {pool} has no free /{TENANT_PREFIX} left",
                         hint="widen the pool in group_vars/all.yml")
    return cidr


def _hosts_file(path: Path) -> Path:
    for name in HOSTS_FILES:
        if (path / name).is_file():
            return path / name
    raise InputError(f"no hosts.yml in {path}")


def _round_trip() -> YAML:
    yaml = YAML()  # round-trip: comments, key order and quoting survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _with_host(text: str, host: str, wave: int) -> str:
    """``hosts.yml`` text with ``host`` added to ``wave<N>`` under the ``samu`` group."""
    yaml = _round_trip()
    document = yaml.load(text) or CommentedMap()
    wave_group = _group(_group(_group(document, "all"), SAMU_GROUP, "children"), f"wave{wave}", "children")
    hosts = wave_group.get("hosts")
    if hosts is None:
        hosts = wave_group["hosts"] = CommentedMap()
    hosts[host] = None
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _group(parent: CommentedMap, name: str, under: str | None = None) -> CommentedMap:
    """``parent[under][name]`` (or ``parent[name]``), created empty when missing."""
    container = parent
    if under is not None:
        if container.get(under) is None:
            container[under] = CommentedMap()
        container = container[under]
    if container.get(name) is None:
        container[name] = CommentedMap()
    return container[name]


def host_vars_text(tenant: NewTenant, cidr: ipaddress.IPv4Network) -> str:
    lines = [
        "# Added by `cutover tenant add`.",
        f'samu_code: "{tenant.code}"',
        f"samu_name: {_yaml_scalar(tenant.name)}",
        f"samu_cidr: {cidr}",
    ]
    if tenant.site_cidr is not None:
        lines.append(f"samu_site_cidr: {tenant.site_cidr}")
    if tenant.vpn_peer is not None:
        lines.append(f"samu_vpn_peer: {tenant.vpn_peer}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar
