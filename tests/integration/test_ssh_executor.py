"""The SSH executor against a real OpenSSH server on loopback (see tests/conftest.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from cutover.core.actions import OUTPUT_LIMIT, ActionRequest, ActionResult, Outcome, Phase
from cutover.errors import NotFound
from cutover.executors.ssh import SshExecutor
from cutover.lab.sshd import free_port, generate_keypair, known_hosts_line
from cutover.model.inventory import Inventory
from cutover.model.redact import PLACEHOLDER, Redactor

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class SshAction:
    """Stands in for the runbook's ssh action model: the executor reads ``command`` only."""

    command: str


def _request(command: str, targets: tuple[str, ...] = ("samu-30",), *, timeout: float | None = 10.0,
             cancel: threading.Event | None = None, environment: Mapping[str, str] | None = None) -> ActionRequest:
    return ActionRequest(run_id="run-1", step_id="step-1", phase=Phase.ACTION, action=SshAction(command),
                         targets=targets, timeout=timeout, cancel=cancel or threading.Event(),
                         environment=environment or {})


def _last_line(result: ActionResult) -> str:
    """The command's own last line: the remote login shell's rc files may write before it on the same stream
    (on CI, root's .bashrc runs ``pyenv rehash``, which complains when concurrent sessions race for its lock)."""
    return result.output.strip().splitlines()[-1]


def _run(inventory: Inventory, command: str, *, redactor: Redactor | None = None, connect_timeout: float = 5.0,
         **kwargs: object) -> ActionResult:
    with SshExecutor(inventory, redactor or Redactor(), connect_timeout=connect_timeout) as executor:
        return executor.run(_request(command, **kwargs))["samu-30"]  # type: ignore[arg-type]


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _pid_from(path: Path, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"the remote command never wrote {path}")


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections but never says a word (no SSH banner)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_success_captures_stdout_and_stderr_and_passes_the_environment(ssh_inventory: Inventory) -> None:
    """A command that exits 0 is OK, with stdout, stderr and the CUTOVER_* variables in its output."""
    result = _run(ssh_inventory, 'echo "hello from $SAMU_CODE"; echo "run $CUTOVER_RUN_ID" >&2',
                  environment={"CUTOVER_RUN_ID": "it's run-1"})
    assert result.outcome is Outcome.OK, result
    assert result.exit_status == 0
    assert "hello from 30" in result.output
    assert "run it's run-1" in result.output
    assert result.duration > 0


def test_a_command_reading_stdin_does_not_hang(ssh_inventory: Inventory) -> None:
    """Remote commands get an empty stdin, so one that reads it finishes at once."""
    result = _run(ssh_inventory, "cat; echo done", timeout=5.0)
    assert result.outcome is Outcome.OK
    assert _last_line(result) == "done"


def test_non_zero_exit_is_failed_with_its_status_and_output(ssh_inventory: Inventory) -> None:
    """A command that exits 3 is FAILED with exit_status 3 and its output kept."""
    result = _run(ssh_inventory, "echo 'table samu30 is locked' >&2; exit 3")
    assert result.outcome is Outcome.FAILED
    assert result.exit_status == 3
    assert "table samu30 is locked" in result.output
    assert result.hint


def test_unknown_host_key_is_refused_and_nothing_runs(sshd, make_inventory, tmp_path: Path) -> None:
    """With the server's key absent from known_hosts, the executor refuses, runs nothing and adds nothing."""
    other = generate_keypair(tmp_path / "other-host", "other").with_name("other-host.pub").read_text()
    inventory = make_inventory({"samu-30": sshd.port}, known_hosts=[known_hosts_line("127.0.0.1", 1, other)])
    before = inventory.known_hosts.read_text()
    marker = tmp_path / "ran"
    result = _run(inventory, f"touch {marker}")
    assert result.outcome is Outcome.REFUSED
    assert f"127.0.0.1:{sshd.port}" in result.detail and "samu-30" in result.detail
    assert "not added" in result.detail and "SHA256:" in result.detail
    assert not result.outcome.started
    assert not marker.exists()
    assert inventory.known_hosts.read_text() == before


def test_changed_host_key_is_refused_and_not_replaced(sshd, make_inventory, tmp_path: Path) -> None:
    """When known_hosts holds a different key for this host and port, the executor refuses and runs nothing."""
    impostor = generate_keypair(tmp_path / "impostor", "x").with_name("impostor.pub").read_text()
    inventory = make_inventory({"samu-30": sshd.port}, known_hosts=[known_hosts_line("127.0.0.1", sshd.port, impostor)])
    before = inventory.known_hosts.read_text()
    marker = tmp_path / "ran"
    result = _run(inventory, f"touch {marker}")
    assert result.outcome is Outcome.REFUSED
    assert "CHANGED" in result.detail and f"127.0.0.1:{sshd.port}" in result.detail
    assert "not replaced" in result.detail
    assert not marker.exists()
    assert inventory.known_hosts.read_text() == before


def test_authentication_failure_is_refused(sshd, make_inventory) -> None:
    """A user the server does not let in is REFUSED with a hint naming the key."""
    inventory = make_inventory({"samu-30": sshd.port}, known_hosts=[sshd.known_hosts_line()], user="no-such-user")
    result = _run(inventory, "true")
    assert result.outcome is Outcome.REFUSED
    assert "authentication" in result.detail
    assert str(inventory.ssh_key) in (result.hint or "")


def test_connection_refused_is_unreachable(make_inventory) -> None:
    """A port where nothing listens gives UNREACHABLE, 'connection refused', with a hint."""
    port = free_port()
    inventory = make_inventory({"samu-30": port}, known_hosts=[])
    result = _run(inventory, "true")
    assert result.outcome is Outcome.UNREACHABLE
    assert f"connection refused by 127.0.0.1:{port}" in result.detail
    assert result.hint


def test_silent_server_is_unreachable_within_the_connect_timeout(make_inventory, blackhole: int) -> None:
    """A server that never sends the SSH banner is UNREACHABLE after about connect_timeout, not never."""
    inventory = make_inventory({"samu-30": blackhole}, known_hosts=[])
    started = time.monotonic()
    result = _run(inventory, "true", connect_timeout=1.0)
    assert result.outcome is Outcome.UNREACHABLE
    assert "no SSH banner" in result.detail
    assert time.monotonic() - started < 4


def test_command_timeout_kills_the_remote_command(ssh_inventory: Inventory, tmp_path: Path) -> None:
    """A command running past its timeout is TIMEOUT, keeps its output so far, and is killed on the host."""
    pidfile, marker = tmp_path / "pid", tmp_path / "finished"
    started = time.monotonic()
    result = _run(ssh_inventory, f"echo started; echo $$ > {pidfile}; sleep 30; touch {marker}", timeout=1.0)
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < 4
    assert "started" in result.output
    assert _gone(_pid_from(pidfile))
    assert not marker.exists()


def test_cancellation_stops_the_command_and_kills_it(ssh_inventory: Inventory, tmp_path: Path) -> None:
    """Setting the cancel event ends the call quickly with CANCELLED and kills the remote command."""
    pidfile = tmp_path / "pid"
    cancel = threading.Event()
    results: dict[str, ActionResult] = {}

    def call() -> None:
        with SshExecutor(ssh_inventory, Redactor(), connect_timeout=5) as executor:
            results.update(executor.run(_request(f"echo $$ > {pidfile}; sleep 30", timeout=None, cancel=cancel)))

    worker = threading.Thread(target=call)
    worker.start()
    pid = _pid_from(pidfile)
    cancel.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert results["samu-30"].outcome is Outcome.CANCELLED
    assert _gone(pid)


def test_connection_lost_mid_command_is_failed_not_a_hang(ssh_inventory: Inventory, tmp_path: Path) -> None:
    """When the host's sshd session dies mid-command, the call ends FAILED ('lost') and the orphaned command is killed."""
    pidfile = tmp_path / "pid"
    results: dict[str, ActionResult] = {}

    def call() -> None:
        with SshExecutor(ssh_inventory, Redactor(), connect_timeout=5) as executor:
            results.update(executor.run(_request(f"echo $$ > {pidfile}; sleep 30", timeout=20.0)))

    worker = threading.Thread(target=call)
    worker.start()
    command = _pid_from(pidfile)
    wrapper = _parent(command)
    os.kill(_parent(wrapper), 9)  # the per-connection "sshd: user@notty" process
    worker.join(timeout=10)
    assert not worker.is_alive()
    result = results["samu-30"]
    assert result.outcome is Outcome.FAILED and result.exit_status is None
    assert "lost" in result.detail
    assert _gone(command)  # its stdin closed with the session: the wrapper's watcher killed it


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_cancelled_before_start_does_not_connect(make_inventory) -> None:
    """An already-set cancel event returns CANCELLED without touching the network."""
    inventory = make_inventory({"samu-30": free_port()}, known_hosts=[])
    cancel = threading.Event()
    cancel.set()
    assert _run(inventory, "true", cancel=cancel).outcome is Outcome.CANCELLED


def test_secrets_are_redacted_from_captured_output(sshd, make_inventory) -> None:
    """Inventory secrets and secret-shaped text never reach the result's output."""
    inventory = make_inventory({"samu-30": sshd.port}, known_hosts=[sshd.known_hosts_line()],
                               extra_vars={"oracle_db_password": "Tr0ub4dor&3"})
    result = _run(inventory, "echo 'connecting with Tr0ub4dor&3'; echo 'api_key=AKIA1234'",
                  redactor=Redactor.of(inventory.secrets))
    assert result.outcome is Outcome.OK
    assert "Tr0ub4dor&3" not in result.output and "AKIA1234" not in result.output
    assert result.output.count(PLACEHOLDER) == 2


def test_long_output_keeps_its_end(ssh_inventory: Inventory) -> None:
    """Output longer than the journal's limit is clipped to its last lines."""
    result = _run(ssh_inventory, "seq 1 200000")
    assert result.outcome is Outcome.OK
    assert len(result.output) < OUTPUT_LIMIT + 100
    assert result.output.rstrip().endswith("\n200000")


def test_missing_known_hosts_file_is_a_clear_error(sshd, make_inventory) -> None:
    """Without the inventory's known_hosts file, run() raises NotFound saying how to create it."""
    inventory = make_inventory({"samu-30": sshd.port}, known_hosts=None)
    with pytest.raises(NotFound) as raised:
        _run(inventory, "true")
    assert str(inventory.known_hosts) in raised.value.message
    assert "ssh-keyscan" in (raised.value.hint or "") and "lab up" in (raised.value.hint or "")


def test_concurrent_calls_on_one_executor_share_a_connection(sshd, make_inventory) -> None:
    """Ten concurrent calls on five hosts each get their own result, over one connection per host."""
    names = [f"samu-{code}" for code in ("01", "13", "30", "31", "33")]
    inventory = make_inventory({name: sshd.port for name in names}, known_hosts=[sshd.known_hosts_line()])
    with SshExecutor(inventory, Redactor(), connect_timeout=5) as executor:
        threads, results = [], {}
        for name in names * 2:  # two calls per host: the second may reuse the first's connection
            thread = threading.Thread(target=lambda n=name: results.setdefault(
                (n, threading.get_ident()), executor.run(_request(f"echo {n}", (n,)))[n]))
            threads.append(thread)
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(results) == 10
    for (name, _), result in results.items():
        assert result.outcome is Outcome.OK and _last_line(result) == name
    assert sshd.process.log.read_text().count("Accepted publickey") == len(names)
