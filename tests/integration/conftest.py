"""Integration fixtures beyond tests/conftest.py: several real sshds at once, and an Ansible project.

``sshd_pool(n)`` starts ``n`` real OpenSSH servers on loopback (each with its
own host key, the session's client key allowed), all stopped at teardown.
``ansible_project`` is a project folder in ``tmp_path`` with an empty
``playbooks/``; tests write tiny playbooks into it.

Usage::

    def test_x(sshd_pool, make_inventory, ansible_project):
        servers = sshd_pool(3)
        inventory = make_inventory({f"samu-{i}": s.port for i, s in enumerate(servers)},
                                   known_hosts=[s.known_hosts_line() for s in servers],
                                   extra_vars={"ansible_python_interpreter": "/usr/bin/python3"})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cutover.lab.sshd import SSHD, SshdProcess, free_port, start_sshd

SshdPool = Callable[[int], list[SshdProcess]]


@pytest.fixture
def sshd_pool(tmp_path: Path, ssh_client_key: Path) -> Iterator[SshdPool]:
    """Start n real sshds on loopback; all are stopped at teardown."""
    if not SSHD.is_file():
        pytest.skip(f"OpenSSH server not installed at {SSHD} (apt-get install openssh-server)")
    started: list[SshdProcess] = []
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(ssh_client_key.with_name(ssh_client_key.name + ".pub").read_text())
    authorized.chmod(0o600)

    def start(count: int) -> list[SshdProcess]:
        servers = []
        for _ in range(count):
            workdir = tmp_path / f"sshd-{len(started)}"
            workdir.mkdir()
            server = _start(workdir, authorized)
            started.append(server)
            servers.append(server)
        return servers

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def _start(workdir: Path, authorized: Path, attempts: int = 3) -> SshdProcess:
    # free_port() can race with another process taking the port; retry a few times.
    for attempt in range(attempts):
        try:
            return start_sshd(workdir, name=workdir.name, port=free_port(), authorized_keys=authorized)
        except Exception:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def ansible_project(tmp_path: Path) -> Path:
    """A project folder with an empty playbooks/ (no ansible.cfg: the executor isolates itself)."""
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    return root
