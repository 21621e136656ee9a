"""The operator's terminal during a night: the live board, and a gate's prompt that nothing can crash.

The board redraws four times a second; it steps aside while a prompt is open,
or it hides what the approver types. Whatever stops a prompt being answered
(end of input, Ctrl-C, a terminal that hangs up or goes away, nobody there)
becomes ``GateUnanswered``: the engine pauses the run at the gate, and the
hint names the `cutover approve` command.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import click
from rich.console import RenderableType
from rich.live import Live

from cutover.app.history import LiveForecasts
from cutover.app.runs import EngineHandle
from cutover.cli.app import App
from cutover.cli.render import status_board
from cutover.core.engine import GateUnanswered
from cutover.core.events import Journal
from cutover.core.forecast import Outlook
from cutover.core.steps import GateStep

FORECAST_REFRESH_S = 5.0


@dataclass
class _LatestOutlook:
    """The live board's forecast, recomputed every FORECAST_REFRESH_S seconds (monotonic ``at``)."""

    at: float = 0.0
    outlook: Outlook | None = None


class LiveBoard:
    """The live board on a terminal (plain lines, set up in the options, otherwise).

    It steps aside while a gate's prompt is open: a board that redraws four
    times a second over a prompt hides what the approver types.
    """

    def __init__(self, app: App, journal: Journal, forecasts: LiveForecasts | None = None) -> None:
        """``forecasts``: the drive's one ``LiveForecasts``, shared with its notifier and gates (made if none)."""
        self.app, self.journal = app, journal
        self.forecasts = forecasts or LiveForecasts(journal)
        self.live: Live | None = None

    @contextmanager
    def shown(self) -> Iterator[EngineHandle]:
        """The handle the drive puts its engine in: the board draws that engine's state once it is there."""
        handle = EngineHandle()
        if not self.app.console.is_terminal:
            yield handle
            return
        forecasts = self.forecasts
        latest = _LatestOutlook()

        def board() -> RenderableType:
            engine = handle.engine
            if engine is None:
                return "starting..."
            if time.monotonic() - latest.at > FORECAST_REFRESH_S:  # the board redraws 4 times a second
                latest.at = time.monotonic()
                try:
                    latest.outlook = forecasts.of(engine.state, now=datetime.now(timezone.utc))
                except Exception:  # noqa: BLE001 - the board must never stop the night; the expected durations remain
                    latest.outlook = None
            return status_board(engine.state, outlook=latest.outlook)

        with Live(get_renderable=board, console=self.app.console, refresh_per_second=4, transient=False) as live:
            self.live = live
            try:
                yield handle
            finally:
                self.live = None

    @contextmanager
    def aside(self) -> Iterator[None]:
        """No redraw while the block runs (a prompt); the board comes back after it."""
        live = self.live
        if live is None or not live.is_started:
            yield
            return
        live.stop()
        try:
            yield
        finally:
            live.start()


@contextmanager
def answerable(step: GateStep, timeout: float) -> Iterator[None]:
    """Whatever stops the gate's prompt being answered pauses the run at the gate instead of failing it.

    End of input and Ctrl-C (click's Abort), a terminal that hung up (SIGHUP) or
    went away (EIO), and no answer within ``timeout`` seconds (SIGALRM) each
    become ``GateUnanswered``. Signals are caught only on the main thread, the
    only one Python delivers them to.
    """
    on_main = threading.current_thread() is threading.main_thread()

    def hung_up(signum: int, frame: Any) -> None:
        _detach_from_terminal()
        raise GateUnanswered(f"the terminal was closed (SIGHUP) at the prompt of gate {step.id}")

    def timed_out(signum: int, frame: Any) -> None:
        raise GateUnanswered(f"nobody answered the prompt of gate {step.id} within {timeout:.0f} s")

    previous: dict[int, Any] = {}
    if on_main:
        previous = {signal.SIGHUP: signal.signal(signal.SIGHUP, hung_up)}
        if timeout > 0:
            previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, timed_out)
            signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    except click.exceptions.Abort as exc:  # click raises it for end of input and for Ctrl-C
        if _terminal_hung_up():  # its other end closed: a read sees end of input, the next write fails
            _detach_from_terminal()
            raise GateUnanswered(f"the terminal of gate {step.id}'s prompt is gone (hung up)") from None
        how = "Ctrl-C" if isinstance(exc.__context__, KeyboardInterrupt) else "end of input"
        raise GateUnanswered(f"the prompt of gate {step.id} was closed ({how})") from None
    except OSError as exc:  # EIO: the terminal is gone
        _detach_from_terminal()
        raise GateUnanswered(f"the terminal of gate {step.id}'s prompt is gone ({exc.strerror or exc})") from None
    finally:
        if on_main:
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, 0)
            for number, handler in previous.items():
                signal.signal(number, handler)


def _terminal_hung_up() -> bool:
    """Whether standard input's terminal has lost its other end (the ssh session or the window closed)."""
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLIN)
    return any(events & select.POLLHUP for _, events in poller.poll(0))


def _detach_from_terminal() -> None:
    """The terminal is gone: what is still written (the board's last frame, the pause) goes to /dev/null.

    Otherwise the next write fails with EIO and the controller dies before it
    has released its lease and reported the pause.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


@contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM stops a drive as Ctrl-C does: the run pauses, journalled as interrupted, its lease released.

    A `kill`, a service manager stopping the controller or a CI timeout sends SIGTERM, whose default
    would end the process on the spot and leave the run "running" with nobody driving it until its
    lease expired. Python raises KeyboardInterrupt for SIGINT; the engine already pauses on that.
    """
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
