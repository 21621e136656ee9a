"""Criteria at the gate: the built-ins, the judgement, the engine's gate and the override path, in memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cutover.app.criteria import GateEvidence, past_runs, read_output
from cutover.app.queries import load_run, status_json
from cutover.app.runs import create_run, drive_run, override_criterion
from cutover.core import criteria as c
from cutover.core import records as r
from cutover.core.engine import Approval, DriveOptions, criteria_blocking
from cutover.core.records import MeasuredCriterion
from cutover.core.state import RunState, RunStatus
from cutover.errors import InputError, ValidationError
from cutover.model.runbook import parse_runbook
from cutover.planning.plan import to_spec
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)

RUNBOOK = """
name: night
wave: wave1
steps:
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    rollback: {run: nominal}
  - id: go
    kind: gate
    approvers:
      - {name: claire, role: change_manager}
      - {name: marc, role: medical_lead}
    quorum: 1
    required_roles: [change_manager]
    criteria:
      - {id: load, title: Call load now, probe: {command: [load]}, max: 100}
      - {id: weather, title: Weather vigilance, probe: {command: [weather]}, max: 2, severity: advisory}
  - id: migrate
    kind: command
    run: migrate
    rollback: {run: unmigrate}
  - id: pnr
    kind: gate
    approvers: [{name: claire, role: change_manager}]
    point_of_no_return: true
    criteria:
      - {id: margin, title: PNR margin, probe: {command: [margin]}, min: 10m}
"""


def criterion(**given) -> c.Criterion:
    kind = given.pop("kind", "command")
    return c.Criterion(given.pop("id", "x"), "X", c.Probe(kind), **given)


class Readings:
    """A measurer fed from a dict (criterion id -> value), recording what it was asked."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values
        self.asked: list[list[str]] = []

    def __call__(self, criteria: Sequence[c.Criterion], state: RunState) -> list[MeasuredCriterion]:
        self.asked.append([k.id for k in criteria])
        return [k.judge(self.values.get(k.id)) for k in criteria]


def start(journal: InMemoryJournal, text: str = RUNBOOK, run_id: str = "r1") -> str:
    create_run(journal, parse_runbook(text, "night.yaml"), tiny_inventory(), run_id=run_id)
    return run_id


def drive(journal: InMemoryJournal, readings: Readings, **options) -> RunStatus:
    return drive_run(journal, "r1", {"command": ScriptedExecutor()},
                     DriveOptions(measure_criteria=readings, **options))


# ---------------------------------------------------------------------- judging


def test_thresholds_and_expected_values_judge_a_value_and_say_what_was_expected():
    assert criterion(max=100).judge(80).passed and not criterion(max=100).judge(120).passed
    assert criterion(min=3).judge(3).passed and not criterion(min=3).judge(2).passed
    assert criterion(expect="green").judge("green").passed and not criterion(expect="green").judge("red").passed
    assert criterion(min=1, max=2).expected() == "≥ 1 and ≤ 2"
    missing = criterion(max=100).judge(None)
    assert not missing.passed and missing.detail == "could not be measured" and missing.shown_value() == "not measured"
    assert criterion(kind="forecast", min=1800).judge(2700).shown == "45m00s"


def test_an_override_covers_later_measurements_no_worse_than_the_value_it_accepted():
    load = criterion(max=100)
    assert load.covered_by(120, 120) and load.covered_by(120, 110)
    assert not load.covered_by(120, 130)
    rehearsed = criterion(min=3)
    assert rehearsed.covered_by(1, 2) and not rehearsed.covered_by(2, 1)
    assert not criterion(expect="green").covered_by("orange", "red")


# ---------------------------------------------------------------------- built-ins


def past(run_id: str, lost: int | None, *, status="completed", kind="rehearsal", wave="wave1", runbook="night"):
    return c.PastRun(run_id, runbook, wave, kind, status, lost)


def test_rehearsals_counts_completed_rehearsals_of_this_runbook_and_wave_with_zero_lost_calls():
    runs = [past("a", 0), past("b", 0), past("lossy", 2), past("unknown", None), past("paused", 0, status="paused"),
            past("other-wave", 0, wave="wave2"), past("live", 0, kind="live"), past("other-book", 0, runbook="x"),
            past("me", 0)]
    count, detail = c.rehearsals_passed(runs, runbook="night", wave="wave1", exclude="me")
    assert count == 2
    assert "1 lost calls (lossy)" in detail and "1 without a call account (unknown)" in detail
    needs_three = criterion(kind="rehearsals", min=3)
    assert not needs_three.judge(count, detail).passed
    assert needs_three.judge(c.rehearsals_passed(runs + [past("c", 0)], runbook="night", wave="wave1")[0]).passed


def test_forecast_passes_when_the_p90_end_leaves_the_margin_before_the_window_end():
    window_end = NOW + timedelta(hours=10)
    margin = criterion(kind="forecast", min=1800)
    early, _ = c.forecast_slack(NOW + timedelta(hours=9), window_end)
    late, _ = c.forecast_slack(NOW + timedelta(hours=9, minutes=45), window_end)
    assert early == 3600 and margin.judge(early).passed
    assert late == 900 and not margin.judge(late).passed
    no_window, detail = c.forecast_slack(NOW, None)
    assert no_window is None and "window" in detail and not margin.judge(no_window, detail).passed


def test_pnr_margin_passes_when_the_pnr_is_reached_well_before_its_deadline():
    deadline = NOW + timedelta(hours=7)
    margin = criterion(kind="pnr_margin", min=600)
    assert margin.judge(c.pnr_slack(NOW + timedelta(hours=6), deadline)[0]).passed
    assert not margin.judge(c.pnr_slack(NOW + timedelta(hours=6, minutes=55), deadline)[0]).passed
    assert c.pnr_slack(NOW, None)[0] is None


def test_programme_counts_the_samus_outside_the_wave_not_where_the_programme_says():
    waves = {"s1": 1, "s2": 2, "s3": 3, "s4": None}
    codes = {"s1": "01", "s2": "13", "s3": "30", "s4": "2A"}
    right = {"s1": "migrated", "s2": "in progress", "s3": "not started", "s4": "not started"}
    assert c.programme_misplaced(right, waves, codes, wave=2, inside=("s2",))[0] == 0
    wrong = {**right, "s1": "not started", "s3": "in progress", "s4": "in backup"}
    count, detail = c.programme_misplaced(wrong, waves, codes, wave=2, inside=("s2",))
    assert count == 3 and "01 not started (expected migrated)" in detail and "30 in progress" in detail
    assert "2A in backup (expected not started)" in detail
    assert not criterion(kind="programme", max=0).judge(count, detail).passed


def test_a_probe_output_is_a_number_or_a_field_of_json():
    assert read_output("42\n", None).value == 42
    assert read_output('{"load": {"per_minute": 7}}', "load.per_minute").value == 7
    assert read_output('{"load": 7}', "missing").value is None
    assert read_output("warm", None).value is None


# ---------------------------------------------------------------------- validation


def test_a_criterion_that_says_nothing_or_names_two_probes_is_refused_with_its_line():
    text = RUNBOOK.replace("probe: {command: [load]}, max: 100", "probe: {command: [load], builtin: forecast}")
    text = text.replace("probe: {command: [weather]}, max: 2", "probe: {command: [weather]}")
    with pytest.raises(ValidationError) as refused:
        parse_runbook(text, "night.yaml")
    shown = "\n".join(str(p) for p in refused.value.problems)
    assert "night.yaml:18 (steps[1].criteria[0].probe): a probe is one of" in shown
    assert "night.yaml:19 (steps[1].criteria[1]): say what the probe must show" in shown


def test_criterion_ids_are_unique_in_the_runbook():
    text = RUNBOOK.replace("id: margin", "id: load")
    with pytest.raises(ValidationError) as refused:
        parse_runbook(text, "night.yaml")
    assert "duplicate criterion id 'load'" in str(refused.value.problems[0])


# ---------------------------------------------------------------------- at the gate


def test_a_failed_blocking_criterion_keeps_the_gate_shut_whatever_the_approvals(journal=None):
    journal = InMemoryJournal(operator="claire")
    start(journal)
    readings = Readings({"load": 250, "weather": 4, "margin": 3600})
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.PAUSED
    state = load_run(journal, "r1")
    assert state.pause_reason == "criteria" and "load measured 250 (expected ≤ 100)" in state.pause_detail
    assert "weather" not in state.pause_detail  # advisory: shown, never blocking
    gate = state.gates["go"]
    assert gate.approvals and gate.passed_at is None
    assert {k: (m.value, m.verdict()) for k, m in gate.criteria.items()} == {"load": (250, "FAIL"),
                                                                            "weather": (4, "warn")}
    assert status_json(state)["gates"]["go"]["criteria"][0]["verdict"] == "FAIL"


def test_criteria_are_measured_again_when_the_gate_reopens_and_before_the_pnr():
    journal = InMemoryJournal(operator="claire")
    start(journal)
    readings = Readings({"load": 250, "weather": 1, "margin": 3600})
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.PAUSED
    readings.values["load"] = 40  # the load fell: resuming measures again and the gate opens
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.COMPLETED
    # at the point of no return, the go/no-go's criteria are weighed again with its own
    assert readings.asked == [["load", "weather"], ["load", "weather"], ["load", "weather", "margin"]]
    occasions = [r.read(e).occasion for e in journal.events("r1") if e.kind == "criteria_measured"]
    assert occasions == ["gate_opened", "gate_reopened", "before_pnr"]


def test_a_gate_without_a_probe_runner_does_not_pass_on_missing_evidence():
    journal = InMemoryJournal(operator="claire")
    start(journal)
    status = drive_run(journal, "r1", {"command": ScriptedExecutor()}, DriveOptions(auto_approve="lab-bot"))
    assert status is RunStatus.PAUSED
    assert load_run(journal, "r1").gates["go"].criteria["load"].detail == "no probe runner in this drive"


def test_an_override_by_a_required_role_opens_the_gate_and_holds_while_no_worse():
    journal = InMemoryJournal(operator="claire")
    start(journal)
    readings = Readings({"load": 250, "weather": 1, "margin": 3600})
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.PAUSED
    lab = tiny_inventory(lab=True)
    with pytest.raises(InputError, match="required role"):
        override_criterion(journal, "r1", "go", "load", Approval("marc", "peak is over"), lab)
    with pytest.raises(InputError, match="needs a reason"):
        override_criterion(journal, "r1", "go", "load", Approval("claire", " "), lab)
    with pytest.raises(InputError, match="advisory|passed"):
        override_criterion(journal, "r1", "go", "weather", Approval("claire", "why not"), lab)
    override_criterion(journal, "r1", "go", "load", Approval("claire", "known peak, staff doubled"), lab)
    readings.values["load"] = 300  # worse than accepted: the override does not cover it
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.PAUSED
    readings.values["load"] = 240
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.COMPLETED
    override = load_run(journal, "r1").gates["go"].overrides["load"]
    assert (override.value, override.approver, override.reason) == (250, "claire", "known peak, staff doubled")


def test_outside_a_lab_run_an_override_must_be_signed_and_one_written_by_hand_does_not_count():
    journal = InMemoryJournal(operator="claire")
    scratch = InMemoryJournal()
    start(scratch)
    created = r.read(scratch.events("r1")[0])
    assert isinstance(created, r.RunCreated)
    not_lab = dataclasses.replace(created, lab=False)  # as `cutover run` creates it on a non-lab inventory
    journal.append("r1", not_lab.KIND, not_lab.to_payload())
    drive(journal, Readings({"load": 250}))
    with pytest.raises(InputError, match="must be signed"):
        override_criterion(journal, "r1", "go", "load", Approval("claire", "ok"), tiny_inventory(lab=False))
    assert "criterion_overridden" not in [e.kind for e in journal.events("r1")]
    by_hand = r.CriterionOverridden("go", "load", 250, "trust me", "claire", "change_manager")
    journal.append("r1", by_hand.KIND, by_hand.to_payload())
    state = load_run(journal, "r1")
    spec = to_spec(parse_runbook(RUNBOOK, "night.yaml").runbook)
    assert [m.criterion for m in criteria_blocking(spec.criteria_at("go"), state, "go")] == ["load"]


# ---------------------------------------------------------------------- the built-ins fed from the journal


def test_the_rehearsals_built_in_reads_the_call_accounts_journalled_as_runs_completed(tmp_path: Path):
    journal = InMemoryJournal(operator="claire")
    plain = RUNBOOK.split("    criteria:")[0] + "  - id: migrate\n    kind: command\n    run: m\n    rollback: none\n" \
        "    rollback_reason: none\n"
    for run_id, lost in (("clean", 0), ("lossy", 3)):
        start(journal, plain, run_id)
        drive_run(journal, run_id, {"command": ScriptedExecutor()},
                  DriveOptions(auto_approve="lab-bot", count_calls=lambda lost=lost: r.CallsCounted(100, lost)))
    assert {p.run_id: p.calls_lost for p in past_runs(journal)} == {"clean": 0, "lossy": 3}
    text = RUNBOOK.replace("probe: {command: [load]}, max: 100", "probe: rehearsals, min: 1")
    start(journal, text, "r1")
    evidence = GateEvidence(journal, tiny_inventory(), tmp_path, tmp_path, clock=lambda: NOW)
    spec = to_spec(parse_runbook(text, "night.yaml").runbook)
    measured = evidence.measure(spec.criteria_at("go")[0], load_run(journal, "r1"))
    assert (measured.value, measured.passed) == (1, True) and "1 lost calls (lossy)" in measured.detail


# ---------------------------------------------------------------------- shown to people


def test_the_terminal_notifications_and_plain_lines_show_the_table():
    from rich.console import Console

    from cutover.cli.render import plain_line, status_board
    from cutover.core.notices import notices_for

    journal = InMemoryJournal(operator="claire")
    start(journal)
    drive(journal, Readings({"load": 250, "weather": 1}))
    state = load_run(journal, "r1")
    console = Console(width=160, record=True)
    console.print(status_board(state, now=NOW))
    board = console.export_text()
    assert "go/no-go go: criteria measured" in board
    assert any("load" in line and "250" in line and "≤ 100" in line and "FAIL" in line for line in board.splitlines())
    event = next(e for e in journal.events("r1") if e.kind == "criteria_measured")
    line = plain_line(event)
    assert line is not None and "load: 250 (expected ≤ 100) FAIL [blocking]" in line and "weather: 1" in line
    [notice] = notices_for(r.read(event), state, {})
    assert notice.kind == "gate_criteria" and notice.text("en")[0] == "Go/no-go go: 1 blocking criteria failed"
    assert "load (Call load now): 250; expected ≤ 100; FAIL" in notice.text("en")[1]
    assert "NON CONFORME" in notice.text("fr")[1]


def test_a_command_probe_gets_the_clean_environment_and_the_criterion_it_measures(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2")  # the operator's shell: never a probe's
    journal = InMemoryJournal(operator="claire")
    start(journal)
    script = "import json, os; print(json.dumps({'leak': 'PGPASSWORD' in os.environ, 'c': os.environ['CUTOVER_CRITERION']}))"
    probe = c.Probe("command", argv=("python3", "-c", script), value="leak")
    evidence = GateEvidence(journal, tiny_inventory(), tmp_path, tmp_path, clock=lambda: NOW)
    measured = evidence.measure(c.Criterion("no-leak", "No secret reaches a probe", probe, expect=False),
                                load_run(journal, "r1"))
    assert (measured.value, measured.passed) == (False, True)
    named = c.Probe("command", argv=("python3", "-c", script), value="c")
    assert evidence.measure(c.Criterion("x", "X", named, expect="x"), load_run(journal, "r1")).passed
    failing = c.Probe("command", argv=("sh", "-c", "echo down >&2; exit 3"))
    broken = evidence.measure(c.Criterion("x", "X", failing, max=1), load_run(journal, "r1"))
    assert broken.value is None and not broken.passed and broken.detail == "exit 3: down"


def test_the_forecast_built_ins_weigh_the_runs_window_from_the_journal(tmp_path: Path):
    journal = InMemoryJournal(operator="claire")
    text = RUNBOOK.replace("    run: migrate\n", "    run: migrate\n    expected_duration: 2h\n    rollback_expected_duration: 1h\n")
    create_run(journal, parse_runbook(text, "night.yaml"), tiny_inventory(), run_id="r1",
               window_end=(NOW + timedelta(hours=4)).isoformat())
    evidence = GateEvidence(journal, tiny_inventory(), tmp_path, tmp_path, clock=lambda: NOW)
    state = load_run(journal, "r1")
    forecast = evidence.measure(criterion(id="fc", kind="forecast", min=1800), state)
    assert forecast.value == 7200 and forecast.passed and forecast.shown == "2h00m"  # ends 2 h before the window
    margin = evidence.measure(criterion(id="pnr", kind="pnr_margin", min=1800), state)
    assert margin.value == 3600 and margin.passed  # PNR reached at +2 h, deadline 4 h - 1 h of rollback
    short = evidence.measure(criterion(id="fc", kind="forecast", min=3 * 3600), state)
    assert not short.passed and "P90 end" in short.detail


def test_validate_refuses_a_probe_playbook_missing_or_reaching_a_host_of_the_night(tmp_path: Path):
    from cutover.planning.validation import check_against

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "on_samus.yml").write_text("- hosts: samu\n  tasks: []\n")
    (tmp_path / "playbooks" / "on_controller.yml").write_text("- hosts: localhost\n  connection: local\n  tasks: []\n")
    text = RUNBOOK.replace("probe: {command: [load]}", "probe: {playbook: on_samus.yml}")
    text = text.replace("probe: {command: [weather]}", "probe: {playbook: missing.yml}")
    with pytest.raises(ValidationError) as refused:
        check_against(parse_runbook(text, "night.yaml"), tiny_inventory(), tmp_path)
    shown = "\n".join(str(p) for p in refused.value.problems)
    assert "night.yaml:18 (steps[1].criteria[0].probe.playbook): probe playbook 'on_samus.yml' runs on samu-01" in shown
    assert "a probe runs on the controller only" in shown and "probe playbook 'missing.yml' not found" in shown
    fine = RUNBOOK.replace("probe: {command: [load]}", "probe: {playbook: on_controller.yml}")
    check_against(parse_runbook(fine, "night.yaml"), tiny_inventory(), tmp_path)


def test_replaying_a_night_with_criteria_gives_back_the_recorded_measurements_override_and_order():
    from cutover.core.replay import night_order, replay_night

    journal = InMemoryJournal(operator="claire")
    start(journal)
    readings = Readings({"load": 250, "weather": 1, "margin": 3600})
    counted = r.CallsCounted(100, 0, source="lab ledger")
    assert drive(journal, readings, auto_approve="lab-bot") is RunStatus.PAUSED  # blocked by the load
    override_criterion(journal, "r1", "go", "load", Approval("claire", "known peak"), tiny_inventory())
    assert drive_run(journal, "r1", {"command": ScriptedExecutor()},
                     DriveOptions(measure_criteria=readings, auto_approve="lab-bot", count_calls=lambda: counted),
                     command="resume") is RunStatus.COMPLETED
    recorded = journal.events("r1")
    replay = replay_night(recorded, to_spec(parse_runbook(RUNBOOK, "night.yaml").runbook))
    assert replay.diverged is None
    assert night_order(replay.events) == night_order(recorded)
    kinds = [e.kind for e in replay.events]
    assert kinds.count("criteria_measured") == 3 and "criterion_overridden" in kinds and "calls_counted" in kinds
    measured = [r.read(e) for e in replay.events if e.kind == "criteria_measured"]
    assert [m.value for m in measured[0].measurements] == [250, 1]


def test_a_playbook_probe_runs_through_the_executor_registry(tmp_path: Path, monkeypatch):
    """The probe's executor is the registry's for its kind, built with the evidence's redactor, and closed."""
    from cutover.core.actions import ActionResult, Outcome
    from cutover.executors import registry

    built: list[tuple[object, ScriptedExecutor]] = []

    class Answering(ScriptedExecutor):
        closed = False

        def run(self, request):
            assert request.action.kind == "playbook" and request.action.playbook == "load.yml"
            return {None: ActionResult(Outcome.OK, summary={"set_stats": {"cutover_value": 42}})}

        def close(self) -> None:
            self.closed = True

    def factory(project_dir, inventory, redactor, state_dir):
        built.append((redactor, Answering()))
        return built[-1][1]

    monkeypatch.setitem(registry.FACTORIES, "playbook", factory)
    journal = InMemoryJournal(operator="claire")
    start(journal)
    evidence = GateEvidence(journal, tiny_inventory(), tmp_path, tmp_path, clock=lambda: NOW)
    probe = c.Probe("playbook", playbook="load.yml")
    measured = evidence.measure(c.Criterion("load", "Call load", probe, max=100), load_run(journal, "r1"))
    assert (measured.value, measured.passed) == (42, True), measured.detail
    [(redactor, executor)] = built
    assert redactor is evidence.redact and executor.closed


def test_the_forecast_built_ins_convert_the_runs_runbook_once_for_every_measurement(tmp_path: Path, monkeypatch):
    from cutover.app import history

    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1",
               window_end=(NOW + timedelta(hours=4)).isoformat())
    converted: list[str] = []
    parsed = history.runbook_of
    monkeypatch.setattr(history, "runbook_of", lambda state: converted.append(state.run_id) or parsed(state))
    evidence = GateEvidence(journal, tiny_inventory(), tmp_path, tmp_path, clock=lambda: NOW)
    state = load_run(journal, "r1")
    for kind in ("forecast", "pnr_margin", "forecast"):
        assert evidence.measure(criterion(id=kind, kind=kind, min=0), state).value is not None
    assert converted == ["r1"]
