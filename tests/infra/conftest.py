"""Infra test fixtures: plans of the shipped environments, evaluated once per session, and project copies.

Plans come from the real program (``infra/__main__.py``) under Pulumi's mock
runtime, in a child interpreter, exactly as ``cutover infra plan`` makes them.
``project_copy`` is a throwaway project (``infra/`` and the rehearsal and
production inventories) that a test may edit, e.g. with ``tenant add``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cutover.infra.evaluate import plan_environment
from cutover.infra.plan import Plan
from cutover.infra.stack import PROVIDER

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def production_plan() -> Plan:
    return plan_environment(REPO, "production")


@pytest.fixture(scope="session")
def rehearsal_plan() -> Plan:
    return plan_environment(REPO, "rehearsal")


@pytest.fixture(scope="session")
def production_provider_plan() -> Plan:
    return plan_environment(REPO, "production", PROVIDER)


@pytest.fixture(scope="session")
def rehearsal_provider_plan() -> Plan:
    return plan_environment(REPO, "rehearsal", PROVIDER)


def copy_project(target: Path) -> Path:
    shutil.copytree(REPO / "infra", target / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    for env in ("rehearsal", "production"):
        shutil.copytree(REPO / "inventories" / env, target / "inventories" / env)
    # The bare-metal nodes' host rulesets (rule host-filtering compares them with the plan).
    shutil.copytree(REPO / "playbooks" / "files" / "nftables", target / "playbooks" / "files" / "nftables")
    return target


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture
def edit(project_copy: Path) -> Callable[[str, Callable[[str], str]], Path]:
    """edit("inventories/production/group_vars/all.yml", lambda text: ...) rewrites a file of the copy."""

    def apply(relative: str, change: Callable[[str], str]) -> Path:
        path = project_copy / relative
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
        return path

    return apply
