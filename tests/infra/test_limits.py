"""Issue 20, finding 4: routes, ports, rules and instances stay under the provider's limits, at 100 SAMUs too."""

from __future__ import annotations

import collections
from pathlib import Path

from benchmarks.infra_bench import grown_project
from cutover.infra.compliance import check_inputs
from cutover.infra.evaluate import plan_environment
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import check_plan, check_plans, rule_by_id
from cutover.infra.stack import PROVIDER
from tests.infra.conftest import REPO

ROUTE = "openstack:networking/routerRoute:RouterRoute"
DEFAULT = "pulumi:providers:openstack::default"


def limits(plan: Plan) -> list[tuple[str, str]]:
    rule = rule_by_id("limits-hold")
    assert rule is not None
    return [(v.resource, v.message) for v in check_plan(plan, check_inputs(REPO, "production").context, [rule])]


def test_a_router_over_max_routes_fails(production_plan):
    extra = [PlannedResource(ROUTE, f"extra-route-{i}", {"routerId": "national-router.id",
                                                          "destinationCidr": f"10.160.{i}.0/24",
                                                          "nextHop": "10.100.1.200"}, None, (), DEFAULT)
             for i in range(30)]
    found = limits(Plan.of([*production_plan, *extra]))
    assert [resource for resource, _ in found] == ["national-router"]
    assert "max_routes is 30" in found[0][1]


def test_more_address_pairs_than_neutron_allows_fails(production_plan):
    port = production_plan.get("rac-national-node-1-public-port")
    assert port is not None
    pairs = [{"ipAddress": f"10.100.5.{i}"} for i in range(40, 51)]
    wide = PlannedResource(port.type, port.name, {**port.inputs, "allowedAddressPairs": pairs}, port.parent,
                           port.dependencies, port.provider, port.options)
    assert [r for r, _ in limits(Plan.of([wide if r.name == port.name else r for r in production_plan]))] == [
        port.name]


def test_the_national_projects_rules_count_against_the_providers_quota(production_plan, production_provider_plan):
    assert limits(Plan.of([*production_plan, *production_provider_plan])) == []


def test_the_100_samu_plan_passes_every_rule_with_routes_spread_over_transit_routers(tmp_path: Path):
    project = grown_project(tmp_path / "project", 100)
    customer, provider = plan_environment(project, "production"), plan_environment(project, "production", PROVIDER)
    assert len(customer.of_type("cutover:samu:Tenant")) == 100
    context = check_inputs(project, "production").context
    assert check_plans(customer, provider, context) == []
    # Neutron's and Nova's default quotas would not hold it: the provider-side program raises them.
    unraised = {v.message.split(" in ")[0].split(" ", 1)[1] for v in check_plans(customer, None, context)
                if v.rule == "limits-hold"}
    assert {"router", "security_group_rule"} <= unraised
    per_router = collections.Counter(r.inputs["routerId"] for r in customer.of_type(ROUTE))
    assert max(per_router.values()) <= 30 and per_router["national-router.id"] <= 30


def test_jumbo_frames_are_a_declared_provider_requirement(production_plan, production_provider_plan):
    """Issue 20, finding 9: MTU 9000 holds only where the policy declares the provider's fabric carries it."""
    import dataclasses

    rule = rule_by_id("limits-hold")
    assert rule is not None
    both = Plan.of([*production_plan, *production_provider_plan])
    context = check_inputs(REPO, "production").context
    assert context.limits["max_mtu"] == 9000 and check_plan(both, context, [rule]) == []
    undeclared = dataclasses.replace(context, limits={k: v for k, v in context.limits.items() if k != "max_mtu"})
    jumbo = {v.resource for v in check_plan(both, undeclared, [rule])}
    assert jumbo == {"national-interconnect-net", "national-interconnect-b-net", "network-storage-a",
                     "network-storage-b"}
