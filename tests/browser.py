"""Debian's chromium, headless, driven by Selenium through Debian's chromedriver, for the tests that open a page.

Both are Debian's packages (`make system-deps` installs them), named by path: Selenium is never left to find
(and so never downloads) a browser or a driver. What a page fetched is read from chromedriver's performance log
(the DevTools ``Network.requestWillBeSent`` events), what it threw or logged as an error from its browser log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

needs_chromium = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                    reason="Debian's chromium and chromium-driver are not installed")


@contextmanager
def chromium(viewport: tuple[int, int] = (1280, 900), locale: str | None = None) -> Iterator[Any]:
    """A headless chromium (a Selenium WebDriver) showing ``viewport`` (width, height) CSS pixels; quit after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={viewport[0]},{viewport[1]}"):
        options.add_argument(argument)
    if locale is not None:  # what the page reads (navigator.language) and what it asks the server for
        options.add_argument(f"--lang={locale}")
        options.add_experimental_option("prefs", {"intl.accept_languages": locale})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        # the page's own size, whatever the window around it takes
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": viewport[0], "height": viewport[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def network_events(driver: Any) -> list[dict[str, Any]]:
    """The DevTools Network events logged since the last call (reading the performance log empties it)."""
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [event for event in events if event["method"].startswith("Network.")]


def requested(events: list[dict[str, Any]]) -> list[str]:
    """Every URL the browser asked for, in order: documents, scripts, styles, images, streams, redirects."""
    return [event["params"]["request"]["url"] for event in events if event["method"] == "Network.requestWillBeSent"]


def status_of(events: list[dict[str, Any]], url: str) -> int | None:
    """The HTTP status the browser received for ``url`` (its last response), or None if none came."""
    statuses = [event["params"]["response"]["status"] for event in events
                if event["method"] == "Network.responseReceived" and event["params"]["response"]["url"] == url]
    return statuses[-1] if statuses else None


def page_errors(driver: Any) -> list[str]:
    """What the page threw and what it logged as an error since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def text_of(driver: Any, selector: str) -> str:
    """The rendered text of the first element matching ``selector`` (its innerText, as a person reads it)."""
    return str(driver.execute_script("return document.querySelector(arguments[0]).innerText", selector))


def wait_for(driver: Any, selector: str, seconds: float = 10.0) -> None:
    """Until an element matching the CSS ``selector`` is in the page; a TimeoutException past ``seconds``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))


def save_full_page(driver: Any, path: Path) -> None:
    """A PNG of the whole page, past the bottom of the viewport (chromium's own capture)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def wait_until(driver: Any, condition: Callable[[Any], bool], seconds: float, poll_s: float = 0.25) -> None:
    """Until ``condition(driver)`` holds, asked every ``poll_s``; a TimeoutException past ``seconds``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds, poll_frequency=poll_s).until(condition)
