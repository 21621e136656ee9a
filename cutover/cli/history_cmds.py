"""Commands over past runs: timings, compare, forecast."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cutover.app.history import compare_json, forecast_json, replay_json, select_runs, timings_json
from cutover.app.queries import load_run
from cutover.app.report import FORMATS, Evidence, render, report_data
from cutover.app.runs import check_run_id
from cutover.cli.app import App, pass_app
from cutover.cli.read_cmds import open_journal, verify_journal
from cutover.cli.run_cmds import ENV_HELP, PARAM_OPTION, WindowEnd, load_checked
from cutover.core.timings import left_out_note, spread_known, spread_unknown
from cutover.core.whatif import parse_changes
from cutover.errors import ExitCode, InputError


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _wait(value: float | None) -> str:
    """A gate's wait, labelled as such: waiting is never execution."""
    return "-" if value is None else f"wait {value:.1f}s"


def _left_out(app: App, left_out: list[dict[str, Any]]) -> None:
    """Say which runs a figure did not count, and why (or that none was left out)."""
    app.console.print(left_out_note(left_out), style=None if left_out else "dim")


@click.command()
@click.argument("runbook")
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the N most recent runs.")
@click.option("--runs", "run_ids", default=None, metavar="ID,ID", help="Exactly these runs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PARAM_OPTION
@pass_app
def timings(app: App, runbook: str, env: str, last: int | None, run_ids: str | None, as_json: bool,
            params: tuple[str, ...]) -> int:
    """Step durations measured by RUNBOOK's runs on ENV (from the journal): spread, per target, flags, trend."""
    checked = load_checked(app, runbook, env, params)
    loaded, inventory = checked.loaded, checked.inventory
    ids = [r.strip() for r in run_ids.split(",") if r.strip()] if run_ids else None
    with open_journal(app) as journal:
        data = timings_json(loaded.runbook.name, inventory.name,
                            select_runs(journal, loaded.runbook.name, inventory.name, last=last, run_ids=ids))
    if as_json:
        app.emit_json(data)
        return ExitCode.OK
    title = (f"{escape(data['runbook'])} on {escape(data['env'])}: {len(data['runs'])} run(s), time executing "
             f"(gate waits apart, pauses left out)")
    table = Table(title=title, header_style="bold")
    for column in ("step", "n", "min", "P50", "P90", "max", "rollback P90", "flags"):
        table.add_column(column)
    for row in data["steps"]:
        table.add_row(*_timings_cells(row))
    app.console.print(table if data["runs"] else f"no measured runs of {escape(data['runbook'])} on {escape(data['env'])} yet")
    if data["runs"] and not data["spread_known"]:
        app.console.print(f"P90 unknown: {spread_unknown('measured')} ({len(data['runs'])} measured)")
    _left_out(app, data["left_out"])
    return ExitCode.OK


def _timings_cells(row: dict[str, Any]) -> list[str]:
    """One step's row: a gate shows its waits, marked as waiting, where an action shows its execution."""
    if row["gate"]:
        wait = row["gate_wait"] or {"samples": 0, "min_s": None, "p50_s": None, "p90_s": None, "max_s": None}
        p90 = _wait(wait["p90_s"]) if spread_known(wait["samples"]) else "unknown"
        return [f"{row['id']} (gate)", str(wait["samples"]), _wait(wait["min_s"]), _wait(wait["p50_s"]), p90,
                _wait(wait["max_s"]), "-", ", ".join(row["flags"])]
    rollback = row["rollback"]["p90_s"] if row["rollback"] else None
    p90 = _seconds(row["p90_s"]) if spread_known(row["samples"]) or row["p90_s"] is None else "unknown"
    return [row["id"], str(row["samples"]), _seconds(row["min_s"]), _seconds(row["p50_s"]), p90,
            _seconds(row["max_s"]), _seconds(rollback), ", ".join(row["flags"])]


@click.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def compare(app: App, run_ids: tuple[str, ...], as_json: bool) -> int:
    """Line runs up side by side, step by step: durations, deltas, outcomes that differ."""
    with open_journal(app) as journal:
        data = compare_json(journal, list(run_ids))
    if as_json:
        app.emit_json(data)
        return ExitCode.OK
    table = Table(header_style="bold", title="time executing (gate waits apart, pauses left out)", show_footer=True)
    table.add_column("step", footer="total")
    for run, total in zip(data["runs"], data["total"]):
        table.add_column(escape(run["label"] or run["run_id"]), footer=_total_text(total))  # a label is text, not markup
    for row in data["steps"]:
        cells = [_cell_text(c, gate=row["gate"]) for c in row["runs"]]
        name = row["id"] + (" (gate)" if row["gate"] else "")
        table.add_row(name + (" [yellow](outcomes differ)[/]" if row["outcomes_differ"] else ""), *cells)
    app.console.print(table)
    _left_out(app, data["left_out"])
    return ExitCode.OK


def _cell_text(cell: dict[str, Any], *, gate: bool = False) -> str:
    if gate:
        return _wait(cell["gate_wait_s"])
    text = _seconds(cell["duration_s"])
    if cell.get("delta_s") is not None:
        text += f" ({cell['delta_s']:+.1f}s)"
    if cell["paused_s"]:
        text += f" [dim](+{cell['paused_s']:.1f}s paused, left out)[/]"
    marks = [f"{cell[k]} {k.replace('_', ' ')}" for k in ("failed", "retries", "in_doubt") if cell[k]]
    return text + (f" [red]{', '.join(marks)}[/]" if marks else "")


def _total_text(total: dict[str, Any]) -> str:
    text = _cell_text({**total, "paused_s": 0})
    apart = [f"{_wait(total['gate_wait_s'])}" if total["gate_wait_s"] else "",
             f"paused {total['paused_s']:.1f}s, left out" if total["paused_s"] else ""]
    return text + "".join(f"\n[dim]{a}[/]" for a in apart if a)


@click.command()
@click.argument("runbook")
@click.option("--env", "env", required=True, help=ENV_HELP)
@click.option("--from-env", default=None, help="Forecast from the runs measured on this environment (e.g. rehearsal).")
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the N most recent runs.")
@click.option("--start", type=WindowEnd(), default=None, help="When the night starts (ISO 8601 with offset) [default: now].")
@click.option("--window-end", type=WindowEnd(), default=None, help="End of the cutover window (ISO 8601 with offset).")
@click.option("--window", "window", type=click.IntRange(min=1), default=None, metavar="N",
              help="Forecast in the runbook's candidate window N [default: the first still open].")
@click.option("--samples", type=int, default=10_000, show_default=True, help="Monte Carlo samples.")
@click.option("--what-if", "what_if", multiple=True, metavar="CHANGE",
              help="STEP=xFACTOR, STEP@TARGET=xFACTOR or STEP@TARGET=fail (repeatable): the night with this change.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@PARAM_OPTION
@pass_app
def forecast(app: App, runbook: str, env: str, from_env: str | None, last: int | None, start: str | None,
             window_end: str | None, window: int | None, samples: int, what_if: tuple[str, ...], as_json: bool,
             params: tuple[str, ...]) -> int:
    """P50/P90 of the night's end, each SAMU's time in backup mode and the PNR deadline, from rehearsals.

    With --what-if: the same night with a step (or one SAMU) slower, or failing; whether the PNR deadline and
    the window still hold, and which step is now critical, beside the night as measured.
    """
    changes = parse_changes(what_if)
    checked = load_checked(app, runbook, env, params)
    with open_journal(app) as journal:
        data = forecast_json(journal, checked.loaded, checked.inventory, from_env=from_env, last=last,
                             start=datetime.fromisoformat(start) if start else None, spec=checked.spec,
                             window_end=datetime.fromisoformat(window_end) if window_end else None,
                             samples=samples, changes=changes, window=window)
    if as_json:
        app.emit_json(data)
        return ExitCode.OK
    if data["changes"]:
        _what_if_text(app, data)
    measured = f"{len(data['runs'])} run(s) on {data['measured_on']}" if data["runs"] else \
        f"no measured run on {data['measured_on']}"
    app.console.print(f"[bold]{escape(data['runbook'])}[/] on {escape(data['env'])}, from {measured} ({data['samples']} samples); "
                      f"source: {data['source']}")
    _left_out(app, data["left_out"])
    app.console.print(_end_band(data))
    if data["window"]:
        app.console.print(f"window {data['window']['number']}: {data['window']['start']} to {data['window']['end']}")
    if data["pnr_deadline"]:
        app.console.print(f"point-of-no-return deadline (P90 of rollbacks): {data['pnr_deadline']}")
    app.console.print(f"holds: PNR deadline {_held(data['holds']['pnr_deadline'])}, "
                      f"window {_held(data['holds']['window'])}; critical step: {data['critical_step'] or '-'}")
    if data["next_window"]:
        later = data["next_window"]
        app.console.print(f"the P90 end misses the window: the next is window {later['number']} ({later['start']} "
                          f"to {later['end']}): `cutover forecast {escape(runbook)} --env {escape(env)} --window "
                          f"{later['number']}`; a run already created moves with `cutover runs postpone RUN "
                          f"--window {later['number']} --reason TEXT`")
    table = Table(header_style="bold")
    for column in ("step", "source", "P50", "P90", "criticality"):
        table.add_column(column)
    for row in data["steps"]:
        table.add_row(row["id"], row["source"], _seconds(row["p50_s"]),
                      _seconds(row["p90_s"]) if row["spread_known"] else "unknown", f"{row['criticality']:.0%}")
    app.console.print(table)
    _backup_mode_table(app, data)
    if data["gate_waits_s"]:
        waits = ", ".join(f"{step} P50 {w['p50_s']:.1f}s P90 {w['p90_s']:.1f}s (n={w['samples']})"
                          for step, w in data["gate_waits_s"].items())
        app.console.print(f"gate waits measured (waiting, not counted above): {waits}")
    return ExitCode.OK


def _what_if_text(app: App, data: dict[str, Any]) -> None:
    """The answer first: the changed night against the night as measured."""
    base = data["baseline"]
    app.console.print(f"[bold]what if[/] {escape(', '.join(data['changes']))}: the night {escape(data['outcome'])}")
    table = Table(header_style="bold")
    for column in ("", "as measured", "what if"):
        table.add_column(column)
    table.add_row("end P50", base["end"]["p50"], data["end"]["p50"])
    table.add_row("end P90", base["end"]["p90"], data["end"]["p90"])
    reached = [(b or {}).get("p90", "-") for b in (base["pnr_reached"], data["pnr_reached"])]
    table.add_row("PNR reached (P90)", *reached)
    for what, key in (("PNR deadline holds", "pnr_deadline"), ("window holds", "window")):
        table.add_row(what, _held(base["holds"][key]), _held(data["holds"][key]))
    table.add_row("critical step", base["critical_step"] or "-", data["critical_step"] or "-")
    for samu in sorted(set(base["backup_mode_s"]) | set(data["backup_mode_s"])):
        before, after = base["backup_mode_s"].get(samu), data["backup_mode_s"].get(samu)
        table.add_row(f"{samu} in backup mode (P90)", _seconds(before["p90"] if before else None),
                      _seconds(after["p90"] if after else None))
    app.console.print(table)


def _held(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "[red]NO[/]")


def _end_band(data: dict[str, Any]) -> str:
    """P50 and P90 of the end, or P50 alone with the spread said unknown: never P50 = P90 from too few runs."""
    end, duration = data["end"], data["duration_s"]
    if data["spread_known"]:
        return (f"end P50 {end['p50']}  P90 {end['p90']}  "
                f"(duration P50 {duration['p50']:.0f}s, P90 {duration['p90']:.0f}s)")
    return f"end P50 {end['p50']}  (duration {duration['p50']:.0f}s); P90 unknown: {spread_unknown(data['source'])}"


def _backup_mode_table(app: App, data: dict[str, Any]) -> None:
    """Each SAMU's time in backup mode, as the night is forecast."""
    if not data["backup_mode_s"]:
        return
    table = Table(header_style="bold", title="time in backup mode")
    for column in ("SAMU", "P50", "P90"):
        table.add_column(column)
    for samu, band in data["backup_mode_s"].items():
        table.add_row(samu, _seconds(band["p50"]), _seconds(band["p90"]) if data["spread_known"] else "unknown")
    app.console.print(table)


@click.command()
@click.argument("run_id")
@click.option("--what-if", "what_if", multiple=True, metavar="CHANGE",
              help="STEP=xFACTOR, STEP@TARGET=xFACTOR or STEP@TARGET=fail (repeatable): replay with this change.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def replay(app: App, run_id: str, what_if: tuple[str, ...], as_json: bool) -> int:
    """Replay RUN_ID's recorded night in simulated time (nothing runs), with the changes asked for.

    Shows when the board would have shown the PNR deadline at risk, when the window would have been missed
    and what each gate would have shown, beside what happened.
    """
    changes = parse_changes(what_if)
    with open_journal(app) as journal:
        data = replay_json(journal, run_id, changes)
    if as_json:
        app.emit_json(data)
        return ExitCode.OK
    asked = f" with {', '.join(data['changes'])}" if data["changes"] else " as recorded"
    app.console.print(f"[bold]replay of {data['run_id']}[/]{asked} (simulated time; nothing runs)")
    then, now = data["recorded"], data["replayed"]
    table = Table(header_style="bold")
    for column in ("", "what happened", "replayed"):
        table.add_column(column, overflow="fold")
    for label, key in (("state", "status"), ("ended", "end"), ("window closes", "window_end"),
                       ("PNR deadline at risk from", "pnr_at_risk"), ("window at risk from", "window_at_risk"),
                       ("window missed at", "window_missed"), ("point of no return passed", "pnr_passed")):
        table.add_row(label, str(then[key] or "-"), str(now[key] or "-"))
    for step in dict.fromkeys([*then["steps_done"], *now["steps_done"]]):
        table.add_row(f"{step} done", then["steps_done"].get(step, "-"), now["steps_done"].get(step, "-"))
    for gate in dict.fromkeys([*then["gates"], *now["gates"]]):
        table.add_row(f"gate {gate}", _gate_text(then["gates"].get(gate)), _gate_text(now["gates"].get(gate)))
    for samu in dict.fromkeys([*then["backup_mode_s"], *now["backup_mode_s"]]):
        table.add_row(f"{samu} in backup mode", _seconds(then["backup_mode_s"].get(samu)),
                      _seconds(now["backup_mode_s"].get(samu)))
    app.console.print(table)
    if data["diverged"]:
        app.console.print(f"diverged from the recording: {escape(data['diverged'])}")
    elif not data["changes"]:
        app.console.print("order of events: " + ("as recorded" if data["same_order"] else "[red]DIFFERS[/]"))
    for note in data["notes"]:
        app.console.print(f"note: {escape(note)}", style="dim")
    return ExitCode.OK


def _gate_text(gate: dict[str, Any] | None) -> str:
    """What a gate showed when it opened: the predicted end and the PNR margin; then how it was decided."""
    if gate is None:
        return "-"
    margin = f", PNR margin {gate['pnr_margin_s']:.0f}s" if gate["pnr_margin_s"] is not None else ""
    decided = (f"passed {gate['passed_at']}" if gate["passed_at"] else
               f"no-go {gate['no_go_at']}" if gate["no_go_at"] else "undecided")
    return f"opened {gate['opened_at']} (predicted end {gate['predicted_end']}{margin}); {decided}"


@click.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file [default: STATE_DIR/reports/RUN_ID.<ext>]; '-' prints it.")
@pass_app
def report(app: App, run_id: str, fmt: str, out: Path | None) -> int:
    """The sign-off record (PV de recette) of RUN_ID: one self-contained HTML file, Markdown or JSON."""
    check_run_id(run_id)  # it becomes a file name under the state directory
    with open_journal(app) as journal:
        load_run(journal, run_id)
        text = report_text(app, journal, run_id, fmt)
    if out is not None and str(out) == "-":
        click.echo(text)
        return ExitCode.OK
    target = out or app.state_dir / "reports" / f"{run_id}.{ {'html': 'html', 'markdown': 'md', 'json': 'json'}[fmt] }"
    if out is None and target.resolve().parent != (app.state_dir / "reports").resolve():  # a link, say
        raise InputError(f"the report of {run_id} would be written outside {app.state_dir / 'reports'}",
                         hint="give the file with --out")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)
    app.console.print(f"report of {run_id} ({fmt}): {escape(str(target))}")
    return ExitCode.OK


def report_text(app: App, journal: Any, run_id: str, fmt: str) -> str:
    """The report as `cutover report` and the web board give it: the journal verified read-only, the lab's calls."""
    verified = verify_journal(app)
    evidence = Evidence(verified.ok, verified.events_checked, verified.head_hash, verified.reason)
    return render(report_data(journal, run_id, evidence, _lab_calls(app, journal, run_id)), fmt)


def _lab_calls(app: App, journal: Any, run_id: str) -> dict[str, Any] | None:
    """The lab's call account when the run was made on this state directory's lab."""
    from cutover.lab.layout import LabLayout, read_state
    from cutover.lab.ledger import account_calls

    lab = read_state(LabLayout.under(app.state_dir))
    if lab is None or load_run(journal, run_id).env != lab.env:
        return None
    try:
        return account_calls(Path(lab.lab_dir)).to_json()
    except Exception:  # noqa: BLE001 - a report without the lab's account is still a report
        return None


COMMANDS = (timings, compare, forecast, replay, report)
