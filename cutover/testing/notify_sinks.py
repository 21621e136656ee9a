"""Real local targets for notification tests: an SMTP server (aiosmtpd, with AUTH) and an HTTP endpoint.

Both bind loopback on a free port and record what they receive, in arrival order.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    items: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: dict[str, str]) -> None:
        with self.lock:
            self.items.append(item)

    def titles(self, to: str | None = None) -> list[str]:
        with self.lock:
            return [i["title"] for i in self.items if to is None or i.get("to") == to]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink(user: str, password: str) -> Iterator[tuple[int, Received]]:
    """aiosmtpd on loopback requiring AUTH with this user and password (no TLS: loopback only)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received = Received()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.original_content)
            title = str(make_header(decode_header(message["Subject"] or "")))
            for rcpt in envelope.rcpt_tos:
                received.add({"to": rcpt, "title": title, "parts": _parts(message)})
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
        return AuthResult(success=ok)

    port = free_port()
    # AUTH without TLS: on loopback, in a test, on purpose; aiosmtpd warns of it at every session
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def _parts(message: Message) -> str:
    """Each text part of a mail as its reader's program receives it: ``content-type`` line, then the decoded text."""
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            text = payload.decode(part.get_content_charset() or "utf-8", "replace") if isinstance(payload, bytes) else ""
            parts.append(f"{part.get_content_type()}\n{text.replace(chr(13) + chr(10), chr(10))}")  # mail's CRLF
    return "\n\n".join(parts)


@contextmanager
def http_sink(token: str) -> Iterator[tuple[int, Received]]:
    """An HTTP endpoint taking Apprise's json:// posts; requests whose path does not end in /TOKEN get 403."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self.path.split("?")[0].endswith(f"/{token}"):
                self.send_response(403)
                self.end_headers()
                return
            data = json.loads(body)
            received.add({"title": data.get("title", ""), "body": data.get("message", "")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
