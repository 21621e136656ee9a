"""Oracle RAC clusters: bare-metal nodes, their networks, fixed VIP/SCAN addresses, SCAN DNS, shared ASM disks.

The nodes are Ironic instances, and Nova's ironic driver cannot attach a
volume (the Nova feature support matrix lists attach, detach and extend as
missing for Ironic). So the ASM volumes reach the nodes over iSCSI on the
storage network: a Cinder attachment per volume and node
(``blockstorage.VolumeAttach``) names the node's initiator and storage
address, and the backend exports the volume to it; the node logs in,
multipaths and names the disks itself (``playbooks/rac_storage.yml``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.baremetal import BareMetalPool, BareMetalPoolArgs, Nic
from cutover.infra.components.common import NATIONAL_OWNER, OWNER_TAG
from cutover.model.national import BareMetalPool as PoolSpec
from cutover.model.national import DnsZone, NationalNetworks, Storage, private_address, rac_addresses
from cutover.model.national import RacCluster as RacSpec


@dataclass(frozen=True)
class RacNetworks:
    """Where the cluster's networks are, and the groups its ports carry."""

    public_network_id: pulumi.Input[str]
    public_subnet_id: pulumi.Input[str]
    # Two for Oracle HAIP, in order; (network id, subnet id) each.
    interconnects: list[tuple[pulumi.Input[str], pulumi.Input[str]]]
    storage_network_id: pulumi.Input[str]
    storage_subnet_id: pulumi.Input[str]
    public_security_group_ids: list[pulumi.Input[str]]
    storage_security_group_ids: list[pulumi.Input[str]]
    cidrs: NationalNetworks  # for the nodes' fixed private addresses


@dataclass(frozen=True)
class RacClusterArgs:
    cluster: RacSpec
    pool: PoolSpec
    availability_zones: list[str]
    networks: RacNetworks
    asm_volume_type: pulumi.Input[str]
    storage: Storage
    dns: DnsZone | None = None
    dns_zone_id: pulumi.Input[str] | None = None
    key_pair: str | None = None


class RacCluster(pulumi.ComponentResource):
    """Nodes from a bare-metal pool; one VIP per node and three SCAN addresses; ASM volumes exported to every node."""

    node_addresses: list[str]
    vip_addresses: list[str]
    scan_addresses: list[str]
    volume_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RacClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:oracle:RacCluster", name, None, opts)
        self.cluster_name = name
        self.args = args
        addresses = rac_addresses(args.cluster.public_block, args.pool.nodes)
        self.node_addresses, self.vip_addresses = list(addresses.nodes), list(addresses.vips)
        self.scan_addresses = list(addresses.scan)
        self._reserve_addresses()
        self._scan_name()
        self.pool = BareMetalPool(args.pool.name, self._pool_args(), pulumi.ResourceOptions(parent=self))
        self.volume_ids = self._asm_volumes()
        self.exports = self._export_everywhere()
        self.register_outputs({
            "nodeAddresses": self.node_addresses, "vipAddresses": self.vip_addresses,
            "scanAddresses": self.scan_addresses, "volumeIds": self.volume_ids,
        })

    def _reserve_addresses(self) -> None:
        # Unbound ports hold the VIP and SCAN addresses so that Neutron's DHCP
        # never hands them to anything else; Clusterware moves them between nodes.
        nets = self.args.networks
        labelled = [(f"vip-{i}", ip) for i, ip in enumerate(self.vip_addresses, start=1)]
        labelled += [(f"scan-{i}", ip) for i, ip in enumerate(self.scan_addresses, start=1)]
        for label, ip in labelled:
            openstack.networking.Port(
                f"{self.cluster_name}-{label}-port", name=f"{self.cluster_name}-{label}",
                network_id=nets.public_network_id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=nets.public_subnet_id, ip_address=ip)],
                admin_state_up=False, security_group_ids=nets.public_security_group_ids,
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _scan_name(self) -> None:
        """One name, three A records: clients resolve SCAN round-robin (Oracle's recommended setup)."""
        dns, zone_id = self.args.dns, self.args.dns_zone_id
        if dns is None or zone_id is None:
            return
        openstack.dns.RecordSet(
            f"{self.cluster_name}-scan-dns", zone_id=zone_id, name=f"{self.cluster_name}-scan.{dns.zone}",
            type="A", records=self.scan_addresses, ttl=dns.ttl,
            description=f"SCAN of RAC cluster {self.cluster_name}", opts=pulumi.ResourceOptions(parent=self),
        )

    def _private_ips(self, network: ipaddress.IPv4Network) -> list[str]:
        return [private_address(network, self.args.cluster, node) for node in range(1, self.args.pool.nodes + 1)]

    def _pool_args(self) -> BareMetalPoolArgs:
        nets, pool = self.args.networks, self.args.pool
        # SCAN first, then VIPs: a new node appends its VIP, existing pairs keep their place.
        public = Nic("public", nets.public_network_id, nets.public_subnet_id, nets.public_security_group_ids,
                     fixed_ips=self.node_addresses,
                     # Any node may carry any VIP or SCAN address after a failover.
                     allowed_addresses=[*self.scan_addresses, *self.vip_addresses])
        keys = nets.cidrs.interconnects()
        interconnects = [
            Nic(key.replace("_", "-"), network_id, subnet_id, None,
                fixed_ips=self._private_ips(nets.cidrs.by_zone()[key]))
            for key, (network_id, subnet_id) in zip(keys, nets.interconnects, strict=True)
        ]
        storage = Nic("storage", nets.storage_network_id, nets.storage_subnet_id, nets.storage_security_group_ids,
                      fixed_ips=self.storage_addresses())
        return BareMetalPoolArgs(
            flavor=pool.flavor, image=pool.image, nodes=pool.nodes, availability_zones=self.args.availability_zones,
            nics=[public, *interconnects, storage], key_pair=self.args.key_pair,
            protect=True,
            metadata={"rac-cluster": self.cluster_name},
        )

    def storage_addresses(self) -> list[str]:
        return self._private_ips(self.args.networks.cidrs.storage)

    def _asm_volumes(self) -> dict[str, pulumi.Output[str]]:
        ids = {}
        for disk_group, size in self.args.cluster.asm.by_disk_group().items():
            volume = openstack.blockstorage.Volume(
                f"{self.cluster_name}-asm-{disk_group}", name=f"{self.cluster_name}-asm-{disk_group}", size=size,
                volume_type=self.args.asm_volume_type,
                metadata={OWNER_TAG: NATIONAL_OWNER, "rac-cluster": self.cluster_name,
                          "asm-disk-group": disk_group.upper()},
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            ids[disk_group] = volume.id
        return ids

    def iscsi_targets(self) -> pulumi.Output[dict[str, object]]:
        """Each export's connection info (portals, target IQN, LUN; CHAP secrets when the backend uses them).

        Secret: the stack exports it for playbooks/rac_storage.yml, read with
        ``pulumi stack output --show-secrets``.
        """
        return pulumi.Output.secret(pulumi.Output.all(**{name: e.data for name, e in self.exports.items()}))

    def _export_everywhere(self) -> dict[str, openstack.blockstorage.VolumeAttach]:
        # Some Cinder drivers update a volume's export (target ACLs, host
        # mappings) non-atomically; chaining every attachment on the previous
        # one serialises them, at the cost of a few seconds per attachment.
        previous: openstack.blockstorage.VolumeAttach | None = None
        exports = {}
        storage_ips = self.storage_addresses()
        for disk_group, volume_id in self.volume_ids.items():
            for node, storage_ip in enumerate(storage_ips, start=1):
                host = self.pool.node_name(node)
                previous = openstack.blockstorage.VolumeAttach(
                    f"{self.cluster_name}-asm-{disk_group}-node-{node}",
                    volume_id=volume_id, host_name=host, initiator=self.args.storage.initiator(host),
                    ip_address=storage_ip, multipath=True, attach_mode="rw", os_type="linux2", platform="x86_64",
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[previous] if previous else None),
                )
                exports[f"{disk_group}/{host}"] = previous
        return exports
