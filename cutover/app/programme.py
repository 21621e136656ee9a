"""The programme: where every SAMU of an environment stands, folded from the effects that stand.

A SAMU's place has two parts: the platform it is served by (``legacy`` or
``cloud``) and its mode (``nominal`` or ``backup``). Steps declare the effect
they have on each SAMU they run on: ``serves: cloud`` (the repoint), and
``sets_mode: backup`` / ``nominal``. An effect *stands* once its step
succeeded on that SAMU and until a rollback undoes it. Folding the standing
effects of every run of the environment, in the order they took effect,
gives each SAMU's place and the run and step that put it there; an effect
undone simply stops counting, so the place falls back to the one before.
Which run came last says nothing: a junk run (rolled back before acting, or
abandoned) changes no place, and a duplicate night rolled back leaves the
SAMUs where the first night put them.

Each SAMU's state follows:

- ``in progress``: an unfinished run (running, paused, failed) claims it;
- ``migrated``: served by the cloud, nominal;
- ``in backup``: left in backup mode by a run that is over;
- ``not started``: served by legacy, nominal.

On production only live runs count; elsewhere rehearsal runs do. A live run
may not move a SAMU the cloud already serves, unless the operator overrides
it with a reason, which is journalled with the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cutover.core.events import Journal
from cutover.core.records import ProgrammeOverride
from cutover.core.state import RunState, RunStatus, TargetStatus, fold
from cutover.core.windows import window_of
from cutover.errors import InputError
from cutover.model.inventory import Inventory

NOT_STARTED, IN_PROGRESS, MIGRATED, IN_BACKUP = "not started", "in progress", "migrated", "in backup"
LEGACY, CLOUD, NOMINAL, BACKUP = "legacy", "cloud", "nominal", "backup"


@dataclass(frozen=True)
class Effect:
    """One standing effect on a SAMU: which run's step, when, and what it set."""

    value: str  # legacy | cloud (served) or nominal | backup (mode)
    run_id: str
    step: str
    at: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "run_id": self.run_id, "step": self.step, "at": self.at, "kind": self.kind}


@dataclass(frozen=True)
class Position:
    host: str
    code: str
    state: str = NOT_STARTED
    served: Effect | None = None  # None: served by legacy, as before any run
    mode: Effect | None = None  # None: nominal
    holder: str | None = None  # the unfinished run that claims it

    @property
    def platform(self) -> str:
        return self.served.value if self.served else LEGACY

    @property
    def mode_name(self) -> str:
        return self.mode.value if self.mode else NOMINAL

    @property
    def latest(self) -> Effect | None:
        """The effect that last changed this SAMU's place."""
        effects = [e for e in (self.served, self.mode) if e is not None]
        return max(effects, key=lambda e: e.at) if effects else None

    def to_json(self) -> dict[str, Any]:
        latest = self.latest
        return {"host": self.host, "code": self.code, "state": self.state, "served_by": self.platform,
                "mode": self.mode_name, "run_id": latest.run_id if latest else None,
                "step": latest.step if latest else None, "kind": latest.kind if latest else None,
                "at": latest.at if latest else None, "held_by": self.holder,
                "effects": {"served": self.served.to_json() if self.served else None,
                            "mode": self.mode.to_json() if self.mode else None}}


def environment_runs(journal: Journal, inventory: Inventory) -> list[RunState]:
    """The runs of this environment that count for its programme, oldest first (abandoned ones never do)."""
    kind = inventory.run_kind
    states = (fold(journal.events(run_id)) for run_id in journal.runs())
    return [s for s in states if s.env == inventory.name and s.kind == kind and s.status is not RunStatus.ABANDONED]


def standing_effects(runs: Iterable[RunState]) -> list[tuple[str, str, Effect]]:
    """(host, "served" or "mode", effect) for every effect that took place and was not undone, oldest first."""
    found = []
    for run in runs:
        if run.status is RunStatus.ABANDONED:
            continue
        for info in run.steps:
            if not (info.serves or info.sets_mode):
                continue
            for target in run.step_targets(info.id):
                if target.target is None or target.status is not TargetStatus.SUCCEEDED or not target.finished_at:
                    continue
                if info.serves:
                    found.append((target.target, "served", Effect(info.serves, run.run_id, info.id,
                                                                  target.finished_at, run.kind)))
                if info.sets_mode:
                    found.append((target.target, "mode", Effect(info.sets_mode, run.run_id, info.id,
                                                                target.finished_at, run.kind)))
    return sorted(found, key=lambda item: item[2].at)


def positions(inventory: Inventory, runs: Iterable[RunState]) -> dict[str, Position]:
    """Every SAMU's position after ``runs``: the latest standing effect on each part of its place; pure."""
    runs = list(runs)
    served: dict[str, Effect] = {}
    mode: dict[str, Effect] = {}
    for host, part, effect in standing_effects(runs):
        (served if part == "served" else mode)[host] = effect
    holders = {host: run.run_id for run in runs if not run.is_finished() for host in run.claims.samus}
    return {host: _position(host, samu.code, served.get(host), mode.get(host), holders.get(host))
            for host, samu in inventory.samus.items()}


def _position(host: str, code: str, served: Effect | None, mode: Effect | None, holder: str | None) -> Position:
    if holder is not None:
        state = IN_PROGRESS
    elif mode is not None and mode.value == BACKUP:
        state = IN_BACKUP
    else:
        state = MIGRATED if served is not None and served.value == CLOUD else NOT_STARTED
    return Position(host, code, state, served, mode, holder)


def nights(runs: Iterable[RunState]) -> list[dict[str, Any]]:
    """The plan: each run (night) of the environment, its wave and the window it is in; pure.

    A run whose runbook names candidate windows is in one of them (created in
    the first still open, or postponed to a later one); others show their
    window's end alone, or none.
    """
    rows = []
    for run in runs:
        window = window_of(run)
        rows.append({"run_id": run.run_id, "label": run.label, "wave": run.wave_group, "state": run.status.value,
                     "window": window.number if window else None,
                     "windows": len(run.windows),
                     "start": window.start if window else None,
                     "end": window.end if window else run.window_end,
                     "latest_pnr": window.latest_pnr if window else None})
    return sorted(rows, key=lambda row: (row["start"] or row["end"] or "", row["run_id"]))


def programme_json(inventory: Inventory, found: dict[str, Position],
                   runs: Iterable[RunState] = ()) -> dict[str, Any]:
    waves: list[dict[str, Any]] = [
        {"group": f"wave{number}", "samus": [found[h].to_json() for h in hosts if h in found]}
        for number, hosts in inventory.waves().items()]
    unassigned = [found[h].to_json() for h in inventory.samus if inventory.samus[h].wave is None]
    if unassigned:
        waves.append({"group": None, "samus": unassigned})
    return {"env": inventory.name, "kind": inventory.run_kind, "waves": waves,
            "migrated": sum(p.state == MIGRATED for p in found.values()), "total": len(found),
            "nights": nights(runs)}


def check_programme(journal: Journal, inventory: Inventory, samus: Sequence[str],
                    override_reason: str | None) -> ProgrammeOverride | None:
    """Refuse (exit 2) a live run moving SAMUs the cloud already serves (by a live run), unless overridden.

    The same fold as ``cutover programme``: where the standing effects put each
    SAMU, never which run came last. Returns what to journal about an override, or None.
    """
    if inventory.run_kind != "live" or not samus:
        return None
    found = positions(inventory, environment_runs(journal, inventory))
    moved = [found[h] for h in samus if h in found and found[h].platform == CLOUD]
    if not moved:
        return None
    if not override_reason:
        listed = ", ".join(f"{p.code} ({p.served.run_id} {p.served.step}, {p.served.at})"
                           for p in moved if p.served is not None)
        raise InputError(f"SAMU(s) already served by the cloud after a live run: {listed}",
                         hint="check the wave (`cutover programme --env ENV`); to move them again on purpose, "
                              "pass --override-programme REASON (journalled)")
    return ProgrammeOverride(override_reason, tuple(p.host for p in moved))
