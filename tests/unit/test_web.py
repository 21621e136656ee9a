"""`cutover serve`: the crisis room's board, served by real uvicorn on a loopback port.

The application runs over an in-memory journal holding a scripted night (no
lab, no processes), so every refusal, header and language is checked in well
under a second each. tests/integration/test_serve.py runs the command itself
and the board over SQLite and PostgreSQL journals.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.routing import Mount, Route

from cutover.app.queries import load_run, status_json
from cutover.app.runs import create_run, drive_run
from cutover.core import records
from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target
from cutover.core.engine import DriveOptions
from cutover.errors import InputError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory
from cutover.web.app import BoardApp, create_app
from cutover.web.i18n import pick_language
from cutover.web.security import COOKIE, Access, read_token_file

TOKEN = "board-token-0123456789abcdef"
SECRET = "s3cr3t-hunter2"

NIGHT = """
name: night
steps:
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    sets_mode: backup
    expected_duration: 10m
    rollback: {run: nominal}
  - id: go-no-go
    title: Go/no-go committee
    kind: gate
    approvers:
      - {name: Claire Martin, role: change_manager}
      - {name: Dr Marc Petit, role: samu_medical_lead}
    quorum: 2
    required_roles: [change_manager]
  - id: migrate
    kind: command
    run: migrate
    expected_duration: 2h
    rollback_expected_duration: 30m
    rollback: {run: unmigrate}
  - id: pnr
    kind: gate
    point_of_no_return: true
    approvers: [{name: Claire Martin, role: change_manager}]
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    sets_mode: nominal
    expected_duration: 15m
    rollback: {run: backup}
"""


def approve(journal: InMemoryJournal, approver: str, role: str, reason: str = "") -> None:
    """An approval of the open go/no-go as the journal records it (how it was given is the CLI's business)."""
    approval = records.GateApproved(step="go-no-go", approver=approver, role=role, reason=reason)
    journal.append("r", approval.KIND, approval.to_payload())


def paused_at_go_no_go(journal: Any, run_id: str = "r") -> None:
    """A night whose SAMUs are in backup mode, waiting at its go/no-go gate."""
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id=run_id,
               window_end="2030-11-29T06:00:00+01:00")
    drive_run(journal, run_id, {"command": ScriptedExecutor()}, DriveOptions(auto_approve=None))


@dataclass
class Served:
    """The board on a real uvicorn server in this process, reached over real HTTP."""

    app: BoardApp
    port: int

    def request(self, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=dict(headers or {}))
            answer = conn.getresponse()
            body = answer.read() if method != "HEAD" else b""
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body
        finally:
            conn.close()

    def text(self, path: str, **headers: str) -> str:
        status, _, body = self.request(path, headers=headers)
        assert status == 200, (path, status, body[:300])
        return body.decode()


@contextmanager
def serving(app: BoardApp) -> Iterator[Served]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(app, listener.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def journal() -> InMemoryJournal:
    journal = InMemoryJournal()
    paused_at_go_no_go(journal)
    return journal


@pytest.fixture
def open_board(journal: InMemoryJournal) -> Iterator[Served]:
    """No token, loopback: anyone on this machine may read."""
    with serving(create_app(journal, Access(token=None, loopback_only=True), poll_s=0.05)) as served:
        yield served


@pytest.fixture
def token_board(journal: InMemoryJournal) -> Iterator[Served]:
    with serving(create_app(journal, Access(token=TOKEN, loopback_only=False), poll_s=0.05)) as served:
        yield served


def concrete_paths(app: BoardApp) -> list[str]:
    """Every route of the application, with a real run id in its path."""
    paths = []
    for route in app.routes:
        if isinstance(route, Route):
            paths.append(route.path.replace("{run_id}", "r"))
        elif isinstance(route, Mount):
            paths.append(route.path + "/board.css")
        else:
            raise AssertionError(f"a route of an unexpected type: {route!r}")
    return paths


BEARER = {"Authorization": f"Bearer {TOKEN}"}
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")


# ---------------------------------------------------------------------- nothing writes


@pytest.mark.parametrize("board", ["open_board", "token_board"])
def test_every_route_refuses_every_method_but_get_and_head(board: str, request: pytest.FixtureRequest):
    served: Served = request.getfixturevalue(board)
    paths = concrete_paths(served.app)
    assert {"/", "/runs/r", "/runs/r/report", "/api/runs", "/api/runs/r", "/api/runs/r/events", "/login"} <= set(paths)
    for path in [*paths, "/no-such-route"]:
        for method in WRITE_METHODS:
            status, headers, _ = served.request(path, method, headers=BEARER)
            assert status == 405, (method, path, status)
            assert headers["allow"] == "GET, HEAD"


def test_every_route_answers_get_and_head(open_board: Served):
    for path in concrete_paths(open_board.app):
        if path.endswith("/events") or path == "/login":
            continue  # a stream (read below); the sign-in page exists only with a token
        assert open_board.request(path)[0] == 200, path
        assert open_board.request(path, "HEAD")[0] == 200, path


def test_the_journal_is_not_written_by_reading_every_page(journal: InMemoryJournal, open_board: Served):
    before = [e.hash for e in journal.events("r")]
    for path in concrete_paths(open_board.app):
        if not path.endswith("/events"):
            open_board.request(path)
    assert [e.hash for e in journal.events("r")] == before
    assert journal.lease_holder("r") is None  # a reader holds no lease


# ---------------------------------------------------------------------- the token


def test_without_the_token_every_page_is_401_and_with_it_200(token_board: Served):
    for path in ("/", "/runs/r", "/runs/r/report", "/api/runs/r"):
        status, headers, body = token_board.request(path)
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer")
        assert TOKEN.encode() not in body
        assert token_board.request(path, headers={"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
        assert token_board.request(path, headers=BEARER)[0] == 200, path
    assert token_board.request("/api/runs/r/events")[0] == 401
    assert json.loads(token_board.request("/api/runs/r")[2])["error"] == "unauthorised"


def test_the_sign_in_page_exchanges_the_token_for_a_signed_http_only_strict_cookie(token_board: Served):
    status, _, page = token_board.request("/runs/r")
    assert status == 401 and b'id="login"' in page and b"/static/login.js" in page  # a browser sees the form
    assert token_board.request("/login", headers={"Authorization": "Bearer nope-nope-nope-nope"})[0] == 401
    status, headers, _ = token_board.request("/login", headers=BEARER)
    assert status == 204
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = re.match(rf"{COOKIE}=([^;]+)", cookie).group(1)
    assert token_board.request("/runs/r", headers={"Cookie": f"{COOKIE}={value}"})[0] == 200
    expires, _, signature = value.partition(".")
    forged = f"{int(expires) + 3600}.{signature}"  # a longer life needs a new signature
    assert token_board.request("/runs/r", headers={"Cookie": f"{COOKIE}={forged}"})[0] == 401
    assert token_board.request("/runs/r", headers={"Cookie": f"{COOKIE}=garbage"})[0] == 401


def test_a_crafted_cookie_is_a_401_with_the_security_headers_never_a_500(token_board: Served):
    for cookie in (f'{COOKIE}="\xb2.abc"', f"{COOKIE}=\u00b2\u00b2.abc", f'{COOKIE}="\\262.abc"', f"{COOKIE}=1.2.3",
                   f"{COOKIE}={'9' * 400}.x"):
        status, headers, _ = token_board.request("/runs/r", headers={"Cookie": cookie})
        assert status == 401, cookie
        assert headers["x-frame-options"] == "DENY" and "content-security-policy" in headers, cookie


@pytest.mark.parametrize("target", ["/%5C127.0.0.1:9/x", "/%09/127.0.0.1:9/x", "//127.0.0.1:9/x", "/\\127.0.0.1:9/x",
                                    "/%2F127.0.0.1:9/x", "/%255C127.0.0.1:9/x", "https://127.0.0.1:9/x",
                                    "javascript:alert(1)", "/%0a/127.0.0.1:9/x", " /x", ""])
def test_sign_in_returns_only_to_a_path_of_this_site(token_board: Served, target: str):
    from urllib.parse import quote

    status, _, page = token_board.request(f"/login?next={quote(target, safe='')}")
    assert status == 200
    assert re.search(rb'data-next="([^"]*)"', page).group(1) == b"/", target


def test_sign_in_keeps_a_path_of_this_site(token_board: Served):
    status, _, page = token_board.request("/login?next=%2Fruns%2Fr%3Flang%3Den")
    assert status == 200 and re.search(rb'data-next="([^"]*)"', page).group(1) == b"/runs/r?lang=en"
    status, _, page = token_board.request("/runs/r?lang=en")  # the page asked for, sent back to after sign-in
    assert status == 401 and b'data-next="/runs/r"' in page


def test_a_request_for_another_host_renders_no_link_off_site(open_board: Served):
    for path in ("//127.0.0.1:9/x", "//evil.example/x", "/\\evil.example/x"):
        status, _, page = open_board.request(path)
        assert status == 404, path
        links = [link for link in re.findall(rb'href="([^"]*)"', page) if link != b"data:,"]  # but the empty icon
        assert links and all(link.startswith(b"/") and not link.startswith((b"//", b"/\\")) for link in links), links


def test_a_journal_url_never_shows_its_password_even_in_the_query(capfd: pytest.CaptureFixture[str]):
    from cutover.cli.main import run_cli
    from cutover.journal.postgres import redacted_url

    url = "postgresql://ctl@127.0.0.1:1/j?sslmode=disable&password=hunter2hunter2&connect_timeout=1"
    assert "hunter2" not in redacted_url(url) and "sslmode=disable" in redacted_url(url)
    assert "hunter2" not in redacted_url("postgresql://ctl:hunter2hunter2@h/j?sslpassword=hunter2x")
    assert run_cli(["--journal", url, "runs"]) != 0
    out, err = capfd.readouterr()
    assert "cannot connect" in err and "hunter2" not in out + err, err


def test_a_cookie_expires_and_dies_with_a_new_token():
    access = Access(token=TOKEN, loopback_only=False)
    value = access.cookie_value(now=1000.0)
    assert access.cookie_ok(value, now=1001.0)
    assert not access.cookie_ok(value, now=1000.0 + 13 * 3600)
    assert not Access(token=TOKEN + "x", loopback_only=False).cookie_ok(value, now=1001.0)


def test_a_token_file_must_be_owner_only_and_strong(tmp_path: Path):
    path = tmp_path / "board.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert read_token_file(path) == TOKEN
    path.chmod(0o640)
    with pytest.raises(InputError, match="readable by others"):
        read_token_file(path)
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(InputError, match="too weak"):
        read_token_file(path)
    with pytest.raises(InputError, match="cannot read"):
        read_token_file(tmp_path / "missing")


# ---------------------------------------------------------------------- headers, errors, host


def test_every_answer_carries_the_security_headers(open_board: Served, token_board: Served):
    answers = [open_board.request("/"), open_board.request("/runs/r"), open_board.request("/static/board.js"),
               open_board.request("/runs/nope"), open_board.request("/", "POST"), token_board.request("/")]
    for status, headers, _ in answers:
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, status
        assert not re.search(r"https?:|\*", csp)  # no external source, no wildcard
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    board_csp = open_board.request("/runs/r")[1]["content-security-policy"]
    assert "script-src 'self'" in board_csp and "unsafe" not in board_csp


def test_an_unknown_run_is_a_404_page_not_a_traceback(open_board: Served):
    status, headers, body = open_board.request("/runs/no-such-run")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "no-such-run" in body.decode() and "Traceback" not in body.decode()
    status, _, body = open_board.request("/api/runs/no-such-run")
    assert status == 404 and "no-such-run" in json.loads(body)["error"]
    assert open_board.request("/runs/no-such-run/report")[0] == 404
    assert open_board.request("/api/runs/no-such-run/events")[0] == 404


def test_on_loopback_a_request_naming_another_host_is_refused(open_board: Served):
    """A page elsewhere that rebinds its name to 127.0.0.1 must not read the board (DNS rebinding)."""
    assert open_board.request("/", headers={"Host": "evil.example"})[0] == 421
    assert open_board.request("/", headers={"Host": f"localhost:{open_board.port}"})[0] == 200


# ---------------------------------------------------------------------- what the board shows


def test_the_status_api_is_what_status_json_prints(journal: InMemoryJournal, open_board: Served):
    served = json.loads(open_board.text("/api/runs/r"))
    expected = json.loads(json.dumps(status_json(load_run(journal, "r")), default=str))
    assert "forecast" in served
    assert {k: v for k, v in served.items() if k != "forecast"} == expected
    assert served["forecast"]["source"] == "expected durations"
    assert [run["run_id"] for run in json.loads(open_board.text("/api/runs"))] == ["r"]


def test_the_board_shows_samus_by_steps_backup_clocks_and_the_gate_waiting_with_its_approvers(
        journal: InMemoryJournal, open_board: Served):
    approve(journal, "Claire Martin", "change_manager", "pré-vol vert")
    page = open_board.text("/runs/r")
    for samu in ("samu-01", "samu-13", "samu-30"):
        row = re.search(rf'<tr data-target="{samu}">(.*?)</tr>', page, re.S).group(1)
        assert re.findall(r'data-step="(\w[\w-]*)" data-state="(\w+)"', row) == [
            ("backup", "succeeded"), ("nominal", "pending")]
        assert "data-running=\"1\"" in row  # still in backup mode: its clock runs
    gate = re.search(r'data-gate="go-no-go" data-gate-status="waiting">(.*?)</article>', page, re.S).group(1)
    assert re.search(r'class="approved" data-approver="Claire Martin">.*?pré-vol vert', gate, re.S)
    assert 'class="waiting" data-approver="Dr Marc Petit"' in gate
    assert "quorum 2" in gate and "change_manager" in gate
    assert "Échéance du point de non-retour" in page  # the window is known: the PNR deadline counts down


def test_the_board_shows_step_ids_beside_titles_and_the_command_that_moves_the_pause_on(open_board: Served):
    page = html.unescape(open_board.text("/runs/r?lang=en"))
    assert '<li data-step-id="go-no-go"><code>go-no-go</code> — Go/no-go committee</li>' in page
    assert re.search(r'<h3>Go/no-go committee <code>go-no-go</code>', page)
    next_line = re.search(r'<p class="next">(.*?)</p>', page, re.S).group(1)
    assert "`cutover approve r go-no-go --as ID` (ID: one of 'Claire Martin', 'Dr Marc Petit')" in next_line


def test_french_by_default_english_on_request(open_board: Served):
    french = open_board.text("/runs/r")
    assert '<html lang="fr">' in french and "En mode secours" in french and "en attente" in french
    for english in (open_board.text("/runs/r?lang=en"), open_board.text("/runs/r", **{"Accept-Language": "en-GB"})):
        assert '<html lang="en">' in english and "In backup mode" in english and "Point-of-no-return" in english
        assert "En mode secours" not in english
    assert '<html lang="fr">' in open_board.text("/", **{"Accept-Language": "en;q=0.5, fr-FR"})


def test_pick_language_prefers_the_query_then_the_browser_then_french():
    assert pick_language("en", "fr") == "en"
    assert pick_language(None, "de, en-US;q=0.8, fr;q=0.3") == "en"
    assert pick_language("xx", "de") == "fr"
    assert pick_language(None, "en;q=0") == "fr"


class _LeakyExecutor:
    """An executor whose failure message carries a credential (as a careless tool would print it)."""

    batched = False

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        detail = f"cannot reach postgresql://cutover:{SECRET}@db.samu.example/x password={SECRET}"
        return {t: ActionResult(Outcome.FAILED, detail=detail, exit_status=1) for t in request.targets}


def test_secrets_stay_redacted_on_the_board_and_in_the_api(journal: InMemoryJournal, open_board: Served):
    create_run(journal, parse_runbook(NIGHT, "night.yaml"), tiny_inventory(), run_id="leaky")
    drive_run(journal, "leaky", {"command": _LeakyExecutor()}, DriveOptions(auto_approve=None))
    journal.append("leaky", "notification_failed",
                   {"notice": "backup_mode", "samu": "13", "target": f"mailto://room:{SECRET}@mail.example",
                    "attempt": 3, "error": "connection refused", "final": True})
    for path in ("/runs/leaky", "/runs/leaky?lang=en", "/api/runs/leaky", "/", "/runs/leaky/report"):
        assert SECRET not in open_board.text(path), path
    report = open_board.text("/runs/leaky/report")  # redacted like the API, not only as it was journalled
    assert "postgresql://cutover:********@db.samu.example/x password=********" in report
    page = open_board.text("/runs/leaky")
    assert 'data-state="failed"' in page and "********" in page
    failure = re.search(r'<li class="final">(.*?)</li>', page, re.S).group(1)  # the undelivered message is shown
    assert "connection refused" in failure and "mailto://room:********@mail.example" in failure


@contextmanager
def event_stream(served: Served, path: str, timeout: float = 10) -> Iterator[Iterator[tuple[str, str]]]:
    """The server-sent events of ``path`` as they arrive, each as (event, data)."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    conn.request("GET", path)
    answer = conn.getresponse()
    assert answer.status == 200 and answer.getheader("content-type").startswith("text/event-stream")

    def events() -> Iterator[tuple[str, str]]:
        kind, data = "", []
        while True:
            line = answer.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and kind:
                yield kind, "\n".join(data)
                kind, data = "", []

    try:
        yield events()
    finally:
        conn.close()


def test_the_event_stream_pushes_the_run_as_it_changes(journal: InMemoryJournal, open_board: Served):
    with event_stream(open_board, "/api/runs/r/events") as events:
        kind, first = next(events)
        assert kind == "status" and json.loads(first)["gates"]["go-no-go"]["approvals"] == []
        approve(journal, "Dr Marc Petit", "samu_medical_lead")  # as `cutover approve` would, meanwhile
        kind, second = next(events)
    assert kind == "status"
    assert [a["approver"] for a in json.loads(second)["gates"]["go-no-go"]["approvals"]] == ["Dr Marc Petit"]


def test_the_board_stream_sends_html_and_ends_with_the_run(journal: InMemoryJournal, open_board: Served):
    drive_run(journal, "r", {"command": ScriptedExecutor()}, DriveOptions(auto_approve="lab-bot"))
    with event_stream(open_board, "/api/runs/r/events?view=board&lang=en") as events:
        (kind, fragment), (end, state) = next(events), next(events)
    assert kind == "board" and 'data-run-state="completed"' in fragment and "<script" not in fragment
    assert (end, state) == ("end", "completed")


def test_the_board_shows_a_gates_criteria_as_measured_expected_verdict_with_any_override(
        journal: InMemoryJournal, open_board: Served):
    measured = records.CriteriaMeasured("go-no-go", (
        records.MeasuredCriterion("weather", "Vigilance météo", "blocking", 4, "≤ 2", False, "30 red"),
        records.MeasuredCriterion("rehearsals", "Répétitions", "advisory", 1, "≥ 3", False),
        records.MeasuredCriterion("load", "Charge d'appels", "blocking", 12.5, "≤ 80", True)))
    journal.append("r", measured.KIND, measured.to_payload())
    override = records.CriterionOverridden("go-no-go", "weather", 4, "orage passé", "Claire Martin", "change_manager")
    journal.append("r", override.KIND, override.to_payload())
    page = open_board.text("/runs/r")
    table = re.search(r'<table class="criteria" data-criteria="go-no-go">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r'data-criterion="([\w-]+)" data-verdict="(\w+)">.*?<td[^>]*>([^<]*)</td>\s*<td>([^<]*)</td>',
                      table, re.S)
    assert rows == [("weather", "FAIL", "4", "≤ 2"), ("rehearsals", "warn", "1", "≥ 3"), ("load", "pass", "12.5", "≤ 80")]
    assert "NON CONFORME — levé par Claire Martin" in table and "orage passé" in table
    assert "Go/no-go criteria" in open_board.text("/runs/r?lang=en")
    assert json.loads(open_board.text("/api/runs/r"))["gates"]["go-no-go"]["criteria"][0]["override"]["value"] == 4
