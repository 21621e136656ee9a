"""Plans: what the evaluator records, stable JSON, duplicate names, plan files."""

from __future__ import annotations

import json

import pytest

from cutover.errors import NotFound, ValidationError
from cutover.infra.evaluate import plan_environment
from cutover.infra.plan import DuplicateResourceName, Plan, PlannedResource, parse_plan, plan_from_registrations

STACK = "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s"


def registration(type_: str, logical: str, parent: str = STACK, deps: list[str] | None = None, custom: bool = True,
                 provider: str = "", **inputs) -> dict:
    return {"type": type_, "name": logical, "urn": f"urn:pulumi:s::p::{type_}::{logical}", "custom": custom,
            "parent": parent, "dependencies": deps or [], "provider": provider, "inputs": inputs}


def test_registrations_become_logical_names_parents_dependencies_and_providers():
    comp = registration("cutover:samu:Tenant", "samu-01", custom=False)
    net = registration("openstack:networking/network:Network", "samu-01-net", parent=comp["urn"], name="samu-01")
    sub = registration("openstack:networking/subnet:Subnet", "samu-01-subnet", parent=comp["urn"],
                       deps=[net["urn"]], networkId="samu-01-net.id",
                       provider="urn:pulumi:s::p::pulumi:providers:openstack::national::abc")
    default = registration("pulumi:providers:openstack", "default_5_5_3", custom=True)
    plan = plan_from_registrations([comp, net, sub, default])
    assert [r.name for r in plan] == ["samu-01", "samu-01-net", "samu-01-subnet"]  # default provider dropped
    subnet = plan.get("samu-01-subnet")
    assert subnet.parent == "samu-01" and subnet.dependencies == ("samu-01-net",)
    assert subnet.provider == "pulumi:providers:openstack::national"
    assert plan.get("samu-01-net").provider == "pulumi:providers:openstack::default"
    assert plan.get("samu-01").parent is None and plan.get("samu-01").is_component
    assert plan.target(subnet.inputs["networkId"]).name == "samu-01-net"


def test_duplicate_logical_names_are_an_error():
    twice = [PlannedResource("openstack:networking/network:Network", "n", {}, None, (), "p"),
             PlannedResource("openstack:networking/subnet:Subnet", "n", {}, None, (), "p")]
    with pytest.raises(DuplicateResourceName, match="two resources are named 'n'"):
        Plan.of(twice)


def test_two_evaluations_give_byte_identical_sorted_json(rehearsal_plan, project_copy):
    again = plan_environment(project_copy, "rehearsal")  # a fresh process: nothing left from the first
    assert again.dumps() == rehearsal_plan.dumps()
    names = [r["name"] for r in json.loads(rehearsal_plan.dumps())["resources"]]
    assert names == sorted(names) and len(names) == len(set(names))


def test_plan_file_round_trips(rehearsal_plan):
    assert parse_plan(rehearsal_plan.dumps(), source="p.json").dumps() == rehearsal_plan.dumps()


def test_a_malformed_plan_file_names_the_file_and_field():
    with pytest.raises(ValidationError) as caught:
        parse_plan('{"resources": [{"type": "t"}]}', source="old.json")
    assert caught.value.problems[0].file == "old.json" and caught.value.problems[0].field == "resources.0.name"


def test_an_unknown_environment_is_not_found(project_copy):
    with pytest.raises(NotFound, match="no stack 'staging'"):
        plan_environment(project_copy, "staging")
