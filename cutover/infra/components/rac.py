"""Oracle RAC clusters: bare-metal nodes, their networks, fixed VIP/SCAN addresses, SCAN DNS, shared ASM disks.

The nodes are Ironic instances, and Nova's ironic driver cannot attach a
volume (the Nova feature support matrix lists attach, detach and extend as
missing for Ironic). So the ASM disks are LUNs of the provider's storage array
(a Cinder iSCSI backend), reached over the provider's two storage networks: each
node has one NIC on each (two paths), and a Cinder attachment per LUN and node
(``blockstorage.VolumeAttach``) names the node's initiator, so the array maps
the LUN to it; the node logs in on both paths, multipaths and lays the disks out
for ASM itself (``playbooks/rac_storage.yml``, inventory group ``rac_nodes``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.baremetal import BareMetalPool, BareMetalPoolArgs, Nic
from cutover.infra.components.common import NATIONAL_OWNER, OWNER_TAG
from cutover.model.national import AsmDisk, DnsZone, NationalNetworks, Storage, private_address, rac_addresses
from cutover.model.national import BareMetalPool as PoolSpec
from cutover.model.national import RacCluster as RacSpec

# Volume metadata the policy reads (rule rac-storage-reachable) and the playbook lays out.
ASM_DISK_GROUP, ASM_FAILURE_GROUP, ASM_VOTING = "asm-disk-group", "asm-failure-group", "asm-voting"
STANDBY_OF = "dataguard-standby-of"  # on a standby cluster's nodes: the primary cluster it protects


@dataclass(frozen=True)
class RacNetworks:
    """Where the cluster's networks are, and the groups its ports carry."""

    public_network_id: pulumi.Input[str]
    public_subnet_id: pulumi.Input[str]
    # Two for Oracle HAIP, in order; (network id, subnet id) each.
    interconnects: list[tuple[pulumi.Input[str], pulumi.Input[str]]]
    # The provider's storage networks, one per path: (network id, subnet id) each, in Storage.paths order.
    storage_paths: list[tuple[pulumi.Input[str], pulumi.Input[str]]]
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
    node_flavors: list[str] | None = None  # per node: its failure domain's flavor (NationalCore.rac_flavors)


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
        # One NIC per storage path: losing a switch, a NIC or a network leaves the other path (multipath).
        storage = [Nic(path.network, network_id, subnet_id, nets.storage_security_group_ids,
                       fixed_ips=self._private_ips(path.cidr))
                   for path, (network_id, subnet_id) in zip(self.args.storage.paths, nets.storage_paths, strict=True)]
        return BareMetalPoolArgs(
            flavor=pool.flavor, image=pool.image, nodes=pool.nodes, availability_zones=self.args.availability_zones,
            nics=[public, *interconnects, *storage], key_pair=self.args.key_pair,
            protect=True,
            metadata={"rac-cluster": self.cluster_name,
                      **({STANDBY_OF: self.args.cluster.standby_of} if self.args.cluster.standby_of else {})},
            node_flavors=self.args.node_flavors, anti_affinity=False,
        )

    def storage_addresses(self) -> list[str]:
        """Each node's address on the first storage path: the address its Cinder attachments name."""
        return self._private_ips(self.args.storage.paths[0].cidr)

    def asm_disks(self) -> list[AsmDisk]:
        return self.args.cluster.asm.disks()

    def _asm_volumes(self) -> dict[str, pulumi.Output[str]]:
        ids = {}
        for disk in self.asm_disks():
            volume = openstack.blockstorage.Volume(
                f"{self.cluster_name}-asm-{disk.name}", name=f"{self.cluster_name}-asm-{disk.name}",
                size=disk.size_gb, volume_type=self.args.asm_volume_type,
                # The zone's array: a standby's disks must not share the primary's.
                availability_zone=self.args.availability_zones[0],
                metadata={OWNER_TAG: NATIONAL_OWNER, "rac-cluster": self.cluster_name,
                          ASM_DISK_GROUP: disk.disk_group.upper(), ASM_FAILURE_GROUP: disk.failure_group.upper(),
                          ASM_VOTING: "true" if disk.voting else "false"},
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            ids[disk.name] = volume.id
        return ids

    def asm_layout(self) -> pulumi.Output[list[dict[str, object]]]:
        """What playbooks/rac_storage.yml lays out: each disk, its group, failure group and iSCSI target.

        Secret (the connection info may carry CHAP secrets): the stack exports it,
        ``pulumi stack output racAsmDisks --show-secrets``.
        """
        host = self.pool.node_name(1)

        def entry(disk: AsmDisk) -> Callable[[object], dict[str, object]]:
            def with_connection(data: object) -> dict[str, object]:
                return {"name": disk.name, "disk_group": disk.disk_group.upper(),
                        "failure_group": disk.failure_group.upper(), "voting": disk.voting, "size_gb": disk.size_gb,
                        "connection": data}
            return with_connection

        return pulumi.Output.secret(pulumi.Output.all(*[
            self.exports[f"{disk.name}/{host}"].data.apply(entry(disk)) for disk in self.asm_disks()]))

    def _export_everywhere(self) -> dict[str, openstack.blockstorage.VolumeAttach]:
        # Some Cinder drivers update a volume's export (target ACLs, host
        # mappings) non-atomically; chaining every attachment on the previous
        # one serialises them, at the cost of a few seconds per attachment.
        previous: openstack.blockstorage.VolumeAttach | None = None
        exports = {}
        storage_ips = self.storage_addresses()
        for disk_name, volume_id in self.volume_ids.items():
            for node, storage_ip in enumerate(storage_ips, start=1):
                host = self.pool.node_name(node)
                previous = openstack.blockstorage.VolumeAttach(
                    f"{self.cluster_name}-asm-{disk_name}-node-{node}",
                    volume_id=volume_id, host_name=host, initiator=self.args.storage.initiator(host),
                    ip_address=storage_ip, multipath=True, attach_mode="rw", os_type="linux2", platform="x86_64",
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[previous] if previous else None),
                )
                exports[f"{disk_name}/{host}"] = previous
        return exports
