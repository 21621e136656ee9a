"""`cutover --help` lists the commands without importing them: each listed summary is the command's own."""

from __future__ import annotations

import subprocess
import sys

import click

from cutover.cli.main import LazyGroup, cli


def test_every_command_is_listed_with_its_own_summary():
    ctx = click.Context(cli)
    wrong = {}
    for name in LazyGroup.LAZY:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        own = command.get_short_help_str(1000)
        if click.Command(name, help=LazyGroup.SUMMARY.get(name, "")).get_short_help_str(1000) != own:
            wrong[name] = own
    assert not wrong, wrong


def test_help_imports_no_command_module():
    code = ("import sys; from cutover.cli.main import run_cli; run_cli(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('cutover.cli.') and m.endswith('_cmds')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
