"""Drain before freeze: a call in progress when its partition freezes keeps its record only if the freeze waited.

A call answered by a platform has its record written when it ends
(``answer_on_platform``, holding no lock for the life of the call). The
shipped order is: SAMUs to backup mode (no new call reaches the platform),
``samu-platform drain`` (wait until the wave's calls in progress end), then
``samu-platform freeze``. The tools run as the playbooks run them: the hosts'
system python, the copied tool file, the command line.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

from cutover.lab.ledger import account_calls
from cutover.lab.tools import samulab

TOOL = Path(samulab.__file__)
SYSTEM_PYTHON = "/usr/bin/python3"


def _platform_tool(lab_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([SYSTEM_PYTHON, str(TOOL), "platform", *args, "--platform", "legacy",
                             "--lab-dir", str(lab_dir), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _answer_a_long_call(lab: samulab.LabData, code: str, rng: random.Random) -> samulab.CallRecord:
    """The platform answers a call of SAMU ``code`` now; its record will come at its end."""
    record = samulab.new_record(code, "legacy", caller="+33 6 12 34 56 78", placed_at=samulab.now(), rng=rng)
    samulab.call_started(lab.platform("legacy"), code, record.call_id)
    return record


def _end_call(lab: samulab.LabData, record: samulab.CallRecord) -> samulab.CallResult:
    """The call ends: its record goes to the platform through the one recording function, and into the ledger."""
    lost = samulab.answer_on_platform(lab.platform("legacy"), record)
    result = samulab.CallResult(record.call_id, record.samu_code, record.placed_at,
                                None if lost else "legacy", lost)
    samulab.record_in_ledger(lab.ledger(), result, "test")
    return result


def _wait_until_draining(lab: samulab.LabData, drain: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until the drain's own polling query shows on the platform (a python start-up is slow under load)."""
    deadline = time.monotonic() + timeout
    while not int(lab.platform("legacy").rows(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND query LIKE 'SELECT count(*) FROM calls_in_progress WHERE%'")[0][0] or 0):
        assert drain.poll() is None, drain.communicate()
        assert time.monotonic() < deadline, "the drain never started polling"
        time.sleep(0.05)


def test_a_call_in_progress_across_the_freeze_keeps_its_record(lab_dir, lab, rng):
    record = _answer_a_long_call(lab, "30", rng)
    samulab.set_mode(lab.site("30"), lab.platforms, "backup")  # no new call reaches the platform
    drain = _platform_tool(lab_dir, "drain", "--samus", "30", "--timeout", "30")
    _wait_until_draining(lab, drain)
    time.sleep(0.5)  # the call goes on after the freeze was asked
    assert drain.poll() is None, "the drain did not wait for the call in progress"
    assert _end_call(lab, record).answered_by == "legacy"
    out, err = drain.communicate(timeout=30)
    assert drain.returncode == 0, err
    report = json.loads(out)
    assert report["drained"] and report["waited_s"] >= 0.5
    freeze = _platform_tool(lab_dir, "freeze", "--samus", "30")
    assert freeze.wait(timeout=30) == 0 and json.loads(freeze.communicate()[0])["partitions"] == {"30": "frozen"}
    present = lab.platform("legacy").rows(f"SELECT count(*) FROM calls WHERE call_id = {samulab.lit(record.call_id)}")
    assert present == [["1"]]
    account = account_calls(lab_dir)
    assert (account.lost, account.records_missing) == (0, 0)


def test_freezing_without_draining_loses_the_record_of_a_call_in_progress(lab_dir, lab, rng):
    record = _answer_a_long_call(lab, "30", rng)
    samulab.set_mode(lab.site("30"), lab.platforms, "backup")
    freeze = _platform_tool(lab_dir, "freeze", "--samus", "30")
    assert freeze.wait(timeout=30) == 0  # the wrong order: nothing waits for the call
    result = _end_call(lab, record)
    assert result.lost_reason == "legacy platform partition 30 frozen"
    assert lab.platform("legacy").rows(
        f"SELECT count(*) FROM calls WHERE call_id = {samulab.lit(record.call_id)}") == [["0"]]
    account = account_calls(lab_dir)
    assert account.lost == 1 and account.examples["lost"] == [record.call_id]
    # The call no longer holds up a drain: it ended, unrecorded.
    assert samulab.calls_in_progress(lab.platform("legacy"), ["30"]) == 0


def test_a_drain_that_times_out_says_how_many_calls_are_still_in_progress(lab_dir, lab, rng):
    _answer_a_long_call(lab, "30", rng)
    _answer_a_long_call(lab, "13", rng)  # another SAMU's call does not hold up this wave
    drain = _platform_tool(lab_dir, "drain", "--samus", "30,2A", "--timeout", "0.3")
    out, _ = drain.communicate(timeout=30)
    assert drain.returncode == 1
    assert json.loads(out)["in_progress"] == 1 and not json.loads(out)["drained"]
    assert samulab.drain(lab.platform("legacy"), ["2A"], timeout=0.1)["drained"]
