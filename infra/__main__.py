"""The SAMU platform of one environment: read its inventory, instantiate the components.

The stack names the environment (config ``cutover-samu:inventory``, default:
the stack name); everything else comes from ``inventories/<env>/`` through
the one inventory model. Components live in ``cutover.infra.components``.
"""

from pathlib import Path

import pulumi

from cutover.infra.components import build_platform, vpn_psk_source
from cutover.model.inventory import load_inventory

config = pulumi.Config()
project_dir = Path(__file__).resolve().parent.parent
inventory = load_inventory(project_dir, config.get("inventory") or pulumi.get_stack())
platform = build_platform(inventory, vpn_psk_source(config))

pulumi.export("environment", inventory.name)
pulumi.export("tenants", sorted(platform.tenants))
pulumi.export("racClusters", sorted(platform.rac_clusters))
# Secret: what playbooks/rac_storage.yml lays out on the RAC nodes (each ASM disk, its groups, its iSCSI target).
pulumi.export("racAsmDisks", {name: cluster.asm_layout() for name, cluster in platform.rac_clusters.items()})
