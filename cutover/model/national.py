"""The national core of the trusted cloud, as described in an inventory.

``cutover_national`` in ``group_vars/all`` describes what every SAMU shares:
the region and its availability zones (all an inventory such as the lab needs),
and, for environments the infrastructure program builds, the national
networks, the bastion, the storage backend, the bare-metal pools and the
Oracle RAC clusters. Example (abridged)::

    cutover_national:
      region: fr-par
      availability_zones: [fr-par-1, fr-par-2, fr-par-3]
      external_network_id: 5f0c...          # the provider's external network
      networks:
        admin: 10.100.0.0/24                # bastion and administration
        service: 10.100.4.0/22              # national services, RAC public
        transit: 10.100.1.0/24              # tenant routers meet the national router here
        interconnect: 10.100.8.0/24         # RAC private interconnect (no routing, MTU 9000)
        interconnect_b: 10.100.10.0/24      # the second interconnect: Oracle HAIP uses both
      project_id: 3f1c...                   # the national project: bare-metal flavors are granted to it
      dns: {zone: db.samu.internal., email: hostmaster@samu.example,   # internal Designate zone for SCAN names
            attributes: {visibility: internal}}
      dns_nameservers: [198.51.100.53, 198.51.100.54]  # the provider's internal resolvers
      bastion: {flavor: m1.small, image: debian-12, key_pair: ops, operator_sources: [192.0.2.0/28]}
      storage:                              # the RAC disks: LUNs of the provider's iSCSI array, two paths
        {encrypted_backend: ceph-luks, asm_backend: array-iscsi,
         paths: [{network: storage-a, cidr: 10.100.12.0/24, portals: [10.100.12.5]}, {network: storage-b, ...}]}
      baremetal_pools:
        - {name: rac-a, flavor: {...}, image: ol9-rac, nodes: 3}
        - {name: telephony, role: telephony, flavor: {...}, image: rhel-9, nodes: 4}
      rac_clusters:
        - {name: samu-rac-a, pool: rac-a, public_block: 10.100.5.0/26, private_host_base: 16, asm: {...}}
      migration:                            # the Data Guard redo path, for the migration period only
        {legacy_networks: [10.20.0.0/24], legacy_vpn_peer: 198.51.100.7, redo_port: 1521, until: 2027-06-30}

This module is plain pydantic: no Pulumi. ``cutover.infra.components`` turns
it into resources and ``cutover.infra.policy`` reads it to know what is allowed.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AddressRange = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]  # first and last, inclusive
RESOURCE_CLASS = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use, not at import


class NationalNetworks(_Strict):
    """One CIDR per network zone; no two may overlap."""

    admin: ipaddress.IPv4Network
    service: ipaddress.IPv4Network
    transit: ipaddress.IPv4Network
    interconnect: ipaddress.IPv4Network
    # A project storage network (no gateway) for services of our own; the RAC disks are reached
    # over the provider's storage networks instead (Storage.paths): ours cannot reach its array.
    storage: ipaddress.IPv4Network | None = None
    # Oracle HAIP spreads the private interconnect over two networks, so that
    # losing one switch fabric does not evict nodes; a RAC cluster needs it.
    interconnect_b: ipaddress.IPv4Network | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        zones = list(self.by_zone().items())
        for i, (name, cidr) in enumerate(zones):
            for other, other_cidr in zones[i + 1:]:
                if cidr.overlaps(other_cidr):
                    raise ValueError(f"networks.{name} ({cidr}) overlaps networks.{other} ({other_cidr})")
        # A tenant router port per département code sits in transit (see transit_address).
        if self.transit.num_addresses < 128:
            raise ValueError(f"networks.transit ({self.transit}) must be a /25 or larger: one address per SAMU")
        return self

    def by_zone(self) -> dict[str, ipaddress.IPv4Network]:
        """Every national network by its key (``interconnect_b`` only when described)."""
        zones = {"admin": self.admin, "service": self.service, "transit": self.transit,
                 "interconnect": self.interconnect}
        if self.storage is not None:
            zones["storage"] = self.storage
        if self.interconnect_b is not None:
            zones["interconnect_b"] = self.interconnect_b
        return zones

    def interconnects(self) -> list[str]:
        """The keys of the interconnect networks, in HAIP order."""
        return ["interconnect"] + (["interconnect_b"] if self.interconnect_b is not None else [])


class Bastion(_Strict):
    """The only way in for administrators: SSH reaches everything else from here."""

    flavor: str = Field(min_length=1)
    image: str = Field(min_length=1)
    key_pair: str = Field(min_length=1)
    operator_sources: list[ipaddress.IPv4Network] = Field(min_length=1)

    @field_validator("operator_sources")
    @classmethod
    def _not_the_internet(cls, sources: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        for cidr in sources:
            if cidr.prefixlen < 16:
                raise ValueError(f"{cidr} is too wide for SSH to the bastion; name the operators' networks (/16 or narrower)")
        return sources


class StoragePath(_Strict):
    """One of the provider's storage networks: a VLAN from the bare-metal nodes to the array's iSCSI portals.

    The provider creates it (a provider network: admin-only), shares it with the
    national project and reads nothing of ours; we plug one NIC of each RAC node
    into it at a fixed address the array's host mapping can name.
    """

    network: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")  # the provider's network (and subnet) name
    cidr: ipaddress.IPv4Network
    portals: list[ipaddress.IPv4Address] = Field(min_length=1)  # the array's iSCSI portals on it (port 3260)

    @model_validator(mode="after")
    def _portals_inside(self) -> Self:
        outside = [str(p) for p in self.portals if p not in self.cidr]
        if outside:
            raise ValueError(f"portals {outside} are not inside {self.network} {self.cidr}")
        return self


class Storage(_Strict):
    """Block storage: the volume type shared by RAC ASM disks, and the two paths the nodes reach it by."""

    # pulumi-openstack cannot set a Cinder volume type's encryption spec, so the
    # type points at a backend the provider encrypts (LUKS) and qualifies as such.
    encrypted_backend: str = Field(min_length=1)
    # The backend of the RAC shared disks: a storage array exporting LUNs over iSCSI
    # (driver_volume_type "iscsi"), never Ceph RBD (its connection info is a cephx key).
    asm_backend: str | None = Field(default=None, min_length=1)
    asm_volume_type: str = Field(default="rac-asm-multiattach", min_length=1)
    # Bare-metal nodes reach the ASM volumes over iSCSI: each node's initiator is
    # "<prefix>:<node name>", set in the guest by playbooks/rac_storage.yml and
    # named in the Cinder attachment.
    iscsi_iqn_prefix: str = Field(default="iqn.2026-01.fr.samu.cutover", pattern=r"^iqn\.\d{4}-\d{2}\.[a-z0-9.-]+$")
    # The provider's storage networks, one NIC of each RAC node on each: two paths (multipath).
    paths: list[StoragePath] = Field(default_factory=list)

    @model_validator(mode="after")
    def _two_separate_paths(self) -> Self:
        if not self.paths:
            return self
        if len(self.paths) != STORAGE_PATHS:
            raise ValueError(f"storage.paths: {STORAGE_PATHS} networks (one per path for multipath), "
                             f"not {len(self.paths)}")
        a, b = self.paths
        if a.network == b.network or a.cidr.overlaps(b.cidr):
            raise ValueError(f"storage.paths: {a.network} {a.cidr} and {b.network} {b.cidr} must be two networks "
                             "that do not overlap: one path each")
        return self

    def initiator(self, node_name: str) -> str:
        return f"{self.iscsi_iqn_prefix}:{node_name}"

    @property
    def rac_backend(self) -> str:
        return self.asm_backend or self.encrypted_backend


STORAGE_PATHS = 2


class DnsZone(_Strict):
    """The Designate zone the platform's names live in (RAC SCAN names): an internal zone.

    ``attributes`` are the hints Designate's pool scheduler (attribute filter) matches
    against its pools' attributes: they place the zone in the provider's internal pool,
    whose servers answer only the provider's internal resolvers (``dns_nameservers``).
    The zone's suffix is one never delegated publicly (policy ``dns.private_suffixes``).
    """

    zone: str = Field(pattern=r"^([a-z0-9-]+\.)+$")  # fully qualified, trailing dot
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ttl: int = Field(default=300, ge=30)
    attributes: dict[str, str] = Field(default_factory=dict)


class Migration(_Strict):
    """The Data Guard redo path from the legacy platform to the cloud RAC, for the migration period only."""

    legacy_networks: list[ipaddress.IPv4Network] = Field(min_length=1)
    legacy_vpn_peer: ipaddress.IPv4Address
    redo_port: int = Field(default=1521, ge=1, le=65535)  # the standby's Oracle Net listener
    until: datetime.date

    @field_validator("legacy_networks")
    @classmethod
    def _narrow(cls, networks: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        for cidr in networks:
            if cidr.prefixlen < 16:
                raise ValueError(f"{cidr} is too wide for the redo path; name the legacy database networks "
                                 "(/16 or narrower)")
        return networks


class BareMetalFlavor(_Strict):
    """A Nova flavor for Ironic nodes: the resource class selects the hardware."""

    name: str = Field(min_length=1)
    resource_class: str
    vcpus: int = Field(gt=0)
    ram_mb: int = Field(gt=0)
    disk_gb: int = Field(gt=0)

    @field_validator("resource_class")
    @classmethod
    def _custom_class(cls, value: str) -> str:
        if not RESOURCE_CLASS.match(value):
            raise ValueError(f"{value!r} is not an Ironic custom resource class (CUSTOM_ followed by A-Z, 0-9, _)")
        return value


class BareMetalPool(_Strict):
    name: str
    # telephony: the national telephony pool, which takes SIP/RTP from the SAMUs' premises.
    role: Literal["service", "telephony"] = "service"
    flavor: BareMetalFlavor
    image: str = Field(min_length=1)
    nodes: int = Field(ge=1, le=64)
    availability_zones: list[str] | None = None  # default: every zone of the region

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and dashes, starting with a letter")
        return value


Redundancy = Literal["external", "normal", "high"]
# Failure groups a disk group holding the voting files needs (Oracle Clusterware: one voting
# file per failure group, 3 in a normal redundancy disk group, 5 in a high redundancy one).
VOTING_FAILURE_GROUPS: dict[str, int] = {"external": 1, "normal": 3, "high": 5}
MIN_LUNS_PER_DISK_GROUP = 2  # ASM stripes over its disks: several equal LUNs, never one large one


class AsmDiskGroup(_Strict):
    """An ASM disk group: ``luns`` LUNs of ``lun_gb`` each (ASM balances by size: all equal)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,14}$")
    luns: int = Field(ge=1, le=64)
    lun_gb: int = Field(gt=0)
    redundancy: Redundancy = "external"
    voting: bool = False  # holds the Clusterware voting files and OCR


@dataclass(frozen=True)
class AsmDisk:
    """One LUN of a disk group: a Cinder volume exported to every node, an ASM disk in one failure group."""

    name: str  # "<disk group>-<n>": the volume's suffix, the multipath alias, /dev/oracleasm/<name>
    disk_group: str
    failure_group: str
    size_gb: int
    voting: bool


class AsmVolumes(_Strict):
    """The ASM disk groups shared by every node of a RAC cluster.

    The voting disk group is normal (3 LUNs) or high (5) redundancy, each LUN its own
    failure group, so that Clusterware keeps one voting file per failure group; the
    others use the array's redundancy (external) over several equal LUNs.
    """

    disk_groups: list[AsmDiskGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _layout(self) -> Self:
        names = [g.name for g in self.disk_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"asm.disk_groups: a name is used twice ({', '.join(names)})")
        voting = [g for g in self.disk_groups if g.voting]
        if len(voting) != 1:
            raise ValueError("asm.disk_groups: exactly one disk group holds the voting files (voting: true)")
        needed = VOTING_FAILURE_GROUPS[voting[0].redundancy]
        if voting[0].redundancy == "external" or voting[0].luns < needed:
            raise ValueError(f"asm disk group {voting[0].name!r} holds the voting files: normal redundancy over 3 "
                             f"LUNs (or high over 5), each its own failure group; it has {voting[0].luns} LUN(s), "
                             f"{voting[0].redundancy} redundancy")
        for group in self.disk_groups:
            if not group.voting and group.luns < MIN_LUNS_PER_DISK_GROUP:
                raise ValueError(f"asm disk group {group.name!r}: {MIN_LUNS_PER_DISK_GROUP} equal LUNs at least "
                                 "(ASM stripes over its disks)")
        return self

    def disks(self) -> list[AsmDisk]:
        """Every LUN, disk group by disk group; LUN n of a disk group is in failure group "<group>_fg<n>"."""
        return [AsmDisk(f"{g.name}-{n}", g.name, f"{g.name}_fg{n}", g.lun_gb, g.voting)
                for g in self.disk_groups for n in range(1, g.luns + 1)]


class RacCluster(_Strict):
    """An Oracle RAC cluster on a bare-metal pool.

    Its public addresses come from ``public_block`` (see ``RacAddresses``); on
    the interconnect and storage networks node N has host number
    ``private_host_base + N - 1``. Every address is fixed: adding a node
    moves none.
    """

    name: str
    pool: str
    public_block: ipaddress.IPv4Network
    private_host_base: int = Field(default=16, ge=2)
    asm: AsmVolumes
    # One zone: a cluster spread over zones is an extended-distance cluster (a failure group per
    # site, a third-site voting file), which one storage array cannot give. Default: the pool's first.
    availability_zone: str | None = None
    # The racks (failure domains) inside that zone, as the Ironic traits the provider sets on their
    # nodes (CUSTOM_RACK_A...): node N goes to domain N mod len, through a flavor requiring that trait.
    # Nova's anti-affinity counts per nova-compute host, and one nova-compute serves many Ironic nodes.
    failure_domains: list[str] = Field(default_factory=list)
    # A Data Guard physical standby of another cluster of the inventory, in another zone (disaster recovery).
    standby_of: str | None = None

    @field_validator("failure_domains")
    @classmethod
    def _traits(cls, traits: list[str]) -> list[str]:
        for trait in traits:
            if not RESOURCE_CLASS.match(trait):
                raise ValueError(f"{trait!r} is not a custom trait (CUSTOM_ followed by A-Z, 0-9, _)")
        if len(set(traits)) != len(traits):
            raise ValueError("failure_domains: a trait is named twice")
        return traits

    def failure_domain(self, node: int) -> str:
        return self.failure_domains[(node - 1) % len(self.failure_domains)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return BareMetalPool._name(value)


class NationalCore(_Strict):
    region: str = Field(min_length=1)
    availability_zones: list[str] = Field(min_length=1)
    external_network_id: str | None = None
    project_id: str | None = None  # the national project, where the stack's credentials create national resources
    dns_nameservers: list[ipaddress.IPv4Address] = Field(default_factory=list)
    dns: DnsZone | None = None
    networks: NationalNetworks | None = None
    bastion: Bastion | None = None
    storage: Storage | None = None
    baremetal_pools: list[BareMetalPool] = Field(default_factory=list)
    rac_clusters: list[RacCluster] = Field(default_factory=list)
    migration: Migration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self.consistency_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def consistency_problems(self) -> list[str]:
        """Cross-field rules pydantic cannot express per field."""
        problems = _unique([p.name for p in self.baremetal_pools], "baremetal_pools")
        problems += _one_flavor_per_name(self.baremetal_pools)
        problems += _unique([c.name for c in self.rac_clusters], "rac_clusters")
        pools = {p.name: p for p in self.baremetal_pools}
        for pool in self.baremetal_pools:
            unknown = set(pool.availability_zones or []) - set(self.availability_zones)
            if unknown:
                problems.append(f"baremetal pool {pool.name!r}: zones {sorted(unknown)} are not in availability_zones")
        used: set[str] = set()
        for cluster in self.rac_clusters:
            problems += self._rac_problems(cluster, pools, used)
        problems += self._rac_platform_problems()
        problems += self._standby_problems()
        problems += self._migration_problems()
        return problems

    def _standby_problems(self) -> list[str]:
        """Every primary cluster has a Data Guard standby in another zone; a standby's primary exists."""
        clusters = {c.name: c for c in self.rac_clusters if c.pool in {p.name for p in self.baremetal_pools}}
        problems = []
        for cluster in clusters.values():
            if cluster.standby_of is None:
                if not any(c.standby_of == cluster.name for c in clusters.values()):
                    problems.append(f"rac cluster {cluster.name!r} has no Data Guard standby: add a cluster with "
                                    f"standby_of: {cluster.name} in another zone")
                continue
            primary = clusters.get(cluster.standby_of)
            if primary is None or primary.standby_of is not None:
                problems.append(f"rac cluster {cluster.name!r}: standby_of {cluster.standby_of!r} is not a primary "
                                "cluster of rac_clusters")
            elif self.rac_zone(primary) == self.rac_zone(cluster):
                problems.append(f"rac cluster {cluster.name!r}: a standby in the primary's zone "
                                f"({self.rac_zone(cluster)}) does not survive the zone; use another")
        return problems

    def _migration_problems(self) -> list[str]:
        """The legacy networks are on premises: one of ours would route redo (and more) the wrong way."""
        if self.migration is None or self.networks is None:
            return []
        return [f"migration.legacy_networks {legacy} overlaps networks.{key} {cidr}"
                for legacy in self.migration.legacy_networks
                for key, cidr in self.networks.by_zone().items() if legacy.overlaps(cidr)]

    def _rac_platform_problems(self) -> list[str]:
        """What every RAC cluster needs from the national core: HAIP, SCAN names, disjoint private ranges."""
        if not self.rac_clusters:
            return []
        problems = []
        if self.storage is not None and not self.storage.paths:
            problems.append("rac clusters need the provider's two storage networks (iSCSI multipath): add "
                            "storage.paths")
        if self.storage is not None and self.networks is not None:
            problems += [f"storage path {p.network} {p.cidr} overlaps networks.{key} {cidr}"
                         for p in self.storage.paths for key, cidr in self.networks.by_zone().items()
                         if p.cidr.overlaps(cidr)]
        if self.networks is not None and self.networks.interconnect_b is None:
            problems.append("rac clusters need two interconnect networks (Oracle HAIP): add networks.interconnect_b")
        if self.dns is None:
            problems.append("rac clusters need a Designate zone for their SCAN names: add dns (zone, email)")
        pools = {p.name: p for p in self.baremetal_pools}
        ranges = sorted((c.private_host_base, c.private_host_base + rac_capacity(c.public_block) - 1, c.name)
                        for c in self.rac_clusters if c.pool in pools)
        for (_, last, name), (first, _, other) in zip(ranges, ranges[1:]):
            if first <= last:
                problems.append(f"rac clusters {name!r} and {other!r}: their private host ranges overlap; "
                                "give each its own private_host_base")
        return problems

    def _rac_problems(self, cluster: RacCluster, pools: dict[str, BareMetalPool], used: set[str]) -> list[str]:
        where = f"rac cluster {cluster.name!r}"
        if cluster.pool not in pools:
            return [f"{where}: pool {cluster.pool!r} is not one of baremetal_pools ({', '.join(pools) or 'none'})"]
        if cluster.pool in used:
            return [f"{where}: pool {cluster.pool!r} already serves another cluster; give each cluster its own pool"]
        used.add(cluster.pool)
        pool = pools[cluster.pool]
        problems = []
        if pool.nodes < 2:
            problems.append(f"{where}: a RAC cluster needs at least 2 nodes (pool {pool.name!r} has {pool.nodes})")
        if len(cluster.failure_domains) < 2:
            problems.append(f"{where}: name 2 failure domains at least (failure_domains: the Ironic traits of the "
                            "racks its nodes are spread over)")
        zone = cluster.availability_zone
        if zone is not None and zone not in self.zones_of(pool):
            problems.append(f"{where}: availability_zone {zone!r} is not a zone of pool {pool.name!r}")
        if self.networks is not None and not cluster.public_block.subnet_of(self.networks.service):
            problems.append(f"{where}: public_block {cluster.public_block} is not inside networks.service "
                            f"{self.networks.service}")
        capacity = rac_capacity(cluster.public_block)
        if capacity < MIN_RAC_SLOT:
            problems.append(f"{where}: public_block {cluster.public_block} is too small; a /28 at least "
                            "(SCAN, node and VIP addresses each have a quarter of the block)")
        elif pool.nodes > capacity:
            problems.append(f"{where}: public_block {cluster.public_block} holds at most {capacity} nodes "
                            f"(pool {pool.name!r} has {pool.nodes}); use a larger block")
        for key, network in self._private_networks():
            if cluster.private_host_base + capacity > network.num_addresses - 1:
                problems.append(f"{where}: private hosts {cluster.private_host_base}.."
                                f"{cluster.private_host_base + capacity - 1} do not fit {key} {network}")
        for path in self.storage.paths if self.storage is not None else []:
            first = path.cidr.network_address + cluster.private_host_base
            taken = [str(p) for p in path.portals if first <= p <= first + capacity - 1]
            if taken:
                problems.append(f"{where}: portals {taken} of {path.network} sit in the nodes' private hosts")
        return problems

    def _private_networks(self) -> list[tuple[str, ipaddress.IPv4Network]]:
        """Where RAC nodes have fixed private addresses: the interconnects and the storage paths."""
        found = []
        if self.networks is not None:
            found += [(f"networks.{key}", self.networks.by_zone()[key]) for key in self.networks.interconnects()]
        if self.storage is not None:
            found += [(f"storage path {p.network}", p.cidr) for p in self.storage.paths]
        return found

    def pool(self, name: str) -> BareMetalPool:
        return next(p for p in self.baremetal_pools if p.name == name)

    def zones_of(self, pool: BareMetalPool) -> list[str]:
        return list(pool.availability_zones or self.availability_zones)

    def rac_zone(self, cluster: RacCluster) -> str:
        return cluster.availability_zone or self.zones_of(self.pool(cluster.pool))[0]

    def rac_flavors(self, cluster: RacCluster) -> list[tuple[BareMetalFlavor, str]]:
        """Per node, in order: the flavor it is booted with and the failure domain (trait) that flavor requires."""
        pool = self.pool(cluster.pool)
        return [(placement_flavor(pool.flavor, cluster.failure_domain(node)), cluster.failure_domain(node))
                for node in range(1, pool.nodes + 1)]

    def missing_for_infrastructure(self) -> list[str]:
        """Sections the infrastructure program needs that a lab inventory may leave out."""
        needed = ("external_network_id", "project_id", "networks", "bastion", "storage")
        return [name for name in needed if getattr(self, name) is None]

    def telephony_pools(self) -> list[BareMetalPool]:
        return [p for p in self.baremetal_pools if p.role == "telephony"]

    def reserved_hosts(self) -> dict[str, list[AddressRange]]:
        """Per national network, the fixed-address ranges DHCP must never hand out.

        RAC public blocks (SCAN, nodes, VIPs) in service; each cluster's node
        range in the interconnects and storage; the tenant routers' ports in
        transit (one per département code, see ``transit_address``).
        """
        assert self.networks is not None
        reserved: dict[str, list[AddressRange]] = {}
        for cluster in self.rac_clusters:
            block = cluster.public_block
            reserved.setdefault("service", []).append((block.network_address, block.broadcast_address))
            last = cluster.private_host_base + rac_capacity(block) - 1
            for key in self.networks.interconnects():
                network = self.networks.by_zone()[key]
                reserved.setdefault(key, []).append((network.network_address + cluster.private_host_base,
                                                     network.network_address + last))
        transit = self.networks.transit
        last_port = min(transit.network_address + TRANSIT_FIRST_HOST + TRANSIT_PORTS - 1, transit.broadcast_address - 1)
        reserved["transit"] = [(transit.network_address + TRANSIT_FIRST_HOST, last_port)]
        shards = transit.network_address + TRANSIT_SHARD_FIRST_HOST
        if shards + TRANSIT_SHARDS - 1 < transit.broadcast_address:
            reserved["transit"].append((shards, shards + TRANSIT_SHARDS - 1))
        return {key: sorted(ranges) for key, ranges in reserved.items()}

    def storage_path_reserved(self, path: StoragePath) -> list[AddressRange]:
        """On a provider storage network, what its DHCP must never hand out: the array's portals, every node range."""
        reserved = [(portal, portal) for portal in path.portals]
        for cluster in self.rac_clusters:
            first = path.cidr.network_address + cluster.private_host_base
            reserved.append((first, first + rac_capacity(cluster.public_block) - 1))
        return sorted(reserved)


def placement_flavor(flavor: BareMetalFlavor, trait: str) -> BareMetalFlavor:
    """The pool's flavor restricted to one failure domain: same hardware, the rack's trait required."""
    slug = trait.removeprefix("CUSTOM_").lower().replace("_", "-")
    return flavor.model_copy(update={"name": f"{flavor.name}.{slug}"})


def _one_flavor_per_name(pools: list[BareMetalPool]) -> list[str]:
    """Nova refuses a second flavor of the same name (409): pools naming one flavor must describe it alike."""
    seen: dict[str, BareMetalPool] = {}
    problems = []
    for pool in pools:
        first = seen.setdefault(pool.flavor.name, pool)
        if first is not pool and first.flavor != pool.flavor:
            problems.append(f"baremetal pools {first.name!r} and {pool.name!r} both name flavor {pool.flavor.name!r} "
                            "with different specs; Nova keeps one flavor per name: rename one")
    return problems


def _unique(names: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    return [f"{where}: name {name!r} is used twice" for name in dict.fromkeys(dup)]


MIN_RAC_SLOT = 4  # a /28: SCAN at hosts 1-3 of the first quarter
SCAN_COUNT = 3
TRANSIT_FIRST_HOST = 10
TRANSIT_PORTS = 128  # room for every département code (101 today) and the ones to come
# The national transit routers (one per shard of the tenant pool, see transit_shard): after the tenants' ports.
TRANSIT_SHARD_FIRST_HOST = TRANSIT_FIRST_HOST + TRANSIT_PORTS + 16
TRANSIT_SHARDS = 32  # a /16 tenant pool cut in /21s
# A shard is an aligned /21 of the tenant pool: at most 8 SAMUs, so its transit router holds at most
# 16 routes (each SAMU's network and premises), and the national router one or two per shard.
TRANSIT_SHARD_PREFIX = 21


def rac_capacity(block: ipaddress.IPv4Network) -> int:
    """How many nodes a public block holds: a quarter of it each for nodes and for VIPs."""
    return block.num_addresses // 4


@dataclass(frozen=True)
class RacAddresses:
    """A RAC cluster's public addresses, each role at its own offset of the public block.

    The block is cut in quarters: SCAN at hosts 1-3 of the first, node N at
    host N-1 of the second, node N's VIP at host N-1 of the third (the last
    is spare). Growing the cluster from 3 to 4 nodes adds node 4 and VIP 4
    and moves nothing: Clusterware and DNS know these addresses before the
    nodes exist, and a live cluster cannot have them renumbered.
    """

    scan: tuple[str, ...]
    nodes: tuple[str, ...]
    vips: tuple[str, ...]


def rac_addresses(block: ipaddress.IPv4Network, nodes: int) -> RacAddresses:
    slot = rac_capacity(block)
    start = block.network_address
    return RacAddresses(
        scan=tuple(str(start + 1 + i) for i in range(SCAN_COUNT)),
        nodes=tuple(str(start + slot + i) for i in range(nodes)),
        vips=tuple(str(start + 2 * slot + i) for i in range(nodes)),
    )


def private_address(network: ipaddress.IPv4Network, cluster: RacCluster, node: int) -> str:
    """Node ``node``'s fixed address on an interconnect or a storage path."""
    return str(network.network_address + cluster.private_host_base + node - 1)


def allocation_pools(network: ipaddress.IPv4Network, reserved: list[AddressRange], *,
                     gateway: bool) -> list[tuple[str, str]]:
    """The DHCP allocation pools of a subnet: its hosts minus the gateway (host 1) and the reserved ranges."""
    first = network.network_address + (2 if gateway else 1)
    last = network.broadcast_address - 1
    pools: list[tuple[str, str]] = []
    start = first
    for low, high in sorted(reserved):
        if low > start:
            pools.append((str(start), str(min(low - 1, last))))
        start = max(start, high + 1)
        if start > last:
            return pools
    if start <= last:
        pools.append((str(start), str(last)))
    return pools


def transit_address(transit: ipaddress.IPv4Network, code_index: int) -> str:
    """The tenant router's address on the transit network: fixed per département code.

    ``code_index`` is the code's position in the list of all codes, so adding or
    removing a SAMU never moves another SAMU's address.
    """
    return str(transit.network_address + TRANSIT_FIRST_HOST + code_index)


def transit_shard(pool: ipaddress.IPv4Network, cidr: ipaddress.IPv4Network) -> int:
    """Which transit shard a tenant network belongs to: its aligned /21 of the tenant pool."""
    return (int(cidr.network_address) - int(pool.network_address)) >> (32 - TRANSIT_SHARD_PREFIX)


def transit_shard_address(transit: ipaddress.IPv4Network, shard: int) -> str:
    """Shard ``shard``'s transit router on the transit network: fixed, after the tenants' ports."""
    address = transit.network_address + TRANSIT_SHARD_FIRST_HOST + shard
    if shard >= TRANSIT_SHARDS or address >= transit.broadcast_address:
        raise ValueError(f"transit shard {shard} does not fit networks.transit {transit}")
    return str(address)


def national_router_transit_address(transit: ipaddress.IPv4Network) -> str:
    """The national router's address on transit: the subnet's gateway, host 1 (tenant routes point at it)."""
    return str(transit.network_address + 1)
