"""The Data Guard redo path from the legacy platform to the cloud RAC, for the migration period only.

During the migration the legacy RAC (on premises) ships redo to its standby,
the cloud RAC. That needs, and the platform grants nothing wider than:

- an IPsec tunnel from the national router to the legacy datacentre, its
  local side the service network (where the RAC public addresses are), its
  remote side the legacy database networks;
- one security group on the RAC nodes' public ports, with one rule per
  legacy network, to the standby's listener port only.

Everything here sits under one component, so removing ``migration`` from the
inventory after the last wave shows up in a diff as one group of deletes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.common import ROLE_TAG, Ingress, IpsecSite, add_egress, add_ingress, add_ipsec_site
from cutover.model.national import Migration

PSK_KEY = "legacy"  # vpnPresharedKeys["legacy"] in the stack's secret config


@dataclass(frozen=True)
class DataGuardPathArgs:
    migration: Migration
    national_router_id: pulumi.Input[str]
    service_subnet_id: pulumi.Input[str]
    psk: pulumi.Input[str] | None


class DataGuardPath(pulumi.ComponentResource):
    """The tunnel to the legacy datacentre and the narrow redo rule on the RAC nodes."""

    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: DataGuardPathArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cutover:migration:DataGuardPath", name, None, opts)
        spec = args.migration
        group = openstack.networking.SecGroup(
            f"{name}-sg", name=name,
            description=f"Data Guard redo from the legacy platform, port {spec.redo_port}, until {spec.until}",
            tags=[f"{ROLE_TAG}=dataguard-redo", f"cutover-until={spec.until.isoformat()}"], delete_default_rules=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for i, network in enumerate(spec.legacy_networks, start=1):
            add_ingress(self, group.id, Ingress(f"{name}-from-legacy-{i}", "tcp", (spec.redo_port, spec.redo_port),
                                                str(network)))
            # After the switchover the cloud is primary and ships redo back to the legacy standby.
            add_egress(self, group.id, Ingress(f"{name}-to-legacy-{i}", "tcp", (spec.redo_port, spec.redo_port),
                                               str(network)))
        add_ipsec_site(self, IpsecSite(
            prefix=f"{name}-legacy", router_id=args.national_router_id, local_subnet_ids=[args.service_subnet_id],
            peer_address=str(spec.legacy_vpn_peer), peer_cidrs=[str(n) for n in spec.legacy_networks],
            psk=args.psk, peer_label="legacy",
        ))
        self.security_group_id = group.id
        self.register_outputs({"securityGroupId": self.security_group_id})
