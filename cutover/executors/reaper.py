"""Commands die with their controller: one watcher process kills what a dead controller left running.

An action that outlives its controller could take effect after ``cutover
resume`` already decided it had not. Each command runs in its own process
group; the controller tells a small watcher, over a pipe, which groups are
running. The pipe's write end lives only in the controller, so the kernel
closes it however the controller ends (``kill -9`` included): the watcher then
reads end-of-file and kills every group still registered, each one whole
(background children included).

Why not ``setpriv --pdeathsig KILL`` before each command, as before: it is one
more program to load per command (about 1 ms of CPU and of wall time each,
measured), serialised with the engine's own work on a 2-core controller, and
it only ever killed the group leader, not what the leader had started.

The registration follows the spawn by a few microseconds of Python; a
controller killed inside that window leaves that one command running, the
same window ``setpriv`` had between its fork and its ``prctl``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

# Run with `python -I -S -c`: no site, no user paths; a few milliseconds, once per controller.
_WATCHER = """
import os, signal, sys
live = set()
for line in sys.stdin:
    mark, group = line[0], int(line[1:])
    if mark == "+":
        live.add(group)
    else:
        live.discard(group)
for group in live:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class GroupReaper:
    """Registers the process groups of running commands with a watcher that outlives the controller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watcher: subprocess.Popen[bytes] | None = None
        self._live: set[int] = set()

    def running(self, group: int) -> None:
        """``group`` started: kill it if the controller dies before it ends."""
        with self._lock:
            self._live.add(group)
            self._send(f"+{group}\n")

    def ended(self, group: int) -> None:
        """``group``'s leader has exited (and is not yet reaped, so its id cannot be reused yet)."""
        with self._lock:
            self._live.discard(group)
            self._send(f"-{group}\n")

    def close(self) -> None:
        """The controller is done with its commands: the watcher exits, killing any group still registered."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.stdin is not None:
            watcher.stdin.close()
            watcher.wait()

    def _send(self, line: str) -> None:
        """Under the lock. A watcher that died (killed by hand) is replaced, and told every live group."""
        if self._watcher is not None:
            try:
                _write(self._watcher, line)
                return
            except OSError:  # BrokenPipeError: the watcher is gone
                self._watcher.wait()
        self._watcher = _start_watcher()
        if self._live:
            _write(self._watcher, "".join(f"+{group}\n" for group in self._live))


def _write(watcher: subprocess.Popen[bytes], lines: str) -> None:
    assert watcher.stdin is not None
    os.write(watcher.stdin.fileno(), lines.encode())  # unbuffered: the watcher knows as soon as we return


def _start_watcher() -> subprocess.Popen[bytes]:
    # its own session: a Ctrl-C on the operator's terminal, or a signal to the controller's
    # group, does not reach it; close_fds (the default): no command holds its pipe open
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHER], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
