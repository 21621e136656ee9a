"""tenant add / list: one edit of the inventory, comments kept, bad requests refused."""

from __future__ import annotations

import ipaddress

import pytest

from cutover.errors import InputError
from cutover.model.inventory import load_inventory
from cutover.model.tenants import NewTenant, add_tenant, allocate_cidr, list_tenants

HOSTS = "inventories/production/hosts.yml"


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_allocation_takes_the_lowest_free_slash_24():
    pool = net("10.140.0.0/22")
    assert allocate_cidr(pool, [net("10.140.0.0/24"), net("10.140.2.0/24")]) == net("10.140.1.0/24")
    assert allocate_cidr(pool, [net("10.140.0.0/23"), net("10.140.2.0/24")]) == net("10.140.3.0/24")
    assert allocate_cidr(pool, [net("10.140.0.0/22")]) is None


def test_add_puts_the_samu_in_its_wave_keeps_comments_and_list_shows_it(project_copy):
    before = (project_copy / HOSTS).read_text(encoding="utf-8")
    samu = add_tenant(project_copy, "production", NewTenant(code="974", name="Saint-Denis (La Réunion)", wave=3))
    after = (project_copy / HOSTS).read_text(encoding="utf-8")
    assert samu.host == "samu-974" and samu.wave == 3 and samu.cidr == net("10.140.0.0/24")
    assert after.startswith(before.rstrip("\n"))  # every line kept, comments included
    assert after.endswith("        wave3:\n          hosts:\n            samu-974:\n")
    inventory = load_inventory(project_copy, "production")
    assert inventory.waves()[3] == ("samu-974",)
    assert [row.code for row in list_tenants(inventory)][-1] == "974"


@pytest.mark.parametrize("code, message", [("20", "not a département code"), ("30", "already in inventory"),
                                           ("7", "not a département code")])
def test_add_refuses_bad_or_duplicate_codes_and_leaves_files_alone(project_copy, code, message):
    before = (project_copy / HOSTS).read_text(encoding="utf-8")
    with pytest.raises(InputError, match=message):
        add_tenant(project_copy, "production", NewTenant(code=code, name="X", wave=2))
    assert (project_copy / HOSTS).read_text(encoding="utf-8") == before


def test_add_refuses_when_the_pool_is_full(project_copy, edit):
    edit("inventories/production/group_vars/all.yml",
         lambda text: text.replace("cutover_tenant_pool: 10.140.0.0/16", "cutover_tenant_pool: 10.140.0.0/20"))
    for code in ("02", "03", "04", "05", "06", "07"):  # a /20 holds 16 /24s; ten are taken
        add_tenant(project_copy, "production", NewTenant(code=code, name=code, wave=2))
    with pytest.raises(InputError, match="no free /24"):
        add_tenant(project_copy, "production", NewTenant(code="08", name="08", wave=2))


@pytest.mark.parametrize("site, message", [
    ("0.0.0.0/0", "far too wide"),
    ("10.100.4.0/24", "overlaps the national service network"),
    ("10.140.0.0/24", "overlaps the tenant pool"),
])
def test_add_refuses_a_dangerous_site_network_and_leaves_files_alone(project_copy, site, message):
    before = (project_copy / HOSTS).read_text(encoding="utf-8")
    with pytest.raises(InputError, match=message) as refused:
        add_tenant(project_copy, "production", NewTenant(code="974", name="Saint-Denis", wave=3,
                                                         vpn_peer=ipaddress.IPv4Address("198.51.100.7"),
                                                         site_cidr=net(site)))
    assert "premises' own private network" in str(refused.value)
    assert (project_copy / HOSTS).read_text(encoding="utf-8") == before
    assert not (project_copy / "inventories/production/host_vars/samu-974.yml").exists()


# -- issue 20: a VPN needs its site network; edit and remove with a diff to review ------------------------------


def test_add_refuses_a_vpn_without_its_site_network(project_copy):
    with pytest.raises(InputError, match="--vpn-peer without --site-cidr"):
        add_tenant(project_copy, "production", NewTenant(code="974", name="Saint-Denis", wave=3,
                                                         vpn_peer=ipaddress.IPv4Address("198.51.100.7")))
    assert not (project_copy / "inventories/production/host_vars/samu-974.yml").exists()


def test_add_refuses_premises_overlapping_another_samus(project_copy):
    with pytest.raises(InputError, match="overlaps the premises of SAMU 30"):
        add_tenant(project_copy, "production", NewTenant(code="974", name="Saint-Denis", wave=3,
                                                         vpn_peer=ipaddress.IPv4Address("198.51.100.7"),
                                                         site_cidr=net("172.16.4.0/23")))


def test_edit_changes_name_wave_and_vpn_keeps_the_network_and_shows_the_diff(project_copy):
    from cutover.model.tenants import edit_tenant

    vars_file = project_copy / "inventories/production/host_vars/samu-30.yml"
    before = vars_file.read_text(encoding="utf-8")
    request = NewTenant(code="30", name="Nîmes", wave=2, vpn_peer=ipaddress.IPv4Address("203.0.113.44"),
                        site_cidr=net("172.16.44.0/24"))
    preview = edit_tenant(project_copy, "production", request, dry_run=True)
    assert vars_file.read_text(encoding="utf-8") == before and "+samu_site_cidr: 172.16.44.0/24" in preview.diff
    change = edit_tenant(project_copy, "production", request)
    assert change.diff == preview.diff and "-            samu-30:" in change.diff
    samu = load_inventory(project_copy, "production").samu_by_code("30")
    assert (samu.name, samu.wave, str(samu.site_cidr), samu.cidr) == ("Nîmes", 2, "172.16.44.0/24", net("10.140.4.0/24"))
    with pytest.raises(InputError, match="--site-cidr without --vpn-peer"):
        edit_tenant(project_copy, "production", NewTenant(code="30", name="N", wave=2, site_cidr=net("172.16.9.0/24")))


def test_remove_takes_the_host_and_its_vars_out_and_an_unknown_code_is_refused(project_copy):
    from cutover.model.tenants import remove_tenant

    change = remove_tenant(project_copy, "production", "30")
    assert "-            samu-30:" in change.diff and "+++ /dev/null" in change.diff
    inventory = load_inventory(project_copy, "production")
    assert "30" not in {s.code for s in inventory.samus.values()} and len(inventory.samus) == 9
    assert not (project_copy / "inventories/production/host_vars/samu-30.yml").exists()
    with pytest.raises(InputError, match="no SAMU 30"):
        remove_tenant(project_copy, "production", "30")
