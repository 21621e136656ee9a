"""End-to-end helpers: a throwaway project folder and the real `cutover` command as a subprocess."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CUTOVER = str(Path(sys.executable).parent / "cutover")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Project:
    root: Path
    state: Path

    def base(self) -> list[str]:
        return [CUTOVER, "--project-dir", str(self.root), "--state-dir", str(self.state)]

    def cutover(self, *args: str, timeout: float = 120, check: int | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([CUTOVER, "--project-dir", str(self.root), "--state-dir", str(self.state), *args],
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check is not None:
            assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        # Ctrl-C must reach it even when the tests themselves run as a background job, which
        # starts with SIGINT ignored (and a child inherits an ignored signal across exec).
        return subprocess.Popen([CUTOVER, "--project-dir", str(self.root), "--state-dir", str(self.state), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                preexec_fn=_default_sigint)

    def write_runbook(self, name: str, text: str) -> Path:
        path = self.root / "runbooks" / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def journal_kinds(self, run_id: str) -> list[tuple[str, str | None, str | None]]:
        """(kind, step, target) of a run's events, read the way an auditor would: read-only SQL."""
        db = self.state / "journal.db"
        if not db.exists():
            return []
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("SELECT kind, json_extract(payload, '$.step'), json_extract(payload, '$.target') "
                                "FROM events WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        return [tuple(r) for r in rows]

    def lease_events(self, run_id: str) -> list[dict]:
        """The payloads (with their kind) of a run's lease events, oldest first."""
        db = self.state / "journal.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("SELECT kind, payload FROM events WHERE run_id = ? AND kind LIKE 'lease_%' "
                                "ORDER BY seq", (run_id,)).fetchall()
        return [{"kind": kind, **json.loads(payload)} for kind, payload in rows]

    def wait_for_event(self, run_id: str, kind: str, step: str | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if any(k == kind and (step is None or s == step) for k, s, _ in self.journal_kinds(run_id)):
                    return
            except sqlite3.OperationalError:
                pass  # the journal is being created
            time.sleep(0.02)
        raise AssertionError(f"no {kind} {step or ''} event within {timeout}s")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A copy of the project's inventories and runbooks, plus a non-lab environment."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "playbooks").mkdir()
    staging = root / "inventories" / "staging"
    shutil.copytree(root / "inventories" / "lab", staging)
    all_vars = staging / "group_vars" / "all.yml"
    # staging has no `lab up` to write the lab's anchor key: its runs are anchored with --anchor-key when a test asks
    all_vars.write_text(all_vars.read_text().replace("cutover_lab: true", "cutover_lab: false")
                        .replace("cutover_anchor_key: lab-ssh/anchor_ed25519\n", ""))
    return Project(root, tmp_path / "state")
