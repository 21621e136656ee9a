"""The reviewer's diff: key inputs, resource options, dangerous addresses, impossible changes, groups, Markdown size."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cutover.cli.main import run_cli
from cutover.errors import ExitCode
from cutover.infra.diff import MARKDOWN_BUDGET, Op, diff_plans, render_markdown
from cutover.infra.plan import Plan, PlannedResource, parse_plan
from cutover.model.inventory import all_departement_codes

OS = "pulumi:providers:openstack::default"
PORT = "openstack:networking/port:Port"
NETWORK = "openstack:networking/network:Network"
VOLUME = "openstack:blockstorage/volume:Volume"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
GROUP = "openstack:networking/secGroup:SecGroup"


def res(type_: str, logical: str, parent: str | None = None, options: dict[str, Any] | None = None,
        **inputs: Any) -> PlannedResource:
    provider = None if type_.startswith("cutover:") else OS
    return PlannedResource(type_, logical, inputs, parent, (), provider, options or {})


def network(zone: str) -> PlannedResource:
    return res(NETWORK, f"{zone}-net", tags=[f"cutover-zone={zone}"])


def port(zone: str, ips: list[str], pairs: list[str] = ()) -> PlannedResource:
    inputs: dict[str, Any] = {"networkId": f"{zone}-net.id", "fixedIps": [{"subnetId": "s.id", "ipAddress": ip}
                                                                          for ip in ips]}
    if pairs:
        inputs["allowedAddressPairs"] = [{"ipAddress": a} for a in pairs]
    return res(PORT, "p", **inputs)


def only_change(old: list[PlannedResource], new: list[PlannedResource]):
    (change,) = diff_plans(Plan.of(old), Plan.of(new)).changes
    return change


# -- fixed addresses on database, RAC and service ports (defect 2) ------------------------------------------------


@pytest.mark.parametrize("zone", ["service", "interconnect", "storage"])
def test_moving_a_fixed_ip_of_a_service_or_rac_network_port_is_dangerous(zone):
    change = only_change([network(zone), port(zone, ["10.0.0.16"])], [network(zone), port(zone, ["10.0.0.17"])])
    assert change.op is Op.UPDATE and change.dangerous
    assert "moves fixed address 10.0.0.16" in change.reason


def test_moving_a_fixed_ip_on_a_tenant_network_is_a_plain_update():
    change = only_change([network("tenant"), port("tenant", ["10.0.0.16"])],
                         [network("tenant"), port("tenant", ["10.0.0.17"])])
    assert change.op is Op.UPDATE and not change.dangerous


def test_withdrawing_an_allowed_address_pair_is_dangerous_adding_one_is_not():
    before = [network("service"), port("service", ["10.0.0.16"], ["10.0.0.1", "10.0.0.32"])]
    grown = [network("service"), port("service", ["10.0.0.16"], ["10.0.0.1", "10.0.0.32", "10.0.0.33"])]
    shrunk = [network("service"), port("service", ["10.0.0.16"], ["10.0.0.1"])]
    assert not only_change(before, grown).dangerous
    withdrawn = only_change(before, shrunk)
    assert withdrawn.dangerous and "withdraws allowed address pair 10.0.0.32" in withdrawn.reason


def test_deleting_a_port_of_a_rac_cluster_releases_its_address_dangerously():
    rac = res("cutover:oracle:RacCluster", "rac")
    vip = res(PORT, "rac-vip-4-port", "rac", networkId="service-net.id",
              fixedIps=[{"subnetId": "s.id", "ipAddress": "10.0.0.35"}])
    change = only_change([rac, network("service"), vip], [rac, network("service")])
    assert change.op is Op.DELETE and change.dangerous and "releases fixed address 10.0.0.35" in change.reason


# -- resource options ---------------------------------------------------------------------------------------------


def test_removing_protect_from_a_volume_is_dangerous():
    change = only_change([res(VOLUME, "v", options={"protect": True}, size=10)], [res(VOLUME, "v", size=10)])
    assert change.op is Op.UPDATE and change.dangerous and "removes protect" in change.reason
    assert [(p.path, p.old, p.new) for p in change.properties] == [("(options).protect", True, None)]


def test_removing_protect_from_a_security_group_is_shown_but_not_dangerous():
    change = only_change([res(GROUP, "g", options={"protect": True}, name="g")], [res(GROUP, "g", name="g")])
    assert not change.dangerous and change.properties[0].path == "(options).protect"


@pytest.mark.parametrize("option, value", [("ignoreChanges", ["size"]), ("deleteBeforeReplace", True),
                                           ("retainOnDelete", True)])
def test_every_resource_option_is_compared(option, value):
    change = only_change([res(VOLUME, "v", size=10)], [res(VOLUME, "v", options={option: value}, size=10)])
    assert [(p.path, p.new) for p in change.properties] == [(f"(options).{option}", value)]


def test_plans_record_resource_options_and_keep_them_through_a_plan_file(production_plan):
    volumes = production_plan.of_type(VOLUME)
    assert volumes and all(v.options == {"protect": True} for v in volumes)
    nodes = [r for r in production_plan.within("rac-national-db") if r.type.endswith(":Instance")]
    assert nodes and all(n.options.get("protect") is True for n in nodes)
    assert parse_plan(production_plan.dumps(), source="p.json").get(volumes[0].name).options == {"protect": True}
    assert production_plan.get("national-admin-net").options == {}  # nothing set, nothing recorded


# -- impossible changes -------------------------------------------------------------------------------------------


def test_shrinking_a_volume_is_impossible_and_extending_it_is_not():
    shrink = only_change([res(VOLUME, "v", size=4096)], [res(VOLUME, "v", size=2048)])
    assert shrink.op is Op.UPDATE and shrink.impossible and "Cinder only extends" in shrink.reason
    extend = only_change([res(VOLUME, "v", size=2048)], [res(VOLUME, "v", size=4096)])
    assert not extend.impossible and not extend.dangerous
    diff = diff_plans(Plan.of([res(VOLUME, "v", size=4096)]), Plan.of([res(VOLUME, "v", size=2048)]))
    assert diff.to_json()["summary"]["impossible"] == 1
    assert "Impossible: 1 change(s)" in render_markdown(diff, old_label="a", new_label="b")


# -- creates and deletes show their inputs ------------------------------------------------------------------------


def test_creates_and_deletes_show_the_inputs_that_matter():
    rule = res(RULE, "r", direction="ingress", protocol="udp", portRangeMin=10000, portRangeMax=20000,
               remoteIpPrefix="172.16.4.0/24", securityGroupId="sg.id", description="noise")
    created = only_change([], [rule])
    assert dict(created.inputs) == {"direction": "ingress", "protocol": "udp", "ports": "10000-20000",
                                    "remoteIpPrefix": "172.16.4.0/24"}
    node = res("openstack:compute/instance:Instance", "n", flavorId="f.id", imageName="ol9", availabilityZone="az1",
               keyPair="ops")
    deleted = only_change([node], [])
    assert dict(deleted.inputs) == {"flavorId": "f.id", "imageName": "ol9", "availabilityZone": "az1"}
    assert dict(only_change([], [port("service", ["10.0.0.16"], ["10.0.0.1"])]).inputs) == {
        "fixedIps": ["10.0.0.16"], "allowedAddressPairs": ["10.0.0.1"]}
    text = render_markdown(diff_plans(Plan.of([]), Plan.of([rule])), old_label="a", new_label="b")
    assert "ports=`10000-20000`" in text and "remoteIpPrefix=`172.16.4.0/24`" in text


# -- groups -------------------------------------------------------------------------------------------------------


def _tenant_copy(plan: Plan, source: str, code: str) -> list[PlannedResource]:
    """Every resource of tenant ``source`` renamed to samu-<code>: a stand-in for another SAMU's tenant."""
    target = f"samu-{code}"

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(rf"\b{source}\b", target, value)
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    members = [plan.get(source), *plan.within(source)]
    return [PlannedResource(r.type, rename(r.name), rename(dict(r.inputs)), rename(r.parent) if r.parent else None,
                            tuple(rename(list(r.dependencies))), r.provider, r.options) for r in members]


def hundred_samus(plan: Plan) -> Plan:
    """The 10-SAMU production plan grown to 100 tenants by copying samu-30's resources under 90 new names."""
    codes = [c for c in all_departement_codes() if plan.get(f"samu-{c}") is None][:90]
    extra = [r for code in codes for r in _tenant_copy(plan, "samu-30", code)]
    return Plan.of([*plan, *extra])


def test_changes_group_by_samu_tenant_and_national_component_with_counts(production_plan):
    changed = Plan.of(PlannedResource(r.type, r.name, {**r.inputs, "size": r.inputs["size"] + 1}
                                      if r.name == "rac-national-db-asm-fra-1" else r.inputs, r.parent, r.dependencies,
                                      r.provider, r.options)
                      for r in production_plan if not r.name.startswith("samu-69"))
    diff = diff_plans(production_plan, changed)
    groups = {g.name: g for g in diff.groups()}
    assert set(groups) == {"rac-national-db", "samu-69"}
    assert groups["samu-69"].kind == "samu" and groups["samu-69"].label == "SAMU 69"
    assert groups["samu-69"].counts()["delete"] == len(production_plan.within("samu-69")) + 1
    assert groups["rac-national-db"].kind == "national" and groups["rac-national-db"].count_line() == "1 to update"
    assert [g.name for g in diff.groups()] == ["rac-national-db", "samu-69"]  # national components first
    text = render_markdown(diff, old_label="a", new_label="b")
    assert "| SAMU 69 (`samu-69`) | 0 | 0 | 0 | 37 |" in text and "**total (2 groups)**" in text
    assert diff.to_json()["groups"][1]["summary"]["delete"] == 37


def test_markdown_of_a_10_to_100_samu_change_stays_under_the_budget_and_says_what_it_elided(production_plan):
    big = hundred_samus(production_plan)
    diff = diff_plans(production_plan, big)
    assert len([g for g in diff.groups() if g.kind == "samu"]) == 90 and diff.counts()["create"] > 2000
    text = render_markdown(diff, old_label="git:main", new_label="plan-100.json")
    assert len(text) < MARKDOWN_BUDGET < 65_536
    assert text.count("<details>") == text.count("</details>") >= 1
    elided = re.search(r"the details of (\d+) group\(s\) \((\d+) change\(s\)", text)
    assert elided is not None
    shown = text.count("<details>")
    assert shown + int(elided.group(1)) == len(diff.groups())
    assert text.count("| SAMU ") == 90  # every group still has its count line


def test_the_terminal_diff_prints_a_count_line_per_group_and_a_total(tmp_path, capsys):
    old = Plan.of([res("cutover:samu:Tenant", "samu-30"), res(VOLUME, "v", size=10)])
    new = Plan.of([res(VOLUME, "v", size=5)])
    (tmp_path / "old.json").write_text(old.dumps())
    (tmp_path / "new.json").write_text(new.dumps())
    code = run_cli(["--project-dir", str(tmp_path), "infra", "diff", str(tmp_path / "old.json"),
                    str(tmp_path / "new.json")])
    out = capsys.readouterr().out
    assert code == ExitCode.CHANGES_PRESENT
    assert "SAMU 30 (samu-30): 1 to delete" in out and "(v): 1 to update, 1 impossible" in out
    assert "total: 1 to update, 1 to delete, 1 impossible; 0 unchanged" in out and "IMPOSSIBLE" in out
