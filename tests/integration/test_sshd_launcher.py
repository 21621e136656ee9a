"""The lab's sshd launcher starts a real OpenSSH server that paramiko can log in to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import paramiko
import pytest

from cutover.errors import ToolMissing
from cutover.lab import sshd as sshd_module
from cutover.lab.sshd import (
    free_port,
    generate_keypair,
    known_hosts_line,
    start_sshd,
    stop_pid,
    write_known_hosts,
)

pytestmark = pytest.mark.integration


def _connect(port: int, known_hosts: Path, key: Path, user: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=str(key),
                   allow_agent=False, look_for_keys=False, timeout=5)
    return client


def test_paramiko_logs_in_with_the_client_key_and_sees_the_site_identity(sshd, tmp_path: Path) -> None:
    """A started sshd accepts the client key, checks out against its known_hosts line, and sets SetEnv variables,
    with the site's own HOME rather than the controller user's."""
    known = write_known_hosts(tmp_path / "known_hosts", [sshd.known_hosts_line()])
    client = _connect(sshd.port, known, sshd.client_key, sshd.user)
    try:
        _, stdout, _ = client.exec_command("echo $SAMU_CODE $SAMU_NAME $HOME")
        assert stdout.read().decode().strip() == f"30 Nimes {sshd.process.workdir / 'home'}"
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


def test_sshd_runs_in_its_own_session_and_stops(sshd) -> None:
    """The sshd is detached from the caller's session, and stop() ends it."""
    process = sshd.process
    assert process.is_running()
    assert os.getsid(process.pid) != os.getsid(0)
    process.stop()
    assert not process.is_running()
    assert stop_pid(process.pid) is False  # already gone: nothing to do


def test_a_process_record_survives_a_round_trip_and_stops_the_server(sshd) -> None:
    """What `lab up` saves (to_dict) is enough for `lab down` (from_dict + stop) to stop the sshd."""
    record = sshd_module.SshdProcess.from_dict(sshd.process.to_dict())
    assert record == sshd.process
    record.stop()
    assert not sshd.process.is_running()


def test_password_authentication_is_off(sshd) -> None:
    """The server offers public-key authentication only."""
    transport = paramiko.Transport(("127.0.0.1", sshd.port))
    try:
        transport.start_client(timeout=5)
        with pytest.raises(paramiko.BadAuthenticationType) as raised:
            transport.auth_password(sshd.user, "anything")
        assert raised.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_generated_private_key_is_owner_only_and_kept_on_rerun(tmp_path: Path) -> None:
    """generate_keypair writes a 0600 ed25519 key and does not replace an existing pair."""
    key = generate_keypair(tmp_path / "k" / "id", "who@lab")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.with_name("id.pub").read_text()
    assert public.startswith("ssh-ed25519 ") and public.strip().endswith("who@lab")
    assert generate_keypair(key, "other").with_name("id.pub").read_text() == public


def test_known_hosts_line_uses_bracket_form_and_file_is_private(tmp_path: Path) -> None:
    """Non-22 ports are written [addr]:port, and the known_hosts file is mode 0600."""
    line = known_hosts_line("127.0.0.1", 22101, "ssh-ed25519 AAAAC3Nza host-comment\n")
    assert line == "[127.0.0.1]:22101 ssh-ed25519 AAAAC3Nza"
    assert known_hosts_line("10.0.0.1", 22, "ssh-ed25519 AAAA") == "10.0.0.1 ssh-ed25519 AAAA"
    path = write_known_hosts(tmp_path / "known_hosts", [line])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == line + "\n"


def test_missing_sshd_is_a_clear_tool_missing_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without /usr/sbin/sshd, start_sshd raises ToolMissing with the apt-get hint."""
    monkeypatch.setattr(sshd_module, "SSHD", tmp_path / "no-sshd")
    with pytest.raises(ToolMissing) as raised:
        start_sshd(tmp_path, name="x", port=free_port(), authorized_keys=tmp_path / "ak")
    assert "apt-get install openssh-server" in (raised.value.hint or "")


def test_port_already_taken_fails_clearly(sshd, tmp_path: Path) -> None:
    """A second sshd on a taken port fails with SshdFailed instead of hanging."""
    with pytest.raises(sshd_module.SshdFailed, match="Address already in use"):
        start_sshd(tmp_path / "second", name="dup", port=sshd.port,
                   authorized_keys=tmp_path / "ak", start_timeout=5)
    assert sshd.process.is_running()  # the first one is untouched


def test_non_loopback_listen_address_is_refused(tmp_path: Path) -> None:
    """The lab never exposes an sshd beyond loopback."""
    with pytest.raises(ValueError, match="loopback"):
        start_sshd(tmp_path, name="x", port=free_port(), authorized_keys=tmp_path / "ak", listen="0.0.0.0")
