"""RAC storage on bare metal (the asm-on-every-node rule) and the national address layout (pure, no Pulumi)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import check_plan
from cutover.model.national import NationalCore, allocation_pools, rac_addresses
from tests.infra.test_policy import CTX, ENCRYPTED_TYPE, res

EXPORT = "openstack:blockstorage/volumeAttach:VolumeAttach"
OS = "pulumi:providers:openstack::default"


def _cluster(*extra: PlannedResource) -> list[PlannedResource]:
    return [
        ENCRYPTED_TYPE, res("cutover:oracle:RacCluster", "rac"),
        res("cutover:compute:BareMetalPool", "pool", parent="rac"),
        res("group", "g", parent="pool", policies="anti-affinity"),
        *[res("instance", f"n{i}", parent="pool", name=f"n{i}", availabilityZone=f"az{i}",
              schedulerHints=[{"group": "g.id"}]) for i in (1, 2)],
        res("volume", "v1", parent="rac", volumeType="asm"), *extra,
    ]


def export(node: str, deps: tuple[str, ...] = (), **overrides: Any) -> PlannedResource:
    inputs = {"volumeId": "v1.id", "hostName": node, "initiator": f"iqn.2026-01.test:{node}", "multipath": True,
              "attachMode": "rw", **overrides}
    return PlannedResource(EXPORT, f"x-{node}", inputs, "rac", deps, OS)


def asm_findings(plan: Plan) -> list[tuple[str, str]]:
    return [(v.resource, v.message) for v in check_plan(plan, CTX) if v.rule == "asm-on-every-node"]


def test_iscsi_exports_to_every_node_in_one_chain_pass():
    assert asm_findings(Plan.of(_cluster(export("n1"), export("n2", ("x-n1",))))) == []


def test_a_nova_attachment_on_a_bare_metal_rac_node_is_a_violation():
    nova = res("attach", "a-n1", parent="rac", volumeId="v1.id", instanceId="n1.id", multiattach=True)
    findings = asm_findings(Plan.of(_cluster(export("n1"), export("n2", ("x-n1",)), nova)))
    assert [name for name, _ in findings] == ["a-n1"]
    assert "Nova's ironic driver cannot attach volumes" in findings[0][1]


@pytest.mark.parametrize("overrides", [{"multipath": False}, {"initiator": None}, {"attachMode": "ro"}])
def test_an_export_without_initiator_multipath_or_write_access_does_not_count(overrides):
    findings = asm_findings(Plan.of(_cluster(export("n1"), export("n2", ("x-n1",), **overrides))))
    assert findings == [("v1", "not exported (iSCSI initiator, multipath, read-write) to RAC node n2")]


# -- the address layout ---------------------------------------------------------------------------------------------


def test_each_role_keeps_its_offset_whatever_the_node_count():
    block = ipaddress.IPv4Network("10.100.5.0/26")
    three, four = rac_addresses(block, 3), rac_addresses(block, 4)
    assert three.scan == four.scan == ("10.100.5.1", "10.100.5.2", "10.100.5.3")
    assert four.nodes[:3] == three.nodes == ("10.100.5.16", "10.100.5.17", "10.100.5.18")
    assert four.vips[:3] == three.vips and four.vips[3] == "10.100.5.35"


def test_allocation_pools_leave_out_the_gateway_and_every_reserved_range():
    net = ipaddress.IPv4Network("10.0.0.0/24")
    a = ipaddress.IPv4Address
    assert allocation_pools(net, [(a("10.0.0.16"), a("10.0.0.31"))], gateway=True) == [
        ("10.0.0.2", "10.0.0.15"), ("10.0.0.32", "10.0.0.254")]
    assert allocation_pools(net, [(a("10.0.0.1"), a("10.0.0.9")), (a("10.0.0.200"), a("10.0.0.254"))],
                            gateway=False) == [("10.0.0.10", "10.0.0.199")]


ASM = {"disk_groups": [{"name": "data", "luns": 2, "lun_gb": 1},
                       {"name": "ocr", "luns": 3, "lun_gb": 1, "redundancy": "normal", "voting": True}]}


RACKS = ["CUSTOM_RACK_A", "CUSTOM_RACK_B"]
# db-a's Data Guard standby, in zone b (every primary has one).
STANDBY = {"name": "db-b", "pool": "rac-b", "public_block": "10.0.5.64/26", "private_host_base": 32, "asm": ASM,
           "failure_domains": RACKS, "standby_of": "db-a"}


def _national(**changes: Any) -> dict[str, Any]:
    flavor = {"name": "bm", "resource_class": "CUSTOM_BM", "vcpus": 1, "ram_mb": 1, "disk_gb": 1}
    base: dict[str, Any] = {
        "region": "r", "availability_zones": ["a", "b"],
        "networks": {"admin": "10.0.0.0/24", "transit": "10.0.1.0/24", "service": "10.0.4.0/22",
                     "interconnect": "10.0.8.0/24", "interconnect_b": "10.0.10.0/24", "storage": "10.0.9.0/24"},
        "dns": {"zone": "db.example.", "email": "dns@example.org"},
        "baremetal_pools": [{"name": "rac-a", "flavor": flavor, "image": "i", "nodes": 3},
                            {"name": "rac-b", "flavor": flavor, "image": "i", "nodes": 3, "availability_zones": ["b"]}],
        "rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26",
                          "asm": ASM, "failure_domains": RACKS}, STANDBY],
    }
    return base | changes


def test_the_reference_national_core_is_valid():
    NationalCore.model_validate(_national())


@pytest.mark.parametrize("change, message", [
    ({"dns": None}, "a Designate zone for their SCAN names"),
    ({"networks": _national()["networks"] | {"interconnect_b": None}}, "two interconnect networks"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/29",
                        "asm": ASM, "failure_domains": RACKS}]}, "a /28 at least"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/28",
                        "asm": ASM, "failure_domains": RACKS}],
      "baremetal_pools": [p | {"nodes": 5} for p in _national()["baremetal_pools"]]}, "holds at most 4 nodes"),
    ({"rac_clusters": [{"name": f"db-{x}", "pool": f"rac-{x}", "public_block": block,
                        "asm": ASM, "failure_domains": RACKS}
                       for x, block in (("a", "10.0.5.0/26"), ("b", "10.0.5.64/26"))]}, "private host ranges overlap"),
    ({"migration": {"legacy_networks": ["10.0.4.0/24"], "legacy_vpn_peer": "198.51.100.7", "until": "2027-06-30"}},
     "overlaps networks.service"),
    # Placement (issue 20, finding 5): racks of one zone, named by the provider's traits.
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26", "asm": ASM,
                        "failure_domains": ["CUSTOM_RACK_A"]}, STANDBY]}, "2 failure domains at least"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26", "asm": ASM,
                        "failure_domains": RACKS}]}, "has no Data Guard standby"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26", "asm": ASM,
                        "failure_domains": RACKS}, STANDBY | {"availability_zone": "a"}]}, "is not a zone of pool"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26", "asm": ASM,
                        "failure_domains": RACKS}, STANDBY | {"standby_of": "db-z"}]}, "not a primary cluster"),
    ({"rac_clusters": [{"name": "db-a", "pool": "rac-a", "public_block": "10.0.5.0/26", "asm": ASM,
                        "failure_domains": RACKS, "availability_zone": "elsewhere"}]}, "is not a zone of pool"),
])
def test_a_rac_layout_that_cannot_keep_its_addresses_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        NationalCore.model_validate(_national(**change))


def test_private_host_base_separates_two_clusters():
    national = NationalCore.model_validate(_national())
    reserved = national.reserved_hosts()
    assert [(str(lo), str(hi)) for lo, hi in reserved["interconnect"]] == [("10.0.8.16", "10.0.8.31"),
                                                                            ("10.0.8.32", "10.0.8.47")]


def test_a_provider_storage_path_keeps_the_portals_and_every_clusters_nodes_out_of_dhcp():
    storage = {"encrypted_backend": "b", "paths": [
        {"network": "storage-a", "cidr": "10.0.12.0/24", "portals": ["10.0.12.5"]},
        {"network": "storage-b", "cidr": "10.0.13.0/24", "portals": ["10.0.13.5"]}]}
    national = NationalCore.model_validate(_national(storage=storage))
    assert national.storage is not None
    reserved = national.storage_path_reserved(national.storage.paths[1])
    assert [(str(lo), str(hi)) for lo, hi in reserved] == [("10.0.13.5", "10.0.13.5"), ("10.0.13.16", "10.0.13.31"),
                                                           ("10.0.13.32", "10.0.13.47")]


@pytest.mark.parametrize("storage, message", [
    ({"encrypted_backend": "b"}, "two storage networks"),
    ({"encrypted_backend": "b", "paths": [{"network": "storage-a", "cidr": "10.0.12.0/24", "portals": ["10.0.12.5"]}]},
     "2 networks"),
    ({"encrypted_backend": "b", "paths": [{"network": "storage-a", "cidr": "10.0.12.0/24", "portals": ["10.0.12.5"]},
                                          {"network": "storage-a", "cidr": "10.0.13.0/24", "portals": ["10.0.13.5"]}]},
     "two networks that do not overlap"),
    ({"encrypted_backend": "b", "paths": [{"network": "storage-a", "cidr": "10.0.12.0/24", "portals": ["10.0.12.17"]},
                                          {"network": "storage-b", "cidr": "10.0.13.0/24", "portals": ["10.0.13.5"]}]},
     "sit in the nodes' private hosts"),
    ({"encrypted_backend": "b", "paths": [{"network": "storage-a", "cidr": "10.0.4.0/24", "portals": ["10.0.4.5"]},
                                          {"network": "storage-b", "cidr": "10.0.13.0/24", "portals": ["10.0.13.5"]}]},
     "overlaps networks.service"),
])
def test_rac_storage_paths_that_cannot_give_two_paths_are_refused(storage, message):
    with pytest.raises(ValueError, match=message):
        NationalCore.model_validate(_national(storage=storage))


def test_two_pools_naming_one_flavor_differently_are_refused():
    """Issue 20, finding 9: Nova keeps one flavor per name (a second is a 409); the inventory says so first."""
    def pool(name: str, vcpus: int) -> dict[str, Any]:
        return {"name": name, "image": "i", "nodes": 2,
                "flavor": {"name": "bm.shared", "resource_class": "CUSTOM_BM", "vcpus": vcpus, "ram_mb": 1,
                           "disk_gb": 1}}

    base = {"region": "r", "availability_zones": ["a"]}
    NationalCore.model_validate({**base, "baremetal_pools": [pool("one", 8), pool("two", 8)]})  # the same flavor
    with pytest.raises(ValueError, match="both name flavor 'bm.shared' with different specs"):
        NationalCore.model_validate({**base, "baremetal_pools": [pool("one", 8), pool("two", 16)]})


def test_each_rac_node_boots_its_racks_flavor_in_turn():
    national = NationalCore.model_validate(_national())
    flavors = national.rac_flavors(national.rac_clusters[0])
    assert [(f.name, trait) for f, trait in flavors] == [("bm.rack-a", "CUSTOM_RACK_A"), ("bm.rack-b", "CUSTOM_RACK_B"),
                                                         ("bm.rack-a", "CUSTOM_RACK_A")]
    assert national.rac_zone(national.rac_clusters[0]) == "a"
