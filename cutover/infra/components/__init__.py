"""Pulumi ComponentResources, one per concern, each with a typed args class.

``build_platform(inventory, psk)`` instantiates them all for one environment;
``infra/__main__.py`` is a thin caller.
"""

from cutover.infra.components.baremetal import BareMetalPool, BareMetalPoolArgs, Nic
from cutover.infra.components.national import NationalCore, NationalCoreArgs
from cutover.infra.components.platform import (
    CONFIG_NAMESPACE,
    OFFLINE_CONFIG_KEY,
    PSK_CONFIG_KEY,
    Platform,
    build_platform,
    build_provider_grants,
    tenant_name,
    vpn_psk_source,
)
from cutover.infra.components.rac import RacCluster, RacClusterArgs, RacNetworks
from cutover.infra.components.tenant import NationalAccess, SamuTenant, SamuTenantArgs

__all__ = [
    "CONFIG_NAMESPACE", "OFFLINE_CONFIG_KEY", "PSK_CONFIG_KEY",
    "BareMetalPool", "BareMetalPoolArgs", "Nic", "NationalCore", "NationalCoreArgs", "Platform",
    "RacCluster", "RacClusterArgs", "RacNetworks", "NationalAccess", "SamuTenant", "SamuTenantArgs",
    "build_platform", "build_provider_grants", "tenant_name", "vpn_psk_source",
]
