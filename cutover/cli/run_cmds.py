"""Commands over runbooks and runs: validate, plan, run, status, runs, resume, rollback, approve, journal."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cutover.app.anchors import AnchorCheck, check_anchors, check_key, signers_for_runs
from cutover.app.approvals import AuditFinding, SignedApproval, audit, lab_runs, reverify, sign_for
from cutover.app.criteria import with_evidence
from cutover.app.history import LiveForecasts, measured_p90s, window_risk
from cutover.app.notify import MODES, Notifier
from cutover.app.programme import environment_runs, positions, programme_json
from cutover.app.queries import load_run, runbook_of
from cutover.app.runs import (
    EXIT_FOR_STATUS,
    Decision,
    Place,
    approve_gate,
    auto_approver,
    check_auto_approve,
    check_rollback_allowed,
    check_run_id,
    criterion_to_override,
    gate_is_satisfied,
    new_run_id,
    open_gate,
    opening_window,
    override_criterion,
    resume_run,
    roll_back_run,
    start_run,
    verified,
    wait_as_standby,
)
from cutover.cli.app import App, pass_app
from cutover.cli.confirm import YES_OPTION, confirm_by_run_id
from cutover.cli.read_cmds import check_chain, open_journal, spec_of, verify_journal
from cutover.cli.render import PlanEntry, criteria_table, plan_view, print_plain
from cutover.cli.terminal import LiveBoard, answerable, terminated_as_interrupted
from cutover.core import records
from cutover.core.engine import Approval, DriveOptions, GatePrompt, approvals_complete
from cutover.core.events import Journal, VerifyReport
from cutover.core.guidance import next_move
from cutover.core.state import RunState, RunStatus
from cutover.core.steps import GateStep
from cutover.errors import CutoverError, ExitCode, InputError, JournalCorrupt, NotFound
from cutover.journal.postgres import STALL_BOUND
from cutover.journal.sqlite import open_journal_url
from cutover.model.inventory import Inventory, load_inventory
from cutover.model.runbook import load_runbook
from cutover.planning.blast import StepReach
from cutover.planning.plan import PlannedStep, plan_cutover
from cutover.planning.validation import CheckedRunbook, check_against


class WindowEnd(click.ParamType):
    """An ISO 8601 date-time with its UTC offset (the window's end must be unambiguous)."""

    name = "ISO-8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date-time, e.g. 2026-11-29T06:00:00+01:00", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no UTC offset; add one, e.g. +01:00", param, ctx)
        return parsed.isoformat()


ENV_HELP = "Environment: inventories/ENV/ in the project folder (or a path to an inventory folder)."


# ---------------------------------------------------------------------- validate / plan


def resolve_runbook(app: App, name: str) -> Path:
    """A path as given, else runbooks/NAME[.yaml|.yml] in the project folder."""
    given = app.project_path(name)
    candidates = [given, app.project_dir / "runbooks" / name]
    candidates += [app.project_dir / "runbooks" / f"{name}{ext}" for ext in (".yaml", ".yml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise NotFound(f"runbook {name!r} not found", hint=f"looked for {given} and in {app.project_dir / 'runbooks'}")


def load_checked(app: App, runbook: str, env: str, params: tuple[str, ...] = ()) -> CheckedRunbook:
    """The runbook read and checked against ENV's inventory: once a command, passed along from here."""
    app.require_project()
    inventory = load_inventory(app.project_dir, env)
    path = resolve_runbook(app, runbook)
    loaded = load_runbook(path, display=_display(app, path), params=parse_params(params))
    return check_against(loaded, inventory, app.project_dir)


def parse_params(given: tuple[str, ...]) -> dict[str, str]:
    """``--param wave=wave2`` (repeatable) -> {"wave": "wave2"}."""
    values: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param {item!r} is not NAME=VALUE", hint="e.g. --param wave=wave2")
        if name.strip() in values:
            raise InputError(f"--param {name.strip()} is given twice", hint="give each parameter once")
        values[name.strip()] = value
    return values


PARAM_OPTION = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                            help="A value for one of the runbook's params (repeatable), e.g. wave=wave2.")
SECRET_PARAM_OPTION = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                                   help="A `secret: true` parameter of the run, given again (the journal keeps only "
                                        "its digest); repeatable.")


def _display(app: App, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(app.project_dir))
    except ValueError:
        return str(path)


@click.command()
@click.argument("runbook")
@click.option("--env", "env", required=True, help=ENV_HELP)
@PARAM_OPTION
@pass_app
def validate(app: App, runbook: str, env: str, params: tuple[str, ...]) -> int:
    """Check RUNBOOK against the inventory of ENV (schema, targets, blast radius); nothing is executed."""
    checked = load_checked(app, runbook, env, params)
    loaded, inventory = checked.loaded, checked.inventory
    plan = plan_cutover(checked.spec, inventory)
    units = sum(len(p.info.targets) if p.info.targets is not None else 1 for p in plan)
    app.console.print(f"[green]✓[/] {escape(loaded.path)} is valid for {escape(inventory.name)}: "
                      f"{len(plan)} steps, {units} step x target units")
    return ExitCode.OK


@click.command()
@click.argument("runbook")
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PARAM_OPTION
@pass_app
def plan(app: App, runbook: str, env: str, as_json: bool, params: tuple[str, ...]) -> int:
    """Show every step x target of RUNBOOK in execution order, with its rollback and the SAMUs it can affect."""
    checked = load_checked(app, runbook, env, params)
    loaded, inventory = checked.loaded, checked.inventory
    steps = plan_cutover(checked.shown_spec, inventory)  # a secret parameter is shown masked
    reaches = {r.step: r for r in checked.reaches}
    if as_json:
        app.emit_json({"runbook": loaded.runbook.name, "env": inventory.name, "params": loaded.shown_params,
                       "wave": loaded.runbook.wave,
                       "steps": [{**s.to_json(inventory), "affects": _affects_json(reaches, s.info.id, inventory)}
                                 for s in steps]})
        return ExitCode.OK
    title = f"{loaded.runbook.name} on {inventory.name}"
    if loaded.params:
        title += " (" + ", ".join(f"{k}={v}" for k, v in loaded.shown_params.items()) + ")"
    app.console.print(plan_view(f"{title}: {len(steps)} steps", [_plan_entry(p, reaches, inventory) for p in steps]))
    return ExitCode.OK


def _plan_entry(planned: PlannedStep, reaches: dict[str, StepReach], inventory: Inventory) -> PlanEntry:
    info, step = planned.info, planned.step
    targets = ", ".join(info.targets) if info.targets is not None else "controller"
    if isinstance(step, GateStep):
        action = f"go/no-go: quorum {step.quorum} of " + ", ".join(a.label for a in step.approvers)
        rollback, verify = ("POINT OF NO RETURN" if step.point_of_no_return else "-"), "-"
    else:
        action = step.action.describe()
        rollback = step.rollback.describe() if step.rollback else f"none: {step.rollback_reason}"
        verify = step.verify.describe() if step.verify else "-"
    return PlanEntry(info.id, info.title, info.kind, targets, action, verify, rollback,
                     _affects_text(reaches.get(info.id), inventory))


def _affects_json(reaches: dict[str, StepReach], step_id: str, inventory: Inventory) -> dict[str, Any] | None:
    reach = reaches.get(step_id)
    if reach is None:
        return None
    return {"read_only": reach.read_only, "action": reach.action.to_json(inventory),
            "rollback": reach.rollback.to_json(inventory)}


def _affects_text(reach: StepReach | None, inventory: Inventory) -> str:
    if reach is None:
        return "-"
    if reach.read_only:
        return "nothing (read-only)"
    codes = reach.action.to_json(inventory)["samus"]
    return f"SAMU {', '.join(codes)}" if codes else "no SAMU"


# ---------------------------------------------------------------------- driving


def _drive_options(app: App, inventory: Inventory, *, auto_approve: str | None,
                   override_window: str | None, plain: bool, until: str | None = None,
                   measured: tuple[dict[str, float], dict[str, float]] = ({}, {}),
                   signing: tuple[Journal, str] | None = None, secret_params: tuple[str, ...] = (),
                   run: RunState | None = None, board: LiveBoard | None = None,
                   gate_timeout: float = 0) -> DriveOptions:
    """``signing``: the journal and run id a terminal approval's statement is signed against.

    ``run``: the run being resumed, whose lab marker (fixed at its creation) decides, not the inventory's.
    """
    check_auto_approve(inventory, auto_approve, run)
    lab = run.lab if run is not None else inventory.is_lab
    prompt = None
    if signing is not None and not auto_approve and sys.stdin.isatty():
        prompt = _terminal_prompt(app, inventory, lab, *signing, board=board, timeout=gate_timeout)
    anchor_key = _anchor_key(app, inventory)
    return DriveOptions(auto_approve=auto_approve, prompt=prompt, override_window=override_window, until=until,
                        on_event=print_plain(app.console) if plain else None, anchor_key=anchor_key,
                        environment={"CUTOVER_ENV": inventory.name}, secret_params=parse_params(secret_params),
                        measured_p90=measured[0], measured_rollback_p90=measured[1])


def _anchor_key(app: App, inventory: Inventory) -> str | None:
    """The key each drive's end is signed with: --anchor-key / CUTOVER_ANCHOR_KEY, else the inventory's.

    A lab inventory's key is written by `cutover lab up`: before that there is none, and the run is
    unanchored (`journal verify --anchors` says so); any other missing key stops the drive before it starts.
    """
    if app.anchor_key:
        return str(check_key(app.project_path(app.anchor_key)))
    key = inventory.anchor_key
    if key is None or (inventory.is_lab and not key.is_file()):
        return None
    return str(check_key(key))


def _terminal_prompt(app: App, inventory: Inventory, lab: bool, journal: Journal, run_id: str, *,
                     board: LiveBoard | None, timeout: float) -> GatePrompt:
    def ask(step: GateStep, approved: Sequence[str]) -> Approval | None:
        with (board.aside() if board else nullcontext()), answerable(step, timeout):
            return _ask(step, approved)

    def _ask(step: GateStep, approved: Sequence[str]) -> Approval | None:
        app.console.print(f"\n[bold]go/no-go: {escape(step.label)}[/]" + (f" — {escape(step.question)}" if step.question else ""))
        if step.point_of_no_return:
            app.console.print("[bold red]this is the POINT OF NO RETURN: after it, rollback to earlier steps is refused[/]")
        gate = load_run(journal, run_id).gates.get(step.id)
        if gate is not None and gate.criteria:  # the evidence, measured as the gate opened: decide on it
            app.console.print(criteria_table(step.id, gate))
        names = [a.key for a in step.approvers if a.name not in approved]
        app.console.print(f"approvers: {escape(', '.join(f'{a.label}, {a.role}' for a in step.approvers))}; "
                          f"quorum {step.quorum}; approved so far: {escape(', '.join(approved) or 'nobody')}")
        name = click.prompt("approve as (empty: no-go / decide later)", default="", show_default=False,
                            type=click.Choice(names + [""]), show_choices=False)
        if not name:
            return None
        reason = click.prompt("reason", default="", show_default=False)
        if lab:
            return Approval(name, reason)
        return _signed_at_terminal(app, inventory, journal, run_id, step, name, reason)

    return ask


def _signed_at_terminal(app: App, inventory: Inventory, journal: Journal, run_id: str, step: GateStep, name: str,
                        reason: str) -> Approval | None:
    """Outside a lab the approver signs here with their key; None (decide later) if they give up."""
    listed = step.approver(name)
    assert listed is not None and listed.id is not None  # check_against requires ids outside a lab
    app.console.print(f"[dim]run {escape(run_id)} is not a lab run: the approval is signed. Elsewhere: "
                      f"`cutover approve {run_id} {step.id} --as {listed.id} --key KEY`[/]")
    default_key = os.environ.get("CUTOVER_APPROVAL_KEY", "~/.ssh/id_ed25519")
    while True:
        key = Path(click.prompt("SSH key to sign with (private, or public with ssh-agent)", default=default_key))
        try:
            signed = sign_for(run_id, step.id, listed.id, reason, journal.events(run_id), key.expanduser(), at=_now())
            return verified(Approval(name, reason, signed.statement, signed.signature), journal, run_id, step.id,
                            listed, inventory)
        except CutoverError as exc:
            app.console.print(f"[red]{escape(exc.message)}[/]" + (f" [dim]({escape(exc.hint)})[/]" if exc.hint else ""))
            if not click.confirm("try another key?", default=True):
                return None


GATE_TIMEOUT_OPTION = click.option(
    "--gate-timeout", type=click.FloatRange(min=1), default=1800.0, show_default=True, metavar="SECONDS",
    envvar="CUTOVER_GATE_TIMEOUT",
    help="On a terminal: how long a gate's prompt waits for an answer before the run pauses at the gate "
         "(then approve it with `cutover approve`).")


NOTIFY_OPTION = click.option(
    "--notify", type=click.Choice(MODES), default="on", show_default=True,
    help="on: the inventory's cutover_notify targets and SAMU on-call contacts; test: everything to "
         "cutover_notify_test instead (rehearsals); off: nobody.")


def _notifier(inventory: Inventory, mode: str, journal: Journal, run_id: str, forecasts: LiveForecasts) -> Notifier:
    def end_p90() -> datetime | None:
        # in the notifier's own thread, at a rollback point, until the window is said at risk: the run folded
        # afresh there is a snapshot no engine changes while the forecast reads it (the engine's state would be)
        outlook = forecasts.of(load_run(journal, run_id), now=datetime.now(timezone.utc))
        return outlook.end_p90 if outlook else None

    return Notifier.for_inventory(inventory, mode, forecast=end_p90)


def _place(app: App) -> Place:
    return Place(app.project_dir, app.ensure_state_dir())


def _finish(app: App, run_id: str, status: RunStatus, inventory: Inventory) -> int:
    """The run's outcome, why it stopped, and the command that moves it on."""
    state = _stopped(app, run_id, status)
    detail = state.pause_detail if state is not None else None
    if not app.console.is_terminal:
        app.console.print(f"run {run_id}: {status.value}" + (f" ({escape(detail)})" if detail else ""))
    else:
        app.console.print(f"run [bold]{run_id}[/]: {status.value}" + (f" ({escape(detail)})" if detail else ""))
    move = next_move(state, spec_of(state), signed=not inventory.is_lab) if state is not None else None
    if move:
        app.console.print(f"[dim]next: {escape(move)}[/]")
    return EXIT_FOR_STATUS[status]


def _stopped(app: App, run_id: str, status: RunStatus) -> RunState | None:
    """The run as it stopped, paused or failed, from its journal (read again only then: a long run's fold is not free)."""
    if status not in (RunStatus.PAUSED, RunStatus.FAILED):
        return None
    with open_journal(app) as journal:
        return load_run(journal, run_id)




@click.command()
@click.argument("runbook")
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--run-id", default=None, help="Name of the run [default: RUNBOOK-DATE-TIME-XXXX].")
@click.option("--auto-approve", metavar="NAME", default=None, help="Approve every gate as NAME (lab inventories only).")
@click.option("--window-end", type=WindowEnd(), default=None, help="End of the cutover window (ISO 8601 with offset); overrides the runbook's.")
@click.option("--window", "window_number", type=click.IntRange(min=1), default=None, metavar="N",
              help="Create the run in the runbook's candidate window N [default: the first still open].")
@click.option("--override-window", metavar="REASON", default=None, help="Start steps even past the window (journalled).")
@click.option("--until", metavar="STEP", default=None, help="Pause once STEP is done (a rehearsal up to a point).")
@PARAM_OPTION
@NOTIFY_OPTION
@click.option("--override-programme", metavar="REASON", default=None,
              help="Move SAMUs a live run already put on the cloud (journalled).")
@click.option("--label", default=None, help='What people call this run, e.g. "répétition 3" (journalled).')
@click.option("--accept-window-risk", metavar="REASON", default=None,
              help="Start even though the window's end is past or before the forecast's P90 end (journalled).")
@GATE_TIMEOUT_OPTION
@pass_app
def run(app: App, runbook: str, env: str, run_id: str | None, auto_approve: str | None,
        window_end: str | None, window_number: int | None, override_window: str | None, until: str | None,
        params: tuple[str, ...], notify: str, override_programme: str | None, label: str | None,
        accept_window_risk: str | None, gate_timeout: float) -> int:
    """Execute RUNBOOK on ENV: checkpointed steps, gates, a rollback point after each step."""
    if run_id is not None:
        check_run_id(run_id)  # a name (it becomes file names and URLs), refused before anything is read
    checked = load_checked(app, runbook, env, params)
    loaded, inventory = checked.loaded, checked.inventory
    run_id = run_id or new_run_id(loaded.runbook.name)

    def created(run: str) -> None:
        app.console.print(f"run [bold]{run}[/] created ({len(loaded.runbook.steps)} steps, env {escape(inventory.name)})")

    with open_journal(app) as journal:
        risk = _window_risk_accepted(journal, checked, window_end, accept_window_risk, window_number)
        # one per drive, shared by the board, the notifier and the gates; the run's runbook is the one checked,
        # secrets masked as journalled (what runbook_of would convert again)
        forecasts = LiveForecasts(journal, {run_id: checked.shown_spec})
        board = LiveBoard(app, journal, forecasts)
        options = _drive_options(app, inventory, auto_approve=auto_approve, override_window=override_window,
                                 plain=not app.console.is_terminal, until=until,
                                 measured=measured_p90s(journal, loaded.runbook.name, inventory.name),
                                 signing=(journal, run_id), board=board, gate_timeout=gate_timeout)
        options = with_evidence(options, journal, inventory, app.project_dir, app.ensure_state_dir(), forecasts)
        with board.shown() as handle, terminated_as_interrupted():
            status = start_run(journal, checked, _place(app), options, run_id=run_id,
                               window_end=window_end, override_programme=override_programme, label=label,
                               window_risk=risk, window_number=window_number, heartbeat=app.lease_ttl / 3,
                               engine_handle=handle, created=created,
                               notifier=_notifier(inventory, notify, journal, run_id, forecasts))
    return _finish(app, run_id, status, inventory)


def _window_risk_accepted(journal: Journal, checked: CheckedRunbook, window_end: str | None,
                          accepted: str | None, window_number: int | None = None) -> str | None:
    """Refuse a window the night cannot fit (exit 2), unless the operator accepts the risk: then what to journal."""
    loaded = checked.loaded
    now = datetime.now(timezone.utc)
    window = None if window_end else opening_window(loaded, window_number, now=now)  # the run's window
    if window is not None:  # the night starts when its window opens
        window_end, now = window.end, max(now, datetime.fromisoformat(window.start))
    end = window_end or (loaded.runbook.window.end if loaded.runbook.window else None)
    risk = window_risk(journal, loaded, checked.inventory, end, now=now, spec=checked.spec) if end else None
    if risk is None:
        return None
    if not accepted:
        raise InputError(f"{risk}; nothing was started",
                         hint="give the night's real window with --window-end ISO, or start anyway with "
                              "--accept-window-risk REASON (journalled)")
    return f"{accepted} ({risk})"


@click.command()
@click.argument("run_id")
@click.option("--auto-approve", metavar="NAME", default=None, help="Approve every gate as NAME (lab inventories only).")
@click.option("--take-over", is_flag=True, help="Take the lease of a controller that is no longer running (journalled).")
@click.option("--mark-done", "mark_done", multiple=True, metavar="STEP[:TARGET]",
              help="An in-doubt target did take effect: record it done (journalled).")
@click.option("--rerun", multiple=True, metavar="STEP[:TARGET]", help="An in-doubt target did not take effect: run it again.")
@click.option("--exclude", multiple=True, metavar="TARGET", help="Leave TARGET out of the rest of the run (journalled).")
@click.option("--override-window", metavar="REASON", default=None, help="Start steps even past the window (journalled).")
@click.option("--until", metavar="STEP", default=None, help="Pause once STEP is done (a rehearsal up to a point).")
@click.option("--standby", is_flag=True,
              help="Wait while another controller drives RUN_ID; take over when it is gone (journalled), then drive.")
@SECRET_PARAM_OPTION
@NOTIFY_OPTION
@GATE_TIMEOUT_OPTION
@pass_app
def resume(app: App, run_id: str, auto_approve: str | None, take_over: bool, mark_done: tuple[str, ...],
           rerun: tuple[str, ...], exclude: tuple[str, ...], override_window: str | None, until: str | None,
           standby: bool, params: tuple[str, ...], notify: str, gate_timeout: float) -> int:
    """Continue RUN_ID from its journal: after a pause, a failure, an approval or a crash."""
    decisions = tuple(Decision.parse(d, "done") for d in mark_done) + tuple(Decision.parse(d, "rerun") for d in rerun)
    with open_journal(app) as journal:
        if standby:
            tell = (lambda line: app.err.print(escape(line)))
            if not wait_as_standby(journal, run_id, stale_after=app.lease_ttl, poll=app.lease_ttl / 3, tell=tell):
                state = load_run(journal, run_id)
                return _finish(app, run_id, state.status, load_inventory(app.project_dir, state.env))
            take_over = True  # the driver is gone: its lease is stale or free (the takeover is journalled)
        check_chain(app, journal, run_id)
        state = load_run(journal, run_id)
        inventory = load_inventory(app.project_dir, state.env)
        forecasts = LiveForecasts(journal)  # one per drive: the board, the notifier and the gates share it
        board = LiveBoard(app, journal, forecasts)
        options = _drive_options(app, inventory, auto_approve=auto_approver(state, inventory, auto_approve),
                                 override_window=override_window, plain=not app.console.is_terminal, until=until,
                                 measured=measured_p90s(journal, state.runbook_name, state.env, exclude=run_id),
                                 signing=(journal, run_id), secret_params=params, run=state, board=board,
                                 gate_timeout=gate_timeout)
        options = with_evidence(options, journal, inventory, app.project_dir, app.ensure_state_dir(), forecasts)
        with board.shown() as handle, terminated_as_interrupted():
            status = resume_run(journal, run_id, inventory, _place(app), options, take_over=take_over,
                                decisions=decisions, exclude=exclude, heartbeat=app.lease_ttl / 3,
                                engine_handle=handle, notifier=_notifier(inventory, notify, journal, run_id, forecasts),
                                state=state)
    return _finish(app, run_id, status, inventory)


@click.command()
@click.argument("run_id")
@click.option("--to", "to", metavar="STEP", default=None, help="Roll back to the rollback point after STEP [default: the start].")
@click.option("--take-over", is_flag=True, help="Take the lease of a controller that is no longer running (journalled).")
@YES_OPTION
@SECRET_PARAM_OPTION
@NOTIFY_OPTION
@pass_app
def rollback(app: App, run_id: str, to: str | None, take_over: bool, yes: bool, params: tuple[str, ...],
             notify: str) -> int:
    """Undo RUN_ID's completed steps after STEP, newest first, on every target.

    Rolling back a completed run, or to a step (--to), asks for the run id to be
    typed back on a terminal (or --yes). Past the point of no return, only
    --to the point of no return itself is allowed, and never on a completed run.
    """
    with open_journal(app) as journal:
        check_chain(app, journal, run_id)
        state = load_run(journal, run_id)
        inventory = load_inventory(app.project_dir, state.env)
        check_rollback_allowed(state, to)  # refused before anything is asked or changed
        if to is not None or state.status is RunStatus.COMPLETED:
            what = (f"undo every step of run {run_id} after {to}" if to else f"undo every step of run {run_id}") \
                + (f", a {state.status.value} run" if state.status is RunStatus.COMPLETED else "")
            command = f"cutover rollback {run_id}" + (f" --to {to}" if to else "")
            confirm_by_run_id(app, run_id, what, yes=yes, command=command)
        options = DriveOptions(on_event=None if app.console.is_terminal else print_plain(app.console),
                               environment={"CUTOVER_ENV": inventory.name}, secret_params=parse_params(params))
        board = LiveBoard(app, journal)
        with board.shown() as handle, terminated_as_interrupted():
            status = roll_back_run(journal, run_id, inventory, _place(app), options, to=to, take_over=take_over,
                                   heartbeat=app.lease_ttl / 3, engine_handle=handle,
                                   notifier=_notifier(inventory, notify, journal, run_id, board.forecasts),
                                   state=state)
    return _finish(app, run_id, status, inventory)


@click.command()
@click.argument("run_id")
@click.argument("step")
@click.option("--as", "approver", required=True, help="The approver's id (or, in a lab runbook without ids, name).")
@click.option("--reason", default="", help="Why (signed, and recorded in the journal).")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), envvar="CUTOVER_APPROVAL_KEY", default=None,
              help="Sign with this SSH private key (or public key, its private half in ssh-agent). "
                   "Required outside a lab.")
@click.option("--sign-only", is_flag=True,
              help="With --key: write the signed approval to stdout for the controller; journal nothing.")
@click.option("--signed", "signed_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Count a signed approval written with --sign-only (by an approver elsewhere).")
@click.option("--override", "criterion", metavar="CRITERION", default=None,
              help="Instead of approving: accept the failed blocking CRITERION at the value measured (an approver "
                   "of a required role; --reason required; signed like an approval outside a lab).")
@pass_app
def approve(app: App, run_id: str, step: str, approver: str, reason: str, key: Path | None, sign_only: bool,
            signed_file: Path | None, criterion: str | None) -> int:
    """Approve the go/no-go gate STEP of RUN_ID as an approver, or override one of its failed criteria.

    Outside a lab the approval is signed (ssh-keygen -Y sign) and counted only once
    its signature verifies against the environment's allowed_signers.
    """
    if key and signed_file:
        raise InputError("--key and --signed are exclusive", hint="sign here with --key, or bring a --signed file")
    if sign_only and not key:
        raise InputError("--sign-only needs --key", hint="the key signs the statement")
    if criterion is not None:
        return _override(app, run_id, step, approver, criterion, reason, key, sign_only, signed_file)
    with open_journal(app) as journal:
        check_chain(app, journal, run_id)
        state = load_run(journal, run_id)
        inventory = load_inventory(app.project_dir, state.env)
        _, listed = open_gate(state, step, approver)
        signed = SignedApproval.read(signed_file) if signed_file else None
        if key is not None:
            if listed.id is None:
                raise InputError(f"approver {listed.name!r} has no id: a signed approval names an id",
                                 hint="give each approver an `id:` in the runbook")
            signed = sign_for(run_id, step, listed.id, reason, journal.events(run_id), key, at=_now())
        if sign_only and signed is not None:
            click.echo(signed.to_json(), nl=False)
            return ExitCode.OK
        approval = Approval(approver, reason, *((signed.statement, signed.signature) if signed else ()))
        state = approve_gate(journal, run_id, step, approval, inventory)
        how = "signed, verified against the run's allowed signers" if signed else "unsigned (lab run)"
        if gate_is_satisfied(state, step):
            app.console.print(f"gate {step} approved by {escape(listed.name)} ({how}); it has its quorum: "
                              f"`cutover resume {run_id}` continues the run")
        elif (gate := runbook_of(state).gate(step)) is not None and approvals_complete(gate, state):
            app.console.print(f"gate {step} approved by {escape(listed.name)} ({how}); it has its quorum, but a "
                              "blocking criterion failed: it takes `--override CRITERION --reason TEXT` "
                              "(`cutover status` shows the criteria)")
        else:
            app.console.print(f"gate {step} approved by {escape(listed.name)} ({how}); still waiting: "
                              f"{len(state.gates[step].approvals)} approval(s) so far")
    return ExitCode.OK


def _override(app: App, run_id: str, step: str, approver: str, criterion: str, reason: str, key: Path | None,
              sign_only: bool, signed_file: Path | None) -> int:
    """`approve --override`: a failed blocking criterion accepted, signed like an approval."""
    with open_journal(app) as journal:
        check_chain(app, journal, run_id)
        state = load_run(journal, run_id)
        inventory = load_inventory(app.project_dir, state.env)
        listed, override = criterion_to_override(state, step, criterion, approver)
        signed = SignedApproval.read(signed_file) if signed_file else None
        if key is not None:
            if listed.id is None:
                raise InputError(f"approver {listed.name!r} has no id: a signed override names an id",
                                 hint="give each approver an `id:` in the runbook")
            if not reason.strip():
                raise InputError("an override needs a reason", hint="--reason TEXT: why the gate may open despite it")
            signed = sign_for(run_id, step, listed.id, reason, journal.events(run_id), key, at=_now(),
                              override=override)
        if sign_only and signed is not None:
            click.echo(signed.to_json(), nl=False)
            return ExitCode.OK
        approval = Approval(approver, reason, *((signed.statement, signed.signature) if signed else ()))
        state = override_criterion(journal, run_id, step, criterion, approval, inventory)
    how = "signed, verified" if signed else "unsigned (lab)"
    app.console.print(f"criterion {criterion} of gate {step} overridden by {escape(listed.name)} ({how}) at "
                      f"{escape(str(override.value))}; "
                      + ("the gate can open: " if gate_is_satisfied(state, step) else "the gate still waits: ")
                      + f"`cutover resume {run_id}` continues (the criteria are measured again)")
    return ExitCode.OK


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- reading


@click.group()
def journal() -> None:
    """The append-only, hash-chained journal."""


@journal.command("verify")
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--anchors", "with_anchors", is_flag=True,
              help="Also check each run's anchors (its head signed by the controller's key): catches a chain "
                   "recomputed by whoever can write the storage; a run without one fails.")
@click.option("--allowed-signers", "allowed_signers", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="The auditor's own allowed-signers file: every signed approval is verified "
                                   "against it, not the signer lines the journal kept, and those whose key or "
                                   "principal it does not hold are listed (exit 7); with --anchors, the anchors too "
                                   "[default: each run's environment's inventories/ENV/allowed_signers].")
@pass_app
def journal_verify(app: App, run_id: str | None, as_json: bool, with_anchors: bool,
                   allowed_signers: Path | None) -> int:
    """Check the hash chain: any edit or deletion is found and the first bad event named (read-only)."""
    report = verify_journal(app, run_id)
    # the hash chain has no key: a forger can recompute it, not an approver's signature
    checks = reverify(report.approvals) if report.ok else []
    forged = [c for c in checks if not c.valid]
    anchors = _anchor_checks(app, report, allowed_signers) if with_anchors and report.ok and not forged else []
    unanchored = [a for a in anchors if not a.valid]
    audited = audit(report.approvals, lab_runs(report.created), app.project_path(allowed_signers)) \
        if allowed_signers is not None and report.ok else None
    if as_json:
        bad = report.first_bad
        data = {"ok": report.ok and not forged and not unanchored and not audited,
                "events_checked": report.events_checked, "reason": report.reason or None,
                "first_bad": None if bad is None else {"seq": bad.seq, "run_id": bad.run_id, "kind": bad.kind},
                "approvals": [c.to_json() for c in checks]}
        if audited is not None:
            data["not_held"] = [f.to_json() for f in audited]
        app.emit_json({**data, "anchors": [a.to_json() for a in anchors]} if with_anchors else data)
    if report.ok and not forged and not unanchored and audited:
        return _not_held(app, audited, allowed_signers, as_json)
    if report.ok and not forged and not unanchored:
        if not as_json:
            signed = sum(c.signed for c in checks)
            against = (f"against {allowed_signers}" if audited is not None
                       else "against the signer lines the journal kept")
            anchored = f"; {len(anchors)} anchor(s) verified" if with_anchors else ""
            app.console.print(f"[green]✓[/] journal intact: {report.events_checked} events, hash chain verified; "
                              f"{signed} signed approval(s) re-verified {escape(against)}, "
                              f"{len(checks) - signed} unsigned (lab){escape(anchored)}")
        return ExitCode.OK
    if unanchored:
        failed = unanchored[0]
        where = f"anchor at event {failed.seq} of run {failed.run_id}" if failed.seq else f"run {failed.run_id}"
        error = JournalCorrupt(f"journal anchor failure: {where}: {failed.reason}"
                               + (f" (and {len(unanchored) - 1} more)" if len(unanchored) > 1 else ""),
                               hint="an unanchored run was driven without --anchor-key, or its anchor was removed; "
                                    "a failed anchor means the history was rewritten: keep the journal as evidence")
        if as_json:
            return error.exit_code
        raise error
    if forged:
        first = forged[0]
        error = JournalCorrupt(f"journal integrity failure at event {first.seq} ({first.kind} of run {first.run_id}): "
                               f"the signature of {first.approver}'s approval of {first.step} does not verify",
                               hint="the approval was edited after it was signed; keep this file as evidence")
        if as_json:
            return error.exit_code
        raise error
    bad = report.first_bad
    where = f"event {bad.seq} ({bad.kind} of run {bad.run_id})" if bad else "the journal"
    error = JournalCorrupt(f"journal integrity failure at {where}: {report.reason}",
                           hint="the journal was edited or truncated outside cutover; keep this file as evidence")
    if as_json:
        return error.exit_code
    raise error




def _anchor_checks(app: App, report: VerifyReport, allowed_signers: Path | None) -> list[AnchorCheck]:
    """The reported runs' anchors, against the auditor's file or each run's environment's."""
    created: dict[str, records.Record] = {}
    if allowed_signers is None:
        with open_journal(app) as store:
            created = {run: records.read(events[0]) for run in report.runs if (events := store.events(run))}
    envs = {run: record.env for run, record in created.items() if isinstance(record, records.RunCreated)}
    signers = signers_for_runs(app.project_path(allowed_signers) if allowed_signers else None, app.project_dir, envs)
    return check_anchors(report.runs, report.anchors, report.chain_hashes, signers)


def _not_held(app: App, findings: list[AuditFinding], signers: Path | None, as_json: bool) -> int:
    """`journal verify --allowed-signers`: the approvals the auditor's file does not vouch for, exit 7."""
    error = JournalCorrupt(f"{len(findings)} approval(s) not held by {signers}",
                           hint="each was counted against the allowed signers the controller read then; keep the "
                                "journal as evidence and find out who listed those keys")
    if as_json:
        return error.exit_code
    for f in findings:
        app.console.print(f"[red]✗[/] event {f.seq}: gate {escape(f.step)} of run {escape(f.run_id)}, "
                          f"approved as {escape(f.approver)}: {escape(f.why)}", soft_wrap=True)
    raise error


@journal.command("init")
@click.argument("url")
@click.option("--controller-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Set the cutover_controller role's password from this file.")
@click.option("--watcher-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Set the cutover_watcher role's password from this file.")
@click.option("--stall-bound", type=click.IntRange(1, 3600), default=STALL_BOUND, show_default=True,
              metavar="SECONDS", help="End a role's session idle this long inside a transaction (a frozen "
                                      "controller); writers wait at most 3x this for the journal head.")
@pass_app
def journal_init(app: App, url: str, controller_password_file: Path | None, watcher_password_file: Path | None,
                 stall_bound: int) -> int:
    """Create the journal in a PostgreSQL database: tables, append-only triggers, controller and watcher roles."""
    from cutover.journal.postgres import init_schema, redacted_url

    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError("journal init is for PostgreSQL URLs", hint="a SQLite journal is created on first use")
    read = (lambda f: f.read_text().strip() if f else None)
    init_schema(url, controller_password=read(controller_password_file), watcher_password=read(watcher_password_file),
                stall_bound=stall_bound)
    app.console.print(f"journal ready at {escape(redacted_url(url))}: roles cutover_controller (appends through "
                      "cutover_append, leases) and cutover_watcher (read-only); stall bound "
                      f"{stall_bound} s. Do not drive runs as the account that ran init: it owns the tables")
    return ExitCode.OK


@journal.command("copy")
@click.argument("source")
@click.argument("destination")
@click.argument("run_ids", nargs=-1)
@pass_app
def journal_copy(app: App, source: str, destination: str, run_ids: tuple[str, ...]) -> int:
    """Copy runs (all by default) from one journal URL to another, each verified first, chains intact."""
    from cutover.app.transfer import export_lines, import_lines

    with open_journal_url(source, app.operator) as src, open_journal_url(destination, app.operator) as dst:
        report = src.verify()
        if not report.ok:
            raise JournalCorrupt(f"the source journal fails verification: {report.reason}",
                                 hint="nothing was copied; keep the source as evidence")
        chosen = [check_run_id(run_id) for run_id in run_ids] or src.runs()
        for run_id in chosen:
            import_lines(dst, list(export_lines(src, run_id)), f"run {run_id}")
    app.console.print(f"copied {len(chosen)} run(s)")
    return ExitCode.OK


@click.command()
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def programme(app: App, env: str, as_json: bool) -> int:
    """Where every SAMU of ENV is served and in which mode, from the effects that stand across all its runs."""
    app.require_project()
    inventory = load_inventory(app.project_dir, env)
    with open_journal(app) as store:
        runs_of_env = environment_runs(store, inventory)
    data = programme_json(inventory, positions(inventory, runs_of_env), runs_of_env)
    if as_json:
        app.emit_json(data)
        return ExitCode.OK
    table = Table(title=f"programme of {inventory.name} ({data['kind']} runs): "
                        f"{data['migrated']}/{data['total']} SAMUs migrated", header_style="bold")
    for column in ("wave", "SAMU", "state", "served by", "mode"):
        table.add_column(column, no_wrap=True)
    table.add_column("put there by (run / step, when: --json)", overflow="fold")  # folds: 80 columns
    for wave in data["waves"]:
        for samu in wave["samus"]:
            by = f"{samu['run_id']} / {samu['step']}" if samu["run_id"] else "-"
            state = samu["state"] + (f" ({samu['held_by']})" if samu["held_by"] else "")
            table.add_row(wave["group"] or "-", samu["code"], state, samu["served_by"], samu["mode"], by)
    app.console.print(table)
    _nights_table(app, data["nights"])
    return ExitCode.OK


def _nights_table(app: App, nights: list[dict[str, Any]]) -> None:
    """The plan: which night (run) moves which wave, in which window."""
    if not nights:
        return
    table = Table(title="nights: which run moves which wave, in which window", header_style="bold")
    for column in ("run", "wave", "state", "window", "opens", "closes", "latest PNR"):
        table.add_column(column, overflow="fold")
    for night in nights:
        window = f"{night['window']} of {night['windows']}" if night["window"] else "-"
        table.add_row(night["run_id"], night["wave"] or "-", night["state"], window, night["start"] or "-",
                      night["end"] or "-", night["latest_pnr"] or "-")
    app.console.print(table)
