"""What-if on the forecast: changes as data, validated, and answers that move the right way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutover.core.montecarlo import PlannedDuration, forecast_night
from cutover.core.records import StepInfo
from cutover.core.timings import RunMeasure, StepMeasure
from cutover.core.whatif import Change, parse_change
from cutover.errors import ExitCode, InputError

START = datetime(2026, 11, 29, 22, 0, tzinfo=timezone.utc)
END = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
SAMUS = ("samu-01", "samu-13", "samu-30")


def step(step_id: str, targets=None, **kw) -> StepInfo:
    return StepInfo(id=step_id, kind=kw.pop("kind", "command"), title=step_id, targets=targets, **kw)


def run(run_id: str, **steps: StepMeasure) -> RunMeasure:
    return RunMeasure(run_id, "night", "lab", "rehearsal", None, "completed", "", None, dict(steps), list(steps))


NIGHT = [PlannedDuration(step("backup", SAMUS, sets_mode="backup", has_rollback=True), concurrency=2),
         PlannedDuration(step("freeze", has_rollback=True)),
         PlannedDuration(step("migrate", has_rollback=True)),
         PlannedDuration(step("pnr", kind="gate", point_of_no_return=True)),
         PlannedDuration(step("nominal", SAMUS, sets_mode="nominal", has_rollback=True), concurrency=3)]


def history(spread: float = 1.0) -> list[RunMeasure]:
    """Three rehearsals: the migration varies the most."""
    return [run(f"r{i}",
                backup=StepMeasure("backup", targets={t: 30.0 * spread * (1 + i % 2) for t in SAMUS}, rollback_s=40),
                freeze=StepMeasure("freeze", wall_s=60.0 + i, rollback_s=50),
                migrate=StepMeasure("migrate", wall_s=900.0 * (1 + i), rollback_s=300),
                nominal=StepMeasure("nominal", targets={t: 20.0 + i for t in SAMUS}, rollback_s=30))
            for i in range(3)]


def forecast(*changes: str, samples: int = 400, **kw):
    return forecast_night(NIGHT, history(), start=START, window_end=END, samples=samples,
                          changes=[parse_change(c) for c in changes], **kw)


@pytest.mark.parametrize(("text", "change"), [
    ("migrate=x1.5", Change("migrate", None, 1.5)),
    ("backup@samu-30=x3", Change("backup", "samu-30", 3.0)),
    ("backup@samu-30=fail", Change("backup", "samu-30", None)),
    ("freeze=FAIL", Change("freeze", None, None)),
    ("migrate=2", Change("migrate", None, 2.0)),
])
def test_a_change_is_read_as_data(text, change):
    assert parse_change(text) == change


@pytest.mark.parametrize(("text", "says"), [
    ("migrate", "is not a change I understand"),
    ("migrate=x0", "'x0' is not a factor or `fail`"),
    ("migrate=slow", "'slow' is not a factor or `fail`"),
    ("migrate=x5000", "'x5000' is not a factor"),
])
def test_a_change_badly_written_is_refused_saying_the_form(text, says):
    with pytest.raises(InputError) as refused:
        parse_change(text)
    assert says in refused.value.message and refused.value.exit_code is ExitCode.INVALID_INPUT
    assert "STEP@TARGET=fail" in (refused.value.hint or "")


@pytest.mark.parametrize(("text", "says", "hint"), [
    ("migrat=x2", "no step 'migrat' in the plan", "steps: backup, freeze, migrate, pnr, nominal"),
    ("backup@samu-99=fail", "step 'backup' has no target 'samu-99'", "its targets: samu-01, samu-13, samu-30"),
    ("migrate@samu-30=x2", "step 'migrate' has no target 'samu-30'", "none: it runs once, on the controller"),
    ("pnr=fail", "a gate does not fail", "runs postpone"),
])
def test_a_change_naming_what_the_plan_lacks_is_refused_naming_it(text, says, hint):
    with pytest.raises(InputError) as refused:
        forecast(text)
    assert says in refused.value.message and hint in (refused.value.hint or "")


def test_without_changes_the_answer_says_the_night_completes_holds_and_names_its_critical_step():
    result = forecast()
    assert result["outcome"] == "completes" and result["changes"] == []
    assert result["critical_step"] == "migrate"  # it carries the variance
    assert result["holds"] == {"pnr_deadline": True, "window": True}
    assert result["pnr_reached"]["p90"] < result["pnr_deadline"]


def test_a_much_slower_step_becomes_critical_and_misses_the_window():
    result = forecast("freeze=x500")  # 60 s -> 8 h 20 min
    assert result["critical_step"] == "freeze"
    assert result["holds"] == {"pnr_deadline": False, "window": False}
    assert result["changes"] == ["freeze=x500"]


def test_one_slow_samu_lengthens_its_batch_and_its_time_in_backup_mode():
    before, after = forecast(), forecast("backup@samu-30=x4")
    # samu-30 is alone in the second batch of backup: it enters backup mode later, the others wait for it
    assert after["duration_s"]["p50"] > before["duration_s"]["p50"]
    assert after["backup_mode_s"]["samu-30"] == before["backup_mode_s"]["samu-30"]
    assert after["backup_mode_s"]["samu-01"]["p50"] > before["backup_mode_s"]["samu-01"]["p50"]


def test_a_failure_before_the_pnr_takes_the_rollback_path_and_shows_its_time():
    plan = [PlannedDuration(step("backup", SAMUS, sets_mode="backup", has_rollback=True), concurrency=3),
            PlannedDuration(step("freeze", has_rollback=True)),
            PlannedDuration(step("migrate", has_rollback=True)),
            PlannedDuration(step("pnr", kind="gate", point_of_no_return=True)),
            PlannedDuration(step("nominal", SAMUS, sets_mode="nominal", has_rollback=True))]
    fixed = [run("r1", backup=StepMeasure("backup", targets={t: 30.0 for t in SAMUS}, rollback_s=40),
                 freeze=StepMeasure("freeze", wall_s=60, rollback_s=50),
                 migrate=StepMeasure("migrate", wall_s=900, rollback_s=300),
                 nominal=StepMeasure("nominal", targets={t: 20.0 for t in SAMUS}, rollback_s=30))]
    result = forecast_night(plan, fixed, start=START, window_end=END, samples=200,
                            changes=[parse_change("migrate=fail")])
    # backup 30 + freeze 60 + migrate 900, then undo migrate 300, freeze 50, backup 40
    assert result["duration_s"] == {"p50": 1380.0, "p90": 1380.0}
    assert result["outcome"].startswith("rolls back: migrate fails before the point of no return")
    assert result["pnr_reached"] is None and result["holds"]["pnr_deadline"] is None
    assert result["holds"]["window"] is True
    # each SAMU: in backup mode from 30 s until the backup step is undone at 1380 s
    assert result["backup_mode_s"] == {t: {"p50": 1350.0, "p90": 1350.0} for t in SAMUS}
    assert [s["p50_s"] for s in result["steps"]] == [70.0, 110.0, 1200.0, 0.0, 0.0]


def test_a_failure_after_the_pnr_is_not_rolled_back_but_counted_as_retried():
    before, after = forecast(), forecast("nominal@samu-13=fail")
    assert after["outcome"] == "completes" and after["pnr_reached"] == before["pnr_reached"]
    assert after["duration_s"]["p50"] > before["duration_s"]["p50"]


def test_the_windows_latest_pnr_bounds_the_deadline():
    latest = START + timedelta(minutes=20)
    result = forecast(latest_pnr=latest)
    assert result["pnr_deadline"] == latest.isoformat()
    assert result["holds"]["pnr_deadline"] is False  # the migration alone takes longer


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(step_id=st.sampled_from(["backup", "freeze", "migrate", "nominal"]),
       target=st.sampled_from([None, *SAMUS]),
       low=st.floats(min_value=0.1, max_value=20), extra=st.floats(min_value=0.0, max_value=20))
def test_a_slower_step_never_gives_an_earlier_p90(step_id, target, low, extra):
    where = step_id + (f"@{target}" if target and step_id in ("backup", "nominal") else "")
    slower, faster = forecast(f"{where}=x{low + extra:.4f}", samples=200), forecast(f"{where}=x{low:.4f}", samples=200)
    assert slower["duration_s"]["p90"] >= faster["duration_s"]["p90"]
    assert slower["duration_s"]["p50"] >= faster["duration_s"]["p50"]
