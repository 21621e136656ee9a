"""Start and stop PostgreSQL clusters from Debian's server binaries (stdlib only).

Shared by the lab (its legacy and cloud platforms, ``cutover.lab.platforms``)
and the tests' throwaway journal server (``cutover.testing.postgres``).

PostgreSQL refuses to run as root: when we are root, every server command runs
as the ``postgres`` system user (``runuser``), and the folders it writes must
be that user's. ``server_owned_dir`` makes such a folder, owner-only.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SERVER_USER = "postgres"  # who runs the server when we are root
COMMAND_TIMEOUT_S = 120


class ClusterFailed(Exception):
    """A server command failed; the message carries its output (and the log's tail when there is one)."""


def pg_bin(name: str) -> Path | None:
    for folder in BIN_DIRS:
        if (folder / name).is_file():
            return folder / name
    found = shutil.which(name)
    return Path(found) if found else None


def installed() -> bool:
    return pg_bin("initdb") is not None and pg_bin("pg_ctl") is not None


def as_server_user(command: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = list(command)
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise ClusterFailed(f"{Path(command[0]).name} failed (exit {result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()[-800:]}")
    return result


def give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SERVER_USER, SERVER_USER)


def server_owned_dir(prefix: str, mode: int = 0o700) -> Path:
    """A fresh folder under the system temporary folder, owned by whoever runs the server.

    Under /tmp, not under the caller's folder: when we are root the server
    user cannot traverse a root-only folder, and a unix socket's path must stay
    short (108 bytes).
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, mode)
    give_to_server_user(root)
    return root


def init_cluster(data: Path, superuser: str, *, password_file: Path | None = None,
                 auth_host: str = "scram-sha-256", auth_local: str = "trust") -> None:
    """``initdb``: a new cluster in ``data`` (its parent must belong to the server user)."""
    command = [str(pg_bin("initdb")), "-D", str(data), "-U", superuser, "-A", auth_host,
               "--auth-local", auth_local, "-E", "UTF8", "--no-instructions", "--no-sync"]
    if password_file is not None:
        command += ["--pwfile", str(password_file)]
    as_server_user(command)


def init_from_template(data: Path, superuser: str, *, auth_host: str = "reject", auth_local: str = "trust") -> None:
    """A new cluster in ``data``, copied from a cached ``initdb`` of the same options (made on first use).

    ``initdb`` costs seconds (it boots a server to build the catalogue); a copy
    of its result, a fraction of that. The labs start two clusters each, and
    the tests start many labs. The cache lives beside the clusters, in the
    system temporary folder, owner-only and owned by the server user; one not
    so owned is never used.
    """
    template = _template(superuser, auth_host, auth_local)
    as_server_user(["cp", "-a", str(template), str(data)])


def _template(superuser: str, auth_host: str, auth_local: str) -> Path:
    key = hashlib.sha256(f"{pg_bin('initdb')}|{superuser}|{auth_host}|{auth_local}".encode()).hexdigest()[:12]
    final = Path(tempfile.gettempdir()) / f"cutover-pg-template-{_server_uid()}-{key}"
    if not _trusted(final):
        building = server_owned_dir(f"{final.name}.build-")
        init_cluster(building / "data", superuser, auth_host=auth_host, auth_local=auth_local)
        try:
            os.rename(building, final)  # atomic: a concurrent builder's copy wins, ours is dropped
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
        if not _trusted(final):
            raise ClusterFailed(f"{final} is not an owner-only folder of the server user: refusing it as a template")
    return final / "data"


def _server_uid() -> int:
    return pwd.getpwnam(SERVER_USER).pw_uid if os.geteuid() == 0 else os.geteuid()


def _trusted(folder: Path) -> bool:
    try:
        info = folder.lstat()
    except OSError:
        return False
    return info.st_uid == _server_uid() and (info.st_mode & 0o077) == 0 and (folder / "data" / "PG_VERSION").is_file()


def start_cluster(data: Path, log: Path, settings: dict[str, str]) -> int:
    """``pg_ctl start`` with ``-c name=value`` settings, waiting until it accepts connections; its pid."""
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    result = as_server_user([str(pg_bin("pg_ctl")), "-D", str(data), "-l", str(log), "-o", options,
                             "-w", "-t", "60", "start"], check=False)
    if result.returncode != 0:
        raise ClusterFailed(f"PostgreSQL did not start in {data}: {result.stdout.strip()[-300:]} "
                            f"{log_tail(log)}")
    pid = postmaster_pid(data)
    if pid is None:
        raise ClusterFailed(f"PostgreSQL started in {data} but wrote no postmaster.pid")
    return pid


def stop_cluster(data: Path, mode: str = "fast") -> bool:
    """``pg_ctl stop`` (``fast``: roll back open transactions, clean shut-down); True if it was running."""
    if postmaster_pid(data) is None:
        return False
    result = as_server_user([str(pg_bin("pg_ctl")), "-D", str(data), "-m", mode, "-w", "-t", "60", "stop"],
                            check=False)
    return result.returncode == 0


def postmaster_pid(data: Path) -> int | None:
    """The running server's pid from ``postmaster.pid``, or None (no file, or a stale one)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the server user
    return pid


def log_tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
