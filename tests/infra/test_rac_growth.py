"""Growing a live RAC cluster from 3 to 4 nodes moves no address (defect 2), with the real program and inventory."""

from __future__ import annotations

from cutover.infra.diff import Op, diff_plans
from cutover.infra.evaluate import plan_environment

ALL = "inventories/production/group_vars/all.yml"
RAC_POOL = "    - name: rac-national\n"


def _with_nodes(text: str, nodes: int) -> str:
    start = text.index(RAC_POOL)
    end = text.index("      nodes: 3\n", start)
    return text[:end] + f"      nodes: {nodes}\n" + text[end + len("      nodes: 3\n"):]


def test_a_fourth_rac_node_adds_addresses_and_moves_none(project_copy, edit):
    before = plan_environment(project_copy, "production")
    edit(ALL, lambda text: _with_nodes(text, 4))
    after = plan_environment(project_copy, "production")
    diff = diff_plans(before, after)
    assert diff.dangerous() == [] and diff.impossible() == []
    created = {c.name for c in diff.changes if c.op is Op.CREATE}
    assert {"rac-national-node-4", "rac-national-db-vip-4-port", "rac-national-node-4-public-port",
            "rac-national-db-asm-data-1-node-4"} <= created
    assert not [c for c in diff.changes if c.op in (Op.DELETE, Op.REPLACE)]
    for change in (c for c in diff.changes if c.op is Op.UPDATE):
        # The existing public ports gain the new VIP as an allowed pair; no fixed IP and no pair changes.
        assert all(p.path.startswith("allowedAddressPairs[") and p.old is None for p in change.properties), change
    vip4 = after.get("rac-national-db-vip-4-port").inputs["fixedIps"][0]["ipAddress"]
    assert vip4 == "10.100.5.35"
    for name in ("rac-national-db-scan-1-port", "rac-national-db-vip-1-port", "rac-national-node-3-public-port"):
        assert before.get(name).inputs["fixedIps"] == after.get(name).inputs["fixedIps"]


def test_moving_the_rac_public_block_is_flagged_dangerous(project_copy, edit):
    before = plan_environment(project_copy, "production")
    edit(ALL, lambda text: text.replace("public_block: 10.100.5.0/26", "public_block: 10.100.6.0/26"))
    after = plan_environment(project_copy, "production")
    dangerous = {c.name: c.reason for c in diff_plans(before, after).dangerous()}
    assert "moves fixed address 10.100.5.1" in dangerous["rac-national-db-scan-1-port"]
    assert "moves fixed address 10.100.5.16" in dangerous["rac-national-node-1-public-port"]
    assert "withdraws allowed address pair" in dangerous["rac-national-node-1-public-port"]
