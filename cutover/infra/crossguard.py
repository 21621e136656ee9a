"""The policy rules as a Pulumi CrossGuard policy pack: the same rule functions, adapted. (Adapter.)

``infra/policy-pack/__main__.py`` builds its ``PolicyPack`` from ``pack_policies``,
so ``pulumi preview --policy-pack infra/policy-pack`` enforces exactly what
``cutover infra check`` checks: one implementation, two entry points.

Why stack policies: the rules follow references between resources (a port's
network and its zone tag, a rule's security group and its tenant, a RAC's
nodes), which ``ResourceValidationArgs`` (one resource at a time) cannot see.
Each rule is a ``StackValidationPolicy``; ``plan_from_policy_resources`` turns
the stack's resources into the ``Plan`` the rules read:

- names, parents, dependencies and providers come from the engine's objects;
- a reference is written ``"<name>.id"`` in a plan. The engine gives ids (after
  an update) or unknowns (new resources in a preview) instead, so a reference
  property (``...Id``, ``port``, ``group``, ``uuid``) is rewritten from the
  property's dependencies: a single dependency is the target; several (a list
  of ports) are matched by the targets' known ids, else in order;
- unknown values read as ``"[unknown]"`` instead of raising.

Two differences with ``infra check``, both for soundness: the engine hands
policies secrets already decrypted, so the plan side of
``no-credential-literal`` cannot tell a secret from a literal and is replaced
here by its source side (the stack files and program next to the pack); and
suppressions and the policy file are read from the repository the pack lives in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.policy import PolicyResource, PolicyResourceOptions

from cutover.infra.compliance import CREDENTIAL_RULE, STATE_RULE, source_violations, state_violations
from cutover.infra.mockrun import plan_options
from cutover.infra.plan import ID_SUFFIX, Plan, PlannedResource
from cutover.infra.policy import RULES, UNKNOWN_PLACEHOLDER, Rule, check_plan
from cutover.infra.policyfile import DEFAULT_POLICY_FILE, PolicyFile, load_policy, policy_context
from cutover.infra.suppressions import DEFAULT_SUPPRESSIONS_FILE, Suppression, apply_suppressions, load_suppressions

PACK_NAME = "cutover-secnumcloud-hds"
# Inputs that hold another resource's id (besides every "...Id" and "...Ids").
REFERENCE_KEYS = frozenset({"port", "group", "uuid", "endpoints", "targetTenant"})
T_VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
# pulumi_policy.proxy's sentinels for values not known during a preview.
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


def pack_policies(project_dir: Path, *, region: str | None = None,
                  today: dt.date | None = None) -> list[StackValidationPolicy]:
    """One mandatory stack policy per rule, reading the policy and suppressions files of ``project_dir``."""
    day = today or dt.date.today()
    policy = load_policy(project_dir / DEFAULT_POLICY_FILE, display=str(DEFAULT_POLICY_FILE))
    suppressions = load_suppressions(project_dir / DEFAULT_SUPPRESSIONS_FILE, display=str(DEFAULT_SUPPRESSIONS_FILE),
                                     today=day)
    return [StackValidationPolicy(
        name=rule.id,
        description=f"{rule.title} ({rule.clause})",
        validate=_validation(rule, policy, suppressions, project_dir, region, day),
        enforcement_level=EnforcementLevel.MANDATORY,
        remediation_steps=rule.fix,
        tags=["secnumcloud" if "SecNumCloud" in rule.clause else "hds"],
    ) for rule in RULES]


Validation = Callable[[StackValidationArgs, ReportViolation], None]


def _validation(rule: Rule, policy: PolicyFile, suppressions: list[Suppression], project_dir: Path,
                region: str | None, today: dt.date) -> Validation:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        plan, urns = plan_from_policy_resources(args.resources)
        context = policy_context(policy, region or _stack_region(args), today=today)
        if rule.id == CREDENTIAL_RULE:
            found = source_violations(project_dir)
        elif rule.id == STATE_RULE:
            found = state_violations(project_dir, context)
        else:
            found = check_plan(plan, context, [rule])
        outcome = apply_suppressions(found, [s for s in suppressions if s.rule == rule.id], today)
        for violation in outcome.violations:
            report_violation(f"{violation.resource}: {violation.message} [{rule.clause}]",
                             urns.get(violation.resource))
        for expired in outcome.expired:
            report_violation(f"the suppression of {rule.id} for {expired.resource} ({expired.file}:{expired.line}) "
                             f"expired on {expired.expires}", None)

    return validate


def _stack_region(args: StackValidationArgs) -> str:
    """The region: the pack's config ``region``, else the OpenStack provider's; "" when neither says."""
    configured = args.get_config().get("region")
    if isinstance(configured, str) and configured:
        return configured
    for resource in args.resources:
        provider = resource.provider
        if provider is not None and provider.resource_type.startswith("pulumi:providers:openstack"):
            region = _plain(provider.props).get("region") if isinstance(provider.props, Mapping) else None
            if isinstance(region, str) and region and region != UNKNOWN_PLACEHOLDER:
                return region
    return ""


# --------------------------------------------------------------------------
# The engine's resources -> a Plan


def plan_from_policy_resources(resources: Sequence[PolicyResource]) -> tuple[Plan, dict[str, str]]:
    """The Plan the rules read, and each logical name's URN (to attach violations to resources)."""
    names = _unique_names(resources)
    ids = _known_ids(resources, names)
    planned, urns = [], {}
    for resource in resources:
        name = names[id(resource)]
        urns[name] = resource.urn
        inputs = {key: _referenced(key, value, resource.property_dependencies.get(key, []), names, ids)
                  for key, value in _plain(resource.props).items()}
        planned.append(PlannedResource(
            type=resource.resource_type, name=name, inputs=inputs,
            parent=names.get(id(resource.parent)) if resource.parent is not None else None,
            dependencies=tuple(sorted({names[id(d)] for d in resource.dependencies if id(d) in names})),
            provider=(f"{resource.provider.resource_type}::{resource.provider.name}"
                      if resource.provider is not None else None),
            options=_options(resource.opts),
        ))
    return Plan.of(planned), urns


def _options(opts: PolicyResourceOptions | None) -> dict[str, Any]:
    """The options a plan records, as the mock run records them (the policy SDK does not give retainOnDelete)."""
    if opts is None:
        return {}
    return plan_options(protect=opts.protect, delete_before_replace=opts.delete_before_replace,
                        ignore_changes=opts.ignore_changes or ())


def _unique_names(resources: Sequence[PolicyResource]) -> dict[int, str]:
    """Logical names; Pulumi allows one name for two types, a plan does not: the second gets its type."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for resource in resources:
        name = resource.name if resource.name not in taken else f"{resource.name}~{resource.resource_type}"
        names[id(resource)] = name
        taken.add(name)
    return names


def _known_ids(resources: Sequence[PolicyResource], names: Mapping[int, str]) -> dict[str, str]:
    ids = {}
    for resource in resources:
        value = _plain(resource.props).get("id") if isinstance(resource.props, Mapping) else None
        if isinstance(value, str) and value and value != UNKNOWN_PLACEHOLDER:
            ids[value] = names[id(resource)]
    return ids


def _is_reference_key(key: str) -> bool:
    return key in REFERENCE_KEYS or key.endswith("Id") or key.endswith("Ids")


def _referenced(key: str, value: Any, deps: Sequence[PolicyResource], names: Mapping[int, str],
                ids: Mapping[str, str]) -> Any:
    """``value`` with its references written "<name>.id", as a plan writes them."""
    targets = [f"{names[id(d)]}{ID_SUFFIX}" for d in deps if id(d) in names]
    if key == "volumeType" and value == UNKNOWN_PLACEHOLDER and len(deps) == 1 \
            and deps[0].resource_type == T_VOLUME_TYPE:
        # A volume names its type by the type's name output, unknown in a preview of a new type.
        return _plain(deps[0].props).get("name", value)
    if isinstance(value, (str, type(None))) and _is_reference_key(key):
        if isinstance(value, str) and value in ids:
            return f"{ids[value]}{ID_SUFFIX}"
        return targets[0] if len(targets) == 1 else value
    if isinstance(value, (list, dict)):
        remaining = list(targets)
        return _rewrite_leaves(key, value, remaining, ids)
    return value


def _rewrite_leaves(key: str, value: Any, remaining: list[str], ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite_leaves(k, v, remaining, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_leaves(key, v, remaining, ids) for v in value]
    if not _is_reference_key(key) or not isinstance(value, str):
        return value
    if value in ids:
        target = f"{ids[value]}{ID_SUFFIX}"
        if target in remaining:
            remaining.remove(target)
        return target
    if value == UNKNOWN_PLACEHOLDER and remaining:
        return remaining.pop(0)  # the engine lists a property's dependencies in the order it met them
    return value


def _plain(value: Any) -> Any:
    """The engine's proxied values as plain data; unknowns as "[unknown]" instead of an exception."""
    if isinstance(value, Mapping):
        target = _target(value)
        return {str(k): _plain(v) for k, v in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in _target(value)]
    if isinstance(value, str) and value in UNKNOWN_SENTINELS:
        return UNKNOWN_PLACEHOLDER
    return getattr(value, "value", value) if type(value).__name__ == "Secret" else value


def _target(container: Any) -> Any:
    # pulumi_policy's proxies raise on reading an unknown; their "__target" is the raw container.
    try:
        return container["__target"]
    except (KeyError, TypeError, IndexError):
        return container
