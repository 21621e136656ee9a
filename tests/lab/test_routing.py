"""Call routing: nominal -> the SAMU's platform, backup -> the site's buffer, frozen/down -> lost."""

from __future__ import annotations

import random

import pytest

from cutover.lab.tools import samulab


def _call(lab: samulab.LabData, code: str, rng: random.Random) -> samulab.CallResult:
    return lab.call(code, caller="+33 6 00 00 00 00", rng=rng)


def _count(db: samulab.Platform, sql: str) -> int:
    return int(db.rows(sql)[0][0] or 0)


def test_a_nominal_samu_is_answered_and_recorded_by_its_platform(lab, rng):
    result = _call(lab, "30", rng)
    assert result.answered_by == "legacy"
    legacy = lab.platform("legacy")
    assert _count(legacy, f"SELECT COUNT(*) FROM calls WHERE call_id = '{result.call_id}'") == 1
    assert _count(legacy, f"SELECT COUNT(*) FROM interventions WHERE call_id = '{result.call_id}'") == 1
    assert _count(lab.platform("cloud"), "SELECT COUNT(*) FROM calls") == 0


def test_a_samu_pointed_at_the_cloud_is_answered_by_the_cloud(lab, rng):
    samulab.point_at(lab.site("30"), lab.platforms, "cloud")
    assert _call(lab, "30", rng).answered_by == "cloud"
    assert _call(lab, "13", rng).answered_by == "legacy"


def test_a_samu_in_backup_mode_answers_locally_into_its_buffer(lab, rng):
    samulab.set_mode(lab.site("30"), lab.platforms, "backup")
    result = _call(lab, "30", rng)
    assert result.answered_by == "local"
    assert samulab.site_status(lab.site("30"))["buffer"]["pending"] == 1
    assert _count(lab.platform("legacy"), "SELECT COUNT(*) FROM calls") == 0


@pytest.mark.parametrize("fault", ["frozen", "down"])
def test_a_call_reaching_a_frozen_or_down_platform_is_lost(lab, rng, fault, platform_down):
    legacy = lab.platform("legacy")
    samulab.set_frozen(legacy, True, ["30"]) if fault == "frozen" else platform_down("legacy")
    result = _call(lab, "30", rng)
    reason = "legacy platform partition 30 frozen" if fault == "frozen" else "legacy platform down"
    assert not result.answered
    assert result.lost_reason == reason
    ledger = lab.ledger().execute("SELECT answered_by, lost_reason FROM calls").fetchall()
    assert ledger == [(None, reason)]
    if fault == "frozen":
        assert _count(legacy, "SELECT COUNT(*) FROM calls") == 0


def test_returning_to_nominal_replays_the_buffer_into_the_platform(lab, rng):
    site = lab.site("30")
    samulab.set_mode(site, lab.platforms, "backup")
    buffered = [_call(lab, "30", rng).call_id for _ in range(3)]
    samulab.point_at(site, lab.platforms, "cloud")
    outcome = samulab.set_mode(site, lab.platforms, "nominal")
    assert outcome["replayed"] == 3 and outcome["changed"]
    cloud_ids = {r[0] for r in lab.platform("cloud").rows("SELECT call_id FROM calls")}
    assert set(buffered) <= cloud_ids
    assert samulab.site_status(site)["buffer"] == {"pending": 0, "replayed": {"cloud": 3}}


def test_returning_to_nominal_on_a_frozen_platform_is_refused_and_changes_nothing(lab, rng):
    site = lab.site("30")
    samulab.set_mode(site, lab.platforms, "backup")
    _call(lab, "30", rng)
    samulab.set_frozen(lab.platform("legacy"), True)
    with pytest.raises(samulab.LabError, match="frozen"):
        samulab.set_mode(site, lab.platforms, "nominal")
    assert samulab.site_status(site)["mode"] == "backup"
    assert samulab.site_status(site)["buffer"]["pending"] == 1


def test_pointing_a_nominal_samu_at_a_frozen_platform_is_refused(lab):
    samulab.set_frozen(lab.platform("cloud"), True)
    with pytest.raises(samulab.LabError, match="calls would be lost"):
        samulab.point_at(lab.site("30"), lab.platforms, "cloud")
    samulab.set_mode(lab.site("30"), lab.platforms, "backup")
    assert samulab.point_at(lab.site("30"), lab.platforms, "cloud")["changed"]


def test_replaying_twice_never_duplicates(lab, rng):
    site = lab.site("30")
    samulab.set_mode(site, lab.platforms, "backup")
    ids = [_call(lab, "30", rng).call_id for _ in range(4)]
    first = samulab.replay_buffer(site, lab.platform("cloud"), "cloud")
    # Simulate a crash after the platform commit but before the buffer was marked.
    site.execute("UPDATE backup_buffer SET replayed_to = NULL, replayed_at = NULL")
    second = samulab.replay_buffer(site, lab.platform("cloud"), "cloud")
    assert first == {"replayed": 4, "already_present": 0}
    assert second == {"replayed": 0, "already_present": 4}
    cloud = lab.platform("cloud")
    assert _count(cloud, "SELECT COUNT(*) FROM calls") == 4
    assert _count(cloud, "SELECT COUNT(*) FROM interventions") == 4
    assert {r[0] for r in cloud.rows("SELECT call_id FROM calls")} == set(ids)
