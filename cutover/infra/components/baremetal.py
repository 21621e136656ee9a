"""Bare-metal node pools: Ironic nodes through Nova, kept apart by an anti-affinity group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import NATIONAL_OWNER, OWNER_TAG
from cutover.model.national import BareMetalFlavor


@dataclass(frozen=True)
class Nic:
    """One network interface of every node in a pool.

    ``security_group_ids=None`` turns port security off (RAC interconnect: HAIP
    and multicast addresses cannot be listed in allowed address pairs).
    ``fixed_ips``, when given, has one address per node, in node order.
    """

    label: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]] | None
    fixed_ips: Sequence[str] | None = None
    allowed_addresses: Sequence[str] = ()


@dataclass(frozen=True)
class BareMetalPoolArgs:
    flavor: BareMetalFlavor
    image: str
    nodes: int
    availability_zones: Sequence[str]
    nics: Sequence[Nic]
    protect: bool = False  # database nodes: `pulumi up` refuses to delete them while protected
    key_pair: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # Per node, the flavor it boots with (a failure domain's: RAC); None: the pool's flavor for every node.
    node_flavors: Sequence[str] | None = None
    # Nova's anti-affinity group counts per nova-compute host; with Ironic one nova-compute serves many
    # nodes, so a RAC pool is spread by its flavors' failure-domain traits instead.
    anti_affinity: bool = True


class BareMetalPool(pulumi.ComponentResource):
    """N nodes of the provider's private flavor (read by name), kept apart by an anti-affinity group.

    The flavor and its access are the provider's (``infra/provider``): creating
    them needs cloud-admin rights a customer of a qualified cloud does not have.
    """

    instance_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: BareMetalPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:compute:BareMetalPool", name, None, opts)
        self.pool_name = name
        self.args = args
        group = openstack.compute.ServerGroup(
            f"{name}-anti-affinity", name=f"{name}-anti-affinity", policies="anti-affinity",  # pulumi-openstack 5.x types it as one string
            opts=pulumi.ResourceOptions(parent=self),
        ) if args.anti_affinity else None
        flavors = list(args.node_flavors or [args.flavor.name] * args.nodes)
        ids = {name: self._flavor_id(name) for name in dict.fromkeys(flavors)}
        self.instances = [self._node(i, ids[flavors[i - 1]], group) for i in range(1, args.nodes + 1)]
        self.instance_ids = [instance.id for instance in self.instances]
        self.register_outputs({"instanceIds": self.instance_ids})

    def zone_of(self, node: int) -> str:
        """Nodes go round-robin over the zones: node 1 in the first, node 2 in the second..."""
        zones = self.args.availability_zones
        return zones[(node - 1) % len(zones)]

    def node_name(self, node: int) -> str:
        return f"{self.pool_name}-node-{node}"

    def _flavor_id(self, name: str) -> pulumi.Output[str]:
        # By id: a flavor name is not unique across projects; a private one is
        # listed to the national project only once the provider granted access.
        return openstack.compute.get_flavor_output(name=name, is_public=False).id

    def _port(self, node: int, nic: Nic) -> openstack.networking.Port:
        fixed = nic.fixed_ips[node - 1] if nic.fixed_ips else None
        security_off = nic.security_group_ids is None
        return openstack.networking.Port(
            f"{self.pool_name}-node-{node}-{nic.label}-port",
            name=f"{self.pool_name}-node-{node}-{nic.label}",
            network_id=nic.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=nic.subnet_id, ip_address=fixed)],
            # Port security off is only accepted with no security groups at all.
            port_security_enabled=False if security_off else None,
            no_security_groups=True if security_off else None,
            security_group_ids=None if security_off else list(nic.security_group_ids or []),
            allowed_address_pairs=[openstack.networking.PortAllowedAddressPairArgs(ip_address=a)
                                   for a in nic.allowed_addresses] or None,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _node(self, node: int, flavor_id: pulumi.Output[str],
              group: openstack.compute.ServerGroup | None) -> openstack.compute.Instance:
        ports = [self._port(node, nic) for nic in self.args.nics]
        return openstack.compute.Instance(
            self.node_name(node),
            name=self.node_name(node),
            flavor_id=flavor_id,
            image_name=self.args.image,
            key_pair=self.args.key_pair,
            availability_zone=self.zone_of(node),
            networks=[openstack.compute.InstanceNetworkArgs(port=p.id) for p in ports],
            scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=group.id)] if group else None,
            metadata={OWNER_TAG: NATIONAL_OWNER, **self.args.metadata, "pool": self.pool_name},
            opts=pulumi.ResourceOptions(parent=self, protect=self.args.protect or None),
        )
