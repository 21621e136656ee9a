"""The platform registry: one Ansible inventory, one validated model.

``inventories/<env>/`` is a standard Ansible inventory in the YAML format
(``hosts.yml``, ``group_vars/``, ``host_vars/``) and also the only list of
SAMUs there is. ``load_inventory`` reads it the way Ansible does (variables
from ``group_vars/all``, then the other groups by depth and name, then inline
host variables, then ``host_vars``) and validates it into an ``Inventory``.
The Pulumi program, the runbook engine and Ansible all read this same data.

Conventions in the files:

- a SAMU is a host of the ``samu`` group (directly or through a child group)
  with ``samu_code``, ``samu_name`` and ``samu_cidr``; its wave is the
  ``wave<N>`` group it belongs to (at most one);
- ``cutover_production: true`` in ``group_vars/all`` marks the production
  inventory: its runs are live (they count in ``cutover programme``); every
  other inventory's runs are rehearsals;
- ``cutover_lab: true`` in ``group_vars/all`` marks a lab inventory, the only
  kind on which automatic gate approval is allowed;
- ``cutover_known_hosts``, ``ansible_ssh_private_key_file`` and
  ``cutover_anchor_key`` are paths, relative ones being relative to the
  inventory folder;
- ``cutover_national`` describes the national core (see ``cutover.model.national``).

Unknown ``samu_*`` or ``cutover_*`` variables are refused: a typo there must
fail at load time, not at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cutover.core.notices import NoticeKind
from cutover.errors import InputError, NotFound, Problem, ValidationError
from cutover.model.national import NationalCore
from cutover.model.redact import secret_values
from cutover.model.yamlsource import VaultText, YamlDocument, load_yaml, problems_from_errors

HOSTS_FILES = ("hosts.yml", "hosts.yaml")
MIN_SITE_PREFIX = 16  # a SAMU's premises: a /16 at the widest; 0.0.0.0/0 would open the tenant to everyone
WAVE_GROUP = re.compile(r"^wave(?P<number>[1-9][0-9]*)$")
SAMU_GROUP = "samu"

_DEPARTEMENTS = (
    {f"{n:02d}" for n in range(1, 20)}
    | {f"{n:02d}" for n in range(21, 96)}
    | {"2A", "2B", "971", "972", "973", "974", "976"}
)


def is_departement_code(code: str) -> bool:
    """True for a SAMU's département code: 01-19, 21-95, 2A, 2B, 971-974, 976."""
    return code in _DEPARTEMENTS


def all_departement_codes() -> list[str]:
    """Every département code, in the usual order (01..19, 2A, 2B, 21..95, 971..976)."""

    def order(code: str) -> tuple[int, str]:
        prefix = code[:2]
        return (int(prefix) if prefix.isdigit() else 20, code)  # 2A and 2B sit where 20 was

    return sorted(_DEPARTEMENTS, key=order)


APPRISE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def _apprise_url(value: Any) -> Any:
    """An Apprise URL's shape; the value is never echoed (it carries credentials)."""
    if isinstance(value, str) and not isinstance(value, VaultText) and not APPRISE_URL.match(value):
        raise ValueError("not an Apprise URL: write SCHEME://... (e.g. mailto://user:pass@smtp.example?to=..., "
                         "json://hooks.example/path, msteams://...), as a !vault value outside the lab")
    return value


class NotifyTarget(BaseModel):
    """One ``cutover_notify`` entry: an Apprise URL, the events it gets, for which SAMUs, in which language."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import

    # Apprise URLs carry credentials: write them as `!vault` values outside the lab
    url: str
    events: list[NoticeKind] = Field(default_factory=lambda: list(get_args(NoticeKind)), min_length=1)
    samus: list[str] | Literal["all"] = "all"
    lang: Literal["fr", "en"] = "fr"

    _url_shape = field_validator("url")(_apprise_url)


class OnCall(BaseModel):
    """One of a SAMU's on-call contacts (``samu_oncall``): told when the SAMU enters backup mode and returns."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import

    url: str
    lang: Literal["fr", "en"] = "fr"

    _url_shape = field_validator("url")(_apprise_url)


class SamuVars(BaseModel):
    """The ``samu_*`` variables of a SAMU host, as written in the inventory."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import

    samu_code: str
    samu_name: str = Field(min_length=1)
    samu_cidr: ipaddress.IPv4Network
    samu_telephony: dict[str, str] = Field(default_factory=dict)
    samu_vpn_peer: ipaddress.IPv4Address | None = None
    samu_site_cidr: ipaddress.IPv4Network | None = None  # the premises' network behind the VPN peer
    samu_oncall: list[OnCall] = Field(default_factory=list)

    @field_validator("samu_code", mode="before")
    @classmethod
    def _code_is_a_departement(cls, value: Any) -> str:
        if isinstance(value, int) and is_departement_code(f"{value:02d}"):
            raise ValueError(f"write the département code as a quoted string, e.g. \"{value:02d}\"")
        if not isinstance(value, str) or not is_departement_code(value):
            raise ValueError(
                f"{str(value)!r} is not a département code (01-19, 21-95, 2A, 2B, 971-974, 976; there is no 20)"
            )
        return value


class CutoverVars(BaseModel):
    """The ``cutover_*`` variables (normally in ``group_vars/all``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import

    cutover_lab: bool = False
    # Marks the production inventory: runs there are "live", everywhere else "rehearsal"
    cutover_production: bool = False
    cutover_known_hosts: str | None = None
    cutover_national: NationalCore | None = None
    cutover_tenant_pool: ipaddress.IPv4Network | None = None
    cutover_environment: str | None = None
    # ansible-vault password file (relative to the inventory folder): Ansible decrypts the `!vault`
    # values with it, and cutover learns their plain text only to redact it everywhere
    cutover_vault_password_file: str | None = None
    # the controller's SSH key each drive's end is signed with (cutover.app.anchors) when neither --anchor-key
    # nor CUTOVER_ANCHOR_KEY names one; the lab's is written by `cutover lab up`
    cutover_anchor_key: str | None = None
    # notifications (cutover.app.notify): who is told what; `--notify test` sends everything to the test target
    cutover_notify: list[NotifyTarget] = Field(default_factory=list)
    cutover_notify_test: str | None = None

    _url_shape = field_validator("cutover_notify_test")(_apprise_url)


@dataclass(frozen=True)
class Host:
    """An inventory host with its merged variables and how to reach it."""

    name: str
    groups: frozenset[str]
    vars: Mapping[str, Any]

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str | None:
        user = self.vars.get("ansible_user")
        return str(user) if user is not None else None


@dataclass(frozen=True)
class Samu:
    """A SAMU site: a département's emergency call centre."""

    host: str
    code: str
    name: str
    cidr: ipaddress.IPv4Network
    wave: int | None
    telephony: Mapping[str, str]
    vpn_peer: ipaddress.IPv4Address | None = None
    site_cidr: ipaddress.IPv4Network | None = None
    oncall: tuple[OnCall, ...] = ()


@dataclass(frozen=True)
class Inventory:
    """A validated environment: hosts, groups, SAMUs and the national core."""

    name: str
    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]
    samus: Mapping[str, Samu]
    settings: CutoverVars
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    secrets: tuple[str, ...] = field(default_factory=tuple)
    vault_password_file: Path | None = None
    has_vault_values: bool = False
    anchor_key: Path | None = None  # cutover_anchor_key, resolved

    @property
    def is_lab(self) -> bool:
        return self.settings.cutover_lab

    @property
    def run_kind(self) -> str:
        """``live`` on the inventory marked ``cutover_production: true``, ``rehearsal`` everywhere else."""
        return "live" if self.settings.cutover_production and not self.is_lab else "rehearsal"

    @property
    def national(self) -> NationalCore | None:
        return self.settings.cutover_national

    def waves(self) -> dict[int, tuple[str, ...]]:
        """Wave number -> SAMU host names, in inventory order."""
        found: dict[int, tuple[str, ...]] = {}
        for group, members in self.groups.items():
            match = WAVE_GROUP.match(group)
            if match:
                found[int(match["number"])] = members
        return dict(sorted(found.items()))

    def require_known_hosts(self) -> Path:
        """The known_hosts file every SSH connection is checked against; a clear error if there is none."""
        if self.known_hosts is None:
            raise InputError(f"inventory {self.name!r} names no known_hosts file",
                             hint="set cutover_known_hosts in group_vars/all.yml; host keys are checked strictly")
        if not self.known_hosts.is_file():
            raise NotFound(f"known_hosts file {self.known_hosts} of inventory {self.name!r} does not exist",
                           hint="in the lab, `cutover lab up` writes it; elsewhere collect each host's key "
                           f"(ssh-keyscan -p PORT HOST >> {self.known_hosts}) and check its fingerprint "
                           "with the host's owner")
        return self.known_hosts

    def require_ssh_key(self) -> Path:
        """The controller's private key; a clear error if there is none."""
        if self.ssh_key is None:
            raise InputError(f"inventory {self.name!r} names no SSH key",
                             hint="set ansible_ssh_private_key_file in group_vars/all.yml")
        if not self.ssh_key.is_file():
            raise NotFound(f"SSH key {self.ssh_key} of inventory {self.name!r} does not exist",
                           hint="in the lab, `cutover lab up` creates it")
        return self.ssh_key

    def require_vault_password(self) -> Path | None:
        """The vault password file when the inventory holds vault values; a clear error when it is missing."""
        if not self.has_vault_values:
            return None
        if self.vault_password_file is None or not self.vault_password_file.is_file():
            raise InputError(f"inventory {self.name!r} holds ansible-vault values but its vault password file "
                             f"{self.vault_password_file or '(cutover_vault_password_file is not set)'} does not exist",
                             hint="set cutover_vault_password_file in group_vars/all.yml to a file only you can read "
                                  "(in the lab, `cutover lab up` writes it)")
        return self.vault_password_file

    def samu_by_code(self, code: str) -> Samu:
        for samu in self.samus.values():
            if samu.code == code:
                return samu
        raise NotFound(f"no SAMU with code {code!r} in inventory {self.name!r}")

    def resolve_targets(self, pattern: str) -> tuple[str, ...]:
        """Host names for a group or host name, in inventory order."""
        if pattern in self.groups:
            return self.groups[pattern]
        if pattern in self.hosts:
            return (pattern,)
        raise NotFound(
            f"{pattern!r} is neither a group nor a host of inventory {self.name!r}",
            hint=f"groups: {', '.join(sorted(self.groups)) or '(none)'}",
        )


# --------------------------------------------------------------------------
# Loading


def inventory_dir(project_dir: Path, env: str) -> Path:
    """``--env NAME`` means ``inventories/NAME/``; a path (with a slash) is taken as is."""
    if "/" in env or env.startswith("."):
        return Path(env).expanduser().resolve()
    return (project_dir / "inventories" / env).resolve()


def load_inventory(project_dir: Path, env: str) -> Inventory:
    """Load and validate ``inventories/<env>/``; every problem is reported at once."""
    path = inventory_dir(project_dir, env)
    if not path.is_dir():
        available = sorted(p.name for p in (project_dir / "inventories").glob("*") if p.is_dir())
        raise NotFound(
            f"environment {env!r} not found: no folder {path}",
            hint=f"available environments: {', '.join(available) or '(none)'}; "
            "or run from the project folder / pass --project-dir",
        )
    return _InventoryReader(path, env).read()


def _holds_vault(variables: Mapping[str, Any]) -> bool:
    return any(isinstance(v, VaultText) or (isinstance(v, Mapping) and _holds_vault(v)) for v in variables.values())


def vault_reader(password_file: Path | None) -> Callable[[str], str | None]:
    """Decrypts vault values with the inventory's password file (None without one, or on a wrong password)."""
    if password_file is None or not password_file.is_file():
        return lambda _: None
    from ansible.errors import AnsibleError  # Ansible's own vault code: same format, same ciphers
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password_file.read_bytes().strip()))])

    def reveal(ciphertext: str) -> str | None:
        try:
            return vault.decrypt(ciphertext.encode()).decode("utf-8", "replace")
        except (AnsibleError, ValueError):
            return None

    return reveal


class _InventoryReader:
    """Reads one inventory folder; collects problems instead of stopping at the first."""

    def __init__(self, path: Path, env: str) -> None:
        self.path = path
        self.env = env
        self.problems: list[Problem] = []
        self.parents: dict[str, set[str]] = {}  # group -> parent groups
        self.group_hosts: dict[str, list[str]] = {}  # direct members, in file order
        self.inline_vars: dict[str, dict[str, Any]] = {}  # host -> vars written in hosts.yml
        self.group_inline_vars: dict[str, dict[str, Any]] = {}
        self.origins: dict[tuple[str, str], tuple[YamlDocument, tuple[str | int, ...]]] = {}

    def read(self) -> Inventory:
        hosts_doc = self._hosts_document()
        if hosts_doc is not None:
            self._walk_group("all", hosts_doc.data, hosts_doc, ("all",))
        host_names = list(dict.fromkeys(h for members in self.group_hosts.values() for h in members))
        groups = self._expanded_groups(host_names)
        group_vars = self._group_vars(groups)
        hosts = {name: self._host(name, groups, group_vars) for name in host_names}
        all_vars = self._merge(group_vars.get("all", {}), {})
        settings = self._settings(all_vars)
        samus = self._samus(hosts, groups)
        self._check_waves(groups, samus)
        self._check_cidrs(samus)
        self._check_site_cidrs(samus, settings)
        if self.problems:
            raise ValidationError(self.problems, what=f"inventory {self.env!r}")
        every_var = {"all": all_vars, **{h.name: dict(h.vars) for h in hosts.values()}}
        vault_file = self._path_var(settings.cutover_vault_password_file if settings else None)
        return Inventory(
            name=self.env,
            path=self.path,
            hosts=hosts,
            groups={g: tuple(m) for g, m in groups.items()},
            samus=samus,
            settings=settings or CutoverVars(),
            ssh_key=self._path_var(all_vars.get("ansible_ssh_private_key_file")),
            known_hosts=self._path_var(settings.cutover_known_hosts if settings else None),
            secrets=tuple(secret_values(every_var, reveal=vault_reader(vault_file))),
            vault_password_file=vault_file,
            has_vault_values=_holds_vault(every_var),
            anchor_key=self._path_var(settings.cutover_anchor_key if settings else None),
        )

    # -- hosts.yml ------------------------------------------------------------

    def _hosts_document(self) -> YamlDocument | None:
        for name in HOSTS_FILES:
            candidate = self.path / name
            if candidate.is_file():
                doc = load_yaml(candidate, display=self._display(candidate))
                if not isinstance(doc.data, dict) or set(doc.data) != {"all"}:
                    self.problems.append(
                        Problem(doc.path, "the hosts file must have a single top-level key 'all'", line=1)
                    )
                    return None
                return YamlDocument(doc.path, doc.data["all"] or {}, doc.root)
        self.problems.append(
            Problem(self._display(self.path), "no hosts.yml in this inventory folder", hint="create hosts.yml")
        )
        return None

    def _walk_group(self, group: str, body: Any, doc: YamlDocument, loc: tuple[str | int, ...]) -> None:
        self.group_hosts.setdefault(group, [])
        self.parents.setdefault(group, set())
        if body is None:
            return
        if not isinstance(body, dict) or set(body) - {"hosts", "children", "vars"}:
            self.problems.append(
                Problem(doc.path, f"group {group!r} may only have 'hosts', 'children' and 'vars'",
                        line=doc.line_of(loc), field=".".join(map(str, loc)))
            )
            return
        for section in ("hosts", "vars", "children"):
            if body.get(section) is not None and not isinstance(body[section], dict):
                self.problems.append(Problem(doc.path, f"group {group!r}: '{section}' must be a mapping",
                                             line=doc.line_of((*loc, section)), field=".".join(map(str, (*loc, section))),
                                             hint="indent the names under it, one per line, each followed by ':'"))
                return
        for host, host_vars in (body.get("hosts") or {}).items():
            self.group_hosts[group].append(str(host))
            if host_vars is not None and not isinstance(host_vars, dict):
                self.problems.append(Problem(doc.path, f"host {host!r}: expected its variables as a mapping, or "
                                             f"nothing, not {type(host_vars).__name__} {host_vars!r}",
                                             line=doc.line_of((*loc, "hosts", host)),
                                             field=".".join(map(str, (*loc, "hosts", host))),
                                             hint=f"write `{host}:` alone (variables go in host_vars/{host}.yml)"))
            elif host_vars:
                self.inline_vars.setdefault(str(host), {}).update(host_vars)
                for key in host_vars:
                    self.origins[(str(host), key)] = (doc, (*loc, "hosts", host, key))
        if body.get("vars"):
            self.group_inline_vars[group] = dict(body["vars"])
        for child, child_body in (body.get("children") or {}).items():
            self.parents.setdefault(str(child), set()).add(group)
            self._walk_group(str(child), child_body, doc, (*loc, "children", child))

    def _expanded_groups(self, host_names: list[str]) -> dict[str, list[str]]:
        """Group -> every host in it or in its descendants, in inventory order."""
        expanded: dict[str, list[str]] = {g: [] for g in self.group_hosts}
        for host in host_names:
            for group in self._ancestors_of_host(host):
                expanded[group].append(host)
        expanded["all"] = list(host_names)
        return expanded

    def _ancestors_of_host(self, host: str) -> set[str]:
        direct = {g for g, members in self.group_hosts.items() if host in members}
        found: set[str] = set()
        stack = list(direct)
        while stack:
            group = stack.pop()
            if group not in found:
                found.add(group)
                stack.extend(self.parents.get(group, ()))
        return found | {"all"}

    def _depth(self, group: str) -> int:
        parents = self.parents.get(group) or set()
        return 0 if group == "all" or not parents else 1 + max(self._depth(p) for p in parents)

    # -- group_vars / host_vars --------------------------------------------------

    def _vars_files(self, folder: str, name: str) -> list[Path]:
        base = self.path / folder
        files = [base / f"{name}{ext}" for ext in (".yml", ".yaml", "")]
        found = [f for f in files if f.is_file()]
        if (base / name).is_dir():
            found += sorted(p for p in (base / name).iterdir() if p.suffix in (".yml", ".yaml"))
        return found

    def _read_vars(self, folder: str, name: str) -> tuple[dict[str, Any], dict[str, tuple[YamlDocument, tuple]]]:
        merged: dict[str, Any] = {}
        origins: dict[str, tuple[YamlDocument, tuple]] = {}
        for file in self._vars_files(folder, name):
            try:
                doc = load_yaml(file, display=self._display(file))
            except ValidationError as exc:
                self.problems.extend(exc.problems)
                continue
            if doc.data is None:
                continue
            if not isinstance(doc.data, dict):
                self.problems.append(Problem(doc.path, "a vars file must be a mapping of names to values", line=1))
                continue
            merged.update(doc.data)
            origins.update({key: (doc, (key,)) for key in doc.data})
        return merged, origins

    def _group_vars(self, groups: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for group in groups:
            file_vars, origins = self._read_vars("group_vars", group)
            result[group] = {**self.group_inline_vars.get(group, {}), **file_vars}
            for key, origin in origins.items():
                self.origins.setdefault((f"@{group}", key), origin)
        return result

    def _host(self, name: str, groups: dict[str, list[str]], group_vars: dict[str, dict[str, Any]]) -> Host:
        member_of = sorted((g for g, hosts in groups.items() if name in hosts), key=lambda g: (self._depth(g), g))
        merged: dict[str, Any] = {}
        for group in member_of:  # Ansible: 'all' first, then deeper groups, then by name
            merged = self._merge(merged, group_vars.get(group, {}))
        merged = self._merge(merged, self.inline_vars.get(name, {}))
        host_file_vars, origins = self._read_vars("host_vars", name)
        for key, origin in origins.items():
            self.origins[(name, key)] = origin
        merged = self._merge(merged, host_file_vars)
        return Host(name=name, groups=frozenset(member_of), vars=merged)

    @staticmethod
    def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
        return {**base, **override}  # Ansible's default hash_behaviour is 'replace'

    # -- validation --------------------------------------------------------------

    def _settings(self, all_vars: dict[str, Any]) -> CutoverVars | None:
        ours = {k: v for k, v in all_vars.items() if k.startswith("cutover_")}
        try:
            return CutoverVars.model_validate(ours)
        except pydantic.ValidationError as exc:
            self._report(exc, owner="@all", keys=ours)
            return None

    def _samus(self, hosts: dict[str, Host], groups: dict[str, list[str]]) -> dict[str, Samu]:
        samus: dict[str, Samu] = {}
        codes: dict[str, str] = {}
        for name in groups.get(SAMU_GROUP, []):
            host = hosts[name]
            ours = {k: v for k, v in host.vars.items() if k.startswith("samu_")}
            try:
                parsed = SamuVars.model_validate(ours)
            except pydantic.ValidationError as exc:
                self._report(exc, owner=name, keys=ours)
                continue
            if parsed.samu_code in codes:
                self._problem(name, "samu_code", f"code {parsed.samu_code!r} is also used by {codes[parsed.samu_code]}",
                              hint="each SAMU has its own département code")
            codes[parsed.samu_code] = name
            samus[name] = Samu(
                host=name, code=parsed.samu_code, name=parsed.samu_name, cidr=parsed.samu_cidr,
                wave=self._wave_of(host), telephony=dict(parsed.samu_telephony), vpn_peer=parsed.samu_vpn_peer,
                site_cidr=parsed.samu_site_cidr, oncall=tuple(parsed.samu_oncall),
            )
        return samus

    @staticmethod
    def _wave_of(host: Host) -> int | None:
        waves = sorted(int(m["number"]) for g in host.groups if (m := WAVE_GROUP.match(g)))
        return waves[0] if waves else None

    def _check_waves(self, groups: dict[str, list[str]], samus: dict[str, Samu]) -> None:
        seen: dict[str, str] = {}
        for group, members in groups.items():
            if not WAVE_GROUP.match(group):
                continue
            for host in members:
                if host not in samus and host not in groups.get(SAMU_GROUP, []):
                    self._problem(f"@{group}", None, f"wave group {group!r} lists {host!r}, which is not a SAMU",
                                  hint=f"define {host} in the '{SAMU_GROUP}' group with samu_code/samu_name/samu_cidr")
                if host in seen and seen[host] != group:
                    self._problem(host, None, f"{host} is in two waves ({seen[host]} and {group})",
                                  hint="a SAMU belongs to one wave")
                seen[host] = group

    def _check_cidrs(self, samus: dict[str, Samu]) -> None:
        ordered = sorted(samus.values(), key=lambda s: (s.cidr.network_address, s.host))
        for before, after in zip(ordered, ordered[1:]):
            if before.cidr.overlaps(after.cidr):
                self._problem(after.host, "samu_cidr",
                              f"{after.cidr} overlaps {before.cidr} of {before.host}",
                              hint="every SAMU needs its own network; `cutover tenant add` allocates a free one")

    def _check_site_cidrs(self, samus: dict[str, Samu], settings: CutoverVars | None) -> None:
        """A SAMU's premises network is opened to its tenant through the VPN: never the whole world, never ours."""
        ours: list[tuple[str, ipaddress.IPv4Network]] = []
        if settings is not None and settings.cutover_tenant_pool is not None:
            ours.append(("the tenant pool", settings.cutover_tenant_pool))
        networks = settings.cutover_national.networks if settings and settings.cutover_national else None
        if networks is not None:
            ours += [(f"the national {name} network", network) for name, network in networks.by_zone().items()]
        hint = "the premises' own private network behind the SAMU's VPN gateway, e.g. 172.16.3.0/24"
        for samu in samus.values():
            site = samu.site_cidr
            if site is None:
                continue
            if site.prefixlen < MIN_SITE_PREFIX:
                self._problem(samu.host, "samu_site_cidr", f"{site} is far too wide for one SAMU's premises "
                              f"(a /{site.prefixlen}; at most /{MIN_SITE_PREFIX})", hint=hint)
                continue
            for name, network in ours + [(f"the network of {o.host}", o.cidr) for o in samus.values()]:
                if site.overlaps(network):
                    self._problem(samu.host, "samu_site_cidr", f"{site} overlaps {name} ({network})", hint=hint)
                    break

    # -- problem reporting ---------------------------------------------------------

    def _report(self, exc: pydantic.ValidationError, *, owner: str, keys: Mapping[str, Any]) -> None:
        for err in exc.errors(include_url=False):
            key = str(err["loc"][0]) if err["loc"] else ""
            doc, prefix = self.origins.get((owner, key), (None, ()))
            if doc is None and owner != "@all" and key:
                doc, prefix = self._group_origin(key)
            # one error at a time, as data: rebuilding a ValidationError from it fails for some
            # error types (pydantic-core does not know "ip_v4_network" by name)
            if doc is not None:
                self.problems.extend(problems_from_errors(doc, [err], loc_prefix=prefix[:-1]))
            else:
                file = self._display(self.path / "host_vars" / f"{owner}.yml") if owner[0] != "@" else self._display(self.path / "group_vars" / "all.yml")
                self.problems.extend(problems_from_errors(YamlDocument(file, None, None), [err]))

    def _group_origin(self, key: str) -> tuple[YamlDocument | None, tuple]:
        for (owner, k), origin in self.origins.items():
            if owner.startswith("@") and k == key:
                return origin
        return None, ()

    def _problem(self, owner: str, key: str | None, message: str, *, hint: str | None = None) -> None:
        doc, loc = self.origins.get((owner, key), (None, ())) if key else (None, ())
        if doc is not None:
            self.problems.append(Problem(doc.path, message, line=doc.line_of(loc), field=f"{owner}.{key}", hint=hint))
            return
        folder = "group_vars" if owner.startswith("@") else "host_vars"
        file = self._display(self.path / folder / f"{owner.lstrip('@')}.yml")
        if owner.startswith("@"):
            file = self._display(self.path / HOSTS_FILES[0])
        self.problems.append(Problem(file, message, field=f"{owner.lstrip('@')}.{key}" if key else owner.lstrip("@"), hint=hint))

    def _path_var(self, value: Any) -> Path | None:
        if value in (None, ""):
            return None
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else (self.path / path).resolve()

    def _display(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

