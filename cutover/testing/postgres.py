"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, pg_ctl on a free loopback port.

The server runs as the ``postgres`` system user when we are root (PostgreSQL
refuses to run as root), listens on 127.0.0.1 only, with password
authentication for TCP, and is stopped and removed by ``stop``. Debian's
``postgresql`` package provides the binaries (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SUPERUSER, PASSWORD = "cutover_owner", "owner-test-secret"


def pg_bin(name: str) -> Path | None:
    for folder in BIN_DIRS:
        if (folder / name).is_file():
            return folder / name
    found = shutil.which(name)
    return Path(found) if found else None


@dataclass
class PostgresServer:
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def url_for(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def stop(self) -> None:
        _as_server_user([str(pg_bin("pg_ctl")), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
                        check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    if pg_bin("initdb") is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="cutover-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    secret = root / "pwfile"
    secret.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(secret, "postgres", "postgres")
    _as_server_user([str(pg_bin("initdb")), "-D", str(data), "-U", SUPERUSER, "--pwfile", str(secret),
                     "-A", "scram-sha-256", "--auth-local", "trust", "-E", "UTF8", "--no-instructions"])
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=on"
    _as_server_user([str(pg_bin("pg_ctl")), "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"])
    return PostgresServer(root, port)


def _as_server_user(command: list[str], check: bool = True) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=check, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
