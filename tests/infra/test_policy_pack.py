"""The CrossGuard pack: the same rules as `infra check`, called through pulumi-policy's own types.

No Pulumi CLI here, so the engine's side is played by building the objects it
hands a stack policy (``PolicyResource`` with ids or preview unknowns and
property dependencies, props behind pulumi-policy's unknown-checking proxy)
from a real plan; the pack's validation functions are then called directly.
"""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
from pulumi_policy import EnforcementLevel, StackValidationArgs
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyProviderResource, PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from cutover.infra.crossguard import pack_policies, plan_from_policy_resources
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import RULES
from tests.infra.conftest import REPO, copy_project
from tests.infra.test_check_cli import INJECTED

TODAY = dt.date(2026, 11, 30)


def engine_resources(plan: Plan, *, preview: bool, region: str = "fr-central") -> list[PolicyResource]:
    """What the engine hands a stack policy for ``plan``: ids after an update, unknowns in a preview."""
    if region != "fr-central":  # the tenants' explicit providers follow the stack's region too
        plan = Plan.of([r if r.type != "pulumi:providers:openstack" else
                        PlannedResource(r.type, r.name, {**r.inputs, "region": region}, r.parent, r.dependencies,
                                        r.provider, r.options) for r in plan])
    providers = {}  # the default provider, and each tenant's project-scoped one, all in ``region``
    for r in plan:
        if r.provider and r.provider not in providers:
            type_, name = r.provider.split("::")
            providers[r.provider] = PolicyProviderResource(
                type_, {"region": region}, f"urn:pulumi:production::cutover-samu::{type_}::{name}", name)
    objects = {r.name: PolicyResource(r.type, {}, f"urn:pulumi:production::cutover-samu::{r.type}::{r.name}", r.name,
                                      _options(r), providers.get(r.provider or ""), None, [], {}) for r in plan}
    for r in plan:
        engine = objects[r.name]
        engine.parent = objects.get(r.parent) if r.parent else None
        engine.dependencies = [objects[d] for d in r.dependencies]
        props: dict[str, Any] = {}
        for key, value in r.inputs.items():
            found: list[PolicyResource] = []
            props[key] = _engine_value(value, plan, objects, found, preview)
            if found:
                engine.property_dependencies[key] = found
        if not preview:
            props["id"] = f"uuid-{r.name}"
        engine.props = unknown_checking_proxy(props)
    return list(objects.values())


def _options(resource: PlannedResource) -> PolicyResourceOptions:
    options = resource.options
    return PolicyResourceOptions(bool(options.get("protect")), list(options.get("ignoreChanges", [])),
                                 options.get("deleteBeforeReplace"), [], PolicyCustomTimeouts(0, 0, 0), [])


def _engine_value(value: Any, plan: Plan, objects: dict[str, PolicyResource], found: list[PolicyResource],
                  preview: bool) -> Any:
    if isinstance(value, dict):
        return {k: _engine_value(v, plan, objects, found, preview) for k, v in value.items()}
    if isinstance(value, list):
        return [_engine_value(v, plan, objects, found, preview) for v in value]
    target = plan.target(value)
    if target is None:
        return value
    found.append(objects[target.name])
    return UNKNOWN_STRING_VALUE if preview else f"uuid-{target.name}"


def run_pack(resources: list[PolicyResource], project: Path = REPO) -> list[tuple[str, str, str | None]]:
    reported: list[tuple[str, str, str | None]] = []
    for policy in pack_policies(project, today=TODAY):
        policy.validate(StackValidationArgs(resources), lambda message, urn=None, p=policy.name:
                        reported.append((p, message, urn)))
    return reported


def with_injected(plan: Plan) -> Plan:
    extra = [PlannedResource(type_, name, inputs, None, (),
                             None if type_.startswith("pulumi:providers:") else "pulumi:providers:openstack::default")
             for name, (type_, inputs, _) in INJECTED.items()]
    return Plan.of([*plan, *extra])


def test_the_pack_file_serves_one_mandatory_policy_per_rule_of_infra_check(monkeypatch):
    served: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: served.update(kwargs))
    runpy.run_path(str(REPO / "infra" / "policy-pack" / "__main__.py"), run_name="__main__")
    assert served["name"] == "cutover-secnumcloud-hds"
    assert [p.name for p in served["policies"]] == [rule.id for rule in RULES]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in served["policies"])
    assert all(rule.clause in p.description for p, rule in zip(served["policies"], RULES))
    assert (REPO / "infra" / "policy-pack" / "PulumiPolicy.yaml").is_file()


@pytest.mark.parametrize("preview", [False, True], ids=["after-update", "preview"])
def test_the_engines_resources_become_the_same_plan(production_plan, preview):
    plan, urns = plan_from_policy_resources(engine_resources(production_plan, preview=preview))
    expected = {r.name: r.to_json() for r in production_plan}
    rebuilt = {r.name: r.to_json() for r in plan}
    for name, resource in rebuilt.items():
        resource["inputs"].pop("id", None)
        assert resource == expected[name], name
    assert set(rebuilt) == set(expected)
    assert urns["national-bastion"].endswith("::national-bastion")


@pytest.mark.parametrize("preview", [False, True], ids=["after-update", "preview"])
def test_the_shipped_production_stack_passes_the_pack(production_plan, preview):
    assert run_pack(engine_resources(production_plan, preview=preview)) == []


def test_each_injected_violation_is_reported_by_its_policy_on_its_resource(production_plan):
    reported = run_pack(engine_resources(with_injected(production_plan), preview=True))
    caught = {(policy, urn.rsplit("::", 1)[-1]) for policy, _, urn in reported if urn}
    # A stack policy sees secrets decrypted, so the pack checks credentials in the sources instead (below).
    expected = {(rule, name) for name, (_, _, rule) in INJECTED.items() if rule != "no-credential-literal"}
    # The pack sees the customer's stack alone: without the provider's raised quotas, the two injected
    # instances take the national project past Nova's default 10 (the shipped plan has exactly 10).
    assert caught - expected == {("limits-hold", "telephony-node-4")}
    assert expected <= caught
    assert all("SecNumCloud" in message or "HDS" in message for _, message, _ in reported)


def test_the_pack_reads_credentials_in_the_stack_files_and_the_suppressions_of_its_repository(tmp_path,
                                                                                            production_plan):
    project = copy_project(tmp_path / "p")
    stack = project / "infra" / "Pulumi.production.yaml"
    stack.write_text(stack.read_text() + "  openstack:password: hunter2\n")
    (project / "infra" / "policy-suppressions.yaml").write_text(
        "suppressions:\n  - {rule: owner-tagged, resource: inj-unowned, reason: the test of the pack's suppressions, "
        "expires: 2027-01-31}\n")
    (project / "infra" / "policy.yaml").write_text((REPO / "infra" / "policy.yaml").read_text())
    reported = run_pack(engine_resources(with_injected(production_plan), preview=False), project)
    policies = {policy for policy, _, _ in reported}
    assert "no-credential-literal" in policies and "owner-tagged" not in policies
    [credential] = [message for policy, message, _ in reported if policy == "no-credential-literal"]
    assert "infra/Pulumi.production.yaml" in credential


def test_the_region_comes_from_the_openstack_provider(production_plan):
    reported = run_pack(engine_resources(production_plan, preview=False, region="fr-rehearsal"))
    # Production's zones and DNS resolvers are not those of the rehearsal region.
    assert {policy for policy, _, _ in reported} == {"allowed-zones", "dns-internal"}
