"""Blast radius, checked by `validate` before anything runs, on a two-wave inventory and the real playbooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.errors import ValidationError
from cutover.lab.inventorygen import write_lab_inventory
from cutover.model.inventory import load_inventory
from cutover.model.runbook import load_runbook
from cutover.planning.blast import step_reaches
from cutover.planning.validation import check_against

REPO = Path(__file__).resolve().parents[2]
BIGBANG = REPO / "runbooks" / "bigbang.yaml"


@pytest.fixture(scope="module")
def two_waves(tmp_path_factory: pytest.TempPathFactory):
    """Four SAMUs: wave1 = 01, 02; wave2 = 03, 04."""
    folder = write_lab_inventory(tmp_path_factory.mktemp("inv") / "inventory", load_inventory(REPO, "lab"), 4, 2)
    return load_inventory(REPO, str(folder))


def check(path: Path, inventory, **params: str):
    loaded = load_runbook(path, params=params)
    check_against(loaded, inventory, REPO)
    return loaded


@pytest.mark.parametrize("wave", ["wave1", "wave2"])
def test_the_shipped_runbook_reaches_only_its_wave(two_waves, wave):
    loaded = check(BIGBANG, two_waves, wave=wave)
    members = set(two_waves.groups[wave])
    for reach in step_reaches(loaded, two_waves, REPO):
        if not reach.read_only:
            assert reach.action.samus <= members and reach.rollback.samus <= members, reach


def test_a_platform_step_without_the_wave_scope_is_refused_naming_the_other_waves_samus(two_waves, tmp_path):
    # the runbook as it was before waves: the freeze acted on the whole legacy platform
    text = BIGBANG.read_text().replace(
        "    playbook: freeze_legacy.yml\n    extra_vars: {wave_group: ((wave))}\n", "    playbook: freeze_legacy.yml\n")
    path = tmp_path / "whole_platform.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as caught:
        check(path, two_waves, wave="wave1")
    messages = [p.message for p in caught.value.problems]
    assert any("outside wave 'wave1'" in m and "03 (samu-03), 04 (samu-04)" in m for m in messages), messages
    assert any("not in backup mode" in m and "03 (samu-03)" in m for m in messages), messages


def test_freezing_a_platform_before_its_wave_is_in_backup_mode_is_refused_naming_the_wave(two_waves):
    with pytest.raises(ValidationError) as caught:
        check(REPO / "runbooks" / "wrong_order.yaml", two_waves, wave="wave2")
    problem = caught.value.problems[0]
    assert "freeze-legacy" in problem.message and "not in backup mode" in problem.message
    assert "03 (samu-03), 04 (samu-04)" in problem.message and problem.line is not None


def test_a_site_step_over_every_samu_is_refused_when_the_runbook_moves_one_wave(two_waves, tmp_path):
    text = BIGBANG.read_text().replace("    playbook: point_to_cloud.yml\n    for_each: ((wave))",
                                       "    playbook: point_to_cloud.yml\n    for_each: samu")
    path = tmp_path / "too_wide.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError, match=r"step point-to-cloud: its action can reach SAMU\(s\) outside"):
        check(path, two_waves, wave="wave1")


def test_a_wave_parameter_naming_a_group_that_is_not_a_wave_is_refused(two_waves):
    with pytest.raises(ValidationError, match="'platforms' is not an allowed group"):
        check(BIGBANG, two_waves, wave="platforms")
