"""One hostile-text corpus through every field a person or a command controls, and every output.

The corpus (``HOSTILE``) holds what a careless or malicious label, parameter,
step title, approver name, approval reason, command output or notification
error could carry: ``<script>``, ``<img onerror>``, an attribute break-out
(``"><b id=x>``), ``<style>`` that hides tables, ``<meta http-equiv=refresh>``
that sends the browser away, ``javascript:`` and Markdown links, Markdown
table and heading syntax, terminal escape sequences and other control
characters, the right-to-left override U+202E, and a very long string.

One run carries it (its runbook's name too), built once in a real SQLite
journal (no lab: a scripted command executor prints it), with a second like it,
and every output is rendered from that journal:

- the terminal (``cutover status``, ``runs``, ``compare``, ``plan``, ``timings``, ``forecast``,
  ``report --format markdown --out -``, ``status --json``, a gate's criteria table): no control
  character or direction override reaches it, and no value is read as rich's markup or emoji codes;
- the live board of ``cutover run`` and ``status --watch`` on a real pseudo-terminal (a run of its own,
  labelled and titled with the corpus, whose command prints it), and the progress lines a piped ``run``
  writes;
- the HTML report, opened as a file in headless Chromium, and served at ``/runs/ID/report``:
  nothing injected in the DOM, the outcome and approval tables visible, no request leaves the page;
- the board's pages (``/``, ``/runs/ID``) in Chromium: nothing injected, no request to another origin;
- the board's server-sent fragments (``?view=board``) and the JSON API;
- the Markdown report, rendered by a CommonMark parser: no link, image, HTML or extra table cell;
- the JSON report: the very same strings back, escaped;
- the notifications the run's records produce, and their delivery by mail through the real Apprise to a
  real SMTP server (``cutover.testing.notify_sinks``): every one delivered, as plain text.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cutover.app.notify import Notifier, Route
from cutover.app.report import Evidence, render, report_data
from cutover.app.runs import create_run, drive_run
from cutover.cli.app import terminal_console
from cutover.cli.main import run_cli
from cutover.cli.render import PlanEntry, criteria_table, plain_line, plan_view
from cutover.core import records
from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target
from cutover.core.engine import DriveOptions
from cutover.core.notices import NOTICE_KINDS, notices_for
from cutover.core.state import GateState, fold
from cutover.journal.sqlite import SqliteJournal
from cutover.model.runbook import parse_runbook
from cutover.testing import tiny_inventory
from cutover.testing.journal import InMemoryJournal
from cutover.testing.notify_sinks import smtp_sink
from cutover.web.app import create_app
from cutover.web.security import Access
from tests import browser
from tests.browser import needs_chromium
from tests.e2e.conftest import REPO, Project
from tests.e2e.test_terminal_prompts import Terminal
from tests.unit.test_web import Served, event_stream, serving

ELSEWHERE = "http://127.0.0.1:9"  # where an injected element would send the browser (nothing listens there)
HOSTILE = " ".join([
    "<script>window.pwned = 1</script>",
    f'<img src="{ELSEWHERE}/img" onerror="window.pwned = 2">',
    '"><b id=x>injected</b>',
    "<style>table, svg { display: none !important }</style>",
    f'<meta http-equiv="refresh" content="0;url={ELSEWHERE}/meta">',
    f"<form action='{ELSEWHERE}/form'><button>go</button></form>",
    "[click me](javascript:alert(1)) ![pic](javascript:alert(2)) <javascript:alert(3)>",
    "| extra | cells | ` code ` *bold* _em_",
    ":fire: [blink]rich[/blink]",
    "\n# heading\n",
    "\x1b[2J\x1b]0;title\x07 bell\x07 back\x08space carriage\rreturn del\x7f c1\x9b",
    "\u202eexe.txt\u2066 isolate\u2069",
    "z" * 3000,
])
# What must never reach a terminal, raw.
UNSEEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The corpus's markup, as it would appear if it were not escaped.
RAW_MARKUP = ("<script>window", "<img src=", "<b id=x>", "<style>table", "<meta http-equiv=\"refresh\"", "<form action")

RUNBOOK = """
name: NAME
params:
  note: {description: free text}
steps:
  - id: prepare
    title: "Prepare ((note))"
    kind: command
    run: prepare
    for_each: wave1
    sets_mode: backup
    rollback: {run: undo}
  - id: go
    kind: gate
    title: "Go ((note))"
    question: "((note))"
    approvers: [{name: "((note))", role: change_manager}]
  - id: break
    title: "((note))"
    kind: command
    run: break
    rollback: none
    rollback_reason: "((note))"
"""


RUNBOOK = RUNBOOK.replace("NAME", json.dumps(HOSTILE), 1)  # the runbook's name is text from outside too


class _Printer:
    """A command executor whose commands print the corpus; the `break` step fails with it."""

    batched = False

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        failing = request.step_id == "break"
        return {t: ActionResult(Outcome.FAILED if failing else Outcome.OK, output=HOSTILE,
                                detail=HOSTILE if failing else "", exit_status=1 if failing else 0)
                for t in request.targets}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SqliteJournal]]:
    """A state directory whose journal holds run `h1`: the corpus in every field, failed at `break`.

    Run `h2` is the same night again, so that `compare` and `timings` have two runs to line up.
    """
    state = tmp_path_factory.mktemp("hostile-state")
    journal = SqliteJournal(state / "journal.db", HOSTILE)  # the operator's name too
    loaded = parse_runbook(RUNBOOK, "hostile.yaml", params={"note": HOSTILE})
    executors = {"command": _Printer()}
    for run_id in ("h1", "h2"):
        create_run(journal, loaded, tiny_inventory(), run_id=run_id, label=HOSTILE)
        drive_run(journal, run_id, executors, DriveOptions(auto_approve=None))  # paused at the gate
        approval = records.GateApproved(step="go", approver=HOSTILE, role=HOSTILE, reason=HOSTILE)
        journal.append(run_id, approval.KIND, approval.to_payload())
        drive_run(journal, run_id, executors, DriveOptions(auto_approve=None))  # fails at `break`
    failure = records.NotificationFailed(notice=HOSTILE, target=HOSTILE, attempt=4, error=HOSTILE, final=True,
                                         samu=HOSTILE)
    journal.append("h1", failure.KIND, failure.to_payload())
    try:
        yield state, journal
    finally:
        journal.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project for the commands that read the runbook: it, the inventory `unit` (the lab's), and `live`."""
    root = tmp_path_factory.mktemp("hostile-project")
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "unit", ignore=shutil.ignore_patterns("lab-ssh"))
    (root / "runbooks").mkdir()
    (root / "runbooks" / "hostile.yaml").write_text(RUNBOOK, encoding="utf-8")
    (root / "runbooks" / "live.yaml").write_text(LIVE, encoding="utf-8")
    (root / "hostile.txt").write_text(HOSTILE, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def board(hostile_run: tuple[Path, SqliteJournal]) -> Iterator[Served]:
    with serving(create_app(hostile_run[1], Access(token=None, loopback_only=True), poll_s=0.05)) as served:
        yield served


def _report(journal: SqliteJournal, fmt: str) -> str:
    return render(report_data(journal, "h1", Evidence(True, 1, "0" * 64)), fmt)


def _no_raw_markup(text: str, where: str) -> None:
    found = [marker for marker in RAW_MARKUP if marker in text]
    assert not found, f"{where}: unescaped {found}"
    assert not UNSEEN.search(text), f"{where}: raw control character or direction override"


def test_the_run_really_carries_the_corpus_in_every_field(hostile_run: tuple[Path, SqliteJournal]):
    """Guards the other tests: each field of the journalled run holds the corpus (or its visible form)."""
    state = fold(hostile_run[1].events("h1"))
    assert "<script>" in (state.label or "") and "<script>" in state.params["note"]
    assert "<script>" in state.step("break").title and state.status.value == "failed"
    data = report_data(hostile_run[1], "h1", Evidence(True, 1, "0" * 64))
    assert "<script>" in data["approvals"][0]["approver"] and "<script>" in data["approvals"][0]["reason"]
    assert any("<script>" in (i.get("output") or "") for i in data["interventions"])
    assert "<script>" in data["notifications"]["undelivered"][0]["error"]


# ---------------------------------------------------------------------- terminal


NOTE = ("--param", f"note={HOSTILE}")  # what `plan`, `timings` and `forecast` read the runbook with
DRAWN = {"status", "runs", "compare", "plan", "timings", "forecast"}  # drawn by rich, not JSON nor Markdown


@pytest.mark.parametrize("args", [("status", "h1"), ("runs",), ("status", "h1", "--json"), ("runs", "--json"),
                                  ("report", "h1", "--format", "markdown", "--out", "-"), ("compare", "h1", "h2"),
                                  ("plan", "hostile", "--env", "unit"), ("timings", "hostile", "--env", "unit"),
                                  ("forecast", "hostile", "--env", "unit", "--samples", "100")])
def test_no_control_character_or_direction_override_reaches_the_terminal(
        hostile_run: tuple[Path, SqliteJournal], project: Path, args: tuple[str, ...],
        capfd: pytest.CaptureFixture[str]):
    given = NOTE if args[0] in ("plan", "timings", "forecast") else ()
    code = run_cli(["--project-dir", str(project), "--state-dir", str(hostile_run[0]), *args, *given])
    out, err = capfd.readouterr()
    assert code == 0, err
    _shown_as_typed(out + err, drawn=args[0] in DRAWN and "--json" not in args)


def _shown_as_typed(out: str, *, drawn: bool) -> None:
    """The terminal shows the corpus, as typed, never as raw control characters.

    ``drawn``: a table or board drawn by rich, where the corpus's emoji code and markup must come out as typed
    (JSON and Markdown escape brackets).
    """
    assert "exe.txt" in out  # the corpus is shown...
    if drawn:
        assert ":fire:" in out and "\U0001f525" not in out  # ...as typed: no emoji code drawn as an emoji,
        assert "[blink]rich[/blink]" in out and "me](javascript:" in out  # and no markup of rich applied
    assert not UNSEEN.search(out), repr(UNSEEN.search(out))  # ...never as raw control characters


def _drawn(renderable: Any) -> str:
    console = terminal_console(file=io.StringIO(), width=100)
    console.print(renderable)
    return console.file.getvalue()


def test_the_plan_shows_what_a_step_runs_as_typed():
    """A command, a verification or a rollback is the runbook's text: `plan` shows it as typed, not as markup."""
    entry = PlanEntry("tell", "tell", "command", "controller", HOSTILE, "-", "-", "-")  # the command alone
    _shown_as_typed(_drawn(plan_view("plan", [entry])), drawn=True)


@pytest.mark.parametrize("field", ["title", "value", "expected", "detail"])
def test_a_gate_s_criteria_table_shows_what_a_probe_said_as_typed(field: str):
    """The go/no-go's table on the board: a probe's value and detail, and the runbook's titles, are text."""
    texts = {"title": "t", "value": 1, "expected": "= 1", "detail": "", field: HOSTILE}
    measured = records.MeasuredCriterion("calls", texts["title"], "blocking", texts["value"], texts["expected"],
                                         False, texts["detail"])
    _shown_as_typed(_drawn(criteria_table("go", GateState(criteria={"calls": measured}))), drawn=True)


def test_progress_lines_for_pipes_and_logs_make_every_detail_visible(hostile_run: tuple[Path, SqliteJournal]):
    """`run` and `resume` on a pipe write these lines past the console: each is made visible where it is made."""
    lines = [line for event in hostile_run[1].events("h1") if (line := plain_line(event)) is not None]
    approved = next(line for line in lines if "approved by" in line)
    assert "exe.txt" in approved and "\n" not in approved  # the approver is told, on the approval's one line
    assert not [line for line in lines if UNSEEN.search(line)]


# Rich's own codes on a terminal (colours, the live view's cursor moves and line erasing), and the terminal's
# own line endings: what is left of a pseudo-terminal's output once they are taken out is the text drawn.
RICH_OWN = re.compile(r"\x1b\[(?:\?25[lh]|[0-9;]*[mAK])|\r")
LIVE = """
name: live
params:
  note: {description: free text}
steps:
  - id: tell
    title: "((note))"
    kind: command
    run: cat hostile.txt; exit 3
    rollback: none
    rollback_reason: "((note))"
"""


def _drawn_on_a_terminal(seen: bytes) -> str:
    text = seen.decode("utf-8")
    for raw in ("\x1b[2J", "\x1b]0;title", "\x07", "carriage\rreturn", "\x9b", "\u202e"):
        assert raw not in text, repr(raw)
    return RICH_OWN.sub("", text)


def test_the_live_board_of_a_drive_and_status_watch_show_the_corpus_as_text_on_a_terminal(project: Path,
                                                                                        tmp_path: Path):
    """`run`'s live board on a real pseudo-terminal, then `status --watch` refreshing it (stopped after a few)."""
    where = Project(project, tmp_path / "state")
    terminal = Terminal(where, "run", "live", "--env", "unit", *NOTE, "--label", HOSTILE, "--run-id", "live1")
    try:
        assert terminal.exit_code(timeout=30) == 4  # the command failed: the run stops, failed
    finally:
        terminal.close()
    _shown_as_typed(_drawn_on_a_terminal(terminal.seen), drawn=True)
    watcher = Terminal(where, "status", "live1", "--watch", "--every", "0.2")
    try:
        watcher.wait_for(b"exe.txt", timeout=30)  # the first board...
        watcher.read_for(0.6)  # ...and its refreshes: a failed run can be resumed, so the watch goes on
        assert watcher.process.poll() is None
    finally:
        watcher.close()
    _shown_as_typed(_drawn_on_a_terminal(watcher.seen), drawn=True)


# ---------------------------------------------------------------------- HTML in a real browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for every page of this module (starting it is most of the cost)."""
    with browser.chromium() as driver:
        yield driver


def _open_in_chromium(driver: Any, url: str, origin: str | None) -> dict[str, Any]:
    """Open ``url`` in a fresh tab; what the page holds and every request it made."""
    browser.network_events(driver)  # what earlier pages fetched is theirs
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(url)
    time.sleep(0.4)  # a meta refresh of 0 s or an image error would have fired by now
    found: dict[str, Any] = driver.execute_script("""return {
        url: location.href,
        pwned: window.pwned === undefined ? null : window.pwned,
        injected: document.querySelectorAll('#x, img, form, meta[http-equiv="refresh" i], body style, '
                                            + 'a[href^="javascript" i], [onerror]').length,
        scripts: [...document.scripts].map(s => s.src),
        styles: document.querySelectorAll('style').length,
        hiddenTables: [...document.querySelectorAll('table')].filter(t => t.offsetParent === null).length,
        text: document.body.innerText,
    }""")
    requests = browser.requested(browser.network_events(driver))
    driver.close()
    driver.switch_to.window(first)
    found["outside"] = [u for u in requests if not u.startswith("data:")
                        and not (u == url or (origin is not None and u.startswith(origin + "/")))]
    found["requests"] = requests
    return found


@needs_chromium
def test_the_html_report_file_shows_the_corpus_as_text_in_chromium(hostile_run: tuple[Path, SqliteJournal],
                                                                   tmp_path: Path, chromium: Any):
    html = _report(hostile_run[1], "html")
    _no_raw_markup(html, "report.html")
    path = tmp_path / "h1.html"
    path.write_text(html, encoding="utf-8")
    found = _open_in_chromium(chromium, path.as_uri(), None)
    assert found["url"] == path.as_uri() and found["pwned"] is None
    assert found["injected"] == 0 and found["scripts"] == [] and found["styles"] == 1
    assert found["hiddenTables"] == 0 and not found["outside"], found["outside"]
    assert path.as_uri() in found["requests"], found["requests"]  # the browser's requests were all seen
    assert "<b id=x>" in found["text"] and "\u202e" not in found["text"]  # shown as text, override made visible


@needs_chromium
@pytest.mark.parametrize("path", ["/runs/h1/report", "/runs/h1", "/"])
def test_the_served_report_and_board_pages_show_the_corpus_as_text_in_chromium(board: Served, path: str,
                                                                               chromium: Any):
    origin = f"http://127.0.0.1:{board.port}"
    found = _open_in_chromium(chromium, origin + path, origin)
    assert found["url"] == origin + path and found["pwned"] is None
    assert found["injected"] == 0 and found["hiddenTables"] == 0
    assert all(src.startswith(origin + "/static/") for src in found["scripts"]), found["scripts"]
    assert not found["outside"], found["outside"]
    assert origin + path in found["requests"], found["requests"]  # the browser's requests were all seen
    assert "exe.txt" in found["text"] and "\u202e" not in found["text"]


# ---------------------------------------------------------------------- the board without a browser


def test_the_board_pages_api_and_event_fragments_carry_the_corpus_escaped(board: Served):
    for path in ("/", "/runs/h1", "/runs/h1?lang=en", "/runs/h1/report"):
        _no_raw_markup(board.text(path), path)
    for path in ("/api/runs", "/api/runs/h1"):
        text = board.text(path)
        assert not UNSEEN.search(text), path
        assert "<script>" in json.dumps(json.loads(text))  # the API gives the text back, as data
    with event_stream(board, "/api/runs/h1/events?view=board") as events:
        kind, fragment = next(events)
    assert kind == "board" and "exe.txt" in fragment
    _no_raw_markup(fragment, "board fragment")
    with event_stream(board, "/api/runs/h1/events") as events:
        kind, status = next(events)
    assert kind == "status" and not UNSEEN.search(status)
    assert json.loads(status)["label"] == HOSTILE  # the same text, as data


# ---------------------------------------------------------------------- Markdown and JSON


def test_the_markdown_report_is_literal_text_under_a_commonmark_parser(hostile_run: tuple[Path, SqliteJournal]):
    from markdown_it import MarkdownIt

    text = _report(hostile_run[1], "markdown")
    assert not UNSEEN.search(text)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert not [m for m in RAW_MARKUP if m in html], html[:2000]
    assert "<a " not in html and "<img" not in html and "<em>" not in html
    assert html.count("<code>") == 1  # the head hash's own code span only
    headings = re.findall(r"<h[1-6]>", html)
    assert len(headings) == text.count("\n## ") + 1  # the report's own headings, and only them
    steps = re.search(r"<table>(.*?)</table>", html, re.S).group(1)
    for row in re.findall(r"<tr>(.*?)</tr>", steps, re.S):
        assert len(re.findall(r"<t[hd]", row)) == 4, row  # no cell added by a pipe in a title


def test_the_json_report_gives_the_very_strings_back_escaped(hostile_run: tuple[Path, SqliteJournal]):
    text = _report(hostile_run[1], "json")
    assert not UNSEEN.search(text)
    data = json.loads(text)
    assert data["label"] == HOSTILE and data["params"]["note"] == HOSTILE


# ---------------------------------------------------------------------- notifications


def test_notifications_carry_no_control_character_or_override(hostile_run: tuple[Path, SqliteJournal]):
    events = hostile_run[1].events("h1")
    state = fold(events)
    texts = [text for event in events
             for notice in notices_for(records.read(event), state, {"samu-13": ("13", HOSTILE)})
             for lang in ("fr", "en") for text in notice.text(lang)]
    assert any("exe.txt" in text for text in texts)  # the failure's detail is told...
    assert not [t for t in texts if UNSEEN.search(t)]  # ...never with a raw control character


def test_the_run_s_notices_are_delivered_by_mail_with_the_corpus_as_visible_text(
        hostile_run: tuple[Path, SqliteJournal]):
    """The notifier with the real Apprise, to a real SMTP server: every notice of the run is delivered, as text.

    A subject holding the corpus's 3000-character word is a header line SMTP refuses (RFC 5321: 1000 octets).
    """
    events = hostile_run[1].events("h1")
    told = InMemoryJournal()  # where the notifier journals its deliveries (the run's own journal stays as built)
    told.import_run("h1", events)
    with smtp_sink("cutover", "sink-password") as (port, mails):
        url = f"mailto://cutover:sink-password@127.0.0.1:{port}?from=cutover@lab.invalid&to=room@lab.invalid"
        notifier = Notifier([Route(url, "room", frozenset(NOTICE_KINDS), None, "fr")],
                            samu_names={"samu-13": ("13", HOSTILE)}, backoff=(), flush=10)
        notifier.start(told, fold(events))
        for event in events:
            notifier.observe(event)
        notifier.close()
    failed = [e.payload for e in told.events("h1")[len(events):] if e.kind == "notification_failed"]
    assert not failed, failed
    assert len(mails.items) == 5  # started, SAMU 13 in backup mode, gate waiting, resumed, failed
    assert all(len(mail["title"]) <= 200 for mail in mails.items)  # one short line, the runbook's name cut
    assert any("<script>window" in mail["title"] for mail in mails.items)
    assert any("exe.txt" in mail["parts"] for mail in mails.items)  # the failure's detail, whole in the body
    for mail in mails.items:
        assert mail["parts"].startswith("text/plain\n") and "text/html" not in mail["parts"]  # text, never HTML
        assert not UNSEEN.search(mail["title"] + mail["parts"]), mail["title"][:300]
