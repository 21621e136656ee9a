"""The lab through the real `cutover` command, with real sshd and the site tools over real SSH.

The lab's ports are fixed by the inventory, so these tests run one lab at a
time; every test's lab is brought down at teardown, whatever happens.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cutover.lab import sshd
from cutover.model.inventory import load_inventory

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
CUTOVER = REPO / ".venv" / "bin" / "cutover"
SAMUS = ("01", "13", "2A", "30", "31", "33", "34", "38", "59", "69")


@dataclass
class LabProject:
    project: Path
    state: Path

    def cutover(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(CUTOVER), "--project-dir", str(self.project), "--state-dir", str(self.state), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, f"{args}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.cutover(*args, "--json").stdout)

    @property
    def ssh_dir(self) -> Path:
        return self.project / "inventories" / "lab" / "lab-ssh"

    def ssh(self, port: int, command: str, env_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        keys = env_dir or self.ssh_dir
        return subprocess.run(
            ["ssh", "-i", str(keys / "id_ed25519"), "-o", f"UserKnownHostsFile={keys / 'known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "ConnectTimeout=5", "-p", str(port), "127.0.0.1", command],
            capture_output=True, text=True, timeout=30)

    def site(self, code: str, command: str) -> subprocess.CompletedProcess[str]:
        return self.ssh(22101 + SAMUS.index(code), f"samu-site {command}")

    def platform(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        return self.ssh({"legacy": 22201, "cloud": 22202}[name], f"samu-platform {command}")


@pytest.fixture
def lab_project(tmp_path: Path) -> Iterator[LabProject]:
    if not sshd.SSHD.is_file() or shutil.which("ssh") is None:
        pytest.skip("needs openssh-server and openssh-client")
    project = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "lab", project / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    lab = LabProject(project, tmp_path / "state")
    try:
        yield lab
    finally:
        lab.cutover("lab", "down")
        _assert_all_stopped(lab)


def _assert_all_stopped(lab: LabProject) -> None:
    state = json.loads((lab.state / "lab" / "lab.json").read_text()) if (lab.state / "lab" / "lab.json").exists() else None
    if state is None:
        return
    assert state["traffic"]["pid"] is None and all(h["pid"] is None for h in state["hosts"])
    assert state["sip"] is None or (state["sip"]["router_pid"], state["sip"]["answerer_pid"]) == (None, None)
    # no orphan: no process (sshd, kamailio and its workers, the answering agents, sipp) names the lab's folder
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in ps.splitlines() if str(lab.state / "lab") in line] == []


def _ok_json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, f"rc {result.returncode}: {result.stdout} {result.stderr}"
    return json.loads(result.stdout)


def _each_site(lab: LabProject, command: str) -> list[dict]:
    with ThreadPoolExecutor(max_workers=10) as pool:
        return [_ok_json(r) for r in pool.map(lambda code: lab.site(code, command), SAMUS)]


def _placed(lab: LabProject) -> int:
    # Read the ledger directly: waiting must not cost a `cutover` start-up per poll.
    with sqlite3.connect(lab.state / "lab" / "ledger.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def _wait_calls(lab: LabProject, more: int = 10, timeout: float = 10.0) -> None:
    target = _placed(lab) + more
    deadline = time.monotonic() + timeout
    while _placed(lab) < target:
        assert time.monotonic() < deadline, "traffic is not flowing"
        time.sleep(0.05)


def test_a_night_driven_over_ssh_loses_nothing_and_faults_show(lab_project: LabProject) -> None:
    lab = lab_project
    up = lab.cutover("lab", "up", "--rate", "2")
    assert "--env lab" in up.stdout
    status = lab.json("lab", "status")
    assert status["up"] and status["traffic"]["running"]
    assert [s["code"] for s in status["sites"]] == list(SAMUS)
    assert all(s["reachable"] and s["mode"] == "nominal" and s["platform"] == "legacy" for s in status["sites"])
    assert {p["platform"]: p["state"] for p in status["platforms"]} == {"legacy": "serving", "cloud": "serving"}
    assert _ok_json(lab.site("30", "test-call --expect legacy --json"))["answered_by"] == "legacy"
    assert lab.site("30", "test-call --expect cloud --json").returncode == 1

    # The night, in the right order, over SSH, with traffic flowing.
    assert all(r["mode"] == "backup" for r in _each_site(lab, "mode backup --json"))
    assert _ok_json(lab.site("30", "test-call --expect local --json"))["ok"]
    wave = "--samus " + ",".join(SAMUS)  # as the playbooks do: the cloud opens a SAMU's partition at its migration
    assert _ok_json(lab.platform("legacy", f"drain {wave} --json"))["drained"]  # calls still talking end first
    assert set(_ok_json(lab.platform("legacy", f"freeze {wave} --json"))["partitions"].values()) == {"frozen"}
    _wait_calls(lab)
    migrated = _ok_json(lab.platform("cloud", f"migrate --from legacy --to cloud {wave} --json"))
    assert migrated["copied"]["calls"] > 0
    assert _ok_json(lab.platform("cloud", "verify --against legacy --json"))["equal"]

    # An injected checksum mismatch is caught by the verification, and healed.
    lab.cutover("lab", "fault", "cloud", "checksum-mismatch")
    mismatch = lab.platform("cloud", "verify --against legacy --json")
    assert mismatch.returncode == 1 and json.loads(mismatch.stdout)["differing_tables"] == ["calls"]
    lab.cutover("lab", "heal", "cloud")
    assert _ok_json(lab.platform("cloud", "verify --against legacy --json"))["equal"]

    back = _each_site(lab, "platform cloud >/dev/null && samu-site mode nominal --json")
    assert sum(r["replayed"] for r in back) > 0
    assert _ok_json(lab.site("30", "test-call --expect cloud --json"))["ok"]
    _wait_calls(lab)

    calls = lab.json("lab", "calls")
    assert (calls["lost"], calls["records_missing"], calls["records_duplicated"]) == (0, 0, 0)
    assert set(calls["answered_by"]) == {"legacy", "local", "cloud"}

    # A site's sshd stopped: unreachable over SSH, then healed with the same host key.
    lab.cutover("lab", "fault", "samu-30", "sshd-stopped")
    assert not _site_status(lab, "30")["reachable"]
    assert lab.site("30", "status --json").returncode == 255
    lab.cutover("lab", "heal", "30")
    assert _ok_json(lab.site("30", "status --json"))["platform"] == "cloud"

    # The cloud platform's database stopped: calls are lost, its tool refuses, and once
    # healed (the records it holds are readable again) `lab calls --check` says so.
    lab.cutover("lab", "fault", "cloud", "platform-db-down")
    _wait_calls(lab)
    assert _site_status(lab, "30")["reachable"]
    down = lab.platform("cloud", "status --expect serving --json")
    assert down.returncode == 1 and json.loads(down.stdout)["faults"] == ["platform-db-down"]
    assert "platform database started" in lab.cutover("lab", "heal", "all").stdout
    check = lab.cutover("lab", "calls", "--check", check=False)
    assert check.returncode == 4 and "cloud platform down" in check.stdout

    lab.cutover("lab", "down")
    # the platforms' databases are gone with the lab; the final count stays, with SIPp's calls all ended
    final = lab.json("lab", "calls")
    assert final["sipp"]["in_progress"] == 0 and final["sipp"]["placed"] >= check_placed(check.stdout)
    assert final["lost"] >= 1 and final["lost_reasons"], final
    after = lab.json("lab", "status")
    assert not after["up"] and not after["traffic"]["running"]
    assert not any(s["reachable"] for s in after["sites"])
    assert "nothing was running" in lab.cutover("lab", "down").stdout


def check_placed(calls_text: str) -> int:
    """SIPp's placed count in `lab calls` text output."""
    return int(re.search(r"SIPp: placed (\d+)", calls_text).group(1))


def _site_status(lab: LabProject, code: str) -> dict:
    return next(s for s in lab.json("lab", "status")["sites"] if s["code"] == code)


def test_a_second_lab_up_is_refused_while_one_is_up(lab_project: LabProject) -> None:
    lab_project.cutover("lab", "up")
    again = lab_project.cutover("lab", "up", check=False)
    assert again.returncode == 1
    assert "already up" in again.stderr and "lab down" in again.stderr


def test_lab_up_refuses_a_busy_port_and_leaves_nothing_running(lab_project: LabProject) -> None:
    with socket.socket() as squatter:
        # like sshd and the lab's own check: a previous test's closing sessions on this
        # port (TIME_WAIT, lingering ssh sessions) must not stop us listening on it
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 22105))
        squatter.listen()
        refused = lab_project.cutover("lab", "up", check=False)
    assert refused.returncode == 1
    assert "22105 (samu-31)" in refused.stderr
    assert not lab_project.json("lab", "status")["up"]


def test_a_three_samu_lab_writes_its_own_inventory(lab_project: LabProject) -> None:
    up = lab_project.cutover("lab", "up", "--samus", "3")
    env = lab_project.state / "lab" / "inventory"
    assert f"--env {env}" in up.stdout.replace("\n", "")
    inventory = load_inventory(lab_project.project, str(env))
    assert [s.code for s in inventory.samus.values()] == ["01", "02", "03"]
    assert inventory.is_lab and set(inventory.groups["platforms"]) == {"legacy-platform", "cloud-platform"}
    port = inventory.hosts["samu-02"].port
    result = lab_project.ssh(port, "samu-site status --json", env_dir=env / "lab-ssh")
    assert _ok_json(result)["site"] == "02"
    assert oct((lab_project.state / "lab").stat().st_mode & 0o777) == "0o700"
