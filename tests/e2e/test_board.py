"""The crisis room's board: signing in from a real browser, and staying live while other processes drive a run.

The board following a whole lab night live in a real browser is part of the
full night (tests/e2e/test_night.py, with tests/e2e/boardwatch.py): one lab
night serves both.
"""

from __future__ import annotations

import json
import re
import signal
import time
from urllib.request import urlopen

import pytest

from tests import browser
from tests.browser import needs_chromium
from tests.e2e.conftest import Project

pytestmark = pytest.mark.e2e

@needs_chromium
def test_a_browser_signs_in_with_the_token_and_keeps_only_a_cookie_that_is_not_the_token():
    """The sign-in page's script, in a real browser: a wrong token is refused, the right one opens the board."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from cutover.testing import InMemoryJournal
    from cutover.web.app import create_app
    from cutover.web.security import COOKIE, Access
    from tests.unit.test_web import TOKEN, paused_at_go_no_go, serving

    def sign_in(token: str) -> None:
        field = driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    journal = InMemoryJournal()
    paused_at_go_no_go(journal)
    with serving(create_app(journal, Access(token=TOKEN, loopback_only=False), poll_s=0.1)) as served:
        base = f"http://127.0.0.1:{served.port}"
        with browser.chromium(viewport=(390, 844), locale="en-GB") as driver:  # a phone
            driver.get(base + "/runs/r")
            events = browser.network_events(driver)
            assert browser.status_of(events, base + "/runs/r") == 401
            sign_in("not-the-token-at-all")
            WebDriverWait(driver, 10).until(
                expected_conditions.text_to_be_present_in_element((By.ID, "login-error"), "Token refused"))
            sign_in(TOKEN)
            browser.wait_for(driver, "#live[data-connected='yes']")
            assert driver.current_url == base + "/runs/r"
            cookies = {cookie["name"]: cookie for cookie in driver.get_cookies()}
            landed = []
            for target in ("/%5C127.0.0.1:9/x", "/%09/127.0.0.1:9/x"):  # a browser reads both as //127.0.0.1:9/x
                driver.delete_all_cookies()  # signed out, as a browser that never signed in
                driver.get(f"{base}/login?next={target}")
                sign_in(TOKEN)
                WebDriverWait(driver, 10).until(lambda driver: "/login" not in driver.current_url)
                landed.append(driver.current_url)
            urls = browser.requested(events + browser.network_events(driver))
    assert landed == [base + "/", base + "/"]  # signed in, and still on this board
    assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Strict"
    assert TOKEN not in cookies[COOKIE]["value"]
    assert base + "/runs/r" in urls and base + "/login" in urls  # the log saw the browser's requests...
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
