"""RAC storage the nodes can reach (issue 20, finding 1): two paths, an iSCSI backend, an ASM layout Oracle accepts.

The rule ``rac-storage-reachable`` on small plans (each mutation of the compliant one
caught), the shipped plans, the national model's layout, and the inventory the storage
playbook targets (its hosts are the plan's RAC nodes, at the plan's addresses).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import check_plan, check_plans
from cutover.infra.policyfile import load_policy, policy_context
from cutover.model.national import AsmVolumes
from tests.infra.conftest import REPO
from tests.infra.test_policy import CTX, res

RULE = "rac-storage-reachable"
ISCSI_CTX = dataclasses.replace(CTX, encrypted_backends=frozenset({"ceph-luks", "array-iscsi"}),
                                backend_protocols={"ceph-luks": "rbd", "array-iscsi": "iscsi"})
ISCSI_TYPE = res("vtype", "vt", name="asm", extraSpecs={"volume_backend_name": "array-iscsi",
                                                         "multiattach": "<is> True"})
RAC_NODE_NAMES = ["rac-national-node-1", "rac-national-node-2", "rac-national-node-3"]


def _volume(name: str, group: str, failure_group: str, size: int = 100, voting: bool = False) -> PlannedResource:
    return res("volume", name, parent="rac", volumeType="asm", size=size,
               metadata={"cutover-owner": "national-platform", "asm-disk-group": group,
                         "asm-failure-group": failure_group, "asm-voting": "true" if voting else "false"})


def _layout() -> list[PlannedResource]:
    return [_volume("data-1", "DATA", "DATA_FG1"), _volume("data-2", "DATA", "DATA_FG2"),
            *[_volume(f"ocr-{i}", "OCR", f"OCR_FG{i}", size=10, voting=True) for i in (1, 2, 3)]]


def _node(i: int, nets: tuple[str, ...]) -> list[PlannedResource]:
    ports = [res("port", f"n{i}-nic{k}-port", parent="pool", networkId=f"{net}.id") for k, net in enumerate(nets)]
    node = res("instance", f"n{i}", parent="pool", name=f"n{i}", networks=[{"port": f"{p.name}.id"} for p in ports])
    return [*ports, node]


def _plan(*, nets: tuple[str, ...] = ("storage-a", "storage-b"), volume_type: PlannedResource = ISCSI_TYPE,
          volumes: list[PlannedResource] | None = None) -> Plan:
    storage = [res("net", name, tags=["cutover-zone=storage"]) for name in ("storage-a", "storage-b")]
    return Plan.of([
        *storage, res("net", "service", tags=["cutover-zone=service"]), volume_type,
        res("cutover:oracle:RacCluster", "rac"), res("cutover:compute:BareMetalPool", "pool", parent="rac"),
        *_node(1, nets), *_node(2, nets), *(volumes if volumes is not None else _layout()),
    ])


def findings(plan: Plan) -> list[tuple[str, str]]:
    return [(v.resource, v.message) for v in check_plan(plan, ISCSI_CTX) if v.rule == RULE]


def test_two_paths_an_iscsi_backend_and_oracles_layout_pass():
    assert findings(_plan()) == []


@pytest.mark.parametrize("nets, paths", [
    (("storage-a",), "1 path(s)"),                   # the old model: one storage NIC
    (("storage-a", "storage-a"), "1 path(s)"),       # two NICs on one network: one path
    (("storage-a", "service"), "1 path(s)"),         # the second NIC elsewhere
    (("service",), "0 path(s)"),
])
def test_a_node_without_two_storage_paths_fails(nets, paths):
    found = findings(_plan(nets=nets))
    assert [name for name, _ in found] == ["n1", "n2"] and all(paths in message for _, message in found)


def test_asm_disks_on_ceph_rbd_fail_whatever_the_encryption():
    rbd = res("vtype", "vt", name="asm", extraSpecs={"volume_backend_name": "ceph-luks", "multiattach": "<is> True"})
    found = findings(_plan(volume_type=rbd))
    assert len(found) == 5 and all("driver_volume_type rbd" in message for _, message in found)


def test_an_unknown_type_outside_the_plan_fails_unless_the_offer_declares_it_iscsi():
    volumes = [dataclasses.replace(v, inputs={**v.inputs, "volumeType": "provider-type"}) for v in _layout()]
    plan = _plan(volumes=volumes)
    assert len(findings(plan)) == 5
    declared = dataclasses.replace(ISCSI_CTX, iscsi_volume_types=frozenset({"provider-type"}))
    assert [v for v in check_plan(plan, declared) if v.rule == RULE] == []


@pytest.mark.parametrize("volumes, expected", [
    ([_volume("data-1", "DATA", "F1"), _volume("data-2", "DATA", "F2", size=200),
      *[_volume(f"ocr-{i}", "OCR", f"O{i}", 10, True) for i in (1, 2, 3)]], "mixes LUN sizes [100, 200]"),
    ([_volume("data-1", "DATA", "F1"), *[_volume(f"ocr-{i}", "OCR", f"O{i}", 10, True) for i in (1, 2, 3)]],
     "disk group DATA has 1 LUN"),
    ([_volume("data-1", "DATA", "F1"), _volume("data-2", "DATA", "F2"), _volume("ocr-1", "OCR", "O1", 10, True)],
     "1 failure group(s) over 1 LUN(s)"),                      # the old model: one voting LUN
    ([_volume("data-1", "DATA", "F1"), _volume("data-2", "DATA", "F2"),
      *[_volume(f"ocr-{i}", "OCR", "O", 10, True) for i in (1, 2, 3)]], "1 failure group(s) over 3 LUN(s)"),
    ([_volume("data-1", "DATA", "F1"), _volume("data-2", "DATA", "F2")], "0 disk group(s) hold the voting files"),
    ([*_layout(), res("volume", "loose", parent="rac", volumeType="asm", size=100)], "no asm-disk-group metadata"),
])
def test_an_asm_layout_oracle_would_refuse_fails(volumes, expected):
    found = findings(_plan(volumes=volumes))
    assert any(expected in message for _, message in found), found


# -- the shipped plans ------------------------------------------------------------------------------------------------


def test_the_shipped_plans_pass_and_every_rac_node_has_a_nic_on_both_provider_storage_networks(
        production_plan, production_provider_plan):
    both = Plan.of([*production_plan, *production_provider_plan])
    context = policy_context(load_policy(REPO / "infra" / "policy.yaml"), "fr-central")
    assert [v for v in check_plans(production_plan, production_provider_plan, context)
            if v.rule in (RULE, "asm-on-every-node", "never-routed", "customer-rights-only")] == []
    for node in RAC_NODE_NAMES:
        networks = [both.get(f"{node}-{net}-port").inputs["networkId"] for net in ("storage-a", "storage-b")]
        assert networks == ["network-storage-a.id", "network-storage-b.id"]  # the provider's, read by name
    for name in ("storage-a", "storage-b"):
        network = production_provider_plan.get(f"network-{name}").inputs
        assert network["tags"] == ["cutover-zone=storage"] and network["segments"][0]["networkType"] == "vlan"
        assert production_provider_plan.get(f"subnet-{name}").inputs["noGateway"] is True
        share = production_provider_plan.get(f"network-{name}-share").inputs
        assert share["action"] == "access_as_shared" and share["targetTenant"] != "*"
    assert production_provider_plan.get("volume-type-rac-asm-multiattach").inputs["extraSpecs"][
        "volume_backend_name"] == "array-iscsi"
    assert "national-storage-net" not in {r.name for r in production_plan}  # ours could not reach the array


def test_the_shipped_plan_lays_out_eleven_equal_luns_with_three_voting_failure_groups(production_plan):
    volumes = [r for r in production_plan.of_type("openstack:blockstorage/volume:Volume")
               if r.name.startswith("rac-national-db-asm-")]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for volume in volumes:
        by_group.setdefault(volume.inputs["metadata"]["asm-disk-group"], []).append(volume.inputs)
    assert {group: len(luns) for group, luns in by_group.items()} == {"DATA": 4, "FRA": 4, "OCR": 3}
    assert all(len({lun["size"] for lun in luns}) == 1 for luns in by_group.values())
    assert sorted(lun["metadata"]["asm-failure-group"] for lun in by_group["OCR"]) == ["OCR_FG1", "OCR_FG2", "OCR_FG3"]


@pytest.mark.parametrize("groups, message", [
    ([{"name": "data", "luns": 4, "lun_gb": 1}, {"name": "ocr", "luns": 1, "lun_gb": 1, "voting": True,
                                                  "redundancy": "normal"}], "normal redundancy over 3"),
    ([{"name": "data", "luns": 4, "lun_gb": 1}, {"name": "ocr", "luns": 3, "lun_gb": 1, "voting": True}],
     "normal redundancy over 3"),
    ([{"name": "data", "luns": 1, "lun_gb": 4096}, {"name": "ocr", "luns": 3, "lun_gb": 1, "voting": True,
                                                     "redundancy": "normal"}], "2 equal LUNs at least"),
    ([{"name": "data", "luns": 4, "lun_gb": 1}], "exactly one disk group holds the voting files"),
])
def test_the_inventory_refuses_a_layout_oracle_would_refuse(groups, message):
    with pytest.raises(ValueError, match=message):
        AsmVolumes(disk_groups=groups)


# -- the inventory the playbook targets -------------------------------------------------------------------------------


def _inventory(env: str) -> tuple[dict[str, Any], dict[str, Any]]:
    root = REPO / "inventories" / env
    hosts = yaml.safe_load((root / "hosts.yml").read_text())["all"]["children"]["rac_nodes"]["hosts"]
    host_vars = {h: yaml.safe_load((root / "host_vars" / f"{h}.yml").read_text()) for h in hosts}
    return host_vars, yaml.safe_load((root / "group_vars" / "rac_nodes.yml").read_text())


@pytest.mark.parametrize("env", ["production", "rehearsal"])
def test_the_playbook_targets_the_plans_rac_nodes_at_their_addresses(env, request):
    plan = request.getfixturevalue(f"{env}_plan")
    playbook = yaml.safe_load((REPO / "playbooks" / "rac_storage.yml").read_text())
    assert playbook[0]["hosts"] == "rac_nodes"
    host_vars, group_vars = _inventory(env)
    rac_nodes = {r.inputs["name"]: r.inputs["metadata"]["rac-cluster"]
                 for r in plan.of_type("openstack:compute/instance:Instance") if "rac-cluster" in r.inputs["metadata"]}
    assert sorted(host_vars) == sorted(rac_nodes)  # the primary's nodes and the standby's
    assert (env != "production") or sorted(host_vars) == [*RAC_NODE_NAMES, "rac-standby-node-1", "rac-standby-node-2"]
    for node, cluster in rac_nodes.items():  # each host names its own cluster (group default, host override)
        assert host_vars[node].get("rac_cluster", group_vars["rac_cluster"]) == cluster
    for node, variables in host_vars.items():
        public = plan.get(f"{node}-public-port").inputs["fixedIps"][0]["ipAddress"]
        assert variables["ansible_host"] == public
    national = yaml.safe_load((REPO / f"inventories/{env}/group_vars/all.yml").read_text())["cutover_national"]
    assert group_vars["rac_cluster"] in [c["name"] for c in national["rac_clusters"]]
    assert len(national["storage"]["paths"]) == 2  # what the playbook's portals come from
    used = Path(REPO / "playbooks" / "rac_storage.yml").read_text()
    for variable in ("rac_cluster", "rac_asm_disks_file", "cutover_national.storage.paths"):
        assert variable in used


def test_the_playbook_lays_out_asm_from_the_real_inventory(tmp_path):
    """ansible-playbook, run locally on the inventory's first RAC node, renders the layout tasks of the playbook.

    The tasks that need a node (iSCSI, multipath, udev) are left out: the checks and the
    layout files run for real against inventories/production and a stack output of the
    shape ``racAsmDisks`` has.
    """
    import json
    import os
    import subprocess
    import sys

    play = yaml.safe_load((REPO / "playbooks" / "rac_storage.yml").read_text())[0]
    disks = [{"name": f"{group.lower()}-{n}", "disk_group": group, "failure_group": f"{group}_FG{n}",
              "voting": group == "OCR", "size_gb": 10,
              "connection": {"target_portal": "10.100.12.5:3260", "target_iqn": "iqn.2001-05.example:a", "target_lun": n}}
             for group, luns in (("DATA", 4), ("FRA", 4), ("OCR", 3)) for n in range(1, luns + 1)]
    (tmp_path / "disks.json").write_text(json.dumps({"rac-national-db": disks}))
    tasks = [t for t in play["tasks"] if t["name"].startswith(("Check the storage", "Write the"))]
    for task in tasks:
        copy = task["ansible.builtin.copy"] if "ansible.builtin.copy" in task else None
        if copy is not None:
            copy["dest"] = str(tmp_path / Path(copy["dest"]).name)
            copy.pop("owner"), copy.pop("group")
    local = {**{k: v for k, v in play.items() if k != "handlers"}, "tasks": tasks, "become": False}
    (tmp_path / "play.yml").write_text(yaml.safe_dump([local], sort_keys=False))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "inventories" / "production"),
         "-l", "rac-national-node-1", "-c", "local", str(tmp_path / "play.yml")],
        env={**os.environ, "CUTOVER_RAC_ASM_DISKS": str(tmp_path / "disks.json"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rac-national-node-1" in result.stdout and "failed=0" in result.stdout
    voting = (tmp_path / "grid-voting.rsp").read_text()
    assert "redundancy=NORMAL" in voting and ("disksWithFailureGroupNames=/dev/oracleasm/ocr-1,OCR_FG1,"
                                              "/dev/oracleasm/ocr-2,OCR_FG2,/dev/oracleasm/ocr-3,OCR_FG3") in voting
    sql = (tmp_path / "disk-groups.sql").read_text()
    assert sql.count("CREATE DISKGROUP") == 2 and sql.count("DISK '/dev/oracleasm/data-") == 4
