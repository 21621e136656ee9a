"""Calls over real SIP: a real Kamailio routing, the lab's answering agents recording, a real SIPp counting.

No sshd here: the site and platform functions the tools run are called
directly, with the lab folder, as ``samu-site`` would over SSH. Each test
starts its own network (free ports, its own folder) and stops it, leaving no
process behind.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.lab import platforms, router, sipnet, traffic
from cutover.lab.layout import LabLayout, LabState, TrafficInfo
from cutover.lab.ledger import account_calls
from cutover.lab.tools import samulab, sipcall

pytestmark = pytest.mark.integration

CODES = ("13", "2A", "30")
HOLD = 1.0  # seconds: calls are in progress at every switch
RATE = 4.0  # calls per second per SAMU


class Net:
    """One lab's telephone network, with its databases, for one test."""

    def __init__(self, layout: LabLayout, state: LabState) -> None:
        self.layout, self.state = layout, state
        self.data = samulab.LabData(layout.root)

    @property
    def root(self) -> Path:
        return self.layout.root

    def site(self, code: str):
        return self.data.site(code)

    def mode(self, code: str, mode: str) -> dict:
        return samulab.set_mode(self.site(code), self.data.platforms, mode, lab_dir=self.root)

    def point(self, code: str, platform: str) -> dict:
        return samulab.point_at(self.site(code), self.data.platforms, platform, lab_dir=self.root)

    def platform(self, name: str):
        return self.data.platform(name)

    def test_call(self, code: str) -> samulab.CallResult:
        return samulab.sip_test_call(self.data, code)

    def in_progress(self, where: str) -> int:
        return sum(samulab.in_progress(self.root, where, CODES).values())

    def wait_in_progress(self, where: str, at_least: int = 1, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while (count := self.in_progress(where)) < at_least:
            assert time.monotonic() < deadline, f"no call in progress on {where}"
            time.sleep(0.05)
        return count

    def drain(self, where: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.in_progress(where):
            assert time.monotonic() < deadline, f"calls on {where} never ended"
            time.sleep(0.05)

    def stop_callers(self) -> traffic.SippStats:
        """SIPp stops placing calls and lets those in progress end: its final count."""
        assert traffic.stop_sipp(self.state.traffic.pid, HOLD)
        self.state.traffic.pid = None
        return traffic.all_stats(self.layout.sipp)


def _network(tmp_path: Path, clusters: Path, *, callers: bool) -> Iterator[Net]:
    layout = LabLayout.under(tmp_path)
    layout.root.mkdir(parents=True, exist_ok=True)
    platforms.pg_link(layout.root).symlink_to(clusters)  # the session's pair of PostgreSQL platforms
    samulab.create_lab_data(layout.root, CODES)
    state = LabState(lab_dir=str(layout.root), inventory="", env="", started_at="", hosts=[],
                     traffic=TrafficInfo(rate=RATE, codes=list(CODES), hold=HOLD))
    net = Net(layout, state)
    try:
        if callers:
            sipnet.start(layout, state)
        else:  # agents and router only: the test places its own calls
            from cutover.lab.layout import SipInfo
            state.sip = SipInfo(router_port=sipnet.free_udp_port())
            state.sip.answerer_pid, ports = sipnet.start_answerer(layout, CODES)
            state.sip.router_pid = router.start(layout.sip, state.sip.router_port, ports,
                                                sipnet.site_routes(layout, CODES))
        yield net
    finally:
        net.data.close()
        sipnet.stop(state, layout)
        _assert_no_process_left(layout.root)


def _assert_no_process_left(root: Path) -> None:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in ps.splitlines() if str(root) in line] == []


@pytest.fixture
def net(tmp_path: Path, platform_clusters: Path) -> Iterator[Net]:
    yield from _network(tmp_path, platform_clusters, callers=False)


@pytest.fixture
def busy_net(tmp_path: Path, platform_clusters: Path) -> Iterator[Net]:
    yield from _network(tmp_path, platform_clusters, callers=True)


def _count(db: samulab.Platform, sql: str) -> int:
    return int(db.rows(sql)[0][0] or 0)


def test_a_call_is_routed_to_each_destination_and_recorded_where_it_was_answered(net: Net):
    first = net.test_call("30")
    assert first.answered_by == "legacy"
    assert _count(net.platform("legacy"), f"SELECT COUNT(*) FROM calls WHERE call_id = {samulab.lit(first.call_id)}") == 1

    net.mode("30", "backup")
    assert sipcall.routes(net.root)["30"] == "local"
    local = net.test_call("30")
    assert local.answered_by == "local"
    assert samulab.site_status(net.site("30"))["buffer"]["pending"] == 1

    net.point("30", "cloud")
    assert sipcall.routes(net.root)["30"] == "local"  # still answered locally until the return to nominal
    assert net.mode("30", "nominal")["replayed"] == 1
    assert sipcall.routes(net.root) == {"13": "legacy", "2A": "legacy", "30": "cloud"}
    cloud = net.test_call("30")
    assert cloud.answered_by == "cloud"
    cloud_ids = {r[0] for r in net.platform("cloud").rows("SELECT call_id FROM calls")}
    assert {local.call_id, cloud.call_id} <= cloud_ids
    assert net.test_call("13").answered_by == "legacy"


def test_a_frozen_partition_refuses_the_call_and_the_caller_sees_it(net: Net):
    samulab.set_frozen(net.platform("legacy"), True, ["30"])
    refused = net.test_call("30")
    assert (refused.answered_by, refused.lost_reason) == (None, "legacy platform partition 30 frozen"), refused
    account = account_calls(net.root)
    assert account.lost == 1 and account.lost_reasons == {"legacy platform partition 30 frozen": 1}


def test_the_right_order_with_calls_in_progress_at_every_switch_fails_no_call(busy_net: Net):
    net = busy_net
    wave = list(CODES)
    assert net.wait_in_progress("legacy") > 0  # calls are talking on legacy as the night starts
    for code in wave:
        net.mode(code, "backup")
    assert net.wait_in_progress("local") > 0
    net.drain("legacy")  # the calls that started on legacy end there and are recorded there
    samulab.set_frozen(net.platform("legacy"), True, wave)
    samulab.migrate(net.root, "legacy", "cloud", codes=wave)
    assert not samulab.compare_checksums(samulab.table_checksums(net.platform("legacy"), wave),
                                         samulab.table_checksums(net.platform("cloud"), wave))
    for code in wave:
        net.point(code, "cloud")
    for code in wave:
        net.mode(code, "nominal")  # routes back to the cloud, waits for local calls to end, replays
    assert net.wait_in_progress("cloud") > 0

    sipp = net.stop_callers()
    account = account_calls(net.root, sipp)
    assert sipp.created > 20 and sipp.failed == 0 and sipp.successful == sipp.created, sipp.to_json()
    assert (account.lost, account.records_missing, account.records_duplicated) == (0, 0, 0), account.to_json()
    assert set(account.answered_by) == {"legacy", "local", "cloud"}


def test_repointing_before_backup_mode_makes_sipp_count_failed_calls(busy_net: Net):
    net = busy_net
    wave = ["30"]
    samulab.set_frozen(net.platform("cloud"), True, wave)  # the cloud opens a partition only at its migration
    net.wait_in_progress("legacy")
    net.point("30", "cloud")  # WRONG: still nominal, so its next calls go to a cloud that cannot take them
    time.sleep(1.5)
    net.mode("30", "backup")
    sipp = net.stop_callers()
    account = account_calls(net.root, sipp)
    assert sipp.failed > 0 and "unexpected message (a 4xx/5xx answer)" in sipp.failed_by, sipp.to_json()
    assert account.lost >= sipp.failed and not account.ok
    assert account.lost_reasons.get("cloud platform partition 30 frozen", 0) > 0


def test_freezing_before_the_calls_in_progress_have_ended_loses_their_records(busy_net: Net):
    net = busy_net
    wave = list(CODES)
    for code in wave:
        net.mode(code, "backup")
    assert net.in_progress("legacy") > 0
    samulab.set_frozen(net.platform("legacy"), True, wave)  # WRONG: no drain; the calls still talking lose their record
    net.drain("legacy")
    sipp = net.stop_callers()
    account = account_calls(net.root, sipp)
    assert sipp.failed == 0  # every caller was answered and hung up normally...
    assert account.records_missing > 0 and not account.ok  # ...but some records are gone
    assert any(reason.startswith("record: legacy platform partition") for reason in account.lost_reasons)


def test_packet_loss_on_a_platform_cuts_its_calls_and_heal_restores_them(net: Net):
    lost = sipnet.packet_loss(net.layout, net.state, "legacy", 100)
    assert "100%" in lost
    cut = net.test_call("13")  # the router gets no answer from legacy: 408 after its timer
    assert (cut.answered_by, cut.lost_reason) == (None, "Request Timeout"), cut
    assert sipnet.heal(net.layout, net.state, "legacy") == ["legacy: packet loss lifted"]
    assert net.test_call("13").answered_by == "legacy"


def test_router_down_fails_calls_and_refuses_switches_until_heal_rebuilds_the_routes(net: Net):
    net.mode("2A", "backup")
    sipnet.router_down(net.layout, net.state)
    assert sipcall.place_call(net.root, "13", timeout=1.0).invite_status == 0  # nobody answers the INVITE
    with pytest.raises(samulab.LabError, match="cannot route SAMU 30"):
        net.mode("30", "backup")
    assert samulab.site_status(net.site("30"))["mode"] == "nominal"  # left as it was
    healed = sipnet.heal(net.layout, net.state, "router")
    assert healed and "restarted" in healed[0]
    assert sipcall.routes(net.root) == {"13": "legacy", "2A": "local", "30": "legacy"}
    assert net.test_call("2A").answered_by == "local"
    info = json.loads((net.root / "sip" / "router.json").read_text())
    assert info["port"] == net.state.sip.router_port


def test_a_call_hung_up_but_not_yet_recorded_is_still_in_progress_and_holds_the_return_to_nominal(net: Net):
    """The router forgets a call at its BYE; its agent records it just after: the drain must wait for both."""
    net.mode("30", "backup")
    samulab.ledger_answered(net.data.ledger(), "late-bye@lab", "30", samulab.now(), "local", "sipp")
    assert samulab.in_progress(net.root, "local", ["30"]) == {"30": 1}  # no dialog left on the router
    with pytest.raises(samulab.LabError, match="still in progress on local"):
        samulab.set_mode(net.site("30"), net.data.platforms, "nominal", lab_dir=net.root, drain_timeout=0.3)
    assert samulab.site_status(net.site("30"))["mode"] == "backup"
    samulab.ledger_ended(net.data.ledger(), "late-bye@lab", None)  # recorded: the call is over
    assert net.mode("30", "nominal")["mode"] == "nominal"
