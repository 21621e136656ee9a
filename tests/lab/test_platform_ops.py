"""Platform operations: freeze, migrate with counts and checksums, injected mismatch, copy-back."""

from __future__ import annotations

import random

import pytest

from cutover.lab.tools import samulab


def _fill(lab: samulab.LabData, rng: random.Random, calls: int = 6) -> list[str]:
    return [lab.call(code, caller="+33 6 11 22 33 44", rng=rng).call_id
            for _ in range(calls // 3) for code in ("13", "2A", "30")]


def _checksums(lab: samulab.LabData, name: str) -> dict:
    return samulab.table_checksums(lab.platform(name))


def test_checksums_cover_every_data_table_with_counts(lab, rng):
    _fill(lab, rng)
    sums = _checksums(lab, "legacy")
    assert set(sums) == {"calls", "interventions"}
    assert sums["calls"]["rows"] == 6 and sums["interventions"]["rows"] == 6
    assert sums["calls"]["checksum"].startswith("md5sum60:")
    assert _checksums(lab, "cloud")["calls"]["rows"] == 0


def test_migrating_a_frozen_platform_gives_equal_counts_and_checksums(lab, rng):
    _fill(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True)
    result = samulab.migrate(lab.lab_dir, "legacy", "cloud")
    assert result["copied"] == {"calls": 6, "interventions": 6}
    assert samulab.compare_checksums(_checksums(lab, "legacy"), _checksums(lab, "cloud")) == []


def test_migrating_twice_copies_nothing_the_second_time(lab, rng):
    _fill(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True)
    samulab.migrate(lab.lab_dir, "legacy", "cloud")
    again = samulab.migrate(lab.lab_dir, "legacy", "cloud")
    assert again["copied"] == {"calls": 0, "interventions": 0}
    assert _checksums(lab, "cloud")["calls"]["rows"] == 6


def test_migrating_from_a_serving_platform_is_refused_unless_live(lab, rng):
    _fill(lab, rng)
    with pytest.raises(samulab.LabError, match="still serving"):
        samulab.migrate(lab.lab_dir, "legacy", "cloud")
    assert samulab.migrate(lab.lab_dir, "legacy", "cloud", live=True)["copied"]["calls"] == 6


def test_a_down_platform_refuses_freeze_checksums_and_migration(lab, rng, platform_down):
    _fill(lab, rng)
    platform_down("legacy")
    for operation in (lambda: samulab.set_frozen(lab.platform("legacy"), True),
                      lambda: _checksums(lab, "legacy"),
                      lambda: samulab.migrate(lab.lab_dir, "legacy", "cloud")):
        with pytest.raises(samulab.LabError, match="down"):
            operation()


def test_an_injected_corruption_keeps_counts_but_breaks_checksums_until_repaired(lab, rng):
    _fill(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True)
    samulab.migrate(lab.lab_dir, "legacy", "cloud")
    samulab.corrupt_one_record(lab.platform("cloud"))
    legacy, cloud = _checksums(lab, "legacy"), _checksums(lab, "cloud")
    assert samulab.compare_checksums(legacy, cloud) == ["calls"]
    assert legacy["calls"]["rows"] == cloud["calls"]["rows"]
    assert samulab.platform_status(lab.platform("cloud"), "cloud")["faults"] == ["checksum-mismatch"]
    assert samulab.repair_records(lab.platform("cloud")) == 1
    assert samulab.compare_checksums(_checksums(lab, "legacy"), _checksums(lab, "cloud")) == []


def test_a_corruption_armed_on_an_empty_platform_hits_the_migration(lab, rng):
    _fill(lab, rng)
    assert "armed" in samulab.corrupt_one_record(lab.platform("cloud"))
    samulab.set_frozen(lab.platform("legacy"), True)
    samulab.migrate(lab.lab_dir, "legacy", "cloud")
    assert samulab.compare_checksums(_checksums(lab, "legacy"), _checksums(lab, "cloud")) == ["calls"]
    samulab.repair_records(lab.platform("cloud"))
    assert samulab.compare_checksums(_checksums(lab, "legacy"), _checksums(lab, "cloud")) == []
    samulab.migrate(lab.lab_dir, "legacy", "cloud")  # the trigger is gone: nothing more is corrupted
    assert samulab.platform_status(lab.platform("cloud"), "cloud")["faults"] == []


def test_copy_back_freezes_the_cloud_and_returns_the_records_it_took(lab, rng):
    _fill(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True)
    samulab.migrate(lab.lab_dir, "legacy", "cloud")
    site = lab.site("30")
    samulab.set_mode(site, lab.platforms, "backup")
    samulab.point_at(site, lab.platforms, "cloud")
    samulab.set_mode(site, lab.platforms, "nominal")
    taken_by_cloud = [lab.call("30", caller="x", rng=rng).call_id for _ in range(3)]
    result = samulab.copy_back(lab.lab_dir)
    assert result["copied"] == {"calls": 3, "interventions": 3}
    assert samulab.platform_state(lab.platform("cloud")) == "frozen"
    legacy_ids = {r[0] for r in lab.platform("legacy").rows("SELECT call_id FROM calls")}
    assert set(taken_by_cloud) <= legacy_ids
    assert samulab.copy_back(lab.lab_dir)["copied"] == {"calls": 0, "interventions": 0}
