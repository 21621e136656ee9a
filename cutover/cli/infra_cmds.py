"""``cutover infra plan|diff|check|preview|up`` and ``cutover tenant add|list|edit|remove``."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cutover.cli.app import App, pass_app
from cutover.errors import ExitCode, InputError
from cutover.infra.acceptance import Acceptance, record_acceptance, require_reason, update_message
from cutover.infra.compliance import CheckInputs, CheckReport, check, check_inputs, require_pinned_policy
from cutover.infra.diff import Change, Op, PlanDiff, diff_plans, render_markdown
from cutover.infra.evaluate import ProgramFailed, plan_at_revision, plan_environment
from cutover.infra.hostfilter import write_rulesets
from cutover.infra.plan import Plan, load_plan
from cutover.infra.policy import RULES
from cutover.infra.sarif import to_sarif
from cutover.infra.stack import CUSTOMER, PROVIDER, program_dir
from cutover.model.inventory import load_inventory
from cutover.model.tenants import NewTenant, add_tenant, edit_tenant, list_tenants, remove_tenant

GIT_PREFIX = "git:"
ENV_OPTION = click.option("--env", "env", required=True, help="Environment: inventories/ENV and stack ENV.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
POLICY_OPTION = click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                             help="The qualified offer's policy file.  [default: infra/policy.yaml]")
SUPPRESSIONS_OPTION = click.option(
    "--suppressions", "suppressions_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Dated, reasoned exceptions.  [default: infra/policy-suppressions.yaml, when it exists]")


@click.group("infra")
def infra() -> None:
    """The trusted-cloud infrastructure: plan, diff and check offline; preview and up with the Pulumi CLI.

    plan, diff and check evaluate infra/ under Pulumi's mock runtime: no Pulumi CLI, no cloud.
    """


SIDE_OPTION = click.option("--side", type=click.Choice([CUSTOMER, PROVIDER]), default=CUSTOMER, show_default=True,
                           help="Which program: ours (infra/), or what the provider creates (infra/provider/).")


def _plan(app: App, env: str, side: str = CUSTOMER) -> Plan:
    app.require_project()
    try:
        return plan_environment(app.project_dir, env, side)
    except ProgramFailed as exc:
        if app.debug and exc.detail:
            app.err.print(escape(exc.detail))
        raise


def _provider_plan(app: App, env: str) -> Plan | None:
    """The provider-side plan the customer's reads by name; None when the project has no infra/provider."""
    if not (program_dir(app.project_dir, PROVIDER) / "Pulumi.yaml").is_file():
        return None
    return _plan(app, env, PROVIDER)


@infra.command("plan")
@ENV_OPTION
@SIDE_OPTION
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write the plan (JSON) here.")
@JSON_OPTION
@pass_app
def plan_cmd(app: App, env: str, side: str, out: Path | None, as_json: bool) -> int:
    """Every resource the program would create for ENV: type, name, inputs, parent, dependencies."""
    plan = _plan(app, env, side)
    if out is not None:
        app.project_path(out).write_text(plan.dumps(), encoding="utf-8")
    if as_json:
        click.echo(plan.dumps(), nl=False)
        return int(ExitCode.OK)
    _show_plan_summary(app, env, plan, out)
    return int(ExitCode.OK)


@infra.command("firewall")
@ENV_OPTION
@pass_app
def firewall_cmd(app: App, env: str) -> int:
    """Write each bare-metal node's nftables ruleset from ENV's security groups (playbooks/files/nftables/ENV/).

    Security groups may not be enforced on Ironic ports (switch mechanism drivers have no
    agent on the host): playbooks/host_filter.yml applies these rulesets on the nodes, and
    `infra check` (rule host-filtering) fails while they disagree with the plan.
    """
    written = write_rulesets(app.project_dir, env, _plan(app, env))
    for path in written:
        app.console.print(f"wrote {escape(str(path.relative_to(app.project_dir)))}")
    app.console.print(f"{len(written)} node ruleset(s); review the diff, commit, then run playbooks/host_filter.yml")
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
@click.option("--check", "with_check", is_flag=True,
              help="Also check NEW against the policy (needs --env), inline; exit 9 if it breaks a rule.")
@POLICY_OPTION
@SUPPRESSIONS_OPTION
@pass_app
def diff_cmd(app: App, old: str, new: str, env: str | None, as_json: bool, markdown: bool, with_check: bool,
             policy_file: Path | None, suppressions_file: Path | None) -> int:
    """What changes from OLD to NEW; each is a plan file or git:REF (the plan at that revision).

    Exit 0 when the plans are the same, 8 when they differ; with --check, 9 when NEW breaks the policy.
    """
    inputs = None
    if with_check:
        if env is None:
            raise InputError("--check needs --env: the environment (its region) the new plan is checked for",
                             hint="e.g. cutover infra diff old.json new.json --check --env production")
        inputs = _check_inputs(app, env, policy_file, suppressions_file)
    new_plan = _plan_from(app, new, env)
    diff = diff_plans(_plan_from(app, old, env), new_plan)
    report = check(inputs, new_plan, _provider_plan(app, env)) if inputs is not None and env else None
    if as_json:
        app.emit_json(diff.to_json() | ({"check": report.to_json()} if report is not None else {}))
    elif markdown:
        text = render_markdown(diff, old_label=old, new_label=new)
        click.echo(text + (_markdown_report(report) if report is not None else ""), nl=False)
    else:
        _show_diff(app, diff)
        if report is not None:
            app.console.print(f"\n[bold]policy check of {escape(new)}[/]")
            _show_report(app, report)
    if report is not None and not report.passed:
        return int(ExitCode.POLICY_VIOLATIONS)
    return int(ExitCode.CHANGES_PRESENT if diff.has_changes else ExitCode.OK)


DIFF_STYLE = {Op.CREATE: ("+", "green"), Op.UPDATE: ("~", "yellow"), Op.REPLACE: ("+-", "magenta"),
              Op.DELETE: ("-", "red")}


def _show_diff(app: App, diff: PlanDiff) -> None:
    """Changes grouped by SAMU tenant and national component, a count line per group, then the total."""
    for group in diff.groups():
        app.console.print(f"[bold]{escape(group.label)}[/] ({escape(group.name)}): {escape(group.count_line())}")
        for change in group.changes:
            _show_change(app, change)
    app.console.print(f"[bold]total[/]: {escape(diff.total_line())}")


def _show_change(app: App, change: Change) -> None:
    mark, colour = DIFF_STYLE[change.op]
    flags = (" [bold red]IMPOSSIBLE[/]" if change.impossible else "") + (
        " [bold red]DANGEROUS[/]" if change.dangerous else "")
    app.console.print(f"  [{colour}]{mark} {change.op.value:<8}[/] {escape(change.type)} "
                      f"[bold]{escape(change.name)}[/]{flags}")
    if change.reason:
        app.console.print(f"        [dim]{escape(change.reason)}[/]")
    for prop in change.properties:
        forced = " [magenta](forces replacement)[/]" if prop.forces_replacement else ""
        app.console.print(f"        {escape(prop.path)}: {escape(repr(prop.old))} => {escape(repr(prop.new))}{forced}")
    if change.inputs:
        app.console.print("        " + escape(", ".join(f"{key}={value}" for key, value in change.inputs)))


def _check_inputs(app: App, env: str, policy_file: Path | None, suppressions_file: Path | None) -> CheckInputs:
    """The stack, policy and suppressions files, validated before anything is evaluated."""
    app.require_project()
    return check_inputs(app.project_dir, env,
                        policy_file=app.project_path(policy_file) if policy_file else None,
                        suppressions_file=app.project_path(suppressions_file) if suppressions_file else None)


@infra.command("check")
@ENV_OPTION
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Check this saved plan (`infra plan --out FILE`) instead of evaluating the program.")
@POLICY_OPTION
@SUPPRESSIONS_OPTION
@click.option("--sarif", "sarif_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as SARIF 2.1.0 to this file ('-': stdout), for PR annotations.")
@JSON_OPTION
@pass_app
def check_cmd(app: App, env: str, plan_file: Path | None, policy_file: Path | None, suppressions_file: Path | None,
              sarif_file: Path | None, as_json: bool) -> int:
    """Check ENV's plan against the SecNumCloud 3.2 and HDS rules. Exit 9 when any is broken.

    The facts checked against (qualified regions and zones, endpoints, encrypted storage,
    operators' networks, public services, database access) come from the policy file,
    never from the inventory. An expired suppression breaks the check too.
    """
    if as_json and str(sarif_file) == "-":
        raise InputError("--json and --sarif - would both write to stdout", hint="write the SARIF to a file")
    inputs = _check_inputs(app, env, policy_file, suppressions_file)
    plan = load_plan(app.project_path(plan_file)) if plan_file is not None else _plan(app, env)
    report = check(inputs, plan, _provider_plan(app, env))
    if sarif_file is not None:
        _write_sarif(app, sarif_file, to_sarif(report, plan))
    if as_json:
        app.emit_json(report.to_json())
    elif str(sarif_file) != "-":
        _show_report(app, report)
    return int(ExitCode.OK if report.passed else ExitCode.POLICY_VIOLATIONS)


def _write_sarif(app: App, target: Path, document: dict[str, object]) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if str(target) == "-":
        click.echo(text, nl=False)
        return
    try:
        app.project_path(target).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the SARIF file {target}: {exc.strerror or exc}",
                         hint="pass a writable path, or '-' for stdout") from exc


def _show_report(app: App, report: CheckReport) -> None:
    where = f"{report.env} (region {report.region}, policy {report.policy.path} {report.policy.sha256[:12]})"
    for v in report.violations:
        app.console.print(f"[red]✗[/] [bold]{escape(v.resource)}[/] ({escape(v.type)}) breaks "
                          f"[bold]{escape(v.rule)}[/] [{escape(v.clause)}]\n    {escape(v.message)}\n"
                          f"    [dim]fix: {escape(v.fix)}[/]")
    for s in report.expired:
        app.console.print(f"[red]✗ expired suppression[/] {escape(s.file)}:{s.line}: {escape(s.rule)} for "
                          f"{escape(s.resource)} expired on {s.expires}\n    [dim]fix the resource, or renew the "
                          "suppression with a new reason and expiry[/]")
    for used in report.suppressed:
        s, v = used.suppression, used.violation
        app.console.print(f"[yellow]~ suppressed[/] {escape(v.resource)} {escape(v.rule)} [{escape(v.clause)}] "
                          f"until {s.expires} ({escape(s.file)}:{s.line}): {escape(s.reason)}")
    for s in report.unused:
        app.console.print(f"[dim]  unused suppression {escape(s.file)}:{s.line}: {escape(s.rule)} for "
                          f"{escape(s.resource)} matched nothing; remove it[/]")
    suppressed = f", {len(report.suppressed)} suppressed" if report.suppressed else ""
    if report.passed:
        app.console.print(f"[green]{escape(where)}: {report.resources} resources pass all {len(RULES)} rules"
                          f"{suppressed}[/]")
        if not report.suppressed:
            for rule in RULES:
                app.console.print(f"  [green]ok[/] {escape(rule.id)} ({escape(rule.clause)}): {escape(rule.title)}")
        return
    expired = f", {len(report.expired)} expired suppression(s)" if report.expired else ""
    app.console.print(f"[red]{len(report.violations)} violation(s){expired}[/]{suppressed} in {escape(where)}")


def _markdown_report(report: CheckReport) -> str:
    """The check of the new plan, for a review comment: the verdict, then the detail folded."""
    verdict = "passes every rule" if report.passed else \
        f"**{len(report.violations)} violation(s)**" + (f", {len(report.expired)} expired suppression(s)"
                                                          if report.expired else "")
    lines = ["", f"### Policy check of the new plan: {verdict}", "",
             f"{report.resources} resources, {len(RULES)} rules, policy `{report.policy.path}` "
             f"(`{report.policy.sha256[:12]}`), {len(report.suppressed)} suppressed.", ""]
    shown = report.violations[:MARKDOWN_MAX_ROWS]
    rows = [f"| ✗ | `{v.rule}` | `{v.resource}` | {_cell(v.message)} |" for v in shown]
    rows += [f"| ~ | `{s.violation.rule}` | `{s.violation.resource}` | suppressed until {s.suppression.expires}: "
             f"{_cell(s.suppression.reason)} |" for s in report.suppressed[:MARKDOWN_MAX_ROWS]]
    rows += [f"| ✗ | `{s.rule}` | `{s.resource}` | suppression expired on {s.expires} ({s.file}:{s.line}) |"
             for s in report.expired]
    if rows:
        lines += ["<details><summary>findings</summary>", "", "| | rule | resource | detail |", "|---|---|---|---|",
                  *[row.replace("\n", " ") for row in rows]]
        elided = max(0, len(report.violations) - MARKDOWN_MAX_ROWS) + max(0, len(report.suppressed) - MARKDOWN_MAX_ROWS)
        if elided:
            lines += ["", f"{elided} more not shown; run `cutover infra check` for all of them."]
        lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


MARKDOWN_MAX_ROWS = 50


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: a '|' would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------
# preview / up: the policy gate


ACCEPT_OPTION = click.option(
    "--accept-violations", "accept_reason", default=None, metavar="REASON",
    help="Go on despite policy violations; REASON is recorded (STATE_DIR/infra-acceptances.jsonl and the "
         "Pulumi update's message).")


def _policy_gate(app: App, env: str, command: str, accept_reason: str | None,
                 suppressions_file: Path | None) -> tuple[bool, str | None]:
    """Check ENV before Pulumi is called: (go on?, the update message recording acceptances and suppressions).

    Always the repository's policy file, pinned by digest in the stack: nobody loosens
    the gate with a flag. Every suppression applied is listed, and recorded in the message.
    """
    reason = require_reason(accept_reason) if accept_reason is not None else None
    inputs = _check_inputs(app, env, None, suppressions_file)
    require_pinned_policy(inputs)
    report = check(inputs, _plan(app, env), _provider_plan(app, env))
    suppressed = suppressions_message(report)
    if report.passed:
        _show_suppressions_applied(app, report)
        note = f", {len(report.suppressed)} violation(s) suppressed" if report.suppressed else ""
        app.console.print(f"[green]policy {report.policy.path} (sha256 {report.policy.sha256[:12]}, pinned): "
                          f"{report.resources} resources of {env} pass all {len(RULES)} rules{note}[/]"
                          + (" (nothing to accept; nothing recorded)" if reason is not None else ""))
        return True, suppressed
    _show_report(app, report)
    if reason is None:
        app.err.print(f"[bold red]error:[/] {command} of {env} refused: the plan breaks the policy")
        app.err.print("  [dim]hint: fix it; or add a dated, reasoned exception to infra/policy-suppressions.yaml; "
                      "or go on with --accept-violations REASON (recorded)[/]")
        return False, None
    acceptance = Acceptance(command=command, env=env, operator=app.operator, reason=reason)
    path = record_acceptance(app.ensure_state_dir(), acceptance, report)
    app.console.print(f"[yellow]violations accepted by {escape(app.operator)}: recorded in {escape(str(path))} "
                      "and as the Pulumi update's message[/]")
    message = update_message(acceptance, report)
    return True, f"{message}; {suppressed}" if suppressed else message


def _show_suppressions_applied(app: App, report: CheckReport) -> None:
    for used in report.suppressed:
        s, v = used.suppression, used.violation
        app.console.print(f"[yellow]~ suppression applied[/] {escape(v.rule)} for {escape(v.resource)} until "
                          f"{s.expires} ({escape(s.file)}:{s.line}"
                          + (f", approved by {escape(s.approved_by)}" if s.approved_by else "")
                          + f"): {escape(s.reason)}")


def suppressions_message(report: CheckReport) -> str | None:
    """The suppressions an update applied, for the stack's history (None when there were none)."""
    if not report.suppressed:
        return None
    applied = "; ".join(f"{u.violation.rule} for {u.violation.resource} until {u.suppression.expires}"
                        for u in report.suppressed)
    return f"cutover: {len(report.suppressed)} suppression(s) applied: {applied}"


@infra.command("preview")
@ENV_OPTION
@ACCEPT_OPTION
@SUPPRESSIONS_OPTION
@pass_app
def preview_cmd(app: App, env: str, accept_reason: str | None, suppressions_file: Path | None) -> int:
    """`pulumi preview --diff` of stack ENV through the Automation API (needs the Pulumi CLI).

    The policy check runs first, with infra/policy.yaml as pinned by digest in the stack (no --policy here);
    on a violation nothing is called (exit 9) unless --accept-violations.
    """
    from cutover.infra.automation import preview, validated_stack

    app.require_project()
    validated_stack(app.project_dir, env)
    go_on, message = _policy_gate(app, env, "preview", accept_reason, suppressions_file)
    if not go_on:
        return int(ExitCode.POLICY_VIOLATIONS)
    outcome = preview(app.project_dir, env, on_output=lambda line: app.console.print(escape(line), end=""),
                      message=message)
    app.console.print(f"preview of {env}: {outcome.summary}")
    return int(ExitCode.OK)


@infra.command("up")
@ENV_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@ACCEPT_OPTION
@SUPPRESSIONS_OPTION
@pass_app
def up_cmd(app: App, env: str, yes: bool, accept_reason: str | None, suppressions_file: Path | None) -> int:
    """`pulumi up` of stack ENV through the Automation API (needs the Pulumi CLI and credentials).

    The policy check runs first, with infra/policy.yaml as pinned by digest in the stack (no --policy here);
    on a violation nothing is applied (exit 9) unless --accept-violations. Every suppression applied is listed.
    """
    from cutover.infra.automation import require_pulumi, up, validated_stack

    app.require_project()
    validated_stack(app.project_dir, env)
    go_on, message = _policy_gate(app, env, "up", accept_reason, suppressions_file)
    if not go_on:
        return int(ExitCode.POLICY_VIOLATIONS)
    require_pulumi()
    if not yes and not click.confirm(f"apply the infrastructure of {env}?", default=False):
        raise click.exceptions.Abort()
    outcome = up(app.project_dir, env, on_output=lambda line: app.console.print(escape(line), end=""),
                 message=message)
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


@tenant.command("edit")
@ENV_OPTION
@click.option("--code", required=True, help="The SAMU's département code.")
@click.option("--name", default=None, help="New display name.  [default: unchanged]")
@click.option("--wave", type=int, default=None, help="New wave number.  [default: unchanged]")
@click.option("--vpn-peer", default=None, help="New VPN gateway address (with --site-cidr).")
@click.option("--site-cidr", default=None, help="New premises network (with --vpn-peer).")
@click.option("--no-vpn", is_flag=True, help="Remove the SAMU's VPN.")
@click.option("--dry-run", is_flag=True, help="Show the diff; change nothing.")
@pass_app
def tenant_edit_cmd(app: App, env: str, code: str, name: str | None, wave: int | None, vpn_peer: str | None,
                    site_cidr: str | None, no_vpn: bool, dry_run: bool) -> int:
    """Change a SAMU's name, wave or VPN (same checks as add); print the inventory diff to review.

    The SAMU keeps its network: another one would rebuild its whole tenant.
    """
    app.require_project()
    current = next((s for s in load_inventory(app.project_dir, env).samus.values() if s.code == code), None)
    if current is None:
        raise InputError(f"there is no SAMU {code} in inventory {env!r}", hint="`cutover tenant list` shows the SAMUs")
    if no_vpn and (vpn_peer or site_cidr):
        raise InputError("--no-vpn with --vpn-peer or --site-cidr", hint="give one or the other")
    keep_vpn = not no_vpn and vpn_peer is None and site_cidr is None
    request = NewTenant(
        code=code, name=name if name is not None else current.name,
        wave=wave if wave is not None else (current.wave or 1),
        vpn_peer=current.vpn_peer if keep_vpn else _address(vpn_peer, "--vpn-peer"),
        site_cidr=current.site_cidr if keep_vpn else _network(site_cidr, "--site-cidr"))
    change = edit_tenant(app.project_dir, env, request, dry_run=dry_run)
    _show_inventory_change(app, change.diff, dry_run, env)
    return int(ExitCode.OK)


@tenant.command("remove")
@ENV_OPTION
@click.option("--code", required=True, help="The SAMU's département code.")
@click.option("--dry-run", is_flag=True, help="Show the diff; change nothing.")
@pass_app
def tenant_remove_cmd(app: App, env: str, code: str, dry_run: bool) -> int:
    """Take a SAMU out of ENV's inventory; print the inventory diff to review.

    The next `infra plan` no longer has its tenant: `infra diff` shows every delete before `infra up`.
    """
    app.require_project()
    change = remove_tenant(app.project_dir, env, code, dry_run=dry_run)
    _show_inventory_change(app, change.diff, dry_run, env)
    return int(ExitCode.OK)


def _show_inventory_change(app: App, diff: str, dry_run: bool, env: str) -> None:
    click.echo(diff, nl=False)
    if dry_run:
        app.console.print("dry run: nothing written")
    else:
        app.console.print(f"inventory {env} changed; next: cutover infra plan --env {env} --out new.json, then "
                          "cutover infra diff old.json new.json --check --env " + env)


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
