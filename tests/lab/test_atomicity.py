"""The lab itself must not invent losses: calls are atomic against mode switches and freezes.

A traffic thread calls three SAMUs as fast as it can while the main thread
switches them. Switching every SAMU to backup mode *then* freezing the legacy
platform must lose nothing, many times over; freezing first must lose calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cutover.lab.ledger import account_calls
from cutover.lab.tools import samulab
from cutover.lab.traffic import TrafficCounts, TrafficPlan, run_traffic

from .conftest import CODES


@contextmanager
def traffic(lab_dir: Path) -> Iterator[TrafficCounts]:
    stop = threading.Event()
    counts = TrafficCounts()

    def work() -> None:
        result = run_traffic(TrafficPlan(lab_dir, CODES, rate=1000.0, seed=1), stop.is_set)
        vars(counts).update(vars(result))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def _placed(lab: samulab.LabData) -> int:
    return lab.ledger().execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def _wait_for_calls(lab: samulab.LabData, more: int, timeout: float = 5.0) -> None:
    target = _placed(lab) + more
    deadline = time.monotonic() + timeout
    while _placed(lab) < target:
        assert time.monotonic() < deadline, "traffic is not flowing"
        time.sleep(0.005)


def test_switching_to_backup_then_freezing_loses_nothing(lab_dir, lab):
    with traffic(lab_dir):
        for _ in range(15):  # many rounds: a race would show up as a loss
            for code in CODES:
                samulab.set_mode(lab.site(code), lab.platforms, "backup")
            samulab.set_frozen(lab.platform("legacy"), True)
            _wait_for_calls(lab, 5)
            samulab.set_frozen(lab.platform("legacy"), False)
            for code in CODES:
                samulab.set_mode(lab.site(code), lab.platforms, "nominal")
            _wait_for_calls(lab, 5)
    account = account_calls(lab_dir)
    assert account.placed > 100
    assert account.answered_by["local"] > 0 and account.answered_by["legacy"] > 0
    assert (account.lost, account.records_missing, account.records_duplicated) == (0, 0, 0)


def test_freezing_before_switching_to_backup_loses_calls(lab_dir, lab):
    with traffic(lab_dir):
        _wait_for_calls(lab, 5)
        samulab.set_frozen(lab.platform("legacy"), True)
        _wait_for_calls(lab, 10)  # calls keep coming to SAMUs still nominal on a frozen platform
        for code in CODES:
            samulab.set_mode(lab.site(code), lab.platforms, "backup")
        _wait_for_calls(lab, 5)
    account = account_calls(lab_dir)
    assert account.lost > 0
    assert set(account.lost_reasons) <= {f"legacy platform partition {code} frozen" for code in CODES}
    assert account.records_missing == 0 and account.records_duplicated == 0
