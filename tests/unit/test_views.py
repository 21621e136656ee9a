"""What the terminal and the board both show is decided once (core.views): clocks, notification totals, symbols."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from cutover.cli.render import status_board
from cutover.core import records as r
from cutover.core.forecast import Outlook
from cutover.core.state import TargetStatus, fold
from cutover.core.views import SYMBOLS, header_clocks, notification_totals
from cutover.testing.timeline import START, timed_run
from cutover.web.board import board_view

STEPS = (r.StepInfo("backup-mode", "command", "Backup mode", ("samu-01",), expected_duration=600.0),
         r.StepInfo("pnr", "gate", "Point of no return", None, point_of_no_return=True),
         r.StepInfo("nominal", "command", "Nominal", ("samu-01",), sets_mode="nominal"))
CREATED = r.RunCreated(r.RunbookRef("night", "night.yaml", "", ""), "lab", STEPS, label=None,
                       window_end="2026-11-29T06:00:00Z")
NOW = START + timedelta(minutes=5)


def _state(*records: r.Record):
    return fold(timed_run("n1", [(0, CREATED), (1, r.DriveStarted("run")),
                                 *((2 + i, record) for i, record in enumerate(records))]))


def _outlook(spread_known: bool) -> Outlook:
    return Outlook(NOW + timedelta(hours=1), NOW + timedelta(hours=2), NOW + timedelta(hours=3),
                   "measured (3 runs)" if spread_known else "measured (1 run)", spread_known)


def test_without_measurements_the_expected_durations_decide_the_end_and_say_what_they_miss():
    clocks = header_clocks(_state(), None, NOW)
    assert clocks.end is not None and not clocks.end.measured
    assert clocks.end.source == "expected durations" and clocks.end.unknown_steps == 1  # nominal has none
    assert clocks.end.p50 == NOW + timedelta(seconds=600) and clocks.end.p90 is None
    assert clocks.elapsed_s == 300 and clocks.window_left_s is not None and clocks.window_left_s > 0


def test_a_measured_forecast_decides_the_end_and_the_pnr_deadline_and_hides_a_p90_it_cannot_know():
    known = header_clocks(_state(), _outlook(True), NOW)
    assert known.end is not None and known.end.p90 == NOW + timedelta(hours=2)
    assert known.pnr_deadline == NOW + timedelta(hours=3) and known.pnr_left_s == 3 * 3600
    unknown = header_clocks(_state(), _outlook(False), NOW)
    assert unknown.end is not None and unknown.end.p90 is None and "spread unknown" in unknown.end.source


def test_the_terminal_and_the_board_show_the_same_clocks():
    state, outlook = _state(), _outlook(False)
    board = board_view(state, None, outlook, [], NOW, "en")["time"]
    clocks = header_clocks(state, outlook, NOW)
    assert clocks.end is not None
    assert board["end"]["source"] == clocks.end.source and board["end"]["p90"] is None
    console = Console(record=True, width=400)
    console.print(status_board(state, NOW, outlook))
    header = console.export_text().splitlines()[0]
    assert clocks.end.source in header and "P90" not in header


def test_notification_totals_come_from_the_fold_for_the_terminal_and_the_board():
    records = (r.NotificationSent("run_started", "json://room"), r.NotificationSent("run_started", "mailto://a"),
               r.NotificationFailed("run_started", "json://down", 1, "refused"),
               r.NotificationFailed("run_started", "json://down", 3, "refused", final=True, samu="13"))
    state = _state(*records)
    totals = notification_totals(state)
    assert (totals.sent, totals.failed_attempts, totals.undelivered, totals.undelivered_to) == \
        (2, 2, 1, ("json://down",))
    events = timed_run("n1", [(0, CREATED), *((1 + i, record) for i, record in enumerate(records))])
    shown = board_view(state, None, None, events, NOW, "en")["notifications"]
    assert (shown["sent"], shown["failed_attempts"], shown["undelivered"]) == (2, 2, 1)
    assert [(f["attempt"], f["final"], f["samu"], f["error"]) for f in shown["failures"]] == \
        [(3, True, "13", "refused"), (1, False, None, "refused")]  # newest first, read through their records
    console = Console(record=True, width=400)
    console.print(status_board(state, NOW))
    assert "notifications: 2 sent, 2 failed attempt(s), 1 never delivered (to json://down)" in console.export_text()


def test_every_target_state_has_one_symbol_shared_by_the_terminal_legend_and_the_board():
    assert set(SYMBOLS) == set(TargetStatus)
    legend = board_view(_state(), None, None, [], NOW, "en")["legend"]
    assert [(item["state"], item["symbol"]) for item in legend] == [(s.value, sym) for s, sym in SYMBOLS.items()]
    console = Console(record=True, width=400)
    console.print(status_board(_state(), NOW))
    assert "  ".join(f"{sym} {s.value}" for s, sym in SYMBOLS.items()) in console.export_text()


def test_no_clock_runs_for_a_finished_run_on_the_board():
    state = _state(r.RunCompleted())
    assert board_view(state, None, None, [], NOW, "en")["time"]["end"] is None
    assert header_clocks(state, None, NOW).end is None  # nothing is predicted once it ended
