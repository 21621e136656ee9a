"""Fixtures for the lab's tests: lab data in ``tmp_path`` on one pair of real PostgreSQL platforms (no sshd).

The two clusters (legacy, cloud) start once per test session; each test gets
fresh schemas on them (``samulab.create_lab_data`` drops and recreates them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.lab import pgcluster, platforms
from cutover.lab.tools import samulab

CODES = ("13", "2A", "30")


@pytest.fixture(scope="session")
def platform_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder the clusters live in (what a lab's ``pg`` link points at)."""
    if not pgcluster.installed():
        pytest.fail("PostgreSQL's server binaries are missing (Debian: apt-get install postgresql)")
    holder = tmp_path_factory.mktemp("platform-clusters")
    platforms.start_platforms(holder, CODES)
    yield platforms.pg_link(holder).resolve()
    platforms.remove_clusters(holder)


@pytest.fixture
def lab_dir(tmp_path: Path, platform_clusters: Path) -> Path:
    """A lab folder with both platforms serving and three SAMUs nominal on legacy."""
    folder = tmp_path / "lab"
    folder.mkdir()
    platforms.pg_link(folder).symlink_to(platform_clusters)
    samulab.create_lab_data(folder, CODES)
    return folder


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[samulab.LabData]:
    data = samulab.LabData(lab_dir)
    yield data
    data.close()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(15)


@pytest.fixture
def platform_down(lab_dir: Path) -> Iterator[object]:
    """``platform_down("legacy")`` stops that platform's cluster for the rest of the test (restarted after)."""
    stopped: list[str] = []

    def stop(name: str) -> None:
        platforms.stop_cluster(lab_dir, name)
        stopped.append(name)

    yield stop
    for name in stopped:
        platforms.start_cluster(lab_dir, name)
