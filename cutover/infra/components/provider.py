"""What only the cloud provider's administrators can create, for one environment: the provider-side program.

A SecNumCloud provider gives its customer project-member rights, never cloud
admin. Creating a Keystone project, a flavor or its access list, a volume type
naming a Cinder backend (``volume_backend_name``) or its access list, a quota,
or a resource in another project (``tenant_id``) is admin-only under
OpenStack's default policies. So these live here, in ``infra/provider/``, a
program the provider reviews and runs with its own credentials (or reads as a
request), and the customer stack (``infra/``) only reads them by name
(``get_flavor``, ``get_auth_scope``...). ``infra check`` refuses an admin-only
resource in the customer plan (rule ``customer-rights-only``).

Logical names are ``<kind>-<OpenStack name>`` (``flavor-bm.rac.xl``,
``project-samu-01``), the ids the mock runtime gives the customer's lookups
(``cutover.infra.mockrun``), so a check of both plans follows references across.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import SAMU_TAG, zone_tags
from cutover.infra.components.tenant import transit_port_name
from cutover.model.national import AddressRange, BareMetalFlavor, Storage, allocation_pools

# The Ironic resource class is the only thing Nova schedules a bare-metal flavor on.
STORAGE_MTU = 9000  # iSCSI with jumbo frames: the storage fabric must carry them end to end
STANDARD_RESOURCES_OFF = {"resources:VCPU": "0", "resources:MEMORY_MB": "0", "resources:DISK_GB": "0"}


def lookup_name(kind: str, name: str) -> str:
    """The logical name of a provider-side resource the customer reads by ``name``."""
    return f"{kind}-{name}"


@dataclass(frozen=True)
class Quotas:
    """The national project's quotas: what the customer asks the provider for (Neutron and Nova)."""

    instances: int
    server_groups: int
    server_group_members: int
    routers: int
    ports: int
    security_groups: int
    security_group_rules: int
    subnets: int
    networks: int


@dataclass(frozen=True)
class ProviderGrantsArgs:
    national_project_id: str
    tenant_projects: dict[str, str]  # project name -> description
    flavors: list[BareMetalFlavor]
    storage: Storage
    quotas: Quotas
    region: str | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    # Per storage path (network name), the addresses its DHCP keeps out: the array's portals, the RAC nodes'.
    storage_reserved: dict[str, list[AddressRange]] = field(default_factory=dict)
    # Flavor name -> the Ironic trait it requires: a RAC node's failure domain (a rack of the zone).
    flavor_traits: dict[str, str] = field(default_factory=dict)
    # Project name -> its router's fixed address on the national transit network (named transit_network).
    transit_ports: dict[str, str] = field(default_factory=dict)
    transit_network: str = "national-transit"


class ProviderGrants(pulumi.ComponentResource):
    """Projects, private flavors and their access, the ASM volume type and its access, storage networks, quotas."""

    def __init__(self, name: str, args: ProviderGrantsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:provider:Grants", name, None, opts)
        self.args = args
        for project, description in sorted(args.tenant_projects.items()):
            code = project.removeprefix("samu-")
            created = openstack.identity.Project(
                lookup_name("project", project), name=project, description=description,
                tags=zone_tags("tenant", f"{SAMU_TAG}={code}"), opts=self._child(),
            )
            if project in args.transit_ports:
                self._transit_port(project, code, created, args.transit_ports[project])
        for flavor in args.flavors:
            self._flavor(flavor)
        self._asm_volume_type()
        for path in args.storage.paths:
            self._storage_network(path.network, str(path.cidr))
        self._quotas()
        self.register_outputs({})

    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _flavor(self, spec: BareMetalFlavor) -> None:
        flavor = openstack.compute.Flavor(
            lookup_name("flavor", spec.name), name=spec.name, vcpus=spec.vcpus, ram=spec.ram_mb, disk=spec.disk_gb,
            is_public=False, extra_specs={f"resources:{spec.resource_class}": "1", **STANDARD_RESOURCES_OFF,
                                          **self._trait_spec(spec.name)},
            opts=self._child(),
        )
        # A private flavor is usable (and listed) only by the projects granted access to it.
        openstack.compute.FlavorAccess(
            f"{lookup_name('flavor', spec.name)}-access", flavor_id=flavor.id, tenant_id=self.args.national_project_id,
            opts=self._child(),
        )

    def _trait_spec(self, flavor: str) -> dict[str, str]:
        # Placement schedules the node only on an Ironic node carrying the trait (its rack).
        trait = self.args.flavor_traits.get(flavor)
        return {f"trait:{trait}": "required"} if trait else {}

    def _asm_volume_type(self) -> None:
        storage = self.args.storage
        volume_type = openstack.blockstorage.VolumeTypeV3(
            lookup_name("volume-type", storage.asm_volume_type), name=storage.asm_volume_type,
            description="Oracle ASM disks: multi-attach, on the encrypted backend", is_public=False,
            extra_specs={"multiattach": "<is> True", "volume_backend_name": storage.rac_backend},
            opts=self._child(),
        )
        # Private: only the national project may create volumes of this type.
        openstack.blockstorage.VolumeTypeAccessV3(
            f"{lookup_name('volume-type', storage.asm_volume_type)}-access", volume_type_id=volume_type.id,
            project_id=self.args.national_project_id, opts=self._child(),
        )

    def _transit_port(self, project: str, code: str, created: openstack.identity.Project, address: str) -> None:
        """The tenant router's port on the customer's transit network, in the tenant's project, at its address.

        Creating a port in another project (``tenant_id``) is admin-only: the provider does it, so
        the tenant needs no share of the whole transit network (with one it could take any free
        address there). The customer reads the transit network by name in its national project.
        """
        transit = self.args.transit_network
        network = openstack.networking.get_network_output(name=transit, tenant_id=self.args.national_project_id)
        subnet = openstack.networking.get_subnet_output(name=transit, tenant_id=self.args.national_project_id)
        openstack.networking.Port(
            lookup_name("port", transit_port_name(project)), name=transit_port_name(project), network_id=network.id,
            tenant_id=created.id, admin_state_up=True,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=subnet.id, ip_address=address)],
            description=f"SAMU {code}: its router's port on transit", tags=zone_tags("transit", f"{SAMU_TAG}={code}"),
            opts=self._child(),
        )

    def _storage_network(self, name: str, cidr: str) -> None:
        """A VLAN of the storage fabric, where the array's iSCSI portals are, shared with the national project.

        A provider network (its segment names the physical network): admin-only. The
        bare-metal nodes get a NIC on it through networking-generic-switch (the switch
        port joins the VLAN); jumbo frames end to end are the provider's to confirm.
        """
        network = openstack.networking.Network(
            lookup_name("network", name), name=name, admin_state_up=True, mtu=STORAGE_MTU,
            segments=[openstack.networking.NetworkSegmentArgs(network_type="vlan", physical_network=name)],
            tags=zone_tags("storage"), opts=self._child(),
        )
        reserved = self.args.storage_reserved.get(name, [])
        openstack.networking.Subnet(
            lookup_name("subnet", name), name=name, network_id=network.id, cidr=cidr, ip_version=4,
            enable_dhcp=True, no_gateway=True, tags=zone_tags("storage"),
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(start=start, end=end) for start, end
                              in allocation_pools(ipaddress.IPv4Network(cidr), reserved, gateway=False)] or None,
            opts=self._child(),
        )
        # To the national project only: its RAC nodes plug into it; no other project sees the array.
        openstack.networking.RbacPolicyV2(
            f"{lookup_name('network', name)}-share", action="access_as_shared", object_type="network",
            object_id=network.id, target_tenant=self.args.national_project_id, opts=self._child(),
        )

    def _quotas(self) -> None:
        q, project = self.args.quotas, self.args.national_project_id
        openstack.compute.QuotaSetV2(
            "quota-national-compute", project_id=project, instances=q.instances, server_groups=q.server_groups,
            server_group_members=q.server_group_members, opts=self._child(),
        )
        openstack.networking.QuotaV2(
            "quota-national-network", project_id=project, router=q.routers, port=q.ports,
            security_group=q.security_groups, security_group_rule=q.security_group_rules, subnet=q.subnets,
            network=q.networks, opts=self._child(),
        )
