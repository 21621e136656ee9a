"""``cutover lab calls``: every call placed in the lab, and whether its record survived.

Two independent counts sit side by side. SIPp, the caller, counts the calls
it placed, those that succeeded (answered, held, hung up, each step answered)
and those that failed and why (its own statistics files, ``cutover.lab.traffic``).
The ledger (``<lab>/ledger.db``), written by the answering agents, lists each
call that reached one: answered by ``legacy``/``cloud``/``local`` or refused
and why, in progress or ended, and at its end whether its record was written.
A call is **lost** when SIPp counts it failed, or when its record is missing
afterwards. The accounting checks each ended answered call's record against
where its SAMU *ends*:

- the SAMU is in backup mode and the record is still in its backup buffer:
  ``pending_in_backup`` (not yet a loss: the return to nominal replays it);
- otherwise the record (its call row and its one intervention) must be in the
  database of the SAMU's current platform exactly once: absent is
  ``records_missing``, more than once is ``records_duplicated``.

Reads happen ledger first, then sites, then platforms: a call is written to
the ledger only after its record is committed, and records are only ever
added, so a snapshot taken while traffic flows never reports a false loss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.lab.tools import samulab
from cutover.lab.traffic import SippStats

EXAMPLES = 10  # call ids shown per problem, enough to start an investigation


@dataclass(frozen=True)
class LedgerCall:
    call_id: str
    samu_code: str
    answered_by: str | None
    lost_reason: str | None
    source: str = "traffic"
    ended: bool = True


@dataclass(frozen=True)
class SiteView:
    mode: str
    platform: str
    pending: frozenset[str]


@dataclass
class SamuAccount:
    placed: int = 0
    answered: int = 0
    lost: int = 0
    records_missing: int = 0
    records_duplicated: int = 0
    pending_in_backup: int = 0
    in_progress: int = 0  # answered, still talking: its record is written at its end


@dataclass
class CallAccount(SamuAccount):
    """What ``lab calls --json`` reports: the whole lab's counts, by SAMU, and detail.

    ``ok`` means nothing lost, missing or duplicated.
    """

    answered_by: Counter[str] = field(default_factory=Counter)
    lost_reasons: Counter[str] = field(default_factory=Counter)
    samus: dict[str, SamuAccount] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=lambda: {"lost": [], "missing": [], "duplicated": []})
    sipp: SippStats | None = None  # SIPp's own count, when SIPp placed the calls
    ledger_placed: int = 0
    ledger_refused: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.records_missing == 0 and self.records_duplicated == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "placed": self.placed, "answered": self.answered, "lost": self.lost,
            "records_missing": self.records_missing, "records_duplicated": self.records_duplicated,
            "pending_in_backup": self.pending_in_backup, "in_progress": self.in_progress, "ok": self.ok,
            "sipp": self.sipp.to_json() if self.sipp is not None else None,
            "ledger": {"calls": self.ledger_placed, "answered": self.answered, "refused": self.ledger_refused,
                       "in_progress": self.in_progress},
            "answered_by": dict(sorted(self.answered_by.items())),
            "lost_reasons": dict(sorted(self.lost_reasons.items())),
            "samus": {code: vars(acc) for code, acc in sorted(self.samus.items())},
            "examples": self.examples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallAccount:
        """The account ``to_json`` wrote (the one ``lab down`` keeps once the platforms are gone)."""
        sipp = data.get("sipp")
        return cls(
            placed=data["placed"], answered=data["answered"], lost=data["lost"],
            records_missing=data["records_missing"], records_duplicated=data["records_duplicated"],
            pending_in_backup=data["pending_in_backup"], in_progress=data["in_progress"],
            answered_by=Counter(data["answered_by"]), lost_reasons=Counter(data["lost_reasons"]),
            samus={code: SamuAccount(**acc) for code, acc in data["samus"].items()}, examples=data["examples"],
            sipp=SippStats(created=sipp["placed"], successful=sipp["successful"], failed=sipp["failed"],
                           in_progress=sipp["in_progress"], retransmissions=sipp["retransmissions"],
                           failed_by=dict(sipp["failed_by"]), files=list(sipp["files"])) if sipp else None,
            ledger_placed=data["ledger"]["calls"], ledger_refused=data["ledger"]["refused"])


def account_calls(lab_dir: Path, sipp: SippStats | None = None) -> CallAccount:
    """Tally the ledger against the sites' buffers and the platforms' databases, next to SIPp's count.

    With ``sipp``: placed is what SIPp placed plus the ledger's other calls
    (test calls); lost is what SIPp counts failed (a refused call is one of
    them: it got a 503) plus the other calls refused. SIPp's statistics are
    read first: a call it counts has reached the ledger by then.
    """
    calls = read_ledger(lab_dir)
    sites = {code: read_site(lab_dir, code) for code in sorted({c.samu_code for c in calls})}
    presence = {name: read_presence(lab_dir, name) for name in samulab.PLATFORMS}
    account = CallAccount(sipp=sipp)
    for call in calls:
        _tally(account, call, sites[call.samu_code], presence)
    if sipp is not None:
        others = sum(1 for c in calls if c.source != SIPP_SOURCE)
        # SIPp writes its statistics every second: while calls flow, the ledger may be a moment ahead
        account.placed = max(sipp.created, len(calls) - others) + others
        account.lost += sipp.failed
    return account


SIPP_SOURCE = "sipp"


def read_ledger(lab_dir: Path) -> list[LedgerCall]:
    conn = samulab.connect(samulab.ledger_db(lab_dir))
    try:
        rows = conn.execute("SELECT call_id, samu_code, answered_by, lost_reason, source, ended_at IS NOT NULL "
                            "FROM calls ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [LedgerCall(call_id, code, by, lost, source, bool(ended)) for call_id, code, by, lost, source, ended in rows]


def read_site(lab_dir: Path, code: str) -> SiteView:
    conn = samulab.connect(samulab.site_db(lab_dir, code))
    try:
        with samulab.read_txn(conn):
            settings = samulab.site_settings(conn)
            pending = conn.execute("SELECT call_id FROM backup_buffer WHERE replayed_to IS NULL").fetchall()
    finally:
        conn.close()
    return SiteView(settings["mode"], settings["platform"], frozenset(r[0] for r in pending))


@dataclass(frozen=True)
class Presence:
    """How many times each call id appears in a platform's calls and interventions tables."""

    calls: Counter[str]
    interventions: Counter[str]

    def copies(self, call_id: str) -> tuple[int, int]:
        return self.calls[call_id], self.interventions[call_id]


def read_presence(lab_dir: Path, name: str) -> Presence:
    # One snapshot of both tables (repeatable read): a record is its call row and its intervention.
    db = samulab.open_platform(lab_dir, name)
    try:
        results = db.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                         "SELECT call_id, count(*) FROM calls GROUP BY call_id;"
                         "SELECT call_id, count(*) FROM interventions GROUP BY call_id; COMMIT;")
    except (samulab.PgError, samulab.PlatformDown) as exc:
        raise samulab.LabError(f"cannot read the {name} platform's database: {exc}",
                               "a platform whose database is down cannot be counted: `cutover lab heal`, "
                               "then count again") from exc
    finally:
        db.close()
    calls, interventions = (Counter({str(call_id): int(n or 0) for call_id, n in r.rows}) for r in results[1:3])
    return Presence(calls, interventions)


def _tally(account: CallAccount, call: LedgerCall, site: SiteView, presence: dict[str, Presence]) -> None:
    samu = account.samus.setdefault(call.samu_code, SamuAccount())
    account.placed += 1
    account.ledger_placed += 1
    samu.placed += 1
    if call.answered_by is None:
        account.ledger_refused += 1
        if account.sipp is None or call.source != SIPP_SOURCE:  # else SIPp counts it failed
            account.lost += 1
        samu.lost += 1
        account.lost_reasons[call.lost_reason or "unknown"] += 1
        _example(account, "lost", call.call_id)
        return
    account.answered += 1
    samu.answered += 1
    account.answered_by[call.answered_by] += 1
    if not call.ended:
        account.in_progress += 1
        samu.in_progress += 1
        return
    if call.lost_reason:
        account.lost_reasons[f"record: {call.lost_reason}"] += 1
    verdict = record_verdict(call.call_id, site, presence[site.platform])
    if verdict == "pending":
        account.pending_in_backup += 1
        samu.pending_in_backup += 1
    elif verdict == "missing":
        account.records_missing += 1
        samu.records_missing += 1
        _example(account, "missing", call.call_id)
    elif verdict == "duplicated":
        account.records_duplicated += 1
        samu.records_duplicated += 1
        _example(account, "duplicated", call.call_id)


def record_verdict(call_id: str, site: SiteView, presence: Presence) -> str:
    """``ok``, ``pending``, ``missing`` or ``duplicated`` for one answered call."""
    if site.mode == "backup" and call_id in site.pending:
        return "pending"
    calls, interventions = presence.copies(call_id)
    if calls == 0 or interventions == 0:
        return "missing"
    if calls > 1 or interventions > 1:
        return "duplicated"
    return "ok"


def _example(account: CallAccount, kind: str, call_id: str) -> None:
    if len(account.examples[kind]) < EXAMPLES:
        account.examples[kind].append(call_id)
