"""A check report as SARIF 2.1.0, for pull-request annotations (GitHub code scanning and others).

One run, one tool (``cutover infra check``) whose rules are the policy's,
each tagged with its clause. A violation of a planned resource is located in
the component that creates it (the file of its top component, e.g.
``cutover/infra/components/tenant.py`` for anything under a SAMU tenant),
with the resource's logical name as a logical location; a credential literal
at its file and line. Suppressed violations are results too, carrying a SARIF
``suppressions`` entry with the reason, so a viewer shows them as accepted.
An expired suppression is a result of its own at its line in the
suppressions file. (Plain data.)
"""

from __future__ import annotations

from typing import Any

from cutover import __version__
from cutover.infra.compliance import CheckReport
from cutover.infra.plan import Plan
from cutover.infra.policy import RULES, Violation
from cutover.infra.suppressions import Suppression

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
PROGRAM_FILE = "infra/__main__.py"
COMPONENT_FILES = {
    "cutover:national:Core": "cutover/infra/components/national.py",
    "cutover:samu:Tenant": "cutover/infra/components/tenant.py",
    "cutover:compute:BareMetalPool": "cutover/infra/components/baremetal.py",
    "cutover:oracle:RacCluster": "cutover/infra/components/rac.py",
}


def to_sarif(report: CheckReport, plan: Plan | None = None) -> dict[str, Any]:
    index = {rule.id: i for i, rule in enumerate(RULES)}
    results = [_result(v, index, plan) for v in report.violations]
    results += [_result(s.violation, index, plan, suppression=s.suppression) for s in report.suppressed]
    results += [_expired(s, index) for s in report.expired]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "cutover infra check",
                "version": __version__,
                "rules": [_rule(rule) for rule in RULES],
            }},
            "automationDetails": {"id": f"infra-check/{report.env}/"},
            "properties": {"env": report.env, "region": report.region, "policyFile": report.policy.path,
                           "policySha256": report.policy.sha256},
            "results": results,
        }],
    }


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": f"{rule.title} ({rule.clause})"},
        "help": {"text": f"Fix: {rule.fix}"},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["security", rule.clause]},
    }


def _result(violation: Violation, index: dict[str, int], plan: Plan | None,
            suppression: Suppression | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": violation.rule,
        "ruleIndex": index.get(violation.rule, 0),
        "level": "error",
        "message": {"text": f"{violation.resource} ({violation.type}): {violation.message}. Fix: {violation.fix}"},
        "locations": [_location(violation, plan)],
        "partialFingerprints": {"cutoverResource/v1": f"{violation.rule}:{violation.resource}"},
    }
    if suppression is not None:
        result["suppressions"] = [{
            "kind": "external", "status": "accepted",
            "justification": f"{suppression.reason} (expires {suppression.expires}; {suppression.file}:"
                             f"{suppression.line})",
        }]
    return result


def _location(violation: Violation, plan: Plan | None) -> dict[str, Any]:
    if violation.file is not None:
        return _physical(violation.file, violation.line or 1)
    location = _physical(_component_file(violation.resource, plan), 1)
    location["logicalLocations"] = [{"name": violation.resource, "fullyQualifiedName":
                                     f"{violation.type}::{violation.resource}", "kind": "resource"}]
    return location


def _physical(uri: str, line: int) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}


def _component_file(name: str, plan: Plan | None) -> str:
    """The file of the outermost component above ``name``: where a reviewer would change it."""
    if plan is None:
        return PROGRAM_FILE
    chain = [name, *plan.ancestors(name)]
    for ancestor in reversed(chain):
        resource = plan.get(ancestor)
        if resource is not None and resource.type in COMPONENT_FILES:
            return COMPONENT_FILES[resource.type]
    return PROGRAM_FILE


def _expired(suppression: Suppression, index: dict[str, int]) -> dict[str, Any]:
    return {
        "ruleId": suppression.rule,
        "ruleIndex": index.get(suppression.rule, 0),
        "level": "error",
        "message": {"text": f"the suppression of {suppression.rule} for {suppression.resource} expired on "
                            f"{suppression.expires}; renew it with a reason, or fix the resource"},
        "locations": [_physical(suppression.file, suppression.line)],
    }
