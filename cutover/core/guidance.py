"""What moves a stopped run on: the command a person types next, named exactly.

A pause is only as good as its hint. Paused at a gate, `cutover resume` would
pause again: the approval is what moves the run on. So each way a run stops
has its own next command, with the run's own ids (gate, step, target) filled
in. Pure: a run's state, and its runbook for a gate's approvers, in; one line
out. The CLI, `status` and the web board all show this line.
"""

from __future__ import annotations

import shlex

from cutover.core.state import RunState, RunStatus, TargetStatus
from cutover.core.steps import GateStep, RunbookSpec


def next_move(state: RunState, runbook: RunbookSpec | None = None, *, signed: bool | None = None) -> str | None:
    """The command(s) that move ``state`` on, or None when nothing is awaited (running, finished).

    ``signed``: whether approvals must be signed (not a lab), so the approve command names ``--key``;
    None when the caller does not know the environment.
    """
    run = state.run_id
    rollback = f"`cutover rollback {run}`"
    if state.status is RunStatus.FAILED:
        if state.mode == "rollback":
            return f"fix the cause, then {rollback} again (it carries on where it stopped)"
        return f"fix the cause, then `cutover resume {run}` (retries what failed), or {rollback}"
    if state.status is not RunStatus.PAUSED:
        return None
    if state.mode == "rollback":
        return f"`cutover resume {run}` carries on rolling back"
    gate = _waiting_gate(state)
    if state.pause_reason == "gate" and gate is not None:
        later = next((w for w in state.windows if w.number > (state.window or 0)), None)  # the fallback night
        no_go = f"; on a no-go, `cutover runs postpone {run} --window {later.number} --reason TEXT`" if later else ""
        return _approve(state, gate, runbook, signed) + f", then `cutover resume {run}`; or {rollback}" + no_go
    if state.pause_reason == "postponed":
        window = next((w for w in state.windows if w.number == state.window), None)
        opens = f" once window {window.number} opens ({window.start})" if window else ""
        return f"`cutover resume {run}`{opens}, or {rollback}"
    if state.pause_reason == "in_doubt" and state.in_doubt():
        where = _where(state.in_doubt()[0].step_id, state.in_doubt()[0].target)
        return (f"check whether it took effect, then `cutover resume {run} --mark-done {where}` (it did) "
                f"or `cutover resume {run} --rerun {where}` (it did not)")
    failed = sorted(str(t.target) for t in state.targets.values() if t.status is TargetStatus.FAILED and t.target)
    if state.pause_reason == "step_failed" and failed:
        return (f"fix the cause, then `cutover resume {run}` (retries {', '.join(failed)}), or "
                f"`cutover resume {run} --exclude {failed[0]}` (leaves it out of the night), or {rollback}")
    if state.pause_reason == "window":
        return f"`cutover resume {run} --override-window REASON` (journalled), or {rollback}"
    return f"`cutover resume {run}` continues, or {rollback}"


def _waiting_gate(state: RunState) -> str | None:
    return next((gid for gid, gate in state.gates.items() if gate.opened_at and not gate.passed_at), None)


def _approve(state: RunState, gate_id: str, runbook: RunbookSpec | None, signed: bool | None) -> str:
    key = " --key YOUR_SSH_KEY" if signed else ""
    step = _gate_step(runbook, gate_id)
    have = state.gates[gate_id].approvers()
    waiting = [a.key for a in step.approvers if a.name not in have] if step is not None else []
    if len(waiting) == 1:
        command = f"`cutover approve {state.run_id} {gate_id} --as {shlex.quote(waiting[0])}{key}`"
    else:
        command = f"`cutover approve {state.run_id} {gate_id} --as ID{key}`"
        command += f" (ID: one of {', '.join(shlex.quote(w) for w in waiting)})" if waiting else ""
    return command + (" (outside a lab, signed with --key YOUR_SSH_KEY)" if signed is None else "")


def _gate_step(runbook: RunbookSpec | None, gate_id: str) -> GateStep | None:
    if runbook is None:
        return None
    step = next((s for s in runbook.steps if s.id == gate_id), None)
    return step if isinstance(step, GateStep) else None


def _where(step_id: str, target: str | None) -> str:
    return f"{step_id}:{target}" if target else step_id
