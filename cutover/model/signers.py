"""An environment's allowed-signers file: who may sign approvals, with which SSH key (OpenSSH's format).

It lives beside the inventory (``inventories/ENV/allowed_signers``). The runbook's
validation checks every approver has a key there; the signed approvals
(``cutover.app.approvals``) verify against it and journal its digest.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cutover.errors import InputError, NotFound

APPROVER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
_OPTION = re.compile(r'^(cert-authority|namespaces="[^"]*"|valid-(after|before)="?[0-9TZ]+"?)$')
_KEY_TYPES = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$")


# the namespace a controller's anchor is signed in (cutover.app.anchors): a key listed for it signs no approval
ANCHOR_NAMESPACE = "cutover-anchor"


def anchor_signer_line(principal: str, public_key: str) -> str:
    """An allowed-signers line that vouches for ``public_key`` (an OpenSSH ``.pub`` line) for anchors only."""
    kind, blob = public_key.split()[:2]
    return f'{principal} namespaces="{ANCHOR_NAMESPACE}" {kind} {blob}'


def allowed_signers_path(inventory_path: Path) -> Path:
    return inventory_path / "allowed_signers"


def signers_digest(path: Path) -> str:
    """The sha256 of an allowed-signers file, as a run journals it at creation; no file reads as an empty one.

    Both list nobody, so a run created without the file accepts no signed approval later,
    whatever file appears meanwhile.
    """
    return hashlib.sha256(signers_content(path)).hexdigest()


def signers_content(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the file's permissions") from exc


def signer_lines(path: Path, principal: str, text: str | None = None) -> tuple[str, ...]:
    """The allowed-signers lines that list ``principal``; the file is validated line by line first.

    ``text``: the file's content as already read (and checked against the run's digest).
    """
    if text is None and not path.is_file():
        raise NotFound(f"no allowed signers file {path}",
                       hint="list each approver's SSH public key there, one line each: "
                            "`APPROVER_ID ssh-ed25519 AAAA... comment` (OpenSSH allowed-signers format)")
    found = []
    content = path.read_text(encoding="utf-8") if text is None else text
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principals = _check_line(path, number, line)
        if principal in principals:
            found.append(line)
    if not found:
        raise InputError(f"approver {principal!r} has no key in {path}",
                         hint=f"add a line `{principal} ssh-ed25519 AAAA...` with the approver's public key")
    return tuple(found)


def _check_line(path: Path, number: int, line: str) -> list[str]:
    """An allowed-signers line: principals, optional options, key type, base64 key[, comment]."""
    fields = line.split()
    key_at = next((i for i, f in enumerate(fields) if _KEY_TYPES.match(f)), None)
    if key_at is None or key_at == 0 or key_at + 1 >= len(fields):
        raise InputError(f"{path}, line {number}: not an allowed-signers line",
                         hint="write `APPROVER_ID ssh-ed25519 AAAA... [comment]` (principals, key type, key)")
    principals = fields[0].split(",")
    options = ",".join(fields[1:key_at]).split(",") if key_at > 1 else []
    unknown = [o for o in options if not _OPTION.match(o)]
    if unknown:
        raise InputError(f"{path}, line {number}: {unknown[0]!r} is not an allowed-signers option",
                         hint="write `APPROVER_ID ssh-ed25519 AAAA... [comment]`; approver ids have no spaces")
    bad = [p for p in principals if not APPROVER_ID.match(p)]
    if bad:
        raise InputError(f"{path}, line {number}: principal {bad[0]!r} is not an approver id",
                         hint="approver ids have no spaces: letters, digits, '.', '_', '@', '-'")
    return principals


def signers_by_principal(path: Path) -> dict[str, list[str]]:
    """Every principal of an allowed-signers file with the lines that list it (validated like the controller's)."""
    if not path.is_file():
        raise NotFound(f"no allowed signers file {path}",
                       hint="give the auditor's own copy: `APPROVER_ID ssh-ed25519 AAAA...` lines (OpenSSH format)")
    found: dict[str, list[str]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            for principal in _check_line(path, number, line):
                found.setdefault(principal, []).append(line)
    return found
