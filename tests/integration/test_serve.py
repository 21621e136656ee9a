"""`cutover serve` as a user starts it, and the board over real SQLite and PostgreSQL journals.

The command decides what the application cannot: the bind address (anything
but loopback needs a token), the token file (owner-only, strong), the URL it
prints, and a clean stop on Ctrl-C.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.journal.postgres import PostgresJournal, init_schema
from cutover.journal.sqlite import SqliteJournal
from cutover.testing.postgres import PostgresServer, start_postgres
from cutover.web.app import create_app
from cutover.web.security import Access
from tests.unit.test_web import BEARER, TOKEN, Served, paused_at_go_no_go, serving

pytestmark = pytest.mark.integration

CUTOVER = str(Path(sys.executable).parent / "cutover")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_board_reads_a_sqlite_or_postgresql_journal(kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    if kind == "sqlite":
        journal: SqliteJournal | PostgresJournal = SqliteJournal(tmp_path / "journal.db", "tester")
    else:
        url = request.getfixturevalue("postgres").url
        init_schema(url)
        journal = PostgresJournal(url, "tester")
    with journal:
        paused_at_go_no_go(journal)
        with serving(create_app(journal, Access(token=None, loopback_only=True))) as served:
            status = json.loads(served.text("/api/runs/r"))
            assert status["state"] == "paused" and status["pause"]["reason"] == "gate"
            assert 'data-gate-status="waiting"' in served.text("/runs/r")
            assert "Claire Martin" in served.text("/runs/r/report")
            assert 'data-run="r"' in served.text("/")


# ---------------------------------------------------------------------- the command


def _project(tmp_path: Path) -> list[str]:
    """A state directory whose journal holds run ``r``; the `cutover` command line that uses it."""
    state = tmp_path / "state"
    if not state.exists():
        state.mkdir(mode=0o700)
    with SqliteJournal(state / "journal.db", "tester") as journal:
        paused_at_go_no_go(journal)
    return [CUTOVER, "--project-dir", str(tmp_path), "--state-dir", str(state)]


def test_serve_refuses_a_non_loopback_bind_without_a_token(tmp_path: Path):
    command = _project(tmp_path)
    for bind in ("0.0.0.0:0", "192.0.2.10:8315", "board.samu.example:8315"):
        result = subprocess.run([*command, "serve", "--bind", bind], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2, (bind, result.stdout, result.stderr)
        assert "not loopback" in result.stderr and "--token-file" in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_refuses_a_token_file_others_can_read(tmp_path: Path):
    token = tmp_path / "board.token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    result = subprocess.run([*_project(tmp_path), "serve", "--bind", "0.0.0.0:0", "--token-file", str(token)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "chmod 600" in result.stderr, result.stderr


def test_serve_with_a_token_serves_token_holders_only_and_stops_on_ctrl_c(tmp_path: Path):
    token = tmp_path / "board.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    process = subprocess.Popen([*_project(tmp_path), "serve", "--bind", "127.0.0.1:0", "--token-file", str(token)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        served = Served(app=None, port=port)  # type: ignore[arg-type]
        assert served.request("/runs/r")[0] == 401
        assert served.request("/runs/r", headers=BEARER)[0] == 200
        assert json.loads(served.request("/api/runs/r", headers=BEARER)[2])["run_id"] == "r"
        assert served.request("/runs/r", "POST", headers=BEARER)[0] == 405
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=15)
    assert code == 0, process.stderr.read()
