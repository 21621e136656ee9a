"""What the cloud provider creates for one environment: it needs cloud-admin rights, the customer has none.

Run by the provider's administrators with their own credentials (or reviewed as
a request: `cutover infra plan --env ENV --side provider` prints it). The
customer stack (../__main__.py) reads these by name. See docs/infra.md
("Two programs, two owners").
"""

from pathlib import Path

import pulumi

from cutover.infra.components import build_provider_grants
from cutover.model.inventory import load_inventory

# The customer's namespace: one inventory setting for both programs.
config = pulumi.Config("cutover-samu")
project_dir = Path(__file__).resolve().parents[2]
inventory = load_inventory(project_dir, config.get("inventory") or pulumi.get_stack())
build_provider_grants(inventory)

pulumi.export("environment", inventory.name)
