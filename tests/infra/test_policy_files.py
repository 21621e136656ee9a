"""The files around the rules: the policy file, suppressions, credential literals in sources, SARIF."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cutover.errors import ValidationError
from cutover.infra.compliance import check, check_inputs
from cutover.infra.credentials import scan_program, scan_stack_file
from cutover.infra.plan import Plan, PlannedResource
from cutover.infra.policy import Violation
from cutover.infra.policyfile import load_policy, policy_context
from cutover.infra.sarif import to_sarif
from cutover.infra.suppressions import apply_suppressions, load_suppressions
from tests.infra.conftest import REPO, copy_project

TODAY = dt.date(2026, 11, 30)
SHIPPED_POLICY = (REPO / "infra" / "policy.yaml").read_text(encoding="utf-8")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the policy file -----------------------------------------------------------------------


def test_the_shipped_policy_file_is_valid_and_qualifies_both_environments_regions():
    policy = load_policy(REPO / "infra" / "policy.yaml")
    assert policy.zones_of("fr-central") == {"fr-central-1", "fr-central-2", "fr-central-3"}
    assert policy.zones_of("fr-rehearsal") == {"fr-rehearsal-1", "fr-rehearsal-2"}
    assert len(policy.sha256) == 64


@pytest.mark.parametrize("change, field, words", [
    (("encrypted_backends: [ceph-luks, array-iscsi]", "encrypted_backend: [ceph-luks]"), "storage.encrypted_backend",
     "unknown key"),
    (("zones: [fr-central-1, fr-central-2, fr-central-3]", "zones: []"), "regions.fr-central.zones",
     "at least 1"),
    (("endpoints: [https://identity.fr-central.cloud.example/v3]", "endpoints: [http://keystone:5000/v3]"),
     "regions.fr-central.endpoints", "https://"),
    (("operator_networks: [192.0.2.0/28]", "operator_networks: [0.0.0.0/0]"), "operator_networks",
     "too wide"),
    (("until: 2027-06-30, reason: \"Data Guard redo from the legacy platform (production)",
      "until: someday, reason: \"Data Guard redo from the legacy platform (production)"),
     "database.from_networks[0].until", "date"),
])
def test_a_policy_file_mistake_names_file_line_and_field(tmp_path, change, field, words):
    assert change[0] in SHIPPED_POLICY
    text = SHIPPED_POLICY.replace(*change)
    line = next(number for number, content in enumerate(text.splitlines(), start=1) if change[1] in content)
    path = write(tmp_path, "policy.yaml", text)
    with pytest.raises(ValidationError) as caught:
        load_policy(path, display="infra/policy.yaml")
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.field) == ("infra/policy.yaml", line, field)
    assert words in problem.message


def test_a_missing_policy_file_says_where_it_is_expected(tmp_path):
    with pytest.raises(ValidationError) as caught:
        load_policy(tmp_path / "nope.yaml")
    assert "not found" in str(caught.value) and "infra/policy.yaml" in str(caught.value)


def test_a_region_outside_the_offer_has_no_zone_at_all():
    context = policy_context(load_policy(REPO / "infra" / "policy.yaml"), "eu-west-1")
    assert context.availability_zones == frozenset()


# -- suppressions --------------------------------------------------------------------------

SUPPRESSIONS = """\
suppressions:
  - rule: owner-tagged
    resource: telephony-node-1
    reason: owner tags arrive with the telephony team's next image (CHG-2041)
    expires: 2027-01-31
  - rule: no-ingress-from-anywhere
    resource: old-portal-https
    reason: the old portal stays open until the partners move (CHG-1999)
    expires: 2026-11-01
  - rule: never-routed
    resource: nothing-matches-this
    reason: kept for a change that was abandoned since (CHG-1500)
    expires: 2027-02-01
"""


def violation(rule: str, resource: str) -> Violation:
    return Violation(rule, "clause", resource, "type", "message", "fix")


def test_suppressions_hide_matches_list_them_and_expired_ones_suppress_nothing(tmp_path):
    entries = load_suppressions(write(tmp_path, "s.yaml", SUPPRESSIONS), display="s.yaml", today=TODAY)
    found = [violation("owner-tagged", "telephony-node-1"), violation("owner-tagged", "telephony-node-10"),
             violation("owner-tagged", "rac-node-1"), violation("no-ingress-from-anywhere", "old-portal-https")]
    outcome = apply_suppressions(found, entries, TODAY)
    assert [(s.violation.resource, s.suppression.line) for s in outcome.suppressed] == [("telephony-node-1", 2)]
    # The exact name only: telephony-node-10 is another resource, nobody reviewed its exception.
    assert [v.resource for v in outcome.violations] == ["telephony-node-10", "rac-node-1", "old-portal-https"]
    assert [(s.resource, s.expires) for s in outcome.expired] == [("old-portal-https", dt.date(2026, 11, 1))]
    assert [s.resource for s in outcome.unused] == ["nothing-matches-this"]


def test_a_suppression_is_valid_through_its_expiry_day(tmp_path):
    entries = load_suppressions(write(tmp_path, "s.yaml", SUPPRESSIONS), today=TODAY)
    on_the_day = apply_suppressions([], entries, dt.date(2027, 1, 31))
    assert "telephony-node-1" not in [s.resource for s in on_the_day.expired]
    assert "telephony-node-1" in [s.resource for s in apply_suppressions([], entries, dt.date(2027, 2, 1)).expired]


@pytest.mark.parametrize("change, line, field, words", [
    (("rule: never-routed", "rule: never-rooted"), 10, "suppressions[2].rule", "unknown rule"),
    (("reason: kept for a change that was abandoned since (CHG-1500)", "reason: temp"), 12,
     "suppressions[2].reason", "at least 10"),
    (("expires: 2027-02-01", "expires: 2029-02-01"), 13, "suppressions[2].expires", "more than a year"),
    (("expires: 2027-02-01", "expires: soon"), 13, "suppressions[2].expires", "date"),
    (("    expires: 2027-02-01\n", ""), 10, "suppressions[2].expires", "missing"),
    # Issue 20: a pattern would switch a rule off for resources nobody named.
    (("resource: nothing-matches-this", 'resource: "*"'), 11, "suppressions[2].resource", "is a pattern"),
    (("resource: telephony-node-1", "resource: telephony-node-?"), 3, "suppressions[0].resource", "is a pattern"),
])
def test_a_suppression_mistake_names_file_line_and_field(tmp_path, change, line, field, words):
    assert change[0] in SUPPRESSIONS
    path = write(tmp_path, "s.yaml", SUPPRESSIONS.replace(*change))
    with pytest.raises(ValidationError) as caught:
        load_suppressions(path, display="infra/policy-suppressions.yaml", today=TODAY)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.field) == ("infra/policy-suppressions.yaml", line, field)
    assert words in problem.message


# -- credential literals in sources ------------------------------------------------------------


def test_plain_credentials_in_a_stack_file_are_found_with_their_line_and_secure_ones_are_not(tmp_path):
    stack = write(tmp_path, "Pulumi.production.yaml", """\
config:
  cutover-samu:inventory: production
  openstack:region: fr-central
  openstack:password: hunter2
  openstack:token:
    secure: AAABAJ0a...
  cutover-samu:vpnPresharedKeys:
    "01": not-so-secret
    "30":
      secure: AAABAK1b...
""")
    found = scan_stack_file(stack, "infra/Pulumi.production.yaml")
    assert [(f.line, f.name) for f in found] == [(4, "openstack:password"), (8, "cutover-samu:vpnPresharedKeys.01")]


def test_credential_literals_in_the_program_are_found_and_references_are_not():
    source = ('provider = openstack.Provider("fr", region="fr-central", password="hunter2")\n'
              'conn = vpnaas.SiteConnection("s", psk=config.require_secret("psk"))\n'
              'settings = {"api_key": "AKIA-LITERAL", "name": "x"}\n'
              'PSK_CONFIG_KEY = "vpnPresharedKeys"\n')
    assert [(f.line, f.name) for f in scan_program(source, "infra/__main__.py")] == [(1, "password"), (3, "api_key")]


def test_the_shipped_program_and_stack_files_have_no_credential_literal(tmp_path):
    inputs = check_inputs(REPO, "production", today=TODAY)
    report = check(inputs, Plan.of([]))
    assert [v for v in report.violations if v.rule == "no-credential-literal"] == []


# -- SARIF ------------------------------------------------------------------------------------


def test_sarif_has_the_2_1_0_shape_with_rules_locations_and_suppressions(tmp_path):
    project = copy_project(tmp_path / "p")
    (project / "infra" / "policy-suppressions.yaml").write_text(SUPPRESSIONS, encoding="utf-8")
    (project / "infra" / "Pulumi.production.yaml").write_text(
        (project / "infra" / "Pulumi.production.yaml").read_text() + "  openstack:password: hunter2\n")
    plan = Plan.of([
        PlannedResource("cutover:national:Core", "national"),
        PlannedResource("openstack:compute/instance:Instance", "telephony-node-1", {}, "national", (), "p"),
        PlannedResource("openstack:compute/instance:Instance", "stray", {}, None, (), "p"),
    ])
    report = check(check_inputs(project, "production", today=TODAY), plan)
    document = json.loads(json.dumps(to_sarif(report, plan)))
    assert document["version"] == "2.1.0" and "sarif" in document["$schema"]
    run = document["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "no-credential-literal" in rule_ids and all("properties" in r for r in run["tool"]["driver"]["rules"])
    by_resource = {}
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        by_resource[(result["ruleId"], location["artifactLocation"]["uri"], location["region"]["startLine"])] = result
    stack_line = len((project / "infra" / "Pulumi.production.yaml").read_text().splitlines())
    assert ("no-credential-literal", "infra/Pulumi.production.yaml", stack_line) in by_resource
    assert ("owner-tagged", "infra/__main__.py", 1) in by_resource  # "stray" has no component
    suppressed = by_resource[("owner-tagged", "cutover/infra/components/national.py", 1)]
    assert suppressed["suppressions"][0]["status"] == "accepted" and "CHG-2041" in \
        suppressed["suppressions"][0]["justification"]
    assert ("no-ingress-from-anywhere", "infra/policy-suppressions.yaml", 6) in by_resource  # the expired one


# -- the acceptance record ------------------------------------------------------------------------


def test_acceptances_are_chained_so_an_edited_or_removed_line_is_detected(tmp_path):
    from cutover.errors import JournalCorrupt
    from cutover.infra.acceptance import Acceptance, read_acceptances, record_acceptance

    report = check(check_inputs(REPO, "production", today=TODAY), Plan.of([
        PlannedResource("openstack:compute/instance:Instance", "stray", {}, None, (), "p")]))
    for reason in ("CHG-1: first accepted decision", "CHG-2: second accepted decision"):
        record_acceptance(tmp_path, Acceptance("up", "production", "claire.martin", reason), report)
    assert [e["reason"] for e in read_acceptances(tmp_path)] == ["CHG-1: first accepted decision",
                                                                 "CHG-2: second accepted decision"]
    audit = tmp_path / "infra-acceptances.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text(lines[0].replace("CHG-1", "CHG-9") + "\n" + lines[1] + "\n")
    with pytest.raises(JournalCorrupt, match=":2:"):
        read_acceptances(tmp_path)
    audit.write_text(lines[1] + "\n")
    with pytest.raises(JournalCorrupt, match=":1:"):
        read_acceptances(tmp_path)
