"""SecNumCloud and HDS rules over a plan. (Plain data, no Pulumi.)

Each rule serves a clause: SecNumCloud 3.2 (ANSSI) for the trusted cloud, or
the HDS certification's ISO/IEC 27001:2022 controls for health data. A rule
reads only the plan and a ``PolicyContext``: the facts of the qualified offer
and the security owner's declarations, from the policy file
(``cutover.infra.policyfile``), never from the inventory under review. So it
checks what will really be created, whoever wrote the program.

The plan carries what the rules need as inputs: networks are tagged
``cutover-zone=<zone>``, security groups ``cutover-role=<role>``, resources
refer to each other as ``"<name>.id"``. The same rule functions serve
``cutover infra check`` and the Pulumi CrossGuard pack (``cutover.infra.crossguard``
turns the pack's resources into a ``Plan``).

Addresses: IPv4 and IPv6 prefixes are both parsed (``ipaddress.ip_network``).
A prefix of length 0 (``0.0.0.0/0`` and ``::/0`` alike) *is* "anywhere", and so
is a rule with neither a remote prefix nor a remote group (Neutron opens it to
every address of its ethertype). A source that cannot be parsed is treated as
anywhere: a rule must never pass because we failed to read it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover.infra.plan import Plan, PlannedResource

T_VOLUME = "openstack:blockstorage/volume:Volume"
T_VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
T_INSTANCE = "openstack:compute/instance:Instance"
T_SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"
T_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
T_EXPORT = "openstack:blockstorage/volumeAttach:VolumeAttach"  # Cinder attachment, no Nova
T_NETWORK = "openstack:networking/network:Network"
T_SUBNET = "openstack:networking/subnet:Subnet"
T_PORT = "openstack:networking/port:Port"
T_ROUTER = "openstack:networking/router:Router"
T_ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
T_RBAC = "openstack:networking/rbacPolicyV2:RbacPolicyV2"
T_FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
T_FLOATING_ASSOC = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
T_SG = "openstack:networking/secGroup:SecGroup"
T_SG_RULE = "openstack:networking/secGroupRule:SecGroupRule"
T_OPENSTACK_PROVIDER = "pulumi:providers:openstack"
T_TENANT = "cutover:samu:Tenant"
T_ROUTER_ROUTE = "openstack:networking/routerRoute:RouterRoute"
T_FLAVOR = "openstack:compute/flavor:Flavor"
T_ENDPOINT_GROUP = "openstack:vpnaas/endpointGroup:EndpointGroup"
T_BAREMETAL_POOL = "cutover:compute:BareMetalPool"
T_DNS_ZONE = "openstack:dns/zone:Zone"
T_RECORD_SET = "openstack:dns/recordSet:RecordSet"
# Only a cloud administrator may create these (OpenStack's default policies): they belong to the
# provider-side program (infra/provider), never to the customer stack.
ADMIN_ONLY_TYPES = {
    "openstack:identity/project:Project": "a Keystone project",
    "openstack:identity/roleAssignment:RoleAssignment": "a role assignment",
    "openstack:identity/user:User": "a Keystone user",
    "openstack:identity/group:Group": "a Keystone group",
    T_FLAVOR: "a flavor",
    "openstack:compute/flavorAccess:FlavorAccess": "a flavor's access list",
    "openstack:compute/quotaSetV2:QuotaSetV2": "a Nova quota",
    "openstack:compute/aggregateV2:AggregateV2": "a host aggregate",
    T_VOLUME_TYPE: "a volume type (it names a Cinder backend)",
    "openstack:blockstorage/volumeTypeAccessV3:VolumeTypeAccessV3": "a volume type's access list",
    "openstack:blockstorage/quotasetV3:QuotasetV3": "a Cinder quota",
    "openstack:networking/quotaV2:QuotaV2": "a Neutron quota",
}
# Network inputs only an administrator may set: a provider (physical) network, or one shared with all.
ADMIN_ONLY_NETWORK_INPUTS = ("external", "shared", "segments")
# Inputs that create a resource in another project than the credentials' own (admin-only).
OTHER_PROJECT_INPUTS = ("tenantId", "projectId")
T_RAC = "cutover:oracle:RacCluster"

PRIVATE_ZONES = frozenset({"service", "transit", "interconnect", "storage"})  # never a public address
NEVER_ROUTED_ZONES = ("interconnect", "storage")  # prefixes: a second interconnect (HAIP) is one too
PORT_SECURITY_OFF_ZONES = ("interconnect",)  # HAIP and multicast cannot be listed in allowed address pairs
ADMIN_PORTS = (22, 3389, 5985, 5986)  # SSH, RDP, WinRM
MULTIATTACH_SPEC = "<is> True"
SECRET_PLACEHOLDER = "[secret]"  # how a plan shows a Pulumi secret (cutover.infra.mockrun)
UNKNOWN_PLACEHOLDER = "[unknown]"
# Input names that carry a credential (compared without case, "_" or "-"): a literal value there is a leak.
CREDENTIAL_WORDS = ("password", "passwd", "secret", "token", "psk", "presharedkey", "privatekey", "apikey",
                    "credential", "adminpass")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PublicExposure:
    """A service declared reachable from anywhere: groups with this role, this protocol, these ports."""

    role: str
    protocol: str
    ports: frozenset[int]


@dataclass(frozen=True)
class TemporaryReach:
    """A network outside the platform allowed to reach the databases until a date (e.g. Data Guard from legacy)."""

    cidr: IPNetwork
    until: dt.date
    reason: str


@dataclass(frozen=True)
class DatabaseReach:
    """Database ports and the only sources allowed on them."""

    ports: tuple[int, ...] = (1521,)
    zones: frozenset[str] = frozenset({"service"})
    roles: frozenset[str] = frozenset()
    temporary: tuple[TemporaryReach, ...] = ()


# Neutron's and Nova's defaults (neutron.conf [DEFAULT], default project quotas): what a provider
# that documents nothing else enforces. The policy file's `limits` says what the provider documents.
DEFAULT_LIMITS: Mapping[str, int] = {
    "max_routes": 30, "max_allowed_address_pair": 10, "max_fixed_ips_per_port": 5, "max_dns_nameservers": 5,
    # The largest network MTU the provider's fabric carries (neutron.conf global_physnet_mtu, 1500 by default).
    "max_mtu": 1500,
    "router": 10, "port": 500, "security_group": 10, "security_group_rule": 100, "network": 100, "subnet": 100,
    "instances": 10, "server_groups": 10, "server_group_members": 10,
}


@dataclass(frozen=True)
class PolicyContext:
    """What the rules check against: the qualified offer and the security owner's declarations.

    ``region`` is the environment's region ("" when unknown, e.g. in the
    CrossGuard pack without a provider region: then any qualified region's
    zones are allowed). ``admin_networks`` empty means: the plan's own subnets
    tagged ``cutover-zone=admin``.
    """

    region: str
    availability_zones: frozenset[str]
    operator_sources: tuple[IPNetwork, ...]
    encrypted_backends: frozenset[str]
    encrypted_volume_types: frozenset[str] = frozenset()
    multiattach_volume_types: frozenset[str] = frozenset()
    # What each backend's Cinder driver hands a node (driver_volume_type: iscsi, rbd...), and the
    # offer's types exported over iSCSI (for a plan that does not define them).
    backend_protocols: Mapping[str, str] = field(default_factory=dict)
    iscsi_volume_types: frozenset[str] = frozenset()
    # Where the Pulumi state and the secrets' keys may live (URL prefixes): self-managed, in France.
    state_backends: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    secrets_providers: tuple[str, ...] = ()
    qualified_endpoints: Mapping[str, frozenset[str]] = field(default_factory=dict)  # region -> endpoints
    public_services: tuple[PublicExposure, ...] = ()
    database: DatabaseReach = DatabaseReach()
    owner_keys: tuple[str, ...] = ("cutover-owner", "cutover-samu")
    admin_networks: tuple[IPNetwork, ...] = ()
    today: dt.date = field(default_factory=dt.date.today)
    # The provider's internal DNS: the attributes that place a zone in its internal Designate pool, the
    # suffixes never delegated publicly, and its internal resolvers per region.
    dns_pool_attributes: Mapping[str, str] = field(default_factory=dict)
    dns_private_suffixes: tuple[str, ...] = ()
    dns_resolvers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def resolvers(self) -> frozenset[str]:
        """The internal resolvers of the environment's region (of any region when it is unknown)."""
        if self.region:
            return self.dns_resolvers.get(self.region, frozenset())
        return frozenset(a for addresses in self.dns_resolvers.values() for a in addresses)

    @property
    def qualified_regions(self) -> frozenset[str]:
        return frozenset(self.qualified_endpoints) or frozenset({self.region})


@dataclass(frozen=True)
class Violation:
    rule: str
    clause: str
    resource: str
    type: str
    message: str
    fix: str
    file: str | None = None  # for findings in a source file (credentials in a stack file)
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"rule": self.rule, "clause": self.clause, "resource": self.resource,
                                 "type": self.type, "message": self.message, "fix": self.fix}
        if self.file is not None:
            found |= {"file": self.file, "line": self.line}
        return found


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
    return sort_violations(violations)


def sort_violations(violations: list[Violation]) -> list[Violation]:
    return sorted(violations, key=lambda v: (RULE_ORDER.get(v.rule, 99), v.resource, v.message))


def rule_by_id(rule_id: str) -> Rule | None:
    return next((rule for rule in RULES if rule.id == rule_id), None)


# --------------------------------------------------------------------------
# Helpers over plan data


def _tags(resource: PlannedResource | None, key: str) -> set[str]:
    prefix = f"{key}="
    tags = resource.inputs.get("tags") if resource is not None else None
    return {t[len(prefix):] for t in tags or [] if isinstance(t, str) and t.startswith(prefix)}


def _network_zone(plan: Plan, network_ref: Any) -> str | None:
    zones = _tags(plan.target(network_ref), "cutover-zone")
    return next(iter(zones)) if zones else None


def _subnet_zone(plan: Plan, subnet: PlannedResource | None) -> str | None:
    if subnet is None:
        return None
    own = _tags(subnet, "cutover-zone")
    return next(iter(own)) if own else _network_zone(plan, subnet.inputs.get("networkId"))


def _in_zones(zone: str | None, zones: tuple[str, ...]) -> bool:
    return zone is not None and any(zone == z or zone.startswith(f"{z}-") for z in zones)


def parse_prefix(value: Any) -> IPNetwork | None:
    """An IPv4 or IPv6 prefix ("10.0.0.0/8", "::/0", a bare address as /32 or /128); None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _within(prefix: IPNetwork, networks: tuple[IPNetwork, ...] | list[IPNetwork]) -> bool:
    # subnet_of raises TypeError across versions; an IPv6 source is never inside an IPv4 network.
    return any(prefix.version == n.version and prefix.subnet_of(n) for n in networks)  # type: ignore[arg-type]


def _overlaps(prefix: IPNetwork, network: IPNetwork) -> bool:
    # Integer bounds: ipaddress's overlaps() is several times slower, and this runs per rule x tenant x network.
    return prefix.version == network.version and int(prefix.network_address) <= int(network.broadcast_address) \
        and int(network.network_address) <= int(prefix.broadcast_address)


@dataclass(frozen=True)
class Source:
    """Where an ingress rule lets traffic in from."""

    prefix: IPNetwork | None  # None: a remote group (or an unreadable prefix)
    group: PlannedResource | None
    text: str
    unreadable: bool = False

    @property
    def anywhere(self) -> bool:
        """0.0.0.0/0 and ::/0 on purpose (length 0), and an unreadable source, which must not pass."""
        return self.unreadable or (self.group is None and self.prefix is not None and self.prefix.prefixlen == 0)


def rule_source(plan: Plan, rule: PlannedResource) -> Source:
    raw, group_ref = rule.inputs.get("remoteIpPrefix"), rule.inputs.get("remoteGroupId")
    group = plan.target(group_ref)
    if raw in (None, ""):
        if group_ref not in (None, ""):
            return Source(None, group, f"security group {group.name if group else group_ref}")
        # Neutron: neither a remote prefix nor a remote group opens the rule to every address of its ethertype.
        everything = ipaddress.ip_network("::/0" if str(rule.inputs.get("ethertype")) == "IPv6" else "0.0.0.0/0")
        return Source(everything, None, f"anywhere (no source given: {everything})")
    prefix = parse_prefix(raw)
    if prefix is None:
        return Source(None, None, f"{raw!r} (not an IPv4 or IPv6 prefix)", unreadable=True)
    return Source(prefix, None, str(prefix))


def _ingress(plan: Plan) -> Iterator[PlannedResource]:
    return (r for r in plan.of_type(T_SG_RULE) if str(r.inputs.get("direction", "ingress")).lower() == "ingress")


def _port_range(rule: PlannedResource) -> tuple[int, int]:
    low, high = rule.inputs.get("portRangeMin"), rule.inputs.get("portRangeMax")
    try:
        return int(low or 1), int(high or 65535)  # absent (or 0): every port
    except (TypeError, ValueError):
        return 1, 65535  # unreadable: assume every port


def _protocol(rule: PlannedResource) -> str:
    protocol = str(rule.inputs.get("protocol") or "").lower()
    return {"6": "tcp", "17": "udp", "any": ""}.get(protocol, protocol)


def _covers_ports(rule: PlannedResource, ports: tuple[int, ...], protocols: tuple[str, ...] = ("", "tcp")) -> bool:
    if _protocol(rule) not in protocols:
        return False
    low, high = _port_range(rule)
    return any(low <= port <= high for port in ports)


def _covers_admin_port(rule: PlannedResource) -> bool:
    return _covers_ports(rule, ADMIN_PORTS)


def _ports_text(rule: PlannedResource) -> str:
    low, high = _port_range(rule)
    ports = "every port" if (low, high) == (1, 65535) else (str(low) if low == high else f"{low}-{high}")
    return f"{_protocol(rule) or 'any protocol'} {ports}"


def _ancestor_of_type(plan: Plan, name: str, type_: str) -> str | None:
    for ancestor in plan.ancestors(name):
        resource = plan.get(ancestor)
        if resource is not None and resource.type == type_:
            return ancestor
    return None


def _zone_networks(plan: Plan, zones: frozenset[str] | tuple[str, ...]) -> list[IPNetwork]:
    """The CIDRs of the plan's subnets in these network zones."""
    found = []
    for subnet in plan.of_type(T_SUBNET):
        cidr = parse_prefix(subnet.inputs.get("cidr"))
        if cidr is not None and _in_zones(_subnet_zone(plan, subnet), tuple(zones)):
            found.append(cidr)
    return found


def _volume_type_problem(plan: Plan, ctx: PolicyContext, type_name: Any) -> str | None:
    """Why a volume of this type is not known to be encrypted at rest; None when it is.

    A type defined in the plan (ours, or the provider-side plan checked with it) is
    judged by its backend, whatever its name says: a type named like one of the
    offer's encrypted types does not inherit their encryption.
    """
    if type_name in (None, ""):
        return "no volume type: the default type is not known to be encrypted"
    types = {str(t.inputs.get("name")): t for t in plan.of_type(T_VOLUME_TYPE)}
    volume_type = types.get(str(type_name))
    if volume_type is None:
        if str(type_name) in ctx.encrypted_volume_types:
            return None
        return (f"volume type {type_name!r} is neither defined in this plan nor one of the offer's encrypted types "
                f"({', '.join(sorted(ctx.encrypted_volume_types)) or 'none declared'})")
    backend = (volume_type.inputs.get("extraSpecs") or {}).get("volume_backend_name")
    if backend not in ctx.encrypted_backends:
        return (f"volume type {type_name!r} uses backend {backend!r}, not one the offer encrypts "
                f"({', '.join(sorted(ctx.encrypted_backends)) or 'none declared'})")
    return None


# --------------------------------------------------------------------------
# The rules


def _volumes_encrypted(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for volume in plan.of_type(T_VOLUME):
        problem = _volume_type_problem(plan, ctx, volume.inputs.get("volumeType"))
        if problem is not None:
            yield volume, problem


def _boot_volumes_encrypted(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for instance in plan.of_type(T_INSTANCE):
        for i, device in enumerate(instance.inputs.get("blockDevices") or []):
            if not isinstance(device, dict) or str(device.get("destinationType", "local")) != "volume":
                continue  # a local disk is the node's own, not a Cinder volume
            if device.get("sourceType") == "volume":
                volume = plan.target(device.get("uuid"))
                if volume is None:
                    yield instance, (f"blockDevices[{i}] boots from volume {device.get('uuid')!r}, which is not in "
                                     "the plan: its encryption cannot be checked")
                continue  # a volume of the plan is checked by volume-encrypted
            problem = _volume_type_problem(plan, ctx, device.get("volumeType"))
            if problem is not None:
                yield instance, f"blockDevices[{i}] creates a {device.get('sourceType', '?')} volume: {problem}"


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
    yield from _on_external_network(plan)


def _external_networks(plan: Plan) -> set[str]:
    """The external network(s), as the plan names them: routers' gateways, and networks marked external."""
    found = {str(r.inputs.get("externalNetworkId")) for r in plan.of_type(T_ROUTER) if r.inputs.get("externalNetworkId")}
    return found | {f"{n.name}.id" for n in plan.of_type(T_NETWORK) if n.inputs.get("external")}


def _on_external_network(plan: Plan) -> Iterator[Finding]:
    """Every port and every instance NIC, wherever declared: none on the external network."""
    external = _external_networks(plan)
    for port in plan.of_type(T_PORT):
        if str(port.inputs.get("networkId")) in external:
            yield port, f"a port on the external network {port.inputs.get('networkId')}: reachable from outside"
    for instance in plan.of_type(T_INSTANCE):
        for i, nic in enumerate(instance.inputs.get("networks") or []):
            if isinstance(nic, dict) and str(nic.get("uuid")) in external:
                yield instance, f"networks[{i}] is the external network {nic.get('uuid')}: reachable from outside"


def _admin_from_bastion(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    admin = ctx.admin_networks or tuple(_zone_networks(plan, ("admin",)))
    for rule in _ingress(plan):
        if not _covers_admin_port(rule):
            continue
        group = plan.target(rule.inputs.get("securityGroupId"))
        source = rule_source(plan, rule)
        if "bastion" in _tags(group, "cutover-role"):
            if source.prefix is None or source.anywhere or not _within(source.prefix, ctx.operator_sources):
                yield rule, (f"SSH to the bastion from {source.text}, not from the operators' networks of the "
                             f"policy ({', '.join(map(str, ctx.operator_sources)) or 'none'})")
        elif source.group is not None:
            if "bastion" not in _tags(source.group, "cutover-role"):
                yield rule, f"admin ports opened to security group {source.group.name}, not the bastion's"
        elif source.prefix is None or source.anywhere or not _within(source.prefix, admin):
            yield rule, (f"admin ports opened to {source.text}, outside the admin network "
                         f"({', '.join(map(str, admin)) or 'none in the plan'})")
    yield from _bastion_reachable(plan)


def _bastion_reachable(plan: Plan) -> Iterator[Finding]:
    """The operators reach the bastion: a floating IP on one of its ports (its group admits them, above)."""
    for group in plan.of_type(T_SG):
        if "bastion" not in _tags(group, "cutover-role"):
            continue
        ports = {f"{p.name}.id" for p in plan.of_type(T_PORT) if f"{group.name}.id" in (p.inputs.get("securityGroupIds") or [])}
        floating = [f for f in plan.of_type(T_FLOATING_IP) + plan.of_type(T_FLOATING_ASSOC)
                    if f.inputs.get("portId") in ports]
        if ports and not floating:
            yield group, ("no floating IP on the bastion's port: the operators cannot reach it (give it one; its "
                          "group admits SSH from the operators' networks only)")


def _explicit_egress(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # Neutron gives every new group two allow-all egress rules (IPv4, IPv6): a compromised node could
    # then send data anywhere its routes reach. Each group deletes them and says where it may go.
    for group in plan.of_type(T_SG):
        if group.inputs.get("deleteDefaultRules") is not True:
            yield group, "keeps Neutron's default allow-all egress rules (delete_default_rules is not set)"
    for rule in plan.of_type(T_SG_RULE):
        if rule.inputs.get("direction") == "egress" and rule_source(plan, rule).anywhere:
            yield rule, f"egress to anywhere on {_ports_text(rule)}; name the destination network"


def _tenant_cidrs(plan: Plan) -> dict[str, list[IPNetwork]]:
    """Each tenant's networks: its subnets and its premises (the VPN's peer CIDRs)."""
    cidrs: dict[str, list[IPNetwork]] = {}
    for resource in plan.of_type(T_SUBNET) + plan.of_type(T_ENDPOINT_GROUP):
        tenant = _ancestor_of_type(plan, resource.name, T_TENANT)
        if tenant is None:
            continue
        if resource.type == T_SUBNET:
            values = [resource.inputs.get("cidr")]
        else:
            values = resource.inputs.get("endpoints") or [] if resource.inputs.get("type") == "cidr" else []
        cidrs.setdefault(tenant, []).extend(c for v in values if (c := parse_prefix(v)) is not None)
    return cidrs


class _TenantIndex:
    """Which tenants' networks a prefix overlaps, by binary search over their address spans.

    Per rule or route, comparing with every network of every tenant is quadratic at 100 SAMUs.
    """

    def __init__(self, cidrs: dict[str, list[IPNetwork]]) -> None:
        spans = sorted((n.version, int(n.network_address), int(n.broadcast_address), tenant, n)
                       for tenant, networks in cidrs.items() for n in networks)
        self.spans = spans
        self.keys = [(v, start) for v, start, _, _, _ in spans]
        self.longest = max((end - start for _, start, end, _, _ in spans), default=0)

    def overlapping(self, prefix: IPNetwork) -> list[tuple[str, IPNetwork]]:
        low, high = int(prefix.network_address), int(prefix.broadcast_address)
        first = bisect.bisect_left(self.keys, (prefix.version, low - self.longest))
        last = bisect.bisect_right(self.keys, (prefix.version, high))
        return [(tenant, n) for v, start, end, tenant, n in self.spans[first:last]
                if v == prefix.version and start <= high and end >= low]


def _tenants_overlapping(plan: Plan, cidrs: dict[str, list[IPNetwork]]) -> Iterator[Finding]:
    """A premises network covering another SAMU's (or its cloud network) opens one to the other everywhere."""
    tenants = sorted(cidrs)
    for i, tenant in enumerate(tenants):
        for other in tenants[i + 1:]:
            for mine in cidrs[tenant]:
                clash = next((theirs for theirs in cidrs[other] if _overlaps(mine, theirs)), None)
                if clash is not None:
                    resource = plan.get(tenant)
                    assert resource is not None
                    yield resource, f"tenant {tenant}'s network {mine} overlaps tenant {other}'s {clash}"


def _transit_owners(plan: Plan) -> dict[str, str]:
    """Each tenant router's transit address -> its tenant (the next hop of the national routes).

    The port is the provider's (created in the tenant's project): its tenant is the one whose
    router is attached to it. A tenant's own port on transit counts too.
    """
    owned: list[tuple[PlannedResource, str]] = []
    for iface in plan.of_type(T_ROUTER_INTERFACE):
        tenant = _ancestor_of_type(plan, iface.name, T_TENANT)
        port = plan.target(iface.inputs.get("portId"))
        if tenant is not None and port is not None:
            owned.append((port, tenant))
    for port in plan.of_type(T_PORT):
        tenant = _ancestor_of_type(plan, port.name, T_TENANT)
        if tenant is not None and _network_zone(plan, port.inputs.get("networkId")) == "transit":
            owned.append((port, tenant))
    owners = {}
    for port, tenant in owned:
        for fixed in port.inputs.get("fixedIps") or []:
            if isinstance(fixed, dict) and fixed.get("ipAddress"):
                owners[str(fixed["ipAddress"])] = tenant
    return owners


def _transit_granted(plan: Plan) -> Iterator[Finding]:
    """No project is granted the whole transit network: with it, a tenant could take any free address there.

    The provider creates each tenant router's port in the tenant's project at its fixed address
    (``infra/provider``); sharing with every project ('*') is rule no-share-with-everyone's.
    """
    for rbac in plan.of_type(T_RBAC):
        network = plan.target(rbac.inputs.get("objectId"))
        target = rbac.inputs.get("targetTenant")
        if network is not None and _tags(network, "cutover-zone") == {"transit"} and target != "*":
            grantee = plan.target(target)
            yield rbac, (f"grants {grantee.name if grantee is not None else target} the whole transit network "
                         f"{network.name} ({rbac.inputs.get('action')}): it could create a port at any free address "
                         "of it; the provider creates the tenant's transit port instead")


def _tenant_routes(plan: Plan, cidrs: dict[str, list[IPNetwork]]) -> Iterator[Finding]:
    """A tenant's router routes to no other tenant; the national router sends a tenant's networks to it alone."""
    owners = _transit_owners(plan)
    index = _TenantIndex(cidrs)
    for route in plan.of_type(T_ROUTER_ROUTE):
        destination = parse_prefix(route.inputs.get("destinationCidr"))
        router = plan.target(route.inputs.get("routerId"))
        if destination is None or router is None:
            yield route, f"destination {route.inputs.get('destinationCidr')!r} or router cannot be read"
            continue
        from_tenant = _ancestor_of_type(plan, router.name, T_TENANT)
        to_tenant = owners.get(str(route.inputs.get("nextHop")))
        if from_tenant is None and to_tenant is None:
            continue  # national to national (a shard's summary to its transit router): that router's routes are checked
        for other in sorted({t for t, _ in index.overlapping(destination)} - {from_tenant, to_tenant}):
            source = f"tenant {from_tenant}'s router" if from_tenant else f"router {router.name}"
            yield route, f"{source} routes {destination}, which covers tenant {other}'s networks, " + (
                f"to tenant {to_tenant}" if to_tenant else f"via {route.inputs.get('nextHop')}")
        if to_tenant is not None and from_tenant is None and not _within(destination, cidrs.get(to_tenant, [])):
            yield route, f"router {router.name} sends {destination} to tenant {to_tenant}, outside its networks"


def _tenant_isolation(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    cidrs = _tenant_cidrs(plan)
    yield from _tenants_overlapping(plan, cidrs)
    yield from _tenant_routes(plan, cidrs)
    yield from _transit_granted(plan)
    index = _TenantIndex(cidrs)
    for rule in plan.of_type(T_SG_RULE):
        group = plan.target(rule.inputs.get("securityGroupId"))
        owner = _ancestor_of_type(plan, group.name, T_TENANT) if group is not None else None
        if owner is None:
            continue
        source = rule_source(plan, rule)
        others = {t for t, _ in index.overlapping(source.prefix)} if source.prefix is not None else set()
        for other in sorted(others - {owner}) if not source.anywhere else []:
            yield rule, f"tenant {owner} opened to {source.prefix}, which overlaps tenant {other}'s network"
        grantee = _ancestor_of_type(plan, source.group.name, T_TENANT) if source.group is not None else None
        if grantee is not None and grantee != owner:
            yield rule, f"tenant {owner} opened to a security group of tenant {grantee}"


RESOLVED_ZONES = ("admin", "service", "tenant")  # where the RAC nodes and their clients resolve SCAN


def _dns_internal(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    """The SCAN zone is internal: a private suffix, the provider's internal pool, its declared resolvers."""
    zones = plan.of_type(T_DNS_ZONE)
    for zone in zones:
        yield from _zone_internal(zone, ctx)
    for record in plan.of_type(T_RECORD_SET):
        target = plan.target(record.inputs.get("zoneId"))
        if target is None or target.type != T_DNS_ZONE:
            yield record, "its zone is not in the plan: whether it is public, and who serves it, is unknown"
    resolvers = ctx.resolvers()
    for subnet in plan.of_type(T_SUBNET):
        servers = [str(s) for s in subnet.inputs.get("dnsNameservers") or []]
        foreign = sorted(set(servers) - resolvers)
        if foreign:
            yield subnet, f"DNS servers {', '.join(foreign)} are not the provider's internal resolvers " \
                          f"({', '.join(sorted(resolvers)) or 'none declared'}): they cannot resolve the SCAN zone"
        elif zones and not servers and _in_zones(_subnet_zone(plan, subnet), RESOLVED_ZONES):
            yield subnet, "names no DNS server: its hosts cannot resolve the SCAN names (the provider's resolvers)"


def _zone_internal(zone: PlannedResource, ctx: PolicyContext) -> Iterator[Finding]:
    name = str(zone.inputs.get("name") or "").lower()
    if not any(name.endswith(f".{suffix}") or name == suffix for suffix in ctx.dns_private_suffixes):
        yield zone, (f"{name or 'a zone with no name'} is not under a suffix that is never delegated publicly "
                     f"(policy dns.private_suffixes: {', '.join(ctx.dns_private_suffixes) or 'none declared'})")
    attributes = zone.inputs.get("attributes") or {}
    missing = {k: v for k, v in ctx.dns_pool_attributes.items()
               if not isinstance(attributes, dict) or attributes.get(k) != v}
    if missing or not ctx.dns_pool_attributes:
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(ctx.dns_pool_attributes.items())) or "none declared"
        yield zone, f"not placed in the provider's internal Designate pool (attributes {wanted}): it may be " \
                    "served by the public nameservers"
    if not ctx.resolvers():
        yield zone, f"the policy declares no internal resolvers for region {ctx.region or 'any'} (dns.resolvers): " \
                    "nothing is known to serve the zone"


def _zones_allowed(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan:
        zone = resource.inputs.get("availabilityZone")
        if zone is not None and zone not in ctx.availability_zones:
            where = (f"the qualified offer's zones of {ctx.region!r}" if ctx.region in ctx.qualified_regions
                     else f"the offer's zones: {ctx.region!r} is not a region of the qualified offer")
            allowed = ", ".join(sorted(ctx.availability_zones)) or "none"
            yield resource, f"availability zone {zone!r} is not one of {where} ({allowed})"
        region = resource.inputs.get("region")
        if region is not None and resource.type != T_OPENSTACK_PROVIDER and \
                (region not in ctx.qualified_regions or (ctx.region and region != ctx.region)):
            yield resource, f"region {region!r} is not the environment's qualified region {ctx.region!r}"


def _rac_placement(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # One zone: spread over zones a cluster is an extended-distance one (a failure group per site, a
    # third-site voting file), which one storage array does not give. Inside the zone, racks: Nova's
    # anti-affinity counts per nova-compute host and one nova-compute serves many Ironic nodes, so the
    # nodes are kept apart by their flavors' required traits (one per rack), which Placement enforces.
    for cluster in plan.of_type(T_RAC):
        nodes = [r for r in plan.within(cluster.name) if r.type == T_INSTANCE]
        zones = {str(n.inputs.get("availabilityZone")) for n in nodes}
        if len(nodes) < 2:
            yield cluster, f"{len(nodes)} node(s); a RAC cluster has 2 at least"
        if len(zones) != 1 or "None" in zones:
            yield cluster, (f"nodes over zones {sorted(zones)}: a RAC cluster stays in one zone (across zones it is "
                            "a stretched cluster: one array, no quorum site); put a Data Guard standby in another")
        domains: dict[str, int] = {}
        for node in nodes:
            domain = _failure_domain(plan, node)
            if domain is None:
                yield node, ("its flavor requires no failure-domain trait (trait:CUSTOM_...=required): nothing keeps "
                             "two nodes out of one rack")
            else:
                domains[domain] = domains.get(domain, 0) + 1
        if domains and (len(domains) < 2 or max(domains.values()) - min(domains.values()) > 1):
            yield cluster, (f"nodes per failure domain {dict(sorted(domains.items()))}: spread them evenly over 2 "
                            "failure domains at least")
    yield from _standby_elsewhere(plan)


STANDBY_OF = "dataguard-standby-of"  # node metadata of a standby cluster: the primary it protects


def _standby_elsewhere(plan: Plan) -> Iterator[Finding]:
    """Every primary cluster has a Data Guard standby whose nodes are all in another zone."""
    zones: dict[str, set[str]] = {}
    standby_of: dict[str, str] = {}
    for cluster in plan.of_type(T_RAC):
        nodes = [r for r in plan.within(cluster.name) if r.type == T_INSTANCE]
        zones[cluster.name] = {str(n.inputs.get("availabilityZone")) for n in nodes}
        primaries = {str((n.inputs.get("metadata") or {}).get(STANDBY_OF) or "") for n in nodes} - {""}
        if primaries:
            standby_of[cluster.name] = sorted(primaries)[0]
    for cluster in plan.of_type(T_RAC):
        if cluster.name in standby_of:
            continue
        standbys = [name for name, primary in standby_of.items() if primary == cluster.name]
        if not standbys:
            yield cluster, "no Data Guard standby: a zone lost is the database lost; add a standby cluster in another zone"
        elif all(zones[name] & zones[cluster.name] for name in standbys):
            yield cluster, (f"its standby {', '.join(standbys)} shares zone(s) {sorted(zones[cluster.name])}: it "
                            "would not survive the zone")


def _failure_domain(plan: Plan, node: PlannedResource) -> str | None:
    """The trait the node's flavor requires; a flavor outside the plan (the pack) is its own domain, by reference."""
    flavor_ref = node.inputs.get("flavorId")
    flavor = plan.target(flavor_ref)
    if flavor is None:
        return str(flavor_ref) if flavor_ref else None
    specs = flavor.inputs.get("extraSpecs") or {}
    traits = sorted(str(k).removeprefix("trait:") for k, v in specs.items()
                    if str(k).startswith("trait:CUSTOM_") and v == "required")
    return traits[0] if traits else None


def _declared_public(plan: Plan, rule: PlannedResource, ctx: PolicyContext) -> bool:
    roles = _tags(plan.target(rule.inputs.get("securityGroupId")), "cutover-role")
    low, high = _port_range(rule)
    return any(service.role in roles and _protocol(rule) == service.protocol
               and all(port in service.ports for port in range(low, high + 1))
               for service in ctx.public_services)


def known_networks(plan: Plan, ctx: PolicyContext) -> list[IPNetwork]:
    """Every network a source may legitimately be: the plan's subnets and VPN peers, the policy's networks."""
    found = [cidr for subnet in plan.of_type(T_SUBNET) if (cidr := parse_prefix(subnet.inputs.get("cidr")))]
    for group in plan.of_type(T_ENDPOINT_GROUP):
        if group.inputs.get("type") == "cidr":
            found += [cidr for e in group.inputs.get("endpoints") or [] if (cidr := parse_prefix(e))]
    return found + list(ctx.operator_sources) + [t.cidr for t in ctx.database.temporary]


WIDE_PREFIX = {4: 16, 6: 48}  # wider than an organisation's network: the Internet in all but name


def _too_wide(prefix: IPNetwork) -> bool:
    return prefix.prefixlen < WIDE_PREFIX[prefix.version]


def _no_ingress_from_anywhere(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # Address ranges, not strings: 0.0.0.0/1 + 128.0.0.0/1, or a /2, is "anywhere" in all but name.
    # A source wider than a /16 (/48) must lie inside a network the plan or the policy knows;
    # narrower ones are judged by the rules of what they reach (database-reach, tenant-isolation...).
    known = known_networks(plan, ctx)
    for rule in _ingress(plan):
        source = rule_source(plan, rule)
        if _declared_public(plan, rule, ctx):
            continue
        group = plan.target(rule.inputs.get("securityGroupId"))
        target = group.name if group else rule.inputs.get("securityGroupId")
        if source.anywhere:
            yield rule, (f"ingress from {source.text} on {_ports_text(rule)} to {target}, "
                         "which is not a service the policy declares public")
        elif source.prefix is not None and source.group is None and _too_wide(source.prefix) \
                and not _within(source.prefix, known):
            yield rule, (f"ingress from {source.text} ({source.prefix.num_addresses} addresses) on "
                         f"{_ports_text(rule)} to {target}: not inside any network of the plan (subnets, VPN "
                         "peers) or of the policy (operators, temporary database networks)")


def _database_source_problem(plan: Plan, ctx: PolicyContext, source: Source) -> str | None:
    reach = ctx.database
    if source.group is not None:
        roles = _tags(source.group, "cutover-role")
        return None if roles & reach.roles else f"security group {source.group.name} (roles: {sorted(roles) or 'none'})"
    if source.prefix is None or source.anywhere:
        return source.text
    if _within(source.prefix, _zone_networks(plan, tuple(reach.zones))):
        return None
    for temporary in reach.temporary:
        if _within(source.prefix, [temporary.cidr]):
            return None if ctx.today <= temporary.until else f"{source.text} (allowed until {temporary.until}, expired)"
    return source.text


def _database_reach(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for rule in _ingress(plan):
        if not _covers_ports(rule, ctx.database.ports):
            continue
        problem = _database_source_problem(plan, ctx, rule_source(plan, rule))
        if problem is not None:
            allowed = [f"zone {z}" for z in sorted(ctx.database.zones)] + [str(t.cidr) for t in ctx.database.temporary]
            yield rule, (f"database port(s) {_ports_text(rule)} opened to {problem}; the policy allows "
                         f"{', '.join(allowed) or 'nothing'}")


def _qualified_provider(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for provider in plan:
        if provider.type != T_OPENSTACK_PROVIDER:
            continue
        region = provider.inputs.get("region")
        if region in (None, ""):
            yield provider, "an explicit provider without a region uses whatever OS_REGION_NAME says"
        elif region not in ctx.qualified_regions or (ctx.region and region != ctx.region):
            yield provider, (f"region {region!r} is not the environment's qualified region "
                             f"({ctx.region or ', '.join(sorted(ctx.qualified_regions))})")
        url = provider.inputs.get("authUrl")
        endpoints = {e.rstrip("/") for e in ctx.qualified_endpoints.get(str(region), frozenset())}
        if url not in (None, "", SECRET_PLACEHOLDER) and str(url).rstrip("/") not in endpoints:
            yield provider, (f"endpoint {url!r} is not a qualified endpoint of region {region!r} "
                             f"({', '.join(sorted(endpoints)) or 'none declared'})")


def _never_routed(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for subnet in plan.of_type(T_SUBNET):
        zone = _subnet_zone(plan, subnet)
        if _in_zones(zone, NEVER_ROUTED_ZONES) and (subnet.inputs.get("noGateway") is not True
                                                     or subnet.inputs.get("gatewayIp")):
            yield subnet, f"the {zone} subnet has a gateway; set no_gateway=True"
    for interface in plan.of_type(T_ROUTER_INTERFACE):
        on_subnet, port = plan.target(interface.inputs.get("subnetId")), plan.target(interface.inputs.get("portId"))
        zone = _subnet_zone(plan, on_subnet) if on_subnet is not None else \
            (_network_zone(plan, port.inputs.get("networkId")) if port is not None else None)
        if _in_zones(zone, NEVER_ROUTED_ZONES):
            yield interface, f"a router interface on the {zone} network, which is never routed"
    for router in plan.of_type(T_ROUTER):
        zone = _network_zone(plan, router.inputs.get("externalNetworkId"))
        if _in_zones(zone, NEVER_ROUTED_ZONES):
            yield router, f"a router gateway on the {zone} network, which is never routed"


def _port_security_interconnect_only(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan.of_type(T_PORT) + plan.of_type(T_NETWORK):
        if resource.inputs.get("portSecurityEnabled") is not False:
            continue
        zone = _network_zone(plan, resource.inputs.get("networkId") if resource.type == T_PORT
                             else f"{resource.name}.id")
        if not _in_zones(zone, PORT_SECURITY_OFF_ZONES):
            yield resource, f"port security is off on the {zone or 'untagged'} network; only the interconnect may"


def _no_share_with_everyone(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for policy in plan.of_type(T_RBAC):
        if str(policy.inputs.get("targetTenant", "")).strip() == "*":
            target = plan.target(policy.inputs.get("objectId"))
            shared = target.name if target else policy.inputs.get("objectId")
            yield policy, f"{policy.inputs.get('objectType', 'object')} {shared} shared with every project ('*')"


def _owned(resource: PlannedResource, keys: tuple[str, ...]) -> bool:
    metadata = resource.inputs.get("metadata") or {}
    tagged = any(_tags(resource, key) - {""} for key in keys)
    return tagged or any(isinstance(metadata, dict) and str(metadata.get(key) or "").strip() for key in keys)


def _owner_tagged(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan.of_type(T_INSTANCE) + plan.of_type(T_VOLUME):
        if not _owned(resource, ctx.owner_keys):
            yield resource, f"no owner: tag or metadata {' or '.join(ctx.owner_keys)} is missing"


def is_credential_name(name: str) -> bool:
    flat = name.lower().replace("_", "").replace("-", "")
    return any(word in flat for word in CREDENTIAL_WORDS)


def _literal_credentials(value: Any, path: str) -> Iterator[str]:
    """Paths under ``value`` where a credential-named key holds a literal (not a secret)."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if is_credential_name(str(key)) and isinstance(item, str) and item.strip() \
                    and item not in (SECRET_PLACEHOLDER, UNKNOWN_PLACEHOLDER):
                yield where
            else:
                yield from _literal_credentials(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _literal_credentials(item, f"{path}[{i}]")


def _no_credential_literal(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan:
        for path in _literal_credentials(dict(resource.inputs), ""):
            yield resource, f"{path} is a literal, not a Pulumi secret: it would be stored in clear in the state"


def _is_bare_metal(plan: Plan, instance: PlannedResource | None) -> bool:
    """An Ironic node, or an instance the plan cannot vouch for (not in it: assume the worst)."""
    if instance is None or instance.type != T_INSTANCE:
        return True
    if _ancestor_of_type(plan, instance.name, T_BAREMETAL_POOL) or "pool" in (instance.inputs.get("metadata") or {}):
        return True
    flavor = plan.target(instance.inputs.get("flavorId"))
    specs = flavor.inputs.get("extraSpecs") or {} if flavor is not None else {}
    return any(str(key).startswith("resources:CUSTOM_") for key in specs)


def _asm_everywhere(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # RAC nodes are Ironic instances: Nova's ironic driver cannot attach volumes,
    # so each ASM volume is exported to each node by a Cinder attachment (iSCSI,
    # multipath) naming the node's initiator; the node logs in from its OS.
    # Every Nova attachment of the plan, wherever it is declared, not only under a RAC.
    for nova in plan.of_type(T_ATTACH):
        if _is_bare_metal(plan, plan.target(nova.inputs.get("instanceId"))):
            yield nova, ("a Nova volume attachment on a bare-metal node (or an instance outside the plan): Nova's "
                         "ironic driver cannot attach volumes; export the volume to the node instead")
    for cluster in plan.of_type(T_RAC):
        members = plan.within(cluster.name)
        nodes = {str(r.inputs.get("name") or r.name) for r in members if r.type == T_INSTANCE}
        exports = [r for r in members if r.type == T_EXPORT]
        for volume in (r for r in members if r.type == T_VOLUME):
            exported = {e.inputs.get("hostName") for e in exports
                        if e.inputs.get("volumeId") == f"{volume.name}.id" and _is_iscsi_multipath(e)}
            for node in sorted(nodes - exported):
                yield volume, f"not exported (iSCSI initiator, multipath, read-write) to RAC node {node}"
            if not _is_multiattach_type(plan, ctx, volume):
                yield volume, f"volume type {volume.inputs.get('volumeType')!r} is not multi-attach"
        yield from _unchained(cluster, exports)


def _is_iscsi_multipath(export: PlannedResource) -> bool:
    """A Cinder attachment a node can use for ASM: its initiator named, both paths, writable."""
    inputs = export.inputs
    writable = inputs.get("attachMode") in ("rw", None)  # Cinder's default mode is read-write
    return bool(inputs.get("initiator")) and inputs.get("multipath") is True and writable


def _is_multiattach_type(plan: Plan, ctx: PolicyContext, volume: PlannedResource) -> bool:
    """The type's extra spec when the plan defines it; else the offer's word (policy multiattach_volume_types)."""
    for volume_type in plan.of_type(T_VOLUME_TYPE):
        if volume_type.inputs.get("name") == volume.inputs.get("volumeType"):
            return (volume_type.inputs.get("extraSpecs") or {}).get("multiattach") == MULTIATTACH_SPEC
    return str(volume.inputs.get("volumeType")) in ctx.multiattach_volume_types


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


# Volume metadata set by the RAC component (cutover.infra.components.rac).
ASM_DISK_GROUP, ASM_FAILURE_GROUP, ASM_VOTING = "asm-disk-group", "asm-failure-group", "asm-voting"
VOTING_FAILURE_GROUPS = 3  # Clusterware: one voting file per failure group, 3 at least (normal redundancy)
MIN_ASM_LUNS = 2  # several equal LUNs per disk group
STORAGE_ROLE = "storage"  # the security group of the RAC nodes' storage ports


def _rac_storage_reachable(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    # The ASM disks must come from a backend a bare-metal node can log in to (iSCSI), over two
    # paths the node really has (two NICs on two storage networks), laid out as Oracle wants.
    for cluster in plan.of_type(T_RAC):
        members = plan.within(cluster.name)
        nodes = [r for r in members if r.type == T_INSTANCE]
        for node in nodes:
            paths = _storage_paths(plan, node)
            if len(paths) < 2:
                yield node, (f"{len(paths)} path(s) to the storage array ({', '.join(sorted(paths)) or 'none'}); "
                             "a RAC node needs a NIC on each of two storage networks (multipath)")
        volumes = [r for r in members if r.type == T_VOLUME]
        for volume in volumes:
            problem = _not_iscsi(plan, ctx, volume.inputs.get("volumeType"))
            if problem is not None:
                yield volume, problem
        yield from _asm_layout(cluster, volumes)


def _storage_paths(plan: Plan, node: PlannedResource) -> set[str]:
    """The distinct storage networks a node has a port on.

    A network of the plan counts when tagged ``cutover-zone=storage``. One outside the
    plan (the provider's, read by name, when its plan is not checked with ours, as in
    the CrossGuard pack) counts when our port on it carries the storage security group.
    """
    found = set()
    for nic in node.inputs.get("networks") or []:
        port = plan.target(nic.get("port")) if isinstance(nic, dict) else None
        if port is None:
            continue
        network_ref = port.inputs.get("networkId")
        network = plan.target(network_ref)
        if network is not None:
            if _in_zones(_network_zone(plan, network_ref), (STORAGE_ROLE,)):
                found.add(network.name)
        elif any(STORAGE_ROLE in _tags(plan.target(g), "cutover-role")
                 for g in port.inputs.get("securityGroupIds") or []):
            found.add(str(network_ref))
    return found


def _not_iscsi(plan: Plan, ctx: PolicyContext, type_name: Any) -> str | None:
    """Why a bare-metal node could not log in to a volume of this type; None when it can (iSCSI)."""
    types = {str(t.inputs.get("name")): t for t in plan.of_type(T_VOLUME_TYPE)}
    volume_type = types.get(str(type_name))
    if volume_type is None:
        if str(type_name) in ctx.iscsi_volume_types:
            return None
        return (f"volume type {type_name!r} is neither defined in this plan nor one of the offer's iSCSI types "
                f"({', '.join(sorted(ctx.iscsi_volume_types)) or 'none declared'})")
    backend = (volume_type.inputs.get("extraSpecs") or {}).get("volume_backend_name")
    protocol = ctx.backend_protocols.get(str(backend))
    if protocol == "iscsi":
        return None
    if protocol == "rbd":
        return (f"backend {backend!r} is Ceph RBD: Cinder hands out driver_volume_type rbd (monitors and a "
                "cephx key that reads every tenant's volumes), not a target a bare-metal node logs in to")
    return f"backend {backend!r} exports {protocol or 'nothing the policy declares'}; RAC shared disks need iscsi"


def _asm_layout(cluster: PlannedResource, volumes: list[PlannedResource]) -> Iterator[Finding]:
    """Several equal LUNs per disk group; the voting files on 3 LUNs at least, each its own failure group."""
    groups: dict[str, list[PlannedResource]] = {}
    for volume in volumes:
        metadata = volume.inputs.get("metadata") or {}
        group = str(metadata.get(ASM_DISK_GROUP) or "") if isinstance(metadata, dict) else ""
        if not group:
            yield volume, f"no {ASM_DISK_GROUP} metadata: which ASM disk group is it?"
            continue
        groups.setdefault(group, []).append(volume)
    voting = []
    for group, luns in sorted(groups.items()):
        sizes = sorted({int(v.inputs.get("size") or 0) for v in luns})
        if len(sizes) > 1:
            yield luns[-1], f"disk group {group} mixes LUN sizes {sizes} GB; ASM balances by size: make them equal"
        if len(luns) < MIN_ASM_LUNS:
            yield luns[0], f"disk group {group} has {len(luns)} LUN; {MIN_ASM_LUNS} equal LUNs at least"
        if any(str((v.inputs.get("metadata") or {}).get(ASM_VOTING)) == "true" for v in luns):
            voting.append((group, luns))
    if len(voting) != 1:
        yield cluster, f"{len(voting)} disk group(s) hold the voting files; exactly one must"
    for group, luns in voting:
        failure_groups = {str((v.inputs.get("metadata") or {}).get(ASM_FAILURE_GROUP) or v.name) for v in luns}
        if len(failure_groups) < VOTING_FAILURE_GROUPS:
            yield cluster, (f"voting disk group {group}: {len(failure_groups)} failure group(s) over {len(luns)} "
                            f"LUN(s); Clusterware needs {VOTING_FAILURE_GROUPS} voting files, each in its own "
                            "failure group")


# Per-project counts against quotas: plan type -> quota name.
QUOTA_OF_TYPE = {
    T_ROUTER: "router", T_PORT: "port", T_SG: "security_group", T_SG_RULE: "security_group_rule",
    T_NETWORK: "network", T_SUBNET: "subnet", T_INSTANCE: "instances", T_SERVER_GROUP: "server_groups",
}
T_NETWORK_QUOTA = "openstack:networking/quotaV2:QuotaV2"
T_COMPUTE_QUOTA = "openstack:compute/quotaSetV2:QuotaSetV2"
QUOTA_INPUTS = {"router": "router", "port": "port", "security_group": "securityGroup",
                "security_group_rule": "securityGroupRule", "network": "network", "subnet": "subnet",
                "instances": "instances", "server_groups": "serverGroups",
                "server_group_members": "serverGroupMembers"}


def _own_project_quotas(plan: Plan, ctx: PolicyContext) -> dict[str, int]:
    """The customer's own project's quotas: the policy's, raised by the provider-side plan's quota resources.

    A quota resource naming a project by literal id is the national project's (tenant
    projects are the provider's creation and referenced, "project-<name>.id").
    """
    quotas = {key: ctx.limits.get(key, DEFAULT_LIMITS[key]) for key in QUOTA_INPUTS}
    for quota in plan.of_type(T_NETWORK_QUOTA) + plan.of_type(T_COMPUTE_QUOTA):
        if plan.target(quota.inputs.get("projectId")) is not None:
            continue
        for key, name in QUOTA_INPUTS.items():
            if isinstance(quota.inputs.get(name), int):
                quotas[key] = int(quota.inputs[name])
    return quotas


def _limits(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    limit = {key: ctx.limits.get(key, value) for key, value in DEFAULT_LIMITS.items()}
    routes: dict[str, int] = {}
    for route in plan.of_type(T_ROUTER_ROUTE):
        routes[str(route.inputs.get("routerId"))] = routes.get(str(route.inputs.get("routerId")), 0) + 1
    for router_ref, count in sorted(routes.items()):
        router = plan.target(router_ref)
        if count > limit["max_routes"] and router is not None:
            yield router, f"{count} static routes; Neutron's max_routes is {limit['max_routes']}"
    for port in plan.of_type(T_PORT):
        pairs, fixed = port.inputs.get("allowedAddressPairs") or [], port.inputs.get("fixedIps") or []
        if len(pairs) > limit["max_allowed_address_pair"]:
            yield port, f"{len(pairs)} allowed address pairs; max_allowed_address_pair is " \
                        f"{limit['max_allowed_address_pair']}"
        if len(fixed) > limit["max_fixed_ips_per_port"]:
            yield port, f"{len(fixed)} fixed IPs; max_fixed_ips_per_port is {limit['max_fixed_ips_per_port']}"
    for subnet in plan.of_type(T_SUBNET):
        servers = subnet.inputs.get("dnsNameservers") or []
        if len(servers) > limit["max_dns_nameservers"]:
            yield subnet, f"{len(servers)} DNS servers; max_dns_nameservers is {limit['max_dns_nameservers']}"
    for network in plan.of_type(T_NETWORK):
        mtu = network.inputs.get("mtu")
        if isinstance(mtu, int) and mtu > limit["max_mtu"]:
            yield network, (f"MTU {mtu}; the provider's fabric carries {limit['max_mtu']} (max_mtu): jumbo frames "
                            "are a provider requirement to declare once confirmed")
    yield from _quotas_hold(plan, ctx, limit)


def _quotas_hold(plan: Plan, ctx: PolicyContext, limit: Mapping[str, int]) -> Iterator[Finding]:
    own = _own_project_quotas(plan, ctx)
    counts: dict[tuple[str, str], list[PlannedResource]] = {}
    for resource in plan:
        quota = QUOTA_OF_TYPE.get(resource.type)
        if quota is None or resource.provider is None:
            continue
        # Created by an admin in another project (tenant_id: the provider's transit ports) counts there.
        owner = resource.inputs.get("tenantId") or resource.inputs.get("projectId")
        counts.setdefault((f"project {owner}" if owner else resource.provider, quota), []).append(resource)
    for (provider, quota), members in sorted(counts.items()):
        national = provider.endswith("::default")
        allowed = own[quota] if national else limit[quota]
        if len(members) > allowed:
            project = "the national project" if national else f"the project of provider {provider}"
            yield members[-1], f"{len(members)} {quota} in {project}; its quota is {allowed}"
    members_per_group: dict[str, int] = {}
    for instance in plan.of_type(T_INSTANCE):
        for hint in instance.inputs.get("schedulerHints") or []:
            if isinstance(hint, dict) and hint.get("group"):
                members_per_group[str(hint["group"])] = members_per_group.get(str(hint["group"]), 0) + 1
    for group_ref, count in sorted(members_per_group.items()):
        group = plan.target(group_ref)
        if group is not None and count > own["server_group_members"]:
            yield group, f"{count} members; the server_group_members quota is {own['server_group_members']}"


def _checked_in_files(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    """A rule on the project and stack files, not the plan (cutover.infra.compliance reads them)."""
    return iter(())


def _customer_rights_only(plan: Plan, ctx: PolicyContext) -> Iterator[Finding]:
    for resource in plan:
        what = ADMIN_ONLY_TYPES.get(resource.type)
        if what is not None:
            yield resource, f"{what} needs cloud-admin rights: it belongs to the provider-side program (infra/provider)"
            continue
        if resource.type == T_NETWORK:
            for key in ADMIN_ONLY_NETWORK_INPUTS:
                if resource.inputs.get(key) not in (None, False, []):
                    yield resource, f"a network with {key!r} set is a provider network: only the provider creates it"
            specs = resource.inputs.get("valueSpecs") or {}
            if isinstance(specs, dict) and any(str(k).startswith("provider:") for k in specs):
                yield resource, "provider:* value specs (physical network, VLAN) need cloud-admin rights"
        for key in OTHER_PROJECT_INPUTS:
            if resource.inputs.get(key) not in (None, ""):
                yield resource, (f"{key} creates it in another project, which needs cloud-admin rights; create it "
                                 "through a provider scoped to that project")


RULES: list[Rule] = [
    Rule("volume-encrypted", "SecNumCloud 3.2 §10.1", "Volumes are on an encrypted volume type",
         "create volumes with a volume type whose backend is in storage.encrypted_backend", _volumes_encrypted),
    Rule("no-public-address", "SecNumCloud 3.2 §13.2", "No public address on database, interconnect or storage "
         "networks", "remove the floating IP / external flag; reach these networks through the bastion",
         _no_public_address),
    Rule("admin-from-bastion", "SecNumCloud 3.2 §9.6, §13.2.e", "SSH and admin ingress only from the bastion or "
         "admin network", "use remote_group_id=<bastion security group> or a source inside networks.admin",
         _admin_from_bastion),
    Rule("tenant-isolation", "SecNumCloud 3.2 §9.7", "No rule opens a tenant to another tenant, and no tenant is "
         "granted the transit network", "remove the rule; tenants exchange data only through national services; "
         "instead of sharing transit, let the provider create the tenant's transit port (infra/provider)",
         _tenant_isolation),
    Rule("dns-internal", "SecNumCloud 3.2 §13.2", "The SCAN zone is internal, served by the provider's declared "
         "resolvers", "create the zone under one of the policy's dns.private_suffixes with its dns.pool_attributes "
         "(the provider's internal Designate pool), and give every subnet the region's dns.resolvers as its DNS "
         "servers (cutover_national.dns_nameservers)", _dns_internal),
    Rule("allowed-zones", "SecNumCloud 3.2 §19.2", "Resources stay in the qualified region and its zones",
         "use one of cutover_national.availability_zones", _zones_allowed),
    Rule("rac-placement", "HDS (ISO/IEC 27001:2022 A.8.14)", "RAC nodes in one zone, spread over its failure "
         "domains (racks) by Ironic traits, with a Data Guard standby in another zone", "give the cluster one "
         "availability_zone and failure_domains (the racks' traits): each node boots a flavor requiring its rack's "
         "trait; add a cluster with standby_of: <primary> in another zone", _rac_placement),
    Rule("explicit-egress", "SecNumCloud 3.2 §13.2", "Security groups have no default allow-all egress",
         "create groups with delete_default_rules=True and add an egress rule per destination that needs it",
         _explicit_egress),
    Rule("no-ingress-from-anywhere", "SecNumCloud 3.2 §13.2", "No ingress from 0.0.0.0/0 or ::/0 except to services "
         "declared public", "narrow the source to the networks that need it, or declare the service in the policy's "
         "public_services (role, protocol, ports, reason)", _no_ingress_from_anywhere),
    Rule("database-reach", "SecNumCloud 3.2 §9.7, §13.2", "Database ports only from the networks that need them",
         "open database ports (policy database.ports) only from database.from_zones, from_roles or a temporary "
         "from_networks entry", _database_reach),
    Rule("boot-volume-encrypted", "SecNumCloud 3.2 §10.1", "No unencrypted boot volume through block_devices",
         "give each block device that creates a volume an encrypted volume_type of the offer", _boot_volumes_encrypted),
    Rule("qualified-provider", "SecNumCloud 3.2 §19.2", "No explicit provider outside the qualified region and "
         "its endpoints", "set the provider's region (and auth_url) to the environment's qualified region and one "
         "of its qualified endpoints (policy regions)", _qualified_provider),
    Rule("never-routed", "SecNumCloud 3.2 §13.2", "No router or gateway on a never-routed network (interconnect, "
         "storage)", "set no_gateway=True on their subnets and attach no router to them", _never_routed),
    Rule("port-security-interconnect-only", "SecNumCloud 3.2 §13.2", "Port security off only on the interconnect",
         "keep port_security_enabled on (security groups apply) everywhere but the RAC interconnect",
         _port_security_interconnect_only),
    Rule("no-share-with-everyone", "SecNumCloud 3.2 §9.7", "No RBAC policy shares a network with every project ('*')",
         "share with the one project that needs it (target_tenant=<project id>)", _no_share_with_everyone),
    Rule("owner-tagged", "SecNumCloud 3.2 §8.1; HDS (ISO/IEC 27001:2022 A.5.9)", "Every instance and volume names "
         "its owner or SAMU", "add a tag or metadata cutover-owner=<team> or cutover-samu=<code>", _owner_tagged),
    Rule("no-credential-literal", "SecNumCloud 3.2 §10.5; HDS (ISO/IEC 27001:2022 A.5.17)", "No credential literal "
         "in the program or the stack files", "pass credentials as Pulumi secrets: pulumi config set --secret ...; "
         "read them with config.require_secret", _no_credential_literal),
    Rule("asm-on-every-node", "HDS (ISO/IEC 27001:2022 A.8.14)", "Every ASM volume is exported to every RAC node, "
         "one attachment at a time", "export each volume to each node with a Cinder attachment "
         "(blockstorage.VolumeAttach: the node's initiator, multipath=True), chained with depends_on, from a "
         "multi-attach volume type; never a Nova attachment on bare metal", _asm_everywhere),
    Rule("rac-storage-reachable", "HDS (ISO/IEC 27001:2022 A.8.14)", "RAC nodes reach their ASM disks over two "
         "paths, from an iSCSI backend, laid out as Oracle requires", "give each RAC node a NIC on each of the "
         "provider's two storage networks (storage.paths); put ASM disks on the iSCSI array's volume type, never "
         "Ceph RBD; several equal LUNs per disk group and the voting files on 3 LUNs in 3 failure groups",
         _rac_storage_reachable),
    Rule("host-filtering", "SecNumCloud 3.2 §13.2", "Every bare-metal node enforces its security groups itself "
         "(nftables)", "regenerate the rulesets with `cutover infra firewall --env ENV`, review and commit them, "
         "apply them with playbooks/host_filter.yml", _checked_in_files),
    Rule("state-in-france", "SecNumCloud 3.2 §19.2", "The Pulumi state and the secrets' keys stay in France",
         "declare backend.url in infra/Pulumi.yaml (and infra/provider/Pulumi.yaml) and secretsprovider in each "
         "stack file, as the policy's state.backends and state.secrets_providers allow; never Pulumi Cloud",
         _checked_in_files),
    Rule("limits-hold", "SecNumCloud 3.2 §12.1", "Routes, ports, rules and instances stay under the provider's "
         "documented limits", "stay under the policy's limits (max_routes...): spread routes over transit routers, "
         "ask the provider (infra/provider quotas) for more", _limits),
    Rule("customer-rights-only", "SecNumCloud 3.2 §9.2", "The customer stack needs no cloud-admin right",
         "move projects, flavors and their access, volume types and their access, quotas and provider networks "
         "to infra/provider (the provider's program); read them by name (get_flavor, get_network...); create a "
         "tenant's resources through a provider scoped to its project, not with tenant_id", _customer_rights_only),
]
# Rules that read only the customer's plan: the provider-side plan is admin by nature.
CUSTOMER_ONLY_RULES = frozenset({"customer-rights-only"})
SHARED_RULES = [rule for rule in RULES if rule.id not in CUSTOMER_ONLY_RULES]


def check_plans(customer: Plan, provider: Plan | None, context: PolicyContext) -> list[Violation]:
    """The customer's plan and the provider-side plan it reads by name, checked as one.

    A volume's type is the provider's, and its backend decides whether the volume is
    encrypted; ``customer-rights-only`` alone reads the customer's plan by itself.
    """
    both = Plan.of([*customer, *provider]) if provider is not None else customer
    own = [rule for rule in RULES if rule.id in CUSTOMER_ONLY_RULES]
    return sort_violations(check_plan(both, context, SHARED_RULES) + check_plan(customer, context, own))
RULE_ORDER = {rule.id: i for i, rule in enumerate(RULES)}
