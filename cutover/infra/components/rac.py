"""Oracle RAC clusters: bare-metal nodes, their three networks, VIP/SCAN addresses, shared ASM disks."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.baremetal import BareMetalPool, BareMetalPoolArgs, Nic
from cutover.national import BareMetalPool as PoolSpec
from cutover.national import RacCluster as RacSpec
from cutover.national import rac_addresses


@dataclass(frozen=True)
class RacNetworks:
    """Where the cluster's three networks are, and the groups its public ports carry."""

    public_network_id: pulumi.Input[str]
    public_subnet_id: pulumi.Input[str]
    interconnect_network_id: pulumi.Input[str]
    interconnect_subnet_id: pulumi.Input[str]
    storage_network_id: pulumi.Input[str]
    storage_subnet_id: pulumi.Input[str]
    public_security_group_ids: list[pulumi.Input[str]]
    storage_security_group_ids: list[pulumi.Input[str]]


@dataclass(frozen=True)
class RacClusterArgs:
    cluster: RacSpec
    pool: PoolSpec
    availability_zones: list[str]
    networks: RacNetworks
    asm_volume_type: pulumi.Input[str]
    key_pair: str | None = None


class RacCluster(pulumi.ComponentResource):
    """Nodes from a bare-metal pool; one VIP per node and three SCAN addresses; ASM volumes on every node."""

    node_addresses: list[str]
    vip_addresses: list[str]
    scan_addresses: list[str]
    volume_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RacClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:oracle:RacCluster", name, None, opts)
        self.cluster_name = name
        self.args = args
        nodes = args.pool.nodes
        self.node_addresses, self.vip_addresses, self.scan_addresses = rac_addresses(args.cluster.public_block, nodes)
        self._reserve_addresses()
        self.pool = BareMetalPool(args.pool.name, self._pool_args(), pulumi.ResourceOptions(parent=self))
        self.volume_ids = self._asm_volumes()
        self._attach_everywhere()
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

    def _pool_args(self) -> BareMetalPoolArgs:
        nets, pool = self.args.networks, self.args.pool
        public = Nic("public", nets.public_network_id, nets.public_subnet_id, nets.public_security_group_ids,
                     fixed_ips=self.node_addresses,
                     # Any node may carry any VIP or SCAN address after a failover.
                     allowed_addresses=[*self.vip_addresses, *self.scan_addresses])
        interconnect = Nic("interconnect", nets.interconnect_network_id, nets.interconnect_subnet_id, None)
        storage = Nic("storage", nets.storage_network_id, nets.storage_subnet_id, nets.storage_security_group_ids)
        return BareMetalPoolArgs(
            flavor=pool.flavor, image=pool.image, nodes=pool.nodes, availability_zones=self.args.availability_zones,
            nics=[public, interconnect, storage], key_pair=self.args.key_pair,
            metadata={"rac-cluster": self.cluster_name},
        )

    def _asm_volumes(self) -> dict[str, pulumi.Output[str]]:
        ids = {}
        for disk_group, size in self.args.cluster.asm.by_disk_group().items():
            volume = openstack.blockstorage.Volume(
                f"{self.cluster_name}-asm-{disk_group}", name=f"{self.cluster_name}-asm-{disk_group}", size=size,
                volume_type=self.args.asm_volume_type,
                metadata={"rac-cluster": self.cluster_name, "asm-disk-group": disk_group.upper()},
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            ids[disk_group] = volume.id
        return ids

    def _attach_everywhere(self) -> None:
        # Nova races when several multi-attach requests for one volume run at
        # once; chaining every attachment on the previous one serialises them.
        previous: openstack.compute.VolumeAttach | None = None
        for disk_group, volume_id in self.volume_ids.items():
            for node, instance_id in enumerate(self.pool.instance_ids, start=1):
                previous = openstack.compute.VolumeAttach(
                    f"{self.cluster_name}-asm-{disk_group}-node-{node}",
                    instance_id=instance_id, volume_id=volume_id, multiattach=True,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[previous] if previous else None),
                )
