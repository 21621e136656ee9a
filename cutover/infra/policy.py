"""SecNumCloud and HDS rules over a plan. (Plain data, no Pulumi.)

Each rule serves a clause: SecNumCloud 3.2 (ANSSI) for the trusted cloud, or
the HDS certification's ISO/IEC 27001:2022 controls for health data. A rule
reads only the plan and a ``PolicyContext`` drawn from the inventory (the
region and its zones, the admin network, the encrypted storage backends), so
it checks what will really be created, whoever wrote the program.

The plan carries what the rules need as inputs: networks are tagged
``cutover-zone=<zone>``, security groups ``cutover-role=<role>``, resources
refer to each other as ``"<name>.id"``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cutover.infra.plan import Plan, PlannedResource
from cutover.inventory import Inventory

T_VOLUME = "openstack:blockstorage/volume:Volume"
T_VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
T_INSTANCE = "openstack:compute/instance:Instance"
T_SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"
T_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
T_EXPORT = "openstack:blockstorage/volumeAttach:VolumeAttach"  # Cinder attachment, no Nova
T_NETWORK = "openstack:networking/network:Network"
T_SUBNET = "openstack:networking/subnet:Subnet"
T_PORT = "openstack:networking/port:Port"
T_FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
T_FLOATING_ASSOC = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
T_SG = "openstack:networking/secGroup:SecGroup"
T_SG_RULE = "openstack:networking/secGroupRule:SecGroupRule"
T_TENANT = "cutover:samu:Tenant"
T_RAC = "cutover:oracle:RacCluster"

PRIVATE_ZONES = frozenset({"service", "transit", "interconnect", "storage"})  # never a public address
ADMIN_PORTS = (22, 3389, 5985, 5986)  # SSH, RDP, WinRM
MULTIATTACH_SPEC = "<is> True"


@dataclass(frozen=True)
class PolicyContext:
    region: str
    availability_zones: frozenset[str]
    admin_cidr: ipaddress.IPv4Network | None
    operator_sources: tuple[ipaddress.IPv4Network, ...]
    encrypted_backends: frozenset[str]


def policy_context(inventory: Inventory) -> PolicyContext:
    national = inventory.national
    if national is None:
        return PolicyContext("", frozenset(), None, (), frozenset())
    return PolicyContext(
        region=national.region,
        availability_zones=frozenset(national.availability_zones),
        admin_cidr=national.networks.admin if national.networks else None,
        operator_sources=tuple(national.bastion.operator_sources) if national.bastion else (),
        encrypted_backends=frozenset({national.storage.encrypted_backend}) if national.storage else frozenset(),
    )


@dataclass(frozen=True)
class Violation:
    rule: str
    clause: str
    resource: str
    type: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "clause": self.clause, "resource": self.resource, "type": self.type,
                "message": self.message, "fix": self.fix}


Finding = tuple[PlannedResource, str]  # the resource at fault, and what is wrong with it


@dataclass(frozen=True)
class Rule:
    id: str
    clause: str
    title: str
    fix: str
    check: Callable[[Plan, PolicyContext], Iterator[Finding]]


def check_plan(plan: Plan, context: PolicyContext, rules: list[Rule] | None = None) -> list[Violation]:
    """Every violation of every rule, ordered by rule then resource."""
    violations = []
    for rule in rules if rules is not None else RULES:
        for resource, message in rule.check(plan, context):
            violations.append(Violation(rule.id, rule.clause, resource.name, resource.type, message, rule.fix))
    return sorted(violations, key=lambda v: (RULE_ORDER.get(v.rule, 99), v.resource, v.message))


# --------------------------------------------------------------------------
# Helpers over plan data


def _tags(resource: PlannedResource | None, key: str) -> set[str]:
    prefix = f"{key}="
    tags = resource.inputs.get("tags") if resource is not None else None
    return {t[len(prefix):] for t in tags or [] if isinstance(t, str) and t.startswith(prefix)}


def _network_zone(plan: Plan, network_ref: Any) -> str | None:
    zones = _tags(plan.target(network_ref), "cutover-zone")
    return next(iter(zones)) if zones else None


def _cidr(value: Any) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(str(value), strict=False) if value else None
    except ValueError:
        return None


def _covers_admin_port(rule: PlannedResource) -> bool:
    protocol = str(rule.inputs.get("protocol") or "").lower()
    if protocol not in ("", "tcp", "6", "any"):
        return False
    low, high = rule.inputs.get("portRangeMin"), rule.inputs.get("portRangeMax")
    if low is None and high is None:
        return True  # every port
    low, high = int(low if low is not None else 1), int(high if high is not None else 65535)
    return any(low <= port <= high for port in ADMIN_PORTS)


def _ancestor_of_type(plan: Plan, name: str, type_: str) -> str | None:
    for ancestor in plan.ancestors(name):
        resource = plan.get(ancestor)
        if resource is not None and resource.type == type_:
            return ancestor
    return None


# --------------------------------------------------------------------------
# The rules


def _volumes_encrypted(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    types = {str(t.inputs.get("name")): t for t in plan.of_type(T_VOLUME_TYPE)}
    for volume in plan.of_type(T_VOLUME):
        type_name = volume.inputs.get("volumeType")
        volume_type = types.get(str(type_name))
        if type_name is None:
            yield volume, "no volume type: the default type is not known to be encrypted"
        elif volume_type is None:
            yield volume, f"volume type {type_name!r} is not defined in this plan, so its encryption is unknown"
        else:
            backend = (volume_type.inputs.get("extraSpecs") or {}).get("volume_backend_name")
            if backend not in ctx.encrypted_backends:
                yield volume, (f"volume type {type_name!r} uses backend {backend!r}, not an encrypted one "
                               f"({', '.join(sorted(ctx.encrypted_backends)) or 'none declared'})")


def _no_public_address(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for network in plan.of_type(T_NETWORK):
        zone = _network_zone(plan, f"{network.name}.id")
        if zone in PRIVATE_ZONES and (network.inputs.get("external") or network.inputs.get("shared")):
            yield network, f"the {zone} network is marked external or shared"
    for address in plan.of_type(T_FLOATING_IP) + plan.of_type(T_FLOATING_ASSOC):
        port = plan.target(address.inputs.get("portId"))
        zone = _network_zone(plan, port.inputs.get("networkId")) if port is not None else None
        if zone in PRIVATE_ZONES:
            yield address, f"a floating IP on port {port.name if port else '?'} of the {zone} network"


def _admin_from_bastion(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for rule in plan.of_type(T_SG_RULE):
        if rule.inputs.get("direction") != "ingress" or not _covers_admin_port(rule):
            continue
        group = plan.target(rule.inputs.get("securityGroupId"))
        source_group = plan.target(rule.inputs.get("remoteGroupId"))
        source = _cidr(rule.inputs.get("remoteIpPrefix"))
        if "bastion" in _tags(group, "cutover-role"):
            if source is None or not any(source.subnet_of(s) for s in ctx.operator_sources):
                yield rule, f"SSH to the bastion from {source or 'anywhere'}, not from the operators' networks"
        elif source_group is not None:
            if "bastion" not in _tags(source_group, "cutover-role"):
                yield rule, f"admin ports opened to security group {source_group.name}, not the bastion's"
        elif source is None or ctx.admin_cidr is None or not source.subnet_of(ctx.admin_cidr):
            yield rule, f"admin ports opened to {source or 'anywhere'}, outside the admin network {ctx.admin_cidr}"


def _tenant_cidrs(plan: Plan) -> dict[str, list[ipaddress.IPv4Network]]:
    cidrs: dict[str, list[ipaddress.IPv4Network]] = {}
    for subnet in plan.of_type(T_SUBNET):
        tenant = _ancestor_of_type(plan, subnet.name, T_TENANT)
        cidr = _cidr(subnet.inputs.get("cidr"))
        if tenant is not None and cidr is not None:
            cidrs.setdefault(tenant, []).append(cidr)
    return cidrs


def _tenant_isolation(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    cidrs = _tenant_cidrs(plan)
    for rule in plan.of_type(T_SG_RULE):
        group = plan.target(rule.inputs.get("securityGroupId"))
        owner = _ancestor_of_type(plan, group.name, T_TENANT) if group is not None else None
        if owner is None:
            continue
        source = _cidr(rule.inputs.get("remoteIpPrefix"))
        for other, networks in cidrs.items():
            if other != owner and source is not None and any(source.overlaps(n) for n in networks):
                yield rule, f"tenant {owner} opened to {source}, which overlaps tenant {other}'s network"
        source_group = plan.target(rule.inputs.get("remoteGroupId"))
        grantee = _ancestor_of_type(plan, source_group.name, T_TENANT) if source_group is not None else None
        if grantee is not None and grantee != owner:
            yield rule, f"tenant {owner} opened to a security group of tenant {grantee}"


def _zones_allowed(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan:
        zone = resource.inputs.get("availabilityZone")
        if zone is not None and zone not in ctx.availability_zones:
            yield resource, (f"availability zone {zone!r} is not one of the region's "
                             f"({', '.join(sorted(ctx.availability_zones))})")
        region = resource.inputs.get("region")
        if region is not None and region != ctx.region:
            yield resource, f"region {region!r} is not the qualified region {ctx.region!r}"


def _rac_anti_affinity(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for cluster in plan.of_type(T_RAC):
        nodes = [r for r in plan.within(cluster.name) if r.type == T_INSTANCE]
        zones = {n.inputs.get("availabilityZone") for n in nodes}
        if len(nodes) < 2 or len(zones - {None}) < 2:
            yield cluster, f"{len(nodes)} node(s) over {len(zones - {None})} failure domain(s); at least 2 of each"
        for node in nodes:
            hints = node.inputs.get("schedulerHints") or [{}]
            group = plan.target((hints[0] or {}).get("group"))
            policies = group.inputs.get("policies") if group is not None else None
            if group is None or "anti-affinity" not in (policies if isinstance(policies, list) else [policies]):
                yield node, "not in an anti-affinity server group"


def _asm_everywhere(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # RAC nodes are Ironic instances: Nova's ironic driver cannot attach volumes,
    # so each ASM volume is exported to each node by a Cinder attachment (iSCSI,
    # multipath) naming the node's initiator; the node logs in from its OS.
    for cluster in plan.of_type(T_RAC):
        members = plan.within(cluster.name)
        nodes = {str(r.inputs.get("name") or r.name) for r in members if r.type == T_INSTANCE}
        exports = [r for r in members if r.type == T_EXPORT]
        for nova in (r for r in members if r.type == T_ATTACH):
            yield nova, ("a Nova volume attachment on a bare-metal node: Nova's ironic driver cannot attach "
                         "volumes; export the volume with a Cinder attachment (iSCSI) instead")
        for volume in (r for r in members if r.type == T_VOLUME):
            exported = {e.inputs.get("hostName") for e in exports
                        if e.inputs.get("volumeId") == f"{volume.name}.id" and _is_iscsi_multipath(e)}
            for node in sorted(nodes - exported):
                yield volume, f"not exported (iSCSI initiator, multipath, read-write) to RAC node {node}"
            if not _is_multiattach_type(plan, volume):
                yield volume, f"volume type {volume.inputs.get('volumeType')!r} is not multi-attach"
        yield from _unchained(cluster, exports)


def _is_iscsi_multipath(export: PlannedResource) -> bool:
    """A Cinder attachment a node can use for ASM: its initiator named, both paths, writable."""
    inputs = export.inputs
    writable = inputs.get("attachMode") in ("rw", None)  # Cinder's default mode is read-write
    return bool(inputs.get("initiator")) and inputs.get("multipath") is True and writable


def _is_multiattach_type(plan: Plan, volume: PlannedResource) -> bool:
    for volume_type in plan.of_type(T_VOLUME_TYPE):
        if volume_type.inputs.get("name") == volume.inputs.get("volumeType"):
            return (volume_type.inputs.get("extraSpecs") or {}).get("multiattach") == MULTIATTACH_SPEC
    return False


def _unchained(cluster: PlannedResource, attachments: list[PlannedResource]) -> Iterator[Finding]:
    """Attachments must form one chain: each waits for the one before it."""
    names = {a.name for a in attachments}
    heads = [a for a in attachments if not names & set(a.dependencies)]
    waited_on: dict[str, int] = {}
    for attachment in attachments:
        for dep in names & set(attachment.dependencies):
            waited_on[dep] = waited_on.get(dep, 0) + 1
    if len(heads) > 1:
        yield cluster, f"{len(heads)} ASM attachments start at once ({', '.join(a.name for a in heads)}); chain them"
    for name, count in sorted(waited_on.items()):
        if count > 1:
            yield cluster, f"{count} ASM attachments run in parallel after {name}; chain them"


RULES: list[Rule] = [
    Rule("volume-encrypted", "SecNumCloud 3.2 §10.1", "Volumes are on an encrypted volume type",
         "create volumes with a volume type whose backend is in storage.encrypted_backend", _volumes_encrypted),
    Rule("no-public-address", "SecNumCloud 3.2 §13.2", "No public address on database, interconnect or storage "
         "networks", "remove the floating IP / external flag; reach these networks through the bastion",
         _no_public_address),
    Rule("admin-from-bastion", "SecNumCloud 3.2 §9.6, §13.2.e", "SSH and admin ingress only from the bastion or "
         "admin network", "use remote_group_id=<bastion security group> or a source inside networks.admin",
         _admin_from_bastion),
    Rule("tenant-isolation", "SecNumCloud 3.2 §9.7", "No rule opens a tenant to another tenant",
         "remove the rule; tenants exchange data only through national services", _tenant_isolation),
    Rule("allowed-zones", "SecNumCloud 3.2 §19.2", "Resources stay in the qualified region and its zones",
         "use one of cutover_national.availability_zones", _zones_allowed),
    Rule("rac-anti-affinity", "HDS (ISO/IEC 27001:2022 A.8.14)", "RAC nodes in an anti-affinity group over at least "
         "two failure domains", "put every node in the pool's anti-affinity group and spread the pool over zones",
         _rac_anti_affinity),
    Rule("asm-on-every-node", "HDS (ISO/IEC 27001:2022 A.8.14)", "Every ASM volume is exported to every RAC node, "
         "one attachment at a time", "export each volume to each node with a Cinder attachment "
         "(blockstorage.VolumeAttach: the node's initiator, multipath=True), chained with depends_on, from a "
         "multi-attach volume type; never a Nova attachment on bare metal", _asm_everywhere),
]
RULE_ORDER = {rule.id: i for i, rule in enumerate(RULES)}
