"""Small helpers the components share: tags and security-group rules."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

ZONE_TAG = "cutover-zone"  # read by the policy rules: which network zone a network belongs to
SAMU_TAG = "cutover-samu"
ROLE_TAG = "cutover-role"  # on security groups: "bastion" marks the one SSH may enter through


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
    tenant_id: pulumi.Input[str] | None = None,
) -> openstack.networking.SecGroupRule:
    low, high = rule.ports if rule.ports else (None, None)
    return openstack.networking.SecGroupRule(
        rule.name,
        direction="ingress",
        ethertype="IPv4",
        protocol=rule.protocol,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=rule.source_cidr,
        remote_group_id=rule.source_group_id,
        security_group_id=security_group_id,
        tenant_id=tenant_id,
        description=rule.name,
        opts=pulumi.ResourceOptions(parent=owner),
    )
