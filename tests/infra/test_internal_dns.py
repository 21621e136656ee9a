"""Issue 20, left undone 1: the SCAN zone is internal and served by the provider's declared resolvers.

The zone is created in the provider's internal Designate pool (its scheduler's attribute filter),
under a suffix never delegated publicly, and every subnet names only the region's internal
resolvers. Each mutated plan starts from the shipped production plans; rule dns-internal names
the resource at fault.
"""

from __future__ import annotations

import dataclasses

import pytest

from cutover.infra.compliance import check_inputs
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import check_plans
from tests.infra.conftest import REPO
from tests.infra.test_injection_classes import caught, changed


def renamed(plan: Plan, resource: str, name: str) -> PlannedResource:
    r = changed(plan, resource)
    return PlannedResource(r.type, r.name, {**r.inputs, "name": name}, r.parent, r.dependencies, r.provider, r.options)


ZONE, RECORD = "national-dns-zone", "rac-national-db-scan-dns"

CASES = {
    "a publicly delegated suffix": (lambda p: [renamed(p, ZONE, "db.production.samu.fr.")], ZONE),
    "outside the provider's internal pool": (lambda p: [changed(p, ZONE, attributes=None)], ZONE),
    "another pool's attributes": (lambda p: [changed(p, ZONE, attributes={"visibility": "public"})], ZONE),
    "a SCAN record in a zone outside the plan": (lambda p: [changed(p, RECORD, zoneId="some-public-zone")], RECORD),
    "a public resolver on the RAC public network": (
        lambda p: [changed(p, "national-service-subnet", dnsNameservers=["8.8.8.8", "198.51.100.53"])],
        "national-service-subnet"),
    "a tenant subnet with no DNS server": (lambda p: [changed(p, "samu-30-subnet", dnsNameservers=None)],
                                           "samu-30-subnet"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_way_the_scan_zone_stops_being_internal_is_caught(case, production_plan, production_provider_plan):
    mutate, culprit = CASES[case]
    assert caught(mutate(production_plan), [], production_plan, production_provider_plan) == [
        ("dns-internal", culprit)]


def test_a_zone_with_no_declared_resolvers_is_caught(production_plan, production_provider_plan):
    context = dataclasses.replace(check_inputs(REPO, "production").context,
                                  dns_resolvers={})
    found = check_plans(production_plan, production_provider_plan, context)
    dns = {(v.rule, v.resource) for v in found if v.rule == "dns-internal"}
    assert ("dns-internal", ZONE) in dns
    assert any("no internal resolvers" in v.message for v in found if v.resource == ZONE)


def test_the_shipped_zone_is_internal_and_every_subnet_names_the_internal_resolvers(production_plan,
                                                                                    rehearsal_plan):
    zone = production_plan.get(ZONE).inputs
    assert zone["name"].endswith(".internal.") and zone["attributes"] == {"visibility": "internal"}
    for plan, resolvers in ((production_plan, ["198.51.100.53", "198.51.100.54"]),
                            (rehearsal_plan, ["198.51.100.153", "198.51.100.154"])):
        for name in ("national-service-subnet", "national-admin-subnet", "samu-30-subnet"):
            subnet = plan.get(name)
            assert subnet is not None and subnet.inputs["dnsNameservers"] == resolvers, name
        # The RAC nodes (service group) may query them, and nothing else outside their network.
        out = {r.inputs["remoteIpPrefix"] for r in plan.of_type("openstack:networking/secGroupRule:SecGroupRule")
               if r.name.startswith("national-service-dns-out-")}
        assert out == {f"{a}/32" for a in resolvers}
