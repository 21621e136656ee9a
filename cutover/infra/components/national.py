"""The national core: the networks every SAMU shares, the router, the bastion, storage types."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import ROLE_TAG, Ingress, add_ingress, zone_tags
from cutover.national import Bastion, NationalNetworks, Storage

ROUTED_ZONES = ("admin", "service", "transit")  # interconnect and storage are never routed
ISOLATED_ZONES = ("interconnect", "storage")

ORACLE_LISTENER = (1521, 1521)
ORACLE_ONS = (6200, 6200)
STORAGE_PORTS = {"iscsi": (3260, 3260), "nfs": (2049, 2049)}


@dataclass(frozen=True)
class NationalCoreArgs:
    region: str
    availability_zones: list[str]
    external_network_id: str
    networks: NationalNetworks
    bastion: Bastion
    storage: Storage
    dns_nameservers: list[str] = field(default_factory=list)


class NationalCore(pulumi.ComponentResource):
    """Admin, service, transit, interconnect and storage networks; router; bastion; security groups."""

    network_ids: dict[str, pulumi.Output[str]]
    subnet_ids: dict[str, pulumi.Output[str]]
    router_id: pulumi.Output[str]
    security_group_ids: dict[str, pulumi.Output[str]]
    asm_volume_type: pulumi.Output[str]

    def __init__(self, name: str, args: NationalCoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:national:Core", name, None, opts)
        self.args = args
        self.network_ids, self.subnet_ids = {}, {}
        for zone, cidr in args.networks.by_zone().items():
            self._network(zone, str(cidr))
        self.router_id = self._router()
        self.security_group_ids = self._security_groups()
        self._bastion()
        self.asm_volume_type = self._asm_volume_type()
        self.register_outputs({
            "networkIds": self.network_ids,
            "subnetIds": self.subnet_ids,
            "routerId": self.router_id,
            "securityGroupIds": self.security_group_ids,
            "asmVolumeType": self.asm_volume_type,
        })

    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _network(self, zone: str, cidr: str) -> None:
        network = openstack.networking.Network(
            f"national-{zone}-net", name=f"national-{zone}", admin_state_up=True,
            tags=zone_tags(zone), opts=self._child(),
        )
        subnet = openstack.networking.Subnet(
            f"national-{zone}-subnet", name=f"national-{zone}", network_id=network.id, cidr=cidr, ip_version=4,
            enable_dhcp=True, no_gateway=zone in ISOLATED_ZONES,
            dns_nameservers=self.args.dns_nameservers or None, tags=zone_tags(zone), opts=self._child(),
        )
        self.network_ids[zone] = network.id
        self.subnet_ids[zone] = subnet.id

    def _router(self) -> pulumi.Output[str]:
        router = openstack.networking.Router(
            "national-router", name="national", admin_state_up=True,
            external_network_id=self.args.external_network_id, opts=self._child(),
        )
        for zone in ROUTED_ZONES:
            openstack.networking.RouterInterface(
                f"national-router-{zone}", router_id=router.id, subnet_id=self.subnet_ids[zone], opts=self._child(),
            )
        return router.id

    def _group(self, key: str, description: str) -> openstack.networking.SecGroup:
        return openstack.networking.SecGroup(
            f"national-{key}-sg", name=f"national-{key}", description=description,
            tags=[f"{ROLE_TAG}={key}"], opts=self._child(),
        )

    def _security_groups(self) -> dict[str, pulumi.Output[str]]:
        nets = self.args.networks
        bastion = self._group("bastion", "SSH from the operators' networks to the bastion, nothing else")
        for i, source in enumerate(self.args.bastion.operator_sources, start=1):
            add_ingress(self, bastion.id, Ingress(f"national-bastion-ssh-{i}", "tcp", (22, 22), str(source)))
        admin = self._group("admin", "SSH from the bastion only")
        add_ingress(self, admin.id, Ingress("national-admin-ssh", "tcp", (22, 22), source_group_id=bastion.id))
        service = self._group("service", "Oracle listener and ONS inside the service network")
        add_ingress(self, service.id, Ingress("national-service-listener", "tcp", ORACLE_LISTENER, str(nets.service)))
        add_ingress(self, service.id, Ingress("national-service-ons", "tcp", ORACLE_ONS, str(nets.service)))
        storage = self._group("storage", "iSCSI and NFS inside the storage network")
        for proto, ports in STORAGE_PORTS.items():
            add_ingress(self, storage.id, Ingress(f"national-storage-{proto}", "tcp", ports, str(nets.storage)))
        return {"bastion": bastion.id, "admin": admin.id, "service": service.id, "storage": storage.id}

    def _bastion(self) -> None:
        spec = self.args.bastion
        port = openstack.networking.Port(
            "national-bastion-port", network_id=self.network_ids["admin"],
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=self.subnet_ids["admin"])],
            security_group_ids=[self.security_group_ids["bastion"]], opts=self._child(),
        )
        openstack.compute.Instance(
            "national-bastion", name="national-bastion", flavor_name=spec.flavor, image_name=spec.image,
            key_pair=spec.key_pair, availability_zone=self.args.availability_zones[0],
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)], opts=self._child(),
        )

    def _asm_volume_type(self) -> pulumi.Output[str]:
        # Volume has no `multiattach` argument: sharing comes from the type's extra spec.
        volume_type = openstack.blockstorage.VolumeTypeV3(
            "national-asm-volume-type", name=self.args.storage.asm_volume_type,
            description="Oracle ASM disks: multi-attach, on the encrypted backend", is_public=False,
            extra_specs={"multiattach": "<is> True", "volume_backend_name": self.args.storage.encrypted_backend},
            opts=self._child(),
        )
        return volume_type.name
