"""User-written files (stack config, inventory) are validated before anything is evaluated."""

from __future__ import annotations

import pytest

from cutover.errors import NotFound, ValidationError
from cutover.infra.evaluate import plan_environment
from cutover.infra.stack import load_stack
from cutover.model.national import NationalCore

ALL = "inventories/production/group_vars/all.yml"
STACK = "infra/Pulumi.production.yaml"


def problems_of(excinfo: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, int | None, str | None]]:
    return [(p.file.rsplit("/", 2)[-1], p.line, p.field) for p in excinfo.value.problems]


def test_shipped_stacks_name_their_inventories(project_copy):
    assert load_stack(project_copy, "production").inventory == "production"
    assert load_stack(project_copy, "rehearsal").values["openstack:region"] == "fr-rehearsal"


def test_an_unknown_setting_in_a_stack_file_is_reported_with_its_line(project_copy, edit):
    edit(STACK, lambda text: text + "  cutover-samu:inventroy: production\n")
    with pytest.raises(ValidationError) as caught:
        load_stack(project_copy, "production")
    assert problems_of(caught) == [("Pulumi.production.yaml", 12, "config.cutover-samu:inventroy")]


def test_a_region_that_disagrees_with_the_inventory_is_refused(project_copy, edit):
    edit(STACK, lambda text: text.replace("fr-central", "fr-south"))
    with pytest.raises(ValidationError, match="openstack:region is 'fr-south'"):
        plan_environment(project_copy, "production")


def test_a_stack_naming_a_missing_inventory_is_not_found(project_copy, edit):
    edit(STACK, lambda text: text.replace("inventory: production", "inventory: prod"))
    with pytest.raises(NotFound, match="environment 'prod' not found"):
        plan_environment(project_copy, "production")


def test_an_inventory_without_national_networks_is_refused_with_file_and_line(project_copy, edit):
    def drop_networks(text: str) -> str:
        start = text.index("  networks:")
        return text[:start] + text[text.index("  bastion:"):]

    text = edit(ALL, drop_networks).read_text(encoding="utf-8")
    national_line = text.splitlines().index("cutover_national:") + 2  # the block under the key
    with pytest.raises(ValidationError) as caught:
        plan_environment(project_copy, "production")
    (problem,) = caught.value.problems
    assert "cutover_national.networks is required" in problem.message
    assert problem.file.endswith("group_vars/all.yml") and problem.line == national_line


def test_a_samu_outside_the_tenant_pool_is_refused_with_its_host_vars_line(project_copy, edit):
    edit("inventories/production/host_vars/samu-30.yml", lambda t: t.replace("10.140.4.0/24", "10.141.4.0/24"))
    with pytest.raises(ValidationError) as caught:
        plan_environment(project_copy, "production")
    assert problems_of(caught) == [("samu-30.yml", 3, "samu-30.samu_cidr")]


def test_a_rac_cluster_on_an_unknown_pool_is_refused(project_copy, edit):
    edit(ALL, lambda text: text.replace("pool: rac-national", "pool: rac-natoinal"))
    with pytest.raises(ValidationError) as caught:
        plan_environment(project_copy, "production")
    assert "pool 'rac-natoinal' is not one of baremetal_pools" in str(caught.value)
    assert caught.value.problems[0].file.endswith("all.yml")


@pytest.mark.parametrize("change, message", [
    ({"networks": {"admin": "10.0.0.0/24", "service": "10.0.0.0/22", "transit": "10.0.8.0/24",
                   "interconnect": "10.0.9.0/24", "storage": "10.0.10.0/24"}}, "overlaps"),
    ({"bastion": {"flavor": "f", "image": "i", "key_pair": "k", "operator_sources": ["0.0.0.0/0"]}}, "too wide"),
])
def test_national_core_rules(change, message):
    with pytest.raises(ValueError, match=message):
        NationalCore.model_validate({"region": "r", "availability_zones": ["a"], **change})
