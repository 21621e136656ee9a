"""A platform serves every SAMU, each SAMU's data a partition: operations on some partitions spare the others."""

from __future__ import annotations

import random

import pytest

from cutover.lab.tools import samulab


def _calls(lab: samulab.LabData, rng: random.Random, codes=("13", "2A", "30"), each: int = 2) -> None:
    for _ in range(each):
        for code in codes:
            lab.call(code, caller="+33 6 11 22 33 44", rng=rng)


def test_freezing_one_samus_partition_loses_only_that_samus_calls(lab, rng):
    samulab.set_frozen(lab.platform("legacy"), True, ["13"])
    results = {code: lab.call(code, caller="x", rng=rng) for code in ("13", "2A", "30")}
    assert results["13"].lost_reason == "legacy platform partition 13 frozen"
    assert results["2A"].answered_by == "legacy" and results["30"].answered_by == "legacy"


def test_migrating_partitions_copies_only_those_samus_records_and_hands_them_to_the_target(lab, rng):
    _calls(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True, ["13", "2A"])
    samulab.set_frozen(lab.platform("cloud"), True, ["13"])  # as a previous rollback's copy-back leaves it
    result = samulab.migrate(lab.lab_dir, "legacy", "cloud", codes=["13", "2A"])
    assert result["copied"] == {"calls": 4, "interventions": 4}
    cloud = lab.platform("cloud")
    assert {r[0] for r in cloud.rows("SELECT DISTINCT samu_code FROM calls")} == {"13", "2A"}
    assert samulab.partition_states(cloud, ["13", "2A"]) == {"13": "serving", "2A": "serving"}
    legacy_sums = samulab.table_checksums(lab.platform("legacy"), ["13", "2A"])
    assert samulab.compare_checksums(legacy_sums, samulab.table_checksums(cloud, ["13", "2A"])) == []
    assert samulab.table_checksums(cloud, ["30"])["calls"]["rows"] == 0


def test_migrating_partitions_still_serving_is_refused_naming_them(lab, rng):
    _calls(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True, ["13"])
    with pytest.raises(samulab.LabError, match="partition.s. 2A still serving"):
        samulab.migrate(lab.lab_dir, "legacy", "cloud", codes=["13", "2A"])


def test_copy_back_freezes_the_source_partitions_and_returns_their_new_records(lab, rng):
    _calls(lab, rng)
    samulab.set_frozen(lab.platform("legacy"), True, ["13"])
    samulab.migrate(lab.lab_dir, "legacy", "cloud", codes=["13"])
    samulab.set_mode(lab.site("13"), lab.platforms, "backup")
    samulab.point_at(lab.site("13"), lab.platforms, "cloud")
    samulab.set_mode(lab.site("13"), lab.platforms, "nominal")
    taken = lab.call("13", caller="x", rng=rng)
    assert taken.answered_by == "cloud"
    result = samulab.copy_back(lab.lab_dir, codes=["13"])
    assert result["copied"]["calls"] == 1
    assert samulab.partition_state(lab.platform("cloud"), "13") == "frozen"
    assert samulab.partition_state(lab.platform("cloud"), "2A") == "serving"


def test_the_platform_tool_scopes_status_to_the_partitions_named(lab, rng):
    samulab.set_frozen(lab.platform("legacy"), True, ["13"])
    status = samulab.platform_status(lab.platform("legacy"), "legacy", ["13", "30"])
    assert status["state"] == "serving" and status["partitions"] == {"13": "frozen", "30": "serving"}
    assert not samulab.partitions_in(status, "frozen")
    assert samulab.partitions_in(samulab.platform_status(lab.platform("legacy"), "legacy", ["13"]), "frozen")


def test_freezing_every_samus_partition_by_name_leaves_the_platform_serving_unlike_a_whole_freeze(lab):
    # A one-wave lab's rollback freezes every cloud partition by name; the next night's
    # pre-flight still needs the cloud platform itself serving.
    cloud = lab.platform("cloud")
    samulab.set_frozen(cloud, True, ["13", "2A", "30"])
    assert samulab.platform_state(cloud) == "serving"
    assert samulab.platform_status(cloud, "cloud")["state"] == "serving"
    samulab.set_frozen(cloud, False, ["13", "2A", "30"])
    samulab.set_frozen(cloud, True)
    assert samulab.platform_status(cloud, "cloud")["state"] == "frozen"
    assert samulab.partition_states(cloud, None) == {"13": "frozen", "2A": "frozen", "30": "frozen"}
