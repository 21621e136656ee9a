"""Issue 20, finding 8: each class of violation that slipped through `infra check`, as a mutated plan.

Every case starts from the shipped production plans (ours and the provider side's, checked as
`infra check` checks them) and adds or changes one resource; the rule named must catch it.
"""

from __future__ import annotations

from typing import Any

import pytest

from cutover.infra.compliance import check_inputs
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import check_plans
from tests.infra.conftest import REPO

DEFAULT = "pulumi:providers:openstack::default"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
EXTERNAL = "7d2a6b8e-3c61-4f0e-9a55-2f1d0c9e4b10"  # the production inventory's external network


def added(type_: str, logical: str, parent: str | None = None, **inputs: Any) -> PlannedResource:
    return PlannedResource(type_, logical, inputs, parent, (), DEFAULT)


def ingress(name: str, cidr: str) -> PlannedResource:
    return added(RULE, name, direction="ingress", ethertype="IPv4", protocol="tcp", portRangeMin=8443,
                 portRangeMax=8443, remoteIpPrefix=cidr, securityGroupId="national-service-sg.id")


def changed(plan: Plan, name: str, **inputs: Any) -> PlannedResource:
    r = plan.get(name)
    assert r is not None, name
    return PlannedResource(r.type, r.name, {**r.inputs, **inputs}, r.parent, r.dependencies, r.provider, r.options)


def caught(customer: list[PlannedResource], provider: list[PlannedResource], base: Plan,
           base_provider: Plan) -> list[tuple[str, str]]:
    def merge(plan: Plan, extra: list[PlannedResource]) -> Plan:
        names = {r.name for r in extra}
        return Plan.of([*(r for r in plan if r.name not in names), *extra])

    context = check_inputs(REPO, "production").context
    found = check_plans(merge(base, customer), merge(base_provider, provider), context)
    return sorted({(v.rule, v.resource) for v in found})


CASES = {
    "split halves": (lambda p, q: ([ingress("half-1", "0.0.0.0/1"), ingress("half-2", "128.0.0.0/1")], []),
                     [("no-ingress-from-anywhere", "half-1"), ("no-ingress-from-anywhere", "half-2")]),
    "a /2": (lambda p, q: ([ingress("quarter", "64.0.0.0/2")], []), [("no-ingress-from-anywhere", "quarter")]),
    "unnormalised wide prefix": (lambda p, q: ([ingress("host-bits", "8.8.8.8/1")], []),
                                 [("no-ingress-from-anywhere", "host-bits")]),
    "site covering other premises": (
        lambda p, q: ([changed(p, "samu-30-vpn-premises", endpoints=["172.16.0.0/12"])], []),
        None),  # every other SAMU's premises: checked below
    "encrypted-sounding type on a plain backend": (
        lambda p, q: ([added("openstack:blockstorage/volume:Volume", "extra-volume", size=10,
                             volumeType="encrypted-ssd", metadata={"cutover-owner": "x"})],
                      [added("openstack:blockstorage/volumeTypeV3:VolumeTypeV3", "volume-type-encrypted-ssd",
                             name="encrypted-ssd", extraSpecs={"volume_backend_name": "lvm-plain"})]),
        [("volume-encrypted", "extra-volume")]),
    "nova attach outside the rac component": (
        lambda p, q: ([added("openstack:compute/volumeAttach:VolumeAttach", "stray-attach",
                             instanceId="telephony-node-1.id", volumeId="rac-national-db-asm-data-1.id")], []),
        [("asm-on-every-node", "stray-attach")]),
    "rac node port on the external network": (
        lambda p, q: ([added("openstack:networking/port:Port", "rac-node-1-outside", "rac-national",
                             networkId=EXTERNAL)], []),
        [("no-public-address", "rac-node-1-outside")]),
    "route from one tenant to another": (
        lambda p, q: ([added("openstack:networking/routerRoute:RouterRoute", "samu-30-to-13", "samu-30",
                             routerId="samu-30-router.id", destinationCidr="10.140.1.0/24",
                             nextHop="10.100.1.1")], []),
        [("tenant-isolation", "samu-30-to-13")]),
    "national route sending one tenant's network to another": (
        lambda p, q: ([changed(p, "samu-30-national-route", destinationCidr="10.140.1.0/24")], []),
        [("tenant-isolation", "samu-30-national-route")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_class_is_caught(case, production_plan, production_provider_plan):
    mutate, expected = CASES[case]
    customer, provider = mutate(production_plan, production_provider_plan)
    found = caught(customer, provider, production_plan, production_provider_plan)
    if expected is not None:
        assert found == expected
    else:  # samu-30's premises now cover every SAMU's: each overlap, and the telephony rules it opens
        assert {rule for rule, _ in found} == {"tenant-isolation"}
        assert ("tenant-isolation", "samu-30") in found and ("tenant-isolation", "samu-13") in found


def test_the_unmutated_plans_pass(production_plan, production_provider_plan):
    assert caught([], [], production_plan, production_provider_plan) == []
