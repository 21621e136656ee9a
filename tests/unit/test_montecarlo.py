"""The forecast on hand-built measurements with known answers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cutover.core.montecarlo import PlannedDuration, forecast_night
from cutover.core.records import StepInfo
from cutover.core.timings import RunMeasure, StepMeasure

START = datetime(2026, 11, 29, 22, 0, tzinfo=timezone.utc)
END = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)


def step(step_id: str, targets=None, **kw) -> StepInfo:
    return StepInfo(id=step_id, kind=kw.pop("kind", "command"), title=step_id, targets=targets, **kw)


def run(**steps: StepMeasure) -> RunMeasure:
    return RunMeasure("r", "night", "lab", "rehearsal", None, "completed", "", None, dict(steps), list(steps))


def test_a_chain_of_fixed_durations_forecasts_exactly_their_sum():
    plan = [PlannedDuration(step("a")), PlannedDuration(step("b")), PlannedDuration(step("c", expected_duration=7))]
    history = [run(a=StepMeasure("a", wall_s=10), b=StepMeasure("b", wall_s=25))]
    result = forecast_night(plan, history, start=START, window_end=None, samples=500)
    assert result["duration_s"] == {"p50": 42.0, "p90": 42.0}
    assert result["end"]["p50"] == "2026-11-29T22:00:42+00:00"
    assert [s["source"] for s in result["steps"]] == ["measured (1 sample(s))", "measured (1 sample(s))",
                                                      "expected_duration"]


def test_a_fan_out_batch_is_as_slow_as_its_slowest_target():
    targets = ("samu-01", "samu-13", "samu-30")
    plan = [PlannedDuration(step("backup", targets, sets_mode="backup"), concurrency=2),
            PlannedDuration(step("nominal", targets, sets_mode="nominal"), concurrency=2)]
    measured = StepMeasure("backup", targets={"samu-01": 1.0, "samu-13": 5.0, "samu-30": 2.0})
    back = StepMeasure("nominal", targets={"samu-01": 3.0, "samu-13": 3.0, "samu-30": 3.0})
    result = forecast_night(plan, [run(backup=measured, nominal=back)], start=START, window_end=None, samples=200)
    # batches [01, 13] then [30]: 5 + 2 = 7; then 3 + 3 = 6
    assert result["duration_s"]["p50"] == 13.0
    # samu-30 enters backup at 7 (end of its batch) and leaves at 7 + 6 = 13; samu-01 from 5 to 7 + 3 = 10
    assert result["backup_mode_s"]["samu-30"] == {"p50": 6.0, "p90": 6.0}
    assert result["backup_mode_s"]["samu-01"] == {"p50": 5.0, "p90": 5.0}


def test_the_pnr_deadline_moves_earlier_by_exactly_the_added_rollback_time():
    def deadline(extra: float) -> datetime:
        plan = [PlannedDuration(step("freeze", rollback_expected_duration=600.0)),
                PlannedDuration(step("migrate")),
                PlannedDuration(step("pnr", kind="gate", point_of_no_return=True))]
        history = [run(migrate=StepMeasure("migrate", wall_s=100, rollback_s=900 + extra))]
        result = forecast_night(plan, history, start=START, window_end=END, samples=100)
        return datetime.fromisoformat(result["pnr_deadline"])

    assert deadline(0) == END.replace(hour=5, minute=35)  # 600 + 900 s of rollback before the window closes
    assert (deadline(0) - deadline(120)).total_seconds() == pytest.approx(120)


def test_a_step_that_varies_carries_the_criticality():
    plan = [PlannedDuration(step("steady")), PlannedDuration(step("wobbly"))]
    history = [run(steady=StepMeasure("steady", wall_s=60), wobbly=StepMeasure("wobbly", wall_s=w))
               for w in (10, 50, 200)]
    result = forecast_night(plan, history, start=START, window_end=None, samples=2000)
    shares = {s["id"]: s["criticality"] for s in result["steps"]}
    assert shares == {"steady": 0.0, "wobbly": 1.0}
    assert result["duration_s"]["p90"] > result["duration_s"]["p50"]
