"""A SAMU tenant: its project, network, router, security groups, VPN to its premises, national access."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import SAMU_TAG, Ingress, add_ingress, zone_tags

SIP = (5060, 5061)
RTP = (10000, 20000)
HTTPS = (443, 443)


@dataclass(frozen=True)
class NationalAccess:
    """What a tenant needs from the national core (outputs of ``NationalCore``)."""

    external_network_id: str
    transit_network_id: pulumi.Input[str]
    transit_subnet_id: pulumi.Input[str]
    national_router_id: pulumi.Input[str]
    service_security_group_id: pulumi.Input[str]
    admin_cidr: str


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
        project = openstack.identity.Project(
            f"{name}-project", name=name, description=f"SAMU {args.code} {args.display_name}", tags=tags,
            opts=self._child(),
        )
        self.project_id = project.id
        network, subnet = self._network(tags)
        router = self._router(subnet)
        self._join_transit(router)
        self._security_group()
        if args.vpn_peer is not None and args.site_cidr is not None:
            self._vpn(router, subnet)
        self.network_id, self.subnet_id = network.id, subnet.id
        self.register_outputs({"projectId": self.project_id, "networkId": self.network_id, "subnetId": self.subnet_id})

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on)

    def _network(self, tags: list[str]) -> tuple[openstack.networking.Network, openstack.networking.Subnet]:
        network = openstack.networking.Network(
            f"{self.prefix}-net", name=self.prefix, tenant_id=self.project_id, admin_state_up=True, tags=tags,
            opts=self._child(),
        )
        subnet = openstack.networking.Subnet(
            f"{self.prefix}-subnet", name=self.prefix, network_id=network.id, tenant_id=self.project_id,
            cidr=str(self.args.cidr), ip_version=4, enable_dhcp=True,
            dns_nameservers=self.args.dns_nameservers or None, tags=tags, opts=self._child(),
        )
        return network, subnet

    def _router(self, subnet: openstack.networking.Subnet) -> openstack.networking.Router:
        # The external gateway carries the IPsec tunnel to the SAMU's premises.
        router = openstack.networking.Router(
            f"{self.prefix}-router", name=self.prefix, tenant_id=self.project_id, admin_state_up=True,
            external_network_id=self.args.national.external_network_id, opts=self._child(),
        )
        openstack.networking.RouterInterface(
            f"{self.prefix}-router-subnet", router_id=router.id, subnet_id=subnet.id, opts=self._child(),
        )
        return router

    def _join_transit(self, router: openstack.networking.Router) -> None:
        """Reach national services: a port on the shared transit network, and a route back."""
        national, address = self.args.national, self.args.transit_address
        share = openstack.networking.RbacPolicyV2(
            f"{self.prefix}-transit-share", action="access_as_shared", object_type="network",
            object_id=national.transit_network_id, target_tenant=self.project_id, opts=self._child(),
        )
        port = openstack.networking.Port(
            f"{self.prefix}-transit-port", name=f"{self.prefix}-transit", network_id=national.transit_network_id,
            tenant_id=self.project_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=national.transit_subnet_id, ip_address=address)],
            opts=self._child(depends_on=[share]),
        )
        openstack.networking.RouterInterface(
            f"{self.prefix}-router-transit", router_id=router.id, port_id=port.id, opts=self._child(),
        )
        openstack.networking.RouterRoute(
            f"{self.prefix}-national-route", router_id=national.national_router_id,
            destination_cidr=str(self.args.cidr), next_hop=address, opts=self._child(depends_on=[port]),
        )
        add_ingress(self, national.service_security_group_id,
                    Ingress(f"{self.prefix}-national-https", "tcp", HTTPS, str(self.args.cidr)))

    def _security_group(self) -> None:
        group = openstack.networking.SecGroup(
            f"{self.prefix}-sg", name=self.prefix, tenant_id=self.project_id,
            description=f"SAMU {self.args.code}: telephony from its premises, SSH from the national admin network",
            opts=self._child(),
        )
        rules = [Ingress(f"{self.prefix}-ssh", "tcp", (22, 22), self.args.national.admin_cidr)]
        site = self.args.site_cidr
        if site is not None:
            rules += [
                Ingress(f"{self.prefix}-sip-tcp", "tcp", SIP, str(site)),
                Ingress(f"{self.prefix}-sip-udp", "udp", SIP, str(site)),
                Ingress(f"{self.prefix}-rtp", "udp", RTP, str(site)),
            ]
        for rule in rules:
            add_ingress(self, group.id, rule, tenant_id=self.project_id)

    def _vpn(self, router: openstack.networking.Router, subnet: openstack.networking.Subnet) -> None:
        tenant = self.project_id
        lifetime: dict[str, Any] = {"units": "seconds", "value": 3600}
        ike = openstack.vpnaas.IkePolicy(
            f"{self.prefix}-ike", name=f"{self.prefix}-ike", tenant_id=tenant, ike_version="v2",
            encryption_algorithm="aes-256", auth_algorithm="sha256", pfs="group14",
            lifetimes=[openstack.vpnaas.IkePolicyLifetimeArgs(**lifetime)], opts=self._child(),
        )
        ipsec = openstack.vpnaas.IpSecPolicy(
            f"{self.prefix}-ipsec", name=f"{self.prefix}-ipsec", tenant_id=tenant, encryption_algorithm="aes-256",
            auth_algorithm="sha256", pfs="group14", transform_protocol="esp", encapsulation_mode="tunnel",
            lifetimes=[openstack.vpnaas.IpSecPolicyLifetimeArgs(**lifetime)], opts=self._child(),
        )
        service = openstack.vpnaas.Service(
            f"{self.prefix}-vpn", name=self.prefix, tenant_id=tenant, router_id=router.id, opts=self._child(),
        )
        local = openstack.vpnaas.EndpointGroup(
            f"{self.prefix}-vpn-local", name=f"{self.prefix}-local", tenant_id=tenant, type="subnet",
            endpoints=[subnet.id], opts=self._child(),
        )
        peer = openstack.vpnaas.EndpointGroup(
            f"{self.prefix}-vpn-premises", name=f"{self.prefix}-premises", tenant_id=tenant, type="cidr",
            endpoints=[str(self.args.site_cidr)], opts=self._child(),
        )
        openstack.vpnaas.SiteConnection(
            f"{self.prefix}-vpn-site", name=f"{self.prefix}-premises", tenant_id=tenant,
            ikepolicy_id=ike.id, ipsecpolicy_id=ipsec.id, vpnservice_id=service.id,
            local_ep_group_id=local.id, peer_ep_group_id=peer.id,
            peer_address=str(self.args.vpn_peer), peer_id=str(self.args.vpn_peer), psk=self.args.vpn_psk,
            dpds=[openstack.vpnaas.SiteConnectionDpdArgs(action="restart", interval=30, timeout=120)],
            opts=self._child(),
        )
