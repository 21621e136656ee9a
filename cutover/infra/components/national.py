"""The national core: the networks every SAMU shares, the router, the bastion, storage types, DNS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import (
    NATIONAL_OWNER,
    OWNER_TAG,
    ROLE_TAG,
    Ingress,
    add_egress,
    add_ingress,
    zone_tags,
)
from cutover.model.national import AddressRange, Bastion, DnsZone, NationalNetworks, Storage, allocation_pools

ROUTED_ZONES = ("admin", "service", "transit")  # interconnect and storage are never routed
ISOLATED_ZONES = ("interconnect", "storage")

ORACLE_LISTENER = (1521, 1521)
ORACLE_ONS = (6200, 6200)
ISCSI_PORT = 3260
# Oracle's interconnect carries cache-fusion blocks (8 KiB and more): jumbo
# frames keep a block in one frame instead of six.
INTERCONNECT_MTU = 9000


def network_zone(key: str) -> str:
    """The policy zone of a network key: both HAIP interconnects are 'interconnect'."""
    return "interconnect" if key.startswith("interconnect") else key


@dataclass(frozen=True)
class TransitShard:
    """A national transit router: the way back to the SAMUs of one aligned block of the tenant pool.

    Neutron caps a router's static routes (``max_routes``, 30 by default). The
    national router would need two per SAMU (its network, its premises); instead it
    routes each shard's summarised networks to the shard's transit router, which
    holds the per-SAMU routes (16 at most).
    """

    index: int
    address: str  # on the transit network
    summaries: list[str]  # the shard's tenant networks and premises, collapsed


@dataclass(frozen=True)
class NationalCoreArgs:
    region: str
    availability_zones: list[str]
    external_network_id: str
    networks: NationalNetworks
    bastion: Bastion
    storage: Storage
    dns_nameservers: list[str] = field(default_factory=list)
    dns: DnsZone | None = None
    # Per network key, the fixed-address ranges kept out of DHCP (NationalCore.reserved_hosts).
    reserved_hosts: dict[str, list[AddressRange]] = field(default_factory=dict)
    transit_shards: list[TransitShard] = field(default_factory=list)
    tenant_pool: str | None = None  # the SAMUs' networks: the bastion's SSH reaches them


class NationalCore(pulumi.ComponentResource):
    """Admin, service, transit, two interconnect and storage networks; router; bastion; security groups."""

    network_ids: dict[str, pulumi.Output[str]]
    subnet_ids: dict[str, pulumi.Output[str]]
    router_id: pulumi.Output[str]
    transit_router_ids: dict[int, pulumi.Output[str]]
    security_group_ids: dict[str, pulumi.Output[str]]
    asm_volume_type: str
    dns_zone_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: NationalCoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:national:Core", name, None, opts)
        self.args = args
        self.network_ids, self.subnet_ids = {}, {}
        for key, cidr in args.networks.by_zone().items():
            self._network(key, cidr)
        self.router_id = self._router()
        self.transit_router_ids = {shard.index: self._transit_router(shard) for shard in args.transit_shards}
        self.security_group_ids = self._security_groups()
        self._bastion()
        self.asm_volume_type = self._asm_volume_type()
        self.dns_zone_id = self._dns_zone()
        self.register_outputs({
            "networkIds": self.network_ids,
            "subnetIds": self.subnet_ids,
            "routerId": self.router_id,
            "securityGroupIds": self.security_group_ids,
            "asmVolumeType": self.asm_volume_type,
        })

    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _network(self, key: str, cidr: ipaddress.IPv4Network) -> None:
        zone, slug = network_zone(key), key.replace("_", "-")
        network = openstack.networking.Network(
            f"national-{slug}-net", name=f"national-{slug}", admin_state_up=True,
            mtu=INTERCONNECT_MTU if zone == "interconnect" else None, tags=zone_tags(zone), opts=self._child(),
        )
        subnet = openstack.networking.Subnet(
            f"national-{slug}-subnet", name=f"national-{slug}", network_id=network.id, cidr=str(cidr), ip_version=4,
            enable_dhcp=True, no_gateway=zone in ISOLATED_ZONES,
            # Fixed addresses (RAC, tenant routers) sit outside the pools, so DHCP can never take one.
            allocation_pools=self._pools(key, cidr, gateway=zone not in ISOLATED_ZONES),
            dns_nameservers=self.args.dns_nameservers or None, tags=zone_tags(zone), opts=self._child(),
        )
        self.network_ids[key] = network.id
        self.subnet_ids[key] = subnet.id

    def _pools(self, key: str, cidr: ipaddress.IPv4Network, *,
               gateway: bool) -> list[openstack.networking.SubnetAllocationPoolArgs] | None:
        reserved = self.args.reserved_hosts.get(key)
        if not reserved:
            return None  # Neutron's default pool: every host but the gateway
        return [openstack.networking.SubnetAllocationPoolArgs(start=start, end=end)
                for start, end in allocation_pools(cidr, reserved, gateway=gateway)]

    def _router(self) -> pulumi.Output[str]:
        router = openstack.networking.Router(
            "national-router", name="national", admin_state_up=True,
            external_network_id=self.args.external_network_id, opts=self._child(),
        )
        # Attached by subnet, the router takes each subnet's gateway (host 1):
        # the address tenant routers route back to (national_router_transit_address).
        for zone in ROUTED_ZONES:
            openstack.networking.RouterInterface(
                f"national-router-{zone}", router_id=router.id, subnet_id=self.subnet_ids[zone], opts=self._child(),
            )
        return router.id

    def _transit_router(self, shard: TransitShard) -> pulumi.Output[str]:
        name = f"national-transit-{shard.index}"
        router = openstack.networking.Router(name, name=name, admin_state_up=True, opts=self._child())
        port = openstack.networking.Port(
            f"{name}-port", name=name, network_id=self.network_ids["transit"],
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=self.subnet_ids["transit"],
                                                            ip_address=shard.address)],
            opts=self._child(),
        )
        iface = openstack.networking.RouterInterface(f"{name}-iface", router_id=router.id, port_id=port.id,
                                                     opts=self._child())
        # Back to the national networks (replies from the SAMUs come through the tenant routers directly).
        for i, summary in enumerate(shard.summaries, start=1):
            openstack.networking.RouterRoute(
                f"{name}-route-{i}", router_id=self.router_id, destination_cidr=summary, next_hop=shard.address,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[iface]),
            )
        return router.id

    def _group(self, key: str, description: str) -> openstack.networking.SecGroup:
        # Neutron's default allow-all egress rules are deleted: the group's egress rules say where its ports go.
        return openstack.networking.SecGroup(
            f"national-{key}-sg", name=f"national-{key}", description=description, delete_default_rules=True,
            tags=[f"{ROLE_TAG}={key}"], opts=self._child(),
        )

    def _security_groups(self) -> dict[str, pulumi.Output[str]]:
        nets = self.args.networks
        bastion = self._group("bastion", "SSH from the operators' networks to the bastion, nothing else")
        for i, source in enumerate(self.args.bastion.operator_sources, start=1):
            add_ingress(self, bastion.id, Ingress(f"national-bastion-ssh-{i}", "tcp", (22, 22), str(source)))
        admin = self._group("admin", "SSH from the bastion only")
        add_ingress(self, admin.id, Ingress("national-admin-ssh", "tcp", (22, 22), source_group_id=bastion.id))
        # Out: the bastion only opens SSH to the national networks and the SAMUs' (the admin group, none).
        ssh_to = [str(nets.admin), str(nets.service), *([self.args.tenant_pool] if self.args.tenant_pool else [])]
        for i, destination in enumerate(ssh_to, start=1):
            add_egress(self, bastion.id, Ingress(f"national-bastion-ssh-out-{i}", "tcp", (22, 22), destination))
        service = self._group("service", "Oracle listener and ONS inside the service network")
        add_ingress(self, service.id, Ingress("national-service-listener", "tcp", ORACLE_LISTENER, str(nets.service)))
        add_ingress(self, service.id, Ingress("national-service-ons", "tcp", ORACLE_ONS, str(nets.service)))
        # Out: inside the service network only (listeners, ONS, Data Guard to the standby, DNS, NTP).
        add_egress(self, service.id, Ingress("national-service-out", "", None, str(nets.service)))
        # DNS to the provider's internal resolvers (the SCAN names): the RAC nodes and the service pools.
        for i, server in enumerate(self.args.dns_nameservers, start=1):
            for proto in ("udp", "tcp"):
                add_egress(self, service.id, Ingress(f"national-service-dns-out-{proto}-{i}", proto, (53, 53),
                                                     f"{server}/32"))
        # The RAC nodes' ports on the provider's storage networks: they only log in to the array's portals.
        storage = self._group("storage", "iSCSI from the RAC nodes to the storage array's portals; nothing in")
        for path in self.args.storage.paths:
            for i, portal in enumerate(path.portals, start=1):
                openstack.networking.SecGroupRule(
                    f"national-storage-{path.network}-portal-{i}", direction="egress", ethertype="IPv4",
                    protocol="tcp", port_range_min=ISCSI_PORT, port_range_max=ISCSI_PORT,
                    remote_ip_prefix=f"{portal}/32", security_group_id=storage.id,
                    description=f"iSCSI to portal {portal} on {path.network}", opts=self._child(),
                )
        # Each SAMU tenant adds SIP/RTP from its own premises (SamuTenant), nothing wider.
        telephony = self._group("telephony", "SIP and RTP from each SAMU's premises to the national telephony pool")
        return {"bastion": bastion.id, "admin": admin.id, "service": service.id, "storage": storage.id,
                "telephony": telephony.id}

    def _bastion(self) -> None:
        spec = self.args.bastion
        port = openstack.networking.Port(
            "national-bastion-port", network_id=self.network_ids["admin"],
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=self.subnet_ids["admin"])],
            security_group_ids=[self.security_group_ids["bastion"]], opts=self._child(),
        )
        # The operators' way in: a public address, SSH admitted from their networks only (group national-bastion).
        openstack.networking.FloatingIp(
            "national-bastion-fip", pool=openstack.networking.get_network_output(
                network_id=self.args.external_network_id).name,
            port_id=port.id, description="the bastion: SSH from the operators' networks only", opts=self._child(),
        )
        openstack.compute.Instance(
            "national-bastion", name="national-bastion", flavor_name=spec.flavor, image_name=spec.image,
            key_pair=spec.key_pair, availability_zone=self.args.availability_zones[0],
            metadata={OWNER_TAG: NATIONAL_OWNER},
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)], opts=self._child(),
        )

    def _asm_volume_type(self) -> str:
        # The provider's (infra/provider): a volume type naming a Cinder backend
        # needs cloud-admin rights. Volumes name it; Cinder resolves the name.
        return self.args.storage.asm_volume_type

    def _dns_zone(self) -> pulumi.Output[str] | None:
        spec = self.args.dns
        if spec is None:
            return None
        # Internal: the attributes place the zone in the provider's internal Designate pool (pool
        # scheduler, attribute filter), served to the platform by the provider's resolvers only.
        zone = openstack.dns.Zone(
            "national-dns-zone", name=spec.zone, email=spec.email, ttl=spec.ttl, type="PRIMARY",
            attributes=spec.attributes or None,
            description="SAMU platform names (RAC SCAN)", opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        return zone.id
