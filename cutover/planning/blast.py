"""Blast radius: which SAMUs each step of a runbook can affect, checked before anything runs.

A platform serves every SAMU of its environment, each SAMU's data a
partition. So a step reaches a SAMU in one of two ways:

- through its **site**: the step runs on the SAMU's host (``for_each``, or a
  play whose ``hosts`` name it);
- through its **partition** on a platform: the step acts on a platform host.
  A platform playbook given ``wave_group`` (an extra variable) acts on that
  group's partitions only; without it, it acts on every SAMU the platform
  serves, which is every SAMU of the environment.

Two rules, for every step not declared ``read_only``:

1. **Stay in the wave.** When the runbook names its ``wave``, no action or
   rollback may reach a SAMU outside it.
2. **Protect before touching a platform.** A step's action may act on the
   partitions of SAMUs only once an earlier step has put them in backup mode
   (``sets_mode: backup``) and no later one has returned them to nominal: a
   SAMU nominal on a platform whose partition is frozen or being moved loses
   its calls.

What cannot be seen: a ``command`` step without ``for_each`` runs on the
controller, and what it does there is not known; it is reported as reaching
nothing. Plays whose ``hosts`` cannot be resolved (a template over a fact)
are taken to reach every host, which errs on the side of refusing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.core.records import Claims
from cutover.errors import Problem, ValidationError
from cutover.executors.playbooks import group_hosts, playbook_hosts
from cutover.model.inventory import Inventory
from cutover.model.runbook import Action as ModelAction
from cutover.model.runbook import GateStep, LoadedRunbook, PlaybookAction

PLATFORMS_GROUP = "platforms"
SCOPE_VAR = "wave_group"  # the extra variable that limits a platform playbook to one group's partitions


@dataclass(frozen=True)
class Reach:
    """What one action of a step can touch: SAMU hosts through their site, and through their partition."""

    sites: frozenset[str] = frozenset()
    partitions: frozenset[str] = frozenset()
    platforms: frozenset[str] = frozenset()

    @property
    def samus(self) -> frozenset[str]:
        return self.sites | self.partitions

    def to_json(self, inventory: Inventory) -> dict[str, Any]:
        return {"samus": _codes(inventory, self.samus), "sites": _codes(inventory, self.sites),
                "partitions": _codes(inventory, self.partitions), "platforms": sorted(self.platforms)}


@dataclass(frozen=True)
class StepReach:
    step: str
    read_only: bool
    action: Reach
    rollback: Reach


def step_reaches(loaded: LoadedRunbook, inventory: Inventory, project_dir: Path) -> list[StepReach]:
    """The reach of every action step's action and rollback (gates reach nothing)."""
    reaches = []
    for step in loaded.runbook.steps:
        if isinstance(step, GateStep):
            continue
        targets = inventory.resolve_targets(step.for_each) if step.for_each else None
        rollback = action_reach(step.rollback, targets, inventory, project_dir) if step.rollback else Reach()
        reaches.append(StepReach(step.id, step.read_only,
                                 action_reach(step.action(), targets, inventory, project_dir), rollback))
    return reaches


def action_reach(action: ModelAction, targets: tuple[str, ...] | None, inventory: Inventory, project_dir: Path) -> Reach:
    """Which SAMU sites, partitions and platforms one action can touch."""
    if isinstance(action, PlaybookAction):
        hosts = playbook_hosts(project_dir / "playbooks" / action.playbook, inventory, action.extra_vars)
        if targets is not None:  # --limit: the playbook's hosts among the step's targets
            hosts &= frozenset(targets)
        scope = action.extra_vars.get(SCOPE_VAR)
    else:
        hosts, scope = frozenset(targets or ()), None
    platforms = hosts & frozenset(inventory.groups.get(PLATFORMS_GROUP, ()))
    samus = frozenset(inventory.samus)
    partitions: frozenset[str] = frozenset()
    if platforms:
        partitions = frozenset(group_hosts(inventory, scope)) & samus if isinstance(scope, str) else samus
    return Reach(hosts & samus, partitions, platforms)


# ---------------------------------------------------------------------- the rules


def blast_radius_problems(loaded: LoadedRunbook, inventory: Inventory, reaches: list[StepReach]) -> Iterator[Problem]:
    """Every step that could cut off a SAMU, located in the runbook file."""
    wave = loaded.runbook.wave
    members = frozenset(group_hosts(inventory, wave)) if wave else None
    protected: set[str] = set()
    by_id = {r.step: r for r in reaches}
    for index, step in enumerate(loaded.runbook.steps):
        reach = by_id.get(step.id)
        if reach is None:
            continue
        line = loaded.document.line_of(("steps", index))
        if not reach.read_only:
            yield from _outside_wave(loaded, inventory, step.id, reach, wave, members, line)
            yield from _unprotected(loaded, inventory, step.id, reach.action, protected, line)
        for_each = getattr(step, "for_each", None)
        targets = frozenset(inventory.resolve_targets(for_each)) if for_each else frozenset()
        if getattr(step, "sets_mode", None) == "backup":
            protected |= targets
        elif getattr(step, "sets_mode", None) == "nominal":
            protected -= targets


def _outside_wave(loaded: LoadedRunbook, inventory: Inventory, step_id: str, reach: StepReach, wave: str | None,
                  members: frozenset[str] | None, line: int | None) -> Iterator[Problem]:
    if members is None:
        return
    for what, action in (("action", reach.action), ("rollback", reach.rollback)):
        outside = action.samus - members
        if outside:
            yield Problem(loaded.path, f"step {step_id}: its {what} can reach SAMU(s) outside wave {wave!r}: "
                          f"{_named(inventory, outside)}", line=line, field=f"steps.{step_id}",
                          hint=f"limit it to the wave (for_each: {wave}, or extra_vars {{{SCOPE_VAR}: {wave}}} "
                               "for a platform playbook), or declare it read_only if it changes nothing")


def _unprotected(loaded: LoadedRunbook, inventory: Inventory, step_id: str, action: Reach, protected: set[str],
                 line: int | None) -> Iterator[Problem]:
    at_risk = action.partitions - protected
    if at_risk:
        platforms = ", ".join(sorted(action.platforms))
        yield Problem(loaded.path, f"step {step_id} acts on {platforms} while SAMU(s) it serves are not in backup "
                      f"mode; their calls would be lost: {_named(inventory, at_risk)}", line=line,
                      field=f"steps.{step_id}",
                      hint="put those SAMUs in backup mode in an earlier step (sets_mode: backup), "
                           f"or limit the platform playbook to them (extra_vars {{{SCOPE_VAR}: GROUP}})")


def check_blast_radius(loaded: LoadedRunbook, inventory: Inventory, project_dir: Path) -> list[StepReach]:
    """The steps' reaches; ValidationError (exit 2) naming the SAMUs at risk when a rule is broken."""
    reaches = step_reaches(loaded, inventory, project_dir)
    problems = list(blast_radius_problems(loaded, inventory, reaches))
    if problems:
        raise ValidationError(problems, what="runbook (blast radius)")
    return reaches


def run_claims(reaches: Iterable[StepReach], wave_samus: Iterable[str] = ()) -> Claims:
    """What a run claims at creation: the SAMUs and platform partitions its steps can change, and its wave.

    A read-only step changes nothing, so it claims nothing: two runs may check the same SAMU.
    """
    samus, partitions = set(wave_samus), set()
    for reach in reaches:
        if reach.read_only:
            continue
        for action in (reach.action, reach.rollback):
            samus |= action.samus
            partitions |= {f"{platform}/{host}" for platform in action.platforms for host in action.partitions}
    return Claims(tuple(sorted(samus)), tuple(sorted(partitions)))


def _codes(inventory: Inventory, hosts: Iterable[str]) -> list[str]:
    return sorted(inventory.samus[h].code for h in hosts if h in inventory.samus)


def _named(inventory: Inventory, hosts: Iterable[str]) -> str:
    return ", ".join(f"{inventory.samus[h].code} ({h})" for h in sorted(hosts, key=lambda h: inventory.samus[h].code))
