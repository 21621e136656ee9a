"""``cutover lab``: the local lab (real sshd per SAMU site, two platforms, continuous call traffic)."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cutover.cli.app import App, pass_app
from cutover.errors import ExitCode, InputError
from cutover.lab import manager
from cutover.lab.ledger import CallAccount
from cutover.lab.tools import samulab


@click.group()
def lab() -> None:
    """The local lab: one OpenSSH server per SAMU site, legacy and cloud platforms, live call traffic.

    State lives under STATE_DIR/lab/ (see docs/lab.md).
    """


@lab.command()
@click.option("--samus", type=click.IntRange(1, manager.inventorygen.max_samus()), default=manager.DEFAULT_SAMUS,
              show_default=True, help="How many SAMUs; 10 is inventories/lab, any other count writes "
              "an inventory under STATE_DIR/lab/inventory.")
@click.option("--waves", type=click.IntRange(1, manager.inventorygen.max_samus()), default=1, show_default=True,
              help="Split the SAMUs into this many wave groups (wave1..waveK) in a generated inventory.")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Calls per second per SAMU.")
@click.option("--hold", type=float, default=manager.traffic.DEFAULT_HOLD_S, show_default=True,
              help="Seconds each answered call lasts before the caller hangs up.")
@click.option("--json", "as_json", is_flag=True, help="Print the lab's description as JSON.")
@pass_app
def up(app: App, samus: int, waves: int, rate: float, hold: float, as_json: bool) -> int:
    """Start the lab: sshd per site and platform, databases, keys, known_hosts, the call router (Kamailio),
    answering agents, and SIPp calling every SAMU."""
    app.require_project()
    state = manager.lab_up(app.project_dir, app.ensure_state_dir(), samus=samus, waves=waves, rate=rate, hold=hold,
                           progress=lambda line: app.err.print(f"[dim]{escape(line)}[/]"))
    if as_json:
        app.emit_json(state.model_dump(mode="json"))
        return int(ExitCode.OK)
    sites = state.sites()
    app.console.print(f"[bold green]lab up[/]: {len(sites)} SAMU sites "
                      f"(ports {sites[0].port}..{sites[-1].port}), "
                      + ", ".join(f"{p.name}:{p.port}" for p in state.platforms()))
    router_port = state.sip.router_port if state.sip else "?"
    app.console.print(f"calls: SIPp {rate:g} call/s per SAMU, held {hold:g}s (pid {state.traffic.pid}), "
                      f"through Kamailio on udp 127.0.0.1:{router_port}; lab folder {state.lab_dir}")
    app.console.print(f"use [bold]--env {escape(state.env)}[/]; stop with [bold]cutover lab down[/]")
    return int(ExitCode.OK)


@lab.command()
@pass_app
def reset(app: App) -> int:
    """Back to the start of a night: every SAMU nominal on legacy, fresh platforms, traffic running; journal kept."""
    state = manager.lab_reset(app.ensure_state_dir())
    app.console.print(f"[bold green]lab reset[/]: {len(state.sites())} SAMUs nominal on the legacy platform, "
                      f"fresh platform databases, traffic running (pid {state.traffic.pid}); the journal is kept")
    return int(ExitCode.OK)


@lab.command()
@pass_app
def down(app: App) -> int:
    """Stop SIPp (letting its calls end), Kamailio, the answering agents and every lab sshd (idempotent);
    the databases and SIPp's statistics stay for `lab calls`."""
    result = manager.lab_down(app.state_dir)
    if result.stopped:
        app.console.print(f"lab down: stopped {', '.join(result.stopped)}")
    else:
        app.console.print("lab down: nothing was running")
    return int(ExitCode.OK)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: App, as_json: bool) -> int:
    """Each site (reachable, mode, platform, backup buffer), each platform, the traffic."""
    report = manager.lab_status(app.state_dir)
    if as_json:
        app.emit_json(report.to_json())
        return int(ExitCode.OK)
    if report.state is None:
        app.console.print("no lab here; start one with `cutover lab up`")
        return int(ExitCode.OK)
    app.console.print(_status_table(report.to_json()))
    return int(ExitCode.OK)


def _status_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"lab {'up' if data['up'] else 'down'} · traffic "
                        f"{'running' if data['traffic']['running'] else 'stopped'}")
    for column in ("host", "port", "reachable", "mode / state", "platform / records", "buffer", "faults"):
        table.add_column(column)
    for site in data["sites"]:
        table.add_row(site["host"], str(site["port"]), _yes(site["reachable"]), site["mode"], site["platform"],
                      str(site["buffer"]), ", ".join(site["faults"]))
    for platform in data["platforms"]:
        table.add_row(platform["host"], str(platform["port"]), _yes(platform["reachable"]), platform["state"],
                      str(platform["records"]), "", ", ".join(platform["faults"]))
    router = data.get("router") or {}
    if router:
        table.add_row("router (kamailio)", f"udp {router['port']}", _yes(router["running"]), "", "", "",
                      ", ".join(router["faults"]))
    return table


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Exit 4 if any call was lost or any record is missing or duplicated.")
@pass_app
def calls(app: App, as_json: bool, check: bool) -> int:
    """Calls placed, answered, lost; records missing or duplicated (see docs/lab.md)."""
    account = manager.lab_calls(app.state_dir)
    if as_json:
        app.emit_json(account.to_json())
    else:
        _print_calls(app, account)
    return int(ExitCode.FAILED) if check and not account.ok else int(ExitCode.OK)


def _print_calls(app: App, account: CallAccount) -> None:
    verdict = "[bold green]nothing lost[/]" if account.ok else "[bold red]LOSSES[/]"
    if account.sipp is not None:
        sipp = account.sipp
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(sipp.failed_by.items()))
        app.console.print(f"SIPp: placed {sipp.created}, successful {sipp.successful}, failed {sipp.failed}"
                          f"{f' ({why})' if why else ''}, in progress {sipp.in_progress}")
        if sipp.files:
            app.console.print(f"  SIPp's statistics: {escape(sipp.files[-1]['stat'])}")
    by = ", ".join(f"{who} {n}" for who, n in sorted(account.answered_by.items()))
    app.console.print(f"calls placed {account.placed}, answered {account.answered} ({by or 'none'}), "
                      f"lost {account.lost}")
    app.console.print(f"records missing {account.records_missing}, duplicated {account.records_duplicated}, "
                      f"pending in backup {account.pending_in_backup}  {verdict}")
    for reason, count in sorted(account.lost_reasons.items()):
        app.console.print(f"  lost {count}: {escape(reason)}")
    for kind in ("missing", "duplicated"):
        if account.examples[kind]:
            app.console.print(f"  {kind}, e.g.: {', '.join(account.examples[kind])}")


@lab.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--platform", type=click.Choice(("legacy", "cloud")), help="The platform of a packet-loss fault.")
@pass_app
def fault(app: App, words: tuple[str, ...], platform: str | None) -> int:
    """Inject a fault: `TARGET KIND`, `router-down`, or `packet-loss N% --platform P`.

    TARGET is a host (samu-30, cloud-platform), a SAMU code (30) or legacy/cloud; KIND: sshd-stopped (any host:
    it becomes unreachable), platform-db-down (its PostgreSQL stopped: calls to it are lost), checksum-mismatch
    (one record altered, or the next one written if it is empty). router-down stops the call router (Kamailio);
    packet-loss drops N% of the SIP packets to and from a platform (nftables on loopback).
    """
    app.console.print(f"fault injected: {escape(_inject(app, words, platform))}")
    return int(ExitCode.OK)


def _inject(app: App, words: tuple[str, ...], platform: str | None) -> str:
    kinds = ", ".join(manager.FAULT_KINDS + manager.SIP_FAULT_KINDS)
    if words == ("router-down",) or words == ("router", "router-down"):
        return manager.inject_sip_fault(app.state_dir, "router-down")
    if words[0] == "packet-loss":
        if len(words) != 2 or not words[1].rstrip("%").isdigit():
            raise InputError("packet-loss takes one percentage", hint="e.g. `lab fault packet-loss 20% --platform legacy`")
        return manager.inject_sip_fault(app.state_dir, "packet-loss", platform=platform,
                                        percent=int(words[1].rstrip("%")))
    if len(words) != 2:
        raise InputError(f"`lab fault {' '.join(words)}`: expected TARGET KIND", hint=f"faults: {kinds}")
    return manager.inject_fault(app.state_dir, words[0], words[1])


@lab.command()
@click.argument("target")
@pass_app
def heal(app: App, target: str) -> int:
    """Undo every fault on TARGET (a host, a SAMU code, legacy/cloud, router, or all)."""
    healed = manager.heal(app.state_dir, target)
    app.console.print("healed: " + ("; ".join(healed) if healed else "nothing to heal"))
    return int(ExitCode.OK)


@lab.command()
@click.argument("levels", nargs=-1, metavar="[CODE=LEVEL]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def vigilance(app: App, levels: tuple[str, ...], as_json: bool) -> int:
    """Show or change the lab's weather vigilance feed: e.g. `30=red` to rehearse a no-go.

    LEVEL is green, yellow, orange or red (Météo-France's colours 1 to 4). The
    weather probe of the bigbang runbook's go/no-go reads this file in the lab.
    """
    changes: dict[str, str] = {}
    for item in levels:
        code, sep, level = item.partition("=")
        if not sep or not code or not level:
            raise InputError(f"{item!r} is not CODE=LEVEL", hint="e.g. 30=red")
        changes[code] = level
    found = manager.set_vigilance(app.state_dir, changes)
    if as_json:
        app.emit_json(found)
        return int(ExitCode.OK)
    colours = {number: name for name, number in samulab.VIGILANCE_COLOURS.items()}
    app.console.print(", ".join(f"{code} {colours[level]}" for code, level in sorted(found.items())))
    return int(ExitCode.OK)


COMMANDS = (lab,)
