"""Issue 20, finding 7: a gate nobody can loosen (`infra preview|up`), as a user runs them: the real command."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from tests.infra.test_check_cli import CUTOVER, no_pulumi_env, violating_project  # noqa: F401 (fixture)

STACK = Path("infra") / "Pulumi.production.yaml"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CUTOVER, "--project-dir", str(project), "infra", *args], capture_output=True, text=True,
                          timeout=300, env=no_pulumi_env(project))


def test_preview_and_up_take_no_other_policy_file(violating_project):  # noqa: F811
    lax = violating_project / "lax.yaml"
    lax.write_text((violating_project / "infra" / "policy.yaml").read_text()
                   .replace("[ceph-luks, array-iscsi]", "[ceph-luks, array-iscsi, plain]")
                   .replace("array-iscsi: iscsi}", "array-iscsi: iscsi, plain: iscsi}"))
    for command in (["preview"], ["up", "--yes"]):
        done = run(violating_project, *command, "--env", "production", "--policy", str(lax))
        assert done.returncode == 2 and "No such option '--policy'" in done.stderr, done.stderr
    # `check` still takes one, to try a policy change before it is reviewed.
    assert run(violating_project, "check", "--env", "production", "--policy", str(lax)).returncode == 0


def test_a_policy_file_the_stack_does_not_pin_is_refused_before_anything_runs(violating_project):  # noqa: F811
    policy = violating_project / "infra" / "policy.yaml"
    policy.write_text(policy.read_text().replace("[ceph-luks, array-iscsi]", "[ceph-luks, array-iscsi, plain]"))
    done = run(violating_project, "up", "--env", "production", "--yes")
    assert done.returncode == 9 and "is not the policy stack 'production' is pinned to" in done.stderr, done.stderr
    assert "config set cutover-samu:policyDigest sha256:" in done.stderr and "Pulumi CLI" not in done.stderr
    stack = violating_project / STACK
    stack.write_text("\n".join(line for line in stack.read_text().splitlines() if "policyDigest" not in line) + "\n")
    done = run(violating_project, "preview", "--env", "production")
    assert done.returncode == 9 and "pins no policy digest" in done.stderr


def test_up_lists_every_suppression_it_applies(violating_project):  # noqa: F811
    expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    # The plain backend breaks volume-encrypted and rac-storage-reachable on every ASM LUN of both clusters.
    luns = [f"{cluster}-asm-{group}-{n}" for cluster in ("rac-national-db", "rac-standby-db")
            for group, count in (("data", 4), ("fra", 4), ("ocr", 3)) for n in range(1, count + 1)]
    entries = "".join(f"  - rule: {rule}\n    resource: {lun}\n"
                      f"    reason: plain backend until the array's LUKS migration (CHG-4242)\n"
                      f"    expires: {expires}\n    approved_by: RSSI\n"
                      for lun in luns for rule in ("volume-encrypted", "rac-storage-reachable"))
    (violating_project / "infra" / "policy-suppressions.yaml").write_text("suppressions:\n" + entries)
    done = run(violating_project, "up", "--env", "production", "--yes")
    assert done.returncode == 1 and "Pulumi CLI" in done.stderr  # the gate passed; no CLI here
    shown = " ".join(done.stdout.split())  # the console wraps long lines
    for lun in luns:
        assert (f"suppression applied volume-encrypted for {lun} until {expires} "
                "(infra/policy-suppressions.yaml:") in shown
    assert shown.count("approved by RSSI") == 44 and "44 violation(s) suppressed" in shown
