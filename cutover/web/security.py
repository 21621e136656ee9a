"""What keeps the crisis-room board read-only and private.

One ASGI middleware in front of every route, in this order:

1. **Methods.** Only GET and HEAD exist. Anything else is 405 before routing,
   so no route, present or future, can be reached by a write method.
2. **Host.** On a loopback bind, a request must name a loopback host: a web
   page elsewhere cannot rebind its own name to 127.0.0.1 and read the board
   from a browser in the room (DNS rebinding).
3. **Token.** With a token file, every page but the sign-in page and its
   static files needs ``Authorization: Bearer TOKEN`` or the signed cookie the
   sign-in page obtains; otherwise 401. Comparisons are constant-time.
4. **Headers.** Every response says: no framing, no sniffing, no referrer, a
   Content-Security-Policy with only this server as a source, no caching.

The cookie carries an expiry and an HMAC of it under a key derived from the
token: it never holds the token, it dies with a new token, and it is
HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cutover.errors import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

READ_METHODS = frozenset({"GET", "HEAD"})
COOKIE = "cutover_board"
COOKIE_LIFETIME_S = 12 * 3600  # a night
MIN_TOKEN_CHARS = 16
_TOKEN_SHAPE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it travels in a header
TOKEN_HINT = ("create one owner-only: (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
              "> board.token)")

# Only this server: no CDN, no inline script, no framing, no form posting anywhere.
BOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# The report is one self-contained file (inline CSS and SVG, no script): the same policy, its styles inline.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = (
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ("cache-control", "no-store"),
)
PUBLIC_PATHS = ("/login", "/static/")  # what a browser without the token needs to sign in
_EXPIRY = re.compile(r"^[0-9]{1,12}$")
_UNSAFE_IN_PATH = re.compile(r"[\\\x00-\x20\x7f-\x9f]")


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path of this site, else None (for ``next`` and every link built from a request).

    A path of this site has one leading ``/`` and, decoded as often as a
    browser or a proxy might, no ``\\``, no control character or space, and
    no scheme or authority: ``//host``, ``/\\host`` and ``/%09/host`` all
    lead a browser to another origin.
    """
    if not target:
        return None
    text = target
    for _ in range(4):  # each round undoes one layer of percent-encoding
        if not text.startswith("/") or text.startswith("//") or _UNSAFE_IN_PATH.search(text):
            return None
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return None
        decoded = unquote(text)
        if decoded == text:
            return target
        text = decoded
    return None


def read_token_file(path: Path) -> str:
    """The board's token: a regular, owner-only file of ours holding one line of 16+ printable characters."""
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read the token file {path}: {exc.strerror}", hint=TOKEN_HINT) from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"the token file {path} is not a regular file", hint=TOKEN_HINT)
    if info.st_mode & 0o077:
        raise InputError(f"the token file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o})",
                         hint=f"make it owner-only: chmod 600 {path}")
    if info.st_uid != os.getuid():
        raise InputError(f"the token file {path} belongs to another user (uid {info.st_uid})",
                         hint="use a token file you own, mode 0600")
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the token file {path}: not one line of ASCII text", hint=TOKEN_HINT) from exc
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN_SHAPE.match(token):
        raise InputError(f"the token in {path} is too weak: it needs at least {MIN_TOKEN_CHARS} printable "
                         "characters on one line, no spaces", hint=TOKEN_HINT)
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only be reached from this machine (an IP on loopback, or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere: treat it as exposed


@dataclass(frozen=True)
class Access:
    """Who may read the board: anyone on a loopback bind without a token; token holders otherwise."""

    token: str | None
    loopback_only: bool

    @property
    def _cookie_key(self) -> bytes:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"cutover serve: board cookie v1", hashlib.sha256).digest()

    def bearer_ok(self, header: str | None) -> bool:
        if self.token is None or not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def cookie_value(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + COOKIE_LIFETIME_S)
        return f"{expires}.{self._sign(str(expires))}"

    def cookie_ok(self, value: str | None, now: float | None = None) -> bool:
        if self.token is None or not value:
            return False
        expires, _, signature = value.partition(".")
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses
        if not _EXPIRY.match(expires) or int(expires) < (now or time.time()):
            return False
        return hmac.compare_digest(signature.encode(), self._sign(expires).encode())

    def _sign(self, text: str) -> str:
        return hmac.new(self._cookie_key, text.encode(), hashlib.sha256).hexdigest()

    def set_cookie_header(self, secure: bool) -> str:
        flags = "; Secure" if secure else ""
        return (f"{COOKIE}={self.cookie_value()}; Max-Age={COOKIE_LIFETIME_S}; Path=/; HttpOnly; "
                f"SameSite=Strict{flags}")


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, access: Access, *, unauthorised_page: Callable[[Scope], bytes]) -> None:
        self.app = app
        self.access = access
        self.unauthorised_page = unauthorised_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = _headers(scope)
        if scope["method"] not in READ_METHODS:
            await _respond(send, 405, b"read-only board: only GET and HEAD\n", extra=[(b"allow", b"GET, HEAD")])
            return
        if self.access.loopback_only and not _loopback_host(headers.get("host", "")):
            await _respond(send, 421, b"this board answers to localhost only\n")
            return
        if self.access.token is not None and not self._admitted(scope, headers):
            await self._refuse(scope, send)
            return
        await self.app(scope, receive, send)

    def _admitted(self, scope: Scope, headers: dict[str, str]) -> bool:
        try:
            return self._presents_credentials(scope, headers)
        except Exception:  # noqa: BLE001 - whatever a crafted header breaks, it admits nobody (401, not 500)
            return False

    def _presents_credentials(self, scope: Scope, headers: dict[str, str]) -> bool:
        path = scope["path"]
        if path == PUBLIC_PATHS[0] or path.startswith(PUBLIC_PATHS[1]):
            return True
        if self.access.bearer_ok(headers.get("authorization")):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a garbled cookie header is just no cookie
            return False
        morsel = cookie.get(COOKIE)
        return self.access.cookie_ok(morsel.value if morsel else None)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        challenge = [(b"www-authenticate", b'Bearer realm="cutover"')]
        if scope["path"].startswith("/api/"):
            body = json.dumps({"error": "unauthorised", "hint": "send Authorization: Bearer TOKEN"}).encode()
            await _respond(send, 401, body, content_type=b"application/json", extra=challenge)
            return
        await _respond(send, 401, self.unauthorised_page(scope), content_type=b"text/html; charset=utf-8",
                       extra=challenge)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _loopback_host(host_header: str) -> bool:
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return bool(host) and is_loopback(host)


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS
                     if name.encode() not in present]
            if b"content-security-policy" not in present:
                extra.append((b"content-security-policy", BOARD_CSP.encode()))
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending


async def _respond(send: Send, status: int, body: bytes, *, content_type: bytes = b"text/plain; charset=utf-8",
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
