"""Run a runbook's ``ssh`` action on inventory hosts, over paramiko.

One target per call (``batched = False``); the engine runs calls concurrently.
Security by default: key authentication with the inventory's key only (no
agent, no ``~/.ssh`` keys), and host keys checked strictly against the
inventory's known_hosts file only (never ``~/.ssh/known_hosts``, never
auto-added).

What goes wrong on a target is an outcome, never an exception::

    connection refused / no route / connect timeout / no SSH banner   UNREACHABLE
    host key unknown or changed (not added, not replaced)             REFUSED
    authentication failed                                             REFUSED
    command exited non-zero                                           FAILED (exit_status)
    connection lost while the command ran                             FAILED
    command ran past request.timeout (remote command killed)          TIMEOUT
    request.cancel set (remote command killed)                        CANCELLED

Exceptions are raised only for a broken inventory (no key or known_hosts
configured or present, unknown target): ``cutover.errors.InputError``.

Killing the remote command: without a terminal, OpenSSH does not signal a
command when its channel closes. So the command runs under a small POSIX sh
wrapper, in its own session (``setsid``), with a watcher that kills that
session's process group when the channel's stdin reaches end of file, which
happens when we close the channel.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import re
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import paramiko

from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target, clip
from cutover.core.steps import Action, ActionStep
from cutover.errors import InputError, NotFound
from cutover.model.inventory import Host, Inventory
from cutover.model.redact import Redactor

DEFAULT_CONNECT_TIMEOUT = 10.0
_KEEP_BYTES = 1 << 20  # raw output kept per target before redaction; clip() keeps the end
_POLL = 0.05  # seconds between checks of the cancel event and the deadline
_DRAIN = 1.0  # seconds to wait for the end of output once the command has exited
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_HANDSHAKE = re.compile(r"banner|No existing session|Negotiation timed out", re.I)

# $1 is the user's command. The watcher reads the original stdin (fd 3: an
# asynchronous list's stdin is /dev/null) and, at end of file, kills the
# command's whole process group. After a normal exit the watcher is killed.
_WRAPPER = (
    'exec 3<&0; '
    'setsid /bin/sh -c "$1" </dev/null 3<&- & cmd=$!; '
    '{ while read -r _ <&3; do :; done; kill -TERM "-$cmd"; sleep 1; kill -KILL "-$cmd"; } '
    '>/dev/null 2>&1 & watch=$!; '
    'wait "$cmd"; status=$?; kill "$watch" 2>/dev/null; exit "$status"'
)


def wrap_command(command: str, environment: Mapping[str, str]) -> str:
    """The shell line sent to sshd: exports, then the command under the kill-on-close wrapper."""
    exports = []
    for name, value in sorted(environment.items()):
        if not _ENV_NAME.match(name):
            raise ValueError(f"invalid environment variable name: {name!r}")
        exports.append(f"export {name}={shlex.quote(value)}; ")
    return "".join(exports) + f"exec /bin/sh -c {shlex.quote(_WRAPPER)} cutover-ssh {shlex.quote(command)}"


class _UnknownHostKey(paramiko.SSHException):
    """Raised by our reject policy, with what an operator needs to decide."""

    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"host key of {hostname} is not known")
        self.hostname = hostname
        self.key = key


class _StrictPolicy(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key, so the refusal can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style fingerprint: ``ssh-ed25519 SHA256:...``."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


class _Failure(Exception):
    """A target-level failure, already translated; turned into an ActionResult."""

    def __init__(self, outcome: Outcome, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.hint = hint


class SshExecutor:
    """Executor for ``ssh`` actions: ``request.action.command`` on each target host."""

    batched = False

    def __init__(self, inventory: Inventory, redactor: Redactor, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.inventory = inventory
        self.redactor = redactor
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._host_locks: dict[str, threading.Lock] = {}
        self._key: paramiko.PKey | None = None

    # -- public ------------------------------------------------------------------

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        return {target: self._run_one(request, target) for target in request.targets}

    def ready(self, uses: Sequence[tuple[ActionStep, Action]] = ()) -> None:
        """Raise now, before anything is journalled, if the key or known_hosts is missing or unusable."""
        self._known_hosts()
        self._private_key()

    def close(self) -> None:
        """Close every cached connection."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> SshExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one target ----------------------------------------------------------------

    def _run_one(self, request: ActionRequest, target: Target) -> ActionResult:
        host = self._host(target)
        command = wrap_command(str(request.action.command), request.environment)
        started = time.monotonic()
        try:
            if request.cancel.is_set():
                raise _Failure(Outcome.CANCELLED, "cancelled before connecting")
            result = self._execute(host, command, request)
        except _Failure as failure:
            result = ActionResult(failure.outcome, detail=self.redactor(failure.detail), hint=failure.hint)
        return _with_duration(result, time.monotonic() - started)

    def _execute(self, host: Host, command: str, request: ActionRequest) -> ActionResult:
        channel = self._open_channel(host)
        try:
            if request.cancel.is_set():  # connecting can take a while: look again before starting
                raise _Failure(Outcome.CANCELLED, "cancelled before the command started")
            channel.set_combine_stderr(True)  # one stream, in the order it was written
            channel.exec_command(command)
            return self._collect(host, channel, request)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._forget(host)
            raise _Failure(Outcome.FAILED, f"connection to {_where(host)} lost while the command ran: {_oneline(exc)}",
                           hint="the command may or may not have taken effect; check the host") from exc
        finally:
            channel.close()

    def _collect(self, host: Host, channel: paramiko.Channel, request: ActionRequest) -> ActionResult:
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        buffer = bytearray()
        channel.settimeout(_POLL)
        eof, exited_at = False, None
        while True:
            if request.cancel.is_set():
                return self._stopped(channel, buffer, Outcome.CANCELLED, "cancelled by the operator; remote command killed")
            if deadline is not None and time.monotonic() >= deadline:
                return self._stopped(channel, buffer, Outcome.TIMEOUT,
                                     f"no exit after {request.timeout:g}s; remote command killed", hint=_TIMEOUT_HINT)
            if eof:
                channel.status_event.wait(_POLL)
            else:
                eof = self._read_some(channel, buffer)
            if channel.exit_status_ready():
                exited_at = exited_at or time.monotonic()
                # A daemon started by the command may hold its output open: do not wait for it.
                if eof or time.monotonic() - exited_at > _DRAIN:
                    break
        status = channel.recv_exit_status()
        if status == -1:
            # paramiko's "no exit status": the link died (the wrapper always exits with a status).
            raise paramiko.SSHException("the channel closed without an exit status")
        return self._finished(host, status, self._output(buffer))

    @staticmethod
    def _finished(host: Host, status: int, output: str) -> ActionResult:
        if status == 0:
            return ActionResult(Outcome.OK, detail="exit 0", output=output, exit_status=0)
        return ActionResult(Outcome.FAILED, detail=f"exit status {status} on {_where(host)}", output=output,
                            exit_status=status, hint="see the output for why the command failed")

    @staticmethod
    def _read_some(channel: paramiko.Channel, buffer: bytearray) -> bool:
        """Append what is available; True at end of file."""
        try:
            data = channel.recv(65536)
        except TimeoutError:
            return False
        if not data:
            return True
        buffer.extend(data)
        if len(buffer) > _KEEP_BYTES:  # only the end is kept; far more than clip() keeps
            del buffer[: len(buffer) - _KEEP_BYTES]
        return False

    def _stopped(self, channel: paramiko.Channel, buffer: bytearray, outcome: Outcome, detail: str,
                 hint: str | None = None) -> ActionResult:
        # Closing the channel closes the command's stdin: the wrapper's watcher kills it.
        channel.close()
        return ActionResult(outcome, detail=detail, output=self._output(buffer), hint=hint)

    def _output(self, buffer: bytearray) -> str:
        return clip(self.redactor(bytes(buffer).decode("utf-8", errors="replace")))

    # -- connections -----------------------------------------------------------------

    def _open_channel(self, host: Host) -> paramiko.Channel:
        """A session channel on a (possibly reused) connection; reconnects once if it went stale."""
        for attempt in range(2):
            client = self._client(host)
            try:
                transport = client.get_transport()
                if transport is None or not transport.is_active():
                    raise paramiko.SSHException("SSH session not active")
                return transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                # Nothing ran yet: a stale cached connection is safe to replace.
                self._forget(host)
                if attempt == 1:
                    raise _Failure(Outcome.UNREACHABLE, f"cannot open a session on {_where(host)}: {_oneline(exc)}",
                                   hint="check that sshd on the host is up and not overloaded (MaxSessions)") from exc
        raise AssertionError("unreachable")

    def _client(self, host: Host) -> paramiko.SSHClient:
        with self._lock:
            host_lock = self._host_locks.setdefault(host.name, threading.Lock())
        with host_lock:  # one connection per host, even when calls run concurrently
            client = self._clients.get(host.name)
            if client is None:
                client = self._connect(host)
                with self._lock:
                    self._clients[host.name] = client
            return client

    def _forget(self, host: Host) -> None:
        with self._lock:
            client = self._clients.pop(host.name, None)
        if client is not None:
            client.close()

    def _connect(self, host: Host) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        # Only the inventory's file: never ~/.ssh/known_hosts (load_system_host_keys).
        client.load_host_keys(str(self._known_hosts()))
        client.set_missing_host_key_policy(_StrictPolicy())
        try:
            client.connect(
                host.address, port=host.port, username=host.user, pkey=self._private_key(),
                allow_agent=False, look_for_keys=False, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
            )
        except Exception as exc:
            client.close()
            raise self._translate_connect_error(host, exc) from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)  # notice a dead host during a long command
        return client

    # -- inventory -------------------------------------------------------------------

    def _host(self, target: Target) -> Host:
        if target is None:
            raise InputError("an ssh action needs target hosts", hint="give the step a for_each group or host")
        try:
            return self.inventory.hosts[target]
        except KeyError:
            raise NotFound(f"host {target!r} is not in inventory {self.inventory.name!r}") from None

    def _known_hosts(self) -> Path:
        return self.inventory.require_known_hosts()

    def _private_key(self) -> paramiko.PKey:
        with self._lock:
            if self._key is None:
                self._key = _load_key(self.inventory)
            return self._key

    def _translate_connect_error(self, host: Host, exc: BaseException) -> _Failure:
        if isinstance(exc, _UnknownHostKey):
            return _Failure(
                Outcome.REFUSED,
                f"unknown host key for {host.name} at {_where(host)} ({fingerprint(exc.key)}): "
                f"not in {self.inventory.known_hosts}; refused and not added",
                hint=f"if this is the right server, check that fingerprint with its owner, then add its key to "
                f"{self.inventory.known_hosts}",
            )
        if isinstance(exc, paramiko.BadHostKeyException):
            return _Failure(
                Outcome.REFUSED,
                f"host key CHANGED for {host.name} at {_where(host)}: offered {fingerprint(exc.key)}, "
                f"known {fingerprint(exc.expected_key)}; refused and not replaced (possible man-in-the-middle)",
                hint=f"confirm the new key with the host's owner before replacing its line in {self.inventory.known_hosts}",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return _Failure(
                Outcome.REFUSED,
                f"authentication refused for {host.user or '(current user)'} at {_where(host)}: {_oneline(exc)}",
                hint=f"is the public key of {self.inventory.ssh_key} in that user's authorized_keys on {host.name}?",
            )
        return _unreachable(host, exc, self.connect_timeout)


_TIMEOUT_HINT = "the command may have partly taken effect; raise the step's timeout or check the host"


def _unreachable(host: Host, exc: BaseException, timeout: float) -> _Failure:
    where = _where(host)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) or _errno(exc) == errno.ECONNREFUSED:
        detail, hint = f"connection refused by {where}", "is sshd running on that host and port?"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        detail, hint = f"no answer from {where} within {timeout:g}s", "check the address, the route and the firewalls"
    elif isinstance(exc, socket.gaierror):
        detail, hint = f"cannot resolve {host.address}: {_oneline(exc)}", "check ansible_host in the inventory"
    elif isinstance(exc, paramiko.SSHException) and _NO_HANDSHAKE.search(str(exc)):
        # paramiko says "No existing session" when start_client's wait ran out first.
        detail, hint = (f"no SSH banner or handshake from {where} within {timeout:g}s",
                        "something accepts connections on that port but does not speak SSH, or sshd is overloaded")
    elif _errno(exc) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        detail, hint = f"no route to {where}", "check the address, the route and the firewalls"
    else:
        detail, hint = f"cannot connect to {where}: {_oneline(exc)}", "check sshd on the host and its logs"
    return _Failure(Outcome.UNREACHABLE, detail, hint)


def _load_key(inventory: Inventory) -> paramiko.PKey:
    path = inventory.require_ssh_key()
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise InputError(f"SSH key {path} is protected by a passphrase",
                         hint="the controller needs a key it can use unattended") from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise InputError(f"cannot read SSH key {path}: {_oneline(exc)}") from None


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        return codes.pop() if len(codes) == 1 else None
    return getattr(exc, "errno", None)


def _where(host: Host) -> str:
    return f"{host.address}:{host.port}"


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _with_duration(result: ActionResult, seconds: float) -> ActionResult:
    return replace(result, duration=seconds)
