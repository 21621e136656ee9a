"""Anchors: each run's journal head signed with the controller's SSH key, so a rewritten chain is caught.

The hash chain has no key: whoever can write the journal's storage (a SQLite
file's owner, a PostgreSQL table owner or superuser) can edit an event and
recompute every hash after it, and ``journal verify`` passes. An anchor ties
the chain to a key held outside the journal. When a drive ends with an
outcome (completed, paused, failed, rolled back), a controller given a key
(``--anchor-key`` / ``CUTOVER_ANCHOR_KEY``, else the inventory's
``cutover_anchor_key``: the lab's is written by ``cutover lab up``) signs a statement naming the
run's newest event (seq and hash) with ``ssh-keygen -Y sign``, namespace
``cutover-anchor``, and journals it as ``run_anchored``; the report prints it.

``cutover journal verify --anchors`` checks every anchor against an
allowed-signers file the auditor chooses (``--allowed-signers FILE``, else
the run's environment's), never against anything stored in the journal: the
signature must verify, and the event it names must still have the hash it
signed. A run with no anchor is reported unanchored, which fails the check.

What stays trusted: the controller's host and whoever holds the anchor key
(they can sign a rewritten chain), and the allowed-signers file the auditor
checks against. Events written after a run's last anchor are covered by none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.app.approvals import sign, signature_valid
from cutover.core import records as r
from cutover.core.events import Event, Journal, utc_now
from cutover.errors import InputError, NotFound, ToolMissing
from cutover.model.signers import ANCHOR_NAMESPACE

NAMESPACE = ANCHOR_NAMESPACE
STATEMENT_VERSION = 1


@dataclass(frozen=True)
class AnchorStatement:
    """What the controller signs: this run's newest event, as the chain held it then."""

    run: str
    seq: int
    head: str
    at: str

    def text(self) -> str:
        body = {"v": STATEMENT_VERSION, "anchor": self.run, "seq": self.seq, "head": self.head, "at": self.at}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, text: str) -> AnchorStatement | None:
        """The statement, or None when the text is not one in canonical form (it cannot verify)."""
        try:
            body = json.loads(text)
            statement = cls(str(body["anchor"]), int(body["seq"]), str(body["head"]), str(body["at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return statement if body.get("v") == STATEMENT_VERSION and statement.text() == text else None


def check_key(key: Path) -> Path:
    """The anchor key, refused before anything runs when it cannot be read."""
    if not key.is_file():
        raise NotFound(f"anchor key {key} does not exist",
                       hint="--anchor-key / CUTOVER_ANCHOR_KEY names the controller's SSH private key "
                            "(or its public key when ssh-agent holds the private one)")
    return key


def anchor_run(journal: Journal, run_id: str, key: Path) -> Event | None:
    """Sign the run's newest event and journal the anchor; None for a run with no events."""
    events = journal.events(run_id)
    if not events:
        return None
    newest = events[-1]
    statement = AnchorStatement(run_id, newest.seq, newest.hash, utc_now()).text()
    record = r.RunAnchored(statement, sign(statement, key, NAMESPACE), key_fingerprint(key))
    return journal.append(run_id, record.KIND, record.to_payload())


def key_fingerprint(key: Path) -> str:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ToolMissing("ssh-keygen is not installed: anchors are signed with it",
                          hint="install it with: apt-get install openssh-client")
    result = subprocess.run([keygen, "-l", "-f", str(key)], capture_output=True, text=True, timeout=30, check=False)
    fields = result.stdout.split()
    return fields[1] if result.returncode == 0 and len(fields) > 1 else ""


def latest_anchor(events: Sequence[Event]) -> dict[str, Any] | None:
    """The run's newest anchor as the report shows it (not verified here: `journal verify --anchors` does)."""
    for event in reversed(events):
        record = r.read(event)
        if isinstance(record, r.RunAnchored):
            statement = AnchorStatement.parse(record.statement)
            return {"event": event.seq, "seq": statement.seq if statement else None,
                    "head": statement.head if statement else None, "key": record.key, "namespace": NAMESPACE}
    return None


# ---------------------------------------------------------------------- checking


@dataclass(frozen=True)
class AnchorCheck:
    run_id: str
    seq: int | None  # the anchor event; None: the run has none
    signed_seq: int | None
    valid: bool
    reason: str = ""
    signer: str = ""  # the principal of the allowed-signers file that holds the key

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "seq": self.seq, "signed_seq": self.signed_seq, "valid": self.valid,
                "reason": self.reason or None, "signer": self.signer or None}


def check_anchors(runs: Iterable[str], anchors: Sequence[Event], chain: Mapping[int, str],
                  signers_for: Any) -> list[AnchorCheck]:
    """Every anchor of these runs checked; a run without one is an invalid, unanchored check.

    ``chain``: seq -> hash as the journal now holds them; ``signers_for(run_id)``: the
    allowed-signers file to check that run's anchors against.
    """
    checks = []
    for run_id in runs:
        mine = [e for e in anchors if e.run_id == run_id]
        if not mine:
            checks.append(AnchorCheck(run_id, None, None, False, "unanchored: no signed anchor in the journal"))
        checks.extend(_check_one(event, chain, signers_for(run_id)) for event in mine)
    return checks


def _check_one(event: Event, chain: Mapping[int, str], signers: Path) -> AnchorCheck:
    record = r.read(event)
    assert isinstance(record, r.RunAnchored)
    statement = AnchorStatement.parse(record.statement)
    if statement is None or statement.run != event.run_id:
        return AnchorCheck(event.run_id, event.seq, None, False, "the signed statement is not an anchor of this run")
    if chain.get(statement.seq) != statement.head:
        return AnchorCheck(event.run_id, event.seq, statement.seq, False,
                           f"event {statement.seq} no longer has the hash the controller signed: "
                           "the chain was rewritten since")
    lines = _signer_lines(signers)
    for principal in _principals(record.statement, record.signature, signers):
        if signature_valid(record.statement, record.signature, principal, lines, NAMESPACE):
            return AnchorCheck(event.run_id, event.seq, statement.seq, True, signer=principal)
    return AnchorCheck(event.run_id, event.seq, statement.seq, False,
                       f"the signature does not verify against {signers}")


def _signer_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise NotFound(f"no allowed signers file {path}",
                       hint="pass --allowed-signers FILE listing the controller's public key "
                            "(`controller-id namespaces=\"cutover-anchor\" ssh-ed25519 AAAA...`)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _principals(statement: str, signature: str, signers: Path) -> list[str]:
    """Who, in the allowed-signers file, holds the key that made this signature (not yet verified)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ToolMissing("ssh-keygen is not installed: anchors are verified with it",
                          hint="install it with: apt-get install openssh-client")
    with tempfile.TemporaryDirectory(prefix="cutover-anchor-") as folder:
        sig = Path(folder) / "anchor.sig"
        sig.write_text(signature, encoding="utf-8")
        result = subprocess.run([keygen, "-Y", "find-principals", "-s", str(sig), "-f", str(signers),
                                 "-n", NAMESPACE], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return []
    return [p for line in result.stdout.splitlines() for p in line.strip().split(",") if p]


def signers_for_runs(given: Path | None, project_dir: Path, envs: Mapping[str, str]) -> Any:
    """The auditor's file when given, else each run's environment's ``allowed_signers``."""
    if given is not None:
        return lambda _run: given

    def environment_file(run_id: str) -> Path:
        env = envs.get(run_id)
        if env is None:
            raise InputError(f"run {run_id} names no environment to find its allowed signers in",
                             hint="pass --allowed-signers FILE")
        return project_dir / "inventories" / env / "allowed_signers"

    return environment_file
