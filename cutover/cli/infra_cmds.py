"""``cutover infra plan|diff|check|preview|up`` and ``cutover tenant add|list``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cutover.cli.app import App, pass_app
from cutover.errors import ExitCode, InputError
from cutover.infra.diff import Op, PlanDiff, diff_plans, render_markdown
from cutover.infra.evaluate import ProgramFailed, plan_at_revision, plan_environment
from cutover.infra.plan import Plan, load_plan
from cutover.infra.policy import RULES, Violation, check_plan, policy_context
from cutover.infra.stack import load_stack
from cutover.inventory import load_inventory
from cutover.tenants import NewTenant, add_tenant, list_tenants

GIT_PREFIX = "git:"
ENV_OPTION = click.option("--env", "env", required=True, help="Environment: inventories/ENV and stack ENV.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group("infra")
def infra() -> None:
    """The trusted-cloud infrastructure: plan, diff and check offline; preview and up with the Pulumi CLI.

    plan, diff and check evaluate infra/ under Pulumi's mock runtime: no Pulumi CLI, no cloud.
    """


def _plan(app: App, env: str) -> Plan:
    app.require_project()
    try:
        return plan_environment(app.project_dir, env)
    except ProgramFailed as exc:
        if app.debug and exc.detail:
            app.err.print(escape(exc.detail))
        raise


@infra.command("plan")
@ENV_OPTION
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write the plan (JSON) here.")
@JSON_OPTION
@pass_app
def plan_cmd(app: App, env: str, out: Path | None, as_json: bool) -> int:
    """Every resource the program would create for ENV: type, name, inputs, parent, dependencies."""
    plan = _plan(app, env)
    if out is not None:
        app.project_path(out).write_text(plan.dumps(), encoding="utf-8")
    if as_json:
        click.echo(plan.dumps(), nl=False)
        return int(ExitCode.OK)
    _show_plan_summary(app, env, plan, out)
    return int(ExitCode.OK)


def _show_plan_summary(app: App, env: str, plan: Plan, out: Path | None) -> None:
    components = [r for r in plan if r.is_component and r.parent is None]
    table = Table(title=f"infra plan: {env} ({len(plan)} resources)", title_justify="left")
    table.add_column("type")
    table.add_column("count", justify="right")
    for type_, count in plan.count_by_type().items():
        table.add_row(escape(type_), str(count))
    app.console.print(table)
    app.console.print("components: " + escape(", ".join(f"{c.name} ({c.type})" for c in components)))
    if out is not None:
        app.console.print(f"plan written to {escape(str(out))}")


def _plan_from(app: App, side: str, env: str | None) -> Plan:
    if side.startswith(GIT_PREFIX):
        if env is None:
            raise InputError(f"{side} needs --env: which stack to evaluate at that revision")
        return plan_at_revision(app.project_dir, side[len(GIT_PREFIX):], env)
    return load_plan(app.project_path(side))


@infra.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--env", "env", default=None, help="Stack to evaluate for a git:REF side.")
@JSON_OPTION
@click.option("--markdown", is_flag=True, help="Markdown, for a review comment.")
@pass_app
def diff_cmd(app: App, old: str, new: str, env: str | None, as_json: bool, markdown: bool) -> int:
    """What changes from OLD to NEW; each is a plan file or git:REF (the plan at that revision).

    Exit 0 when the plans are the same, 8 when they differ.
    """
    diff = diff_plans(_plan_from(app, old, env), _plan_from(app, new, env))
    if as_json:
        app.emit_json(diff.to_json())
    elif markdown:
        click.echo(render_markdown(diff, old_label=old, new_label=new), nl=False)
    else:
        _show_diff(app, diff)
    return int(ExitCode.CHANGES_PRESENT if diff.has_changes else ExitCode.OK)


DIFF_STYLE = {Op.CREATE: ("+", "green"), Op.UPDATE: ("~", "yellow"), Op.REPLACE: ("+-", "magenta"),
              Op.DELETE: ("-", "red")}


def _show_diff(app: App, diff: PlanDiff) -> None:
    for change in diff.changes:
        mark, colour = DIFF_STYLE[change.op]
        danger = " [bold red]DANGEROUS[/]" if change.dangerous else ""
        app.console.print(f"[{colour}]{mark} {change.op.value:<8}[/] {escape(change.type)} "
                          f"[bold]{escape(change.name)}[/]{danger}")
        if change.reason:
            app.console.print(f"      [dim]{escape(change.reason)}[/]")
        for prop in change.properties:
            forced = " [magenta](forces replacement)[/]" if prop.forces_replacement else ""
            app.console.print(f"      {escape(prop.path)}: {escape(repr(prop.old))} => {escape(repr(prop.new))}{forced}")
    counts = ", ".join(f"{n} to {op}" for op, n in diff.counts().items() if n)
    app.console.print(f"{counts or 'no changes'}; {diff.unchanged} unchanged"
                      + (f"; [bold red]{len(diff.dangerous())} dangerous[/]" if diff.dangerous() else ""))


@infra.command("check")
@ENV_OPTION
@JSON_OPTION
@pass_app
def check_cmd(app: App, env: str, as_json: bool) -> int:
    """Check ENV's plan against the SecNumCloud 3.2 and HDS rules. Exit 9 when any is broken."""
    plan = _plan(app, env)
    inventory = load_inventory(app.project_dir, load_stack(app.project_dir, env).inventory)
    violations = check_plan(plan, policy_context(inventory))
    if as_json:
        app.emit_json({"rules": [{"id": r.id, "clause": r.clause, "title": r.title} for r in RULES],
                       "violations": [v.to_json() for v in violations]})
    else:
        _show_violations(app, env, plan, violations)
    return int(ExitCode.POLICY_VIOLATIONS if violations else ExitCode.OK)


def _show_violations(app: App, env: str, plan: Plan, violations: list[Violation]) -> None:
    if not violations:
        app.console.print(f"[green]{env}: {len(plan)} resources pass all {len(RULES)} rules[/]")
        for rule in RULES:
            app.console.print(f"  [green]ok[/] {escape(rule.id)} ({escape(rule.clause)}): {escape(rule.title)}")
        return
    for v in violations:
        app.console.print(f"[red]✗[/] [bold]{escape(v.resource)}[/] ({escape(v.type)}) breaks "
                          f"[bold]{escape(v.rule)}[/] [{escape(v.clause)}]\n    {escape(v.message)}\n"
                          f"    [dim]fix: {escape(v.fix)}[/]")
    app.console.print(f"[red]{len(violations)} violation(s)[/] in {env}")


@infra.command("preview")
@ENV_OPTION
@pass_app
def preview_cmd(app: App, env: str) -> int:
    """`pulumi preview --diff` of stack ENV through the Automation API (needs the Pulumi CLI)."""
    from cutover.infra.automation import preview

    app.require_project()
    outcome = preview(app.project_dir, env, on_output=lambda line: app.console.print(escape(line), end=""))
    app.console.print(f"preview of {env}: {outcome.summary}")
    return int(ExitCode.OK)


@infra.command("up")
@ENV_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def up_cmd(app: App, env: str, yes: bool) -> int:
    """`pulumi up` of stack ENV through the Automation API (needs the Pulumi CLI and credentials)."""
    from cutover.infra.automation import require_pulumi, up, validated_stack

    app.require_project()
    validated_stack(app.project_dir, env)
    require_pulumi()
    if not yes and not click.confirm(f"apply the infrastructure of {env}?", default=False):
        raise click.exceptions.Abort()
    outcome = up(app.project_dir, env, on_output=lambda line: app.console.print(escape(line), end=""))
    app.console.print(f"up of {env}: {outcome.summary}")
    return int(ExitCode.OK)


# --------------------------------------------------------------------------
# tenant


@click.group("tenant")
def tenant() -> None:
    """SAMU tenants in an environment's inventory."""


@tenant.command("list")
@ENV_OPTION
@JSON_OPTION
@pass_app
def tenant_list_cmd(app: App, env: str, as_json: bool) -> int:
    """The SAMUs of ENV: code, name, wave, network."""
    app.require_project()
    rows = list_tenants(load_inventory(app.project_dir, env))
    if as_json:
        app.emit_json([row.to_json() for row in rows])
        return int(ExitCode.OK)
    table = Table(title=f"{env}: {len(rows)} SAMU(s)", title_justify="left")
    for column in ("code", "name", "wave", "network", "VPN peer"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.code, escape(row.name), str(row.wave or "-"), row.cidr, row.vpn_peer or "-")
    app.console.print(table)
    return int(ExitCode.OK)


@tenant.command("add")
@ENV_OPTION
@click.option("--code", required=True, help="Département code, e.g. 30 or 2B.")
@click.option("--name", required=True, help='Display name, e.g. "Nîmes (Gard)".')
@click.option("--wave", type=int, required=True, help="Wave number (1, 2, ...).")
@click.option("--vpn-peer", default=None, help="Public address of the SAMU premises' VPN gateway.")
@click.option("--site-cidr", default=None, help="The premises' network behind that gateway.")
@JSON_OPTION
@pass_app
def tenant_add_cmd(app: App, env: str, code: str, name: str, wave: int, vpn_peer: str | None,
                   site_cidr: str | None, as_json: bool) -> int:
    """Add a SAMU to ENV's inventory, with a network allocated from the tenant pool."""
    app.require_project()
    request = NewTenant(code=code, name=name, wave=wave, vpn_peer=_address(vpn_peer, "--vpn-peer"),
                        site_cidr=_network(site_cidr, "--site-cidr"))
    samu = add_tenant(app.project_dir, env, request)
    if as_json:
        app.emit_json({"code": samu.code, "name": samu.name, "host": samu.host, "wave": samu.wave,
                       "cidr": str(samu.cidr)})
    else:
        app.console.print(f"added SAMU {samu.code} {escape(samu.name)} to {env}: host {samu.host}, wave {samu.wave}, "
                          f"network {samu.cidr}\n  next: cutover infra plan --env {env}")
    return int(ExitCode.OK)


def _address(value: str | None, option: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(value) if value else None
    except ValueError as exc:
        raise InputError(f"{option} {value!r} is not an IPv4 address") from exc


def _network(value: str | None, option: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(value) if value else None
    except ValueError as exc:
        raise InputError(f"{option} {value!r} is not an IPv4 network (e.g. 172.16.3.0/24)") from exc
