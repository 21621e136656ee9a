"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policy-pack`.

Every policy is built by ``cutover.infra.crossguard.pack_policies`` from the
rules of ``cutover infra check``; nothing is defined here, so the two cannot
drift. PolicyPack(...) serves the policies to the Pulumi engine over gRPC and
does not return.
"""

from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

from cutover.infra.crossguard import PACK_NAME, pack_policies

PROJECT_DIR = Path(__file__).resolve().parents[2]  # the repository: infra/policy.yaml, infra/Pulumi.*.yaml

PolicyPack(
    name=PACK_NAME,
    policies=pack_policies(PROJECT_DIR),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="SecNumCloud 3.2 and HDS rules of the SAMU trusted-cloud platform",
)
