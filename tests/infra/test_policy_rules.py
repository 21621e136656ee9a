"""The rules of issue 8: each has a compliant and a violating case; IPv4 and IPv6 sources are both read."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest

from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import (
    SHARED_RULES,
    DatabaseReach,
    PolicyContext,
    PublicExposure,
    TemporaryReach,
    check_plan,
    parse_prefix,
    rule_source,
)

OS = "pulumi:providers:openstack::default"
TYPES = {
    "volume": "openstack:blockstorage/volume:Volume", "vtype": "openstack:blockstorage/volumeTypeV3:VolumeTypeV3",
    "instance": "openstack:compute/instance:Instance", "net": "openstack:networking/network:Network",
    "subnet": "openstack:networking/subnet:Subnet", "port": "openstack:networking/port:Port",
    "router": "openstack:networking/router:Router", "iface": "openstack:networking/routerInterface:RouterInterface",
    "rbac": "openstack:networking/rbacPolicyV2:RbacPolicyV2", "sg": "openstack:networking/secGroup:SecGroup",
    "rule": "openstack:networking/secGroupRule:SecGroupRule", "provider": "pulumi:providers:openstack",
    "site": "openstack:vpnaas/siteConnection:SiteConnection",
}
CTX = PolicyContext(
    region="fr-central",
    availability_zones=frozenset({"fr-central-1", "fr-central-2"}),
    operator_sources=(ipaddress.ip_network("192.0.2.0/28"), ipaddress.ip_network("2001:db8:a0::/48")),
    encrypted_backends=frozenset({"ceph-luks"}),
    encrypted_volume_types=frozenset({"encrypted-ssd"}),
    qualified_endpoints={"fr-central": frozenset({"https://identity.fr-central.cloud.example/v3"})},
    public_services=(PublicExposure("portal", "tcp", frozenset({443})),),
    database=DatabaseReach(ports=(1521, 1522), zones=frozenset({"service"}),
                           temporary=(TemporaryReach(ipaddress.ip_network("10.20.0.0/24"), dt.date(2027, 6, 30),
                                                     "Data Guard from legacy"),)),
    today=dt.date(2026, 11, 30),
)
OWNED = {"metadata": {"cutover-owner": "national-platform"}}


def res(kind: str, logical: str, **inputs: Any) -> PlannedResource:
    provider = None if kind == "provider" else OS
    return PlannedResource(TYPES[kind], logical, inputs, None, (), provider)


def found(plan: Plan, ctx: PolicyContext = CTX) -> list[tuple[str, str]]:
    return [(v.rule, v.resource) for v in check_plan(plan, ctx, SHARED_RULES)]


def networks(*zones: str) -> list[PlannedResource]:
    """A network and subnet per zone: service 10.100.4.0/22, interconnect 10.100.8.0/24, storage 10.100.9.0/24..."""
    cidrs = {"admin": "10.100.0.0/24", "service": "10.100.4.0/22", "interconnect": "10.100.8.0/24",
             "storage": "10.100.9.0/24", "transit": "10.100.1.0/24"}
    made = []
    for zone in zones:
        made.append(res("net", f"{zone}-net", tags=[f"cutover-zone={zone}"]))
        made.append(res("subnet", f"{zone}-subnet", networkId=f"{zone}-net.id", cidr=cidrs[zone],
                        tags=[f"cutover-zone={zone}"], noGateway=zone in ("interconnect", "storage")))
    return made


def ingress(name: str, group: str, protocol: str = "tcp", ports: tuple[int, int] | None = (443, 443),
            **source: Any) -> PlannedResource:
    low, high = ports if ports else (None, None)
    return res("rule", name, direction="ingress", protocol=protocol, portRangeMin=low, portRangeMax=high,
               securityGroupId=f"{group}.id", **source)


PORTAL_SG = res("sg", "portal-sg", tags=["cutover-role=portal"], deleteDefaultRules=True)
SERVICE_SG = res("sg", "service-sg", tags=["cutover-role=service"], deleteDefaultRules=True)


# -- addresses: IPv4 and IPv6, anywhere on purpose ---------------------------------------


@pytest.mark.parametrize("text, version, length", [("10.0.0.0/8", 4, 8), ("0.0.0.0/0", 4, 0), ("::/0", 6, 0),
                                                   ("2001:db8::/32", 6, 32), ("10.1.2.3", 4, 32),
                                                   ("2001:db8::1", 6, 128), (" 10.0.0.0/8 ", 4, 8)])
def test_ipv4_and_ipv6_prefixes_are_both_parsed(text, version, length):
    prefix = parse_prefix(text)
    assert prefix is not None and (prefix.version, prefix.prefixlen) == (version, length)


@pytest.mark.parametrize("text", ["", "not-a-cidr", "10.0.0.0/33", "::/129", None, 3])
def test_what_is_not_a_prefix_is_none(text):
    assert parse_prefix(text) is None


@pytest.mark.parametrize("source, anywhere", [
    ({"remoteIpPrefix": "0.0.0.0/0"}, True), ({"remoteIpPrefix": "::/0"}, True),
    ({}, True),  # neither prefix nor group: Neutron opens it to everything
    ({"ethertype": "IPv6"}, True), ({"remoteIpPrefix": "garbage"}, True),  # unreadable never passes
    ({"remoteIpPrefix": "::/1"}, False), ({"remoteIpPrefix": "2001:db8::/32"}, False),
    ({"remoteIpPrefix": "10.0.0.0/8"}, False), ({"remoteGroupId": "service-sg.id"}, False),
])
def test_anywhere_is_a_zero_length_prefix_of_either_family_on_purpose(source, anywhere):
    plan = Plan.of([SERVICE_SG, ingress("r", "service-sg", **source)])
    assert rule_source(plan, plan.get("r")).anywhere is anywhere  # type: ignore[arg-type]


def test_an_ipv6_source_is_never_inside_an_ipv4_network_and_does_not_crash():
    bastion = res("sg", "bastion-sg", tags=["cutover-role=bastion"], deleteDefaultRules=True)
    v6_operators = ingress("ops6", "bastion-sg", ports=(22, 22), remoteIpPrefix="2001:db8:a0:1::/64")
    v6_wide = ingress("wide6", "bastion-sg", ports=(22, 22), remoteIpPrefix="2001:db8::/32")
    v6_admin = ingress("admin6", "admin-sg", ports=(22, 22), remoteIpPrefix="fd00::/8")
    plan = Plan.of([bastion, res("sg", "admin-sg", deleteDefaultRules=True), v6_operators, v6_wide, v6_admin, *networks("admin")])
    # Issue 20: a /32 and a /8 are wider than any organisation's /48 and inside no known network.
    assert sorted(found(plan)) == [("admin-from-bastion", "admin6"), ("admin-from-bastion", "wide6"),
                                   ("no-ingress-from-anywhere", "admin6"), ("no-ingress-from-anywhere", "wide6")]


# -- no-ingress-from-anywhere (SecNumCloud 3.2 §13.2) --------------------------------------


def test_https_from_anywhere_to_a_service_declared_public_passes():
    plan = Plan.of([PORTAL_SG, ingress("v4", "portal-sg", remoteIpPrefix="0.0.0.0/0"),
                    ingress("v6", "portal-sg", remoteIpPrefix="::/0", ethertype="IPv6")])
    assert found(plan) == []


@pytest.mark.parametrize("rule", [
    ingress("r", "service-sg", remoteIpPrefix="0.0.0.0/0"),  # not a public service
    ingress("r", "service-sg", remoteIpPrefix="::/0"),  # IPv6 anywhere: matched, not missed
    ingress("r", "portal-sg", ports=(80, 443), remoteIpPrefix="0.0.0.0/0"),  # public, but wider than declared
    ingress("r", "portal-sg", protocol="udp", remoteIpPrefix="::/0"),  # public, but not this protocol
    ingress("r", "service-sg"),  # no source at all: everything
])
def test_ingress_from_anywhere_elsewhere_is_a_violation(rule):
    assert found(Plan.of([PORTAL_SG, SERVICE_SG, rule])) == [("no-ingress-from-anywhere", "r")]


# -- database-reach (SecNumCloud 3.2 §9.7, §13.2) ---------------------------------------


@pytest.mark.parametrize("source", [{"remoteIpPrefix": "10.100.4.0/22"}, {"remoteIpPrefix": "10.100.5.0/26"},
                                    {"remoteIpPrefix": "10.20.0.0/24"}])
def test_the_listener_from_the_service_network_or_legacy_during_migration_passes(source):
    plan = Plan.of([SERVICE_SG, *networks("service"), ingress("db", "service-sg", ports=(1521, 1521), **source)])
    assert found(plan) == []


@pytest.mark.parametrize("source, ports", [
    ({"remoteIpPrefix": "10.140.1.0/24"}, (1521, 1521)),  # a SAMU tenant straight to the database
    ({"remoteIpPrefix": "10.100.0.0/16"}, (1522, 1522)),  # wider than the service network (Data Guard port)
    ({"remoteGroupId": "portal-sg.id"}, (1521, 1521)),  # a group the policy does not name
])
def test_database_ports_from_elsewhere_are_a_violation(source, ports):
    plan = Plan.of([SERVICE_SG, PORTAL_SG, *networks("service"), ingress("db", "service-sg", ports=ports, **source)])
    assert found(plan) == [("database-reach", "db")]


def test_a_port_range_that_includes_the_listener_counts_as_opening_it():
    wide = ingress("db", "service-sg", ports=(1500, 1600), remoteIpPrefix="10.140.0.0/16")
    assert found(Plan.of([SERVICE_SG, *networks("service"), wide])) == [("database-reach", "db")]


def test_the_legacy_network_is_refused_once_the_migration_period_is_over():
    plan = Plan.of([SERVICE_SG, *networks("service"),
                    ingress("redo", "service-sg", ports=(1521, 1521), remoteIpPrefix="10.20.0.0/24")])
    later = PolicyContext(**{**CTX.__dict__, "today": dt.date(2027, 7, 1)})
    violations = check_plan(plan, later, SHARED_RULES)
    assert [(v.rule, v.resource) for v in violations] == [("database-reach", "redo")]
    assert "expired" in violations[0].message


# -- boot-volume-encrypted (SecNumCloud 3.2 §10.1) ----------------------------------------

LUKS_TYPE = res("vtype", "vt", name="rac-asm", extraSpecs={"volume_backend_name": "ceph-luks"})


@pytest.mark.parametrize("device", [
    {"sourceType": "image", "destinationType": "volume", "volumeType": "encrypted-ssd", "volumeSize": 50},
    {"sourceType": "blank", "destinationType": "volume", "volumeType": "rac-asm", "volumeSize": 10},
    {"sourceType": "image", "destinationType": "local"},  # the node's own disk
])
def test_boot_devices_on_encrypted_types_pass(device):
    plan = Plan.of([LUKS_TYPE, res("instance", "i", availabilityZone="fr-central-1", blockDevices=[device], **OWNED)])
    assert found(plan) == []


@pytest.mark.parametrize("device", [
    {"sourceType": "image", "destinationType": "volume", "volumeSize": 50},  # default type
    {"sourceType": "image", "destinationType": "volume", "volumeType": "standard"},
    {"sourceType": "volume", "destinationType": "volume", "uuid": "3f1c-not-in-the-plan"},
])
def test_an_unencrypted_or_unknown_boot_volume_is_a_violation(device):
    plan = Plan.of([LUKS_TYPE, res("instance", "i", availabilityZone="fr-central-1", blockDevices=[device], **OWNED)])
    assert found(plan) == [("boot-volume-encrypted", "i")]


# -- qualified-provider (SecNumCloud 3.2 §19.2) --------------------------------------------


def test_an_explicit_provider_in_the_qualified_region_and_endpoint_passes():
    provider = res("provider", "fr", region="fr-central", authUrl="https://identity.fr-central.cloud.example/v3/")
    assert found(Plan.of([provider])) == []


@pytest.mark.parametrize("inputs", [
    {"region": "eu-west-1"}, {"region": "fr-rehearsal"},  # not this environment's region
    {}, {"region": "fr-central", "authUrl": "https://keystone.other-cloud.example/v3"},
])
def test_a_provider_outside_the_qualified_region_or_endpoints_is_a_violation(inputs):
    assert found(Plan.of([res("provider", "p", **inputs)])) == [("qualified-provider", "p")]


# -- never-routed (SecNumCloud 3.2 §13.2) ---------------------------------------------------


def test_routing_only_admin_service_and_transit_passes():
    plan = Plan.of([*networks("service", "interconnect", "storage"), res("router", "r", externalNetworkId="ext"),
                    res("iface", "r-service", routerId="r.id", subnetId="service-subnet.id")])
    assert found(plan) == []


@pytest.mark.parametrize("extra, culprit", [
    ([res("iface", "x", routerId="r.id", subnetId="storage-subnet.id")], "x"),
    ([res("port", "p", networkId="interconnect-net.id"), res("iface", "x", routerId="r.id", portId="p.id")], "x"),
    ([res("router", "x", externalNetworkId="storage-net.id")], "x"),
    ([res("subnet", "x", networkId="interconnect-net.id", cidr="10.100.10.0/24", noGateway=False)], "x"),
])
def test_a_router_or_gateway_on_a_never_routed_network_is_a_violation(extra, culprit):
    plan = Plan.of([*networks("interconnect", "storage"), res("router", "r", externalNetworkId="ext"), *extra])
    assert found(plan) == [("never-routed", culprit)]


# -- port-security-interconnect-only (SecNumCloud 3.2 §13.2) --------------------------------


def test_port_security_off_on_the_interconnect_passes():
    plan = Plan.of([*networks("interconnect"), res("port", "p", networkId="interconnect-net.id",
                                                   portSecurityEnabled=False, noSecurityGroups=True)])
    assert found(plan) == []


@pytest.mark.parametrize("zone", ["service", "storage"])
def test_port_security_off_elsewhere_is_a_violation(zone):
    plan = Plan.of([*networks(zone), res("port", "p", networkId=f"{zone}-net.id", portSecurityEnabled=False)])
    assert found(plan) == [("port-security-interconnect-only", "p")]


# -- no-share-with-everyone (SecNumCloud 3.2 §9.7) ------------------------------------------


def test_sharing_a_network_with_one_project_passes():
    rbac = res("rbac", "share", action="access_as_shared", objectType="network", objectId="service-net.id",
               targetTenant="samu-30-project.id")
    assert found(Plan.of([*networks("service"), rbac])) == []


def test_sharing_a_network_with_every_project_is_a_violation():
    rbac = res("rbac", "share", action="access_as_shared", objectType="network", objectId="transit-net.id",
               targetTenant="*")
    violations = check_plan(Plan.of([*networks("transit"), rbac]), CTX, SHARED_RULES)
    assert [(v.rule, v.resource) for v in violations] == [("no-share-with-everyone", "share")]
    assert "transit-net" in violations[0].message


# -- owner-tagged (SecNumCloud 3.2 §8.1, HDS A.5.9) ------------------------------------------


@pytest.mark.parametrize("owner", [{"metadata": {"cutover-owner": "national-platform"}},
                                   {"tags": ["cutover-samu=30"]}, {"metadata": {"cutover-samu": "2A"}}])
def test_instances_and_volumes_naming_an_owner_or_samu_pass(owner):
    plan = Plan.of([LUKS_TYPE, res("instance", "i", availabilityZone="fr-central-1", **owner),
                    res("volume", "v", volumeType="rac-asm", size=1, **owner)])
    assert found(plan) == []


@pytest.mark.parametrize("owner", [{}, {"metadata": {"pool": "telephony"}}, {"tags": ["cutover-owner="]},
                                   {"metadata": {"cutover-owner": " "}}])
def test_an_instance_or_volume_without_an_owner_is_a_violation(owner):
    plan = Plan.of([LUKS_TYPE, res("instance", "i", availabilityZone="fr-central-1", **owner),
                    res("volume", "v", volumeType="rac-asm", size=1, **owner)])
    assert found(plan) == [("owner-tagged", "i"), ("owner-tagged", "v")]


# -- no-credential-literal (SecNumCloud 3.2 §10.5, HDS A.5.17), plan side ------------------------


def test_secrets_in_a_plan_pass():
    plan = Plan.of([res("site", "vpn", psk="[secret]", peerAddress="203.0.113.1"),
                    res("provider", "p", region="fr-central", password="[secret]")])
    assert found(plan) == []


@pytest.mark.parametrize("resource", [res("site", "x", psk="hunter2-literal"),
                                      res("instance", "x", adminPass="Sup3r!", availabilityZone="fr-central-1",
                                          **OWNED),
                                      res("provider", "x", region="fr-central", applicationCredentialSecret="abc")])
def test_a_credential_literal_in_a_plan_is_a_violation(resource):
    assert found(Plan.of([resource])) == [("no-credential-literal", "x")]
