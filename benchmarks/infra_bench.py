"""Infra benchmark: `infra plan` of a 100-SAMU production inventory, and `infra diff` of two such plans.

Run: ``.venv/bin/python -m benchmarks.infra_bench [--samus N] [--repeat R]``. The
inventory is the shipped production one grown to N SAMUs (département codes in
order, one /24 each) in a temporary project folder; every figure comes from
this run on this machine. The plan is evaluated as ``cutover infra plan``
does it: the real program under Pulumi's mock runtime, in a child interpreter.

Printed: wall time and the child's peak memory for 10 and N SAMUs, time per
resource (overall and marginal, i.e. without the interpreter's start-up and
imports), and the time to diff two N-SAMU plans from their files (parse both,
diff) against the 1 s budget.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cutover.infra.diff import diff_plans
from cutover.infra.evaluate import plan_environment
from cutover.infra.plan import Plan, PlannedResource, load_plan
from cutover.inventory import all_departement_codes, load_inventory

REPO = Path(__file__).resolve().parents[1]
DIFF_BUDGET_S = 1.0


def grown_project(root: Path, samus: int) -> Path:
    """A project whose production inventory has ``samus`` SAMUs (the shipped ten first)."""
    shutil.copytree(REPO / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    inventory = root / "inventories" / "production"
    shutil.copytree(REPO / "inventories" / "production", inventory)
    present = {s.code for s in load_inventory(root, "production").samus.values()}
    extra = [c for c in all_departement_codes() if c not in present][: max(0, samus - len(present))]
    hosts = "".join(f"            samu-{code}:\n" for code in extra)
    text = (inventory / "hosts.yml").read_text(encoding="utf-8")
    (inventory / "hosts.yml").write_text(text + "        wave2:\n          hosts:\n" + hosts, encoding="utf-8")
    for i, code in enumerate(extra, start=len(present) + 1):
        (inventory / "host_vars" / f"samu-{code}.yml").write_text(
            f'samu_code: "{code}"\nsamu_name: SAMU {code}\nsamu_cidr: 10.140.{i}.0/24\n'
            f"samu_site_cidr: 172.16.{i}.0/24\nsamu_vpn_peer: 203.0.113.{i}\n", encoding="utf-8")
    assert len(load_inventory(root, "production").samus) == samus
    return root


def timed_plan(project: Path) -> tuple[Plan, float]:
    start = time.perf_counter()
    plan = plan_environment(project, "production")
    return plan, time.perf_counter() - start


def child_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def changed_copy(plan: Plan) -> Plan:
    """The plan with every RAC node's image changed and one tenant gone: replaces and deletes to classify."""
    kept = [r for r in plan if r.name != "samu-69" and r.parent != "samu-69"]
    return Plan.of(PlannedResource(r.type, r.name, {**r.inputs, "imageName": "ol9-next"}
                                   if r.type.endswith(":Instance") and r.name.startswith("rac-") else r.inputs,
                                   r.parent, r.dependencies, r.provider) for r in kept)


def bench_diff(old: Plan, new: Plan, folder: Path, repeat: int) -> tuple[list[float], int]:
    old_file, new_file = folder / "old.json", folder / "new.json"
    old_file.write_text(old.dumps(), encoding="utf-8")
    new_file.write_text(new.dumps(), encoding="utf-8")
    times, changes = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        diff = diff_plans(load_plan(old_file), load_plan(new_file))
        times.append(time.perf_counter() - start)
        changes = len(diff.changes)
    return times, changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samus", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="infra-bench-") as tmp:
        small, small_s = timed_plan(grown_project(Path(tmp) / "p10", 10))
        small_mem = child_peak_mib()
        big, big_s = timed_plan(grown_project(Path(tmp) / "pN", args.samus))
        big_mem = child_peak_mib()  # the peak over every child so far: the N-SAMU one dominates
        diff_times, changes = bench_diff(big, changed_copy(big), Path(tmp), args.repeat)
    marginal = (big_s - small_s) / max(1, len(big) - len(small))
    print(f"infra plan, production, {10:>3} SAMUs: {len(small):>5} resources in {small_s:6.2f} s, "
          f"child peak RSS {small_mem:6.1f} MiB")
    print(f"infra plan, production, {args.samus:>3} SAMUs: {len(big):>5} resources in {big_s:6.2f} s, "
          f"child peak RSS {big_mem:6.1f} MiB")
    print(f"  time per resource: {1000 * big_s / len(big):.2f} ms overall, {1000 * marginal:.2f} ms marginal "
          f"(start-up and imports excluded)")
    median = statistics.median(diff_times)
    verdict = "within" if max(diff_times) < DIFF_BUDGET_S else "OVER"
    print(f"infra diff of two {args.samus}-SAMU plan files ({changes} changes): median {1000 * median:.0f} ms, "
          f"max {1000 * max(diff_times):.0f} ms over {args.repeat} runs; {verdict} the {DIFF_BUDGET_S:.0f} s budget")
    return 0 if verdict == "within" else 1


if __name__ == "__main__":
    sys.exit(main())
