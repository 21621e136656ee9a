"""Shared fixtures: a real OpenSSH server on loopback, and an inventory that points at it.

``sshd`` starts a real ``/usr/sbin/sshd`` (via ``cutover.lab.sshd``) in
``tmp_path`` on a free port, with its own host key and a client key allowed
to log in as the current user; it is stopped at teardown. ``make_inventory``
writes a tiny Ansible inventory in ``tmp_path`` and loads it with
``cutover.model.inventory.load_inventory``; ``ssh_inventory`` is the common case
(one host, ``samu-30``, on that sshd, its host key in known_hosts).

Usage::

    def test_something(sshd, ssh_inventory):
        host = ssh_inventory.hosts["samu-30"]           # 127.0.0.1:sshd.port
    def test_other(sshd, make_inventory):
        inventory = make_inventory({"samu-30": sshd.port}, known_hosts=[])  # key unknown
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cutover.lab.sshd import SSHD, SshdFailed, SshdProcess, free_port, generate_keypair, start_sshd, write_known_hosts
from cutover.model.inventory import Inventory, load_inventory


@dataclass(frozen=True)
class LoopbackSshd:
    """A running test sshd and the client key that may log in to it."""

    process: SshdProcess
    client_key: Path
    user: str

    @property
    def address(self) -> str:
        return self.process.address

    @property
    def port(self) -> int:
        return self.process.port

    def known_hosts_line(self) -> str:
        return self.process.known_hosts_line()


MakeInventory = Callable[..., Inventory]


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One client key pair for the whole session (the operator's key)."""
    return generate_keypair(tmp_path_factory.mktemp("client") / "id_ed25519", "cutover-tests")


@pytest.fixture
def sshd(tmp_path: Path, ssh_client_key: Path) -> Iterator[LoopbackSshd]:
    """A real sshd on 127.0.0.1:<free port> with its own host key; stopped at teardown."""
    if not SSHD.is_file():
        pytest.skip(f"OpenSSH server not installed at {SSHD} (apt-get install openssh-server)")
    workdir = tmp_path / "sshd"
    workdir.mkdir()
    authorized = workdir / "authorized_keys"
    authorized.write_text(ssh_client_key.with_name(ssh_client_key.name + ".pub").read_text())
    authorized.chmod(0o600)
    process = _start_on_free_port(workdir, authorized)
    try:
        yield LoopbackSshd(process=process, client_key=ssh_client_key, user=getpass.getuser())
    finally:
        process.stop()


def _start_on_free_port(workdir: Path, authorized: Path, attempts: int = 3) -> SshdProcess:
    # free_port() can race with another process taking the port; retry that case only.
    for attempt in range(attempts):
        try:
            return start_sshd(workdir, name="samu-30", port=free_port(), authorized_keys=authorized,
                              environment={"SAMU_CODE": "30", "SAMU_NAME": "Nimes"})
        except SshdFailed as exc:
            if "Address already in use" not in exc.message or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def make_inventory(tmp_path: Path, ssh_client_key: Path) -> MakeInventory:
    """Build and load an inventory: ``make_inventory({host: port}, known_hosts=[lines] | None)``.

    ``known_hosts=None`` leaves the known_hosts file out (it does not exist);
    ``user`` defaults to the current user (the one the test sshd lets in);
    ``extra_vars`` go to ``group_vars/all.yml`` (e.g. a secret to redact).
    """
    counter = iter(range(1000))

    def make(
        hosts: Mapping[str, int],
        *,
        known_hosts: Sequence[str] | None,
        address: str = "127.0.0.1",
        user: str | None = None,
        extra_vars: Mapping[str, object] | None = None,
    ) -> Inventory:
        folder = tmp_path / f"inventory-{next(counter)}"
        folder.mkdir()
        host_entries = {
            name: {"ansible_host": address, "ansible_port": port, "ansible_user": user or getpass.getuser()}
            for name, port in hosts.items()
        }
        (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"sites": {"hosts": host_entries}}}}))
        (folder / "group_vars").mkdir()
        all_vars = {
            "cutover_lab": True,
            "cutover_known_hosts": "ssh/known_hosts",
            "ansible_ssh_private_key_file": str(ssh_client_key),
            **(extra_vars or {}),
        }
        (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(all_vars))
        if known_hosts is not None:
            write_known_hosts(folder / "ssh" / "known_hosts", known_hosts)
        return load_inventory(tmp_path, str(folder))

    return make


@pytest.fixture
def ssh_inventory(sshd: LoopbackSshd, make_inventory: MakeInventory) -> Inventory:
    """One host, ``samu-30``, on the test sshd, whose host key is the one known."""
    return make_inventory({"samu-30": sshd.port}, known_hosts=[sshd.known_hosts_line()])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="How many examples each fuzz test tries (default: a fixed number for make test).")
    parser.addoption("--every-rollback-point", action="store_true", default=False,
                     help="Roll the wave-2 night back from each of its 7 rollback points (make proof), "
                          "not only from point-to-cloud, the last one that acted (make test).")
    parser.addoption("--every-crash-boundary", action="store_true", default=False,
                     help="Crash the controller at every journal boundary (make proof), not at a fixed "
                          "fifth of them, each command's first and last append among them (make test).")
    parser.addoption("--no-skips", action="store_true", default=False,
                     help="A skipped test fails the session (make test: system-deps installs everything the "
                          "tests need, so a skip means a test that did not run).")


SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under xdist the workers' reports reach the controller's hook too; the controller decides.
    if session.config.getoption("--no-skips") and SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if config.getoption("--no-skips") and SKIPPED:
        terminalreporter.write_line(f"--no-skips: {len(SKIPPED)} test(s) skipped, which fails the run: "
                                    + ", ".join(SKIPPED[:10]), red=True)


# `make test` runs on two workers (pytest-xdist). A test module goes whole to one worker: its module-scoped
# fixtures (a lab, a PostgreSQL server) start once, and its tests keep their order (test_waves and
# test_night_faults build each test on the previous one). The modules that bring up the shipped lab
# inventory, whose ports are fixed, count as one: two of them never run at once.
SHIPPED_LAB_PORTS = frozenset({"tests/e2e/test_night.py", "tests/lab/test_lab_e2e.py"})


# The longest modules go first, so the two workers end together: a long module handed out last would run
# alone at the end. Measured with `pytest -n 2 --durations` (seconds, loaded machine, 2026-12-03); the other
# modules take under 40 s each and follow in collection order.
LONGEST_FIRST = ("tests/e2e/test_waves.py",              # 535
                 "tests/e2e/test_night.py",              # 320, with test_lab_e2e (94): one scope
                 "tests/lab/test_lab_e2e.py",
                 "tests/e2e/test_night_faults.py",       # 214
                 "tests/e2e/test_crash_boundaries.py",   # 144
                 "tests/infra/test_check_cli.py",        # 99
                 "tests/test_types.py",                  # 96
                 "tests/fuzz/test_fuzzed_inputs.py",     # 73
                 "tests/e2e/test_criteria.py",           # 52
                 "tests/infra/test_limits.py",           # 50
                 "tests/infra/test_cli.py",              # 50
                 "tests/e2e/test_collateral.py")         # 44


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a module's tests keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shipped-lab-inventory" if module in SHIPPED_LAB_PORTS else module

    config.option.loadscopereorder = False  # xdist would hand out the modules with the most tests first
    return ModuleScheduling(config, log)
