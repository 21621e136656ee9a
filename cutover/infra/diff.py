"""What changes between two plans, as a reviewer needs to read it. (Plain data, no Pulumi.)

Like ``pulumi preview --diff``: each resource is created, updated, replaced or
deleted; an update lists the property paths that change; a replacement says
which property forces it. Which properties force a replacement follows the
OpenStack provider (resources Neutron or Nova cannot change in place), with
one deliberate addition: an instance's image or flavor. Nova *rebuilds* on an
image change and *resizes* on a flavor change, but a rebuild rewrites the
node's disk and an Ironic node cannot be resized: for the nodes that hold the
platform's data both are as destructive as a replacement.

A change is *dangerous* when it destroys or replaces something that holds
state (volumes, instances) or detaches a shared ASM disk from a RAC node.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
    "openstack:compute/serverGroup:ServerGroup": frozenset({"name", "policies", "rules"}),
    "openstack:compute/volumeAttach:VolumeAttach": frozenset({"instanceId", "volumeId", "device", "multiattach"}),
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
    "openstack:vpnaas/endpointGroup:EndpointGroup": frozenset({"type", "endpoints"}),
    "openstack:vpnaas/service:Service": frozenset({"routerId", "subnetId"}),
    "openstack:vpnaas/siteConnection:SiteConnection": frozenset({"ikepolicyId", "ipsecpolicyId", "vpnserviceId"}),
}

STATEFUL_TYPES = frozenset({"openstack:blockstorage/volume:Volume", "openstack:compute/instance:Instance"})
ATTACHMENT_TYPE = "openstack:compute/volumeAttach:VolumeAttach"


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

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op.value, "type": self.type, "name": self.name, "dangerous": self.dangerous,
                "reason": self.reason, "properties": [p.to_json() for p in self.properties]}


@dataclass(frozen=True)
class PlanDiff:
    changes: tuple[Change, ...]
    unchanged: int

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {op.value: sum(1 for c in self.changes if c.op is op) for op in Op}

    def dangerous(self) -> list[Change]:
        return [c for c in self.changes if c.dangerous]

    def to_json(self) -> dict[str, Any]:
        return {"summary": {**self.counts(), "unchanged": self.unchanged, "dangerous": len(self.dangerous())},
                "changes": [c.to_json() for c in self.changes]}


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """Every change from ``old`` to ``new``, in name order."""
    changes: list[Change] = []
    unchanged = 0
    for name in sorted({r.name for r in old} | {r.name for r in new}):
        before, after = old.get(name), new.get(name)
        found = list(_changes_of(before, after, old, new))
        changes.extend(found)
        unchanged += not found
    return PlanDiff(tuple(changes), unchanged)


def _changes_of(before: PlannedResource | None, after: PlannedResource | None,
                old: Plan, new: Plan) -> Iterator[Change]:
    if before is None and after is not None:
        yield Change(Op.CREATE, after.type, after.name)
    elif after is None and before is not None:
        yield _removal(Op.DELETE, before, old, properties=(), reason=None)
    elif before is not None and after is not None and before.type != after.type:
        yield _removal(Op.DELETE, before, old, properties=(), reason=f"type changes to {after.type}")
        yield Change(Op.CREATE, after.type, after.name)
    elif before is not None and after is not None:
        change = _update(before, after, new)
        if change is not None:
            yield change


def _update(before: PlannedResource, after: PlannedResource, new: Plan) -> Change | None:
    forcing = REPLACE_ON.get(after.type, frozenset()) | ALWAYS_REPLACE
    properties = tuple(
        PropertyChange(path, old_value, new_value, forces_replacement=_top_key(path) in forcing)
        for path, old_value, new_value in changed_paths(dict(before.inputs), dict(after.inputs))
    )
    reparented = before.parent != after.parent
    if not properties and not reparented:
        return None
    if reparented:
        properties += (PropertyChange("(parent)", before.parent, after.parent, forces_replacement=True),)
    forced = [p.path for p in properties if p.forces_replacement]
    if not forced:
        return Change(Op.UPDATE, after.type, after.name, properties)
    return _removal(Op.REPLACE, after, new, properties=properties, reason=f"{', '.join(forced)} cannot change in place")


def _removal(op: Op, resource: PlannedResource, plan: Plan, *, properties: tuple[PropertyChange, ...],
             reason: str | None) -> Change:
    danger = _danger(resource, plan)
    if danger:
        reason = f"{reason}; {danger}" if reason else danger
    return Change(op, resource.type, resource.name, properties, dangerous=bool(danger), reason=reason)


def _danger(resource: PlannedResource, plan: Plan) -> str | None:
    if resource.type in STATEFUL_TYPES:
        in_rac = any((a := plan.get(n)) is not None and a.type == "cutover:oracle:RacCluster"
                     for n in plan.ancestors(resource.name))
        what = "a RAC node" if in_rac and resource.type.endswith(":Instance") else resource.type.rsplit(":", 1)[-1]
        return f"destroys {what} and the data on it"
    if resource.type == ATTACHMENT_TYPE:
        return "detaches a shared disk from a running node"
    return None


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


def render_markdown(diff: PlanDiff, *, old_label: str, new_label: str) -> str:
    counts = diff.counts()
    lines = [f"### Infrastructure diff: `{old_label}` → `{new_label}`", ""]
    lines.append(" · ".join(f"**{n}** to {op}" for op, n in counts.items()) + f" · {diff.unchanged} unchanged")
    if diff.dangerous():
        lines += ["", f"> **Warning: {len(diff.dangerous())} dangerous change(s)** (data or shared disks at risk):"]
        lines += [f"> - `{c.op.value}` `{c.name}` ({c.type}): {c.reason}" for c in diff.dangerous()]
    if not diff.has_changes:
        return "\n".join([*lines, "", "No changes."]) + "\n"
    lines += ["", "| op | resource | type | details |", "|---|---|---|---|"]
    for change in diff.changes:
        lines.append(f"| `{OP_MARK[change.op]}` {change.op.value} | `{change.name}` | `{change.type}` | "
                     f"{_details(change)} |")
    return "\n".join(lines) + "\n"


def _details(change: Change) -> str:
    parts = [f"`{p.path}`: `{_short(p.old)}` → `{_short(p.new)}`" + (" (forces replacement)" if p.forces_replacement
                                                                      else "") for p in change.properties]
    if change.dangerous:
        parts.insert(0, f"**dangerous**: {change.reason}")
    return "<br>".join(parts).replace("|", "\\|")


def _short(value: Any, limit: int = 60) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
