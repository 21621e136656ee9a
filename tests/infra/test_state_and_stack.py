"""Issue 20, findings 6 and 8 (stack files): the state stays in France; no stack config the checker cannot see."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cutover.infra.compliance import check_inputs, stack_provider_violations, state_violations
from cutover.infra.policy import Violation

Edit = Callable[[str, Callable[[str], str]], Path]
PROJECT = "infra/Pulumi.yaml"
STACK = "infra/Pulumi.production.yaml"
PROVIDER_STACK = "infra/provider/Pulumi.production.yaml"


def state(project: Path) -> list[tuple[str, str]]:
    context = check_inputs(project, "production").context
    return [(v.file or "", v.message) for v in state_violations(project, context)]


def stack(project: Path) -> list[Violation]:
    return stack_provider_violations(project, "production", check_inputs(project, "production").context)


def test_the_shipped_projects_keep_state_and_secrets_in_france(project_copy):
    assert state(project_copy) == []
    assert stack(project_copy) == []


def test_no_backend_is_pulumi_cloud(project_copy: Path, edit: Edit):
    edit(PROJECT, lambda text: text.replace("backend:\n  url:", "old_backend:\n  url:"))
    found = state(project_copy)
    assert [file for file, _ in found] == [PROJECT] and "Pulumi Cloud" in found[0][1]


@pytest.mark.parametrize("url", ["https://api.pulumi.com", "s3://some-bucket-in-us-east-1",
                                 "file:///tmp/state"])
def test_a_backend_the_policy_does_not_declare_fails(project_copy: Path, edit: Edit, url: str):
    edit(PROJECT, lambda text: text.replace(
        "url: s3://cutover-pulumi-state?endpoint=s3.fr-central.cloud.example&region=fr-central&s3ForcePathStyle=true",
        f"url: {url}"))
    assert [file for file, _ in state(project_copy)] == [PROJECT]


@pytest.mark.parametrize("line", ["", "secretsprovider: default\n", "secretsprovider: awskms://alias/x?region=us-east-1\n"])
def test_a_stack_without_a_french_secrets_provider_fails(project_copy: Path, edit: Edit, line: str):
    edit(PROVIDER_STACK, lambda text: text.replace("secretsprovider: hashivault://cutover-samu-provider-production\n",
                                                   line))
    assert [file for file, _ in state(project_copy)] == [PROVIDER_STACK]


@pytest.mark.parametrize("change,field", [
    (lambda t: t.replace("  openstack:region: fr-central\n", ""), "no openstack:region"),
    (lambda t: t + "  openstack:cloud: other-cloud\n", "clouds.yaml"),
    (lambda t: t + "  openstack:insecure: true\n", "TLS verification off"),
    (lambda t: t + "  openstack:authUrl: https://keystone.other-cloud.example/v3\n", "not a qualified endpoint"),
    (lambda t: t + "environment:\n  - samu/production\n", "Pulumi ESC environment"),
    (lambda t: t.replace("  openstack:region: fr-central\n",
                         "  openstack:region:\n    secure: v1:abcdef\n"), "not a plain value"),
])
def test_stack_config_the_checker_cannot_see_or_accept_fails(project_copy: Path, edit: Edit,
                                                             change: Callable[[str], str], field: str):
    edit(STACK, change)
    found = stack(project_copy)
    assert len(found) == 1 and found[0].rule == "qualified-provider" and field in found[0].message
    assert found[0].file == STACK


def test_the_provider_sides_stack_is_checked_too(project_copy: Path, edit: Edit):
    edit(PROVIDER_STACK, lambda text: text + "  openstack:insecure: true\n")
    assert [v.file for v in stack(project_copy)] == [PROVIDER_STACK]
