"""Candidate windows and fallback nights: validated, a run in the first open one, postponed to a later one."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from cutover.app.programme import environment_runs, nights
from cutover.app.queries import load_run
from cutover.app.runs import create_run, drive_run, postpone_run
from cutover.cli.render import plain_line
from cutover.core import records as r
from cutover.core.engine import DriveOptions
from cutover.core.forecast import Outlook
from cutover.core.state import RunStatus
from cutover.core.windows import next_window, window_of
from cutover.errors import InputError, ValidationError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory
from cutover.web.board import board_view
from cutover.web.i18n import event_word

NOW = datetime.now(timezone.utc)


def iso(days: float, hours: float = 0) -> str:
    return at(days, hours).isoformat()


def at(days: float, hours: float = 0) -> datetime:
    return (NOW + timedelta(days=days, hours=hours)).replace(microsecond=0)


def night(windows: str) -> str:
    return f"""
name: night
wave: wave1
windows:
{windows}
steps:
  - id: go
    kind: gate
    approvers: [{{name: claire, role: change_manager}}]
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    sets_mode: backup
    rollback: {{run: nominal}}
"""


THREE_NIGHTS = night(f"""  - {{start: "{iso(-1)}", end: "{iso(-1, 8)}", latest_pnr: "{iso(-1, 5)}"}}
  - {{start: "{iso(1)}", end: "{iso(1, 8)}", latest_pnr: "{iso(1, 5)}"}}
  - {{start: "{iso(8)}", end: "{iso(8, 8)}"}}""")


@pytest.fixture
def journal() -> InMemoryJournal:
    return InMemoryJournal(operator="claire")


@pytest.mark.parametrize(("windows", "says"), [
    ('  - {start: "2026-12-05T22:00:00+01:00", end: "2026-12-05T21:00:00+01:00"}', "ends (2026-12-05T21:00:00+01:00) before"),
    ('  - {start: "2026-12-05T22:00:00+01:00", end: "2026-12-06T06:00:00+01:00", latest_pnr: "2026-12-06T07:00:00+01:00"}',
     "latest_pnr 2026-12-06T07:00:00+01:00 is not inside the window"),
    ('  - {start: "2026-12-05T22:00:00", end: "2026-12-06T06:00:00+01:00"}', "has no UTC offset"),
    ('  - {start: "tomorrow night", end: "2026-12-06T06:00:00+01:00"}', "is not an ISO 8601 date-time"),
    ('  - {start: "2026-12-05T22:00:00+01:00", end: "2026-12-06T06:00:00+01:00"}\n'
     '  - {start: "2026-12-06T05:00:00+01:00", end: "2026-12-06T08:00:00+01:00"}', "window 2 starts"),
    ('  - {start: "2026-12-05T22:00:00+01:00", end: "2026-12-06T06:00:00+01:00", latest: "x"}', "latest"),
])
def test_a_bad_window_is_refused_with_its_line_and_reason(windows, says):
    with pytest.raises(ValidationError) as refused:
        parse_runbook(night(windows), "night.yaml")
    text = str(refused.value) + " ".join(p.message for p in refused.value.problems)
    assert says in text and "night.yaml" in text


def test_a_runbook_gives_one_window_or_candidate_windows_not_both():
    text = night('  - {start: "2026-12-05T22:00:00+01:00", end: "2026-12-06T06:00:00+01:00"}').replace(
        "windows:", 'window: {end: "2026-12-06T06:00:00+01:00"}\nwindows:')
    with pytest.raises(ValidationError, match="runbook"):
        parse_runbook(text, "night.yaml")


def test_a_run_goes_into_the_first_window_still_open_and_its_end_is_that_windows(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    state = load_run(journal, "n1")
    window = window_of(state)
    assert window is not None and window.number == 2 and state.window_end == iso(1, 8)
    assert window.latest_pnr == iso(1, 5)
    assert [w.number for w in state.windows] == [1, 2, 3]


def test_every_window_closed_refuses_the_run(journal):
    past = night(f'  - {{start: "{iso(-2)}", end: "{iso(-2, 8)}"}}')
    with pytest.raises(InputError, match="every candidate window of runbook 'night' has closed"):
        create_run(journal, parse_runbook(past, "night.yaml"), tiny_inventory(), run_id="n1")


def test_a_no_go_offers_the_next_window_and_postpone_moves_the_run_there_journalled(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    status = drive_run(journal, "n1", {"command": ScriptedExecutor()}, DriveOptions())  # nobody approves: no-go
    paused = load_run(journal, "n1")
    assert status is RunStatus.PAUSED and paused.pause_reason == "gate"
    assert f"the next window is window 3 ({iso(8)} to {iso(8, 8)})" in (paused.pause_detail or "")
    assert "`cutover runs postpone n1 --window 3 --reason TEXT`" in (paused.pause_detail or "")

    state = postpone_run(journal, "n1", 3, "no-go: orange vigilance on the Gard")
    assert state.window == 3 and state.window_end == iso(8, 8) and state.pause_reason == "postponed"
    assert state.gates["go"].opened_at is None  # the new night's committee decides again
    event = next(e for e in journal.events("n1") if e.kind == "run_postponed")
    assert (event.kind, event.payload) == ("run_postponed", {"window": 3, "reason": "no-go: orange vigilance on the Gard",
                                                               "previous": 2})
    assert (plain_line(event) or "").endswith("run postponed to window 3: no-go: orange vigilance on the Gard")
    assert event_word("run_postponed", "fr") == "bascule reportée à une fenêtre suivante"
    assert next_window(state, NOW) is None


@pytest.mark.parametrize(("window", "says"), [
    (1, "window 1 is not after the run's window 2"),
    (2, "window 2 is not after the run's window 2"),
    (4, "window 4 is not one of the runbook's windows (1 to 3)"),
])
def test_postpone_goes_only_to_a_later_window_of_the_runbook(journal, window, says):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    with pytest.raises(InputError, match=re.escape(f"cannot postpone run n1 to window {window}: {says}")):
        postpone_run(journal, "n1", window, "why")
    assert [e.kind for e in journal.events("n1")] == ["run_created"]


def test_a_run_whose_effects_stand_is_not_postponed_and_the_hint_is_the_rollback(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    drive_run(journal, "n1", {"command": ScriptedExecutor()}, DriveOptions(auto_approve="lab-bot", until="go"))
    journal.append("n1", r.StepStarted.KIND, r.StepStarted("backup", "samu-01", 1).to_payload())
    journal.append("n1", r.RunPaused.KIND, r.RunPaused("interrupted").to_payload())
    with pytest.raises(InputError) as refused:
        postpone_run(journal, "n1", 3, "late")
    assert "what run n1 did still stands (backup)" in refused.value.message
    assert refused.value.hint == "undo what it did with `cutover rollback n1`, then postpone it"


def test_programme_shows_which_night_is_in_which_window(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    postpone_run(journal, "n1", 3, "no-go")
    rows = nights(environment_runs(journal, tiny_inventory()))
    assert rows == [{"run_id": "n1", "label": None, "wave": "wave1", "state": "paused", "window": 3, "windows": 3,
                     "start": iso(8), "end": iso(8, 8), "latest_pnr": None}]


def test_the_board_offers_the_fallback_window_on_a_no_go(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    assert board_view(load_run(journal, "n1"), None, None, [], NOW, "fr")["time"]["next_window"] is None
    drive_run(journal, "n1", {"command": ScriptedExecutor()}, DriveOptions())  # no-go at the gate
    offered = board_view(load_run(journal, "n1"), None, None, [], NOW, "fr")["time"]["next_window"]
    assert offered == {"number": 3, "start": iso(8), "end": iso(8, 8), "latest_pnr": None,
                       "command": "cutover runs postpone n1 --window 3 --reason TEXT"}


def test_the_board_offers_the_fallback_window_when_the_forecast_misses_the_window(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    late = Outlook(at(1, 7), at(1, 9), None, "measured (3 runs)", True)
    on_time = replace(late, end_p90=at(1, 7))
    assert board_view(load_run(journal, "n1"), None, on_time, [], NOW, "fr")["time"]["next_window"] is None
    assert board_view(load_run(journal, "n1"), None, late, [], NOW, "fr")["time"]["next_window"]["number"] == 3


def test_the_terminal_header_names_the_window_and_offers_the_next_when_the_forecast_misses_it(journal):
    from rich.console import Console

    from cutover.cli.render import status_board

    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    late = Outlook(at(1, 7), at(1, 9), None, "measured (3 runs)", True)
    console = Console(width=300, record=True)
    console.print(status_board(load_run(journal, "n1"), NOW, late))
    text = console.export_text()
    assert "window 2 closes in" in text
    assert "P90 end misses the window: next is window 3 (`cutover runs postpone n1 --window 3 --reason TEXT`)" in text


def test_the_report_lists_the_postponement_among_the_operators_decisions(journal):
    from cutover.app.report import Evidence, report_data

    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    postpone_run(journal, "n1", 3, "no-go: orange vigilance")
    data = report_data(journal, "n1", Evidence(True, 2, "h", ""))
    assert [(i["what"], i["detail"], i["by"]) for i in data["interventions"]] == [
        ("postponed", "to window 3 (from window 2): no-go: orange vigilance", "claire")]


def test_the_next_command_offers_the_fallback_night_on_a_no_go_and_the_resume_once_postponed(journal):
    from cutover.core.guidance import next_move

    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    drive_run(journal, "n1", {"command": ScriptedExecutor()}, DriveOptions())  # no-go at the gate
    assert (next_move(load_run(journal, "n1")) or "").endswith(
        "; on a no-go, `cutover runs postpone n1 --window 3 --reason TEXT`")
    postpone_run(journal, "n1", 3, "no-go")
    assert next_move(load_run(journal, "n1")) == f"`cutover resume n1` once window 3 opens ({iso(8)}), " \
                                                 "or `cutover rollback n1`"


def test_the_window_at_risk_notice_names_the_fallback_window(journal):
    from cutover.core.notices import window_at_risk

    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    state = load_run(journal, "n1")
    end = datetime.fromisoformat(iso(1, 8))
    notice = window_at_risk(state, end + timedelta(minutes=45), end)
    assert notice is not None
    assert notice.body["fr"].endswith(f"Fenêtre de repli : n° 3, à partir du {iso(8)}.")
    assert notice.body["en"].endswith(f"Fallback window: 3, from {iso(8)}.")


def test_past_its_window_the_night_offers_a_rollback_and_a_new_run_in_the_next_window(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1")
    late = datetime.fromisoformat(iso(1, 9))  # an hour after window 2 closed
    status = drive_run(journal, "n1", {"command": ScriptedExecutor()},
                       DriveOptions(auto_approve="lab-bot", clock=lambda: late))
    paused = load_run(journal, "n1")
    assert status is RunStatus.PAUSED and paused.pause_reason == "window"
    assert ("; or roll back (`cutover rollback n1`) and run the night again in a later window: "
            f"`cutover run night --env unit --window 3` (window 3 ({iso(8)} to {iso(8, 8)}))") in (paused.pause_detail or "")


@pytest.mark.parametrize(("number", "says"), [
    (1, "--window 1: window 1 ("), (4, "--window 4: runbook 'night' has 3 candidate window(s)")])
def test_a_run_created_in_a_window_that_closed_or_does_not_exist_is_refused(journal, number, says):
    with pytest.raises(InputError) as refused:
        create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1",
                   window_number=number)
    assert says in refused.value.message and journal.runs() == []


def test_a_run_is_created_in_the_window_asked_for(journal):
    create_run(journal, parse_runbook(THREE_NIGHTS, "night.yaml"), tiny_inventory(), run_id="n1", window_number=3)
    state = load_run(journal, "n1")
    assert state.window == 3 and state.window_end == iso(8, 8)
