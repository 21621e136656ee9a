"""The big-bang night in the real lab, driven by the real `cutover` command.

Every test starts a fresh lab (a real sshd per SAMU site and platform, the
platforms on two real PostgreSQL clusters, continuous call traffic) in a throwaway copy of the project,
and judges the night by the lab's own account of every call placed.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cutover.lab.tools import samulab
from cutover.testing.notify_sinks import free_port, http_sink, smtp_sink
from tests.e2e.boardwatch import assert_followed_live, watch_night
from tests.e2e.conftest import REPO, Project

pytestmark = pytest.mark.e2e

CODES = ["01", "13", "2A", "30", "31", "33", "34", "38", "59", "69"]
# the rollback points before the point of no return, in the order of runbooks/bigbang.yaml
POINTS_BEFORE_PNR = ["preflight", "go-no-go", "backup-mode", "freeze-legacy", "migrate", "point-to-cloud",
                     "verify-cloud"]


@dataclass
class Lab(Project):
    env: str = "lab"
    codes: tuple[str, ...] = tuple(CODES)

    def night(self, *args: str, run_id: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.cutover("run", "bigbang", "--env", self.env, "--run-id", run_id, *args, timeout=timeout)


def copy_project(root: Path) -> Path:
    """A throwaway copy of the project a lab night needs: the lab inventory, runbooks, playbooks, ansible.cfg."""
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    for folder in ("runbooks", "playbooks"):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
    return root


def _lab(tmp_path: Path, samus: int) -> Iterator[Lab]:
    """A copy of the real project with a lab of SAMUS sites up; the lab is always brought down.

    Ten is inventories/lab, the first wave. Fewer is the lab's generated
    inventory (same groups, same variables, free ports): the same runbook and
    playbooks over fewer sites, for tests whose point is the order of steps.
    """
    root = copy_project(tmp_path / "project")
    state = tmp_path / "state"
    lab = Lab(root, state)
    if samus != 10:
        lab.env, lab.codes = str(state / "lab" / "inventory"), tuple(f"{n:02d}" for n in range(1, samus + 1))
    rate = "1" if samus >= 10 else "2"  # calls in progress at every switch, without the traffic eating the CPU
    lab.cutover("lab", "up", "--samus", str(samus), "--rate", rate, check=0)
    try:
        yield lab
    finally:
        lab.cutover("lab", "down")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from _lab(tmp_path, 10)


@pytest.fixture
def small_lab(tmp_path: Path) -> Iterator[Lab]:
    yield from _lab(tmp_path, 3)


def calls(project: Project) -> dict:
    return json.loads(project.cutover("lab", "calls", "--json", check=0).stdout)


def on(lab: Lab, mode: str, platform: str) -> dict[str, tuple[str, str]]:
    return {code: (mode, platform) for code in lab.codes}


def sites(project: Project) -> dict[str, tuple[str, str]]:
    status = json.loads(project.cutover("lab", "status", "--json", check=0).stdout)
    return {site["code"]: (site["mode"], site["platform"]) for site in status["sites"]}


def assert_nothing_lost(account: dict) -> None:
    assert account["placed"] > 0
    assert (account["lost"], account["records_missing"], account["records_duplicated"]) == (0, 0, 0), account


def test_the_full_night_ends_nominal_on_the_cloud_with_nothing_lost_told_to_all_and_live_on_the_board(lab: Lab):
    """The night as the crisis room lives it, on the shipped lab inventory.

    With notifications on (the room's webhook, each SAMU's on-call by mail, and
    a target that refuses), the night waits at its go/no-go; the board is opened
    in a real browser, then `cutover resume` drives the night to its end while
    the board follows it live.
    """
    before = calls(lab)["placed"]
    with smtp_sink("cutover", MAIL_PASSWORD) as (smtp, mails), http_sink(HOOK_TOKEN) as (http, hooks):
        _notify_targets(lab, smtp, http, refused=free_port())
        paused = lab.night(run_id="n1")  # no approver: the night waits at its go/no-go
        assert paused.returncode == 3, paused.stdout[-3000:] + paused.stderr
        watched = watch_night(lab, "n1", ["resume", "n1", "--auto-approve", "lab-bot"], "board-live.png")
    assert watched.driver_exit == 0, watched.driver_stderr[-3000:]
    assert sites(lab) == on(lab, "nominal", "cloud")
    assert_followed_live(watched, [f"samu-{code}" for code in lab.codes])
    account = calls(lab)
    assert_nothing_lost(account)
    assert account["placed"] - before > 50  # traffic flowed throughout the night
    assert account["answered_by"].get("local", 0) > 0 and account["answered_by"].get("cloud", 0) > 0
    lab.cutover("journal", "verify", "n1", "--anchors", check=0)  # each drive's end signed with the lab's key
    report = lab.cutover("report", "n1", "--format", "markdown", "--out", "-", check=0).stdout
    assert "Anchor: event" in report and "cutover-anchor" in report
    _assert_told(lab, mails.titles, hooks.titles())


MAIL_PASSWORD, HOOK_TOKEN, REFUSED_TOKEN = "s3cret-mail-pw", "s3cret-hook-token", "s3cret-refused-token"


def _notify_targets(lab: Lab, smtp: int, http: int, refused: int) -> None:
    """The room's webhook gets every event; each SAMU's on-call gets its SAMU's by mail; one target refuses."""
    inventory = lab.root / "inventories" / "lab"
    with (inventory / "group_vars" / "all.yml").open("a") as file:
        file.write(f"cutover_notify:\n"
                   f"  - url: json://127.0.0.1:{http}/room/{HOOK_TOKEN}\n"
                   f"  - url: json://127.0.0.1:{refused}/down/{REFUSED_TOKEN}\n    lang: en\n")
    for code in lab.codes:
        with (inventory / "host_vars" / f"samu-{code}.yml").open("a") as file:
            file.write(f"samu_oncall:\n  - url: mailto://cutover:{MAIL_PASSWORD}@127.0.0.1:{smtp}"
                       f"?from=cutover@lab.invalid&to=samu{code}@lab.invalid\n")


def _assert_told(lab: Lab, mail_titles: Callable[[str], list[str]], room: list[str]) -> None:
    for code in lab.codes:
        told = [t for t in mail_titles(f"samu{code}@lab.invalid")]
        assert told == [f"SAMU {code} ({lab_name(code)}) : passage en mode secours",
                        f"SAMU {code} ({lab_name(code)}) : retour au nominal"], (code, told)
        mine = [t for t in room if t.startswith(f"SAMU {code} ")]
        assert [t.split(" : ")[1] for t in mine] == ["passage en mode secours", "retour au nominal"], (code, room)
    assert room[0].startswith("Bascule n1") and room[-1] == "Bascule n1 (bigbang, lab) : terminée", room
    assert "Point de non-retour franchi" in room
    status = json.loads(lab.cutover("status", "n1", "--json", check=0).stdout)["notifications"]
    assert status["undelivered"] and {u["target"].split(" #")[0] for u in status["undelivered"]} == \
        {f"json://127.0.0.1:{_port_of(lab, 'down')}"}
    journal = (lab.state / "journal.db").read_bytes() + b"".join(p.read_bytes() for p in lab.state.glob("journal.db-*"))
    for secret in (MAIL_PASSWORD, HOOK_TOKEN, REFUSED_TOKEN):
        assert secret.encode() not in journal


def _port_of(lab: Lab, path: str) -> str:
    text = (lab.root / "inventories" / "lab" / "group_vars" / "all.yml").read_text()
    return text.split(f"/{path}/")[0].rsplit(":", 1)[1]


def lab_name(code: str) -> str:
    text = (REPO / "inventories" / "lab" / "host_vars" / f"samu-{code}.yml").read_text()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("samu_name:"))


def test_a_runbook_that_freezes_legacy_before_backup_mode_is_refused_before_it_loses_a_call(small_lab: Lab):
    lab = small_lab
    before = calls(lab)
    result = lab.cutover("run", "wrong_order", "--env", lab.env, "--run-id", "w1", "--auto-approve", "lab-bot",
                         timeout=300)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "not in backup mode" in result.stderr and "01 (samu-01)" in result.stderr
    assert lab.journal_kinds("w1") == []  # refused before anything was journalled or run
    assert sites(lab) == on(lab, "nominal", "legacy")
    after = calls(lab)
    assert after["placed"] > before["placed"] and after["lost"] == 0


def _playbook(lab: Lab, playbook: Path) -> subprocess.Popen[str]:
    """ansible-playbook as the docs run it by hand, on the lab's wave1, strict host keys."""
    inventory = Path(lab.env)
    keys = inventory / "lab-ssh"
    ssh_args = f"-o UserKnownHostsFile={keys / 'known_hosts'} -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null"
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory / "hosts.yml"), str(playbook),
         "-e", "wave_group=wave1", "-e", f"ansible_ssh_extra_args='{ssh_args}'",
         "-e", f"ansible_ssh_private_key_file={keys / 'id_ed25519'}",
         "--vault-password-file", str(keys / "vault-password")],
        cwd=lab.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_the_drain(data: samulab.LabData, playbook: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until the drain's own query shows on the legacy platform (the playbook is waiting there)."""
    deadline = time.monotonic() + timeout
    while not int(data.platform("legacy").rows(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND query LIKE 'SELECT count(*) FROM calls_in_progress WHERE%'")[0][0] or 0):
        assert playbook.poll() is None, playbook.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the freeze playbook never reached its drain"
        time.sleep(0.2)


def test_the_shipped_freeze_waits_for_a_call_in_progress_and_a_freeze_without_drain_loses_its_record(small_lab: Lab):
    """A call answered on legacy before its SAMU went to backup mode is still talking at the freeze."""
    lab = small_lab
    data = samulab.LabData(lab.state / "lab")
    try:
        for code in lab.codes:
            samulab.set_mode(data.site(code), data.platforms, "backup", lab_dir=lab.state / "lab")  # routed too
        rng = random.Random(1)
        first = samulab.new_record("01", "legacy", caller="+33 6 01 02 03 04", placed_at=samulab.now(), rng=rng)
        samulab.call_started(data.platform("legacy"), "01", first.call_id)
        freeze = _playbook(lab, lab.root / "playbooks" / "freeze_legacy.yml")
        _wait_for_the_drain(data, freeze)
        time.sleep(1)  # the call goes on while the freeze waits
        assert samulab.partition_state(data.platform("legacy"), "01") == "serving"
        assert samulab.answer_on_platform(data.platform("legacy"), first) is None  # the call ends: recorded
        out, _ = freeze.communicate(timeout=120)
        assert freeze.returncode == 0, out[-3000:]
        assert float(re.findall(r"waited ([0-9.]+) s", out)[0]) >= 1.0, out[-3000:]
        assert samulab.partition_state(data.platform("legacy"), "01") == "frozen"

        # The wrong order: the same freeze without its drain.
        samulab.set_frozen(data.platform("legacy"), False, list(lab.codes))
        second = samulab.new_record("01", "legacy", caller="+33 6 01 02 03 05", placed_at=samulab.now(), rng=rng)
        samulab.call_started(data.platform("legacy"), "01", second.call_id)
        hasty = lab.root / "playbooks" / "freeze_without_drain.yml"
        drain = ("    - name: Drain the wave's calls in progress on the legacy platform\n"
                 '      ansible.builtin.include_tasks: "tasks/{{ platform_db_engine }}/drain.yml"\n\n')
        shipped = (lab.root / "playbooks" / "freeze_legacy.yml").read_text()
        assert drain in shipped
        hasty.write_text(shipped.replace(drain, ""))
        run = _playbook(lab, hasty)
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0 and "calls in progress" not in out and "Freeze the wave" in out, out[-3000:]
        assert samulab.answer_on_platform(data.platform("legacy"), second) == "legacy platform partition 01 frozen"
    finally:
        data.close()


def test_a_site_presenting_a_different_host_key_is_refused_before_any_command_runs(lab: Lab):
    known_hosts = lab.root / "inventories" / "lab" / "lab-ssh" / "known_hosts"
    lines = known_hosts.read_text().splitlines()
    port_30 = next(line for line in lines if line.startswith("[127.0.0.1]:22104 "))
    port_31 = next(line for line in lines if line.startswith("[127.0.0.1]:22105 "))
    # samu-30 now "presents" samu-31's key as far as we know: its real key is a stranger
    swapped = [port_31.replace(":22105 ", ":22104 ", 1) if line == port_30 else line for line in lines]
    known_hosts.write_text("\n".join(swapped) + "\n")
    result = lab.night("--auto-approve", "lab-bot", run_id="h1")
    # pre-flight's failure budget is one host: the night pauses for a decision at pre-flight
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    status = json.loads(lab.cutover("status", "h1", "--json", check=0).stdout)
    first = next(s for s in status["steps"] if s["id"] == "preflight" and s["target"] == "samu-30")
    assert first["state"] == "failed" and first["outcome"] in ("unreachable", "refused")
    assert status["rollback_points"] == [] and status["pause"]["reason"] == "step_failed"
    assert "host key" in (first["detail"] or "").lower(), first
    assert sites(lab) == on(lab, "nominal", "legacy")  # nothing was changed anywhere
