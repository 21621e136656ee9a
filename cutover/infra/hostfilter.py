"""The security groups of the bare-metal nodes, enforced on the nodes themselves (nftables). (Plain data, no Pulumi.)

Neutron enforces security groups in the hypervisor's agent. An Ironic node has no
hypervisor: with a switch mechanism driver (networking-generic-switch, VLAN
tenant networks) nothing may enforce them on its ports. So every bare-metal
node also gets an nftables ruleset, made by one function (``node_ruleset``)
from the same source as the security groups: the plan's groups and rules of
the node's ports. The rulesets live in ``playbooks/files/nftables/<env>/<node>.nft``
(written by ``cutover infra firewall``, applied by ``playbooks/host_filter.yml``);
rule ``host-filtering`` fails when a node has none or one that says something
else than its security groups.

Semantics kept from Neutron: ingress and egress are denied unless a rule of
one of the port's groups allows them (every group deletes Neutron's allow-all
egress: rule explicit-egress); replies to allowed traffic pass (conntrack);
DHCP requests and replies pass (Neutron's implicit rules); a port with port
security off is not filtered; a rule naming a remote group allows the
addresses of that group's ports (their fixed addresses, else their subnets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cutover.infra.plan import Plan, PlannedResource

T_INSTANCE = "openstack:compute/instance:Instance"
T_PORT = "openstack:networking/port:Port"
T_SUBNET = "openstack:networking/subnet:Subnet"
T_SG_RULE = "openstack:networking/secGroupRule:SecGroupRule"
T_BAREMETAL_POOL = "cutover:compute:BareMetalPool"
RULESET_DIR = Path("playbooks") / "files" / "nftables"
TABLE = "cutover_filter"


@dataclass(frozen=True)
class HostRule:
    """One accept rule of a node's input (or output) chain: one of its addresses, peers, ports.

    Ingress: to one of the node's addresses from the peers; egress: from one of them to the peers.
    """

    addresses: tuple[str, ...]  # the port's fixed address and allowed pairs (VIP, SCAN); (): any of the node's
    protocol: str  # "tcp", "udp", "icmp" or "" (any)
    ports: tuple[int, int] | None  # destination ports, in either direction (as Neutron's port range)
    sources: tuple[str, ...]  # the peers as CIDRs (sources in, destinations out); () is anywhere
    comment: str
    direction: str = "ingress"

    def nft(self) -> str:
        own, peer = ("daddr", "saddr") if self.direction == "ingress" else ("saddr", "daddr")
        match = [f"ip {own} {{ {', '.join(self.addresses)} }}"] if self.addresses else []
        if self.sources:
            match.append(f"ip {peer} {{ {', '.join(self.sources)} }}")
        if self.protocol in ("tcp", "udp"):
            match.append(f"{self.protocol} dport {_ports(self.ports)}" if self.ports else f"meta l4proto {self.protocol}")
        elif self.protocol:
            match.append(f"meta l4proto {self.protocol}")
        return " ".join([*match, "accept", f'comment "{self.comment}"'])


def _ports(ports: tuple[int, int]) -> str:
    low, high = ports
    return str(low) if low == high else f"{low}-{high}"


def bare_metal_nodes(plan: Plan) -> list[PlannedResource]:
    """The Ironic instances of the plan: the members of a bare-metal pool."""
    return [r for r in plan.of_type(T_INSTANCE)
            if any((a := plan.get(name)) is not None and a.type == T_BAREMETAL_POOL for name in plan.ancestors(r.name))]


def node_name(node: PlannedResource) -> str:
    return str(node.inputs.get("name") or node.name)


def node_rules(plan: Plan, node: PlannedResource, direction: str = "ingress") -> list[HostRule]:
    """What the security groups of the node's ports allow in (or out), port by port, rule by rule."""
    rules_of = _rules_by_group(plan, direction)
    found: list[HostRule] = []
    for nic in node.inputs.get("networks") or []:
        port = plan.target(nic.get("port")) if isinstance(nic, dict) else None
        if port is None:
            continue
        address = _fixed_address(port)
        # A VIP or SCAN address Clusterware moves onto the node is the port's too (an allowed address pair).
        pairs = [str(p.get("ipAddress")) for p in port.inputs.get("allowedAddressPairs") or [] if isinstance(p, dict)]
        addresses = (address, *pairs) if address else ()
        if port.inputs.get("portSecurityEnabled") is False:
            found.append(_unfiltered(plan, port, direction))
            continue
        for group in port.inputs.get("securityGroupIds") or []:
            for rule in rules_of.get(str(group), []):
                sources = _sources(plan, rule)
                if sources is None:
                    continue  # a remote group with no port: Neutron allows no one
                found.append(HostRule(addresses, str(rule.inputs.get("protocol") or ""), _rule_ports(rule), sources,
                                      rule.name, direction))
    return found


def node_ruleset(plan: Plan, node: PlannedResource, env: str) -> str:
    """The nftables ruleset of a node: its security groups, as text ``nft -f`` loads (and reloads)."""
    lines = [
        f"# Generated by `cutover infra firewall --env {env}` from the security groups of the node's ports: do not",
        "# edit (rule host-filtering compares it with the plan). Applied by playbooks/host_filter.yml.",
        f"# Node {node_name(node)}.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        '    iifname "lo" accept',
        '    udp sport 67 udp dport 68 accept comment "DHCP replies (Neutron allows them implicitly)"',
        *(f"    {rule.nft()}" for rule in node_rules(plan, node)),
        "  }",
        # Out: only what the groups' egress rules say (they replace Neutron's allow-all egress).
        "  chain output {",
        "    type filter hook output priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        '    oifname "lo" accept',
        '    udp sport 68 udp dport 67 accept comment "DHCP requests (Neutron allows them implicitly)"',
        *(f"    {rule.nft()}" for rule in node_rules(plan, node, "egress")),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def rulesets(plan: Plan, env: str) -> dict[str, str]:
    """Every bare-metal node's ruleset, by node name."""
    return {node_name(node): node_ruleset(plan, node, env) for node in bare_metal_nodes(plan)}


def ruleset_path(project_dir: Path, env: str, node: str) -> Path:
    return project_dir / RULESET_DIR / env / f"{node}.nft"


def write_rulesets(project_dir: Path, env: str, plan: Plan) -> list[Path]:
    """Write every node's ruleset and remove those of nodes the plan no longer has."""
    directory = project_dir / RULESET_DIR / env
    directory.mkdir(parents=True, exist_ok=True)
    wanted = rulesets(plan, env)
    for stale in directory.glob("*.nft"):
        if stale.stem not in wanted:
            stale.unlink()
    written = []
    for node, text in sorted(wanted.items()):
        path = ruleset_path(project_dir, env, node)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@dataclass(frozen=True)
class Disagreement:
    node: str
    path: Path
    problem: str


def disagreements(project_dir: Path, env: str, plan: Plan) -> Iterator[Disagreement]:
    """Nodes whose ruleset is missing or says something else than their security groups; rulesets of no node."""
    wanted = rulesets(plan, env)
    for node, text in sorted(wanted.items()):
        path = ruleset_path(project_dir, env, node)
        if not path.is_file():
            yield Disagreement(node, path, "has no host ruleset: its security groups may be enforced nowhere")
        elif path.read_text(encoding="utf-8") != text:
            yield Disagreement(node, path, f"{_first_difference(path.read_text(encoding='utf-8'), text)}: the "
                                           "host ruleset and the security groups disagree")
    directory = project_dir / RULESET_DIR / env
    for extra in sorted(directory.glob("*.nft")) if directory.is_dir() else []:
        if extra.stem not in wanted:
            yield Disagreement(extra.stem, extra, "has a host ruleset but is not a bare-metal node of the plan")


def _first_difference(found: str, wanted: str) -> str:
    have, want = found.splitlines(), wanted.splitlines()
    for line, (a, b) in enumerate(zip(have, want), start=1):
        if a != b:
            return f"line {line} is {a.strip()!r}, the security groups say {b.strip()!r}"
    if len(have) < len(want):
        return f"line {len(have) + 1} ({want[len(have)].strip()!r}) is missing"
    return f"line {len(want) + 1} ({have[len(want)].strip()!r}) is not in the security groups"


def _rules_by_group(plan: Plan, direction: str) -> dict[str, list[PlannedResource]]:
    groups: dict[str, list[PlannedResource]] = {}
    for rule in plan.of_type(T_SG_RULE):
        if rule.inputs.get("direction") == direction and rule.inputs.get("ethertype", "IPv4") == "IPv4":
            groups.setdefault(str(rule.inputs.get("securityGroupId")), []).append(rule)
    return groups


# Oracle HAIP puts link-local addresses on the interconnect NICs and moves them between NICs; Clusterware
# starts with multicast there. Neutron does not filter a port with port security off, so its host rule is
# the port's own network: from its subnet or link-local in; to its subnet, link-local or multicast out.
LINK_LOCAL = "169.254.0.0/16"
MULTICAST = "224.0.0.0/4"


def _unfiltered(plan: Plan, port: PlannedResource, direction: str) -> HostRule:
    """Everything on a port with port security off (the RAC interconnects), as peers of its own subnet."""
    fixed = port.inputs.get("fixedIps") or []
    subnet = plan.target(fixed[0].get("subnetId")) if fixed and isinstance(fixed[0], dict) else None
    cidr = str(subnet.inputs.get("cidr")) if subnet is not None and subnet.inputs.get("cidr") else None
    address = _fixed_address(port)
    if cidr is None:  # no subnet known: the port's own address only, as before
        return HostRule((address,) if address else (), "", None, (), f"{port.name}: port security off", direction)
    peers, why = ((cidr, LINK_LOCAL), "its subnet, HAIP link-local") if direction == "ingress" else \
        ((cidr, LINK_LOCAL, MULTICAST), "its subnet, HAIP link-local, multicast")
    return HostRule((), "", None, peers, f"{port.name}: port security off ({why})", direction)


def _fixed_address(port: PlannedResource) -> str | None:
    fixed = port.inputs.get("fixedIps") or []
    address = fixed[0].get("ipAddress") if fixed and isinstance(fixed[0], dict) else None
    return str(address) if address else None


def _rule_ports(rule: PlannedResource) -> tuple[int, int] | None:
    bounds = [int(b) for b in (rule.inputs.get("portRangeMin"), rule.inputs.get("portRangeMax")) if b is not None]
    if not bounds:
        return None
    return bounds[0], bounds[-1]  # one bound given: a single port


def _sources(plan: Plan, rule: PlannedResource) -> tuple[str, ...] | None:
    """The rule's peers as CIDRs: its prefix, the addresses of its remote group's ports, or () for anywhere."""
    prefix = rule.inputs.get("remoteIpPrefix")
    if prefix:
        network = ipaddress.ip_network(str(prefix), strict=False)
        return () if network.prefixlen == 0 else (str(network),)
    group = rule.inputs.get("remoteGroupId")
    if not group:
        return ()
    members = []
    for port in plan.of_type(T_PORT):
        if str(group) not in [str(g) for g in port.inputs.get("securityGroupIds") or []]:
            continue
        address = _fixed_address(port)
        if address:
            members.append(f"{address}/32")
            continue
        for fixed in port.inputs.get("fixedIps") or []:
            subnet = plan.target(fixed.get("subnetId")) if isinstance(fixed, dict) else None
            if subnet is not None and subnet.inputs.get("cidr"):
                members.append(str(subnet.inputs["cidr"]))  # a DHCP address somewhere in its subnet
    return tuple(sorted(set(members))) or None
