"""Confirming what destroys: the run's id typed on a terminal, or ``--yes``.

A tired operator's wrong run id or stray ``--to`` must not rewrite a night.
Commands that undo or end a run ask for the run id to be typed back (as
GitHub asks for a repository's name before deleting it); scripts say ``--yes``.
Without either, and without a terminal to ask on, they refuse: nothing changes.
"""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from cutover.cli.app import App
from cutover.errors import InputError

YES_OPTION = click.option("--yes", is_flag=True,
                          help="Do not ask for the run id to be typed back (scripts; the command is journalled).")


def confirm_by_run_id(app: App, run_id: str, what: str, *, yes: bool, command: str) -> None:
    """Return once ``what`` (e.g. "roll back the completed run X") is confirmed; InputError (exit 2) otherwise.

    ``command``: the command line to suggest with ``--yes`` when there is no terminal to ask on.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"this would {what}, and there is no terminal to confirm it on; nothing was changed",
                         hint=f"confirm with --yes: `{command} --yes`")
    app.console.print(f"[bold red]this will {escape(what)}[/]")
    try:
        typed = click.prompt(f"type the run id ({run_id}) to confirm", default="", show_default=False)
    except click.exceptions.Abort:  # end of input or Ctrl-C: not confirmed
        typed = ""
    if typed.strip() != run_id:
        raise InputError("not confirmed (the run id was not typed back); nothing was changed",
                         hint=f"type {run_id} exactly, or add --yes")
