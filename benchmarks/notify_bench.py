"""A target that refuses connections must not slow the night: the lab night with and without one.

    .venv/bin/python -m benchmarks.notify_bench [--samus 10] [--pairs 2]

Baseline: the lab night told through a real SMTP server (each SAMU's on-call)
and a webhook (the room). Variant: the same, plus a third target whose port
refuses connections (retried with backoff, then given up, all journalled).
Nights alternate baseline/variant on fresh labs; the figure is the ratio of
their median wall times (target: at most 1.05).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cutover.testing.notify_sinks import free_port, http_sink, smtp_sink

REPO = Path(__file__).resolve().parents[1]
CUTOVER = str(Path(sys.executable).parent / "cutover")


def night(samus: int, smtp: int, http: int, refused: int | None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as folder:
        root, state = Path(folder) / "project", Path(folder) / "state"
        for name in ("runbooks", "playbooks"):
            shutil.copytree(REPO / name, root / name)
        shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                        ignore=shutil.ignore_patterns("lab-ssh"))
        shutil.copy(REPO / "ansible.cfg", root / "ansible.cfg")
        base = [CUTOVER, "--project-dir", str(root), "--state-dir", str(state)]
        subprocess.run([*base, "lab", "up", "--samus", str(samus)], check=True, capture_output=True)
        inventory = root / "inventories" / "lab" if samus == 10 else state / "lab" / "inventory"
        _targets(inventory, smtp, http, refused)
        try:
            started = time.perf_counter()
            result = subprocess.run([*base, "run", "bigbang", "--env", str(inventory), "--run-id", "bench",
                                     "--auto-approve", "bench"], capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"the night failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr}")
            status = json.loads(subprocess.run([*base, "status", "bench", "--json"], capture_output=True,
                                               text=True, check=True).stdout)
        finally:
            subprocess.run([*base, "lab", "down"], capture_output=True)
    return elapsed, status["notifications"]


def _targets(inventory: Path, smtp: int, http: int, refused: int | None) -> None:
    with (inventory / "group_vars" / "all.yml").open("a") as file:
        file.write(f"cutover_notify:\n  - url: json://127.0.0.1:{http}/room/bench-token\n")
        if refused is not None:
            file.write(f"  - url: json://127.0.0.1:{refused}/down/bench-token\n")
    for host_vars in sorted((inventory / "host_vars").glob("samu-*.yml")):
        code = host_vars.stem.removeprefix("samu-")
        with host_vars.open("a") as file:
            file.write(f"samu_oncall:\n  - url: mailto://cutover:bench-pw@127.0.0.1:{smtp}"
                       f"?from=cutover@lab.invalid&to=samu{code}@lab.invalid\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samus", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    baseline, variant = [], []
    with smtp_sink("cutover", "bench-pw") as (smtp, mails), http_sink("bench-token") as (http, _):
        for pair in range(args.pairs):
            took, told = night(args.samus, smtp, http, refused=None)
            baseline.append(took)
            print(f"pair {pair + 1}: two targets        {took:6.1f} s  sent {told['sent']}, "
                  f"undelivered {len(told['undelivered'])}", flush=True)
            took, told = night(args.samus, smtp, http, refused=free_port())
            variant.append(took)
            print(f"pair {pair + 1}: plus a refusing one {took:6.1f} s  sent {told['sent']}, "
                  f"failed attempts {told['failed_attempts']}, undelivered {len(told['undelivered'])}", flush=True)
    ratio = statistics.median(variant) / statistics.median(baseline)
    print(f"\nnight with a refusing target / without: {ratio:.3f} (median of {args.pairs}; target <= 1.05)")


if __name__ == "__main__":
    main()
