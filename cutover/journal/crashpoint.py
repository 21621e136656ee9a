"""A TEST-ONLY fault hook: kill this process at a chosen journal boundary.

``CUTOVER_CRASH_AT=N[:before|after]`` makes the ``cutover`` process kill
itself with SIGKILL just before (nothing of it durable) or just after (durable,
nothing acted on yet) its N-th journal append, lease events included. The
tests use it to crash a run at every boundary and check that ``resume``
reaches the state it would have reached without the crash. Unset, it costs
one attribute check per append. Never set it on a real night.

``CUTOVER_CRASH_AT=N:held`` (PostgreSQL journal only) instead stops the
process with SIGSTOP inside its N-th append's transaction, the journal head
still locked: a frozen controller, for the tests of the journal's stall bound.
"""

from __future__ import annotations

import os
import signal
import threading

VARIABLE = "CUTOVER_CRASH_AT"


class CrashPoint:
    def __init__(self, spec: str | None) -> None:
        self.at, self.when = _parse(spec)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self.at > 0

    def before_append(self) -> int:
        """Count one more append; dies here when it is the N-th and ``before`` was asked. Returns its ordinal."""
        with self._lock:
            self._count += 1
            ordinal = self._count
        if ordinal == self.at and self.when == "before":
            _die()
        return ordinal

    def after_append(self, ordinal: int) -> None:
        if ordinal == self.at and self.when == "after":
            _die()

    def inside_append(self, ordinal: int) -> None:
        """Inside the append's transaction: freeze here (SIGSTOP) when it is the N-th and ``held`` was asked."""
        if ordinal == self.at and self.when == "held":
            # to this thread: a signal to the process may be taken by another thread, and this one
            # would commit before the group stops
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


def _parse(spec: str | None) -> tuple[int, str]:
    if not spec:
        return 0, "after"
    number, _, when = spec.partition(":")
    try:
        at = int(number)
    except ValueError:
        raise ValueError(f"{VARIABLE}={spec!r}: expected N[:before|after|held]") from None
    if when not in ("", "before", "after", "held") or at < 1:
        raise ValueError(f"{VARIABLE}={spec!r}: expected N[:before|after|held] with N >= 1")
    return at, when or "after"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def from_environment() -> CrashPoint:
    return CrashPoint(os.environ.get(VARIABLE))
