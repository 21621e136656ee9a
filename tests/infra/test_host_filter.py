"""Filtering that exists (issue 20, finding 3): each bare-metal node enforces its security groups with nftables.

The rulesets come from one function over the plan's security groups; the shipped ones
agree with the shipped plans and load in ``nft -c``; a plan whose groups changed, or a
ruleset edited by hand, breaks rule host-filtering.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cutover.infra.compliance import host_filter_violations
from cutover.infra.hostfilter import RULESET_DIR, disagreements, node_ruleset, ruleset_path, write_rulesets
from cutover.infra.plan import Plan
from tests.infra.conftest import REPO
from tests.infra.test_policy import res

NFT = shutil.which("nft") or "/usr/sbin/nft"


def _small_plan() -> Plan:
    return Plan.of([
        res("cutover:compute:BareMetalPool", "pool"),
        res("subnet", "admin-subnet", cidr="10.0.0.0/24"), res("subnet", "ic", cidr="10.2.0.0/24"),
        res("sg", "db", deleteDefaultRules=True), res("sg", "bastion", deleteDefaultRules=True),
        res("rule", "db-listener", direction="ingress", ethertype="IPv4", protocol="tcp", portRangeMin=1521,
            portRangeMax=1521, remoteIpPrefix="10.1.0.0/22", securityGroupId="db.id"),
        res("rule", "db-ssh", direction="ingress", ethertype="IPv4", protocol="tcp", portRangeMin=22, portRangeMax=22,
            remoteGroupId="bastion.id", securityGroupId="db.id"),
        res("rule", "db-out", direction="egress", ethertype="IPv4", securityGroupId="db.id"),
        res("port", "bastion-port", securityGroupIds=["bastion.id"], fixedIps=[{"subnetId": "admin-subnet.id"}]),
        res("port", "n1-public-port", parent="pool", securityGroupIds=["db.id"],
            fixedIps=[{"subnetId": "s.id", "ipAddress": "10.1.0.16"}], allowedAddressPairs=[{"ipAddress": "10.1.0.32"}]),
        res("port", "n1-ic-port", parent="pool", portSecurityEnabled=False,
            fixedIps=[{"subnetId": "ic.id", "ipAddress": "10.2.0.16"}]),
        res("instance", "n1", parent="pool", name="n1",
            networks=[{"port": "n1-public-port.id"}, {"port": "n1-ic-port.id"}]),
    ])


def test_a_ruleset_says_what_the_security_groups_say():
    plan = _small_plan()
    text = node_ruleset(plan, plan.get("n1"), "lab")
    assert "policy drop;" in text
    assert ('ip daddr { 10.1.0.16, 10.1.0.32 } ip saddr { 10.1.0.0/22 } tcp dport 1521 accept comment "db-listener"'
            in text)
    # A remote group is the addresses of its ports (here: a DHCP port, so its subnet).
    assert 'ip daddr { 10.1.0.16, 10.1.0.32 } ip saddr { 10.0.0.0/24 } tcp dport 22 accept comment "db-ssh"' in text
    # Port security off (the interconnect): its subnet and HAIP's link-local addresses, whatever they move to.
    assert ('ip saddr { 10.2.0.0/24, 169.254.0.0/16 } accept comment '
            '"n1-ic-port: port security off (its subnet, HAIP link-local)"') in text


def test_the_output_chain_says_what_the_egress_rules_say():
    plan = Plan.of([*_small_plan(), res("rule", "db-dns-out", direction="egress", ethertype="IPv4", protocol="udp",
                                        portRangeMin=53, portRangeMax=53, remoteIpPrefix="198.51.100.53/32",
                                        securityGroupId="db.id")])
    text = node_ruleset(plan, plan.get("n1"), "lab")
    output = text[text.index("chain output {"):]
    assert output.splitlines()[1:4] == ["    type filter hook output priority filter; policy drop;",
                                        "    ct state established,related accept", "    ct state invalid drop"]
    assert 'oifname "lo" accept' in output
    assert ('ip saddr { 10.1.0.16, 10.1.0.32 } ip daddr { 198.51.100.53/32 } udp dport 53 accept '
            'comment "db-dns-out"') in output
    assert 'ip saddr { 10.1.0.16, 10.1.0.32 } accept comment "db-out"' in output  # a rule to anywhere, as written
    assert ('ip daddr { 10.2.0.0/24, 169.254.0.0/16, 224.0.0.0/4 } accept comment '
            '"n1-ic-port: port security off (its subnet, HAIP link-local, multicast)"') in output
    # Ingress rules stay in the input chain, egress rules in the output chain.
    assert "db-listener" not in output and "db-dns-out" not in text[:text.index("chain output {")]


def test_every_shipped_ruleset_agrees_with_its_plan_and_loads_in_nft(production_plan, rehearsal_plan):
    assert list(disagreements(REPO, "production", production_plan)) == []
    assert list(disagreements(REPO, "rehearsal", rehearsal_plan)) == []
    files = sorted((REPO / RULESET_DIR).glob("*/*.nft"))
    assert len(files) == 9 + 6  # production: 3 + 2 (standby) RAC + 4 telephony nodes; rehearsal: 2 + 2 + 2
    if not Path(NFT).is_file():
        pytest.fail("nft is not installed (Debian package nftables): the rulesets' syntax is unchecked")
    for path in files:
        result = subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{path}: {result.stderr}"


def test_a_security_group_rule_the_hosts_do_not_enforce_breaks_the_check(production_plan):
    opened = res("rule", "injected-ssh", direction="ingress", ethertype="IPv4", protocol="tcp", portRangeMin=2222,
                 portRangeMax=2222, remoteIpPrefix="10.100.0.0/24", securityGroupId="national-service-sg.id")
    found = host_filter_violations(REPO, "production", Plan.of([*production_plan, opened]))
    assert {v.resource for v in found} == {f"rac-national-node-{i}" for i in (1, 2, 3)} | {
        f"rac-standby-node-{i}" for i in (1, 2)} | {f"telephony-node-{i}" for i in (1, 2, 3, 4)}
    assert all(v.rule == "host-filtering" and "disagree" in v.message and "injected-ssh" in v.message for v in found)


def test_an_egress_rule_the_hosts_do_not_enforce_breaks_the_check(production_plan):
    opened = res("rule", "injected-out", direction="egress", ethertype="IPv4", protocol="tcp", portRangeMin=8080,
                 portRangeMax=8080, remoteIpPrefix="10.100.0.0/24", securityGroupId="national-storage-sg.id")
    found = host_filter_violations(REPO, "production", Plan.of([*production_plan, opened]))
    assert {v.resource for v in found} == {f"rac-national-node-{i}" for i in (1, 2, 3)} | {
        f"rac-standby-node-{i}" for i in (1, 2)}  # the storage group is on the RAC nodes' storage ports only
    assert all(v.rule == "host-filtering" and "injected-out" in v.message for v in found)


def test_a_removed_rule_and_a_hand_edited_or_missing_ruleset_break_the_check(production_plan, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(REPO / RULESET_DIR, project / RULESET_DIR)
    assert host_filter_violations(project, "production", production_plan) == []
    closed = Plan.of([r for r in production_plan if r.name != "national-admin-ssh"])
    assert len(host_filter_violations(project, "production", closed)) == 9
    node1 = ruleset_path(project, "production", "rac-national-node-1")
    node1.write_text(node1.read_text().replace("policy drop;", "policy accept;"))
    ruleset_path(project, "production", "telephony-node-4").unlink()
    found = {v.resource: v.message for v in host_filter_violations(project, "production", production_plan)}
    assert set(found) == {"rac-national-node-1", "telephony-node-4"}
    assert "policy accept" in found["rac-national-node-1"] and "no host ruleset" in found["telephony-node-4"]
    write_rulesets(project, "production", production_plan)
    assert host_filter_violations(project, "production", production_plan) == []


def test_the_playbook_applies_each_nodes_ruleset_and_the_inventory_names_every_bare_metal_node(production_plan):
    import yaml

    playbook = yaml.safe_load((REPO / "playbooks" / "host_filter.yml").read_text())[0]
    assert playbook["hosts"] == "baremetal_nodes"
    assert "files/nftables/{{ cutover_environment }}/{{ inventory_hostname }}.nft" in playbook["vars"][
        "host_filter_ruleset"]
    children = yaml.safe_load((REPO / "inventories/production/hosts.yml").read_text())["all"]["children"]
    hosts = {h for group in children["baremetal_nodes"]["children"] for h in children[group]["hosts"]}
    assert hosts == {p.stem for p in (REPO / RULESET_DIR / "production").glob("*.nft")}
