"""What changes between two plans, as a reviewer needs to read it. (Plain data, no Pulumi.)

Like ``pulumi preview --diff``: each resource is created, updated, replaced or
deleted; an update lists the property paths that change; a replacement says
which property forces it. Which properties force a replacement follows the
OpenStack provider (resources Neutron or Nova cannot change in place), with
one deliberate addition: an instance's image or flavor. Nova *rebuilds* on an
image change and *resizes* on a flavor change, but a rebuild rewrites the
node's disk and an Ironic node cannot be resized: for the nodes that hold the
platform's data both are as destructive as a replacement.

What a reviewer must not miss:

- creates and deletes show the inputs that matter (CIDRs, ports and
  protocols, sizes, flavor, image, zone, fixed IPs...);
- resource options (``protect``, ``ignoreChanges``, ``deleteBeforeReplace``,
  ``retainOnDelete``) are compared like inputs, under ``(options).``;
- a change is *dangerous* when it destroys or replaces something that holds
  state (volumes, instances), withdraws a shared ASM disk from a RAC node,
  moves or releases a fixed address or withdraws an allowed address pair of
  a database, RAC or service port (clients and Clusterware know those
  addresses), or removes ``protect`` from a volume or database resource;
- a change is *impossible* when the cloud cannot apply it: Cinder only
  extends a volume, so a smaller size fails at ``pulumi up``;
- changes are grouped by SAMU tenant and by national component (the
  top-level component each resource belongs to), each group counted.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover.infra.plan import Plan, PlannedResource

# Properties every OpenStack resource cannot change in place.
ALWAYS_REPLACE = frozenset({"region", "tenantId"})

REPLACE_ON: Mapping[str, frozenset[str]] = {
    "openstack:compute/instance:Instance": frozenset({
        "availabilityZone", "availabilityZoneHints", "configDrive", "keyPair", "userData", "networks",
        "schedulerHints", "blockDevices", "personalities", "imageId", "imageName", "flavorId", "flavorName",
    }),
    "openstack:compute/flavor:Flavor": frozenset({
        "name", "vcpus", "ram", "disk", "ephemeral", "swap", "rxTxFactor", "isPublic", "flavorId",
    }),
    "openstack:compute/flavorAccess:FlavorAccess": frozenset({"flavorId", "tenantId"}),
    "openstack:compute/serverGroup:ServerGroup": frozenset({"name", "policies", "rules"}),
    "openstack:compute/volumeAttach:VolumeAttach": frozenset({"instanceId", "volumeId", "device", "multiattach"}),
    # A Cinder attachment (the iSCSI export to a bare-metal node) is never updated in place.
    "openstack:blockstorage/volumeAttach:VolumeAttach": frozenset({
        "volumeId", "hostName", "initiator", "ipAddress", "multipath", "attachMode", "osType", "platform",
        "device", "wwnn", "wwpns",
    }),
    "openstack:blockstorage/volume:Volume": frozenset({
        "availabilityZone", "backupId", "imageId", "snapshotId", "sourceVolId", "sourceReplica",
        "consistencyGroupId",
    }),
    "openstack:networking/subnet:Subnet": frozenset({"networkId", "cidr", "ipVersion", "prefixLength",
                                                     "subnetpoolId"}),
    "openstack:networking/port:Port": frozenset({"networkId", "macAddress"}),
    "openstack:networking/routerInterface:RouterInterface": frozenset({"routerId", "portId", "subnetId"}),
    "openstack:networking/routerRoute:RouterRoute": frozenset({"routerId", "destinationCidr", "nextHop"}),
    # Neutron security-group rules are immutable: any change is delete + create.
    "openstack:networking/secGroupRule:SecGroupRule": frozenset({
        "direction", "ethertype", "securityGroupId", "description", "portRangeMin", "portRangeMax", "protocol",
        "remoteGroupId", "remoteIpPrefix", "remoteAddressGroupId",
    }),
    "openstack:networking/rbacPolicyV2:RbacPolicyV2": frozenset({"action", "objectId", "objectType"}),
    "openstack:identity/project:Project": frozenset({"isDomain", "parentId", "domainId"}),
    "openstack:dns/zone:Zone": frozenset({"name", "type"}),
    "openstack:dns/recordSet:RecordSet": frozenset({"zoneId", "name", "type"}),
    "openstack:vpnaas/endpointGroup:EndpointGroup": frozenset({"type", "endpoints"}),
    "openstack:vpnaas/service:Service": frozenset({"routerId", "subnetId"}),
    "openstack:vpnaas/siteConnection:SiteConnection": frozenset({"ikepolicyId", "ipsecpolicyId", "vpnserviceId"}),
}

T_VOLUME = "openstack:blockstorage/volume:Volume"
T_INSTANCE = "openstack:compute/instance:Instance"
T_PORT = "openstack:networking/port:Port"
T_RAC = "cutover:oracle:RacCluster"
T_TENANT = "cutover:samu:Tenant"
STATEFUL_TYPES = frozenset({T_VOLUME, T_INSTANCE})
ATTACHMENT_TYPES = frozenset({"openstack:compute/volumeAttach:VolumeAttach",
                              "openstack:blockstorage/volumeAttach:VolumeAttach"})
GUARDED_ZONES = frozenset({"service", "interconnect", "storage"})  # database, RAC and service networks
OPTIONS = "(options)"

# The inputs a reviewer reads on a create or delete, in this order; the others are in --json.
KEY_INPUTS = (
    "cidr", "allocationPools", "destinationCidr", "nextHop", "direction", "protocol", "ports", "remoteIpPrefix",
    "remoteGroupId", "size", "volumeType", "flavorId", "flavorName", "imageName", "imageId", "availabilityZone",
    "fixedIps", "allowedAddressPairs", "mtu", "records", "hostName", "initiator", "ipAddress", "peerAddress",
    "endpoints", "externalNetworkId",
)


class Op(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any
    new: Any
    forces_replacement: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new, "forcesReplacement": self.forces_replacement}


@dataclass(frozen=True)
class Change:
    op: Op
    type: str
    name: str
    properties: tuple[PropertyChange, ...] = ()
    dangerous: bool = False
    reason: str | None = None
    impossible: bool = False
    inputs: tuple[tuple[str, Any], ...] = ()  # the key inputs of a create or delete
    group: str = ""  # the top-level component (a SAMU tenant or a national component)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op.value, "type": self.type, "name": self.name, "group": self.group,
                "dangerous": self.dangerous, "impossible": self.impossible, "reason": self.reason,
                "inputs": dict(self.inputs), "properties": [p.to_json() for p in self.properties]}


@dataclass(frozen=True)
class Group:
    """The changes under one top-level component: a SAMU tenant or a national component."""

    name: str
    kind: str  # "samu" or "national"
    label: str
    changes: tuple[Change, ...]

    def counts(self) -> dict[str, int]:
        return _counts(self.changes)

    def count_line(self) -> str:
        return _count_line(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "label": self.label, "summary": self.counts()}


@dataclass(frozen=True)
class PlanDiff:
    changes: tuple[Change, ...]
    unchanged: int
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # group -> (kind, label)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {op.value: sum(1 for c in self.changes if c.op is op) for op in Op}

    def dangerous(self) -> list[Change]:
        return [c for c in self.changes if c.dangerous]

    def impossible(self) -> list[Change]:
        return [c for c in self.changes if c.impossible]

    def groups(self) -> list[Group]:
        """National components first, then SAMU tenants; each by name."""
        members: dict[str, list[Change]] = {}
        for change in self.changes:
            members.setdefault(change.group, []).append(change)
        groups = [Group(name, *self.labels.get(name, ("national", name)), tuple(changes))
                  for name, changes in members.items()]
        return sorted(groups, key=lambda g: (g.kind != "national", g.name))

    def total_line(self) -> str:
        return f"{_count_line(self.changes)}; {self.unchanged} unchanged"

    def to_json(self) -> dict[str, Any]:
        return {"summary": {**self.counts(), "unchanged": self.unchanged, "dangerous": len(self.dangerous()),
                            "impossible": len(self.impossible())},
                "groups": [g.to_json() for g in self.groups()],
                "changes": [c.to_json() for c in self.changes]}


def _counts(changes: tuple[Change, ...] | list[Change]) -> dict[str, int]:
    counts = {op.value: sum(1 for c in changes if c.op is op) for op in Op}
    return {**counts, "dangerous": sum(c.dangerous for c in changes), "impossible": sum(c.impossible for c in changes)}


def _count_line(changes: tuple[Change, ...] | list[Change]) -> str:
    counts = _counts(changes)
    parts = [f"{counts[op.value]} to {op.value}" for op in Op if counts[op.value]]
    parts += [f"{counts[k]} {k}" for k in ("dangerous", "impossible") if counts[k]]
    return ", ".join(parts) or "no changes"


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """Every change from ``old`` to ``new``, in name order."""
    changes: list[Change] = []
    unchanged = 0
    for name in sorted({r.name for r in old} | {r.name for r in new}):
        before, after = old.get(name), new.get(name)
        found = list(_changes_of(before, after, old, new))
        changes.extend(found)
        unchanged += not found
    return PlanDiff(tuple(changes), unchanged, _group_labels(changes, old, new))


def _changes_of(before: PlannedResource | None, after: PlannedResource | None,
                old: Plan, new: Plan) -> Iterator[Change]:
    if before is None and after is not None:
        yield _creation(after, new)
    elif after is None and before is not None:
        yield _removal(Op.DELETE, before, old, properties=(), reason=None)
    elif before is not None and after is not None and before.type != after.type:
        yield _removal(Op.DELETE, before, old, properties=(), reason=f"type changes to {after.type}")
        yield _creation(after, new)
    elif before is not None and after is not None:
        change = _update(before, after, old, new)
        if change is not None:
            yield change


def _creation(resource: PlannedResource, plan: Plan) -> Change:
    return Change(Op.CREATE, resource.type, resource.name, inputs=key_inputs(resource),
                  group=group_of(resource.name, plan))


def _update(before: PlannedResource, after: PlannedResource, old: Plan, new: Plan) -> Change | None:
    forcing = REPLACE_ON.get(after.type, frozenset()) | ALWAYS_REPLACE
    properties = tuple(
        PropertyChange(path, old_value, new_value, forces_replacement=_top_key(path) in forcing)
        for path, old_value, new_value in changed_paths(dict(before.inputs), dict(after.inputs))
    )
    properties += tuple(PropertyChange(f"{OPTIONS}.{path}", old_value, new_value)
                        for path, old_value, new_value in changed_paths(dict(before.options), dict(after.options)))
    reparented = before.parent != after.parent
    if not properties and not reparented:
        return None
    if reparented:
        properties += (PropertyChange("(parent)", before.parent, after.parent, forces_replacement=True),)
    impossible = _impossible(before, after)
    forced = [p.path for p in properties if p.forces_replacement]
    if forced:
        return _removal(Op.REPLACE, after, new, properties=properties, reason=f"{', '.join(forced)} cannot change "
                        "in place", before=before, old=old, impossible=impossible)
    dangers = _update_dangers(before, after, old, new)
    reasons = [r for r in (impossible, *dangers) if r]
    return Change(Op.UPDATE, after.type, after.name, properties, dangerous=bool(dangers),
                  reason="; ".join(reasons) or None, impossible=impossible is not None,
                  group=group_of(after.name, new))


def _removal(op: Op, resource: PlannedResource, plan: Plan, *, properties: tuple[PropertyChange, ...],
             reason: str | None, before: PlannedResource | None = None, old: Plan | None = None,
             impossible: str | None = None) -> Change:
    """A delete or replace: what it destroys, and for a delete the inputs of what goes."""
    previous, previous_plan = (before, old) if before is not None and old is not None else (resource, plan)
    dangers = [d for d in (_destroys(previous, previous_plan), *_address_dangers(previous, None, previous_plan))
               if d]
    if op is Op.REPLACE:
        dangers += _protect_removed(previous, resource, previous_plan)
    reasons = [r for r in (reason, impossible, *dangers) if r]
    return Change(op, resource.type, resource.name, properties, dangerous=bool(dangers),
                  reason="; ".join(reasons) or None, impossible=impossible is not None,
                  inputs=key_inputs(resource) if op is Op.DELETE else (), group=group_of(resource.name, plan))


def _destroys(resource: PlannedResource, plan: Plan) -> str | None:
    if resource.type in STATEFUL_TYPES:
        rac_node = _in_rac(resource, plan) and resource.type == T_INSTANCE
        what = "a RAC node" if rac_node else resource.type.rsplit(":", 1)[-1]
        return f"destroys {what} and the data on it"
    if resource.type in ATTACHMENT_TYPES:
        return "withdraws a shared ASM disk from a running node"
    return None


def _update_dangers(before: PlannedResource, after: PlannedResource, old: Plan, new: Plan) -> list[str]:
    return [*_address_dangers(before, after, old), *_protect_removed(before, after, old)]


def _protect_removed(before: PlannedResource, after: PlannedResource, plan: Plan) -> list[str]:
    if before.options.get("protect") and not after.options.get("protect") and _holds_data(before, plan):
        return ["removes protect from a resource that holds data: nothing would stop its deletion"]
    return []


def _holds_data(resource: PlannedResource, plan: Plan) -> bool:
    return resource.type == T_VOLUME or resource.type == T_RAC or (
        resource.type == T_INSTANCE and _in_rac(resource, plan))


def _in_rac(resource: PlannedResource, plan: Plan) -> bool:
    return any((a := plan.get(n)) is not None and a.type == T_RAC for n in plan.ancestors(resource.name))


# --------------------------------------------------------------------------
# Addresses clients and Clusterware know


def _address_dangers(before: PlannedResource, after: PlannedResource | None, plan: Plan) -> list[str]:
    """An existing fixed IP or allowed address pair of a guarded port that moves or goes away.

    Adding a pair (a new node's VIP) is safe; any address that was there and
    is not any more breaks the clients, DNS or Clusterware that use it.
    """
    if before.type != T_PORT or not _is_guarded_port(before, plan):
        return []
    dangers = []
    kept_ips = _addresses(after.inputs.get("fixedIps")) if after is not None else set()
    lost_ips = _addresses(before.inputs.get("fixedIps")) - kept_ips
    if lost_ips:
        verb = "releases" if after is None else "moves"
        lost = ", ".join(sorted(lost_ips, key=_ip_key))
        dangers.append(f"{verb} fixed address {lost} of a database/RAC/service port")
    if after is not None:
        lost_pairs = _addresses(before.inputs.get("allowedAddressPairs")) - _addresses(
            after.inputs.get("allowedAddressPairs"))
        if lost_pairs:
            dangers.append(f"withdraws allowed address pair {', '.join(sorted(lost_pairs, key=_ip_key))} "
                           "(a VIP or SCAN address) from a RAC/service port")
    return dangers


def _is_guarded_port(port: PlannedResource, plan: Plan) -> bool:
    if _in_rac(port, plan):
        return True
    network = plan.target(port.inputs.get("networkId"))
    tags = network.inputs.get("tags") if network is not None else None
    zones = {t.split("=", 1)[1] for t in tags or [] if isinstance(t, str) and t.startswith("cutover-zone=")}
    return bool(zones & GUARDED_ZONES)


def _addresses(entries: Any) -> set[str]:
    return {str(e["ipAddress"]) for e in entries or [] if isinstance(e, dict) and e.get("ipAddress")}


def _ip_key(address: str) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(address.split("/")[0])), address
    except ValueError:
        return 0, address


# --------------------------------------------------------------------------
# What cannot be applied


def _impossible(before: PlannedResource, after: PlannedResource) -> str | None:
    if before.type == T_VOLUME and after.type == T_VOLUME:
        old_size, new_size = before.inputs.get("size"), after.inputs.get("size")
        if isinstance(old_size, int) and isinstance(new_size, int) and new_size < old_size:
            return (f"impossible: shrinks the volume from {old_size} to {new_size} GB, and Cinder only extends "
                    "a volume; keep the size, or create a new volume and move the data")
    return None


# --------------------------------------------------------------------------
# Inputs worth reading, groups


def key_inputs(resource: PlannedResource) -> tuple[tuple[str, Any], ...]:
    """The inputs of ``KEY_INPUTS`` the resource has, in a readable shape."""
    inputs = dict(resource.inputs)
    low, high = inputs.pop("portRangeMin", None), inputs.pop("portRangeMax", None)
    if low is not None or high is not None:
        inputs["ports"] = str(low) if low == high else f"{low}-{high}"
    for key in ("fixedIps", "allowedAddressPairs"):
        if key in inputs:
            inputs[key] = sorted(_addresses(inputs[key]), key=_ip_key) or None
    if "allocationPools" in inputs:
        inputs["allocationPools"] = [f"{p.get('start')}-{p.get('end')}" for p in inputs["allocationPools"] or []
                                     if isinstance(p, dict)]
    return tuple((key, inputs[key]) for key in KEY_INPUTS if inputs.get(key) not in (None, [], ""))


def group_of(name: str, plan: Plan) -> str:
    """The top-level component a resource belongs to (itself when it has no parent)."""
    ancestors = plan.ancestors(name)
    return ancestors[-1] if ancestors else name


def _group_labels(changes: list[Change], old: Plan, new: Plan) -> dict[str, tuple[str, str]]:
    labels = {}
    for group in {c.group for c in changes}:
        top = new.get(group) or old.get(group)
        if top is not None and top.type == T_TENANT:
            labels[group] = ("samu", f"SAMU {group.removeprefix('samu-')}")
        else:
            kind = top.type.rsplit(":", 1)[-1] if top is not None else "resource"
            labels[group] = ("national", f"national {kind} {group}")
    return labels


def _top_key(path: str) -> str:
    for i, char in enumerate(path):
        if char in ".[":
            return path[:i]
    return path


def changed_paths(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, old, new) for every leaf that differs; a missing side is None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from changed_paths(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            yield from changed_paths(old[i] if i < len(old) else None, new[i] if i < len(new) else None,
                                     f"{path}[{i}]")
    elif old != new:
        yield path, old, new


# --------------------------------------------------------------------------
# Markdown, for a review comment

OP_MARK = {Op.CREATE: "+", Op.UPDATE: "~", Op.REPLACE: "+-", Op.DELETE: "-"}
# GitHub refuses comments over 65,536 characters; leave room for `--check`'s section.
MARKDOWN_BUDGET = 60_000
MAX_WARNINGS = 40  # dangerous or impossible changes listed in full at the top


def render_markdown(diff: PlanDiff, *, old_label: str, new_label: str, budget: int = MARKDOWN_BUDGET) -> str:
    """A review comment: totals, warnings, a count line per group, then each group's detail in <details>.

    Group details are added, most important first (groups with dangerous or
    impossible changes, then national components, then SAMU tenants), while
    the comment stays under ``budget`` characters; the comment says which
    were elided and how to see them.
    """
    head = _markdown_head(diff, old_label, new_label)
    if not diff.has_changes:
        return head + "\nNo changes.\n"
    parts, size, elided = [head, "\n#### Details\n"], len(head) + 20, []
    reserve = 600  # the elision note
    for group in sorted(diff.groups(), key=_detail_priority):
        block = _details_block(group)
        if size + len(block) + reserve > budget:
            elided.append(group)
            continue
        parts.append(block)
        size += len(block)
    if elided:
        parts.append(_elided_note(elided, old_label, new_label))
    return "".join(parts)


def _markdown_head(diff: PlanDiff, old_label: str, new_label: str) -> str:
    counts = diff.counts()
    lines = [f"### Infrastructure diff: `{old_label}` → `{new_label}`", ""]
    lines.append("**Total:** " + " · ".join(f"**{n}** to {op}" for op, n in counts.items())
                 + f" · {diff.unchanged} unchanged · **{len(diff.dangerous())}** dangerous"
                 + f" · **{len(diff.impossible())}** impossible")
    lines += _warnings("Impossible", diff.impossible(), "the cloud cannot apply them")
    lines += _warnings("Warning", [c for c in diff.dangerous() if not c.impossible], "data, addresses or shared "
                       "disks at risk")
    if diff.has_changes:
        lines += ["", "#### By group", "", "| group | create | update | replace | delete | dangerous | impossible |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for group in diff.groups():
            c = group.counts()
            lines.append(f"| {group.label} (`{group.name}`) | {c['create']} | {c['update']} | {c['replace']} | "
                         f"{c['delete']} | {c['dangerous']} | {c['impossible']} |")
        total = _counts(diff.changes)
        lines.append(f"| **total ({len(diff.groups())} groups)** | **{total['create']}** | **{total['update']}** | "
                     f"**{total['replace']}** | **{total['delete']}** | **{total['dangerous']}** | "
                     f"**{total['impossible']}** |")
    return "\n".join(lines) + "\n"


def _warnings(title: str, changes: list[Change], why: str) -> list[str]:
    if not changes:
        return []
    lines = ["", f"> **{title}: {len(changes)} change(s)** ({why}):"]
    lines += [f"> - `{c.op.value}` `{c.name}` ({c.type}): {_cell(c.reason or '')}" for c in changes[:MAX_WARNINGS]]
    if len(changes) > MAX_WARNINGS:
        lines.append(f"> - … and {len(changes) - MAX_WARNINGS} more: see `cutover infra diff --json`")
    return lines


def _detail_priority(group: Group) -> tuple[int, str]:
    counts = group.counts()
    if counts["dangerous"] or counts["impossible"]:
        return 0, group.name
    return (1 if group.kind == "national" else 2), group.name


def _details_block(group: Group) -> str:
    lines = ["", f"<details><summary><b>{group.label}</b> (<code>{group.name}</code>): {group.count_line()}"
             "</summary>", "", "| op | resource | type | details |", "|---|---|---|---|"]
    for change in group.changes:
        lines.append(f"| `{OP_MARK[change.op]}` {change.op.value} | `{change.name}` | "
                     f"`{change.type.rsplit(':', 1)[-1]}` | {_details(change)} |")
    return "\n".join([*lines, "", "</details>", ""])


def _elided_note(elided: list[Group], old_label: str, new_label: str) -> str:
    changes = sum(len(g.changes) for g in elided)
    names = ", ".join(f"`{g.name}`" for g in elided[:12]) + (", …" if len(elided) > 12 else "")
    return (f"\n> **Elided:** the details of {len(elided)} group(s) ({changes} change(s): {names}) are left out to "
            f"keep this comment under GitHub's 65,536-character limit; each is counted in the table above and "
            f"none is dangerous or impossible unless listed at the top. Full diff: "
            f"`cutover infra diff {old_label} {new_label} --json`.\n")


def _details(change: Change) -> str:
    parts = [f"`{p.path}`: `{_short(p.old)}` → `{_short(p.new)}`" + (" (forces replacement)" if p.forces_replacement
                                                                      else "") for p in change.properties]
    parts += [f"{key}=`{_short(value)}`" for key, value in change.inputs]
    flags = [flag for flag, on in (("**impossible**", change.impossible), ("**dangerous**", change.dangerous)) if on]
    if flags:
        parts.insert(0, f"{' '.join(flags)}: {change.reason}")
    return _cell("<br>".join(parts))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        value = ", ".join(map(str, value))
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
