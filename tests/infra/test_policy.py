"""Every policy rule has a compliant and a violating case; the shipped environments pass them all."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cutover.infra.compliance import environment_region
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import RULES, SHARED_RULES, PolicyContext, check_plan, check_plans
from cutover.infra.policyfile import load_policy, policy_context
from tests.infra.conftest import REPO

OS = "pulumi:providers:openstack::default"
CTX = PolicyContext(
    region="fr-central",
    availability_zones=frozenset({"az1", "az2"}),
    admin_networks=(ipaddress.IPv4Network("10.100.0.0/24"),),
    operator_sources=(ipaddress.IPv4Network("192.0.2.0/28"),),
    encrypted_backends=frozenset({"ceph-luks"}),
)


def res(type_: str, logical: str, parent: str | None = None, deps: tuple[str, ...] = (), **inputs: Any) -> PlannedResource:
    short = {"volume": "openstack:blockstorage/volume:Volume",
             "vtype": "openstack:blockstorage/volumeTypeV3:VolumeTypeV3",
             "instance": "openstack:compute/instance:Instance", "group": "openstack:compute/serverGroup:ServerGroup",
             "attach": "openstack:compute/volumeAttach:VolumeAttach", "net": "openstack:networking/network:Network",
             "subnet": "openstack:networking/subnet:Subnet", "port": "openstack:networking/port:Port",
             "fip": "openstack:networking/floatingIp:FloatingIp", "sg": "openstack:networking/secGroup:SecGroup",
             "rule": "openstack:networking/secGroupRule:SecGroupRule"}
    if type_ in ("instance", "volume"):
        inputs.setdefault("metadata", {"cutover-owner": "national-platform"})  # rule owner-tagged
    if type_ in short:
        return PlannedResource(short[type_], logical, inputs, parent, deps, OS)
    return PlannedResource(type_, logical, inputs, parent, deps, None)  # a component


def rule_ids(plan: Plan) -> list[str]:
    return [v.rule for v in check_plan(plan, CTX, SHARED_RULES)]


def ssh_rule(name: str, group: str = "admin-sg", **source: Any) -> PlannedResource:
    return res("rule", name, direction="ingress", protocol="tcp", portRangeMin=22, portRangeMax=22,
               securityGroupId=f"{group}.id", **source)


# -- volume-encrypted (SecNumCloud 10.1) ----------------------------------------

ENCRYPTED_TYPE = res("vtype", "vt", name="asm", extraSpecs={"volume_backend_name": "ceph-luks",
                                                             "multiattach": "<is> True"})


def test_volume_on_an_encrypted_backend_passes():
    assert rule_ids(Plan.of([ENCRYPTED_TYPE, res("volume", "v", volumeType="asm", size=1)])) == []


@pytest.mark.parametrize("volume_type, backend", [(None, None), ("unknown", None), ("plain", "ceph-plain")])
def test_volume_without_an_encrypted_type_is_a_violation(volume_type, backend):
    plain = res("vtype", "vt-plain", name="plain", extraSpecs={"volume_backend_name": backend})
    inputs = {"size": 1} | ({"volumeType": volume_type} if volume_type else {})
    violations = check_plan(Plan.of([plain, res("volume", "v", **inputs)]), CTX, SHARED_RULES)
    assert [(v.rule, v.clause, v.resource) for v in violations] == [("volume-encrypted", "SecNumCloud 3.2 §10.1", "v")]


# -- no-public-address (SecNumCloud 13.2) ------------------------------------------


def _network_with_floating_ip(zone: str) -> Plan:
    return Plan.of([
        res("net", "n", tags=[f"cutover-zone={zone}"]),
        res("port", "p", networkId="n.id"),
        res("fip", "f", pool="public", portId="p.id"),
    ])


def test_floating_ip_on_the_admin_network_is_allowed():
    assert rule_ids(_network_with_floating_ip("admin")) == []


@pytest.mark.parametrize("zone", ["service", "interconnect", "storage"])
def test_floating_ip_on_a_data_network_is_a_violation(zone):
    violations = check_plan(_network_with_floating_ip(zone), CTX, SHARED_RULES)
    assert [(v.rule, v.resource) for v in violations] == [("no-public-address", "f")]
    assert zone in violations[0].message


def test_storage_network_marked_external_is_a_violation():
    plan = Plan.of([res("net", "n", tags=["cutover-zone=storage"], external=True)])
    assert rule_ids(plan) == ["no-public-address"]


# -- admin-from-bastion (SecNumCloud 9.6, 13.2.e) -------------------------------------

BASTION_SG = res("sg", "bastion-sg", tags=["cutover-role=bastion"], deleteDefaultRules=True)
ADMIN_SG = res("sg", "admin-sg", tags=["cutover-role=admin"], deleteDefaultRules=True)


@pytest.mark.parametrize("source", [{"remoteGroupId": "bastion-sg.id"}, {"remoteIpPrefix": "10.100.0.128/25"}])
def test_ssh_from_the_bastion_or_admin_network_passes(source):
    assert rule_ids(Plan.of([BASTION_SG, ADMIN_SG, ssh_rule("r", **source)])) == []


@pytest.mark.parametrize("source, from_anywhere", [({}, True), ({"remoteIpPrefix": "0.0.0.0/0"}, True),
                                                   ({"remoteIpPrefix": "10.140.1.0/24"}, False),
                                                   ({"remoteGroupId": "admin-sg.id"}, False)])
def test_ssh_from_elsewhere_is_a_violation(source, from_anywhere):
    violations = check_plan(Plan.of([BASTION_SG, ADMIN_SG, ssh_rule("r", **source)]), CTX, SHARED_RULES)
    expected = [("admin-from-bastion", "r")] + ([("no-ingress-from-anywhere", "r")] if from_anywhere else [])
    assert [(v.rule, v.resource) for v in violations] == expected


def test_an_all_ports_rule_counts_as_opening_ssh_but_a_udp_rule_does_not():
    all_ports = res("rule", "all", direction="ingress", securityGroupId="admin-sg.id", remoteIpPrefix="10.1.0.0/16")
    udp = res("rule", "udp", direction="ingress", protocol="udp", portRangeMin=1, portRangeMax=65535,
              securityGroupId="admin-sg.id", remoteIpPrefix="10.1.0.0/16")
    # every port includes the database listener too
    assert rule_ids(Plan.of([ADMIN_SG, all_ports, udp])) == ["admin-from-bastion", "database-reach"]


def test_ssh_to_the_bastion_only_from_the_operators_networks():
    ok = ssh_rule("ok", group="bastion-sg", remoteIpPrefix="192.0.2.0/28")
    wide = ssh_rule("wide", group="bastion-sg", remoteIpPrefix="0.0.0.0/0")
    found = [(v.rule, v.resource) for v in check_plan(Plan.of([BASTION_SG, ok, wide]), CTX, SHARED_RULES)]
    assert found == [("admin-from-bastion", "wide"), ("no-ingress-from-anywhere", "wide")]


# -- tenant-isolation (SecNumCloud 9.7) -----------------------------------------------


def _two_tenants(*rules: PlannedResource) -> Plan:
    return Plan.of([
        res("cutover:samu:Tenant", "samu-01"), res("cutover:samu:Tenant", "samu-02"),
        res("subnet", "s1", parent="samu-01", cidr="10.140.1.0/24"),
        res("subnet", "s2", parent="samu-02", cidr="10.140.2.0/24"),
        res("sg", "sg1", parent="samu-01", deleteDefaultRules=True), res("sg", "sg2", parent="samu-02", deleteDefaultRules=True),
        *rules,
    ])


def test_tenant_rule_from_its_own_network_or_premises_passes():
    own = res("rule", "own", parent="samu-01", direction="ingress", protocol="udp", portRangeMin=5060,
              portRangeMax=5061, securityGroupId="sg1.id", remoteIpPrefix="10.140.1.0/24")
    premises = res("rule", "premises", parent="samu-01", direction="ingress", protocol="udp", portRangeMin=5060,
                   portRangeMax=5061, securityGroupId="sg1.id", remoteIpPrefix="172.16.1.0/24")
    assert rule_ids(_two_tenants(own, premises)) == []


@pytest.mark.parametrize("source", [{"remoteIpPrefix": "10.140.2.0/25"}, {"remoteIpPrefix": "10.140.0.0/16"},
                                    {"remoteGroupId": "sg2.id"}])
def test_tenant_rule_open_to_another_tenant_is_a_violation(source):
    rule = res("rule", "leak", parent="samu-01", direction="ingress", protocol="tcp", portRangeMin=443,
               portRangeMax=443, securityGroupId="sg1.id", **source)
    violations = check_plan(_two_tenants(rule), CTX, SHARED_RULES)
    assert [(v.rule, v.resource) for v in violations] == [("tenant-isolation", "leak")]
    assert "samu-02" in violations[0].message


# -- allowed-zones (SecNumCloud 19.2) -------------------------------------------------


def test_instances_in_the_region_zones_pass():
    assert rule_ids(Plan.of([res("instance", "i", availabilityZone="az2", region="fr-central")])) == []


@pytest.mark.parametrize("inputs", [{"availabilityZone": "eu-west-1a"}, {"region": "us-east"}])
def test_a_zone_or_region_outside_the_qualified_one_is_a_violation(inputs):
    violations = check_plan(Plan.of([res("volume", "v", volumeType="asm", **inputs), ENCRYPTED_TYPE]), CTX, SHARED_RULES)
    assert [(v.rule, v.clause) for v in violations] == [("allowed-zones", "SecNumCloud 3.2 §19.2")]


# -- RAC: anti-affinity and ASM on every node (HDS) ------------------------------------


def _standby(zone: str | None = "az2") -> list[PlannedResource]:
    """The Data Guard standby of cluster "rac": two nodes, one per rack, in ``zone`` (None: no standby)."""
    if zone is None:
        return []
    return [res("cutover:oracle:RacCluster", "dr"), res("cutover:compute:BareMetalPool", "drpool", parent="dr"),
            *[res("openstack:compute/flavor:Flavor", f"g{i}", extraSpecs={f"trait:CUSTOM_RACK_{rack}": "required"})
              for i, rack in ((1, "D"), (2, "E"))],
            *[res("instance", f"d{i}", parent="drpool", availabilityZone=zone, flavorId=f"g{i}.id",
                  metadata={"cutover-owner": "national-platform", "dataguard-standby-of": "rac"}) for i in (1, 2)]]


def _rac(zones: tuple[str, str] = ("az1", "az1"), racks: tuple[str | None, str | None] = ("A", "B"),
         attachments: list[tuple[str, str, tuple[str, ...]]] | None = None, standby: str | None = "az2") -> Plan:
    if attachments is None:  # the compliant chain: v1-n1 -> v1-n2 -> v2-n1 -> v2-n2
        attachments = [("v1", "n1", ()), ("v1", "n2", ("a-v1-n1",)), ("v2", "n1", ("a-v1-n2",)),
                       ("v2", "n2", ("a-v2-n1",))]
    return Plan.of([
        ENCRYPTED_TYPE,
        res("cutover:oracle:RacCluster", "rac"), res("cutover:compute:BareMetalPool", "pool", parent="rac"),
        # One flavor per rack, requiring the rack's trait (the provider's; here in the plan).
        *[res("openstack:compute/flavor:Flavor", f"f{i}", extraSpecs={"resources:CUSTOM_BM": "1",
              **({f"trait:CUSTOM_RACK_{rack}": "required"} if rack else {})}) for i, rack in enumerate(racks, start=1)],
        *[res("instance", f"n{i}", parent="pool", availabilityZone=zone, flavorId=f"f{i}.id")
          for i, zone in enumerate(zones, start=1)],
        *_standby(standby),
        res("volume", "v1", parent="rac", volumeType="asm"), res("volume", "v2", parent="rac", volumeType="asm"),
        # Cinder attachments (iSCSI exports): bare-metal nodes cannot take a Nova attachment.
        *[PlannedResource("openstack:blockstorage/volumeAttach:VolumeAttach", f"a-{v}-{n}",
                          {"volumeId": f"{v}.id", "hostName": n, "initiator": f"iqn.2026-01.test:{n}",
                           "multipath": True}, "rac", deps, OS) for v, n, deps in attachments],
    ])


def rac_rule_ids(plan: Plan) -> list[str]:
    """The rules of these tests; the storage paths and layout are tests/infra/test_rac_storage_reach.py's."""
    return [rule for rule in rule_ids(plan) if rule != "rac-storage-reachable"]


def test_a_rac_in_one_zone_over_two_racks_with_chained_attachments_passes():
    assert rac_rule_ids(_rac()) == []


def test_rac_nodes_over_two_zones_is_a_stretched_cluster():
    violations = [v for v in check_plan(_rac(zones=("az1", "az3")), CTX, SHARED_RULES) if v.rule == "rac-placement"]
    assert [v.resource for v in violations] == ["rac"] and "stretched cluster" in violations[0].message


@pytest.mark.parametrize("standby, message", [(None, "no Data Guard standby"), ("az1", "would not survive the zone")])
def test_a_primary_without_a_standby_in_another_zone_is_a_violation(standby, message):
    violations = [v for v in check_plan(_rac(standby=standby), CTX, SHARED_RULES) if v.rule == "rac-placement"]
    assert [v.resource for v in violations] == ["rac"] and message in violations[0].message


@pytest.mark.parametrize("racks, resources, message", [
    (("A", "A"), ["rac"], "{'CUSTOM_RACK_A': 2}"),              # both nodes may land in one rack
    (("A", None), ["n2", "rac"], "requires no failure-domain trait"),   # nothing keeps node 2 apart
])
def test_rac_nodes_not_kept_apart_by_rack_traits_is_a_violation(racks, resources, message):
    violations = [v for v in check_plan(_rac(racks=racks), CTX, SHARED_RULES) if v.rule == "rac-placement"]
    assert [v.resource for v in violations] == resources and message in violations[0].message


def test_an_asm_volume_missing_on_a_node_is_a_violation():
    plan = _rac(attachments=[("v1", "n1", ()), ("v1", "n2", ("a-v1-n1",)), ("v2", "n1", ("a-v1-n2",))])
    violations = [v for v in check_plan(plan, CTX, SHARED_RULES) if v.rule != "rac-storage-reachable"]
    assert [(v.rule, v.resource) for v in violations] == [("asm-on-every-node", "v2")]
    assert "n2" in violations[0].message


def test_parallel_asm_attachments_are_a_violation():
    plan = _rac(attachments=[("v1", "n1", ()), ("v1", "n2", ()), ("v2", "n1", ("a-v1-n2",)),
                             ("v2", "n2", ("a-v1-n2",))])
    messages = [v.message for v in check_plan(plan, CTX, SHARED_RULES) if v.rule == "asm-on-every-node"]
    assert len(messages) == 2
    assert any("start at once" in m for m in messages)
    assert any("in parallel after a-v1-n2" in m for m in messages)


def test_asm_volumes_on_a_type_without_multiattach_is_a_violation():
    single = res("vtype", "vt", name="asm", extraSpecs={"volume_backend_name": "ceph-luks"})
    plan = Plan.of([single if r.name == "vt" else r for r in _rac()])
    assert rac_rule_ids(plan) == ["asm-on-every-node", "asm-on-every-node"]


# -- the shipped environments ---------------------------------------------------------


def test_every_rule_names_its_clause():
    assert len({r.id for r in RULES}) == len(RULES) == 23
    assert all(("SecNumCloud" in r.clause or "HDS" in r.clause) and r.fix for r in RULES)


@pytest.mark.parametrize("env", ["rehearsal", "production"])
def test_shipped_environments_pass_every_rule(env, request):
    plan, provider = request.getfixturevalue(f"{env}_plan"), request.getfixturevalue(f"{env}_provider_plan")
    policy = load_policy(REPO / "infra" / "policy.yaml")
    assert check_plans(plan, provider, policy_context(policy, environment_region(REPO, env))) == []


def test_the_bastion_is_reachable_through_a_floating_ip_and_only_from_the_operators(production_plan):
    """Issue 20, finding 9: the bastion as modelled can be reached (a floating IP), by the operators only."""
    fip = production_plan.get("national-bastion-fip")
    assert fip is not None and fip.inputs["portId"] == "national-bastion-port.id"
    ssh = [r for r in production_plan.of_type("openstack:networking/secGroupRule:SecGroupRule")
           if r.inputs["securityGroupId"] == "national-bastion-sg.id" and r.inputs["direction"] == "ingress"]
    assert [r.inputs["remoteIpPrefix"] for r in ssh] == ["192.0.2.0/28"]
    without = Plan.of([r for r in production_plan if r.name != "national-bastion-fip"])
    found = [(v.resource, v.message) for v in check_plan(without, CTX) if v.rule == "admin-from-bastion"]
    assert found and found[0][0] == "national-bastion-sg" and "no floating IP" in found[0][1]


def test_groups_keep_no_default_allow_all_egress():
    """Issue 20, finding 9: every group deletes Neutron's allow-all egress and names where it may go."""
    out = res("rule", "out", direction="egress", protocol="tcp", portRangeMin=443, portRangeMax=443,
              remoteIpPrefix="10.100.4.0/22", securityGroupId="g.id")
    explicit = Plan.of([res("sg", "g", deleteDefaultRules=True), out])
    assert [v for v in check_plan(explicit, CTX) if v.rule == "explicit-egress"] == []
    anywhere = res("rule", "anywhere", direction="egress", securityGroupId="g.id")
    default = Plan.of([res("sg", "g"), out, anywhere])
    assert sorted(v.resource for v in check_plan(default, CTX) if v.rule == "explicit-egress") == ["anywhere", "g"]


def test_the_shipped_groups_have_explicit_egress(production_plan):
    groups = production_plan.of_type("openstack:networking/secGroup:SecGroup")
    assert groups and all(g.inputs.get("deleteDefaultRules") is True for g in groups)
    egress = {r.name for r in production_plan.of_type("openstack:networking/secGroupRule:SecGroupRule")
              if r.inputs["direction"] == "egress"}
    assert {"national-bastion-ssh-out-1", "national-service-out", "samu-30-https-out",
            "samu-30-telephony-out-sip-udp"} <= egress
