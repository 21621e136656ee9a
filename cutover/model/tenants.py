"""SAMU tenants in the inventory: list them, add, edit or remove one.

Adding a SAMU is one edit of the inventory (DESIGN: one source of truth): a
host in its wave group in ``hosts.yml`` and a ``host_vars/samu-<code>.yml``
with its code, name and a network allocated from ``cutover_tenant_pool``.
The infra plan, the runbook plan and the playbooks all see it from there.

``hosts.yml`` is edited with ruamel.yaml's round-trip mode so that the
user's comments, order and layout survive. If the result does not load as a
valid inventory, both files are put back as they were. ``edit`` and
``remove`` apply the same validation as ``add`` and return the unified diff
of the inventory files, for review (``dry_run`` writes nothing).
"""

from __future__ import annotations

import difflib
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
from cutover.model.inventory import (
    HOSTS_FILES,
    MIN_SITE_PREFIX,
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
    _refuse_bad_details(inventory, tenant)


def _refuse_bad_details(inventory: Inventory, tenant: NewTenant) -> None:
    """What add and edit both check: a name, a wave, and a VPN that is complete and overlaps no other premises."""
    if not tenant.name.strip():
        raise InputError("the SAMU needs a name", hint='e.g. --name "Nîmes (Gard)"')
    if tenant.wave < 1:
        raise InputError(f"wave {tenant.wave} is not a wave number", hint="waves are numbered from 1")
    if (tenant.vpn_peer is None) != (tenant.site_cidr is None):
        given, missing = ("--vpn-peer", "--site-cidr") if tenant.site_cidr is None else ("--site-cidr", "--vpn-peer")
        raise InputError(f"{given} without {missing}: the VPN to the premises needs both",
                         hint="the premises' gateway address and the network behind it, e.g. --vpn-peer "
                              "203.0.113.50 --site-cidr 172.16.50.0/24")
    if tenant.site_cidr is not None and tenant.site_cidr.prefixlen >= MIN_SITE_PREFIX:  # wider: the inventory says
        for other in inventory.samus.values():
            if other.code != tenant.code and other.site_cidr is not None and other.site_cidr.overlaps(tenant.site_cidr):
                raise InputError(f"--site-cidr {tenant.site_cidr} overlaps the premises of SAMU {other.code} "
                                 f"({other.site_cidr})", hint="each SAMU's premises network is its own")


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


# --------------------------------------------------------------------------
# edit / remove: the same validation, and the diff to review


@dataclass(frozen=True)
class InventoryChange:
    """What an edit or a removal did (or would do): the SAMU and the unified diff of the inventory files."""

    samu: Samu | None  # the SAMU as the inventory has it after the change (before it, for a removal)
    diff: str


def edit_tenant(project_dir: Path, env: str, tenant: NewTenant, *, dry_run: bool = False) -> InventoryChange:
    """Give SAMU ``tenant.code`` this name, wave and VPN; its network stays (a new one would rebuild the tenant)."""
    inventory = load_inventory(project_dir, env)
    samu = _existing(inventory, tenant.code)
    _refuse_bad_details(inventory, tenant)
    hosts_file = _hosts_file(inventory.path)
    vars_file = inventory.path / "host_vars" / f"{samu.host}.yml"
    hosts = hosts_file.read_text(encoding="utf-8")
    new_hosts = _with_host(_without_host(hosts, samu.host), samu.host, tenant.wave) if samu.wave != tenant.wave \
        else hosts
    new_vars = _edited_vars(vars_file.read_text(encoding="utf-8"), tenant)
    return _apply(project_dir, env, tenant.code, {hosts_file: new_hosts, vars_file: new_vars}, dry_run=dry_run)


def remove_tenant(project_dir: Path, env: str, code: str, *, dry_run: bool = False) -> InventoryChange:
    """Take SAMU ``code`` out of the inventory: its host in ``hosts.yml`` and its ``host_vars`` file."""
    inventory = load_inventory(project_dir, env)
    samu = _existing(inventory, code)
    hosts_file = _hosts_file(inventory.path)
    vars_file = inventory.path / "host_vars" / f"{samu.host}.yml"
    new_hosts = _without_host(hosts_file.read_text(encoding="utf-8"), samu.host)
    change = _apply(project_dir, env, None, {hosts_file: new_hosts, vars_file: None}, dry_run=dry_run)
    return InventoryChange(samu, change.diff)


def _existing(inventory: Inventory, code: str) -> Samu:
    found = next((s for s in inventory.samus.values() if s.code == code), None)
    if found is None:
        raise InputError(f"there is no SAMU {code} in inventory {inventory.name!r}",
                         hint="`cutover tenant list` shows the SAMUs")
    return found


def _apply(project_dir: Path, env: str, code: str | None, files: dict[Path, str | None], *,
           dry_run: bool) -> InventoryChange:
    """Write ``files`` (None: delete), reload the inventory, put everything back if it is not valid."""
    before = {path: path.read_text(encoding="utf-8") if path.is_file() else None for path in files}
    diff = "".join(_unified(path, before[path], after, project_dir) for path, after in files.items())
    if dry_run:
        samu = load_inventory(project_dir, env).samu_by_code(code) if code else None
        return InventoryChange(samu, diff)
    try:
        for path, text in files.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")
        inventory = load_inventory(project_dir, env)
        return InventoryChange(inventory.samu_by_code(code) if code else None, diff)
    except (ValidationError, InputError):
        for path, text in before.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")
        raise


def _unified(path: Path, before: str | None, after: str | None, project_dir: Path) -> str:
    try:
        shown = str(path.relative_to(project_dir))
    except ValueError:
        shown = str(path)
    return "".join(difflib.unified_diff((before or "").splitlines(keepends=True),
                                       (after or "").splitlines(keepends=True),
                                       fromfile=f"a/{shown}" if before is not None else "/dev/null",
                                       tofile=f"b/{shown}" if after is not None else "/dev/null"))


def _edited_vars(text: str, tenant: NewTenant) -> str:
    """The host_vars text with the new name and VPN, every other variable and comment kept."""
    yaml = _round_trip()
    document = yaml.load(text) or CommentedMap()
    document["samu_name"] = tenant.name
    for key, value in (("samu_site_cidr", tenant.site_cidr), ("samu_vpn_peer", tenant.vpn_peer)):
        if value is None:
            document.pop(key, None)
        else:
            document[key] = str(value)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _without_host(text: str, host: str) -> str:
    """``hosts.yml`` text without ``host`` in any group (comments and layout kept)."""
    yaml = _round_trip()
    document = yaml.load(text) or CommentedMap()

    def prune(node: Any) -> None:
        if not isinstance(node, dict):
            return
        hosts = node.get("hosts")
        if isinstance(hosts, dict) and host in hosts:
            del hosts[host]
            if not hosts:
                node["hosts"] = None
        for key in ("children",) + tuple(k for k in node if k not in ("hosts", "vars", "children")):
            prune(node.get(key))

    prune(document)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()
