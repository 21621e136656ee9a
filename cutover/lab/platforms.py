"""The lab's two platforms as PostgreSQL clusters: start, stop, and the ``platform-db-down`` fault.

Each platform (``legacy``, ``cloud``) is a cluster of its own, listening on a
unix socket only (no TCP port), in ``<lab>/pg/<name>/``: its data, its log and
its socket. ``<lab>/pg`` is a link to a folder under the system temporary
folder, owner-only and owned by whoever runs the server (``postgres`` when
the lab runs as root: PostgreSQL refuses root, and that user could not enter a
root-only lab folder; a socket's path must also stay under 108 bytes). The
socket trusts whoever can reach it, so only the lab's owner and the server
user can. ``cutover lab down`` stops both clusters and removes that folder:
the platforms' databases go with the lab.

The schema (one partition per SAMU) and the link between the two
(``postgres_fdw``) are ``samulab``'s, since the platform tools use them too.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from cutover.lab import pgcluster
from cutover.lab.tools import samulab

DIR_PREFIX = "cutover-lab-pg-"
# A small footprint on a 2-core machine shared with sshds, the router and the traffic.
# fsync is off: the lab's clusters need not survive a machine crash, only their own
# restarts (a fast stop, as the platform-db-down fault does, loses no commit).
SETTINGS = {
    "listen_addresses": "''", "port": str(samulab.PG_PORT), "unix_socket_permissions": "0700",
    "shared_buffers": "16MB", "max_connections": "60", "fsync": "off", "full_page_writes": "off",
    "max_parallel_workers_per_gather": "0", "max_worker_processes": "4", "jit": "off",
    "log_min_messages": "warning", "log_line_prefix": "'%m %a '",
}


class PlatformClusterFailed(Exception):
    """A platform's cluster could not be created or started."""


def pg_link(lab_dir: Path) -> Path:
    return Path(lab_dir) / "pg"


def cluster_dir(lab_dir: Path, name: str) -> Path:
    return samulab.platform_socket_dir(lab_dir, name)


def data_dir(lab_dir: Path, name: str) -> Path:
    return cluster_dir(lab_dir, name) / "data"


def create_clusters(lab_dir: Path) -> None:
    """A fresh folder and an initialised (stopped) cluster per platform; any previous ones removed."""
    remove_clusters(lab_dir)
    root = pgcluster.server_owned_dir(DIR_PREFIX)
    pg_link(lab_dir).symlink_to(root)
    for name in samulab.PLATFORMS:
        folder = root / name
        folder.mkdir(mode=0o700)
        pgcluster.give_to_server_user(folder)
    for name in samulab.PLATFORMS:  # copies of one cached initdb: initdb is most of the start-up time
        try:
            pgcluster.init_from_template(data_dir(lab_dir, name), samulab.PG_USER)
        except pgcluster.ClusterFailed as exc:
            raise PlatformClusterFailed(f"the {name} platform's PostgreSQL could not be created: {exc}") from exc


def start_cluster(lab_dir: Path, name: str) -> int:
    folder = cluster_dir(lab_dir, name)
    try:
        return pgcluster.start_cluster(folder / "data", folder / "log",
                                       {**SETTINGS, "unix_socket_directories": f"'{folder}'",
                                        "cluster_name": f"cutover-lab-{name}"})
    except pgcluster.ClusterFailed as exc:
        raise PlatformClusterFailed(f"the {name} platform's PostgreSQL did not start: {exc}") from exc


def stop_cluster(lab_dir: Path, name: str) -> bool:
    """A fast shut-down (open transactions rolled back); True if it was running."""
    if not pg_link(lab_dir).exists():
        return False
    return pgcluster.stop_cluster(data_dir(lab_dir, name), mode="fast")


def cluster_pid(lab_dir: Path, name: str) -> int | None:
    if not pg_link(lab_dir).exists():
        return None
    return pgcluster.postmaster_pid(data_dir(lab_dir, name))


def start_platforms(lab_dir: Path, codes: Sequence[str]) -> dict[str, int]:
    """Create and start both clusters, each with its ``samu`` database, schema and link; their pids."""
    create_clusters(lab_dir)
    pids = {name: start_cluster(lab_dir, name) for name in samulab.PLATFORMS}
    for name in samulab.PLATFORMS:
        admin = samulab.Platform(name, cluster_dir(lab_dir, name), database="postgres")
        try:
            admin.run(f"CREATE DATABASE {samulab.PG_DATABASE}")
        finally:
            admin.close()
    samulab.create_platforms(lab_dir, codes)
    return pids


def remove_clusters(lab_dir: Path) -> list[str]:
    """Stop both clusters and remove their folder; the names of those that were running."""
    link = pg_link(lab_dir)
    stopped = [name for name in samulab.PLATFORMS if link.exists() and stop_cluster(lab_dir, name)]
    if link.is_symlink():
        target = link.resolve()
        link.unlink()
        if target.name.startswith(DIR_PREFIX):  # never remove anything the lab did not make
            shutil.rmtree(target, ignore_errors=True)
    elif link.exists():
        shutil.rmtree(link, ignore_errors=True)
    return stopped

