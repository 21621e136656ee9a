"""One night per SAMU: the claims a run holds while it is unfinished, and who holds what.

A run claims, when it is created, every SAMU its blast radius can reach and
every platform partition it can act on (``cutover.planning.blast`` computes them; the
run's wave is claimed too). The claims are part of its ``run_created`` event,
and each journal writes that event in the same transaction as it checks them
against the other runs (``Journal.create_run``), so two runs created at the
same instant cannot both take a SAMU.

A claim holds while its run is unfinished: running, paused, or failed and not
rolled back. It ends when the run completes, is rolled back or is abandoned;
the status is folded from the run's events, so the rule needs nothing but the
journal. Claims are per environment: SAMU 01 of the lab and SAMU 01 of
production are not the same place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cutover.core import records as r
from cutover.core.events import Event
from cutover.core.state import RunState, fold
from cutover.errors import ClaimHeld

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass


@dataclass(frozen=True)
class Holder:
    """An unfinished run whose claims overlap a new run's, and what they share."""

    state: RunState
    samus: tuple[str, ...]
    partitions: tuple[str, ...]


def claims_of(created: r.RunCreated) -> r.Claims:
    """A run's claims; a run created before claims existed claims its wave."""
    return created.claims if created.claims is not None else r.Claims(created.wave.samus if created.wave else ())


def claim_keys(created: r.RunCreated) -> frozenset[str]:
    """What a run's creation claims, as keys comparable across runs (scoped by environment)."""
    claims = claims_of(created)
    return frozenset({f"{created.env}\0samu\0{h}" for h in claims.samus}
                     | {f"{created.env}\0partition\0{p}" for p in claims.partitions})


def overlapping(new: Mapping[str, Any], creations: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The runs (id, run_created payload) whose claims share a key with ``new``'s payload; cheap, no fold."""
    mine = claim_keys(r.RunCreated.from_payload(new))
    if not mine:
        return []
    return [run_id for run_id, payload in creations if claim_keys(r.RunCreated.from_payload(payload)) & mine]


def holder(new: Mapping[str, Any], candidates: Iterable[str], events_of: Callable[[str], list[Event]]) -> Holder | None:
    """The first unfinished run among ``candidates`` (already known to overlap ``new``), or None."""
    claims = claims_of(r.RunCreated.from_payload(new))
    for run_id in candidates:
        state = fold(events_of(run_id))
        if state.is_finished():
            continue
        return Holder(state, tuple(sorted(set(claims.samus) & set(state.claims.samus))),
                      tuple(sorted(set(claims.partitions) & set(state.claims.partitions))))
    return None


def check_claims(run_id: str, new: Mapping[str, Any], creations: Iterable[tuple[str, Mapping[str, Any]]],
                 events_of: Callable[[str], list[Event]]) -> None:
    """Refuse (ClaimHeld, exit 6) creating ``run_id`` while an unfinished run holds any of its claims.

    ``creations`` are the other runs' ``run_created`` payloads; ``events_of``
    reads a run's events. Journals call this inside the transaction that
    appends the new run's creation.
    """
    found = holder(new, overlapping(new, creations), events_of)
    if found is not None:
        raise refusal(run_id, found)


def refusal(run_id: str, found: Holder) -> ClaimHeld:
    state = found.state
    label = f" ({state.label})" if state.label else ""
    what = ", ".join(found.samus) or ", ".join(found.partitions) or "its SAMUs"
    return ClaimHeld(
        f"run {run_id} was not created: run {state.run_id}{label} holds {what}; "
        f"it is {_state_words(state)}, created by {state.created_by} at {state.created_at}",
        hint=f"one night acts on a SAMU at a time: finish run {state.run_id} (`cutover resume {state.run_id}`), "
             f"roll it back (`cutover rollback {state.run_id}`) or, if it acted on nothing, "
             f"`cutover runs abandon {state.run_id} --reason TEXT`")


def _state_words(state: RunState) -> str:
    if state.pause_reason and state.pause_reason != state.status.value:
        return f"{state.status.value} ({state.pause_reason})"
    return state.status.value
