"""The whole platform of one environment, built from its inventory: what ``infra/__main__.py`` calls."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from cutover.infra.components.baremetal import BareMetalPool, BareMetalPoolArgs, Nic
from cutover.infra.components.migration import PSK_KEY, DataGuardPath, DataGuardPathArgs
from cutover.infra.components.national import NationalCore, NationalCoreArgs, TransitShard
from cutover.infra.components.provider import ProviderGrants, ProviderGrantsArgs, Quotas
from cutover.infra.components.rac import RacCluster, RacClusterArgs, RacNetworks
from cutover.infra.components.tenant import NationalAccess, SamuTenant, SamuTenantArgs
from cutover.infra.validate import require_infrastructure
from cutover.model.inventory import Inventory, Samu, all_departement_codes
from cutover.model.national import (
    TRANSIT_SHARD_PREFIX,
    TRANSIT_SHARDS,
    national_router_transit_address,
    transit_address,
    transit_shard,
    transit_shard_address,
)
from cutover.model.national import NationalCore as NationalSpec

CONFIG_NAMESPACE = "cutover-samu"
PSK_CONFIG_KEY = "vpnPresharedKeys"
# Set only by `cutover infra plan` (mock runtime): stands in for secrets a
# plan cannot and must not know. The stack-file validator refuses it.
OFFLINE_CONFIG_KEY = "offlinePlan"

PskSource = Callable[[str], pulumi.Input[str]]


@dataclass(frozen=True)
class Platform:
    core: NationalCore
    tenants: dict[str, SamuTenant]
    rac_clusters: dict[str, RacCluster]
    pools: dict[str, BareMetalPool]
    data_guard: DataGuardPath | None = None


def tenant_name(code: str) -> str:
    return f"samu-{code}"


def vpn_psk_source(config: pulumi.Config) -> PskSource:
    """Each SAMU's IPsec pre-shared key, from the stack's secret config ``vpnPresharedKeys.<code>``."""
    if config.get_bool(OFFLINE_CONFIG_KEY):
        return lambda code: pulumi.Output.secret("offline-plan-placeholder")
    keys = config.get_secret_object(PSK_CONFIG_KEY)

    def psk(code: str) -> pulumi.Input[str]:
        if keys is None:
            raise pulumi.RunError(f"no VPN pre-shared keys in the stack config; set one per SAMU with: "
                                  f"pulumi config set --secret --path '{PSK_CONFIG_KEY}[\"{code}\"]' VALUE")
        return keys.apply(lambda found: _psk_of(found, code))

    return psk


def _psk_of(keys: dict, code: str) -> str:
    if code not in keys:
        raise pulumi.RunError(f"no VPN pre-shared key for SAMU {code}: pulumi config set --secret "
                              f"--path '{PSK_CONFIG_KEY}[\"{code}\"]' VALUE")
    return str(keys[code])


def build_platform(inventory: Inventory, psk: PskSource) -> Platform:
    national = require_infrastructure(inventory)
    pool = inventory.settings.cutover_tenant_pool
    core = _core(national, transit_shards(inventory), str(pool) if pool is not None else None)
    assert pool is not None
    tenants = {tenant_name(s.code): _tenant(s, national, core, psk, pool) for s in _in_code_order(inventory)}
    data_guard = _data_guard(national, core, psk)
    redo = [data_guard.security_group_id] if data_guard is not None else []
    rac_pools = {cluster.pool for cluster in national.rac_clusters}
    racs = {c.name: _rac(c.name, national, core, redo) for c in national.rac_clusters}
    pools = {p.name: _service_pool(p.name, national, core) for p in national.baremetal_pools if p.name not in rac_pools}
    return Platform(core=core, tenants=tenants, rac_clusters=racs, pools=pools, data_guard=data_guard)


def _in_code_order(inventory: Inventory) -> list[Samu]:
    order = {code: i for i, code in enumerate(all_departement_codes())}
    return sorted(inventory.samus.values(), key=lambda s: order[s.code])


def transit_shards(inventory: Inventory) -> list[TransitShard]:
    """The national transit routers: one per aligned /21 of the tenant pool that has SAMUs."""
    national, pool = inventory.national, inventory.settings.cutover_tenant_pool
    assert national is not None and national.networks is not None and pool is not None
    members: dict[int, list[Samu]] = {}
    for samu in inventory.samus.values():
        members.setdefault(transit_shard(pool, samu.cidr), []).append(samu)
    premises = {i: [s.site_cidr for s in samus if s.site_cidr is not None and s.vpn_peer is not None]
                for i, samus in members.items()}
    shards = []
    for index in sorted(members):
        # The shard's whole block of the pool is its own (only its SAMUs are allocated there).
        block = next(b for b in pool.subnets(new_prefix=TRANSIT_SHARD_PREFIX) if transit_shard(pool, b) == index)
        others = [n for i, nets in premises.items() if i != index for n in nets]
        summaries = [str(block), *(str(n) for n in _premises_summary(premises[index], others))]
        shards.append(TransitShard(index, transit_shard_address(national.networks.transit, index), summaries))
    return shards


def _premises_summary(mine: list[ipaddress.IPv4Network],
                      others: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    """One route for a shard's premises when a supernet covers them and no other shard's; else each (collapsed)."""
    if not mine:
        return []
    supernet = mine[0]
    while not all(n.subnet_of(supernet) for n in mine) and supernet.prefixlen > 8:
        supernet = supernet.supernet()
    if all(n.subnet_of(supernet) for n in mine) and not any(o.overlaps(supernet) for o in others):
        return [supernet]
    return list(ipaddress.collapse_addresses(mine))


def _core(national: NationalSpec, shards: list[TransitShard], tenant_pool: str | None = None) -> NationalCore:
    assert national.external_network_id and national.networks and national.bastion and national.storage
    return NationalCore("national", NationalCoreArgs(
        region=national.region, availability_zones=list(national.availability_zones),
        external_network_id=national.external_network_id, networks=national.networks,
        bastion=national.bastion, storage=national.storage,
        dns_nameservers=[str(ip) for ip in national.dns_nameservers], dns=national.dns,
        reserved_hosts=national.reserved_hosts(), transit_shards=shards, tenant_pool=tenant_pool,
    ))


def _data_guard(national: NationalSpec, core: NationalCore, psk: PskSource) -> DataGuardPath | None:
    if national.migration is None:
        return None
    return DataGuardPath("dataguard-redo", DataGuardPathArgs(
        migration=national.migration, national_router_id=core.router_id,
        service_subnet_id=core.subnet_ids["service"], psk=psk(PSK_KEY),
    ))


def _tenant(samu: Samu, national: NationalSpec, core: NationalCore, psk: PskSource,
            pool: ipaddress.IPv4Network) -> SamuTenant:
    assert national.networks is not None and national.external_network_id is not None
    access = NationalAccess(
        region=national.region, external_network_id=national.external_network_id,
        national_router_id=core.router_id, transit_router_id=core.transit_router_ids[transit_shard(pool, samu.cidr)],
        national_router_transit_address=national_router_transit_address(national.networks.transit),
        service_security_group_id=core.security_group_ids["service"],
        admin_cidr=str(national.networks.admin), service_cidr=str(national.networks.service),
        telephony_security_group_id=core.security_group_ids["telephony"] if national.telephony_pools() else None,
    )
    has_vpn = samu.vpn_peer is not None and samu.site_cidr is not None
    return SamuTenant(tenant_name(samu.code), SamuTenantArgs(
        code=samu.code, display_name=samu.name, cidr=samu.cidr,
        transit_address=transit_address(national.networks.transit, all_departement_codes().index(samu.code)),
        national=access, vpn_peer=samu.vpn_peer, site_cidr=samu.site_cidr,
        vpn_psk=psk(samu.code) if has_vpn else None,
        dns_nameservers=[str(ip) for ip in national.dns_nameservers] or None,
    ))


def _rac(name: str, national: NationalSpec, core: NationalCore, extra_groups: list[pulumi.Output[str]]) -> RacCluster:
    cluster = next(c for c in national.rac_clusters if c.name == name)
    pool = national.pool(cluster.pool)
    assert national.networks is not None and national.storage is not None
    sg, nets, subnets = core.security_group_ids, core.network_ids, core.subnet_ids
    networks = RacNetworks(
        public_network_id=nets["service"], public_subnet_id=subnets["service"],
        interconnects=[(nets[key], subnets[key]) for key in national.networks.interconnects()],
        storage_paths=[storage_path(path.network) for path in national.storage.paths],
        public_security_group_ids=[sg["service"], sg["admin"], *extra_groups],
        storage_security_group_ids=[sg["storage"]], cidrs=national.networks,
    )
    return RacCluster(name, RacClusterArgs(
        cluster=cluster, pool=pool, availability_zones=[national.rac_zone(cluster)], networks=networks,
        node_flavors=[flavor.name for flavor, _ in national.rac_flavors(cluster)],
        asm_volume_type=core.asm_volume_type, storage=national.storage,
        dns=national.dns, dns_zone_id=core.dns_zone_id,
        key_pair=national.bastion.key_pair if national.bastion else None,
    ))


def storage_path(name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """A provider storage network and its subnet, read by name (``infra/provider`` creates and shares them)."""
    return (openstack.networking.get_network_output(name=name).id,
            openstack.networking.get_subnet_output(name=name).id)


def _service_pool(name: str, national: NationalSpec, core: NationalCore) -> BareMetalPool:
    pool = national.pool(name)
    sg = core.security_group_ids
    groups = [sg["service"], sg["admin"], *([sg["telephony"]] if pool.role == "telephony" else [])]
    service = Nic("service", core.network_ids["service"], core.subnet_ids["service"], groups)
    return BareMetalPool(name, BareMetalPoolArgs(
        flavor=pool.flavor, image=pool.image, nodes=pool.nodes, availability_zones=national.zones_of(pool),
        nics=[service],
        key_pair=national.bastion.key_pair if national.bastion else None,
    ))


# --------------------------------------------------------------------------
# The provider-side program (infra/provider): what needs cloud-admin rights


def build_provider_grants(inventory: Inventory) -> ProviderGrants:
    """Projects, flavors and their access, the ASM volume type and its access, quotas: the provider's."""
    national = require_infrastructure(inventory)
    assert national.project_id is not None and national.storage is not None
    projects = {tenant_name(s.code): f"SAMU {s.code} {s.name}" for s in _in_code_order(inventory)}
    rac_pools = {c.pool for c in national.rac_clusters}
    # A RAC cluster's nodes boot one flavor per failure domain (rack), each requiring the rack's trait.
    rac_flavors = [pair for c in national.rac_clusters for pair in national.rac_flavors(c)]
    traits = {flavor.name: trait for flavor, trait in rac_flavors}
    flavors = list({f.name: f for f in [*(p.flavor for p in national.baremetal_pools if p.name not in rac_pools),
                                         *(flavor for flavor, _ in rac_flavors)]}.values())
    assert national.networks is not None
    transit = {tenant_name(s.code): transit_address(national.networks.transit, all_departement_codes().index(s.code))
               for s in inventory.samus.values()}
    return ProviderGrants("provider", ProviderGrantsArgs(
        national_project_id=national.project_id, tenant_projects=projects, flavors=flavors, flavor_traits=traits,
        transit_ports=transit,
        storage=national.storage, quotas=national_quotas(national, len(projects)), region=national.region,
        storage_reserved={p.network: national.storage_path_reserved(p) for p in national.storage.paths},
    ))


def national_quotas(national: NationalSpec, samus: int) -> Quotas:
    """The national project's quotas, with room to grow: Nova's and Neutron's defaults are far too low.

    Per SAMU the national project holds an HTTPS rule on the service group, three
    SIP/RTP rules in and three out on the telephony group; per shard of the tenant pool a transit
    router (up to TRANSIT_SHARDS) and its port. (A tenant's transit port is in its own project.)
    """
    nodes = sum(p.nodes for p in national.baremetal_pools)
    rac_ports = sum(national.pool(c.pool).nodes * 2 + SCAN_PORTS for c in national.rac_clusters)
    nics = 5  # public, two interconnects, storage; service pools have one
    return Quotas(
        instances=2 * (nodes + 1), server_groups=2 * len(national.baremetal_pools) + 2,
        server_group_members=2 * max((p.nodes for p in national.baremetal_pools), default=1),
        routers=2 + TRANSIT_SHARDS, ports=max(500, 2 * (nodes * nics + rac_ports + samus)),
        security_groups=20, security_group_rules=max(100, 2 * (40 + 7 * samus)), subnets=20, networks=20,
    )


SCAN_PORTS = 3
