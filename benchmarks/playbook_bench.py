"""Playbook step benchmark: `cutover run` against bare `ansible-playbook`, and 100 sites against 10.

Run: ``.venv/bin/python -m benchmarks.playbook_bench [--repeat 5] [--large 100]``.

Everything is real and built in a temporary folder: one OpenSSH server per
site on loopback (``cutover.lab.sshd``, as the lab starts them), an inventory
shaped like the lab's (``samu`` > ``wave1``, département codes, the Python
named), a trivial playbook (a ``command: true`` task and a file write), and a
one-step runbook that fans that playbook out over ``wave1``.

1. Ten sites: the median wall time of ``cutover run`` (a subprocess, its own
   ``--state-dir``, journal included) against bare ``ansible-playbook`` of the
   same playbook on the same inventory with ``--limit wave1 --forks 10``. Both
   get the same Ansible settings (``ansible_environment``: strict host keys,
   pipelining, ControlPersist in a fresh folder per run, so no run inherits a
   master connection from the previous one). Target: ratio <= 1.05 (issue 12).
2. ``--large`` sites (default 100) against 10 through ``cutover run`` (the step's
   concurrency, Ansible's forks, equal to the number of sites). Target: ratio
   <= 3. Bare ``ansible-playbook`` over the same 10 and 100 sites gives
   Ansible's own ratio in the same run: the sites' module runs share this
   machine's CPUs with the controller, so that ratio is the floor here. It
   also gives cutover's ratio to bare ``ansible-playbook`` at that size
   (target <= 1.05, issue 12).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import yaml

from cutover.executors.ansible import ansible_environment, venv_bin
from cutover.lab.sshd import SshdProcess, generate_keypair, start_sshd, write_known_hosts
from cutover.model.inventory import all_departement_codes, load_inventory

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: check the site
      command: "true"
    - name: write the site's mark
      copy:
        dest: "{{ bench_dir }}/{{ inventory_hostname }}"
        content: "ok\\n"
"""

RUNBOOK = """\
name: bench
steps:
  - id: touch
    kind: playbook
    playbook: bench.yml
    for_each: wave1
    concurrency: {concurrency}
    rollback: none
    rollback_reason: benchmark
"""

CPU_LOAD: list[float] = []  # share of the machine's CPU busy during each timed run
FORKS = 10  # the ten-site comparison: --forks 10 and concurrency 10 on both sides


def make_project(root: Path, servers: Sequence[SshdProcess], key: Path, name: str, concurrency: int) -> Path:
    """A project with one inventory (inventories/<name>) over ``servers``; returns the project folder."""
    inventory = root / "inventories" / name
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    hosts = [f"samu-{code}" for code in all_departement_codes()[: len(servers)]]
    tree = {"all": {"children": {"samu": {"children": {"wave1": {"hosts": dict.fromkeys(hosts)}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(tree))
    for index, (host, server) in enumerate(zip(hosts, servers)):
        code = host.removeprefix("samu-")
        (inventory / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump({
            "samu_code": code, "samu_name": f"SAMU {code}", "samu_cidr": f"10.{130 + index // 250}.{index % 250}.0/24",
            "ansible_host": "127.0.0.1", "ansible_port": server.port}))
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "cutover_lab": True, "cutover_known_hosts": "ssh/known_hosts", "ansible_ssh_private_key_file": str(key),
        "ansible_user": getpass.getuser(), "ansible_python_interpreter": "/usr/bin/python3",
        "bench_dir": str(root / "marks")}))
    write_known_hosts(inventory / "ssh" / "known_hosts", [s.known_hosts_line() for s in servers])
    (root / "marks").mkdir(exist_ok=True)
    for folder, file, text in (("playbooks", "bench.yml", PLAYBOOK), ("runbooks", "bench.yaml", RUNBOOK.format(concurrency=concurrency))):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / file).write_text(text)
    return root


def start_sites(base: Path, count: int, key: Path) -> list[SshdProcess]:
    authorized = base / "authorized_keys"
    authorized.write_text(key.with_name(key.name + ".pub").read_text())
    authorized.chmod(0o600)
    servers = []
    port = 24001
    for index in range(count):
        workdir = base / f"sshd-{index}"
        workdir.mkdir()
        while True:  # the next free port from 24001 up
            try:
                servers.append(start_sshd(workdir, name=workdir.name, port=port, authorized_keys=authorized))
                port += 1
                break
            except Exception:  # noqa: BLE001 - port taken: try the next one
                port += 1
                if port > 24001 + 10 * count + 100:
                    raise
    return servers


def bare_ansible(project: Path, name: str, forks: int = FORKS) -> float:
    inventory = load_inventory(project, name)
    control = Path(tempfile.mkdtemp(prefix="bench-cp-"))  # fresh, like each cutover process
    config = project / "ansible.cfg"
    config.touch()
    env = {**os.environ, **ansible_environment(inventory, config=config, control_dir=control),
           "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(venv_bin() / "ansible-playbook"), "-i", str(inventory.path / "hosts.yml"),
               "--private-key", str(inventory.ssh_key), "--limit", "wave1", "--forks", str(forks),
               str(project / "playbooks" / "bench.yml")]
    try:
        return _timed(command, env, project)
    finally:
        shutil.rmtree(control, ignore_errors=True)


def cutover_run(project: Path, name: str, state: Path) -> float:
    command = [str(venv_bin() / "cutover"), "--project-dir", str(project), "--state-dir", str(state),
               "run", "runbooks/bench.yaml", "--env", name]
    return _timed(command, dict(os.environ), project)


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat: the sites' sshd work counts too."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    busy0, total0 = _cpu_busy()
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    busy1, total1 = _cpu_busy()
    CPU_LOAD.append((busy1 - busy0) / max(1.0, total1 - total0))
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def medians(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    """Interleave the contenders so a slow moment of the machine hits both; print every time."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            times[name].append(run())
    for name, values in times.items():
        print(f"  {name:>16}: " + " ".join(f"{v:.2f}" for v in values))
    print(f"  machine CPU busy during these runs: {min(CPU_LOAD):.0%}..{max(CPU_LOAD):.0%}")
    CPU_LOAD.clear()
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each contender (median kept)")
    parser.add_argument("--large", type=int, default=100, help="sites of the large lab")
    parser.add_argument("--only", choices=("ratio", "scale"), default=None, help="run one of the two comparisons")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cutover-playbook-bench-") as tmp:
        base = Path(tmp)
        key = generate_keypair(base / "client" / "id_ed25519", "bench")
        started = time.perf_counter()
        servers = start_sites(base, max(10, args.large), key)
        print(f"{len(servers)} sshds started in {time.perf_counter() - started:.1f}s; "
              f"{os.cpu_count()} CPUs; repeat {args.repeat}")
        try:
            small = make_project(base / "p10", servers[:10], key, "bench10", FORKS)
            # One batch, every site at once (forks = sites), as the step would be written for a wave of 100.
            large = make_project(base / f"large-{args.large}", servers[: args.large], key, f"bench{args.large}", args.large)
            counter = iter(range(10_000))
            if args.only != "scale":
                compare_bare(small, base, counter, args.repeat)
            if args.only != "ratio":
                compare_scale(small, large, base, counter, args.repeat, args.large)
        finally:
            for server in servers:
                server.stop()
    return 0


def compare_bare(small: Path, base: Path, counter: Iterator[int], repeat: int) -> None:
    ten = medians({
        "ansible-playbook": lambda: bare_ansible(small, "bench10"),
        "cutover run": lambda: cutover_run(small, "bench10", base / f"state-{next(counter)}"),
    }, repeat)
    print(f"10 sites   bare ansible-playbook  median {ten['ansible-playbook']:.2f}s")
    print(f"10 sites   cutover run            median {ten['cutover run']:.2f}s")
    print(f"ratio cutover / ansible-playbook: {ten['cutover run'] / ten['ansible-playbook']:.3f} (target <= 1.05)")


def compare_scale(small: Path, large: Path, base: Path, counter: Iterator[int], repeat: int, count: int) -> None:
    scale = medians({
        "cutover 10": lambda: cutover_run(small, "bench10", base / f"state-{next(counter)}"),
        f"cutover {count}": lambda: cutover_run(large, f"bench{count}", base / f"state-{next(counter)}"),
        # Ansible's own scaling on this machine, as the floor: the sites run here too,
        # so their module runs share the controller's CPUs.
        "ansible 10": lambda: bare_ansible(small, "bench10"),
        f"ansible {count}": lambda: bare_ansible(large, f"bench{count}", forks=count),
    }, repeat)
    ours = scale[f"cutover {count}"] / scale["cutover 10"]
    ansible = scale[f"ansible {count}"] / scale["ansible 10"]
    print(f"{count} sites  cutover run            median {scale[f'cutover {count}']:.2f}s "
          f"(10 sites: {scale['cutover 10']:.2f}s)")
    print(f"{count} sites  bare ansible-playbook  median {scale[f'ansible {count}']:.2f}s "
          f"(10 sites: {scale['ansible 10']:.2f}s)")
    print(f"ratio {count} / 10 sites, cutover run: {ours:.2f} (target <= 3)")
    print(f"ratio {count} / 10 sites, bare ansible-playbook: {ansible:.2f} (the same work without cutover)")
    print(f"ratio cutover / ansible-playbook at {count} sites: "
          f"{scale[f'cutover {count}'] / scale[f'ansible {count}']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    sys.exit(main())
