"""The crisis room's board: signing in from a real browser, and staying live while other processes drive a run.

The board following a whole lab night live in a real browser is part of the
full night (tests/e2e/test_night.py, with tests/e2e/boardwatch.py): one lab
night serves both.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from urllib.request import urlopen

import pytest

from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e

@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_a_browser_signs_in_with_the_token_and_keeps_only_a_cookie_that_is_not_the_token():
    """The sign-in page's script, in a real browser: a wrong token is refused, the right one opens the board."""
    from playwright.sync_api import sync_playwright

    from cutover.testing import InMemoryJournal
    from cutover.web.app import create_app
    from cutover.web.security import COOKIE, Access
    from tests.unit.test_web import TOKEN, paused_at_go_no_go, serving

    journal = InMemoryJournal()
    paused_at_go_no_go(journal)
    with serving(create_app(journal, Access(token=TOKEN, loopback_only=False), poll_s=0.1)) as served:
        base = f"http://127.0.0.1:{served.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                 args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")  # a phone
            page = context.new_page()
            urls: list[str] = []
            page.on("request", lambda request: urls.append(request.url))
            answer = page.goto(base + "/runs/r")
            assert answer is not None and answer.status == 401
            page.fill("#token", "not-the-token-at-all")
            page.click("button[type=submit]")
            page.wait_for_selector("#login-error:has-text('Token refused')")
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#live[data-connected='yes']", timeout=10_000)
            assert page.url == base + "/runs/r"
            cookies = {cookie["name"]: cookie for cookie in context.cookies()}
            landed = []
            for target in ("/%5C127.0.0.1:9/x", "/%09/127.0.0.1:9/x"):  # a browser reads both as //127.0.0.1:9/x
                elsewhere = browser.new_context().new_page()
                elsewhere.goto(f"{base}/login?next={target}")
                elsewhere.fill("#token", TOKEN)
                elsewhere.click("button[type=submit]")
                elsewhere.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
                landed.append(elsewhere.url)
            browser.close()
    assert landed == [base + "/", base + "/"]  # signed in, and still on this board
    assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Strict"
    assert TOKEN not in cookies[COOKIE]["value"]
    assert not [url for url in urls if TOKEN in url]  # the token never travelled in a URL


STEPPED = """name: stepped
steps:
  - id: go
    kind: gate
    approvers:
      - {name: Claire Martin, role: change_manager}
""" + "".join(f"""  - id: step-{n}
    kind: command
    run: "true"
    rollback: {{run: "true"}}
""" for n in range(1, 4))


def test_the_board_stays_live_after_its_report_is_opened_while_other_processes_drive_the_run(project: Project):
    """Defect: fetching the report opened journal.db a second time in the board's process; closing it dropped
    the board's read locks, the next `cutover` process to close deleted the WAL under it, and the board went
    stale, then 500 "database disk image is malformed"."""
    project.write_runbook("stepped", STEPPED)
    project.cutover("run", "stepped", "--env", "lab", "--run-id", "s1", check=3)  # waits at its go/no-go
    server = project.spawn("serve", "--bind", "127.0.0.1:0")
    try:
        line = server.stdout.readline() if server.stdout else ""
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found is not None, line
        base = found.group(0)
        assert _get(base + "api/runs/s1")["state"] == "paused"
        with urlopen(base + "runs/s1/report", timeout=30) as answer:
            assert answer.status == 200 and b"s1" in answer.read()
        # each command below is a process that opens the journal and closes it, the last one out
        for step in range(1, 4):
            project.cutover("resume", "s1", "--auto-approve", "lab-bot", "--until", f"step-{step}",
                            check=0 if step == 3 else 3)
            time.sleep(1.1)  # past the board's poll period, so it re-reads the journal each time
            status = _get(base + "api/runs/s1")
            assert len(status["rollback_points"]) == step + 1, (step, status["state"], status["rollback_points"])
        assert status["state"] == "completed"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)


def _get(url: str) -> dict:
    with urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())
