"""Prompts on a real pseudo-terminal: a gate's, and the confirmation a rollback asks for.

At a gate, end of input, Ctrl-C, a terminal that hangs up or goes away, or
nobody answering pauses the night (exit 3) with the `cutover approve` command
to move it on, never fails it as an internal error. The live board steps aside
while the prompt is open, so what the approver types is seen. A rollback to a
step asks for the run id to be typed back; a wrong one changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import termios
import time

import pytest

from tests.e2e.conftest import Project, _default_sigint

pytestmark = pytest.mark.e2e

GATED = """name: gated
steps:
  - id: prepare
    kind: command
    run: echo prepared >> effects.log
    rollback: {run: echo undone >> effects.log}
  - id: go
    kind: gate
    approvers:
      - {name: Claire Martin, role: change_manager}
  - id: act
    kind: command
    run: echo acted >> effects.log
    rollback: {run: echo unacted >> effects.log}
  - id: again
    kind: gate
    approvers:
      - {name: Claire Martin, role: change_manager}
"""
PROMPT = b"approve as"


class Terminal:
    """`cutover` on a pseudo-terminal of 160 x 50, as an operator's ssh session gives it one."""

    def __init__(self, project: Project, *args: str) -> None:
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.process = subprocess.Popen([*project.base(), *args], stdin=terminal, stdout=terminal, stderr=terminal,
                                        close_fds=True, preexec_fn=_default_sigint,
                                        env={**os.environ, "TERM": "xterm-256color"})
        os.close(terminal)
        self.seen = b""

    def read_for(self, seconds: float) -> bytes:
        """Everything written to the terminal within ``seconds``."""
        got, deadline = b"", time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.controller], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # the process closed its side
                break
            if not chunk:
                break
            got += chunk
        self.seen += got
        return got

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen and time.monotonic() < deadline:
            self.read_for(0.2)
        assert text in self.seen, self.seen[-2000:].decode(errors="replace")

    def type(self, data: bytes) -> None:
        os.write(self.controller, data)

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self.read_for(0.2)  # keep draining, or a full terminal buffer blocks the process
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        try:
            os.close(self.controller)
        except OSError:
            pass


@pytest.fixture
def gated(project: Project) -> Project:
    project.write_runbook("gated", GATED)
    return project


def _payloads(project: Project, run_id: str) -> list[tuple[str, dict]]:
    """(kind, payload) of a run's events, read the way an auditor would: read-only SQL."""
    with sqlite3.connect(f"file:{project.state / 'journal.db'}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT kind, payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    return [(kind, json.loads(payload)) for kind, payload in rows]


def _paused_at_gate(project: Project, run_id: str) -> str:
    """The pause's detail, once the journal says the run paused at gate `go` (and never failed)."""
    events = _payloads(project, run_id)
    kinds = [kind for kind, _ in events]
    assert "run_failed" not in kinds, kinds
    assert kinds[-2:] == ["run_paused", "lease_released"], kinds  # released: another controller may resume it
    pause = events[-2][1]
    assert pause["reason"] == "gate" and pause["step"] == "go", pause
    return pause["detail"]


def test_end_of_input_at_the_gate_prompt_pauses_the_run_and_names_the_approve_command(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "eof1")
    try:
        terminal.wait_for(PROMPT)
        terminal.type(b"\x04")  # Ctrl-D at the start of a line: end of input
        assert terminal.exit_code() == 3
    finally:
        terminal.close()
    shown = terminal.seen.decode(errors="replace")
    assert "internal error" not in shown and "Abort" not in shown
    assert "cutover approve eof1 go --as 'Claire Martin'" in shown
    assert "end of input" in _paused_at_gate(gated, "eof1")


def test_ctrl_c_at_the_gate_prompt_pauses_the_run(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "int1")
    try:
        terminal.wait_for(PROMPT)
        terminal.process.send_signal(signal.SIGINT)
        assert terminal.exit_code() == 3
    finally:
        terminal.close()
    assert "Ctrl-C" in _paused_at_gate(gated, "int1")
    assert "cutover approve int1 go --as" in terminal.seen.decode(errors="replace")


def test_a_terminal_that_hangs_up_at_the_gate_prompt_pauses_the_run(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "hup1")
    try:
        terminal.wait_for(PROMPT)
        terminal.process.send_signal(signal.SIGHUP)
        assert terminal.exit_code() == 3
    finally:
        terminal.close()
    assert "SIGHUP" in _paused_at_gate(gated, "hup1")


def test_a_terminal_that_goes_away_at_the_gate_prompt_pauses_the_run(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "gone1")
    try:
        terminal.wait_for(PROMPT)
        os.close(terminal.controller)  # the ssh session died: reads on the terminal fail (EIO)
        assert terminal.process.wait(timeout=60) == 3
    finally:
        terminal.close()
    assert "is gone" in _paused_at_gate(gated, "gone1")


def test_a_gate_prompt_nobody_answers_pauses_the_run_after_the_gate_timeout(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "late1", "--gate-timeout", "1")
    try:
        terminal.wait_for(PROMPT)
        assert terminal.exit_code(timeout=30) == 3
    finally:
        terminal.close()
    assert "nobody answered" in _paused_at_gate(gated, "late1")


def test_the_live_board_does_not_redraw_over_an_open_prompt_and_comes_back_after_it(gated: Project):
    terminal = Terminal(gated, "run", "gated", "--env", "lab", "--run-id", "quiet1")
    try:
        terminal.wait_for(PROMPT)
        quiet = terminal.read_for(1.5)  # the board redraws 4 times a second while it is shown
        assert quiet == b"", quiet
        terminal.type(b"Claire Martin\r")
        terminal.wait_for(b"reason")
        terminal.type(b"all green\r")
        terminal.seen = b""
        terminal.wait_for(PROMPT)  # the second gate: the board was back meanwhile, and steps aside again
        assert b"quiet1" in terminal.seen
        terminal.type(b"\r")  # decide later
        assert terminal.exit_code() == 3
    finally:
        terminal.close()
    assert "cutover approve quiet1 again --as 'Claire Martin'" in terminal.seen.decode(errors="replace")


def test_rollback_to_a_step_asks_for_the_run_id_to_be_typed_back_on_a_terminal(gated: Project):
    gated.cutover("run", "gated", "--env", "lab", "--run-id", "rb1", "--auto-approve", "lab-bot", "--until", "act",
                  check=3)
    for typed, code in ((b"rb2", 2), (b"rb1", 5)):  # a wrong id changes nothing; the right one rolls back
        terminal = Terminal(gated, "rollback", "rb1", "--to", "prepare")
        try:
            terminal.wait_for(b"type the run id")
            terminal.type(typed + b"\r")
            assert terminal.exit_code() == code
        finally:
            terminal.close()
        undone = [line for line in (gated.root / "effects.log").read_text().split() if line == "unacted"]
        assert len(undone) == (code == 5)
    assert b"not confirmed" not in terminal.seen
