"""Use-cases over runs: create, drive, roll back, approve, decide, describe.

The CLI calls exactly one of these per command. They hold the rules that are
about *whether* something may happen (the lease, the lab-only auto-approval,
the point of no return, who may approve); the engine holds *how* it happens.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from cutover.app.anchors import anchor_run
from cutover.app.approvals import Override, Proof, SignedApproval, Statement, check_signed
from cutover.app.notify import Notifier
from cutover.app.programme import check_programme
from cutover.app.queries import load_run, runbook_of, secret_digest
from cutover.core import records as r
from cutover.core.actions import Executor, Target
from cutover.core.engine import Approval, DriveOptions, Engine, approval_record, gate_satisfied, steps_after
from cutover.core.events import Event, Journal, LeaseHolder
from cutover.core.journal_rules import lease_staleness
from cutover.core.state import RunState, RunStatus, TargetStatus, caught_up, fold
from cutover.core.steps import Approver, GateStep, RunbookSpec
from cutover.core.text import as_name, name_problem
from cutover.core.windows import first_open_window, next_window, postpone_problem
from cutover.errors import ExitCode, InputError, LeaseHeld, NotFound
from cutover.executors.registry import open_executors
from cutover.journal.leases import current_holder, holder_alive
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor
from cutover.model.runbook import LoadedRunbook
from cutover.model.signers import allowed_signers_path, signers_content, signers_digest
from cutover.planning.blast import run_claims
from cutover.planning.plan import numbered_window, plan_cutover, window_infos
from cutover.planning.validation import CheckedRunbook, check_against

EXIT_FOR_STATUS = {
    RunStatus.COMPLETED: ExitCode.OK,
    RunStatus.PAUSED: ExitCode.PAUSED,
    RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.ROLLED_BACK: ExitCode.ROLLED_BACK,
    RunStatus.RUNNING: ExitCode.ERROR,  # a drive never ends "running"; if it does, say so loudly
    RunStatus.ABANDONED: ExitCode.OK,  # `status` of an abandoned run: it ended as asked
}

HEARTBEAT_SECONDS = 10.0



@dataclass
class EngineHandle:
    """A drive's engine, handed over once it is built and before it drives: the terminal's live board follows it."""

    engine: Engine | None = None  # None until the drive has built it


def new_run_id(runbook_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{as_name(runbook_name)}-{stamp}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is a name (``cutover.core.text``); refused (exit 2) before it can become a path."""
    problem = name_problem(run_id)
    if problem is not None:
        raise InputError(problem, hint="a run id is a name, never a path; `cutover runs` lists the runs")
    return run_id


def create_run(journal: Journal, loaded: LoadedRunbook | CheckedRunbook, inventory: Inventory, *, run_id: str,
               window_end: str | None = None, project_dir: Path | None = None,
               override_programme: str | None = None, label: str | None = None, auto_approve: str | None = None,
               window_risk: str | None = None, window_number: int | None = None) -> None:
    """Validate against the inventory, freeze the plan, and journal the run's creation with its claims.

    A runbook already checked against this inventory and project folder (``check_against``)
    is not checked again. The journal refuses the creation (ClaimHeld, exit 6) while an
    unfinished run holds any SAMU or partition this one can reach: one night per SAMU.
    ``auto_approve``: a lab run's approver for every gate, kept so that `resume` approves as it too.
    ``window_risk``: the reason the operator accepted a window that the night may not fit, and that risk.
    """
    check_run_id(run_id)
    if run_id in journal.runs():
        raise InputError(f"run {run_id!r} already exists", hint=f"continue it with `cutover resume {run_id}`")
    checked = checked_for(loaded, inventory, project_dir)
    loaded = checked.loaded
    redact = Redactor.of(inventory.secrets)
    _check_no_secret_journalled(loaded, redact)
    runbook = loaded.runbook
    windows = window_infos(runbook)
    window = None if window_end else opening_window(loaded, window_number)
    end = window_end or (window.end if window else None) or (runbook.window.end if runbook.window else None)
    wave = r.WaveRef(runbook.wave, tuple(inventory.groups[runbook.wave])) if runbook.wave else None
    override = check_programme(journal, inventory, wave.samus if wave else (), override_programme)
    secret = loaded.secret_names
    # the plan journalled (its titles) is made with each secret parameter masked, never its value
    steps = tuple(replace(planned.info, title=redact(planned.info.title))
                  for planned in plan_cutover(checked.shown_spec, inventory))
    params = {name: secret_digest(run_id, name, str(value)) if name in secret else value
              for name, value in loaded.params.items()}
    created = r.RunCreated(
        runbook=r.RunbookRef(runbook.name, loaded.path, loaded.sha256, loaded.text),
        env=inventory.name, steps=steps, window_end=end, kind=inventory.run_kind, params=params, wave=wave,
        programme_override=override, label=redact(label) if label else label, secret_params=secret or None,
        claims=run_claims(checked.reaches, wave.samus if wave else ()),
        lab=inventory.is_lab, allowed_signers_sha256=signers_digest(allowed_signers_path(inventory.path)),
        auto_approve=auto_approve, window_risk=redact(window_risk) if window_risk else None,
        windows=windows or None, window=window.number if window else None)
    journal.create_run(run_id, created.to_payload())


def checked_for(runbook: LoadedRunbook | CheckedRunbook, inventory: Inventory,
                project_dir: Path | None) -> CheckedRunbook:
    """The runbook checked against this inventory and project folder: as given when it was, else checked now."""
    if isinstance(runbook, CheckedRunbook):
        if runbook.is_for(inventory, project_dir):
            return runbook
        runbook = runbook.loaded
    return check_against(runbook, inventory, project_dir)


def opening_window(loaded: LoadedRunbook, number: int | None = None, *,
                   now: datetime | None = None) -> r.WindowInfo | None:
    """The window a new run goes into: window ``number`` (`run --window N`), else the first still open.

    Refused (exit 2) when that window has closed, or every one has; None when the runbook names none.
    """
    windows, name = window_infos(loaded.runbook), loaded.runbook.name
    moment = now or datetime.now(timezone.utc)
    if number is None:
        if not windows:
            return None
        window = first_open_window(windows, moment)
        if window is None:
            raise InputError(f"every candidate window of runbook {name!r} has closed (the last ended "
                             f"{windows[-1].end})", hint="add the next night to the runbook's `windows:`, "
                                                         "or pass --window-end")
        return window
    chosen = numbered_window(loaded, number)
    if datetime.fromisoformat(chosen.end) <= moment:
        later = first_open_window(windows, moment)
        raise InputError(f"--window {number}: {chosen.describe()} has already closed",
                         hint=f"the first still open is window {later.number}" if later else
                         "every candidate window has closed: add the next night to `windows:`")
    return chosen


def postpone_run(journal: Journal, run_id: str, number: int, reason: str, *,
                 now: datetime | None = None) -> RunState:
    """`cutover runs postpone`: move a run to a later candidate window (journalled), under its lease."""
    if not reason.strip():
        raise InputError("postponing a run needs a reason", hint="--reason TEXT (journalled)")
    moment = now or datetime.now(timezone.utc)
    check_postpone_allowed(load_run(journal, run_id), number, moment)
    holder = current_holder(journal.operator)
    epoch = journal.acquire_lease(run_id, holder)
    journal.fence(run_id, holder, epoch)
    try:
        state = load_run(journal, run_id)  # again, under the lease: a driver may have acted meanwhile
        check_postpone_allowed(state, number, moment)
        record = r.RunPostponed(number, reason.strip(), previous=state.window)
        journal.append(run_id, record.KIND, record.to_payload())
    finally:
        journal.release_lease(run_id, holder)
    return load_run(journal, run_id)


def check_postpone_allowed(state: RunState, number: int, now: datetime) -> None:
    problem = postpone_problem(state, number, now)
    if problem is not None:
        later = next_window(state, now)
        hint = (f"the next window open is {later.describe()}: `cutover runs postpone {state.run_id} "
                f"--window {later.number} --reason TEXT`" if later else "`cutover runs` shows the run's state")
        if "roll it back" in problem:
            hint = f"undo what it did with `cutover rollback {state.run_id}`, then postpone it"
        raise InputError(f"cannot postpone run {state.run_id} to window {number}: {problem}", hint=hint)


def abandon_run(journal: Journal, run_id: str, reason: str) -> RunState:
    """`cutover runs abandon`: end a run that acted on nothing; it frees its claims and counts for nothing.

    Taken under the run's lease, so nobody is driving it meanwhile (LeaseHeld
    otherwise). A run that acted is refused: only a rollback undoes what it did.
    """
    if not reason.strip():
        raise InputError("abandoning a run needs a reason", hint="--reason TEXT (journalled)")
    state = load_run(journal, run_id)
    check_abandon_allowed(state)
    holder = current_holder(journal.operator)
    epoch = journal.acquire_lease(run_id, holder)
    journal.fence(run_id, holder, epoch)
    try:
        state = load_run(journal, run_id)  # again, under the lease: a driver may have acted meanwhile
        check_abandon_allowed(state)
        record = r.RunAbandoned(reason.strip())
        journal.append(run_id, record.KIND, record.to_payload())
    finally:
        journal.release_lease(run_id, holder)
    return load_run(journal, run_id)


def check_abandon_allowed(state: RunState) -> None:
    if state.is_finished():
        raise InputError(f"run {state.run_id} is already {state.status.value}: there is nothing to abandon")
    if state.acted:
        raise InputError(f"run {state.run_id} has acted (steps were started): abandoning it would leave "
                         "their effects standing",
                         hint=f"undo what it did with `cutover rollback {state.run_id}`")


def check_not_abandoned(state: RunState) -> None:
    if state.status is RunStatus.ABANDONED:
        raise InputError(f"run {state.run_id} was abandoned ({state.pause_detail}): it cannot be driven again",
                         hint="start a new run with `cutover run`")


def _check_no_secret_journalled(loaded: LoadedRunbook, redact: Redactor) -> None:
    """Refuse a run whose runbook text or plain parameters hold a secret: the journal keeps both verbatim.

    They are kept to re-run exactly the same commands at resume, so they cannot
    be redacted: the inventory's secret values are refused in the text, and
    anything the redactor would mask (a vault value, ``password=...``) in a
    parameter not declared ``secret: true``.
    """
    leaked = [value for value in redact.secrets if value in loaded.text]
    if leaked:
        raise InputError(f"runbook {loaded.path} holds the value of a secret inventory variable",
                         hint="name the variable instead (a playbook's extra vars), or pass it as a `secret: true` "
                              "parameter")
    for name, value in loaded.params.items():
        if name not in loaded.secret_names and redact(str(value)) != str(value):
            raise InputError(f"parameter {name!r} holds a secret (a vault value or a credential's shape), and "
                             "parameters are journalled",
                             hint=f"declare it `secret: true` under the runbook's params: (journalled as a digest, "
                                  f"given again with --param {name}=VALUE at resume and rollback)")


def auto_approver(state: RunState, inventory: Inventory, given: str | None) -> str | None:
    """Who approves a resumed run's gates automatically: as given, else as the lab run was created with.

    The journalled one counts only for a run created as a lab run (its marker is fixed at creation).
    """
    if given is not None:
        return given
    return state.auto_approve if state.lab else None


def check_auto_approve(inventory: Inventory, name: str | None, state: RunState | None = None) -> None:
    """--auto-approve only on a lab: the inventory's marker for a new run, the run's own marker afterwards."""
    if not name:
        return
    if state is not None and not state.lab:
        raise InputError(
            f"--auto-approve is refused on run {state.run_id}: it was not created as a lab run",
            hint="whether a run is a lab run is fixed when it is created, whatever the inventory says now; "
                 "its gates are approved by people: `cutover approve RUN STEP --as ID --key KEY`")
    if not inventory.is_lab:
        raise InputError(
            f"--auto-approve is refused on inventory {inventory.name!r}: it is not marked as a lab",
            hint="gates of a real environment are approved by people: `cutover approve RUN STEP --as NAME`")


@dataclass(frozen=True)
class Decision:
    """An operator's decision about an in-doubt target: it took effect ("done") or must be re-run."""

    step: str
    target: Target
    decision: str  # done | rerun

    @classmethod
    def parse(cls, text: str, decision: str) -> Decision:
        step, _, target = text.partition(":")
        return cls(step, target or None, decision)


@contextmanager
def driving(journal: Journal, run_id: str, *, take_over: bool = False, heartbeat: float = HEARTBEAT_SECONDS,
            on_lost: Callable[[LeaseHeld], None] = lambda _: None,
            anchor_key: str | None = None) -> Iterator[LeaseHolder]:
    """Hold the run's lease for the duration of a drive: fenced appends, a heartbeat, released at the end.

    Fencing makes the journal refuse this controller's appends once another has
    taken the run over; the heartbeat notices it sooner and calls ``on_lost``
    (the engine then starts nothing more and cancels what it runs). A drive
    that ends with an outcome is anchored with ``anchor_key`` (cutover.app.anchors)
    while the lease is still held, so a fenced zombie cannot anchor.
    """
    holder = current_holder(journal.operator)
    epoch = journal.acquire_lease(run_id, holder, take_over=take_over)
    journal.fence(run_id, holder, epoch)
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat, args=(journal, run_id, holder, stop, on_lost, heartbeat), daemon=True,
                              name="lease-heartbeat")
    thread.start()
    try:
        yield holder
        if anchor_key is not None:
            anchor_run(journal, run_id, Path(anchor_key))
    finally:
        stop.set()
        thread.join(timeout=2)
        try:
            journal.release_lease(run_id, holder)
        except LeaseHeld:
            pass  # someone took the run over from us (we looked stale); the journal records it


def _heartbeat(journal: Journal, run_id: str, holder: LeaseHolder, stop: threading.Event,
               on_lost: Callable[[LeaseHeld], None], period: float) -> None:
    while not stop.wait(period):
        try:
            journal.heartbeat(run_id, holder)
        except LeaseHeld as lost:
            on_lost(lost)
            return
        except Exception:  # noqa: BLE001 - a missed heartbeat (busy disk) must not kill the drive; fencing still holds
            pass


def drive_run(journal: Journal, run_id: str, executors: Mapping[str, Executor], options: DriveOptions, *,
              command: str = "run", take_over: bool = False, decisions: tuple[Decision, ...] = (),
              exclude: tuple[str, ...] = (), engine_handle: EngineHandle | None = None,
              heartbeat: float = HEARTBEAT_SECONDS, notifier: Notifier | None = None,
              state: RunState | None = None, spec: RunbookSpec | None = None) -> RunStatus:
    """Drive a run forward (run/resume) under its lease.

    ``state`` and ``spec``: the run and its runbook as the caller has them already
    (folded, converted); the run is folded once a drive, then followed event by event.
    """
    state = current(journal, run_id, state)
    check_not_abandoned(state)
    _check_decisions(state, decisions)
    _check_exclusions(state, exclude)
    with _engine_under_lease(journal, state, executors, options, take_over=take_over, heartbeat=heartbeat,
                             notifier=notifier, spec=spec) as engine:
        for decision in decisions:
            engine.record(r.InDoubtResolved(decision.step, decision.target, decision.decision, "operator decision"))
        for target in exclude:
            engine.record(r.TargetExcluded(target, "operator decision"))
        if engine_handle is not None:
            engine_handle.engine = engine
        return engine.drive(command)


def current(journal: Journal, run_id: str, state: RunState | None = None) -> RunState:
    """The run as it stands: folded from its journal, or ``state`` brought up to date (not folded again)."""
    return load_run(journal, run_id) if state is None else caught_up(state, journal.events(run_id))


@contextmanager
def notifying(journal: Journal, state: RunState, options: DriveOptions,
              notifier: Notifier | None) -> Iterator[DriveOptions]:
    """The drive's options with the notifier listening to its events; closed before the lease is released."""
    if not notifier:
        yield options
        return
    notifier.start(journal, state, auto_approved=bool(options.auto_approve))
    shown = options.on_event

    def on_event(event: Event) -> None:
        notifier.observe(event)
        if shown is not None:
            shown(event)

    try:
        yield replace(options, on_event=on_event)
    finally:
        notifier.close()


def wait_as_standby(journal: Journal, run_id: str, *, stale_after: float, poll: float,
                    tell: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> bool:
    """`resume --standby`: wait until the run's driver is gone (lease free, holder dead, heartbeat stale).

    Returns False when the run finished meanwhile (nothing to take over).
    """
    last = ""
    while True:
        state = load_run(journal, run_id)
        if state.is_finished():
            tell(f"run {run_id} is {state.status.value}: nothing to take over")
            return False
        holder, heartbeat_at = journal.lease_state(run_id)
        if holder is None:
            return True
        gone = lease_staleness(holder, heartbeat_at, stale_after, holder_alive)
        if gone:
            tell(f"the driver is gone ({gone}): taking over")
            return True
        line = f"standby: {holder.describe()} drives run {run_id}; last heartbeat {heartbeat_at}"
        if line != last:
            tell(line)
            last = line
        sleep(poll)


@dataclass(frozen=True)
class Place:
    """Where a use-case works: the project (playbooks, inventories) and the state directory (artifacts)."""

    project_dir: Path
    state_dir: Path


def start_run(journal: Journal, checked: CheckedRunbook, place: Place, options: DriveOptions, *,
              run_id: str, window_end: str | None = None, override_programme: str | None = None,
              label: str | None = None, window_risk: str | None = None, window_number: int | None = None,
              heartbeat: float = HEARTBEAT_SECONDS, engine_handle: EngineHandle | None = None,
              created: Callable[[str], None] = lambda _: None, notifier: Notifier | None = None) -> RunStatus:
    """`cutover run`: executors built and checked, the run created, driven under its lease, executors closed.

    ``checked``: the runbook as the command checked it against its inventory (not checked again).
    """
    loaded, inventory, spec = checked.loaded, checked.inventory, checked.spec
    if options.until is not None:
        spec.step(options.until)  # an unknown step is refused before anything runs
    options = replace(options, secret_params={name: str(loaded.params[name]) for name in loaded.secret_names})
    with open_executors(place.project_dir, inventory, place.state_dir, spec,
                        secrets=options.secret_params.values()) as executors:
        create_run(journal, checked, inventory, run_id=run_id, window_end=window_end, project_dir=place.project_dir,
                   override_programme=override_programme, label=label, auto_approve=options.auto_approve,
                   window_risk=window_risk, window_number=window_number)
        created(run_id)
        return drive_run(journal, run_id, executors, options, command="run", engine_handle=engine_handle,
                         heartbeat=heartbeat, notifier=notifier, spec=spec)


def resume_run(journal: Journal, run_id: str, inventory: Inventory, place: Place, options: DriveOptions, *,
               take_over: bool = False, decisions: tuple[Decision, ...] = (), exclude: tuple[str, ...] = (),
               heartbeat: float = HEARTBEAT_SECONDS, engine_handle: EngineHandle | None = None,
               notifier: Notifier | None = None, state: RunState | None = None) -> RunStatus:
    """`cutover resume`: the run's own runbook and parameters, from its journal, driven on.

    ``state``: the run as the command has folded it already (brought up to date, not folded again).
    """
    check_run_id(run_id)  # its executors name their artifacts after it
    state = current(journal, run_id, state)
    spec = runbook_of(state, options.secret_params)  # a secret parameter missing: refused here
    if options.until is not None:
        spec.step(options.until)
    with open_executors(place.project_dir, inventory, place.state_dir, spec,
                        secrets=options.secret_params.values()) as executors:
        return drive_run(journal, run_id, executors, options, command="resume", take_over=take_over,
                         decisions=decisions, exclude=exclude, engine_handle=engine_handle, heartbeat=heartbeat,
                         notifier=notifier, state=state, spec=spec)


def roll_back_run(journal: Journal, run_id: str, inventory: Inventory, place: Place, options: DriveOptions, *,
                  to: str | None = None, take_over: bool = False, heartbeat: float = HEARTBEAT_SECONDS,
                  engine_handle: EngineHandle | None = None, notifier: Notifier | None = None,
                  state: RunState | None = None) -> RunStatus:
    """`cutover rollback`: undo the run's later steps, newest first, under its lease.

    ``state``: the run as the command has folded it already (brought up to date, not folded again).
    """
    check_run_id(run_id)  # its executors name their artifacts after it
    state = current(journal, run_id, state)
    spec = runbook_of(state, options.secret_params)
    with open_executors(place.project_dir, inventory, place.state_dir, spec,
                        secrets=options.secret_params.values()) as executors:
        return rollback_run(journal, run_id, executors, options, to=to, take_over=take_over,
                            engine_handle=engine_handle, heartbeat=heartbeat, notifier=notifier, state=state,
                            spec=spec)


def rollback_run(journal: Journal, run_id: str, executors: Mapping[str, Executor], options: DriveOptions, *,
                 to: str | None = None, take_over: bool = False, engine_handle: EngineHandle | None = None,
                 heartbeat: float = HEARTBEAT_SECONDS, notifier: Notifier | None = None,
                 state: RunState | None = None, spec: RunbookSpec | None = None) -> RunStatus:
    """Roll a run back to the rollback point after step ``to`` (or to the very start).

    ``state`` and ``spec``: the run and its runbook as the caller has them already (folded, converted).
    """
    state = current(journal, run_id, state)
    check_not_abandoned(state)
    check_rollback_allowed(state, to)
    with _engine_under_lease(journal, state, executors, options, take_over=take_over, heartbeat=heartbeat,
                             notifier=notifier, spec=spec) as engine:
        if engine_handle is not None:
            engine_handle.engine = engine
        return engine.roll_back(to)


@contextmanager
def _engine_under_lease(journal: Journal, state: RunState, executors: Mapping[str, Executor], options: DriveOptions,
                        *, take_over: bool, heartbeat: float, notifier: Notifier | None,
                        spec: RunbookSpec | None) -> Iterator[Engine]:
    """The run's engine, under the run's lease (a lease lost stops it) with the notifier listening to it.

    The engine follows ``state`` from the events since (the lease's among them): the run is not folded again.
    """
    lost = _LostLease()
    with driving(journal, state.run_id, take_over=take_over, heartbeat=heartbeat, on_lost=lost,
                 anchor_key=options.anchor_key), \
            notifying(journal, state, options, notifier) as options:
        runbook = spec if spec is not None else runbook_of(state, options.secret_params)
        engine = lost.engine = Engine(journal, state.run_id, runbook, executors, options, state=state)
        yield engine


class _LostLease:
    """The heartbeat's word that the lease is gone, passed on to the engine driving the run."""

    engine: Engine | None = None

    def __call__(self, lost: LeaseHeld) -> None:
        if self.engine is not None:
            self.engine.lose_lease(lost)


def check_rollback_allowed(state: RunState, to: str | None) -> None:
    """Refuse, before anything changes, a rollback that would rewrite a committed night or undo nothing.

    Past the point of no return the night is committed: a completed run that
    passed it is never rolled back, and a run under way only back to the PNR
    itself (undoing what followed it), never to a step after it. A completed
    run is never relabelled rolled back when no step after ``to`` has an
    effect to undo.
    """
    ids = [s.id for s in state.steps]
    if to is not None and to not in ids:
        raise NotFound(f"run {state.run_id} has no step {to!r}", hint=f"steps: {', '.join(ids)}")
    if to is not None and to not in state.completed:
        raise InputError(f"{to!r} is not a rollback point of run {state.run_id}",
                         hint=f"rollback points: {', '.join(state.completed) or 'none yet'}")
    pnr = state.point_of_no_return_passed
    if pnr is not None and state.status is RunStatus.COMPLETED:
        raise InputError(f"run {state.run_id} completed past its point of no return ({pnr}): it is committed, "
                         "and rolling it back is refused; nothing was changed",
                         hint="put things right forward, with a new run")
    if pnr is not None and (to is None or ids.index(to) < ids.index(pnr)):
        raise InputError(
            f"the point of no return ({pnr}) has been passed: rolling back before it is refused; nothing was changed",
            hint=f"roll back to the point of no return itself: `cutover rollback {state.run_id} --to {pnr}`")
    if pnr is not None and to is not None and ids.index(to) > ids.index(pnr):
        raise InputError(
            f"{to} comes after the point of no return ({pnr}): rolling back to it is refused; nothing was changed",
            hint=f"past the point of no return, only `cutover rollback {state.run_id} --to {pnr}` undoes what followed it")
    if state.status is RunStatus.COMPLETED and not any(
            info.has_rollback and info.id in state.completed for info in steps_after(state, to)):
        raise InputError(f"run {state.run_id} is completed and no step after {to or 'its start'} has an effect to "
                         "undo: a rollback would only relabel it; nothing was changed")


def open_gate(state: RunState, step_id: str, approver: str) -> tuple[GateStep, Approver]:
    """The gate ``step_id``, open and waiting for ``approver``; InputError saying why not otherwise."""
    runbook = runbook_of(state)
    step = runbook.step(step_id)
    if not isinstance(step, GateStep):
        raise InputError(f"step {step_id!r} is not a gate", hint=_gates_hint(runbook))
    listed = step.approver(approver)
    if listed is None:
        raise InputError(f"{approver!r} is not an approver of gate {step_id}",
                         hint=f"approvers: {', '.join(a.label for a in step.approvers)}")
    gate = state.gates[step_id]
    if gate.passed_at is not None:
        raise InputError(f"gate {step_id!r} was already passed at {gate.passed_at}")
    if gate.opened_at is None:
        raise InputError(f"gate {step_id!r} is not open yet: approvals are given when the run reaches it",
                         hint="`cutover status` shows where the run is")
    if listed.name in gate.approvers():
        raise InputError(f"{listed.name} has already approved gate {step_id!r}")
    return step, listed


def approve_gate(journal: Journal, run_id: str, step_id: str, approval: Approval, inventory: Inventory) -> RunState:
    """Record one approval of an open gate; returns the run's new state.

    Outside a lab, only a signed approval is counted: it must verify against the
    inventory's allowed signers and be for this run and gate (cutover.app.approvals).
    """
    state = load_run(journal, run_id)
    step, listed = open_gate(state, step_id, approval.approver)
    if approval.signature is not None:
        approval = verified(approval, journal, run_id, step_id, listed, inventory)
    elif not state.lab:
        raise InputError(f"run {run_id} was not created as a lab run: an approval must be signed",
                         hint=f"`cutover approve {run_id} {step_id} --as {listed.key} --key YOUR_SSH_KEY` "
                              "(a run's lab marker is fixed at its creation, whatever the inventory says now)")
    record = approval_record(step, approval)
    journal.append(run_id, record.KIND, record.to_payload())
    return load_run(journal, run_id)


def verified(approval: Approval, journal: Journal, run_id: str, step_id: str, listed: Approver,
             inventory: Inventory) -> Approval:
    """The approval with its proof, once its signature and statement are checked (InputError otherwise)."""
    statement, proof = _signature_checked(journal, run_id, step_id, listed, approval, inventory)
    assert listed.id is not None  # refused above without one
    return Approval(listed.id, statement.reason, proof.statement, proof.signature, proof.signers)


def _signature_checked(journal: Journal, run_id: str, step_id: str, listed: Approver, approval: Approval,
                       inventory: Inventory, override: Override | None = None) -> tuple[Statement, Proof]:
    """A signed approval (or ``override``) checked: for this run, gate and approver, against the run's signers."""
    if listed.id is None:
        raise InputError(f"approver {listed.name!r} of gate {step_id} has no id: a signed "
                         f"{'override' if override else 'approval'} names an id",
                         hint="give each approver an `id:` in the runbook")
    signed = SignedApproval(approval.statement or "", approval.signature or "")
    events = journal.events(run_id)
    signers_file = allowed_signers_path(inventory.path)
    return check_signed(signed, run_id=run_id, step=step_id, approver_id=listed.id, events=events,
                        signers_file=signers_file, signers_text=anchored_signers(fold(events), signers_file),
                        override=override)


def anchored_signers(state: RunState, signers_file: Path) -> str:
    """The allowed signers' text, read once, when it is the file the run was created with (same sha256).

    Checking against whatever file the current project folder holds would let a copy of
    the inventory with another key listed (``--project-dir``) make its own approvals count.
    The text checked is the text verified against (no second read for the file to change in between).
    """
    anchored = state.allowed_signers_sha256
    if anchored is None:
        raise InputError(f"run {state.run_id} was created before cutover fixed a run's allowed signers at its "
                         "creation: a signed approval cannot be checked against them",
                         hint=f"roll it back (`cutover rollback {state.run_id}`) and start a new run")
    content = signers_content(signers_file)
    found = hashlib.sha256(content).hexdigest()
    if found != anchored:
        raise InputError(f"{signers_file} is not the allowed_signers run {state.run_id} was created with "
                         f"(sha256 {found[:12]}…, the run's is {anchored[:12]}…): the approval is refused",
                         hint="approvals are checked against the signers fixed when the run was created: run from "
                              "the project folder the run was created from, with its allowed_signers unchanged")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{signers_file} is not UTF-8 text", hint="an allowed-signers file is text") from exc


def gate_is_satisfied(state: RunState, step_id: str) -> bool:
    spec = runbook_of(state)
    step = spec.step(step_id)
    return isinstance(step, GateStep) and gate_satisfied(step, state, spec.criteria_at(step_id))


def criterion_to_override(state: RunState, step_id: str, criterion: str, approver: str) -> tuple[Approver, Override]:
    """What an override of ``criterion`` at gate ``step_id`` covers (its latest measured value), and by whom.

    Refused (InputError) unless the gate is open, the approver holds one of its
    required roles (any of its approvers when it names none), and the criterion
    is a blocking one whose latest measurement failed.
    """
    spec = runbook_of(state)
    step = spec.step(step_id)
    if not isinstance(step, GateStep):
        raise InputError(f"step {step_id!r} is not a gate", hint=_gates_hint(spec))
    gate = state.gates[step_id]
    if gate.opened_at is None or gate.passed_at is not None:
        raise InputError(f"gate {step_id!r} is {'passed' if gate.passed_at else 'not open yet'}: nothing to override",
                         hint="`cutover status` shows where the run is")
    listed = step.approver(approver)
    if listed is None:
        raise InputError(f"{approver!r} is not an approver of gate {step_id}",
                         hint=f"approvers: {', '.join(a.label for a in step.approvers)}")
    if step.required_roles and listed.role not in step.required_roles:
        raise InputError(f"{listed.label} ({listed.role}) may not override a criterion of gate {step_id}: it takes "
                         f"an approver of a required role ({', '.join(step.required_roles)})",
                         hint="ask " + ", ".join(a.label for a in step.approvers if a.role in step.required_roles))
    weighed = {c.id: c for c in spec.criteria_at(step_id)}
    if criterion not in weighed:
        raise InputError(f"gate {step_id} weighs no criterion {criterion!r}",
                         hint=f"criteria: {', '.join(weighed) or 'none'}")
    latest = gate.criteria.get(criterion)
    if latest is None or latest.passed or not weighed[criterion].blocking:
        why = "it was not measured yet" if latest is None else "it passed" if latest.passed else "it is advisory"
        raise InputError(f"criterion {criterion} of gate {step_id} needs no override: {why}",
                         hint="an override is for a failed blocking criterion")
    return listed, Override(criterion, latest.value)


def override_criterion(journal: Journal, run_id: str, step_id: str, criterion: str, approval: Approval,
                       inventory: Inventory) -> RunState:
    """Record an approver's override of a failed blocking criterion: signed outside a lab, like an approval."""
    state = load_run(journal, run_id)
    listed, override = criterion_to_override(state, step_id, criterion, approval.approver)
    reason: str = approval.reason
    proof: tuple[str | None, str | None, str | None] = (None, None, None)
    if approval.signature is not None:
        reason, proof = _override_proof(journal, run_id, step_id, listed, override, approval, inventory)
    elif not state.lab:
        raise InputError(f"run {run_id} was not created as a lab run: an override must be signed",
                         hint=f"`cutover approve {run_id} {step_id} --as {listed.key} --override {criterion} "
                              "--reason TEXT --key YOUR_SSH_KEY`")
    if not reason.strip():
        raise InputError("an override needs a reason", hint="--reason TEXT: why the gate may open despite it")
    record = r.CriterionOverridden(step_id, criterion, override.value, reason, listed.name, listed.role,
                                   listed.id, *proof)
    journal.append(run_id, record.KIND, record.to_payload())
    return load_run(journal, run_id)


def _override_proof(journal: Journal, run_id: str, step_id: str, listed: Approver, override: Override,
                    approval: Approval, inventory: Inventory) -> tuple[str, tuple[str | None, str | None, str | None]]:
    """The signed override checked (this run, gate, approver, criterion and value): its reason and proof."""
    statement, checked = _signature_checked(journal, run_id, step_id, listed, approval, inventory, override)
    if approval.reason and statement.reason != approval.reason:
        raise InputError("the signed statement gives another reason than --reason", hint="sign the reason given here")
    return statement.reason, (checked.statement, checked.signature, checked.signers)


def _gates_hint(runbook: RunbookSpec) -> str:
    return "gates: " + ", ".join(s.id for s in runbook.gates())


def _check_decisions(state: RunState, decisions: tuple[Decision, ...]) -> None:
    for decision in decisions:
        target = state.targets.get((decision.step, decision.target))
        if target is None:
            raise NotFound(f"no step x target {decision.step}:{decision.target or ''} in run {state.run_id}")
        if target.status is not TargetStatus.IN_DOUBT:
            raise InputError(f"{decision.step}:{decision.target or ''} is {target.status.value}, not in doubt",
                             hint="only in-doubt targets take --mark-done / --rerun")


def _check_exclusions(state: RunState, exclude: tuple[str, ...]) -> None:
    known = {t for s in state.steps for t in (s.targets or ())}
    for target in exclude:
        if target not in known:
            raise NotFound(f"{target!r} is not a target of run {state.run_id}")
