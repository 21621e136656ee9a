"""Each component's resource graph, from the real program under Pulumi's mock runtime."""

from __future__ import annotations

from cutover.infra.plan import Plan, PlannedResource

T = {
    "instance": "openstack:compute/instance:Instance",
    "attach": "openstack:compute/volumeAttach:VolumeAttach",
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
        if not resource.is_component:
            assert resource.provider == "pulumi:providers:openstack::default"


def test_national_core_has_five_networks_and_only_routed_zones_reach_the_router(production_plan):
    networks = children(production_plan, "national", T["network"])
    assert sorted(n.inputs["tags"][0] for n in networks) == [
        f"cutover-zone={z}" for z in ("admin", "interconnect", "service", "storage", "transit")]
    subnets = {s.name: s for s in children(production_plan, "national", T["subnet"])}
    assert subnets["national-interconnect-subnet"].inputs["noGateway"] is True
    assert subnets["national-storage-subnet"].inputs["noGateway"] is True
    assert subnets["national-admin-subnet"].inputs["noGateway"] is False
    routed = {i.inputs["subnetId"] for i in children(production_plan, "national", T["iface"])}
    assert routed == {"national-admin-subnet.id", "national-service-subnet.id", "national-transit-subnet.id"}


def test_bastion_sits_on_the_admin_network_behind_its_own_group(production_plan):
    port = production_plan.get("national-bastion-port")
    assert port.inputs["networkId"] == "national-admin-net.id"
    assert port.inputs["securityGroupIds"] == ["national-bastion-sg.id"]
    assert production_plan.get("national-bastion").inputs["networks"] == [{"port": "national-bastion-port.id"}]


def test_a_tenant_owns_its_project_network_router_vpn_and_reaches_national_services(production_plan):
    resources = {r.name: r for r in production_plan.within("samu-30")}
    assert len(resources) == 21
    assert resources["samu-30-subnet"].inputs["cidr"] == "10.140.4.0/24"
    assert resources["samu-30-net"].inputs["tenantId"] == "samu-30-project.id"
    site = resources["samu-30-vpn-site"].inputs
    assert site["peerAddress"] == "203.0.113.4" and site["psk"] == "[secret]"
    assert resources["samu-30-vpn-premises"].inputs["endpoints"] == ["172.16.4.0/24"]
    route = resources["samu-30-national-route"].inputs
    assert route["routerId"] == "national-router.id" and route["destinationCidr"] == "10.140.4.0/24"
    transit = resources["samu-30-transit-port"]
    assert route["nextHop"] == transit.inputs["fixedIps"][0]["ipAddress"]
    assert "samu-30-transit-share" in transit.dependencies  # the port waits for the RBAC share
    https = resources["samu-30-national-https"].inputs
    assert https["securityGroupId"] == "national-service-sg.id" and https["remoteIpPrefix"] == "10.140.4.0/24"


def test_tenant_transit_addresses_are_distinct(production_plan):
    hops = [r.inputs["nextHop"] for r in production_plan.of_type("openstack:networking/routerRoute:RouterRoute")]
    assert len(hops) == 10 and len(set(hops)) == 10


def test_bare_metal_pool_flavor_carries_the_resource_class_and_nodes_spread_over_zones(production_plan):
    flavor = production_plan.get("telephony-flavor").inputs
    assert flavor["extraSpecs"]["resources:CUSTOM_BAREMETAL_APP_M"] == "1"
    assert flavor["extraSpecs"]["resources:VCPU"] == "0" and flavor["isPublic"] is False
    nodes = children(production_plan, "telephony", T["instance"])
    assert [n.inputs["availabilityZone"] for n in sorted(nodes, key=lambda n: n.name)] == [
        "fr-central-1", "fr-central-2", "fr-central-3", "fr-central-1"]
    for node in nodes:
        assert node.inputs["schedulerHints"] == [{"group": "telephony-anti-affinity.id"}]
        assert node.inputs["flavorName"] == "bm.app.m"
    assert production_plan.get("telephony-anti-affinity").inputs["policies"] == "anti-affinity"


def test_rac_nodes_come_from_its_pool_in_the_anti_affinity_group(production_plan):
    pool = production_plan.get(POOL)
    assert pool.parent == RAC and pool.type == "cutover:compute:BareMetalPool"
    nodes = children(production_plan, RAC, T["instance"])
    assert len(nodes) == 3
    assert {n.inputs["availabilityZone"] for n in nodes} == {"fr-central-1", "fr-central-2", "fr-central-3"}
    assert all(n.inputs["schedulerHints"][0]["group"] == f"{POOL}-anti-affinity.id" for n in nodes)


def test_every_rac_node_is_attached_to_every_asm_volume_with_multiattach(production_plan):
    volumes = children(production_plan, RAC, T["volume"])
    nodes = children(production_plan, RAC, T["instance"])
    attachments = children(production_plan, RAC, T["attach"])
    pairs = {(a.inputs["volumeId"], a.inputs["instanceId"]) for a in attachments if a.inputs["multiattach"] is True}
    assert pairs == {(f"{v.name}.id", f"{n.name}.id") for v in volumes for n in nodes}
    assert len(attachments) == 9
    for volume in volumes:
        assert "multiattach" not in volume.inputs  # Volume has no such argument; the type carries it
        assert volume.inputs["volumeType"] == "rac-asm-multiattach"
    spec = production_plan.get("national-asm-volume-type").inputs["extraSpecs"]
    assert spec == {"multiattach": "<is> True", "volume_backend_name": "ceph-luks"}


def test_asm_attachments_form_one_chain(production_plan):
    attachments = {a.name: a for a in children(production_plan, RAC, T["attach"])}
    previous = {name: [d for d in a.dependencies if d in attachments] for name, a in attachments.items()}
    heads = [name for name, deps in previous.items() if not deps]
    assert heads == [f"{RAC}-asm-data-node-1"]
    # Walk the chain from its head: it visits every attachment exactly once.
    successors = {deps[0]: name for name, deps in previous.items() if deps}
    walked, current = [heads[0]], heads[0]
    while current in successors:
        current = successors[current]
        walked.append(current)
    assert sorted(walked) == sorted(attachments)


def test_vip_and_scan_addresses_are_allowed_on_public_ports_only(production_plan):
    vips = [production_plan.get(f"{RAC}-vip-{i}-port") for i in (1, 2, 3)]
    scans = [production_plan.get(f"{RAC}-scan-{i}-port") for i in (1, 2, 3)]
    floating = sorted(p.inputs["fixedIps"][0]["ipAddress"] for p in vips + scans)
    assert floating == [f"10.100.5.{n}" for n in range(4, 10)]
    for node in (1, 2, 3):
        public = production_plan.get(f"{POOL}-node-{node}-public-port").inputs
        assert sorted(p["ipAddress"] for p in public["allowedAddressPairs"]) == floating
        assert public["fixedIps"][0]["ipAddress"] == f"10.100.5.{node}"
        for nic in ("interconnect", "storage"):
            assert "allowedAddressPairs" not in production_plan.get(f"{POOL}-node-{node}-{nic}-port").inputs


def test_interconnect_ports_have_port_security_off_with_no_security_groups(production_plan):
    for node in (1, 2, 3):
        port = production_plan.get(f"{POOL}-node-{node}-interconnect-port").inputs
        assert port["portSecurityEnabled"] is False and port["noSecurityGroups"] is True
        assert "securityGroupIds" not in port
        storage = production_plan.get(f"{POOL}-node-{node}-storage-port").inputs
        assert storage["securityGroupIds"] == ["national-storage-sg.id"]
