"""Accepted violations: who applied infrastructure that breaks the policy, when, and why.

``infra preview|up --accept-violations REASON`` lets an operator go on despite
violations; the decision is recorded twice, before Pulumi is called:

- in ``STATE_DIR/infra-acceptances.jsonl``, an append-only local audit file
  (0600): one JSON line per decision with the time, operator, host, command,
  environment, reason, the policy file's digest and every violation (rule,
  resource); each line carries the SHA-256 of the line before it, so an edit
  or a deleted line shows (``verify_acceptances``);
- in the Pulumi update itself: the reason becomes the update's message, which
  the backend keeps in the stack's history (``pulumi stack history``), next to
  what was applied, on every machine that uses the stack.

(Plain data and files: no Pulumi.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.errors import InputError, JournalCorrupt
from cutover.infra.compliance import CheckReport

AUDIT_FILE = "infra-acceptances.jsonl"
GENESIS = "0" * 64
MIN_REASON = 10


@dataclass(frozen=True)
class Acceptance:
    command: str
    env: str
    operator: str
    reason: str


def require_reason(reason: str) -> str:
    text = reason.strip()
    if len(text) < MIN_REASON:
        raise InputError(f"--accept-violations needs a reason a reviewer can judge (got {reason!r})",
                         hint='e.g. --accept-violations "CHG-1234: portal open until the partners\' VPN is up"')
    return text


def update_message(acceptance: Acceptance, report: CheckReport) -> str:
    """The Pulumi update message: the stack's history then says what was accepted and why."""
    rules = sorted({v.rule for v in report.violations} | {s.rule for s in report.expired})
    return (f"cutover: {len(report.violations) + len(report.expired)} policy violation(s) accepted by "
            f"{acceptance.operator} ({', '.join(rules)}): {acceptance.reason}")


def record_acceptance(state_dir: Path, acceptance: Acceptance, report: CheckReport,
                      now: dt.datetime | None = None) -> Path:
    """Append the decision to the audit file (created 0600 in a 0700 folder); its path."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / AUDIT_FILE
    entry: dict[str, Any] = {
        "at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "operator": acceptance.operator, "host": socket.gethostname(), "command": acceptance.command,
        "env": acceptance.env, "reason": acceptance.reason,
        "policy": {"file": report.policy.path, "sha256": report.policy.sha256},
        "violations": [{"rule": v.rule, "resource": v.resource} for v in report.violations],
        "expired_suppressions": [{"rule": s.rule, "resource": s.resource, "expires": s.expires.isoformat()}
                                 for s in report.expired],
        "previous": _last_hash(path),
    }
    line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_acceptances(state_dir: Path) -> list[dict[str, Any]]:
    """Every recorded decision, oldest first, once the chain is verified."""
    path = state_dir / AUDIT_FILE
    if not path.is_file():
        return []
    entries, previous = [], GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = json.loads(line)
        if entry.get("previous") != previous:
            raise JournalCorrupt(f"{path}:{number}: the acceptance record does not follow the one before it",
                                 hint="the audit file was edited or a line was removed")
        entries.append(entry)
        previous = _digest(line)
    return entries


def _last_hash(path: Path) -> str:
    if not path.is_file():
        return GENESIS
    lines = path.read_text(encoding="utf-8").splitlines()
    return _digest(lines[-1]) if lines else GENESIS


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()
