"""Infra benchmark: `infra plan` of a 100-SAMU production inventory, and `infra diff` between plans.

Run: ``.venv/bin/python -m benchmarks.infra_bench [--samus N] [--repeat R]``. The
inventory is the shipped production one grown to N SAMUs (département codes in
order, one /24 each) in a temporary project folder; every figure comes from
this run on this machine. The plan is evaluated as ``cutover infra plan``
does it: the real program under Pulumi's mock runtime, in a child interpreter.

Printed, one section per entry of ``BENCHES`` (each a function of the shared
``Plans``; add one there to time another use of the same plans):

- plan: wall time and the child's peak memory for 10 and N SAMUs, time per
  resource (overall and marginal, i.e. without start-up and imports);
- diff: the 10 -> N SAMU change as ``infra diff OLD NEW --markdown`` does it
  (parse both plan files, diff, render the Markdown), against the 1 s budget,
  with the Markdown's size against the 60,000-character budget; and an N-SAMU
  plan against a copy with replacements and deletes (parse + diff).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cutover.infra.compliance import CheckReport, check, check_inputs
from cutover.infra.diff import MARKDOWN_BUDGET, diff_plans, render_markdown
from cutover.infra.evaluate import plan_environment
from cutover.infra.hostfilter import write_rulesets
from cutover.infra.plan import Plan, PlannedResource, load_plan
from cutover.infra.policy import RULES, check_plan
from cutover.infra.stack import PROVIDER
from cutover.model.inventory import all_departement_codes, load_inventory

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


@dataclass(frozen=True)
class Plans:
    """What every bench works on: the 10- and N-SAMU plans, how long they took, their files."""

    small: Plan
    small_s: float
    small_mem: float
    big: Plan
    big_s: float
    big_mem: float
    folder: Path
    repeat: int

    def file(self, name: str, plan: Plan) -> Path:
        path = self.folder / name
        if not path.exists():
            path.write_text(plan.dumps(), encoding="utf-8")
        return path


@dataclass(frozen=True)
class Figure:
    line: str
    within_budget: bool = True


def changed_copy(plan: Plan) -> Plan:
    """The plan with every RAC node's image changed and one tenant gone: replaces and deletes to classify."""
    kept = [r for r in plan if r.name != "samu-69" and r.parent != "samu-69"]
    return Plan.of(PlannedResource(r.type, r.name, {**r.inputs, "imageName": "ol9-next"}
                                   if r.type.endswith(":Instance") and r.name.startswith("rac-") else r.inputs,
                                   r.parent, r.dependencies, r.provider, r.options) for r in kept)


def timed(repeat: int, work: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def bench_plan(plans: Plans) -> list[Figure]:
    marginal = (plans.big_s - plans.small_s) / max(1, len(plans.big) - len(plans.small))
    samus = len(plans.big.of_type("cutover:samu:Tenant"))
    return [
        Figure(f"infra plan, production, {10:>3} SAMUs: {len(plans.small):>5} resources in {plans.small_s:6.2f} s, "
               f"child peak RSS {plans.small_mem:6.1f} MiB"),
        Figure(f"infra plan, production, {samus:>3} SAMUs: {len(plans.big):>5} resources in {plans.big_s:6.2f} s, "
               f"child peak RSS {plans.big_mem:6.1f} MiB"),
        Figure(f"  time per resource: {1000 * plans.big_s / len(plans.big):.2f} ms overall, {1000 * marginal:.2f} ms "
               "marginal (start-up and imports excluded)"),
    ]


def bench_diff_markdown(plans: Plans) -> list[Figure]:
    """10 -> N SAMUs, as `infra diff old.json new.json --markdown` does it."""
    old_file, new_file = plans.file("p10.json", plans.small), plans.file("pN.json", plans.big)
    rendered: list[str] = []

    def diff_to_markdown() -> None:
        diff = diff_plans(load_plan(old_file), load_plan(new_file))
        rendered[:] = [render_markdown(diff, old_label="p10.json", new_label="pN.json")]

    times = timed(plans.repeat, diff_to_markdown)
    text = rendered[0]
    fits = len(text) < MARKDOWN_BUDGET
    return [
        _timing(f"infra diff --markdown, 10 -> {len(plans.big.of_type('cutover:samu:Tenant'))} SAMUs "
                "(parse, diff, render)", times),
        Figure(f"  Markdown: {len(text):,} characters ({'within' if fits else 'OVER'} the {MARKDOWN_BUDGET:,} budget), "
               f"{text.count('<details>')} group(s) in detail, the rest elided", fits),
    ]


def bench_diff_replacements(plans: Plans) -> list[Figure]:
    old_file = plans.file("pN.json", plans.big)
    new_file = plans.file("pN-changed.json", changed_copy(plans.big))
    counted: list[int] = []

    def diff_files() -> None:
        counted[:] = [len(diff_plans(load_plan(old_file), load_plan(new_file)).changes)]

    times = timed(plans.repeat, diff_files)
    return [_timing(f"infra diff, N-SAMU plan against replaces and deletes ({counted[0]} changes, parse + diff)",
                    times)]


def _timing(what: str, times: list[float]) -> Figure:
    within = max(times) < DIFF_BUDGET_S
    return Figure(f"{what}: median {1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} ms over "
                  f"{len(times)} runs; {'within' if within else 'OVER'} the {DIFF_BUDGET_S:.0f} s budget", within)


def bench_check(plans: Plans) -> list[Figure]:
    """`infra check --plan pN.json` on the N-SAMU plan: parse, every rule, the source scan, suppressions."""
    project = plans.folder / "pN"
    inputs = check_inputs(project, "production")
    plan_file = plans.file("pN.json", plans.big)
    provider = plan_environment(project, "production", PROVIDER)  # the provider-side plan, checked with ours
    write_rulesets(project, "production", plans.big)  # as `cutover infra firewall` would, for rule host-filtering
    reports: list[CheckReport] = []

    def check_saved_plan() -> None:
        reports[:] = [check(inputs, load_plan(plan_file), provider)]

    times = timed(plans.repeat, check_saved_plan)
    rules_only = timed(plans.repeat, lambda: check_plan(plans.big, inputs.context))
    report = reports[0]
    passes = report.passed
    return [
        _timing(f"infra check --plan, {len(plans.big.of_type('cutover:samu:Tenant'))} SAMUs ({len(plans.big)} "
                f"resources, {len(RULES)} rules, parse + check + source scan)", times),
        Figure(f"  the rules alone: median {1000 * statistics.median(rules_only):.0f} ms; "
               f"{'passes' if passes else 'FAILS'} ({len(report.violations)} violation(s))", passes),
    ]


# Each bench reads the shared plans and returns its printed figures; append new ones here.
BENCHES: list[Callable[[Plans], list[Figure]]] = [bench_plan, bench_diff_markdown, bench_diff_replacements,
                                                  bench_check]


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
        plans = Plans(small, small_s, small_mem, big, big_s, big_mem, Path(tmp), args.repeat)
        figures = [figure for bench in BENCHES for figure in bench(plans)]
    for figure in figures:
        print(figure.line)
    return 0 if all(f.within_budget for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
