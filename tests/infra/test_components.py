"""Each component's resource graph, from the real program under Pulumi's mock runtime."""

from __future__ import annotations

import ipaddress

from cutover.infra.plan import Plan, PlannedResource

T = {
    "instance": "openstack:compute/instance:Instance",
    "attach": "openstack:compute/volumeAttach:VolumeAttach",
    "export": "openstack:blockstorage/volumeAttach:VolumeAttach",
    "route": "openstack:networking/routerRoute:RouterRoute",
    "rule": "openstack:networking/secGroupRule:SecGroupRule",
    "volume": "openstack:blockstorage/volume:Volume",
    "port": "openstack:networking/port:Port",
    "network": "openstack:networking/network:Network",
    "subnet": "openstack:networking/subnet:Subnet",
    "iface": "openstack:networking/routerInterface:RouterInterface",
}
RAC = "rac-national-db"
POOL = "rac-national"


def children(plan: Plan, component: str, type_: str) -> list[PlannedResource]:
    return [r for r in plan.within(component) if r.type == type_]


def test_every_resource_but_the_top_components_has_a_parent_and_custom_resources_a_provider(production_plan):
    for resource in production_plan:
        if resource.is_component and resource.parent is None:
            assert resource.type.startswith("cutover:")
            continue
        assert resource.parent is not None and production_plan.get(resource.parent) is not None, resource.name
        if not resource.is_component and not resource.type.startswith("pulumi:providers:"):
            tenant = next((a for a in production_plan.ancestors(resource.name) if a.startswith("samu-")), None)
            # A tenant's own resources go through the provider scoped to its project; the rest, the default one.
            assert resource.provider in ("pulumi:providers:openstack::default",
                                         f"pulumi:providers:openstack::{tenant}-provider"), resource.name


def test_national_core_has_five_networks_and_only_routed_zones_reach_the_router(production_plan):
    # The RAC storage paths are the provider's networks (tests/infra/test_rac_storage_reach.py), not ours.
    networks = children(production_plan, "national", T["network"])
    assert sorted(n.inputs["tags"][0] for n in networks) == [
        f"cutover-zone={z}" for z in ("admin", "interconnect", "interconnect", "service", "transit")]
    subnets = {s.name: s for s in children(production_plan, "national", T["subnet"])}
    assert subnets["national-interconnect-subnet"].inputs["noGateway"] is True
    assert subnets["national-admin-subnet"].inputs["noGateway"] is False
    routed = {i.inputs["subnetId"] for i in children(production_plan, "national", T["iface"]) if "subnetId" in i.inputs}
    assert routed == {"national-admin-subnet.id", "national-service-subnet.id", "national-transit-subnet.id"}


def test_bastion_sits_on_the_admin_network_behind_its_own_group(production_plan):
    port = production_plan.get("national-bastion-port")
    assert port.inputs["networkId"] == "national-admin-net.id"
    assert port.inputs["securityGroupIds"] == ["national-bastion-sg.id"]
    assert production_plan.get("national-bastion").inputs["networks"] == [{"port": "national-bastion-port.id"}]


def test_a_tenant_owns_its_project_network_router_vpn_and_reaches_national_services(production_plan):
    resources = {r.name: r for r in production_plan.within("samu-30")}
    # + 2 routes back (admin, service), the premises route, 3 SIP/RTP rules to telephony and 3 from it; its group's
    # egress: HTTPS, DNS (2 servers, UDP and TCP), SIP/RTP to the premises. No transit port nor share: the provider's.
    assert len(resources) == 36
    assert resources["samu-30-subnet"].inputs["cidr"] == "10.140.4.0/24"
    # Created in the SAMU's project through a provider scoped to it (no tenant_id: that needs cloud admin).
    assert "tenantId" not in resources["samu-30-net"].inputs
    assert resources["samu-30-net"].provider == "pulumi:providers:openstack::samu-30-provider"
    assert resources["samu-30-provider"].inputs == {"region": "fr-central", "tenantName": "samu-30"}
    # Transit is shared with no SAMU: its router is attached to the port the provider made in its project.
    assert not any(r.type.endswith("rbacPolicyV2:RbacPolicyV2") for r in resources.values())
    assert resources["samu-30-router-transit"].inputs["portId"] == "port-samu-30-transit.id"
    site = resources["samu-30-vpn-site"].inputs
    assert site["peerAddress"] == "203.0.113.4" and site["psk"] == "[secret]"
    assert resources["samu-30-vpn-premises"].inputs["endpoints"] == ["172.16.4.0/24"]
    route = resources["samu-30-national-route"].inputs
    # The way back is held by the shard's transit router (10.140.0.0/21), not the national router.
    assert route["routerId"] == "national-transit-0.id" and route["destinationCidr"] == "10.140.4.0/24"
    assert "samu-30-router-transit" in resources["samu-30-national-route"].dependencies  # after the attachment
    https = resources["samu-30-national-https"].inputs
    assert https["securityGroupId"] == "national-service-sg.id" and https["remoteIpPrefix"] == "10.140.4.0/24"


def test_the_national_router_routes_each_shard_summarised_to_its_transit_router(production_plan):
    national = {r.inputs["destinationCidr"]: r.inputs["nextHop"] for r in production_plan.of_type(T["route"])
                if r.inputs["routerId"] == "national-router.id"}
    shard_0 = production_plan.get("national-transit-0-port").inputs["fixedIps"][0]["ipAddress"]
    shard_1 = production_plan.get("national-transit-1-port").inputs["fixedIps"][0]["ipAddress"]
    assert national == {"10.140.0.0/21": shard_0, "172.16.0.0/21": shard_0,
                        "10.140.8.0/21": shard_1, "172.16.8.0/22": shard_1}
    pools = production_plan.get("national-transit-subnet").inputs["allocationPools"]
    address = ipaddress.IPv4Address(shard_0)
    assert all(not (ipaddress.IPv4Address(p["start"]) <= address <= ipaddress.IPv4Address(p["end"])) for p in pools)


def test_tenant_transit_addresses_are_distinct(production_plan):
    hops = [r.inputs["nextHop"] for r in production_plan.of_type(T["route"]) if r.name.endswith("-national-route")]
    assert len(hops) == 10 and len(set(hops)) == 10


# -- defect 3: the way back, telephony from the premises, the Data Guard redo path ---------------------------------


def test_tenant_routers_route_admin_and_service_back_through_the_national_router_on_transit(production_plan):
    transit = production_plan.get("national-transit-subnet").inputs["cidr"]
    national_hop = str(ipaddress.IPv4Network(transit).network_address + 1)  # the router interface takes the gateway
    tenants = [r.name for r in production_plan.of_type("cutover:samu:Tenant")]
    for tenant in tenants:
        routes = {r.inputs["destinationCidr"]: r for r in children(production_plan, tenant, T["route"])
                  if r.inputs["routerId"] == f"{tenant}-router.id"}
        assert set(routes) == {"10.100.0.0/24", "10.100.4.0/22"}, tenant
        assert {r.inputs["nextHop"] for r in routes.values()} == {national_hop}
        assert all(f"{tenant}-router-transit" in r.dependencies for r in routes.values())


def test_sip_and_rtp_reach_the_telephony_pool_from_each_premises_only(production_plan):
    rules = [r for r in production_plan.of_type(T["rule"])
             if r.inputs["securityGroupId"] == "national-telephony-sg.id"]
    sites = {r.parent: r.inputs["remoteIpPrefix"] for r in rules}
    assert sites["samu-30"] == "172.16.4.0/24" and len(sites) == 10
    assert all(ipaddress.IPv4Network(r.inputs["remoteIpPrefix"]).prefixlen >= 16 for r in rules)
    assert sorted({(r.inputs["protocol"], r.inputs["portRangeMin"], r.inputs["portRangeMax"]) for r in rules}) == [
        ("tcp", 5060, 5061), ("udp", 5060, 5061), ("udp", 10000, 20000)]
    for node in children(production_plan, "telephony", T["port"]):
        assert "national-telephony-sg.id" in node.inputs["securityGroupIds"]
    back = production_plan.get("samu-30-premises-route").inputs
    assert back["routerId"] == "national-transit-0.id" and back["destinationCidr"] == "172.16.4.0/24"
    assert back["nextHop"] == production_plan.get("samu-30-national-route").inputs["nextHop"]  # its transit port


def test_data_guard_redo_comes_from_the_legacy_networks_to_the_rac_listener_through_a_tunnel(production_plan):
    (rule,) = [r for r in children(production_plan, "dataguard-redo", T["rule"]) if r.inputs["direction"] == "ingress"]
    assert (rule.inputs["remoteIpPrefix"], rule.inputs["portRangeMin"], rule.inputs["portRangeMax"]) == (
        "10.20.0.0/24", 1521, 1521)
    site = production_plan.get("dataguard-redo-legacy-vpn-site").inputs
    assert site["peerAddress"] == "198.51.100.7" and site["psk"] == "[secret]"
    assert production_plan.get("dataguard-redo-legacy-vpn-local").inputs["endpoints"] == ["national-service-subnet.id"]
    assert production_plan.get("dataguard-redo-legacy-vpn").inputs["routerId"] == "national-router.id"
    for node in (1, 2, 3):
        groups = production_plan.get(f"{POOL}-node-{node}-public-port").inputs["securityGroupIds"]
        assert "dataguard-redo-sg.id" in groups
    for port in children(production_plan, "telephony", T["port"]):
        assert "dataguard-redo-sg.id" not in port.inputs["securityGroupIds"]


def test_bare_metal_pool_flavor_carries_the_resource_class_and_nodes_spread_over_zones(production_plan,
                                                                                      production_provider_plan):
    flavor = production_provider_plan.get("flavor-bm.app.m").inputs  # the provider's, not ours
    assert flavor["extraSpecs"]["resources:CUSTOM_BAREMETAL_APP_M"] == "1"
    assert flavor["extraSpecs"]["resources:VCPU"] == "0" and flavor["isPublic"] is False
    access = production_provider_plan.get("flavor-bm.app.m-access").inputs
    assert access == {"flavorId": "flavor-bm.app.m.id", "tenantId": "2c9d4e7a6b1f4c03a8e5d1f0b7a93e64"}
    nodes = children(production_plan, "telephony", T["instance"])
    assert [n.inputs["availabilityZone"] for n in sorted(nodes, key=lambda n: n.name)] == [
        "fr-central-1", "fr-central-2", "fr-central-3", "fr-central-1"]
    for node in nodes:
        assert node.inputs["schedulerHints"] == [{"group": "telephony-anti-affinity.id"}]
        # The provider's private flavor, looked up by name, used by id.
        assert node.inputs["flavorId"] == "flavor-bm.app.m.id" and "flavorName" not in node.inputs
    assert production_plan.get("telephony-anti-affinity").inputs["policies"] == "anti-affinity"


def test_rac_nodes_come_from_its_pool_in_one_zone_one_rack_each(production_plan, production_provider_plan):
    pool = production_plan.get(POOL)
    assert pool.parent == RAC and pool.type == "cutover:compute:BareMetalPool"
    nodes = children(production_plan, RAC, T["instance"])
    assert len(nodes) == 3
    assert {n.inputs["availabilityZone"] for n in nodes} == {"fr-central-1"}
    # No Nova server group: with Ironic it counts per nova-compute host. Each node's flavor requires a rack.
    assert all("schedulerHints" not in n.inputs for n in nodes) and production_plan.get(f"{POOL}-anti-affinity") is None
    racks = [production_provider_plan.get(n.inputs["flavorId"].removesuffix(".id")).inputs["extraSpecs"] for n in nodes]
    assert [{k: v for k, v in spec.items() if k.startswith("trait:")} for spec in racks] == [
        {f"trait:CUSTOM_RACK_{r}": "required"} for r in "ABC"]


# -- defect 1: shared storage that bare-metal nodes can reach ---------------------------------------------------------


def test_bare_metal_nodes_have_no_nova_volume_attachment(production_plan, rehearsal_plan):
    # Nova's ironic driver cannot attach volumes (Nova feature support matrix: attach-volume missing for Ironic).
    assert production_plan.of_type(T["attach"]) == [] and rehearsal_plan.of_type(T["attach"]) == []


def test_every_asm_volume_is_exported_over_iscsi_to_every_rac_node(production_plan, production_provider_plan):
    volumes = children(production_plan, RAC, T["volume"])
    nodes = {n.inputs["name"]: n for n in children(production_plan, RAC, T["instance"])}
    exports = children(production_plan, RAC, T["export"])
    assert {(e.inputs["volumeId"], e.inputs["hostName"]) for e in exports} == {
        (f"{v.name}.id", n) for v in volumes for n in nodes}
    assert len(exports) == 3 * 11  # 4 DATA, 4 FRA, 3 OCR LUNs to each of 3 nodes
    for export in exports:
        node = export.inputs["hostName"]
        storage_port = production_plan.get(f"{node}-storage-a-port").inputs
        assert export.inputs["ipAddress"] == storage_port["fixedIps"][0]["ipAddress"]
        assert export.inputs["initiator"] == f"iqn.2026-01.fr.samu.cutover:{node}"
        assert export.inputs["multipath"] is True and export.inputs["attachMode"] == "rw"
    for volume in volumes:
        assert "multiattach" not in volume.inputs  # Volume has no such argument; the type carries it
        assert volume.inputs["volumeType"] == "rac-asm-multiattach"
    spec = production_provider_plan.get("volume-type-rac-asm-multiattach").inputs["extraSpecs"]
    assert spec == {"multiattach": "<is> True", "volume_backend_name": "array-iscsi"}


def test_asm_exports_form_one_chain(production_plan):
    attachments = {a.name: a for a in children(production_plan, RAC, T["export"])}
    previous = {name: [d for d in a.dependencies if d in attachments] for name, a in attachments.items()}
    heads = [name for name, deps in previous.items() if not deps]
    assert heads == [f"{RAC}-asm-data-1-node-1"]
    # Walk the chain from its head: it visits every attachment exactly once.
    successors = {deps[0]: name for name, deps in previous.items() if deps}
    walked, current = [heads[0]], heads[0]
    while current in successors:
        current = successors[current]
        walked.append(current)
    assert sorted(walked) == sorted(attachments)


# -- defect 2: fixed addresses per role, outside DHCP ----------------------------------------------------------------


def test_scan_nodes_and_vips_sit_at_their_own_offsets_and_are_allowed_on_public_ports_only(production_plan):
    vips = [production_plan.get(f"{RAC}-vip-{i}-port").inputs["fixedIps"][0]["ipAddress"] for i in (1, 2, 3)]
    scans = [production_plan.get(f"{RAC}-scan-{i}-port").inputs["fixedIps"][0]["ipAddress"] for i in (1, 2, 3)]
    assert scans == ["10.100.5.1", "10.100.5.2", "10.100.5.3"]
    assert vips == ["10.100.5.32", "10.100.5.33", "10.100.5.34"]
    for node in (1, 2, 3):
        public = production_plan.get(f"{POOL}-node-{node}-public-port").inputs
        assert [p["ipAddress"] for p in public["allowedAddressPairs"]] == scans + vips
        assert public["fixedIps"][0]["ipAddress"] == f"10.100.5.{15 + node}"
        for nic, net in (("interconnect", 8), ("interconnect-b", 10), ("storage-a", 12), ("storage-b", 13)):
            port = production_plan.get(f"{POOL}-node-{node}-{nic}-port").inputs
            assert "allowedAddressPairs" not in port
            assert port["fixedIps"][0]["ipAddress"] == f"10.100.{net}.{15 + node}"


def _pools(plan: Plan, subnet: str) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    return [(ipaddress.IPv4Address(p["start"]), ipaddress.IPv4Address(p["end"]))
            for p in plan.get(subnet).inputs["allocationPools"]]


def test_every_fixed_address_is_outside_its_subnets_dhcp_pools(production_plan, production_provider_plan):
    both = Plan.of([*production_plan, *production_provider_plan])  # the storage subnets are the provider's
    subnet_of = {f"{s.name}.id": s.name for s in both.of_type(T["subnet"])}
    fixed = [(ip["subnetId"], ip["ipAddress"]) for port in production_plan.of_type(T["port"])
             for ip in port.inputs.get("fixedIps", []) if ip.get("ipAddress")]
    assert len(fixed) > 20  # RAC public, private and storage, SCAN, VIPs, tenant transit ports
    assert {"subnet-storage-a.id", "subnet-storage-b.id"} <= {subnet for subnet, _ in fixed}
    for subnet_id, address in fixed:
        ip = ipaddress.IPv4Address(address)
        pools = _pools(both, subnet_of[subnet_id])
        assert not any(start <= ip <= end for start, end in pools), (subnet_id, address)
    # and the pools still serve the rest of the subnet
    assert _pools(production_plan, "national-service-subnet")[0][0] == ipaddress.IPv4Address("10.100.4.2")


# -- defect 4: HAIP, jumbo frames, SCAN in DNS, the flavor by id -----------------------------------------------------


def test_two_interconnects_with_jumbo_frames_each_on_every_rac_node(production_plan):
    for key in ("interconnect", "interconnect-b"):
        network = production_plan.get(f"national-{key}-net").inputs
        assert network["mtu"] == 9000 and network["tags"] == ["cutover-zone=interconnect"]
        assert production_plan.get(f"national-{key}-subnet").inputs["noGateway"] is True
    for node in children(production_plan, RAC, T["instance"]):
        ports = [n["port"] for n in node.inputs["networks"]]
        assert [p.removeprefix(f"{node.name}-").removesuffix("-port.id") for p in ports] == [
            "public", "interconnect", "interconnect-b", "storage-a", "storage-b"]


def test_scan_name_resolves_to_the_three_scan_addresses_in_designate(production_plan):
    record = production_plan.get(f"{RAC}-scan-dns").inputs
    assert record["name"] == f"{RAC}-scan.db.production.samu.internal." and record["type"] == "A"
    assert record["records"] == ["10.100.5.1", "10.100.5.2", "10.100.5.3"]
    assert record["zoneId"] == "national-dns-zone.id"
    assert production_plan.get("national-dns-zone").inputs["name"] == "db.production.samu.internal."


def test_rac_nodes_use_the_providers_private_flavor_by_id(production_plan, production_provider_plan):
    for node, rack in zip(sorted(children(production_plan, RAC, T["instance"]), key=lambda n: n.name), "abc"):
        assert node.inputs["flavorId"] == f"flavor-bm.rac.xl.rack-{rack}.id"
        assert production_provider_plan.get(f"flavor-bm.rac.xl.rack-{rack}").inputs["isPublic"] is False
        assert production_plan.get(f"flavor-bm.rac.xl.rack-{rack}") is None


def test_interconnect_ports_have_port_security_off_with_no_security_groups(production_plan):
    for node in (1, 2, 3):
        for nic in ("interconnect", "interconnect-b"):
            port = production_plan.get(f"{POOL}-node-{node}-{nic}-port").inputs
            assert port["portSecurityEnabled"] is False and port["noSecurityGroups"] is True
            assert "securityGroupIds" not in port
        for path in ("storage-a", "storage-b"):
            storage = production_plan.get(f"{POOL}-node-{node}-{path}-port").inputs
            assert storage["securityGroupIds"] == ["national-storage-sg.id"]
