"""Issue 20, left undone 2: no tenant is granted the whole transit network.

The provider program creates each tenant router's transit port in the tenant's project at its
fixed address; the customer stack attaches the tenant router to it by name. A share of the transit
network to a tenant (it could then take any free address of it) breaks rule tenant-isolation,
which names the share.
"""

from __future__ import annotations

import pytest

from tests.infra.test_injection_classes import DEFAULT, added, caught

RBAC = "openstack:networking/rbacPolicyV2:RbacPolicyV2"


def share(name: str, network: str, project: str, action: str = "access_as_shared"):
    return added(RBAC, name, "samu-30", action=action, objectType="network", objectId=f"{network}.id",
                 targetTenant=f"{project}.id")


CASES = {
    "transit shared with a tenant, in the customer's plan": (
        lambda p, q: ([share("samu-30-transit-share", "national-transit-net", "project-samu-30")], []),
        [("tenant-isolation", "samu-30-transit-share")]),
    "transit shared with a tenant by the provider": (
        lambda p, q: ([], [share("provider-transit-share", "national-transit-net", "project-samu-13")]),
        [("tenant-isolation", "provider-transit-share")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tenant_granted_transit_is_caught_by_name(case, production_plan, production_provider_plan):
    mutate, expected = CASES[case]
    customer, provider = mutate(production_plan, production_provider_plan)
    assert caught(customer, provider, production_plan, production_provider_plan) == expected


def test_each_tenant_router_is_attached_to_its_own_port_made_by_the_provider(production_plan,
                                                                            production_provider_plan):
    assert not [r for r in [*production_plan, *production_provider_plan]
                if r.type == RBAC and "transit" in str(r.inputs.get("objectId"))]
    for tenant in [r.name for r in production_plan if r.type == "cutover:samu:Tenant"]:
        iface = production_plan.get(f"{tenant}-router-transit")
        port = production_provider_plan.get(f"port-{tenant}-transit")
        assert iface.inputs["portId"] == f"{port.name}.id" and port.provider == DEFAULT
        assert port.inputs["tenantId"] == f"project-{tenant}.id"
        # The fixed address the national routes point at (outside the transit subnet's DHCP pools).
        address = port.inputs["fixedIps"][0]["ipAddress"]
        assert production_plan.get(f"{tenant}-national-route").inputs["nextHop"] == address
