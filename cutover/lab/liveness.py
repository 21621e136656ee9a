"""Whether a pid the lab started is still that process (pids are reused, zombies linger)."""

from __future__ import annotations

import os
from pathlib import Path


def is_live(pid: int | None, marker: bytes) -> bool:
    """True if ``pid`` runs, is not a zombie, and its command line holds ``marker`` (a reused pid is not ours)."""
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and has exited
    except ChildProcessError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return marker in cmdline and status != "Z"
