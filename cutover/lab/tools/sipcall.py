"""The lab's SIP plumbing that runs on its hosts (stdlib only, like ``samulab.py``).

``cutover lab up`` copies this file next to ``samulab.py`` in ``<lab>/tools/``.
It holds what a SAMU site or a platform host needs to talk to the call router
(Kamailio, ``cutover.lab.router``):

- ``router_info(lab_dir)``: where the router listens and its control socket,
  read from ``<lab>/sip/router.json`` (written by ``cutover lab up``);
- ``set_route`` / ``routes``: each SAMU's "15" number routes by one entry of
  Kamailio's ``routes`` htable: ``legacy``, ``cloud`` or ``local`` (the SAMU's
  own backup position). Changed with ``kamcmd htable.sets``, never by editing a
  file and restarting;
- ``calls_in_progress``: the calls the router holds a dialog for, per
  destination and SAMU (its ``serving`` dialog profile, valued ``<where>:<code>``);
- ``place_call``: a minimal SIP user agent client (INVITE, ACK, BYE over UDP)
  for ``samu-site test-call``;
- ``parse`` / ``response``: the few SIP message rules the lab's answering
  agents (``cutover.lab.answerer``) share with it.

A SAMU's number is ``15-<code>`` (``sip:15-30@router``): "15" is SAMU's short
number in France; the département code says which SAMU.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROUTER_FILE = ("sip", "router.json")
KAMCMD = "/usr/sbin/kamcmd"
DESTINATIONS = ("legacy", "cloud", "local")
PROFILE = "serving"  # the router's dialog profile: one value per destination and SAMU
NUMBER_PREFIX = "15-"
T1 = 0.5  # RFC 3261's retransmission timer, seconds
KAMCMD_TIMEOUT_S = 5.0
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


class RouterError(Exception):
    """The call router cannot be reached or refused a command; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --------------------------------------------------------------------------
# The router and its routes


def router_file(lab_dir: Path) -> Path:
    return Path(lab_dir).joinpath(*ROUTER_FILE)


def has_router(lab_dir: Path) -> bool:
    """Whether this lab routes its calls over SIP (every lab ``cutover lab up`` starts does)."""
    return router_file(lab_dir).is_file()


def router_info(lab_dir: Path) -> dict[str, object]:
    path = router_file(lab_dir)
    try:
        info: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RouterError(f"cannot read the call router's description {path}: {exc}",
                          "is the lab up? run `cutover lab up`") from exc
    return info


def kamcmd(lab_dir: Path, *args: str) -> str:
    """Run one command on the router's control socket; its output."""
    info = router_info(lab_dir)
    command = [str(info.get("kamcmd", KAMCMD)), "-s", f"unix:{info['ctl']}", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=KAMCMD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RouterError(f"the call router's control socket does not answer: {exc}",
                          "is Kamailio running? see `cutover lab status`; `cutover lab heal router`") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RouterError(f"the call router refused `{' '.join(args)}`: {detail[-1] if detail else done.returncode}",
                          "is Kamailio running? see `cutover lab status`; `cutover lab heal router`")
    return done.stdout


def set_route(lab_dir: Path, code: str, where: str) -> None:
    """Route SAMU ``code``'s number to ``legacy``, ``cloud`` or ``local``; takes effect for the next INVITE."""
    if where not in DESTINATIONS:
        raise ValueError(f"unknown destination {where!r}")
    kamcmd(lab_dir, "htable.sets", "routes", f"s:{code}", where)  # s: or kamcmd sends "30" as a number


def routes(lab_dir: Path) -> dict[str, str]:
    """Every SAMU's route, as the router holds it now."""
    text = kamcmd(lab_dir, "htable.dump", "routes")
    names = re.findall(r"name:\s*(\S+)", text)
    values = re.findall(r"value:\s*(\S+)", text)
    return dict(zip(names, values))


def calls_in_progress(lab_dir: Path, where: str, codes: Sequence[str]) -> dict[str, int]:
    """Calls in progress through the router to ``where`` (a platform, or ``local``), per SAMU."""
    return {code: _profile_size(lab_dir, f"{where}:{code}") for code in codes}


def _profile_size(lab_dir: Path, value: str) -> int:
    text = kamcmd(lab_dir, "dlg.profile_get_size", PROFILE, f"s:{value}")
    found = re.search(r"(\d+)", text)
    if found is None:
        raise RouterError(f"unexpected answer from the router's dialog module: {text.strip()!r}")
    return int(found.group(1))


# --------------------------------------------------------------------------
# SIP messages (just what the lab's agents need)


@dataclass
class SipMessage:
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0] if self.is_request else self.cseq_method

    @property
    def status(self) -> int:
        return 0 if self.is_request else int(self.first_line.split(" ", 2)[1])

    @property
    def uri(self) -> str:
        return self.first_line.split(" ")[1]

    def get(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if _COMPACT.get(key.lower(), key.lower()) == name]

    @property
    def call_id(self) -> str:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = self.get("cseq").split()
        return int(number), method.upper()

    @property
    def cseq_method(self) -> str:
        return self.cseq[1]

    def to_bytes(self) -> bytes:
        lines = [self.first_line, *(f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"),
                 f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def parse(data: bytes) -> SipMessage:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded header line
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            key, value = line.split(":", 1)
            headers.append((key.strip(), value.strip()))
    return SipMessage(lines[0], headers, body)


def response(request: SipMessage, status: int, reason: str, *, to_tag: str = "",
             extra: Sequence[tuple[str, str]] = ()) -> SipMessage:
    """A response to ``request``: its Vias, From, To (tagged), Call-ID, CSeq and Record-Routes, in order."""
    headers: list[tuple[str, str]] = []
    for key, value in request.headers:
        canonical = _COMPACT.get(key.lower(), key.lower())
        if canonical == "to" and to_tag and ";tag=" not in value:
            value = f"{value};tag={to_tag}"
        if canonical in ("via", "from", "to", "call-id", "cseq", "record-route"):
            headers.append((key, value))
    return SipMessage(f"SIP/2.0 {status} {reason}", headers + list(extra))


def number_of(uri_or_header: str) -> str | None:
    """The SAMU code a ``15-<code>`` SIP URI (or To header) dials; None if it dials something else."""
    found = re.search(r"sip:15-([0-9A-Za-z]+)@", uri_or_header)
    return found.group(1) if found else None


def uri_in(header: str) -> str:
    found = re.search(r"<([^>]+)>", header)
    return found.group(1) if found else header.split(";")[0].strip()


def _tag_of(header: str) -> str:
    found = re.search(r";tag=([^;>\s]+)", header)
    return found.group(1) if found else ""


# --------------------------------------------------------------------------
# A one-call user agent client (samu-site test-call)


@dataclass(frozen=True)
class CallOutcome:
    """How a test call went, as the caller saw it: the final status of its INVITE, then of its BYE."""

    call_id: str
    invite_status: int  # 0: no answer at all (router down, packets lost)
    bye_status: int = 0
    reason: str = ""

    @property
    def completed(self) -> bool:
        return self.invite_status == 200 and self.bye_status == 200


def place_call(lab_dir: Path, code: str, *, hold: float = 0.1, timeout: float = 8.0,
               caller: str = "test-call") -> CallOutcome:
    """Dial SAMU ``code`` through the router, hold, hang up; what came back."""
    info = router_info(lab_dir)
    router = (str(info["address"]), int(str(info["port"])))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((router[0], 0))
        return _call(sock, router, code, hold, timeout, caller)
    finally:
        sock.close()


def _call(sock: socket.socket, router: tuple[str, int], code: str, hold: float, timeout: float,
          caller: str) -> CallOutcome:
    host, port = sock.getsockname()
    local = f"{host}:{port:d}"
    call_id = f"{caller}-{uuid.uuid4().hex[:16]}@{local}"
    target = f"sip:{NUMBER_PREFIX}{code}@{router[0]}:{router[1]}"
    dialog = {"from": f"<sip:{caller}@{local}>;tag={uuid.uuid4().hex[:10]}", "to": f"<{target}>",
              "call_id": call_id, "contact": f"<sip:{caller}@{local}>"}
    invite = _request("INVITE", target, 1, dialog, local)
    final = _transaction(sock, router, invite, timeout, until_final=True)
    if final is None:
        return CallOutcome(call_id, 0, reason="no answer from the call router")
    if final.status != 200:
        _ack_failure(sock, router, invite, final)
        return CallOutcome(call_id, final.status, reason=final.first_line[12:])
    dialog["to"] = final.get("to")
    remote = uri_in(final.get("contact")) or target
    routes = list(reversed([r for value in final.all("record-route") for r in value.split(",")]))
    ack = _request("ACK", remote, 1, dialog, local, routes)
    sock.sendto(ack.to_bytes(), router)
    time.sleep(hold)
    bye = _request("BYE", remote, 2, dialog, local, routes)
    ended = _transaction(sock, router, bye, timeout, until_final=True)
    if ended is None:
        return CallOutcome(call_id, 200, 0, "no answer to the hang-up")
    return CallOutcome(call_id, 200, ended.status, "" if ended.status == 200 else ended.first_line[12:])


def _ack_failure(sock: socket.socket, router: tuple[str, int], invite: SipMessage, final: SipMessage) -> None:
    """ACK a failure answer (same branch as the INVITE), or the router retransmits it for half a minute."""
    headers = [(k, final.get("to") if k.lower() == "to" else v) for k, v in invite.headers
               if k.lower() in ("via", "max-forwards", "from", "to", "call-id")]
    headers.append(("CSeq", f"{invite.cseq[0]} ACK"))
    try:
        sock.sendto(SipMessage(f"ACK {invite.uri} SIP/2.0", headers).to_bytes(), router)
    except OSError:
        pass


def _request(method: str, uri: str, cseq: int, dialog: dict[str, str], local: str,
             routes: Sequence[str] = ()) -> SipMessage:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    headers = [("Via", f"SIP/2.0/UDP {local};branch={branch};rport"), ("Max-Forwards", "70"),
               ("From", dialog["from"]), ("To", dialog["to"]), ("Call-ID", dialog["call_id"]),
               ("CSeq", f"{cseq} {method}"), *(("Route", r.strip()) for r in routes),
               ("Contact", dialog["contact"])]
    return SipMessage(f"{method} {uri} SIP/2.0", headers)


def _transaction(sock: socket.socket, router: tuple[str, int], request: SipMessage, timeout: float,
                 until_final: bool) -> SipMessage | None:
    """Send (retransmitting at T1, doubling) until a final response for this request, or ``timeout``."""
    deadline = time.monotonic() + timeout
    interval, resend_at, provisional = T1, 0.0, False
    wanted = (request.cseq[0], request.method)
    while (now := time.monotonic()) < deadline:
        if now >= resend_at and not provisional:
            try:
                sock.sendto(request.to_bytes(), router)
            except OSError:  # the router's port is closed: keep trying until the deadline
                pass
            resend_at, interval = now + interval, min(interval * 2, 4.0)
        sock.settimeout(max(0.01, min(resend_at, deadline) - time.monotonic()) if not provisional
                        else max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            continue
        message = parse(data)
        if message.is_request or message.call_id != request.call_id or message.cseq != wanted:
            continue
        if message.status < 200:
            provisional = True
            continue
        return message
    return None

