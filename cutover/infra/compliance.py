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

from cutover.errors import CutoverError, ExitCode
from cutover.infra.credentials import scan_project
from cutover.infra.hostfilter import disagreements
from cutover.infra.plan import Plan
from cutover.infra.policy import RULES, PolicyContext, Violation, check_plans, rule_by_id, sort_violations
from cutover.infra.policyfile import PolicyFile, load_policy, policy_context, policy_path
from cutover.infra.stack import (
    CUSTOMER,
    POLICY_DIGEST_KEY,
    PROJECT_FILE,
    PROVIDER,
    load_stack,
    program_dir,
    project_backend,
)
from cutover.infra.suppressions import Suppressed, Suppression, apply_suppressions, load_suppressions, suppressions_path
from cutover.infra.validate import require_infrastructure
from cutover.model.inventory import load_inventory
from cutover.model.yamlsource import YamlDocument, load_yaml

CREDENTIAL_RULE = "no-credential-literal"
PROVIDER_RULE = "qualified-provider"
STATE_RULE = "state-in-france"
HOST_FILTER_RULE = "host-filtering"
# Where `pulumi login` goes when nothing is declared, and the Pulumi service's own secrets provider.
PULUMI_CLOUD = ("https://api.pulumi.com", "https://app.pulumi.com", "app.pulumi.com", "api.pulumi.com")
SERVICE_SECRETS = ("default", "service")
# openstack: settings that hand the default provider's configuration to something the checker cannot read.
UNSEEN_PROVIDER_KEYS = {
    "openstack:cloud": "names a clouds.yaml entry (its region and endpoint are not in the repository)",
    "openstack:endpointOverrides": "overrides service endpoints the offer's qualification does not list",
}


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
        + stack_provider_violations(inputs.project_dir, inputs.env, inputs.context) \
        + state_violations(inputs.project_dir, inputs.context) + host_filter_violations(inputs.project_dir, inputs.env, plan)
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
    """The default provider is configured by the stack file: the checker must see, and accept, all of it.

    Both programs' stack files (ours, and the provider side's when it exists).
    Refused: no ``openstack:region`` (OS_REGION_NAME would decide), a region or
    endpoint the offer does not qualify, TLS verification off, a value the
    checker cannot read (a secret region, a clouds.yaml entry, a Pulumi ESC
    ``environment:`` import whose values live outside the repository).
    """
    found: list[Violation] = []
    for side in (CUSTOMER, PROVIDER):
        if side == PROVIDER and not (program_dir(project_dir, side) / f"Pulumi.{env}.yaml").is_file():
            continue
        stack = load_stack(project_dir, env, side)
        doc = load_yaml(Path(stack.source), display=_display(Path(stack.source), project_dir))
        found += _stack_violations(doc, context)
    return found


def _stack_violations(doc: YamlDocument, context: PolicyContext) -> list[Violation]:
    rule = rule_by_id(PROVIDER_RULE)
    assert rule is not None
    data: dict[str, Any] = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("config")
    config: dict[str, Any] = raw if isinstance(raw, dict) else {}
    found: list[tuple[tuple[str, ...], str]] = []
    if data.get("environment") is not None:
        found.append((("environment",), "imports a Pulumi ESC environment: its values (region, endpoint, "
                      "credentials) are outside the repository, so the checker cannot see them"))
    region, url = config.get("openstack:region"), config.get("openstack:authUrl")
    if region is None:
        found.append((("config",), "no openstack:region: the default provider would use whatever "
                      "OS_REGION_NAME says; set the environment's qualified region"))
    elif not isinstance(region, str):
        found.append((("config", "openstack:region"), "openstack:region is not a plain value the checker can read"))
    elif region not in context.qualified_regions:
        found.append((("config", "openstack:region"), f"openstack:region {region!r} is not a region of the "
                      f"qualified offer ({', '.join(sorted(context.qualified_regions))})"))
    key_region = region if isinstance(region, str) else context.region
    endpoints = {e.rstrip("/") for e in context.qualified_endpoints.get(key_region, frozenset())}
    if url is not None and (not isinstance(url, str) or url.rstrip("/") not in endpoints):
        shown = url if isinstance(url, str) else "(not a plain value)"
        found.append((("config", "openstack:authUrl"), f"openstack:authUrl {shown!r} is not a qualified endpoint "
                      f"of {key_region!r} ({', '.join(sorted(endpoints)) or 'none declared'})"))
    if str(config.get("openstack:insecure", "")).lower() in ("true", "yes", "1"):
        found.append((("config", "openstack:insecure"), "openstack:insecure turns TLS verification off: the "
                      "qualified endpoint could be impersonated"))
    for key, why in UNSEEN_PROVIDER_KEYS.items():
        if key in config:
            found.append((("config", key), f"{key} {why}; give openstack:region (and openstack:authUrl) instead"))
    return [Violation(rule.id, rule.clause, f"{doc.path}:{doc.line_of(loc) or 1}", "stack file", message, rule.fix,
                      file=doc.path, line=doc.line_of(loc) or 1) for loc, message in found]


def host_filter_violations(project_dir: Path, env: str, plan: Plan) -> list[Violation]:
    """host-filtering: each bare-metal node's nftables ruleset exists and says what its security groups say."""
    rule = rule_by_id(HOST_FILTER_RULE)
    assert rule is not None
    found = []
    for disagreement in disagreements(project_dir, env, plan):
        where = _display(disagreement.path, project_dir)
        found.append(Violation(rule.id, rule.clause, disagreement.node, "host ruleset",
                               f"node {disagreement.node} {disagreement.problem} ({where})", rule.fix,
                               file=where, line=1))
    return found


def state_violations(project_dir: Path, context: PolicyContext) -> list[Violation]:
    """state-in-france: each project declares a self-managed backend, each stack a secrets provider, both declared
    in the policy file (``state``), never Pulumi Cloud."""
    rule = rule_by_id(STATE_RULE)
    assert rule is not None
    found: list[Violation] = []
    for side in (CUSTOMER, PROVIDER):
        folder = program_dir(project_dir, side)
        if not (folder / PROJECT_FILE).is_file():
            continue
        url, where, line = project_backend(project_dir, side)
        where = _display(Path(where), project_dir)
        problem = _location_problem(url, context.state_backends, "backend.url",
                                    "`pulumi login` would store the state (and the encrypted secrets) in Pulumi Cloud, "
                                    "hosted in the US")
        if problem is not None:
            found.append(Violation(rule.id, rule.clause, f"{where}:{line}", "project file", problem, rule.fix,
                                   file=where, line=line))
        for stack_file in sorted(folder.glob("Pulumi.*.yaml")):
            doc = load_yaml(stack_file, display=_display(stack_file, project_dir))
            provider = doc.data.get("secretsprovider") if isinstance(doc.data, dict) else None
            problem = _location_problem(str(provider) if provider else None, context.secrets_providers,
                                        "secretsprovider", "the stack's secrets would be encrypted by the Pulumi "
                                        "service, outside the SecNumCloud perimeter")
            if problem is not None:
                line = doc.line_of(("secretsprovider",)) or 1
                found.append(Violation(rule.id, rule.clause, f"{doc.path}:{line}", "stack file", problem, rule.fix,
                                       file=doc.path, line=line))
    return found


def _location_problem(value: str | None, allowed: tuple[str, ...], key: str, if_missing: str) -> str | None:
    if value is None:
        return f"no {key}: {if_missing}"
    if value in SERVICE_SECRETS or any(host in value for host in PULUMI_CLOUD):
        return f"{key} {value!r} is the Pulumi service (hosted in the US)"
    if not any(value == prefix or value.startswith(prefix) for prefix in allowed):
        return (f"{key} {value!r} is not one the policy declares in France "
                f"({', '.join(allowed) or 'none declared: add state to the policy file'})")
    return None


def _display(path: Path, project_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)


class PolicyNotPinned(CutoverError):
    """``infra preview|up`` apply only the policy file the stack is pinned to."""

    exit_code = ExitCode.POLICY_VIOLATIONS


def require_pinned_policy(inputs: CheckInputs) -> None:
    """The repository's policy file must be the one the stack pins (``cutover-samu:policyDigest``).

    A loosened policy file is a reviewed change to two files, the policy and the
    stack's pin, never a command-line flag: ``--policy`` is for ``infra check`` only.
    """
    stack = load_stack(inputs.project_dir, inputs.env)
    pinned = stack.values.get(POLICY_DIGEST_KEY, "").removeprefix("sha256:")
    digest = inputs.policy.sha256
    set_it = f"pulumi -C infra -s {inputs.env} config set {POLICY_DIGEST_KEY} sha256:{digest}"
    if not pinned:
        raise PolicyNotPinned(f"stack {inputs.env!r} pins no policy digest ({POLICY_DIGEST_KEY})",
                              hint=f"after the security owner's review of {inputs.policy.path}: {set_it}")
    if pinned != digest:
        raise PolicyNotPinned(f"{inputs.policy.path} (sha256 {digest[:12]}) is not the policy stack {inputs.env!r} "
                              f"is pinned to (sha256 {pinned[:12]})",
                              hint=f"a policy change is reviewed with the stack's new pin: {set_it}")
