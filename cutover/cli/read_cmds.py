"""Commands that read runs (status, runs) and how every command opens the journal.

They import no executor, no history and no pydantic model unless the run shown
needs one (a run under way: its forecast; a run paused at a gate: its runbook):
`cutover status` and `cutover runs` start in a fraction of what a run does.
"""

from __future__ import annotations

import shlex
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from cutover.app.queries import load_run, runbook_of, runs_json, status_document
from cutover.app.transfer import export_lines, import_lines
from cutover.cli.app import App, pass_app
from cutover.cli.confirm import YES_OPTION, confirm_by_run_id
from cutover.cli.render import runs_view, status_board
from cutover.core.events import Journal, VerifyReport
from cutover.core.guidance import next_move
from cutover.core.state import RunState, RunStatus
from cutover.core.steps import RunbookSpec
from cutover.errors import CutoverError, ExitCode, InputError, NotFound
from cutover.journal.chaincheck import HEADS_FILE, VerifiedHeads, VerifiesSince, check_run_chain
from cutover.journal.sqlite import open_journal_url, verify_journal_file


def open_journal(app: App) -> Journal:
    """The journal the options name: SQLite in the state directory by default, or PostgreSQL."""
    return open_journal_url(journal_url(app), app.operator, stale_after=app.lease_ttl)


def journal_url(app: App) -> str:
    return app.journal_url or f"sqlite:///{app.ensure_state_dir() / 'journal.db'}"


def verify_journal(app: App, run_id: str | None = None) -> VerifyReport:
    """Verify the whole chain: a SQLite file read-only (it is evidence), PostgreSQL in one snapshot."""
    url = journal_url(app)
    if url.startswith("sqlite:///"):
        return verify_journal_file(Path(url.removeprefix("sqlite:///")), run_id)
    with open_journal(app) as store:
        return store.verify(run_id)


def check_chain(app: App, journal: Journal, run_id: str, heads: VerifiedHeads | None = None) -> None:
    """The run's hash chain verified before a command acts on it or shows it (exit 7 on a break)."""
    heads = heads or VerifiedHeads(app.ensure_state_dir() / HEADS_FILE)
    try:
        check_run_chain(journal, run_id, heads, journal_url(app))
    except NotFound:
        load_run(journal, run_id)  # says so with the known runs as hint
        raise


def spec_of(state: RunState) -> RunbookSpec | None:
    """The run's runbook for its gates' approvers; None for a journal whose runbook no longer parses."""
    if state.status is not RunStatus.PAUSED or state.pause_reason != "gate":
        return None  # only a gate's approvers need the runbook: it is not parsed otherwise
    try:
        return runbook_of(state)
    except CutoverError:
        return None


# ---------------------------------------------------------------------- reading


@click.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Keep the board up to date until the run ends (read-only, no lease).")
@click.option("--every", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              help="With --watch: seconds between refreshes.")
@pass_app
def status(app: App, run_id: str | None, as_json: bool, watch: bool, every: float) -> int:
    """Show a run's state (the latest run by default)."""
    with open_journal(app) as journal:
        if run_id is None:
            runs = journal.runs()
            if not runs:
                raise NotFound("no runs in this journal yet", hint="start one with `cutover run RUNBOOK --env ENV`")
            run_id = runs[-1]
        if watch:
            return _watch(app, journal, run_id, every)
        check_chain(app, journal, run_id)
        state = load_run(journal, run_id)
        outlook = None
        if not state.is_finished():  # a finished run has no forecast: nothing of the history is imported
            from cutover.app.history import live_forecast

            outlook = live_forecast(journal, state, now=datetime.now(timezone.utc))
    if as_json:
        app.emit_json(status_document(state, outlook))
    else:
        app.console.print(status_board(state, outlook=outlook, next_move=next_move(state, spec_of(state))))
    return ExitCode.OK


def _watch(app: App, journal: Journal, run_id: str, every: float) -> int:
    """A watcher's board: it only reads, so any number of them can follow a night from anywhere."""
    from rich.live import Live

    from cutover.app.history import LiveForecasts

    forecasts = LiveForecasts(journal)
    heads = VerifiedHeads(app.ensure_state_dir() / HEADS_FILE)
    check_chain(app, journal, run_id, heads)  # whole, once, on a journal that cannot verify from a head

    def board() -> Any:
        if isinstance(journal, VerifiesSince):  # from the head verified at the last refresh: only what is new
            check_chain(app, journal, run_id, heads)
        state = load_run(journal, run_id)
        outlook = forecasts.of(state, now=datetime.now(timezone.utc))
        return state, status_board(state, outlook=outlook, next_move=next_move(state, spec_of(state)))

    state, view = board()
    if not app.console.is_terminal:  # a pipe or a log: one line per change of state
        seen = None
        while True:
            line = f"run {run_id}: {state.status.value} ({len(state.completed)}/{len(state.steps)} steps done)"
            if line != seen:
                app.console.print(line)
                seen = line
            if state.is_finished():
                return ExitCode.OK
            time.sleep(every)
            state, view = board()
    with Live(view, console=app.console, refresh_per_second=4, transient=False) as live:
        while not state.is_finished():
            time.sleep(every)
            state, view = board()
            live.update(view)
    return ExitCode.OK


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> int:
    """List the runs in the journal, oldest first (`runs export` / `runs import` move one between machines;
    `runs abandon` ends one that acted on nothing; `runs postpone` moves one to a later window)."""
    if ctx.invoked_subcommand is not None:
        return ExitCode.OK
    app = ctx.find_object(App)
    assert app is not None
    with open_journal(app) as journal:
        rows = runs_json(journal)
    if as_json:
        app.emit_json(rows)
        return ExitCode.OK
    app.console.print(runs_view(rows, width=app.console.width) if rows else "no runs yet")
    return ExitCode.OK


@runs.command("export")
@click.argument("run_id")
@pass_app
def runs_export(app: App, run_id: str) -> int:
    """Write RUN_ID's events, with their hashes, to standard output (JSON lines)."""
    with open_journal(app) as journal:
        for line in export_lines(journal, run_id):
            click.echo(line)
    return ExitCode.OK


@runs.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def runs_import(app: App, file: Path) -> int:
    """Verify an exported run completely, then add it to this journal (nothing is imported from a bad file)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text; nothing was imported", hint="is it a cutover run export?") from exc
    with open_journal(app) as journal:
        run_id = import_lines(journal, lines, str(file))
    from rich.markup import escape

    app.console.print(f"imported run {run_id} from {escape(str(file))}")
    return ExitCode.OK


@runs.command("abandon")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why the run is abandoned (journalled).")
@YES_OPTION
@pass_app
def runs_abandon(app: App, run_id: str, reason: str, yes: bool) -> int:
    """End RUN_ID, which acted on nothing: it frees its SAMUs and counts for nothing (journalled)."""
    from rich.markup import escape

    from cutover.app.runs import abandon_run, check_abandon_allowed

    with open_journal(app) as journal:
        check_abandon_allowed(load_run(journal, run_id))  # refused before asking anything
        confirm_by_run_id(app, run_id, f"abandon run {run_id}", yes=yes,
                          command=f"cutover runs abandon {run_id} --reason {shlex.quote(reason)}")
        state = abandon_run(journal, run_id, reason)
    app.console.print(f"run {run_id}: {state.status.value} {escape(state.pause_detail or '')}; its SAMUs are free")
    return ExitCode.OK


@runs.command("postpone")
@click.argument("run_id")
@click.option("--window", "window", type=click.IntRange(min=1), required=True, metavar="N",
              help="The runbook's candidate window to move to (numbered from 1, as `cutover status` shows them).")
@click.option("--reason", required=True, help="Why the night moves (journalled), e.g. the gate's no-go.")
@YES_OPTION
@pass_app
def runs_postpone(app: App, run_id: str, window: int, reason: str, yes: bool) -> int:
    """Move RUN_ID to a later candidate window of its runbook (a no-go, a forecast that misses the window)."""
    from rich.markup import escape

    from cutover.app.runs import check_postpone_allowed, postpone_run

    with open_journal(app) as journal:
        check_postpone_allowed(load_run(journal, run_id), window, datetime.now(timezone.utc))  # before asking
        confirm_by_run_id(app, run_id, f"postpone run {run_id} to window {window}", yes=yes,
                          command=f"cutover runs postpone {run_id} --window {window} --reason {shlex.quote(reason)}")
        state = postpone_run(journal, run_id, window, reason)
    app.console.print(f"run {run_id}: {escape(state.pause_detail or '')}")
    return ExitCode.OK
