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
        interconnect: 10.100.8.0/24         # RAC private interconnect (no routing)
        storage: 10.100.9.0/24              # storage traffic (no routing)
      bastion: {flavor: m1.small, image: debian-12, key_pair: ops, operator_sources: [192.0.2.0/28]}
      storage: {encrypted_backend: ceph-luks}
      baremetal_pools:
        - {name: rac-a, flavor: {...}, image: ol9-rac, nodes: 3}
      rac_clusters:
        - {name: samu-rac-a, pool: rac-a, public_block: 10.100.5.0/26, asm: {...}}

This module is plain pydantic: no Pulumi. ``cutover.infra.components`` turns
it into resources and ``cutover.infra.policy`` reads it to know what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RESOURCE_CLASS = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NationalNetworks(_Strict):
    """One CIDR per network zone; no two may overlap."""

    admin: ipaddress.IPv4Network
    service: ipaddress.IPv4Network
    transit: ipaddress.IPv4Network
    interconnect: ipaddress.IPv4Network
    storage: ipaddress.IPv4Network

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
        return {"admin": self.admin, "service": self.service, "transit": self.transit,
                "interconnect": self.interconnect, "storage": self.storage}


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


class Storage(_Strict):
    """Block storage: the volume type shared by RAC ASM disks."""

    # pulumi-openstack cannot set a Cinder volume type's encryption spec, so the
    # type points at a backend the provider encrypts (LUKS) and qualifies as such.
    encrypted_backend: str = Field(min_length=1)
    asm_volume_type: str = Field(default="rac-asm-multiattach", min_length=1)


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


class AsmVolumes(_Strict):
    """Sizes (GB) of the ASM disk groups shared by every node of a RAC cluster."""

    data_gb: int = Field(gt=0)
    fra_gb: int = Field(gt=0)
    voting_gb: int = Field(gt=0)

    def by_disk_group(self) -> dict[str, int]:
        return {"data": self.data_gb, "fra": self.fra_gb, "voting": self.voting_gb}


class RacCluster(_Strict):
    """An Oracle RAC cluster on a bare-metal pool; its public addresses come from ``public_block``."""

    name: str
    pool: str
    public_block: ipaddress.IPv4Network
    asm: AsmVolumes

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return BareMetalPool._name(value)


class NationalCore(_Strict):
    region: str = Field(min_length=1)
    availability_zones: list[str] = Field(min_length=1)
    external_network_id: str | None = None
    dns_nameservers: list[ipaddress.IPv4Address] = Field(default_factory=list)
    networks: NationalNetworks | None = None
    bastion: Bastion | None = None
    storage: Storage | None = None
    baremetal_pools: list[BareMetalPool] = Field(default_factory=list)
    rac_clusters: list[RacCluster] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self.consistency_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def consistency_problems(self) -> list[str]:
        """Cross-field rules pydantic cannot express per field."""
        problems = _unique([p.name for p in self.baremetal_pools], "baremetal_pools")
        problems += _unique([c.name for c in self.rac_clusters], "rac_clusters")
        pools = {p.name: p for p in self.baremetal_pools}
        for pool in self.baremetal_pools:
            unknown = set(pool.availability_zones or []) - set(self.availability_zones)
            if unknown:
                problems.append(f"baremetal pool {pool.name!r}: zones {sorted(unknown)} are not in availability_zones")
        used: set[str] = set()
        for cluster in self.rac_clusters:
            problems += self._rac_problems(cluster, pools, used)
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
        if self.networks is not None and not cluster.public_block.subnet_of(self.networks.service):
            problems.append(f"{where}: public_block {cluster.public_block} is not inside networks.service "
                            f"{self.networks.service}")
        needed = rac_addresses_needed(pool.nodes)
        if cluster.public_block.num_addresses - 2 < needed:
            problems.append(f"{where}: public_block {cluster.public_block} is too small for {needed} addresses "
                            "(one per node, one VIP per node, three SCAN)")
        return problems

    def pool(self, name: str) -> BareMetalPool:
        return next(p for p in self.baremetal_pools if p.name == name)

    def zones_of(self, pool: BareMetalPool) -> list[str]:
        return list(pool.availability_zones or self.availability_zones)

    def missing_for_infrastructure(self) -> list[str]:
        """Sections the infrastructure program needs that a lab inventory may leave out."""
        needed = ("external_network_id", "networks", "bastion", "storage")
        return [name for name in needed if getattr(self, name) is None]


def _unique(names: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    return [f"{where}: name {name!r} is used twice" for name in dict.fromkeys(dup)]


def rac_addresses_needed(nodes: int) -> int:
    return 2 * nodes + 3


def rac_addresses(block: ipaddress.IPv4Network, nodes: int) -> tuple[list[str], list[str], list[str]]:
    """Node addresses, node VIPs and the three SCAN addresses, in that order from the block's start.

    Fixed rather than DHCP-assigned: Oracle Clusterware and DNS must know them
    before the nodes exist, and they must never move.
    """
    hosts = [str(ip) for ip in block.hosts()]
    node_ips = hosts[:nodes]
    vips = hosts[nodes:2 * nodes]
    scans = hosts[2 * nodes:2 * nodes + 3]
    return node_ips, vips, scans


def transit_address(transit: ipaddress.IPv4Network, code_index: int) -> str:
    """The tenant router's address on the transit network: fixed per département code.

    ``code_index`` is the code's position in the list of all codes, so adding or
    removing a SAMU never moves another SAMU's address.
    """
    return str(transit.network_address + 10 + code_index)
