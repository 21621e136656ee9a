"""Issue 20, finding 2: the customer stack needs no cloud-admin right; the provider-side program holds the rest."""

from __future__ import annotations

from typing import Any

import pytest

from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import ADMIN_ONLY_TYPES, check_plan, rule_by_id
from tests.infra.test_policy_rules import CTX

RULE = rule_by_id("customer-rights-only")
DEFAULT = "pulumi:providers:openstack::default"


def admin_findings(plan: Plan) -> list[tuple[str, str]]:
    assert RULE is not None
    return [(v.resource, v.message) for v in check_plan(plan, CTX, [RULE])]


def test_the_shipped_customer_plans_hold_nothing_admin_only(production_plan, rehearsal_plan):
    assert admin_findings(production_plan) == []
    assert admin_findings(rehearsal_plan) == []


def test_the_provider_plan_holds_projects_flavors_their_access_the_asm_type_and_quotas(production_provider_plan,
                                                                                     production_plan):
    types = production_provider_plan.count_by_type()
    assert types["openstack:identity/project:Project"] == len(production_plan.of_type("cutover:samu:Tenant"))
    # The telephony pool's flavor, and the RAC clusters' per rack (3 for the primary, 2 for the standby).
    assert types["openstack:compute/flavor:Flavor"] == types["openstack:compute/flavorAccess:FlavorAccess"] == 6
    assert types["openstack:blockstorage/volumeTypeV3:VolumeTypeV3"] == 1
    # Finding 9: the private ASM type is granted to the national project.
    access = production_provider_plan.get("volume-type-rac-asm-multiattach-access").inputs
    assert access == {"volumeTypeId": "volume-type-rac-asm-multiattach.id",
                      "projectId": "2c9d4e7a6b1f4c03a8e5d1f0b7a93e64"}
    assert "openstack:networking/quotaV2:QuotaV2" in types and "openstack:compute/quotaSetV2:QuotaSetV2" in types
    # Every admin-only resource is the provider's: the customer's plan reads them by name.
    # The provider program holds admin-only resources, and the storage networks (provider networks: a VLAN
    # segment) with their subnets and their share to the national project.
    storage = {f"{kind}-{name}" for kind in ("network", "subnet") for name in ("storage-a", "storage-b")}
    storage |= {f"network-{name}-share" for name in ("storage-a", "storage-b")}
    # and each tenant router's port on transit, created in the tenant's project (tenant_id: admin-only).
    transit = {r.name for r in production_provider_plan if r.name.startswith("port-samu-")}
    assert len(transit) == 10 and all("tenantId" in production_provider_plan.get(n).inputs for n in transit)
    assert all(r.type in ADMIN_ONLY_TYPES or r.name in storage | transit for r in production_provider_plan
               if not r.is_component)
    assert storage <= {r.name for r in production_provider_plan}


def test_customer_references_resolve_to_provider_resources(production_plan, production_provider_plan):
    both = Plan.of([*production_plan, *production_provider_plan])
    node = both.get("rac-national-db-node-1") or both.get("rac-national-node-1")
    assert node is not None and both.target(node.inputs["flavorId"]).type == "openstack:compute/flavor:Flavor"
    port = both.target(both.get("samu-30-router-transit").inputs["portId"])
    assert port is not None and port.name == "port-samu-30-transit"
    assert both.target(port.inputs["tenantId"]).type == "openstack:identity/project:Project"


@pytest.mark.parametrize("type_,inputs", [
    ("openstack:identity/project:Project", {"name": "samu-99"}),
    ("openstack:compute/flavor:Flavor", {"name": "bm.x", "isPublic": False}),
    ("openstack:compute/flavorAccess:FlavorAccess", {"flavorId": "f.id", "tenantId": "p"}),
    ("openstack:blockstorage/volumeTypeV3:VolumeTypeV3", {"name": "t", "extraSpecs": {"volume_backend_name": "x"}}),
    ("openstack:networking/quotaV2:QuotaV2", {"projectId": "p", "port": 1000}),
    ("openstack:networking/network:Network", {"name": "n", "external": True}),
    ("openstack:networking/network:Network", {"name": "n", "segments": [{"physicalNetwork": "storage"}]}),
    ("openstack:networking/network:Network", {"name": "n", "valueSpecs": {"provider:network_type": "vlan"}}),
    ("openstack:networking/secGroup:SecGroup", {"name": "sg", "tenantId": "another-project"}),
])
def test_an_admin_only_resource_in_the_customer_plan_fails(production_plan, type_: str, inputs: dict[str, Any]):
    injected = Plan.of([*production_plan, PlannedResource(type_, "injected", inputs, None, (), DEFAULT)])
    assert [name for name, _ in admin_findings(injected)] == ["injected"]
