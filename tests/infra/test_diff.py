"""infra diff: classification of changes, and the diff a new tenant produces (plan files and git:REF)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cutover.infra.diff import Op, diff_plans, render_markdown
from cutover.infra.evaluate import plan_at_revision, plan_environment
from cutover.infra.plan import Plan, PlannedResource
from cutover.model.tenants import NewTenant, add_tenant

OS = "pulumi:providers:openstack::default"
INSTANCE = "openstack:compute/instance:Instance"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
GROUP = "openstack:networking/secGroup:SecGroup"


def one(type_: str, name: str, parent: str | None = None, **inputs) -> Plan:
    return Plan.of([PlannedResource(type_, name, inputs, parent, (), OS)])


def test_identical_plans_have_no_changes(rehearsal_plan):
    diff = diff_plans(rehearsal_plan, rehearsal_plan)
    assert not diff.has_changes and diff.unchanged == len(rehearsal_plan)


def test_an_instance_image_change_is_a_dangerous_replacement():
    diff = diff_plans(one(INSTANCE, "node", imageName="ol9-a", flavorName="bm"),
                      one(INSTANCE, "node", imageName="ol9-b", flavorName="bm"))
    (change,) = diff.changes
    assert change.op is Op.REPLACE and change.dangerous
    assert [(p.path, p.old, p.new, p.forces_replacement) for p in change.properties] == [
        ("imageName", "ol9-a", "ol9-b", True)]


def test_a_rac_node_replacement_says_so(production_plan):
    old = production_plan
    new = Plan.of(PlannedResource(r.type, r.name, {**r.inputs, "availabilityZone": "fr-central-2"}
                                  if r.name == "rac-national-node-1" else r.inputs, r.parent, r.dependencies,
                                  r.provider, r.options) for r in old)
    (change,) = diff_plans(old, new).changes
    assert change.op is Op.REPLACE and change.dangerous and "RAC node" in change.reason


def test_a_security_group_change_is_an_update():
    diff = diff_plans(one(GROUP, "sg", description="old", tags=["a"]), one(GROUP, "sg", description="new", tags=["a"]))
    (change,) = diff.changes
    assert change.op is Op.UPDATE and not change.dangerous
    assert [p.path for p in change.properties] == ["description"]


def test_a_security_group_rule_change_replaces_the_rule_but_is_not_dangerous():
    # Neutron rules are immutable: the provider deletes and recreates them.
    diff = diff_plans(one(RULE, "r", portRangeMin=22, remoteIpPrefix="10.0.0.0/24"),
                      one(RULE, "r", portRangeMin=22, remoteIpPrefix="10.0.1.0/24"))
    (change,) = diff.changes
    assert change.op is Op.REPLACE and not change.dangerous


def test_nested_property_paths_are_reported():
    old = one(INSTANCE, "i", metadata={"pool": "a"}, networks=[{"port": "p1.id"}])
    new = one(INSTANCE, "i", metadata={"pool": "b"}, networks=[{"port": "p1.id"}, {"port": "p2.id"}])
    (change,) = diff_plans(old, new).changes
    assert [(p.path, p.forces_replacement) for p in change.properties] == [
        ("metadata.pool", False), ("networks[1]", True)]


def test_deleting_a_volume_is_dangerous_and_creating_one_is_not():
    volume = one("openstack:blockstorage/volume:Volume", "v", size=10)
    empty = Plan.of([])
    assert [(c.op, c.dangerous) for c in diff_plans(volume, empty).changes] == [(Op.DELETE, True)]
    assert [(c.op, c.dangerous) for c in diff_plans(empty, volume).changes] == [(Op.CREATE, False)]


def test_markdown_lists_every_change_and_warns_about_danger():
    text = render_markdown(diff_plans(one(INSTANCE, "node", imageName="a"), one(INSTANCE, "node", imageName="b")),
                           old_label="git:main", new_label="plan.json")
    assert "| `+-` replace | `node` |" in text and "Warning: 1 change(s)" in text
    assert "destroys Instance and the data on it" in text


def _new_tenant_resources(plan: Plan, code: str) -> set[str]:
    return {f"samu-{code}"} | {r.name for r in plan.within(f"samu-{code}")}


def test_tenant_add_then_plan_shows_exactly_the_new_tenant_and_diff_lists_only_creates(project_copy):
    before = plan_environment(project_copy, "production")
    add_tenant(project_copy, "production", NewTenant(code="2B", name="Bastia (Haute-Corse)", wave=2))
    after = plan_environment(project_copy, "production")
    diff = diff_plans(before, after)
    assert {c.op for c in diff.changes} == {Op.CREATE}
    assert {c.name for c in diff.changes} == _new_tenant_resources(after, "2B")
    assert after.get("samu-2B-subnet").inputs["cidr"] == "10.140.0.0/24"  # first free /24 of the pool


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_plan_at_a_git_revision_is_the_plan_of_that_commit(project_copy):
    _git(project_copy, "init", "-q")
    _git(project_copy, "add", ".")
    _git(project_copy, "commit", "-q", "-m", "ten SAMUs")
    add_tenant(project_copy, "production", NewTenant(code="971", name="Pointe-à-Pitre (Guadeloupe)", wave=2))
    committed = plan_at_revision(project_copy, "HEAD", "production")
    working = plan_environment(project_copy, "production")
    diff = diff_plans(committed, working)
    assert committed.get("samu-971") is None and working.get("samu-971") is not None
    assert {c.op for c in diff.changes} == {Op.CREATE}
    assert {c.name for c in diff.changes} == _new_tenant_resources(working, "971")
