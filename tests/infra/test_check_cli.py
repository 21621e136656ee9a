"""`infra check`, `diff --check`, `preview|up` gating, as a user runs them: the real `cutover` command.

Violating resources injected into a saved plan are each caught by name through
`infra check --plan`; the shipped environments pass; suppressions, SARIF and
the acceptance record are read back from what the command wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cutover.infra.policy import RULES
from tests.infra.conftest import copy_project

CUTOVER = str(Path(sys.executable).parent / "cutover")
OWNER = {"metadata": {"cutover-owner": "national-platform"}}

# name -> (type, inputs, the one rule it must break). The injected rules go to the bastion's group (a VM):
# on a bare-metal node's group they would also break host-filtering (tests/infra/test_host_filter.py).
INJECTED: dict[str, tuple[str, dict[str, Any], str]] = {
    "inj-anywhere": ("openstack:networking/secGroupRule:SecGroupRule",
                     {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "portRangeMin": 8443,
                      "portRangeMax": 8443, "remoteIpPrefix": "::/0", "securityGroupId": "national-bastion-sg.id"},
                     "no-ingress-from-anywhere"),
    "inj-db": ("openstack:networking/secGroupRule:SecGroupRule",
               {"direction": "ingress", "protocol": "tcp", "portRangeMin": 1521, "portRangeMax": 1521,
                "remoteIpPrefix": "10.140.1.0/24", "securityGroupId": "national-bastion-sg.id"}, "database-reach"),
    "inj-boot": ("openstack:compute/instance:Instance",
                 {"availabilityZone": "fr-central-1", **OWNER,
                  "blockDevices": [{"sourceType": "image", "destinationType": "volume", "volumeSize": 40}]},
                 "boot-volume-encrypted"),
    "inj-provider": ("pulumi:providers:openstack", {"region": "eu-west-1"}, "qualified-provider"),
    "inj-gateway": ("openstack:networking/routerInterface:RouterInterface",
                    {"routerId": "national-router.id", "subnetId": "national-interconnect-subnet.id"}, "never-routed"),
    "inj-port": ("openstack:networking/port:Port",
                 {"networkId": "national-service-net.id", "portSecurityEnabled": False},
                 "port-security-interconnect-only"),
    "inj-share": ("openstack:networking/rbacPolicyV2:RbacPolicyV2",
                  {"action": "access_as_shared", "objectType": "network", "objectId": "national-transit-net.id",
                   "targetTenant": "*"}, "no-share-with-everyone"),
    "inj-unowned": ("openstack:blockstorage/volume:Volume", {"size": 10, "volumeType": "rac-asm-multiattach"},
                    "owner-tagged"),
    "inj-literal": ("openstack:vpnaas/siteConnection:SiteConnection", {"psk": "hunter2", "peerAddress": "203.0.113.9"},
                    "no-credential-literal"),
    "inj-plain": ("openstack:blockstorage/volume:Volume", {"size": 10, "volumeType": "standard", **OWNER},
                  "volume-encrypted"),
    "inj-zone": ("openstack:compute/instance:Instance", {"availabilityZone": "eu-west-1a", **OWNER}, "allowed-zones"),
}


def cutover(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CUTOVER, "--project-dir", str(project), "--state-dir", str(project / ".state"), *args],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("check") / "project")


@pytest.fixture(scope="module")
def saved_plan(project) -> Path:
    path = project / "plan.json"
    done = cutover(project, "infra", "plan", "--env", "production", "--out", str(path))
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def bad_plan(saved_plan) -> Path:
    plan = json.loads(saved_plan.read_text())
    provider = "pulumi:providers:openstack::default"
    for name, (type_, inputs, _) in INJECTED.items():
        plan["resources"].append({"type": type_, "name": name, "inputs": inputs, "parent": None, "dependencies": [],
                                  "provider": None if type_.startswith("pulumi:providers:") else provider})
    path = saved_plan.with_name("bad.json")
    path.write_text(json.dumps(plan))
    return path


def test_the_shipped_environments_pass_as_the_command_runs_them(project):
    for env in ("rehearsal", "production"):
        done = cutover(project, "infra", "check", "--env", env, "--json")
        report = json.loads(done.stdout)
        assert done.returncode == 0 and report["passed"] and report["violations"] == [], done.stdout
        assert report["policy"]["file"] == "infra/policy.yaml" and len(report["rules"]) == len(RULES)


def test_a_saved_plan_passes_and_each_injected_violation_is_caught_by_name(project, saved_plan, bad_plan):
    assert cutover(project, "infra", "check", "--env", "production", "--plan", str(saved_plan)).returncode == 0
    done = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan), "--json")
    assert done.returncode == 9, done.stderr
    caught = {(v["resource"], v["rule"]) for v in json.loads(done.stdout)["violations"]}
    assert caught == {(name, rule) for name, (_, _, rule) in INJECTED.items()}


def test_text_output_names_resource_rule_clause_and_fix(project, bad_plan):
    done = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan))
    assert done.returncode == 9 and "Traceback" not in done.stderr
    text = " ".join(done.stdout.split())
    assert "inj-anywhere" in text and "no-ingress-from-anywhere" in text and "§13.2" in text and "fix:" in text
    assert "11 violation(s)" in text


def test_sarif_is_written_for_pr_annotations(project, bad_plan, tmp_path):
    out = tmp_path / "check.sarif"
    done = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan), "--sarif", str(out))
    assert done.returncode == 9
    sarif = json.loads(out.read_text())
    results = sarif["runs"][0]["results"]
    names = {loc["name"] for r in results for loc in r["locations"][0].get("logicalLocations", [])}
    assert sarif["version"] == "2.1.0" and set(INJECTED) <= names
    stdout = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan), "--sarif", "-")
    assert json.loads(stdout.stdout)["version"] == "2.1.0"


def test_suppressions_are_listed_and_an_expired_one_fails_the_check(project, bad_plan, tmp_path):
    entries = "suppressions:\n" + "".join(
        f"  - {{rule: {rule}, resource: {name}, reason: accepted for the test of suppressions, "
        f"expires: {'2020-01-01' if name == 'inj-zone' else '2099-01-01'}}}\n"
        for name, (_, _, rule) in INJECTED.items())
    too_far = tmp_path / "too-far.yaml"
    too_far.write_text(entries)
    refused = cutover(project, "infra", "check", "--env", "production", "--suppressions", str(too_far))
    assert refused.returncode == 2 and "more than a year ahead" in refused.stderr and "too-far.yaml:" in refused.stderr

    near = tmp_path / "suppressions.yaml"
    near.write_text(entries.replace("2099-01-01", "2027-01-15"))
    done = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan), "--suppressions",
                   str(near), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 9  # the expired suppression alone fails it
    assert [v["resource"] for v in report["violations"]] == ["inj-zone"]  # expired: suppresses nothing
    assert {s["resource"] for s in report["suppressions"]["used"]} == set(INJECTED) - {"inj-zone"}
    assert [s["resource"] for s in report["suppressions"]["expired"]] == ["inj-zone"]

    text = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan), "--suppressions",
                   str(near))
    assert "expired suppression" in text.stdout and text.stdout.count("suppressed") >= len(INJECTED) - 1


def test_the_default_suppressions_file_is_read_and_all_suppressed_passes(project, bad_plan):
    default = project / "infra" / "policy-suppressions.yaml"
    default.write_text("suppressions:\n" + "".join(
        f"  - {{rule: {rule}, resource: {name}, reason: accepted for the test of suppressions, expires: 2027-01-15}}\n"
        for name, (_, _, rule) in INJECTED.items()))
    try:
        done = cutover(project, "infra", "check", "--env", "production", "--plan", str(bad_plan))
    finally:
        default.unlink()
    assert done.returncode == 0, done.stdout
    assert "11 suppressed" in " ".join(done.stdout.split()) and "infra/policy-suppressions.yaml" in done.stdout


@pytest.mark.parametrize("change, rule", [
    # The ASM disks' backend (the volume type the provider creates names it).
    (("asm_backend: array-iscsi", "asm_backend: array-plain"), "volume-encrypted"),
    (("availability_zones: [fr-central-1, fr-central-2, fr-central-3]",
      "availability_zones: [fr-central-1, fr-central-2, fr-central-9]"), "allowed-zones"),
])
def test_an_inventory_naming_what_the_offer_does_not_qualify_fails(tmp_path, change, rule):
    project = copy_project(tmp_path / "p")
    group_vars = project / "inventories" / "production" / "group_vars" / "all.yml"
    assert change[0] in group_vars.read_text()
    group_vars.write_text(group_vars.read_text().replace(*change))
    done = cutover(project, "infra", "check", "--env", "production", "--json")
    assert done.returncode == 9, done.stderr
    assert rule in {v["rule"] for v in json.loads(done.stdout)["violations"]}


def test_a_broken_policy_file_is_invalid_input_with_file_and_line(tmp_path):
    project = copy_project(tmp_path / "p")
    policy = project / "infra" / "policy.yaml"
    text = policy.read_text().replace("encrypted_backends:", "encrypted_backendz:")
    policy.write_text(text)
    line = text.splitlines().index("  encrypted_backendz: [ceph-luks, array-iscsi]") + 1
    done = cutover(project, "infra", "check", "--env", "production")
    assert done.returncode == 2 and f"infra/policy.yaml:{line}" in done.stderr and "Traceback" not in done.stderr


def test_diff_check_adds_the_new_plans_policy_results_inline(project, saved_plan, bad_plan):
    done = cutover(project, "infra", "diff", str(saved_plan), str(bad_plan), "--check", "--env", "production")
    assert done.returncode == 9 and "policy check of" in done.stdout and "inj-share" in done.stdout
    markdown = cutover(project, "infra", "diff", str(saved_plan), str(bad_plan), "--check", "--env", "production",
                       "--markdown")
    assert "### Policy check of the new plan: **11 violation(s)**" in markdown.stdout
    as_json = json.loads(cutover(project, "infra", "diff", str(saved_plan), str(bad_plan), "--check", "--env",
                                 "production", "--json").stdout)
    assert len(as_json["check"]["violations"]) == 11 and "changes" in as_json
    clean = cutover(project, "infra", "diff", str(saved_plan), str(saved_plan), "--check", "--env", "production")
    assert clean.returncode == 0 and "pass all" in " ".join(clean.stdout.split())
    no_env = cutover(project, "infra", "diff", str(saved_plan), str(bad_plan), "--check")
    assert no_env.returncode == 2 and "--check needs --env" in no_env.stderr


@pytest.fixture
def violating_project(tmp_path) -> Path:
    project = copy_project(tmp_path / "p")
    group_vars = project / "inventories" / "production" / "group_vars" / "all.yml"
    group_vars.write_text(group_vars.read_text().replace("asm_backend: array-iscsi", "asm_backend: plain"))
    return project


def no_pulumi_env(project: Path) -> dict[str, str]:
    return {"PATH": str(Path(sys.executable).parent), "HOME": str(project)}  # the venv's bin: no `pulumi` there


@pytest.mark.parametrize("command", [["preview"], ["up", "--yes"]])
def test_preview_and_up_refuse_a_violating_plan_before_calling_pulumi(violating_project, command):
    done = subprocess.run([CUTOVER, "--project-dir", str(violating_project), "infra", *command, "--env",
                           "production"], capture_output=True, text=True, timeout=300,
                          env=no_pulumi_env(violating_project))
    assert done.returncode == 9, done.stderr
    assert "refused" in done.stderr and "--accept-violations" in done.stderr and "volume-encrypted" in done.stdout
    assert "Pulumi CLI" not in done.stderr  # the check came first
    assert not (violating_project / ".cutover" / "infra-acceptances.jsonl").exists()


def test_accepted_violations_are_recorded_before_pulumi_is_called(violating_project):
    from cutover.infra.acceptance import read_acceptances

    reason = "CHG-4242: plain backend until the LUKS migration of the array"
    done = subprocess.run([CUTOVER, "--project-dir", str(violating_project), "--operator", "claire.martin", "infra",
                           "up", "--env", "production", "--yes", "--accept-violations", reason],
                          capture_output=True, text=True, timeout=300, env=no_pulumi_env(violating_project))
    assert done.returncode == 1 and "Pulumi CLI" in done.stderr  # recorded, then stopped: no CLI here
    [entry] = read_acceptances(violating_project / ".cutover")
    assert entry["reason"] == reason and entry["operator"] == "claire.martin" and entry["command"] == "up"
    # A plain backend is neither encrypted nor an iSCSI backend the RAC nodes can log in to.
    assert {v["rule"] for v in entry["violations"]} == {"volume-encrypted", "rac-storage-reachable"}
    assert len(entry["policy"]["sha256"]) == 64
    assert oct((violating_project / ".cutover" / "infra-acceptances.jsonl").stat().st_mode & 0o777) == "0o600"


def test_a_reason_too_short_to_judge_is_refused(violating_project):
    done = subprocess.run([CUTOVER, "--project-dir", str(violating_project), "infra", "preview", "--env",
                           "production", "--accept-violations", "ok"], capture_output=True, text=True, timeout=300,
                          env=no_pulumi_env(violating_project))
    assert done.returncode == 2 and "reason" in done.stderr


def test_the_stack_files_provider_settings_must_be_qualified_too(tmp_path, saved_plan):
    project = copy_project(tmp_path / "p")
    stack = project / "infra" / "Pulumi.production.yaml"
    stack.write_text(stack.read_text() + "  openstack:authUrl: https://keystone.elsewhere.example/v3\n")
    done = cutover(project, "infra", "check", "--env", "production", "--plan", str(saved_plan), "--json")
    assert done.returncode == 9, done.stderr
    [violation] = json.loads(done.stdout)["violations"]
    line = len(stack.read_text().splitlines())
    assert (violation["rule"], violation["file"], violation["line"]) == ("qualified-provider",
                                                                         "infra/Pulumi.production.yaml", line)
    stack.write_text(stack.read_text().replace("keystone.elsewhere.example", "identity.fr-central.cloud.example"))
    assert cutover(project, "infra", "check", "--env", "production", "--plan", str(saved_plan)).returncode == 0
