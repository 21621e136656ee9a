"""Real OpenSSH servers for the lab: one ``sshd`` per SAMU site, on loopback.

The lab (``cutover lab up``) and the integration tests start real OpenSSH
servers with this module, so the SSH executor and Ansible talk to the real
thing: real host keys, strict host-key checking, key authentication only.

Interface (stable; the lab and ``tests/conftest.py`` import it)::

    generate_keypair(path, comment, *, overwrite=False) -> Path
        ed25519 key pair at ``path`` (0600) and ``path.pub``; an existing
        pair is kept unless ``overwrite`` (so known_hosts stays valid
        across ``lab down`` / ``lab up``).

    start_sshd(workdir, *, name, port, authorized_keys, host_key=None,
               environment={}, listen="127.0.0.1", start_timeout=10.0) -> SshdProcess
        Writes ``workdir/sshd_config`` and starts ``/usr/sbin/sshd -D -e``
        in its own session (it outlives the caller), logging to
        ``workdir/sshd.log``; returns once the port accepts connections.
        Without ``host_key`` one is generated at
        ``workdir/ssh_host_ed25519_key`` (or reused if already there).
        ``environment`` is set in every session with ``SetEnv`` (e.g. the
        site identity: ``{"SAMU_CODE": "30"}``). Sessions get ``HOME`` =
        ``workdir/home`` unless ``environment`` names one: a site is a machine
        of its own, so the controller user's shell start-up files (a pyenv
        set-up in ``~/.bashrc``, which bash runs for every command sshd starts)
        are not the site's; they cost ~0.1 s of CPU per command and write to
        its output.

    SshdProcess(name, port, pid, host_key_pub, workdir)   frozen dataclass
        .stop(timeout=5.0) -> None    .is_running() -> bool
        .address -> "127.0.0.1"       .known_hosts_line(address=None) -> str
        .log -> Path                  .to_dict() / SshdProcess.from_dict(data)  (lab state file)

    stop_pid(pid, timeout=5.0) -> bool     SIGTERM, then SIGKILL; True if it was running
    is_sshd_running(pid) -> bool
    known_hosts_line(address, port, host_pub_key_text) -> "[127.0.0.1]:22101 ssh-ed25519 AAAA..."
    write_known_hosts(path, lines) -> Path  (mode 0600)
    free_port(listen="127.0.0.1") -> int    a port free right now (tests, lab)

Errors: ``ToolMissing`` when ``sshd`` or ``ssh-keygen`` is not installed;
``SshdFailed`` (a ``CutoverError``) when sshd exits or never listens, with
the end of its log.

Works as root (creates the privilege-separation directory ``/run/sshd``) and
as an ordinary user (who can then log in with their own key only).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cutover.errors import CutoverError, ToolMissing

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
CONFIG_NAME = "sshd_config"
LOG_NAME = "sshd.log"
PID_NAME = "sshd.pid"
HOST_KEY_NAME = "ssh_host_ed25519_key"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSTALL_HINT = "install it with: apt-get install openssh-server"


class SshdFailed(CutoverError):
    """An sshd we started exited or never accepted connections."""


@dataclass(frozen=True)
class SshdProcess:
    """A running lab sshd. Plain data, so the lab can persist it and stop it later."""

    name: str
    port: int
    pid: int
    host_key_pub: str  # the host public key line: "ssh-ed25519 AAAA... comment"
    workdir: Path
    address: str = "127.0.0.1"

    def stop(self, timeout: float = 5.0) -> None:
        stop_pid(self.pid, timeout=timeout)

    def is_running(self) -> bool:
        return is_sshd_running(self.pid)

    def known_hosts_line(self, address: str | None = None) -> str:
        return known_hosts_line(address or self.address, self.port, self.host_key_pub)

    @property
    def log(self) -> Path:
        return self.workdir / LOG_NAME

    def to_dict(self) -> dict[str, str | int]:
        """Plain JSON-able data, for the lab's state file (``from_dict`` reads it back)."""
        return {"name": self.name, "port": self.port, "pid": self.pid, "host_key_pub": self.host_key_pub,
                "workdir": str(self.workdir), "address": self.address}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SshdProcess:
        return cls(name=str(data["name"]), port=int(str(data["port"])), pid=int(str(data["pid"])),
                   host_key_pub=str(data["host_key_pub"]), workdir=Path(str(data["workdir"])),
                   address=str(data.get("address", "127.0.0.1")))


# --------------------------------------------------------------------------
# Keys and known_hosts


def generate_keypair(path: Path, comment: str, *, overwrite: bool = False) -> Path:
    """Create an ed25519 key pair at ``path`` / ``path.pub``; returns ``path``."""
    path = Path(path)
    public = path.with_name(path.name + ".pub")
    if path.exists() and public.exists() and not overwrite:
        return path
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ToolMissing("ssh-keygen is not installed", hint="install it with: apt-get install openssh-client")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, public):  # ssh-keygen would ask before overwriting
        stale.unlink(missing_ok=True)
    result = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise CutoverError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")
    path.chmod(0o600)
    return path


def known_hosts_line(address: str, port: int, host_pub_key_text: str) -> str:
    """A known_hosts line for ``address:port``; non-22 ports use the ``[addr]:port`` form."""
    fields = host_pub_key_text.split()
    if len(fields) < 2:
        raise ValueError(f"not a public key line: {host_pub_key_text!r}")
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {fields[0]} {fields[1]}"


def write_known_hosts(path: Path, lines: Iterable[str]) -> Path:
    """Write a known_hosts file readable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{line}\n" for line in lines)
    path.chmod(0o600)  # O_CREAT's mode does not apply to an existing file
    return path


# --------------------------------------------------------------------------
# Starting and stopping


def start_sshd(
    workdir: Path,
    *,
    name: str,
    port: int,
    authorized_keys: Path,
    host_key: Path | None = None,
    environment: Mapping[str, str] | None = None,
    listen: str = "127.0.0.1",
    start_timeout: float = 10.0,
) -> SshdProcess:
    """Start a real sshd on ``listen:port`` and wait until it accepts connections."""
    if not SSHD.is_file():
        raise ToolMissing(f"OpenSSH server not found at {SSHD}", hint=_INSTALL_HINT)
    if not ipaddress.ip_address(listen).is_loopback:
        raise ValueError(f"lab sshd listens on loopback only, not {listen}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = Path(host_key) if host_key else generate_keypair(workdir / HOST_KEY_NAME, f"{name}-host")
    environment = {"HOME": str(_site_home(workdir)), **(environment or {})}
    config = _write_config(workdir, port=port, listen=listen, host_key=host_key,
                           authorized_keys=Path(authorized_keys).resolve(), environment=environment)
    if os.geteuid() == 0:
        # sshd as root insists on its privilege-separation directory.
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    pid, offset = _spawn(config, workdir / LOG_NAME)
    _wait_listening(pid, listen, port, workdir / LOG_NAME, offset, start_timeout)
    host_pub = host_key.with_name(host_key.name + ".pub").read_text().strip()
    return SshdProcess(name=name, port=port, pid=pid, host_key_pub=host_pub, workdir=workdir, address=listen)


def _site_home(workdir: Path) -> Path:
    home = workdir / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    return home


def _write_config(
    workdir: Path, *, port: int, listen: str, host_key: Path, authorized_keys: Path, environment: Mapping[str, str]
) -> Path:
    lines = [
        f"Port {port}",
        f"ListenAddress {listen}",
        f"HostKey {host_key.resolve()}",
        f"PidFile {workdir / PID_NAME}",
        f"AuthorizedKeysFile {authorized_keys}",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "PermitRootLogin prohibit-password",
        # The lab's files live under /tmp or a project folder whose parents we
        # do not control; StrictModes would refuse them for a world-writable /tmp.
        "StrictModes no",
        # PAM would consult the system's account stack; key auth needs none of it.
        "UsePAM no",
        "UseDNS no",
        "PermitUserEnvironment no",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "LoginGraceTime 20",
        "MaxStartups 100:30:200",  # a fan-out over a wave connects at once
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",  # Ansible copies files over sftp
        "SetEnv " + " ".join(_setenv_item(k, v) for k, v in sorted(environment.items())),
    ]
    config = workdir / CONFIG_NAME
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    return config


def _setenv_item(key: str, value: str) -> str:
    if not _ENV_NAME.match(key):
        raise ValueError(f"invalid environment variable name for SetEnv: {key!r}")
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"environment value for {key} may not contain quotes, backslashes or newlines")
    return f'"{key}={value}"'


def _spawn(config: Path, log: Path) -> tuple[int, int]:
    """Start sshd; returns its pid and where its new log lines start."""
    with open(log, "ab") as out:
        offset = out.tell()
        # Own session: `cutover lab up` exits and the sshd keeps running until `lab down`.
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True,
        )
    return process.pid, offset


def _wait_listening(pid: int, listen: str, port: int, log: Path, offset: int, timeout: float) -> None:
    # Wait for *our* sshd to say it listens: a TCP probe alone would be answered
    # by whatever else already holds the port.
    ready = f"Server listening on {listen} port {port}."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in _read_from(log, offset):
            return
        if not is_sshd_running(pid):
            stop_pid(pid)  # no-op when it is gone; never leave a half-started sshd behind
            raise SshdFailed(f"sshd on {listen}:{port} exited at start: {_log_tail(log, offset)}",
                             hint=f"see {log}; is the port already taken?")
        time.sleep(0.02)
    stop_pid(pid)
    raise SshdFailed(f"sshd on {listen}:{port} did not start listening within {timeout:g}s",
                     hint=f"see {log}")


def _read_from(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _log_tail(log: Path, offset: int, lines: int = 3) -> str:
    tail = _read_from(log, offset).strip().splitlines()[-lines:]
    return " | ".join(tail) or "(empty log)"


def is_sshd_running(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) sshd process."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return _looks_like_sshd(pid)


def stop_pid(pid: int, timeout: float = 5.0) -> bool:
    """Stop the sshd ``pid`` (SIGTERM, then SIGKILL); True if it was running.

    A pid that is no longer an sshd (the lab's record outlived a reboot and the
    number was reused) is left alone.
    """
    if not is_sshd_running(pid):
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_sshd_running(pid):
            return True
        time.sleep(0.02)
    _signal(pid, signal.SIGKILL)
    while is_sshd_running(pid) and time.monotonic() < deadline + 2:
        time.sleep(0.02)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise CutoverError(f"not allowed to stop sshd pid {pid}",
                           hint="it belongs to another user; stop it as that user") from None


def _reap(pid: int) -> None:
    # When the caller is sshd's parent (tests, a long-lived lab process), a
    # stopped sshd stays a zombie until reaped and would still answer kill(0).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _looks_like_sshd(pid: int) -> bool:
    # The executable name from /proc/<pid>/stat, not cmdline: sshd rewrites its
    # argv for its process title, and a read mid-rewrite can see an empty one.
    proc = Path(f"/proc/{pid}")
    try:
        stat = proc.joinpath("stat").read_text()
    except OSError:
        return not proc.parent.joinpath("self").is_dir()  # no /proc on this system: trust kill(0)
    name, _, rest = stat.partition("(")[2].rpartition(")")
    state = rest.split()[0] if rest.split() else "?"
    return name == "sshd" and state != "Z"


def free_port(listen: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``listen`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((listen, 0))
        return int(sock.getsockname()[1])
