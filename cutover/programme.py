"""The programme: where every SAMU of an environment stands, wave by wave, from the journal.

Each run records the wave it moves (group and SAMU hosts, frozen at creation)
and its kind: ``live`` on the production inventory, ``rehearsal`` elsewhere.
Folding an environment's runs oldest first gives each SAMU's position:

- ``not started``: no run has moved it;
- ``in progress``: the latest run moving it is running, paused or failed;
- ``migrated``: a run moving it completed (when, by which run);
- ``rolled back``: the latest run moving it was rolled back.

On production only live runs count; elsewhere rehearsal runs do, and every
position says which kind of run put it there. A live run may not move a
SAMU a completed live run already moved, unless the operator overrides it
with a reason, which is journalled with the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cutover.core.events import Journal
from cutover.core.records import ProgrammeOverride
from cutover.core.state import RunState, RunStatus, fold
from cutover.errors import InputError
from cutover.inventory import Inventory

NOT_STARTED, IN_PROGRESS, MIGRATED, ROLLED_BACK = "not started", "in progress", "migrated", "rolled back"


@dataclass(frozen=True)
class Position:
    host: str
    code: str
    state: str = NOT_STARTED
    run_id: str | None = None
    kind: str | None = None
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "code": self.code, "state": self.state, "run_id": self.run_id,
                "kind": self.kind, "at": self.at}


def environment_runs(journal: Journal, inventory: Inventory) -> list[RunState]:
    """The runs of this environment that count for its programme, oldest first."""
    kind = inventory.run_kind
    states = (fold(journal.events(run_id)) for run_id in journal.runs())
    return [s for s in states if s.env == inventory.name and s.kind == kind and s.wave_samus]


def positions(inventory: Inventory, runs: Iterable[RunState]) -> dict[str, Position]:
    """Every SAMU's position after ``runs`` (oldest first); pure."""
    found = {host: Position(host, samu.code) for host, samu in inventory.samus.items()}
    for run in runs:
        state, at = _position_of(run)
        for host in run.wave_samus:
            if host in found:
                found[host] = Position(host, found[host].code, state, run.run_id, run.kind, at)
    return found


def _position_of(run: RunState) -> tuple[str, str | None]:
    if run.status is RunStatus.COMPLETED:
        return MIGRATED, run.finished_at
    if run.status is RunStatus.ROLLED_BACK:
        return ROLLED_BACK, run.finished_at
    return IN_PROGRESS, run.created_at


def programme_json(inventory: Inventory, found: dict[str, Position]) -> dict[str, Any]:
    waves: list[dict[str, Any]] = [
        {"group": f"wave{number}", "samus": [found[h].to_json() for h in hosts if h in found]}
        for number, hosts in inventory.waves().items()]
    unassigned = [found[h].to_json() for h in inventory.samus if inventory.samus[h].wave is None]
    if unassigned:
        waves.append({"group": None, "samus": unassigned})
    return {"env": inventory.name, "kind": inventory.run_kind, "waves": waves,
            "migrated": sum(p.state == MIGRATED for p in found.values()), "total": len(found)}


def check_programme(journal: Journal, inventory: Inventory, samus: Sequence[str],
                    override_reason: str | None) -> ProgrammeOverride | None:
    """Refuse (exit 2) a live run moving SAMUs a completed live run already moved, unless overridden.

    Returns what to journal about an override, or None.
    """
    if inventory.run_kind != "live" or not samus:
        return None
    found = positions(inventory, environment_runs(journal, inventory))
    moved = [found[h] for h in samus if h in found and found[h].state == MIGRATED]
    if not moved:
        return None
    if not override_reason:
        listed = ", ".join(f"{p.code} ({p.run_id}, {p.at})" for p in moved)
        raise InputError(f"SAMU(s) already moved by a completed live run: {listed}",
                         hint="check the wave (`cutover programme --env ENV`); to move them again on purpose, "
                              "pass --override-programme REASON (journalled)")
    return ProgrammeOverride(override_reason, tuple(p.host for p in moved))
