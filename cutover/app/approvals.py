"""Signed approvals: a go/no-go that proves who gave it.

An approver signs a canonical *statement* with an SSH key (``ssh-keygen -Y sign``,
namespace ``cutover-approval``; a key held by ssh-agent works too). The statement
binds the run, the gate, the approver's id, the reason, the time and the hash of
the run's newest journal event at signing. The controller counts it only when:

- its fields name this run, this gate and this approver (a statement signed for
  another run or gate is a replay, refused);
- the hash it names is an event of this run recorded since the gate last opened
  (a statement from before a rollback re-opened the gate is a replay too);
- ``ssh-keygen -Y verify`` accepts the signature against the environment's
  ``allowed_signers`` (OpenSSH's format, principal = approver id).

The journal keeps the statement, the signature and the allowed-signers lines
of that principal, so ``journal verify`` re-checks every approval from the
journal alone, years later, and an edited signature is found even by a forger
who recomputed the hash chain.

An override of a failed blocking criterion (``approve --override``) is signed
the same way; its statement adds ``override``: the criterion's id and the
value measured that the approver accepts. A statement with an override is
never counted as an approval, nor an approval as an override.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.core import records as r
from cutover.core.events import Event
from cutover.errors import InputError, NotFound, ToolMissing
from cutover.model.signers import signer_lines, signers_by_principal

NAMESPACE = "cutover-approval"
STATEMENT_VERSION = 1


@dataclass(frozen=True)
class Override:
    """What an override's statement covers: the criterion and the value measured that is accepted."""

    criterion: str
    value: Any


@dataclass(frozen=True)
class Statement:
    """What an approver signs: canonical JSON, so the controller rebuilds nothing by guesswork."""

    run: str
    step: str
    approver: str
    reason: str
    at: str
    head: str  # hash of the run's newest journal event when it was signed
    override: Override | None = None  # an override of a failed criterion, not an approval

    def text(self) -> str:
        body: dict[str, Any] = {"v": STATEMENT_VERSION, "run": self.run, "step": self.step, "approver": self.approver,
                                "reason": self.reason, "at": self.at, "head": self.head}
        if self.override is not None:
            body["override"] = {"criterion": self.override.criterion, "value": self.override.value}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, text: str) -> Statement:
        try:
            body = json.loads(text)
            if body.get("v") != STATEMENT_VERSION:
                raise ValueError(f"version {body.get('v')!r}")
            run, step, approver, reason, at, head = (str(body[k]) for k in
                                                     ("run", "step", "approver", "reason", "at", "head"))
            override = Override(str(body["override"]["criterion"]), body["override"].get("value")) \
                if "override" in body else None
            statement = cls(run, step, approver, reason, at, head, override)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"the signed statement is not a cutover approval statement ({exc})",
                             hint="sign it with `cutover approve RUN STEP --as ID --key KEY --sign-only`") from None
        if statement.text() != text:
            raise InputError("the signed statement is not in canonical form",
                             hint="sign the statement exactly as `cutover approve ... --sign-only` writes it")
        return statement


@dataclass(frozen=True)
class SignedApproval:
    """A statement and its SSH signature (armoured), as carried from the approver to the controller."""

    statement: str
    signature: str

    def to_json(self) -> str:
        return json.dumps({"statement": self.statement, "signature": self.signature}, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> SignedApproval:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["statement"]), str(data["signature"]))
        except FileNotFoundError:
            raise NotFound(f"signed approval file {path} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a signed approval ({exc.__class__.__name__}: {exc})",
                             hint="write it with `cutover approve RUN STEP --as ID --key KEY --sign-only > FILE`") \
                from None


# ---------------------------------------------------------------------- ssh-keygen


def _keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise ToolMissing("ssh-keygen is not installed: approvals are signed and verified with it",
                          hint="install it with: apt-get install openssh-client")
    return found


def sign(statement: str, key: Path, namespace: str = NAMESPACE) -> str:
    """Sign with a private key, or a public key whose private half ssh-agent holds."""
    if not key.is_file():
        raise NotFound(f"key {key} does not exist",
                       hint="--key names your private key, or your public key when ssh-agent holds the private one")
    result = subprocess.run([_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", namespace],
                            input=statement.encode(), capture_output=True, timeout=120, check=False)
    if result.returncode != 0 or b"BEGIN SSH SIGNATURE" not in result.stdout:
        raise InputError(f"ssh-keygen could not sign with {key}: {result.stderr.decode(errors='replace').strip()}",
                         hint="check the key (and its passphrase, or that ssh-agent holds it)")
    return result.stdout.decode()


def signature_valid(statement: str, signature: str, principal: str, lines: Sequence[str],
                    namespace: str = NAMESPACE) -> bool:
    """``ssh-keygen -Y verify`` of the statement against these allowed-signers lines."""
    with tempfile.TemporaryDirectory(prefix="cutover-approval-") as folder:
        signers, sig = Path(folder) / "allowed_signers", Path(folder) / "statement.sig"
        signers.write_text("\n".join(lines) + "\n", encoding="utf-8")
        sig.write_text(signature, encoding="utf-8")
        result = subprocess.run([_keygen(), "-Y", "verify", "-f", str(signers), "-I", principal, "-n", namespace,
                                 "-s", str(sig)], input=statement.encode(), capture_output=True, timeout=60,
                                check=False)
    return result.returncode == 0


# ---------------------------------------------------------------------- what the controller accepts


@dataclass(frozen=True)
class Proof:
    """What is journalled with a signed approval."""

    statement: str
    signature: str
    signers: str  # the allowed-signers lines of the approver, as they were when it was counted


def check_signed(signed: SignedApproval, *, run_id: str, step: str, approver_id: str,
                 events: Sequence[Event], signers_file: Path, signers_text: str | None = None,
                 override: Override | None = None) -> tuple[Statement, Proof]:
    """Accept a signed approval (or ``override``) for this run's gate, or raise InputError saying why not."""
    statement = Statement.parse(signed.statement)
    for field_name, expected in (("run", run_id), ("step", step), ("approver", approver_id)):
        given = getattr(statement, field_name)
        if given != expected:
            raise InputError(f"the signed statement is for {field_name} {given!r}, not {expected!r}: refused as a replay",
                             hint=f"sign a statement for this run and gate: `cutover approve {run_id} {step} "
                                  f"--as {approver_id} --key KEY`")
    if statement.override != override:
        said = (f"an override of {statement.override.criterion} at {statement.override.value!r}"
                if statement.override else "an approval")
        wanted = f"an override of {override.criterion} at {override.value!r}" if override else "an approval"
        raise InputError(f"the signed statement is {said}, not {wanted}: refused",
                         hint="sign a fresh statement for what the gate now shows (`cutover status` lists its criteria)")
    _check_head(statement, events)
    lines = signer_lines(signers_file, approver_id, signers_text)
    if not signature_valid(signed.statement, signed.signature, approver_id, lines):
        raise InputError(f"the signature of {approver_id}'s approval of {step} does not verify against {signers_file}",
                         hint="sign with the key listed for this approver id in allowed_signers")
    return statement, Proof(signed.statement, signed.signature, "\n".join(lines))


def _check_head(statement: Statement, events: Sequence[Event]) -> None:
    """The hash signed must be an event of this run since the gate last opened."""
    opened = max((e.seq for e in events if e.kind == r.GateOpened.KIND and e.payload.get("step") == statement.step),
                 default=None)
    signed_at = next((e for e in events if e.hash == statement.head), None)
    if signed_at is None or opened is None or signed_at.seq < opened:
        raise InputError(f"the signed statement names journal head {statement.head[:12]}…, which is not an event of "
                         f"run {statement.run} since gate {statement.step} last opened: refused as a replay",
                         hint="sign a fresh statement now that the gate is open")


def sign_for(run_id: str, step: str, approver_id: str, reason: str, events: Sequence[Event], key: Path,
             at: str, override: Override | None = None) -> SignedApproval:
    """The statement for this gate (or an override of one of its criteria) as the run stands now, signed."""
    if not events:
        raise NotFound(f"run {run_id!r} has no journal events")
    statement = Statement(run_id, step, approver_id, reason, at, events[-1].hash, override).text()
    return SignedApproval(statement, sign(statement, key))


# ---------------------------------------------------------------------- re-verification from the journal


@dataclass(frozen=True)
class ApprovalCheck:
    seq: int
    run_id: str
    step: str
    approver: str
    signed: bool
    valid: bool  # an unsigned approval is "valid" only in the sense that there is nothing to verify
    kind: str = r.GateApproved.KIND  # or criterion_overridden

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "run_id": self.run_id, "step": self.step, "approver": self.approver,
                "signed": self.signed, "valid": self.valid, "kind": self.kind}


def reverify(events: Sequence[Event]) -> list[ApprovalCheck]:
    """Every approval in these events, each signed one re-verified from what the journal holds."""
    checks = []
    for event in events:
        record = r.read(event)
        if not isinstance(record, (r.GateApproved, r.CriterionOverridden)):
            continue
        signed = record.signature is not None
        step = record.step if isinstance(record, r.GateApproved) else f"{record.step} (override {record.criterion})"
        checks.append(ApprovalCheck(event.seq, event.run_id, step, record.approver, signed,
                                    not signed or _still_valid(event.run_id, record), event.kind))
    return checks


def _still_valid(run_id: str, record: r.GateApproved | r.CriterionOverridden) -> bool:
    assert record.statement is not None and record.signature is not None
    try:
        statement = Statement.parse(record.statement)
    except InputError:
        return False
    principal = record.approver_id or record.approver
    if (statement.run, statement.step, statement.approver) != (run_id, record.step, principal):
        return False
    covered = Override(record.criterion, record.value) if isinstance(record, r.CriterionOverridden) else None
    if statement.override != covered or (covered is not None and statement.reason != record.reason):
        return False
    lines = (record.signers or "").splitlines()
    return bool(lines) and signature_valid(record.statement, record.signature, principal, lines)


# ---------------------------------------------------------------------- an auditor's own allowed signers


@dataclass(frozen=True)
class AuditFinding:
    """An approval the auditor's allowed-signers file does not vouch for, and why."""

    seq: int
    run_id: str
    step: str
    approver: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "run_id": self.run_id, "step": self.step, "approver": self.approver,
                "why": self.why}


def audit(approvals: Sequence[Event], lab_runs: set[str], signers_file: Path) -> list[AuditFinding]:
    """The approvals whose key or principal the auditor's own file does not hold.

    Each signed approval is verified against the lines of ``signers_file`` for its
    approver's id, never against the lines the journal kept (a journal written with
    an attacker's key listed keeps that key). An unsigned or automatic approval
    has nothing to verify: it is listed unless its run was created as a lab run.
    """
    signers = signers_by_principal(signers_file)
    findings = []
    for event in approvals:
        record = r.read(event)
        if not isinstance(record, (r.GateApproved, r.CriterionOverridden)):
            continue
        why = _audit_one(event.run_id, record, signers, signers_file, event.run_id in lab_runs)
        if why:
            step = record.step if isinstance(record, r.GateApproved) else f"{record.step} (override {record.criterion})"
            findings.append(AuditFinding(event.seq, event.run_id, step, record.approver, why))
    return findings


def _audit_one(run_id: str, record: r.GateApproved | r.CriterionOverridden, signers: dict[str, list[str]],
               signers_file: Path, lab: bool) -> str:
    if record.signature is None or record.statement is None:
        if lab:
            return ""
        what = "automatic" if isinstance(record, r.GateApproved) and record.auto else "unsigned"
        return f"{what}, in a run not created as a lab run: nothing {signers_file.name} could vouch for"
    principal = record.approver_id or record.approver
    lines = signers.get(principal)
    if not lines:
        return f"principal {principal!r} is not in {signers_file}"
    if not signature_valid(record.statement, record.signature, principal, lines):
        if _still_valid(run_id, record):
            return f"signed with a key {signers_file} does not hold for {principal!r}"
        return "the signature does not verify"
    return ""


def lab_runs(created: Sequence[Event]) -> set[str]:
    """The runs whose ``run_created`` event says they were created as lab runs."""
    return {e.run_id for e in created if isinstance(record := r.read(e), r.RunCreated) and record.lab}
