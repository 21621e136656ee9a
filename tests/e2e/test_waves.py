"""The programme beyond wave 1, in the real lab: a night moves its wave and nothing else.

One lab for the whole module: four SAMUs in three waves (wave1: 01, 02;
wave2: 03; wave3: 04), traffic to all four throughout. The tests run in file
order and each starts where the previous one left the lab, as the nights of a
programme do: the wave-1 night, rollbacks of the wave-2 night from each of its
rollback points, then the wave-2 and wave-3 nights. After each, every SAMU of
the environment must still be taking calls, and nothing is lost, anywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO
from tests.e2e.test_night import POINTS_BEFORE_PNR, Lab, assert_nothing_lost, calls, sites

pytestmark = pytest.mark.e2e

WAVES = {"wave1": ("01", "02"), "wave2": ("03",), "wave3": ("04",)}


@pytest.fixture(scope="module")
def programme_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("waves")
    root = tmp / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    for folder in ("runbooks", "playbooks"):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    lab = Lab(root, tmp / "state")
    lab.env, lab.codes = str(lab.state / "lab" / "inventory"), ("01", "02", "03", "04")
    lab.cutover("lab", "up", "--samus", "4", "--waves", "3", "--rate", "5", check=0)
    try:
        yield lab
    finally:
        lab.cutover("lab", "down")


def night(lab: Lab, wave: str, run_id: str, *args: str):
    return lab.cutover("run", "bigbang", "--env", lab.env, "--param", f"wave={wave}", "--run-id", run_id,
                       "--auto-approve", "lab-bot", *args, timeout=300)


def expected(moved: set[str]) -> dict[str, tuple[str, str]]:
    """Every SAMU nominal: those of the moved waves on the cloud, the others on legacy."""
    return {code: ("nominal", "cloud" if wave in moved else "legacy") for wave, codes in WAVES.items()
            for code in codes}


def programme(lab: Lab) -> dict:
    return json.loads(lab.cutover("programme", "--env", lab.env, "--json", check=0).stdout)


def test_the_generated_lab_has_three_waves_and_traffic_to_every_samu(programme_lab: Lab):
    groups = {w["group"]: tuple(s["code"] for s in w["samus"]) for w in programme(programme_lab)["waves"]}
    assert groups == WAVES
    account = calls(programme_lab)
    assert set(account["samus"]) == {"01", "02", "03", "04"}


def test_the_wave1_night_moves_wave1_and_leaves_every_other_samu_taking_calls_on_legacy(programme_lab: Lab):
    lab = programme_lab
    result = night(lab, "wave1", "wave1-night")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert sites(lab) == expected({"wave1"})
    account = calls(lab)
    assert_nothing_lost(account)
    for code in ("03", "04"):  # answered by legacy throughout, never lost
        assert account["samus"][code]["answered"] > 0 and account["samus"][code]["lost"] == 0
    status = json.loads(lab.cutover("status", "wave1-night", "--json", check=0).stdout)
    assert status["params"] == {"wave": "wave1"} and status["wave"]["samus"] == ["samu-01", "samu-02"]


@pytest.mark.parametrize("point", POINTS_BEFORE_PNR)
def test_rolling_back_the_wave2_night_from_each_point_leaves_wave1_on_the_cloud_and_the_rest_on_legacy(
        programme_lab: Lab, point: str):
    lab = programme_lab
    run_id = f"wave2-rb-{point}"
    result = night(lab, "wave2", run_id, "--until", point)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    rolled = lab.cutover("rollback", run_id, timeout=300)
    assert rolled.returncode == 5, rolled.stdout[-3000:] + rolled.stderr
    assert sites(lab) == expected({"wave1"})
    assert_nothing_lost(calls(lab))


def test_the_wave2_and_wave3_nights_complete_the_programme_with_nothing_lost(programme_lab: Lab):
    lab = programme_lab
    for wave in ("wave2", "wave3"):
        result = night(lab, wave, f"{wave}-night")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert sites(lab) == expected({"wave1", "wave2", "wave3"})
    assert_nothing_lost(calls(lab))
    summary = programme(lab)
    assert (summary["migrated"], summary["total"]) == (4, 4)
    assert {s["run_id"] for w in summary["waves"] for s in w["samus"]} == {"wave1-night", "wave2-night", "wave3-night"}
    runs = json.loads(lab.cutover("runs", "--json", check=0).stdout)
    assert {r["run_id"]: r["params"]["wave"] for r in runs}["wave3-night"] == "wave3"


def test_a_samu_outside_the_wave_cut_off_during_the_night_stops_it_at_the_next_verification(tmp_path: Path):
    root = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    for folder in ("runbooks", "playbooks"):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    lab = Lab(root, tmp_path / "state")
    lab.env = str(lab.state / "lab" / "inventory")
    lab.cutover("lab", "up", "--samus", "2", "--waves", "2", "--rate", "5", check=0)
    try:
        # someone (or a bad playbook) freezes SAMU 02's partition: 02 is in wave2, outside tonight's wave
        tool = lab.state / "lab" / "bin" / "samu-platform"
        frozen = subprocess.run([str(tool), "freeze", "--platform", "legacy", "--samus", "02",
                                 "--lab-dir", str(lab.state / "lab")], capture_output=True, text=True, timeout=30)
        assert frozen.returncode == 0, frozen.stderr
        result = night(lab, "wave1", "collateral", "--until", "migrate")
        # the freeze's verification fails (a platform step has no failure budget): the night halts there
        assert result.returncode == 4, result.stdout[-3000:] + result.stderr
        status = json.loads(lab.cutover("status", "collateral", "--json", check=0).stdout)
        assert status["state"] == "failed" and status["rollback_points"][-1] == "backup-mode"
        failed = next(s for s in status["steps"] if s["state"] == "failed")
        assert failed["id"] == "freeze-legacy", failed
        assert "Test call" in failed["detail"] and "to SAMU 02 was lost" in failed["detail"], failed
    finally:
        lab.cutover("lab", "down")


def test_a_labelled_rehearsal_then_lab_reset_lets_the_night_be_rehearsed_again(programme_lab: Lab):
    """Runs after the programme completed: every SAMU on the cloud; a reset puts the lab back to the start."""
    lab = programme_lab
    assert lab.cutover("lab", "reset").returncode == 0
    assert sites(lab) == expected(set())  # every SAMU nominal on legacy again
    result = night(lab, "wave1", "again", "--label", "répétition 2", "--until", "backup-mode")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    runs = {r["run_id"]: r for r in json.loads(lab.cutover("runs", "--json", check=0).stdout)}
    assert runs["again"]["label"] == "répétition 2" and runs["again"]["kind"] == "rehearsal"
    assert runs["wave1-night"]["state"] == "completed"  # the journal was kept
    assert lab.cutover("rollback", "again", timeout=300).returncode == 5
    assert_nothing_lost(calls(lab))
