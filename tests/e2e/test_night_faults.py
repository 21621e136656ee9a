"""One lab night through every fault an operator meets, in the order a bad night would bring them.

A 3-SAMU lab with traffic; one run, ``f1``, driven by the real `cutover`
command. The tests below run in file order on that run, each picking up where
the previous one left it (as test_waves does with the programme): a site
unreachable at the switch to backup mode (the night pauses within its failure
budget), the legacy database down while that SAMU still takes calls there and
the freeze comes (the night halts; the calls talking then lose their records), the
controller killed during the migration (another takes over), a rollback asked
after the point of no return (refused), the call router down when the SAMUs
return to nominal (the night halts after the PNR: it can only be fixed forward),
and at the end the healed night completes, its account naming exactly what
the faults cost: the calls placed while the router was down, the records of
the calls talking when the database stopped, and nothing else.
One night instead of five keeps `make test` within its budget; each fault is
still a test of its own, and a failure names the fault it was checking.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.test_night import Lab, _lab, calls, on, sites

pytestmark = pytest.mark.e2e

RUN = "f1"
APPROVE = ("--auto-approve", "lab-bot")


@pytest.fixture(scope="module")
def night_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("faults"), 3)


def status(lab: Lab) -> dict:
    return json.loads(lab.cutover("status", RUN, "--json", check=0).stdout)


def test_an_unreachable_site_pauses_the_night_within_budget_and_leaves_it_as_it_was(night_lab: Lab):
    lab = night_lab
    started = lab.night(*APPROVE, "--until", "go-no-go", run_id=RUN)
    assert started.returncode == 3, started.stdout[-3000:] + started.stderr
    lab.cutover("lab", "fault", "samu-02", "sshd-stopped", check=0)
    paused = lab.cutover("resume", RUN, *APPROVE, timeout=300)
    assert paused.returncode == 3, paused.stdout[-3000:] + paused.stderr
    rows = [s for s in status(lab)["steps"] if s["id"] == "backup-mode"]
    row = next(s for s in rows if s["target"] == "samu-02")
    assert row["state"] == "failed" and row["outcome"] == "unreachable"
    assert {s["state"] for s in rows if s["target"] != "samu-02"} == {"succeeded"}
    assert sites(lab)["02"] == ("nominal", "legacy")  # left as it was; the night waits for a decision
    lab.cutover("lab", "heal", "samu-02", check=0)


def test_the_legacy_database_down_at_the_freeze_halts_the_night(night_lab: Lab):
    lab = night_lab
    lab.cutover("lab", "fault", "legacy", "platform-db-down", check=0)  # its PostgreSQL stopped
    halted = lab.cutover("resume", RUN, *APPROVE, timeout=300)
    # samu-02 (healed) switches now; then the freeze's drain meets the stopped database. One target and no
    # failure budget: the night halts (4) for the operator to retry (`resume`) or undo (`rollback`).
    assert halted.returncode == 4, halted.stdout[-3000:] + halted.stderr
    assert "legacy platform's database is down" in halted.stdout + halted.stderr
    steps = status(lab)["steps"]
    freeze = [s for s in steps if s["id"] == "freeze-legacy"]
    assert freeze and freeze[0]["state"] == "failed", freeze
    assert not any(s["id"] == "migrate" and s["state"] == "succeeded" for s in steps)
    assert sites(lab) == on(lab, "backup", "legacy")  # the wave answers locally meanwhile
    assert "platform database started" in lab.cutover("lab", "heal", "legacy", check=0).stdout


def test_the_controller_killed_during_the_migration_is_taken_over_up_to_the_point_of_no_return(night_lab: Lab):
    lab = night_lab
    controller = lab.spawn("resume", RUN, *APPROVE)
    try:
        lab.wait_for_event(RUN, "step_started", "migrate", timeout=240)
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=30)
    resumed = lab.cutover("resume", RUN, "--take-over", *APPROVE, "--until", "point-of-no-return", timeout=300)
    assert resumed.returncode == 3, resumed.stdout[-3000:] + resumed.stderr
    assert status(lab)["point_of_no_return_passed"]
    assert sites(lab) == on(lab, "backup", "cloud")


def test_a_rollback_is_refused_once_the_point_of_no_return_is_passed(night_lab: Lab):
    refused = night_lab.cutover("rollback", RUN)
    assert refused.returncode == 2 and "point of no return" in refused.stderr
    assert sites(night_lab) == on(night_lab, "backup", "cloud")


def test_the_call_router_down_after_the_point_of_no_return_halts_the_night(night_lab: Lab):
    lab = night_lab
    lab.cutover("lab", "fault", "router-down", check=0)
    halted = lab.cutover("resume", RUN, *APPROVE, timeout=300)
    # every SAMU's return to nominal fails (its route cannot change): past the step's failure budget, the
    # night halts for a decision (exit 4); one site alone would pause it (exit 3)
    assert halted.returncode == 4, halted.stdout[-3000:] + halted.stderr
    now = status(lab)
    assert now["state"] == "failed", now
    failed = [s for s in now["steps"] if s["id"] == "return-to-nominal" and s["state"] == "failed"]
    assert len(failed) == 3 and all("cannot route SAMU" in (s["detail"] or "") for s in failed), failed
    assert sites(lab) == on(lab, "backup", "cloud")  # no SAMU returned without its route
    refused = lab.cutover("rollback", RUN)  # after the PNR, still only forward
    assert refused.returncode == 2 and "point of no return" in refused.stderr
    # the calls placed meanwhile fail once SIPp's answer timeout (8 s) passes with no router to answer
    deadline = time.monotonic() + 60
    while calls(lab)["sipp"]["failed"] == 0:
        assert time.monotonic() < deadline, "SIPp counted no failed call while the router was down"
        time.sleep(1)
    lab.cutover("lab", "heal", "router", check=0)


def test_the_healed_night_completes_and_the_account_names_exactly_what_the_faults_cost(night_lab: Lab):
    lab = night_lab
    done = lab.cutover("resume", RUN, *APPROVE, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert sites(lab) == on(lab, "nominal", "cloud")
    account = calls(lab)
    # calls placed while the router was down failed (SIPp counts them)
    assert account["sipp"]["failed"] > 0 and account["lost"] >= account["sipp"]["failed"], account
    # SAMU 02 was still nominal on legacy when legacy's database stopped: the calls talking then ended with
    # nowhere to write their record. Those records, and only those, are missing; their in-progress marks were
    # cleared once the database was back (else the freeze's drain would have waited for them for ever).
    outage = sum(n for reason, n in account["lost_reasons"].items() if reason.startswith("record: legacy"))
    assert account["records_missing"] == outage and account["records_duplicated"] == 0, account
    assert [account["samus"][code]["records_missing"] for code in ("01", "03")] == [0, 0], account  # in backup then
    assert lab.cutover("journal", "verify", RUN).returncode == 0

