"""`cutover serve`: the crisis room's read-only web board (the application is ``cutover.web``).

The checks that can refuse come first, before the journal is opened or a
socket bound: the bind address, then the token file. A board on anything
but loopback without a token is refused (exit 2): it would show the night to
anyone on the network.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cutover.cli.app import App, pass_app
from cutover.cli.read_cmds import journal_url, open_journal
from cutover.core.events import Journal
from cutover.errors import CutoverError, ExitCode, InputError

DEFAULT_BIND = "127.0.0.1:8315"
GRACEFUL_SHUTDOWN_S = 2  # open event streams never end by themselves: Ctrl-C closes them after this


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Bind:
        """HOST:PORT, [IPV6]:PORT; port 0 lets the system choose (the URL printed says which)."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise InputError(f"--bind {text!r} is not HOST:PORT",
                             hint="e.g. --bind 127.0.0.1:8315, or [::1]:8315 for IPv6")
        if host.startswith("[") != host.endswith("]"):
            raise InputError(f"--bind {text!r}: an IPv6 address goes in brackets", hint="e.g. --bind [::1]:8315")
        return cls(host.strip("[]"), int(port))

    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


@click.command()
@click.option("--bind", "bind_text", default=DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              help="Where to listen. Anything but loopback needs --token-file.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An owner-only file holding the access token: readers send it as a bearer token "
                   "or sign in once on the page (a signed cookie).")
@pass_app
def serve(app: App, bind_text: str, token_file: Path | None) -> int:
    """A read-only web board of the runs, live, for the crisis room and phones (GET only; nothing changes)."""
    from cutover.web.security import Access, is_loopback, read_token_file

    bind = Bind.parse(bind_text)
    loopback = is_loopback(bind.host)
    if not loopback and token_file is None:
        raise InputError(f"refusing to serve the board on {bind.host}, which is not loopback, without a token",
                         hint="pass --token-file FILE (owner-only, one line of 16+ characters), or bind "
                              "127.0.0.1 and reach it through an SSH tunnel")
    token = read_token_file(app.project_path(token_file)) if token_file is not None else None
    listener = _listen(bind)
    access = Access(token=token, loopback_only=loopback)
    with open_journal(app) as journal:
        _serve(app, journal, access, listener, bind)
    return ExitCode.OK


def _listen(bind: Bind) -> socket.socket:
    """The listening socket, bound here so that a taken port is a clear error, and port 0 a known one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(f"cannot listen on {bind.host}: {exc}", hint="check the --bind address") from exc
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise CutoverError(f"cannot listen on {bind.url_host()}:{bind.port}: {exc.strerror}",
                           hint="another board (or program) may use that port: choose another with --bind") from exc
    return listener


def _serve(app: App, journal: Journal, access: Any, listener: socket.socket, bind: Bind) -> None:
    import uvicorn

    from cutover.web.app import create_app

    board = create_app(journal, access, report=_report_builder(app))
    port = listener.getsockname()[1]
    config = uvicorn.Config(board, log_level="warning", access_log=False, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, proxy_headers=False)
    guard = "token required" if access.token else "loopback only, no token"
    app.console.print(f"board: http://{bind.url_host()}:{port}/  (read-only; {guard}; journal "
                      f"{_shown(journal_url(app))}); Ctrl-C stops it", soft_wrap=True)
    app.console.file.flush()  # a supervisor (or a test) reads the URL from a pipe
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled once it has shut down: stopping the board is the normal end


def _shown(url: str) -> str:
    from cutover.journal.postgres import redacted_url

    return redacted_url(url)


def _report_builder(app: App) -> Any:
    """The report exactly as `cutover report` builds it: the file verified read-only, the lab's call account."""
    from cutover.cli.history_cmds import report_text

    def build(journal: Journal, run_id: str) -> str:
        return report_text(app, journal, run_id, "html")

    return build


COMMANDS = (serve,)
