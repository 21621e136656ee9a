"""The programme: each SAMU's position folded from the environment's runs; live runs never move a SAMU twice."""

from __future__ import annotations

import dataclasses

import pytest

from cutover.core.records import ProgrammeOverride
from cutover.errors import InputError
from cutover.inventory import CutoverVars
from cutover.programme import check_programme, environment_runs, positions, programme_json
from cutover.testing import InMemoryJournal
from cutover.testing.inventory import tiny_inventory


def production():
    inventory = tiny_inventory(("01", "13", "30"), lab=False, name="production")
    groups = {**inventory.groups, "wave1": ("samu-01",), "wave2": ("samu-13", "samu-30")}
    return dataclasses.replace(inventory, groups=groups, settings=CutoverVars(cutover_production=True))


def record_run(journal, run_id, inventory, samus, ending=None):
    journal.append(run_id, "run_created", {"runbook": {"name": "bigbang"}, "env": inventory.name,
                                          "kind": inventory.run_kind, "params": {}, "steps": [],
                                          "wave": {"group": "w", "samus": list(samus)}})
    if ending:
        journal.append(run_id, ending, {})


def test_positions_follow_the_latest_run_of_each_samu():
    inventory = production()
    journal = InMemoryJournal()
    record_run(journal, "r1", inventory, ["samu-01"], "run_completed")
    record_run(journal, "r2", inventory, ["samu-13"], "run_rolled_back")
    record_run(journal, "r3", inventory, ["samu-13"])  # still going
    found = positions(inventory, environment_runs(journal, inventory))
    assert {h: (p.state, p.run_id) for h, p in found.items()} == {
        "samu-01": ("migrated", "r1"), "samu-13": ("in progress", "r3"), "samu-30": ("not started", None)}
    summary = programme_json(inventory, found)
    assert (summary["migrated"], summary["total"], summary["kind"]) == (1, 3, "live")


def test_rehearsal_runs_do_not_count_on_production():
    inventory = production()
    journal = InMemoryJournal()
    record_run(journal, "drill", dataclasses.replace(inventory, settings=CutoverVars()), ["samu-01"], "run_completed")
    assert positions(inventory, environment_runs(journal, inventory))["samu-01"].state == "not started"


def test_a_live_run_moving_an_already_migrated_samu_is_refused_unless_overridden_with_a_reason():
    inventory = production()
    journal = InMemoryJournal()
    record_run(journal, "r1", inventory, ["samu-01"], "run_completed")
    with pytest.raises(InputError, match=r"already moved by a completed live run: 01 \(r1"):
        check_programme(journal, inventory, ["samu-01", "samu-13"], None)
    override = check_programme(journal, inventory, ["samu-01"], "re-run after the SIP trunk fix")
    assert override == ProgrammeOverride("re-run after the SIP trunk fix", ("samu-01",))
    assert check_programme(journal, inventory, ["samu-13"], None) is None
