"""The OS side of leases: who this process is, and whether a holder on this host is still alive."""

from __future__ import annotations

import os
import socket

from cutover.core.events import LeaseHolder, utc_now


def current_holder(operator: str) -> LeaseHolder:
    """This controller process, as the journal records it."""
    return LeaseHolder(socket.gethostname(), os.getpid(), operator, utc_now(), process_start_time(os.getpid()))


def holder_alive(holder: LeaseHolder) -> bool | None:
    """True/False when we can tell (same host), None when the holder is elsewhere."""
    if holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not holder.process_start or process_start_time(holder.pid) == holder.process_start


def process_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), or '' if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # the command name may contain spaces; fields after the last ')' are fixed
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
