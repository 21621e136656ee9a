"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, pg_ctl on a free loopback port.

The server runs as the ``postgres`` system user when we are root (PostgreSQL
refuses to run as root), listens on 127.0.0.1 only, with password
authentication for TCP, and is stopped and removed by ``stop``. Debian's
``postgresql`` package provides the binaries (``.ci/run`` installs it). The
server commands are ``cutover.lab.pgcluster``'s, which the lab's platforms use too.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from cutover.lab.pgcluster import (
    BIN_DIRS,
    give_to_server_user,
    init_cluster,
    pg_bin,
    server_owned_dir,
    start_cluster,
    stop_cluster,
)

__all__ = ["BIN_DIRS", "PASSWORD", "SUPERUSER", "PostgresServer", "pg_bin", "start_postgres"]

SUPERUSER, PASSWORD = "cutover_owner", "owner-test-secret"


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
        stop_cluster(self.root / "data", mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    if pg_bin("initdb") is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = server_owned_dir("cutover-pg-", mode=0o755)
    secret = root / "pwfile"
    secret.write_text(PASSWORD + "\n")
    give_to_server_user(secret)
    init_cluster(root / "data", SUPERUSER, password_file=secret)
    port = _free_port()
    start_cluster(root / "data", root / "log", {"listen_addresses": "127.0.0.1", "port": str(port),
                                                "unix_socket_directories": str(root), "fsync": "on"})
    return PostgresServer(root, port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
