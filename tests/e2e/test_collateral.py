"""A SAMU outside tonight's wave, cut off during the night, stops it at the next verification.

Its own two-SAMU lab in two waves (apart from test_waves' programme, so the two
can run side by side): SAMU 02 (wave2) has its legacy partition frozen behind
the night's back while the wave-1 night runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_night import Lab, copy_project
from tests.e2e.test_waves import night

pytestmark = pytest.mark.e2e


def test_a_samu_outside_the_wave_cut_off_during_the_night_stops_it_at_the_next_verification(tmp_path: Path):
    root = copy_project(tmp_path / "project")
    lab = Lab(root, tmp_path / "state")
    lab.env = str(lab.state / "lab" / "inventory")
    lab.cutover("lab", "up", "--samus", "2", "--waves", "2", "--rate", "2", check=0)
    try:
        # someone (or a bad playbook) freezes SAMU 02's partition: 02 is in wave2, outside tonight's wave
        tool = lab.state / "lab" / "bin" / "samu-platform"
        frozen = subprocess.run([str(tool), "freeze", "--platform", "legacy", "--samus", "02",
                                 "--lab-dir", str(lab.state / "lab")], capture_output=True, text=True, timeout=30)
        assert frozen.returncode == 0, frozen.stderr
        result = night(lab, "wave1", "collateral", "--until", "migrate")
        # the freeze's verification fails (a platform step has no failure budget): the night halts there
        assert result.returncode == 4, result.stdout[-3000:] + result.stderr
        status = json.loads(lab.cutover("status", "collateral", "--json", check=0).stdout)
        assert status["state"] == "failed" and status["rollback_points"][-1] == "backup-mode"
        failed = next(s for s in status["steps"] if s["state"] == "failed")
        assert failed["id"] == "freeze-legacy", failed
        assert "Test call" in failed["detail"] and "to SAMU 02 was lost" in failed["detail"], failed
    finally:
        lab.cutover("lab", "down")
