"""A run's hash chain, checked before a command acts on the run or shows it.

``resume``, ``rollback``, ``approve`` and ``status`` fold a run from its events;
an event inserted or edited by hand (an ``auto: true`` approval slipped into the
file) would otherwise be folded like any other. So each of them verifies the
chain first and stops with exit 7 on a break.

Verifying a whole SQLite journal costs about 60 µs an event (a few thousand
events: 0.2 s; a programme's 30,000: 2 s), too much for every ``status``. So
each check starts from the last head verified on this machine (seq and hash,
kept owner-only in ``STATE_DIR/verified-heads.json``): that event must still
hold that hash, and every later event must chain onto it. When that fails, the
whole chain is verified, which names the first bad event; if the whole chain is
intact, the file was replaced on purpose (a journal started afresh, a restore)
and its new head is remembered. A journal without ``verify_since`` (PostgreSQL)
is verified whole each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cutover.core.events import Journal, VerifyReport
from cutover.errors import JournalCorrupt

HEADS_FILE = "verified-heads.json"
PRIVATE = 0o600


@runtime_checkable
class VerifiesSince(Protocol):
    def verify_since(self, since: tuple[int, str], run_id: str | None = None) -> VerifyReport: ...


class VerifiedHeads:
    """The last verified head of each journal, by journal URL (stored as a digest: no password on disk)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: remembered for this process only
        self._memory: dict[str, tuple[int, str]] = {}

    @staticmethod
    def key(url: str) -> str:
        return hashlib.sha256(url.encode("utf-8")).hexdigest()

    def get(self, url: str) -> tuple[int, str] | None:
        key = self.key(url)
        if key not in self._memory:
            found = self._read().get(key)
            if isinstance(found, list) and len(found) == 2 and isinstance(found[0], int) and isinstance(found[1], str):
                self._memory[key] = (found[0], found[1])
        return self._memory.get(key)

    def remember(self, url: str, head: tuple[int, str]) -> None:
        key = self.key(url)
        if self._memory.get(key) == head:
            return
        self._memory[key] = head
        if self.path is not None:
            with contextlib.suppress(OSError):  # a lost checkpoint only costs a full verification next time
                self._write({**self._read(), key: list(head)})

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or unreadable: the next check verifies the whole chain
        return data if isinstance(data, dict) else {}

    def _write(self, heads: dict[str, Any]) -> None:
        assert self.path is not None
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(heads, file)
        os.replace(temporary, self.path)  # atomic: a concurrent reader sees the old file or the new one


def check_run_chain(journal: Journal, run_id: str, heads: VerifiedHeads, url: str) -> VerifyReport:
    """Verify the chain ``run_id`` sits on, from the last verified head when there is one; JournalCorrupt on a break."""
    since = heads.get(url)
    report = None
    if since is not None and isinstance(journal, VerifiesSince):
        report = journal.verify_since(since, run_id)
    if report is None or not report.ok:
        report = journal.verify(run_id)
    if not report.ok:
        raise chain_broken(report, run_id)
    if report.head_seq:
        heads.remember(url, (report.head_seq, report.head_hash))
    return report


def chain_broken(report: VerifyReport, run_id: str) -> JournalCorrupt:
    bad = report.first_bad
    where = f"event {bad.seq} ({bad.kind} of run {bad.run_id})" if bad else "the journal"
    return JournalCorrupt(f"the journal's hash chain is broken at {where}: {report.reason}; "
                          f"nothing was done with run {run_id}",
                          hint="the journal was edited outside cutover: keep the file as evidence and "
                               "`cutover journal verify` to see the first bad event")
