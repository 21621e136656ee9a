"""A SAMU tenant: its project, network, router, security groups, VPN to its premises, national access.

Traffic between a tenant and the national networks crosses the shared
transit network in both directions: the national router routes the
tenant's network (and its premises) to the tenant router's transit port,
and the tenant router routes the national admin and service networks back
to the national router's transit address. Without the second half, replies
to the SSH and HTTPS the rules allow would leave by the external gateway.

The tenant's project is the provider's (``infra/provider``: creating a Keystone
project needs cloud-admin rights). Everything the tenant owns is created *in*
that project through a provider scoped to it (``tenant_name``), never with
``tenant_id`` set from the national project, which is admin-only too; the
project's id is read from the scoped token (``get_auth_scope``). The tenant router's
port on transit is the provider's too, created in that project at its fixed address:
the tenant is never granted the whole transit network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import (
    SAMU_TAG,
    Ingress,
    IpsecSite,
    add_egress,
    add_ingress,
    add_ipsec_site,
    zone_tags,
)

SIP = (5060, 5061)
RTP = (10000, 20000)
HTTPS = (443, 443)


def transit_port_name(tenant: str) -> str:
    """The name of a tenant router's port on transit: the provider creates it, the tenant reads it by name."""
    return f"{tenant}-transit"


@dataclass(frozen=True)
class NationalAccess:
    """What a tenant needs from the national core (outputs of ``NationalCore``)."""

    region: str
    external_network_id: str
    national_router_id: pulumi.Input[str]
    # The national transit router of this SAMU's shard: it holds the routes back to the SAMU.
    transit_router_id: pulumi.Input[str]
    national_router_transit_address: str
    service_security_group_id: pulumi.Input[str]
    admin_cidr: str
    service_cidr: str
    # The national telephony pool's group (None without a telephony pool).
    telephony_security_group_id: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class SamuTenantArgs:
    code: str
    display_name: str
    cidr: ipaddress.IPv4Network
    transit_address: str
    national: NationalAccess
    vpn_peer: ipaddress.IPv4Address | None = None
    site_cidr: ipaddress.IPv4Network | None = None
    vpn_psk: pulumi.Input[str] | None = None
    dns_nameservers: list[str] | None = None


class SamuTenant(pulumi.ComponentResource):
    """Everything one SAMU owns on the trusted cloud; adding a SAMU adds exactly one of these."""

    project_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]

    def __init__(self, name: str, args: SamuTenantArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:samu:Tenant", name, None, opts)
        self.prefix = name
        self.args = args
        tags = zone_tags("tenant", f"{SAMU_TAG}={args.code}")
        # Credentials come from the environment (OS_* / clouds.yaml), as for the default provider;
        # only the project scope differs. The region is explicit: the policy checks it.
        self.provider = openstack.Provider(
            f"{name}-provider", region=args.national.region, tenant_name=name, opts=pulumi.ResourceOptions(parent=self),
        )
        self.project_id = openstack.identity.get_auth_scope_output(
            name=name, opts=pulumi.InvokeOptions(provider=self.provider)).project_id
        network, subnet = self._network(tags)
        router = self._router(subnet)
        self._join_transit(router)
        self._security_group()
        if args.vpn_peer is not None and args.site_cidr is not None:
            self._vpn(router, subnet)
        self.network_id, self.subnet_id = network.id, subnet.id
        self.register_outputs({"projectId": self.project_id, "networkId": self.network_id, "subnetId": self.subnet_id})

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        """A resource of the tenant's own project."""
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on, provider=self.provider)

    def _national_child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        """A resource of the national project made for this tenant (a route, a share, a rule on a national group)."""
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on)

    def _network(self, tags: list[str]) -> tuple[openstack.networking.Network, openstack.networking.Subnet]:
        network = openstack.networking.Network(
            f"{self.prefix}-net", name=self.prefix, admin_state_up=True, tags=tags,
            opts=self._child(),
        )
        subnet = openstack.networking.Subnet(
            f"{self.prefix}-subnet", name=self.prefix, network_id=network.id,
            cidr=str(self.args.cidr), ip_version=4, enable_dhcp=True,
            dns_nameservers=self.args.dns_nameservers or None, tags=tags, opts=self._child(),
        )
        return network, subnet

    def _router(self, subnet: openstack.networking.Subnet) -> openstack.networking.Router:
        # The external gateway carries the IPsec tunnel to the SAMU's premises.
        router = openstack.networking.Router(
            f"{self.prefix}-router", name=self.prefix, admin_state_up=True,
            external_network_id=self.args.national.external_network_id, opts=self._child(),
        )
        openstack.networking.RouterInterface(
            f"{self.prefix}-router-subnet", router_id=router.id, subnet_id=subnet.id, opts=self._child(),
        )
        return router

    def _join_transit(self, router: openstack.networking.Router) -> None:
        """Reach national services: the tenant's own port on transit, and a route back.

        The port is the provider's doing (``infra/provider``): created in the tenant's project at
        its fixed address, so the tenant is never granted the transit network itself (an RBAC
        share would let it create a port at any free address of it). The tenant router is
        attached to that port, read by name in the tenant's project.
        """
        national, address = self.args.national, self.args.transit_address
        port = openstack.networking.get_port_output(
            name=transit_port_name(self.prefix), opts=pulumi.InvokeOptions(provider=self.provider))
        iface = openstack.networking.RouterInterface(
            f"{self.prefix}-router-transit", router_id=router.id, port_id=port.id, opts=self._child(),
        )
        openstack.networking.RouterRoute(
            f"{self.prefix}-national-route", router_id=national.transit_router_id,
            destination_cidr=str(self.args.cidr), next_hop=address, opts=self._national_child(depends_on=[iface]),
        )
        for zone, cidr in (("admin", national.admin_cidr), ("service", national.service_cidr)):
            openstack.networking.RouterRoute(
                f"{self.prefix}-route-{zone}", router_id=router.id, destination_cidr=cidr,
                next_hop=national.national_router_transit_address, opts=self._child(depends_on=[iface]),
            )
        add_ingress(self, national.service_security_group_id,
                    Ingress(f"{self.prefix}-national-https", "tcp", HTTPS, str(self.args.cidr)))
        if self.args.site_cidr is not None:
            self._telephony_from_premises(str(self.args.site_cidr), address, iface)

    def _telephony_from_premises(self, site: str, transit_address: str,
                                 iface: openstack.networking.RouterInterface) -> None:
        """SIP and RTP from this SAMU's premises to the national telephony pool, and the way back."""
        national = self.args.national
        if national.telephony_security_group_id is None:
            return
        openstack.networking.RouterRoute(
            f"{self.prefix}-premises-route", router_id=national.transit_router_id, destination_cidr=site,
            next_hop=transit_address, opts=self._national_child(depends_on=[iface]),
        )
        for rule in self._telephony_rules(f"{self.prefix}-telephony", site):
            add_ingress(self, national.telephony_security_group_id, rule)
        # The telephony pool also calls the premises (its group has no allow-all egress).
        for rule in self._telephony_rules(f"{self.prefix}-telephony-out", site):
            add_egress(self, national.telephony_security_group_id, rule)

    @staticmethod
    def _telephony_rules(prefix: str, site: str) -> list[Ingress]:
        return [
            Ingress(f"{prefix}-sip-tcp", "tcp", SIP, site),
            Ingress(f"{prefix}-sip-udp", "udp", SIP, site),
            Ingress(f"{prefix}-rtp", "udp", RTP, site),
        ]

    def _security_group(self) -> None:
        group = openstack.networking.SecGroup(
            f"{self.prefix}-sg", name=self.prefix,
            description=f"SAMU {self.args.code}: telephony from its premises, SSH from the national admin network",
            delete_default_rules=True, opts=self._child(),
        )
        rules = [Ingress(f"{self.prefix}-ssh", "tcp", (22, 22), self.args.national.admin_cidr)]
        if self.args.site_cidr is not None:
            rules += self._telephony_rules(self.prefix, str(self.args.site_cidr))
        for rule in rules:
            add_ingress(self, group.id, rule, provider=self.provider)
        # Out (no allow-all): HTTPS to the national services, DNS to the national resolvers, telephony to the premises.
        out = [Ingress(f"{self.prefix}-https-out", "tcp", HTTPS, self.args.national.service_cidr)]
        out += [Ingress(f"{self.prefix}-dns-out-{proto}-{i}", proto, (53, 53), f"{server}/32")
                for i, server in enumerate(self.args.dns_nameservers or [], start=1) for proto in ("udp", "tcp")]
        if self.args.site_cidr is not None:
            out += self._telephony_rules(f"{self.prefix}-out", str(self.args.site_cidr))
        for rule in out:
            add_egress(self, group.id, rule, provider=self.provider)

    def _vpn(self, router: openstack.networking.Router, subnet: openstack.networking.Subnet) -> None:
        add_ipsec_site(self, IpsecSite(
            prefix=self.prefix, router_id=router.id, local_subnet_ids=[subnet.id],
            peer_address=str(self.args.vpn_peer), peer_cidrs=[str(self.args.site_cidr)], psk=self.args.vpn_psk,
            provider=self.provider,
        ))
