"""Checking an environment's plan against the policy: the use-case behind ``infra check``.

``check_inputs`` reads and validates everything the user wrote (stack file,
policy file, suppressions) before any evaluation; ``check`` runs the rules
over a plan, adds the credential literals of the program and stack files,
and applies the suppressions. The same ``CheckReport`` serves ``infra check``
(text, JSON, SARIF), ``infra diff --check`` and the gate of ``preview``/``up``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.infra.credentials import scan_project
from cutover.infra.plan import Plan
from cutover.infra.policy import RULES, PolicyContext, Violation, check_plans, rule_by_id, sort_violations
from cutover.infra.policyfile import PolicyFile, load_policy, policy_context, policy_path
from cutover.infra.stack import load_stack
from cutover.infra.suppressions import (Suppressed, Suppression, apply_suppressions, load_suppressions,
                                        suppressions_path)
from cutover.infra.validate import require_infrastructure
from cutover.inventory import load_inventory
from cutover.yamlsource import load_yaml

CREDENTIAL_RULE = "no-credential-literal"
PROVIDER_RULE = "qualified-provider"


@dataclass(frozen=True)
class CheckInputs:
    env: str
    project_dir: Path
    policy: PolicyFile
    suppressions: list[Suppression]
    suppressions_file: str | None
    context: PolicyContext


@dataclass(frozen=True)
class CheckReport:
    env: str
    region: str
    policy: PolicyFile
    resources: int
    violations: list[Violation]  # not suppressed: each breaks the check
    suppressed: list[Suppressed]
    expired: list[Suppression]  # each breaks the check
    unused: list[Suppression]
    suppressions_file: str | None

    @property
    def passed(self) -> bool:
        return not self.violations and not self.expired

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env, "region": self.region, "passed": self.passed, "resources": self.resources,
            "policy": {"file": self.policy.path, "sha256": self.policy.sha256, "offer": self.policy.model.offer},
            "rules": [{"id": r.id, "clause": r.clause, "title": r.title} for r in RULES],
            "violations": [v.to_json() for v in self.violations],
            "suppressions": {
                "file": self.suppressions_file,
                "used": [{**s.suppression.to_json(), "violation": s.violation.to_json()} for s in self.suppressed],
                "expired": [s.to_json() for s in self.expired],
                "unused": [s.to_json() for s in self.unused],
            },
        }


def environment_region(project_dir: Path, env: str) -> str:
    """The region the stack deploys to: the stack file's openstack:region, else the inventory's."""
    stack = load_stack(project_dir, env)
    if stack.region:
        return stack.region
    return require_infrastructure(load_inventory(project_dir, stack.inventory)).region


def check_inputs(project_dir: Path, env: str, *, policy_file: Path | None = None,
                 suppressions_file: Path | None = None, today: dt.date | None = None) -> CheckInputs:
    """Every file the check reads, validated; a mistake is a ValidationError with file and line."""
    day = today or dt.date.today()
    region = environment_region(project_dir, env)
    policy = load_policy(policy_path(project_dir, policy_file), display=_display(policy_path(project_dir, policy_file),
                                                                                 project_dir))
    path, named = suppressions_path(project_dir, suppressions_file)
    suppressions = load_suppressions(path, display=_display(path, project_dir), required=named, today=day)
    return CheckInputs(env, project_dir, policy, suppressions, _display(path, project_dir) if path.is_file() else None,
                       policy_context(policy, region, today=day))


def check(inputs: CheckInputs, plan: Plan, provider_plan: Plan | None = None) -> CheckReport:
    """The rules over the customer's plan and, when given, the provider-side plan it reads by name.

    Both plans are checked as one (a volume's type is the provider's, its backend
    decides), except ``customer-rights-only``, which reads the customer's alone.
    """
    violations = check_plans(plan, provider_plan, inputs.context) + source_violations(inputs.project_dir) \
        + stack_provider_violations(inputs.project_dir, inputs.env, inputs.context)
    outcome = apply_suppressions(sort_violations(violations), inputs.suppressions, inputs.context.today)
    return CheckReport(inputs.env, inputs.context.region, inputs.policy, len(plan), outcome.violations,
                       outcome.suppressed, outcome.expired, outcome.unused, inputs.suppressions_file)


def source_violations(project_dir: Path) -> list[Violation]:
    """The source side of no-credential-literal: literals in the stack files and the program."""
    rule = rule_by_id(CREDENTIAL_RULE)
    assert rule is not None
    return [Violation(rule.id, rule.clause, f"{found.file}:{found.line}", found.where, found.message(), rule.fix,
                      file=found.file, line=found.line)
            for found in scan_project(project_dir)]


def stack_provider_violations(project_dir: Path, env: str, context: PolicyContext) -> list[Violation]:
    """The default provider is configured by the stack file: its region and endpoint must be qualified too."""
    rule = rule_by_id(PROVIDER_RULE)
    assert rule is not None
    stack = load_stack(project_dir, env)
    doc = load_yaml(Path(stack.source), display=_display(Path(stack.source), project_dir))
    found = []
    region, url = stack.values.get("openstack:region"), stack.values.get("openstack:authUrl")
    if region is not None and region not in context.qualified_regions:
        found.append((("config", "openstack:region"), f"openstack:region {region!r} is not a region of the "
                      f"qualified offer ({', '.join(sorted(context.qualified_regions))})"))
    endpoints = {e.rstrip("/") for e in context.qualified_endpoints.get(region or context.region, frozenset())}
    if url is not None and url.rstrip("/") not in endpoints:
        found.append((("config", "openstack:authUrl"), f"openstack:authUrl {url!r} is not a qualified endpoint "
                      f"of {region or context.region!r} ({', '.join(sorted(endpoints)) or 'none declared'})"))
    return [Violation(rule.id, rule.clause, f"{doc.path}:{doc.line_of(loc) or 1}", "stack file", message, rule.fix,
                      file=doc.path, line=doc.line_of(loc) or 1) for loc, message in found]


def _display(path: Path, project_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)
