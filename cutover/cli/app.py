"""What every command shares: where the project and state are, who the operator is, one console."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cutover.core.text import visible
from cutover.errors import InputError

if TYPE_CHECKING:
    from rich.console import Console


def terminal_console(**options: Any) -> Console:
    """A console for people (rich is imported here, by the commands that draw, not by every process).

    No emoji codes: a label or reason holding ``:fire:`` is shown as typed, not drawn as a picture.
    """
    from cutover.cli.console import TerminalConsole

    return TerminalConsole(highlight=False, emoji=False, **options)


def default_operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid-{os.getuid()}"


@dataclass
class App:
    project_dir: Path
    state_dir: Path
    operator: str
    debug: bool = False
    lease_ttl: float = 30.0  # seconds; a driver heartbeats every third of it
    journal_url: str | None = None  # sqlite:///PATH or postgresql://...; None: sqlite in the state directory
    anchor_key: Path | None = None  # the controller's SSH key for signing each drive's end (cutover.app.anchors)
    console: Console = field(default_factory=lambda: terminal_console())
    err: Console = field(default_factory=lambda: terminal_console(stderr=True, soft_wrap=True))

    def ensure_state_dir(self) -> Path:
        """The state directory, created owner-only (it holds the journal and artifacts)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.state_dir, 0o700)
        return self.state_dir

    def emit_json(self, data: Any) -> None:
        """Machine-readable output: plain JSON on stdout, nothing else.

        A control character or direction override stays a ``\\uXXXX`` escape (the same JSON value), never raw.
        """
        click.echo(visible(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False)))

    def project_path(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (Path.cwd() / path)

    def require_project(self) -> None:
        if not (self.project_dir / "inventories").is_dir():
            raise InputError(
                f"{self.project_dir} is not a cutover project (no inventories/ folder)",
                hint="run from the project folder or pass --project-dir / set CUTOVER_PROJECT_DIR",
            )


pass_app = click.make_pass_decorator(App)
