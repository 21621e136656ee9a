"""The crisis room's board, held open in a real browser while a real `cutover` process drives a lab night.

Debian's chromium (headless, through Selenium and Debian's chromedriver; nothing
downloads a browser or a driver)
opens the board served by the real `cutover serve` (uvicorn) on a run paused at
its go/no-go, then the given `cutover` command drives the night to its end.
``watch_night`` returns what the browser saw; ``assert_followed_live`` judges
it: the cells changed without the page reloading, and the page fetched
nothing from anywhere but the board's own server.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests import browser
from tests.e2e.conftest import REPO, Project

ARTIFACTS = REPO / ".cutover" / "test-artifacts"
CELLS = """return Object.fromEntries([...document.querySelectorAll('tr[data-target] td[data-step]')]
    .map(td => [td.closest('tr').dataset.target + ' ' + td.dataset.step, td.dataset.state]))"""
COMPLETED = "[data-run-state='completed']"


@dataclass
class Watched:
    base: str
    gate: str  # the go/no-go's text when the page opened
    before: dict[str, str]  # "target step" -> state, when the page opened
    after: dict[str, str]  # ... once the run showed completed
    same_document: bool
    navigations: int
    updates: int
    requests: list[str]
    errors: list[str]
    driver_exit: int
    driver_stderr: str
    night_s: float
    server_exit: int


def start_board(project: Project) -> tuple[subprocess.Popen[str], str]:
    """`cutover serve` on a port the system chooses; its first line says which."""
    server = project.spawn("serve", "--bind", "127.0.0.1:0")
    line = server.stdout.readline() if server.stdout else ""
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if found is None:
        server.kill()
        raise AssertionError(f"serve did not start: {line}{server.stderr.read() if server.stderr else ''}")
    return server, found.group(0)


def watch_night(project: Project, run_id: str, drive: list[str], screenshot: str) -> Watched:
    """Open the board of ``run_id`` (paused at its go/no-go), run ``cutover *drive``, watch until completed."""
    server, base = start_board(project)
    requests: list[str] = []
    errors: list[str] = []

    def completed(page: Any) -> bool:
        """Whether the board shows the run completed; meanwhile, what the page fetched and threw, kept."""
        requests.extend(browser.requested(browser.network_events(page)))  # read often: chromedriver's log is
        errors.extend(browser.page_errors(page))  # a buffer, and a night streams for minutes
        return bool(page.execute_script("return document.querySelector(arguments[0]) !== null", COMPLETED))

    try:
        with browser.chromium(viewport=(1280, 900), locale="fr-FR") as page:
            page.get(base + f"runs/{run_id}")
            browser.wait_for(page, "#live[data-connected='yes']")
            before = page.execute_script(CELLS)
            gate = browser.text_of(page, "[data-gate='go-no-go']")
            page.execute_script("window.sameDocument = true")  # gone if the page ever reloads

            started = time.monotonic()
            driver = project.spawn(*drive)
            browser.wait_until(page, completed, seconds=300)
            _, driver_stderr = driver.communicate(timeout=60)
            night_s = time.monotonic() - started

            after = page.execute_script(CELLS)
            same_document = page.execute_script("return window.sameDocument === true")
            navigations = page.execute_script("return performance.getEntriesByType('navigation').length")
            updates = int(page.execute_script("return document.body.dataset.updates"))
            completed(page)  # the last of what it fetched and threw
            browser.save_full_page(page, ARTIFACTS / screenshot)
    finally:
        server.send_signal(signal.SIGINT)
        server_exit = server.wait(timeout=15)
    return Watched(base, gate, before, after, same_document, navigations, updates, requests, errors,
                   driver.returncode, driver_stderr, night_s, server_exit)


def assert_followed_live(watched: Watched, targets: list[str]) -> None:
    # waiting at the go/no-go, in French, with the runbook's approvers
    gate = watched.gate
    assert "en attente d'approbation" in gate and "Claire Martin" in gate and "Dr Marc Petit" in gate, gate
    for target in targets:
        before = (watched.before[f"{target} backup-mode"], watched.before[f"{target} return-to-nominal"])
        after = (watched.after[f"{target} backup-mode"], watched.after[f"{target} return-to-nominal"])
        assert (before, after) == (("pending", "pending"), ("succeeded", "succeeded")), target
    assert set(watched.after.values()) <= {"succeeded", "skipped"}
    # ... without a reload: the same document throughout, updated by the stream
    assert watched.same_document and watched.navigations == 1
    assert watched.updates >= 2, f"the board was pushed {watched.updates} time(s) during a {watched.night_s:.0f}s night"
    # ... and nothing fetched from anywhere but the board itself
    origin = urlsplit(watched.base).netloc
    outside = [url for url in watched.requests if urlsplit(url).scheme != "data" and urlsplit(url).netloc != origin]
    assert watched.requests and not outside, outside
    assert not watched.errors, watched.errors
    assert watched.server_exit == 0

