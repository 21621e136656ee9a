"""Small helpers the components share: tags and security-group rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack

ZONE_TAG = "cutover-zone"  # read by the policy rules: which network zone a network belongs to
SAMU_TAG = "cutover-samu"
ROLE_TAG = "cutover-role"  # on security groups: "bastion" marks the one SSH may enter through
# Instances and volumes name who answers for them (policy rule owner-tagged); the national
# platform team owns what no SAMU owns. Volumes take no tags, so both carry it as metadata.
OWNER_TAG = "cutover-owner"
NATIONAL_OWNER = "national-platform"


def zone_tags(zone: str, *extra: str) -> list[str]:
    return [f"{ZONE_TAG}={zone}", *extra]


@dataclass(frozen=True)
class Ingress:
    """One ingress rule: a protocol, a port range and where it may come from."""

    name: str
    protocol: str
    ports: tuple[int, int] | None
    source_cidr: pulumi.Input[str] | None = None
    source_group_id: pulumi.Input[str] | None = None


def add_ingress(
    owner: pulumi.Resource,
    security_group_id: pulumi.Input[str],
    rule: Ingress,
    *,
    provider: pulumi.ProviderResource | None = None,
) -> openstack.networking.SecGroupRule:
    return _add_rule(owner, security_group_id, rule, "ingress", provider)


def add_egress(
    owner: pulumi.Resource,
    security_group_id: pulumi.Input[str],
    rule: Ingress,
    *,
    provider: pulumi.ProviderResource | None = None,
) -> openstack.networking.SecGroupRule:
    """One egress rule (``rule.source_cidr`` is the destination): the groups delete Neutron's allow-all egress."""
    return _add_rule(owner, security_group_id, rule, "egress", provider)


def _add_rule(owner: pulumi.Resource, security_group_id: pulumi.Input[str], rule: Ingress, direction: str,
              provider: pulumi.ProviderResource | None) -> openstack.networking.SecGroupRule:
    """``rule`` in ``direction``; an empty protocol is any protocol (Neutron's, left unset)."""
    low, high = rule.ports if rule.ports else (None, None)
    return openstack.networking.SecGroupRule(
        rule.name,
        direction=direction,
        ethertype="IPv4",
        protocol=rule.protocol or None,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=rule.source_cidr,
        remote_group_id=rule.source_group_id,
        security_group_id=security_group_id,
        description=rule.name,
        opts=pulumi.ResourceOptions(parent=owner, provider=provider),
    )


@dataclass(frozen=True)
class IpsecSite:
    """An IPsec site-to-site connection from a Neutron router to a remote gateway.

    ``prefix`` names every resource (``<prefix>-ike``, ``-ipsec``, ``-vpn``,
    ``-vpn-local``, ``-vpn-premises``, ``-vpn-site``); ``local_subnet_ids`` are
    subnets attached to the router (Neutron VPNaaS accepts only those as local
    endpoints); ``peer_cidrs`` the networks behind the remote gateway.
    """

    prefix: str
    router_id: pulumi.Input[str]
    local_subnet_ids: list[pulumi.Input[str]]
    peer_address: str
    peer_cidrs: list[str]
    psk: pulumi.Input[str] | None
    # A tenant's VPN is created in the tenant's project, through its project-scoped provider.
    provider: pulumi.ProviderResource | None = None
    peer_label: str = "premises"


def add_ipsec_site(owner: pulumi.Resource, site: IpsecSite) -> openstack.vpnaas.SiteConnection:
    """IKEv2, AES-256/SHA-256, PFS group 14, one-hour lifetimes, dead-peer detection."""
    prefix = site.prefix
    child = pulumi.ResourceOptions(parent=owner, provider=site.provider)
    lifetime: dict[str, Any] = {"units": "seconds", "value": 3600}
    ike = openstack.vpnaas.IkePolicy(
        f"{prefix}-ike", name=f"{prefix}-ike", ike_version="v2",
        encryption_algorithm="aes-256", auth_algorithm="sha256", pfs="group14",
        lifetimes=[openstack.vpnaas.IkePolicyLifetimeArgs(**lifetime)], opts=child,
    )
    ipsec = openstack.vpnaas.IpSecPolicy(
        f"{prefix}-ipsec", name=f"{prefix}-ipsec", encryption_algorithm="aes-256",
        auth_algorithm="sha256", pfs="group14", transform_protocol="esp", encapsulation_mode="tunnel",
        lifetimes=[openstack.vpnaas.IpSecPolicyLifetimeArgs(**lifetime)], opts=child,
    )
    service = openstack.vpnaas.Service(
        f"{prefix}-vpn", name=prefix, router_id=site.router_id, opts=child,
    )
    local = openstack.vpnaas.EndpointGroup(
        f"{prefix}-vpn-local", name=f"{prefix}-local", type="subnet",
        endpoints=site.local_subnet_ids, opts=child,
    )
    peer = openstack.vpnaas.EndpointGroup(
        f"{prefix}-vpn-{site.peer_label}", name=f"{prefix}-{site.peer_label}", type="cidr",
        endpoints=site.peer_cidrs, opts=child,
    )
    return openstack.vpnaas.SiteConnection(
        f"{prefix}-vpn-site", name=f"{prefix}-{site.peer_label}",
        ikepolicy_id=ike.id, ipsecpolicy_id=ipsec.id, vpnservice_id=service.id,
        local_ep_group_id=local.id, peer_ep_group_id=peer.id,
        peer_address=site.peer_address, peer_id=site.peer_address, psk=site.psk,
        dpds=[openstack.vpnaas.SiteConnectionDpdArgs(action="restart", interval=30, timeout=120)],
        opts=child,
    )
