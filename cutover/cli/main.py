"""Entry point of the ``cutover`` command.

This is the one place where exceptions become stderr text and an exit status
(see ``cutover.errors`` for the codes). Commands return their exit code.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cutover import __version__
from cutover.cli.app import App, default_operator, terminal_console
from cutover.errors import CutoverError, ExitCode, ValidationError

if TYPE_CHECKING:
    from rich.console import Console


class LazyGroup(click.Group):
    """Commands whose modules are imported when they are used.

    Every `cutover` process pays for what it imports: `--help` need not load any
    command, `status` not the executors, a run not the infrastructure tooling or
    the web board. `--help` lists each command by its first docstring line, kept
    here (``SUMMARY``) so that listing imports nothing; a test holds each to the
    command's own.
    """

    # command name -> "module:attribute"
    LAZY = {**{name: f"cutover.cli.run_cmds:{name}" for name in
               ("validate", "plan", "run", "resume", "rollback", "approve", "journal", "programme")},
            "status": "cutover.cli.read_cmds:status", "runs": "cutover.cli.read_cmds:runs",
            "timings": "cutover.cli.history_cmds:timings", "compare": "cutover.cli.history_cmds:compare",
            "forecast": "cutover.cli.history_cmds:forecast", "report": "cutover.cli.history_cmds:report",
            "replay": "cutover.cli.history_cmds:replay",
            "lab": "cutover.cli.lab_cmds:lab", "serve": "cutover.cli.serve_cmds:serve",
            "infra": "cutover.cli.infra_cmds:infra", "tenant": "cutover.cli.infra_cmds:tenant"}
    SUMMARY = {
        "approve": "Approve the go/no-go gate STEP of RUN_ID as an approver, or override one of its failed "
                   "criteria.",
        "compare": "Line runs up side by side, step by step: durations, deltas, outcomes that differ.",
        "forecast": "P50/P90 of the night's end, each SAMU's time in backup mode and the PNR deadline, from "
                    "rehearsals.",
        "infra": "The trusted-cloud infrastructure: plan, diff and check offline; preview and up with the Pulumi CLI.",
        "journal": "The append-only, hash-chained journal.",
        "lab": "The local lab: one OpenSSH server per SAMU site, legacy and cloud platforms, live call traffic.",
        "plan": "Show every step x target of RUNBOOK in execution order, with its rollback and the SAMUs it can "
                "affect.",
        "programme": "Where every SAMU of ENV is served and in which mode, from the effects that stand across all "
                     "its runs.",
        "report": "The sign-off record (PV de recette) of RUN_ID: one self-contained HTML file, Markdown or JSON.",
        "resume": "Continue RUN_ID from its journal: after a pause, a failure, an approval or a crash.",
        "rollback": "Undo RUN_ID's completed steps after STEP, newest first, on every target.",
        "run": "Execute RUNBOOK on ENV: checkpointed steps, gates, a rollback point after each step.",
        "replay": "Replay RUN_ID's recorded night in simulated time (nothing runs), with the changes asked for.",
        "runs": "List the runs in the journal, oldest first (`runs export` / `runs import` move one between "
                "machines; `runs abandon` ends one that acted on nothing; `runs postpone` moves one to a later "
                "window).",
        "serve": "A read-only web board of the runs, live, for the crisis room and phones (GET only; nothing "
                 "changes).",
        "status": "Show a run's state (the latest run by default).",
        "tenant": "SAMU tenants in an environment's inventory.",
        "timings": "Step durations measured by RUNBOOK's runs on ENV (from the journal): spread, per target, "
                   "flags, trend.",
        "validate": "Check RUNBOOK against the inventory of ENV (schema, targets, blast radius); nothing is "
                    "executed.",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, attribute = self.LAZY[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._summary(ctx, name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _summary(self, ctx: click.Context, name: str, limit: int) -> str:
        """The command's first docstring line, cut to ``limit`` as click cuts it, without importing the command."""
        command = click.Command(name, help=self.SUMMARY[name]) if name in self.SUMMARY else self.get_command(ctx, name)
        return command.get_short_help_str(limit) if command is not None else ""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cutover")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CUTOVER_PROJECT_DIR",
              default=".", show_default=True,
              help="Folder holding inventories/, runbooks/, playbooks/ and infra/.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CUTOVER_STATE_DIR",
              default=None, help="Where the journal and artifacts live.  [default: PROJECT_DIR/.cutover]")
@click.option("--operator", envvar="CUTOVER_OPERATOR", default=None,
              help="Who is acting, recorded on every journal event.  [default: the OS user]")
@click.option("--lease-ttl", type=click.FloatRange(min=1), envvar="CUTOVER_LEASE_TTL", default=30.0, show_default=True,
              help="Seconds without a heartbeat after which a controller on another host is stale; "
                   "drivers beat every third of it.")
@click.option("--journal", "journal_url", envvar="CUTOVER_JOURNAL", default=None, metavar="URL",
              help="sqlite:///PATH or postgresql://user@host:port/db?sslmode=...  [default: sqlite:///STATE_DIR/journal.db]")
@click.option("--anchor-key", type=click.Path(dir_okay=False, path_type=Path), envvar="CUTOVER_ANCHOR_KEY",
              default=None, metavar="KEY",
              help="The controller's SSH key: each drive's end signs the run's journal head (namespace "
                   "cutover-anchor), checked by `journal verify --anchors`.  [default: none, runs are unanchored]")
@click.option("--debug", is_flag=True, envvar="CUTOVER_DEBUG", help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, state_dir: Path | None, operator: str | None, lease_ttl: float,
        journal_url: str | None, anchor_key: Path | None, debug: bool) -> None:
    """Orchestrate the SAMU big-bang cutover: runbooks, journal, lab and infrastructure.

    Exit codes: 0 completed, 1 other error, 2 invalid input (nothing executed),
    3 paused awaiting a decision, 4 failed and halted, 5 rolled back,
    6 run held by another controller, 7 journal integrity failure,
    8 infra diff found changes, 9 infra check found violations.
    """
    project = project_dir.expanduser().resolve()
    state = (state_dir.expanduser() if state_dir else project / ".cutover").resolve()
    ctx.obj = App(project_dir=project, state_dir=state, operator=operator or default_operator(), debug=debug,
                  lease_ttl=lease_ttl, journal_url=journal_url, anchor_key=anchor_key)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("CUTOVER_DEBUG", "").lower() in ("1", "true", "yes")
    sys.exit(run_cli(args, debug=debug))


def run_cli(args: list[str], *, debug: bool = False) -> int:
    try:
        result = cli.main(args=args, prog_name="cutover", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _stderr().print("aborted")
        return int(ExitCode.ERROR)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.INVALID_INPUT)
    except CutoverError as exc:
        err = _stderr()
        if debug:
            err.print(escape(_traceback()))
        _show_error(err, exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        err = _stderr()
        if debug:
            err.print(escape(_traceback()))
        err.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        err.print("  this is a bug in cutover; rerun with --debug for the traceback")
        return int(ExitCode.ERROR)
    return int(result or 0)


def _traceback() -> str:
    import traceback  # only with --debug: not paid by every command

    return traceback.format_exc()


def _stderr() -> Console:
    return terminal_console(stderr=True, soft_wrap=True)  # an error line must stay one line


def escape(text: str) -> str:
    """Text shown as it is, never read as rich markup (rich is imported only when an error is shown)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _show_error(err: Console, exc: CutoverError) -> None:
    if isinstance(exc, ValidationError):
        err.print(f"[bold red]error:[/] {escape(exc.message.splitlines()[0])}")
        for problem in exc.problems:
            err.print(f"  {escape(problem.location())}: {escape(problem.message)}")
            if problem.hint:
                err.print(f"    [dim]hint: {escape(problem.hint)}[/]")
        return
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"  [dim]hint: {escape(exc.hint)}[/]")


if __name__ == "__main__":
    main()
