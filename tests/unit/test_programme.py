"""The programme: each SAMU's place folded from the effects that stand across runs; live runs never move a SAMU twice."""

from __future__ import annotations

import dataclasses

import pytest

from cutover.app.programme import check_programme, environment_runs, positions, programme_json
from cutover.core import records as r
from cutover.core.records import ProgrammeOverride
from cutover.errors import InputError
from cutover.model.inventory import CutoverVars
from cutover.testing import InMemoryJournal
from cutover.testing.inventory import tiny_inventory

WAVE1 = ("samu-01",)
WAVE2 = ("samu-13", "samu-30")


def production():
    inventory = tiny_inventory(("01", "13", "30"), lab=False, name="production")
    groups = {**inventory.groups, "wave1": WAVE1, "wave2": WAVE2}
    return dataclasses.replace(inventory, groups=groups, settings=CutoverVars(cutover_production=True))


def night_steps(samus):
    """The big-bang night's effects: backup mode, the repoint to the cloud, back to nominal."""
    return (r.StepInfo("backup-mode", "playbook", "to backup", tuple(samus), has_rollback=True, sets_mode="backup"),
            r.StepInfo("point-to-cloud", "playbook", "repoint", tuple(samus), has_rollback=True, serves="cloud"),
            r.StepInfo("pnr", "gate", "point of no return", None, point_of_no_return=True),
            r.StepInfo("return-to-nominal", "playbook", "to nominal", tuple(samus), has_rollback=True,
                       sets_mode="nominal"))


def write(journal, run_id, *records):
    for record in records:
        journal.append(run_id, record.KIND, record.to_payload())


def create(journal, run_id, inventory, samus):
    write(journal, run_id, r.RunCreated(r.RunbookRef("bigbang"), inventory.name, night_steps(samus),
                                        kind=inventory.run_kind, wave=r.WaveRef("w", tuple(samus))))


def step_done(journal, run_id, step, samus):
    for samu in samus:
        write(journal, run_id, r.StepStarted(step, samu), r.StepSucceeded(step, samu))
    write(journal, run_id, r.RollbackPoint(step))


def undo(journal, run_id, step, samus):
    for samu in samus:
        write(journal, run_id, r.UndoStarted(step, samu), r.UndoSucceeded(step, samu))
    write(journal, run_id, r.StepRolledBack(step))


def completed_night(journal, run_id, inventory, samus):
    create(journal, run_id, inventory, samus)
    for step in ("backup-mode", "point-to-cloud"):
        step_done(journal, run_id, step, samus)
    write(journal, run_id, r.GatePassed("pnr", point_of_no_return=True))
    step_done(journal, run_id, "return-to-nominal", samus)
    write(journal, run_id, r.RunCompleted())


def place(inventory, journal):
    found = positions(inventory, environment_runs(journal, inventory))
    return {h: (p.state, p.platform, p.mode_name, p.latest.run_id if p.latest else None) for h, p in found.items()}


def test_a_completed_night_puts_its_wave_nominal_on_the_cloud_naming_the_run_and_step():
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "n1", inventory, WAVE1)
    found = positions(inventory, environment_runs(journal, inventory))
    assert place(inventory, journal) == {"samu-01": ("migrated", "cloud", "nominal", "n1"),
                                         "samu-13": ("not started", "legacy", "nominal", None),
                                         "samu-30": ("not started", "legacy", "nominal", None)}
    samu = found["samu-01"].to_json()
    assert (samu["served_by"], samu["effects"]["served"]["step"], samu["step"]) == \
        ("cloud", "point-to-cloud", "return-to-nominal")
    summary = programme_json(inventory, found)
    assert (summary["migrated"], summary["total"], summary["kind"]) == (1, 3, "live")


def test_a_junk_run_rolled_back_before_acting_changes_no_place():
    """Defect: the latest run's outcome won, so a junk run made the programme say 0 migrated, "rolled back"."""
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "n1", inventory, WAVE1)
    create(journal, "past1", inventory, WAVE1)
    write(journal, "past1", r.RunPaused("window", "the window is closed"), r.RollbackRequested(None),
          r.RunRolledBack(None))
    assert place(inventory, journal)["samu-01"] == ("migrated", "cloud", "nominal", "n1")
    assert programme_json(inventory, positions(inventory, environment_runs(journal, inventory)))["migrated"] == 1


def test_a_duplicate_night_rolled_back_leaves_its_samus_where_the_first_night_put_them():
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "n1", inventory, WAVE1)
    create(journal, "doublon", inventory, WAVE1)
    step_done(journal, "doublon", "backup-mode", WAVE1)
    write(journal, "doublon", r.RollbackRequested(None))
    undo(journal, "doublon", "backup-mode", WAVE1)
    write(journal, "doublon", r.RunRolledBack(None))
    assert place(inventory, journal)["samu-01"] == ("migrated", "cloud", "nominal", "n1")


def test_an_abandoned_run_is_left_out_of_the_programme():
    inventory, journal = production(), InMemoryJournal()
    create(journal, "junk", inventory, WAVE2)
    write(journal, "junk", r.RunAbandoned("typed the wrong window"))
    assert [s.run_id for s in environment_runs(journal, inventory)] == []
    assert {s for s, *_ in place(inventory, journal).values()} == {"not started"}


def test_an_unfinished_run_holds_its_samus_in_progress_and_they_stand_where_its_effects_put_them():
    inventory, journal = production(), InMemoryJournal()
    create(journal, "n2", inventory, WAVE2)
    step_done(journal, "n2", "backup-mode", WAVE2)
    step_done(journal, "n2", "point-to-cloud", WAVE2)
    write(journal, "n2", r.RunPaused("gate", "waiting at the point of no return"))
    found = positions(inventory, environment_runs(journal, inventory))
    assert place(inventory, journal)["samu-13"] == ("in progress", "cloud", "backup", "n2")
    assert found["samu-30"].holder == "n2"


def test_rolling_back_to_the_point_of_no_return_leaves_the_samus_in_backup_on_the_cloud():
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "n1", inventory, WAVE1)
    write(journal, "n1", r.RollbackRequested("pnr"))
    undo(journal, "n1", "return-to-nominal", WAVE1)
    write(journal, "n1", r.RunRolledBack("pnr"))
    assert place(inventory, journal)["samu-01"] == ("in backup", "cloud", "backup", "n1")


def test_rehearsal_runs_do_not_count_on_production():
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "drill", dataclasses.replace(inventory, settings=CutoverVars()), WAVE1)
    assert place(inventory, journal)["samu-01"][0] == "not started"


def test_a_live_run_moving_a_samu_the_cloud_serves_is_refused_unless_overridden_with_a_reason():
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "r1", inventory, WAVE1)
    with pytest.raises(InputError, match=r"already served by the cloud after a live run: 01 \(r1 point-to-cloud"):
        check_programme(journal, inventory, ["samu-01", "samu-13"], None)
    override = check_programme(journal, inventory, ["samu-01"], "re-run after the SIP trunk fix")
    assert override == ProgrammeOverride("re-run after the SIP trunk fix", ("samu-01",))
    assert check_programme(journal, inventory, ["samu-13"], None) is None


def test_a_junk_run_rolled_back_does_not_lift_the_guard_against_moving_a_samu_twice():
    """Defect: the guard read the latest run, so a rolled-back junk run let a live night move SAMU 01 again."""
    inventory, journal = production(), InMemoryJournal()
    completed_night(journal, "r1", inventory, WAVE1)
    create(journal, "past1", inventory, WAVE1)
    write(journal, "past1", r.RollbackRequested(None), r.RunRolledBack(None))
    with pytest.raises(InputError, match="already served by the cloud"):
        check_programme(journal, inventory, ["samu-01"], None)


@pytest.mark.parametrize("step, message", [
    ("    serves: cloud\n    rollback: {run: back}\n", "`serves` needs `for_each`"),
    ("    for_each: wave1\n    serves: cloud\n    rollback: none\n    rollback_reason: x\n", "its rollback points"),
    ("    for_each: wave1\n    read_only: true\n    serves: cloud\n    rollback: {run: back}\n", "cannot declare"),
    ("    for_each: wave1\n    serves: moon\n    rollback: {run: back}\n", "'legacy' or 'cloud'"),
])
def test_a_step_declaring_where_it_points_samus_is_checked_before_anything_runs(step, message):
    from cutover.errors import ValidationError
    from cutover.model.runbook import parse_runbook

    with pytest.raises(ValidationError, match=message):
        parse_runbook(f"name: n\nsteps:\n  - id: repoint\n    kind: command\n    run: repoint\n{step}", "n.yaml")
