"""How runs look to a person: the live view, plain progress lines, status tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cutover.core import records as r
from cutover.core.actions import ActionResult, Outcome
from cutover.core.events import Event, parse_time
from cutover.core.forecast import Outlook, backup_mode_seconds
from cutover.core.state import GateState, RunState, RunStatus, TargetStatus
from cutover.core.text import visible
from cutover.core.views import SYMBOLS, header_clocks, notification_totals
from cutover.core.windows import next_window

# the terminal's colour of each target state; the symbols are the core's (core.views.SYMBOLS)
COLOUR = {
    TargetStatus.PENDING: "dim",
    TargetStatus.RUNNING: "bold yellow",
    TargetStatus.IN_DOUBT: "bold magenta",
    TargetStatus.SUCCEEDED: "green",
    TargetStatus.FAILED: "bold red",
    TargetStatus.ROLLED_BACK: "cyan",
    TargetStatus.SKIPPED: "dim",
}
RUN_STYLE = {RunStatus.RUNNING: "yellow", RunStatus.PAUSED: "magenta", RunStatus.COMPLETED: "green",
             RunStatus.FAILED: "red", RunStatus.ROLLED_BACK: "cyan", RunStatus.ABANDONED: "dim"}


def status_board(state: RunState, now: datetime | None = None, outlook: Outlook | None = None,
                 next_move: str | None = None) -> Group:
    """SAMUs (rows) x steps (columns), with the run's header: the live view and `cutover status`.

    ``outlook`` is the measured forecast of the rest of the run (``history.live_forecast``);
    without one, the runbook's expected durations give the predicted end. The grid's
    columns are the steps' numbers, listed with their ids and titles above it, so a
    night of a dozen steps fits an 80-column terminal. ``next_move``: the command that
    moves a stopped run on (``core.guidance``).
    """
    now = now or datetime.now(timezone.utc)
    parts: list[Any] = [_header(state, now, outlook), _steps(state), _grid(state, backup_mode_seconds(state, now))]
    parts += [criteria_table(gate_id, gate) for gate_id, gate in state.gates.items()
              if gate.criteria and gate.opened_at and not gate.passed_at]
    return Group(*parts, _footer(state, next_move))


def _steps(state: RunState) -> Table:
    """Each step: its number (the grid's column), id (what approve, --until and --to take), state and title."""
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for number, info in enumerate(state.steps, start=1):
        status = state.step_status(info.id)
        symbol, style = SYMBOLS[status], COLOUR[status]
        title = info.title if info.title and info.title != info.id else ""
        table.add_row(str(number), Text(symbol, style=style), Text(info.id, style="bold"), Text(title))
    return table


VERDICT_STYLE = {"pass": "green", "FAIL": "bold red", "warn": "yellow"}


def criteria_table(gate_id: str, gate: GateState) -> Table:
    """A gate's criteria as last measured: measured value, what was expected, verdict (and any override)."""
    table = Table(title=Text(f"go/no-go {gate_id}: criteria measured {(gate.measured_at or '')[11:19]}"),
                  title_justify="left", header_style="bold", box=None, pad_edge=False)
    for column in ("criterion", "measured", "expected", "verdict", "severity", "detail"):
        table.add_column(column, overflow="fold")
    for measured in gate.criteria.values():
        verdict = Text(measured.verdict(), style=VERDICT_STYLE[measured.verdict()])
        override = gate.overrides.get(measured.criterion)
        if override is not None:
            verdict.append(f" overridden by {override.approver} at {override.value}", style="magenta")
        table.add_row(Text(f"{measured.criterion} ({measured.title})"), Text(measured.shown_value()),
                      Text(measured.expected), verdict, Text(measured.severity), Text(measured.detail))
    return table


def _header(state: RunState, now: datetime, measured: Outlook | None = None) -> Text:
    clocks = header_clocks(state, measured, now)
    text = Text()
    text.append(f"run {state.run_id}", style="bold")
    text.append(f"  {state.runbook_name} on {state.env}  ")
    label = state.status.value + (" (rolling back)" if state.mode == "rollback" and state.status is RunStatus.RUNNING else "")
    text.append(label, style=RUN_STYLE[state.status])
    if clocks.elapsed_s is not None:
        text.append(f"  elapsed {_duration(clocks.elapsed_s)}")
    if clocks.window_left_s is not None:
        left = clocks.window_left_s
        name = f"window {state.window}" if state.window else "window"
        text.append(f"  {name} closes in {_duration(left)}" if left > 0 else f"  {name} closed", style="bold")
    if clocks.pnr_passed:
        text.append(f"  PNR passed ({clocks.pnr_passed})", style="bold red")
    end = clocks.end
    if end is not None and end.measured:
        p90 = f" P90 {end.p90.astimezone():%H:%M:%S}" if end.p90 is not None else ""
        text.append(f"  end P50 {end.p50.astimezone():%H:%M:%S}{p90} ({end.source})")
    elif end is not None:
        text.append(f"  predicted end {end.p50.astimezone():%H:%M:%S} ({end.source})")
        if end.unknown_steps:
            text.append(f" (+{end.unknown_steps} steps of unknown duration)", style="dim")
    later = next_window(state, now) if measured and _misses_window(state, measured.end_p90) else None
    if later is not None:
        text.append(f"  P90 end misses the window: next is window {later.number} "
                    f"(`cutover runs postpone {state.run_id} --window {later.number} --reason TEXT`)", style="bold red")
    if clocks.pnr_left_s is not None:
        left = clocks.pnr_left_s
        text.append(f"  PNR deadline in {_duration(left)}" if left > 0 else "  PNR deadline passed",
                    style="bold" if left > 600 else "bold red")
    return text


def _misses_window(state: RunState, end_p90: datetime) -> bool:
    return bool(state.window_end and end_p90 > parse_time(state.window_end))


def _grid(state: RunState, in_backup: dict[str, float]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("target", no_wrap=True)
    table.add_column("in backup", justify="right", no_wrap=True)
    for number, _ in enumerate(state.steps, start=1):
        table.add_column(str(number), justify="center", no_wrap=True)
    rows: list[str | None] = [None]
    for info in state.steps:
        for target in info.targets or ():
            if target not in rows:
                rows.append(target)
    for row in rows:
        cells = []
        for info in state.steps:
            cell = state.targets.get((info.id, row))
            if cell is None:
                cells.append(Text(""))
                continue
            cells.append(Text(SYMBOLS[cell.status], style=COLOUR[cell.status]))
        backup = _duration(in_backup[row]) if row in in_backup else ""
        table.add_row(row or "controller", backup, *cells)
    return table


def _footer(state: RunState, next_move: str | None = None) -> Text:
    text = Text()
    if state.pause_reason:
        text.append(f"{state.status.value}: {state.pause_reason}", style=RUN_STYLE[state.status])
        if state.pause_detail:
            text.append(f" — {state.pause_detail}")
    if next_move:
        text.append(f"\nnext: {next_move}", style="bold")
    notes = notification_totals(state)
    if notes.troubled:
        text.append(f"\nnotifications: {notes.sent} sent, {notes.failed_attempts} failed attempt(s), "
                    f"{notes.undelivered} never delivered", style="yellow")
        if notes.undelivered_to:
            text.append(f" (to {', '.join(notes.undelivered_to)})", style="yellow")
    legend = "  ".join(f"{symbol} {status.value}" for status, symbol in SYMBOLS.items())
    text.append(f"\n{legend}", style="dim")
    return text


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


# ---------------------------------------------------------------------- plain progress lines

_PLAIN: dict[type[r.Record], str] = {
    r.StepStarted: "started",
    r.StepSucceeded: "succeeded",
    r.StepFailed: "FAILED",
    r.StepSkipped: "skipped",
    r.InDoubt: "IN DOUBT",
    r.GateOpened: "gate open, awaiting approval",
    r.GateApproved: "approved",
    r.GatePassed: "gate passed",
    r.RollbackPoint: "rollback point",
    r.UndoStarted: "rollback started",
    r.UndoSucceeded: "rolled back",
    r.UndoFailed: "ROLLBACK FAILED",
    r.RunPaused: "run paused",
    r.RunFailed: "run FAILED",
    r.RunCompleted: "run completed",
    r.RunRolledBack: "run rolled back",
    r.RunAbandoned: "run abandoned",
    r.RunPostponed: "run postponed",
    r.CriteriaMeasured: "criteria measured",
    r.CriterionOverridden: "criterion overridden",
    r.CallsCounted: "calls counted",
}


def plain_line(event: Event) -> str | None:
    """One line per meaningful event, for logs and pipes (no colours, no redraws).

    Written past the console (``print_plain``), so every part is made visible here: a reason or a
    detail never puts a control character, a direction override or a line of its own in the log.
    """
    record = r.read(event)
    label = _PLAIN.get(type(record))
    if label is None:
        return None
    where = str(getattr(record, "step", None) or "")
    target = getattr(record, "target", None)
    if target:
        where += f" {target}"
    lines = [f"{event.at[11:19]} {where:<28} {label}{_extra(record)}", *_measured_lines(record)]
    return "\n".join(visible(line, breaks=False) for line in lines)


def _extra(record: r.Record) -> str:
    if isinstance(record, (r.StepFailed, r.UndoFailed)):
        result = record.result or ActionResult(Outcome.FAILED)
        phase = record.phase if isinstance(record, r.StepFailed) else "rollback"
        return f" ({phase}: {result.outcome.value}: {result.detail})"
    if isinstance(record, r.GateApproved):
        return f" by {record.approver}" + (" (lab auto-approval)" if record.auto else "")
    if isinstance(record, (r.RunPaused, r.RunFailed)) and record.detail:
        return f": {record.detail}"
    if isinstance(record, r.RunAbandoned):
        return f": {record.reason}"
    if isinstance(record, r.RunPostponed):
        return f" to window {record.window}: {record.reason}"
    if isinstance(record, r.StepSucceeded) and record.resolution:
        return f" ({record.resolution})"
    if isinstance(record, r.CriterionOverridden):
        return f" {record.criterion} at {record.value} by {record.approver}: {record.reason}"
    if isinstance(record, r.CallsCounted):
        return f": placed {record.placed}, lost {record.lost}, records missing {record.records_missing}, " \
               f"duplicated {record.records_duplicated} ({record.source})"
    return ""


def _measured_lines(record: r.Record) -> list[str]:
    """A measurement's criteria, one line each under the event's line."""
    if not isinstance(record, r.CriteriaMeasured):
        return []
    return [f"{'':9}{'':<28} {m.criterion}: {m.shown_value()} (expected {m.expected}) {m.verdict()}"
            + (f" [{m.severity}]" if not m.passed else "") for m in record.measurements]


def print_plain(console: Console) -> Callable[[Event], None]:
    """Progress lines for pipes and logs, written straight to the console's file.

    Rich's renderer costs ~0.5 ms a line; a night of 100 SAMUs writes thousands.
    """
    stream = console.file

    def show(event: Event) -> None:
        line = plain_line(event)
        if line is not None:
            stream.write(line + "\n")
            stream.flush()

    return show


# ---------------------------------------------------------------------- plans and lists of runs


@dataclass(frozen=True)
class PlanEntry:
    """One planned step as `cutover plan` shows it."""

    id: str
    title: str
    kind: str
    targets: str
    action: str
    verify: str
    rollback: str
    affects: str


def plan_view(title: str, entries: list[PlanEntry]) -> Group:
    """Each step as a short block (number, id, title; then what it does, one fact a line).

    A table of eight columns is unreadable below ~160 columns; blocks wrap in
    the value column at any width, 80 included.
    """
    blocks: list[Any] = [Text(title, style="bold")]
    for number, entry in enumerate(entries, start=1):
        head = Text(f"{number:>2} ")
        head.append(entry.id, style="bold")
        if entry.title and entry.title != entry.id:
            head.append(f"  {entry.title}")
        facts = Table.grid(padding=(0, 1))
        facts.add_column(no_wrap=True, min_width=3)
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        for label, value in (("kind", entry.kind), ("targets", entry.targets), ("action", entry.action),
                             ("verify", entry.verify), ("rollback", entry.rollback), ("can affect", entry.affects)):
            facts.add_row("", label, Text(value))
        blocks += [head, facts]
    return Group(*blocks)


WIDE = 120  # columns from which `runs` shows every column


def runs_view(rows: list[dict[str, Any]], *, width: int) -> Table:
    """The runs, oldest first: every column on a wide terminal; below ``WIDE``, the ones that tell runs apart.

    The run id is never cut: it is what every other command takes. ``--json`` has every field.
    """
    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("run", no_wrap=True)
    table.add_column("label", overflow="fold")
    wide = width >= WIDE
    if wide:
        for column in ("runbook", "env", "kind"):
            table.add_column(column)
    else:
        table.add_column("runbook", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("started", no_wrap=True)
    if wide:
        table.add_column("finished", no_wrap=True)
    for row in rows:
        started = row["started_at"][:16].replace("T", " ")
        what = [row["runbook"], row["env"], row["kind"]] if wide else [f"{row['runbook']} on {row['env']}"]
        finished = [(row["finished_at"] or "")[:16].replace("T", " ")] if wide else []
        table.add_row(row["run_id"], *(Text(cell) for cell in (row["label"] or "", *what)), row["state"], started,
                      *finished)
    return table
