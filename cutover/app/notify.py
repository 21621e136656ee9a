"""Notifications through Apprise: who is told what, delivered in the background, every attempt journalled.

The routes come from the inventory: ``cutover_notify`` (the room: any event, any
SAMUs, a language) and each SAMU's ``samu_oncall`` (told when that SAMU enters
backup mode and returns to nominal). ``--notify test`` sends everything to
``cutover_notify_test`` instead, so a rehearsal exercises the messages without
waking a SAMU; ``--notify off`` sends nothing.

Delivery never blocks or fails the run: the engine's event callback only queues
the notices; one worker thread per target delivers them in order, retrying with
backoff. Each attempt and its result is journalled with the target's URL
reduced to scheme and host (Apprise URLs carry credentials) and any credential
redacted from the error text. When the drive ends, the workers get a short
time to finish; what is still undelivered is journalled as such.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from cutover.core import records as r
from cutover.core.events import Event, Journal, parse_time
from cutover.core.notices import NOTICE_KINDS, Notice, notices_for, window_at_risk
from cutover.core.state import RunState
from cutover.errors import InputError
from cutover.model.inventory import Inventory, vault_reader
from cutover.model.redact import Redactor
from cutover.model.yamlsource import VaultText

MODES = ("on", "test", "off")
BACKOFF_S = (1.0, 2.0, 4.0)  # waits before the 2nd, 3rd and 4th attempts
ATTEMPT_TIMEOUT_S = 10.0
FLUSH_S = 3.0  # how long the end of a drive waits for deliveries under way
SAMU_KINDS = frozenset({"samu_backup", "samu_nominal"})

Deliver = Callable[["Route", str, str], "str | None"]  # -> None when delivered, else the error


@dataclass(frozen=True)
class Route:
    """One Apprise target and what it is sent."""

    url: str = field(repr=False)  # a secret: never shown, logged or journalled
    shown: str  # what the journal and the boards show
    kinds: frozenset[str]
    samus: frozenset[str] | None  # None: every SAMU
    lang: str = "fr"

    def wants(self, notice: Notice) -> bool:
        if notice.kind not in self.kinds:
            return False
        return notice.samu is None or self.samus is None or notice.samu in self.samus


def shown_url(url: str) -> str:
    """Scheme and host, and a digest of the whole URL: enough to tell targets apart, no credential."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host, port = "", ""
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme}://{host}{port} #{digest}"


def url_secrets(url: str) -> list[str]:
    """The parts of an Apprise URL that may be credentials: userinfo, path tokens, query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url, parts.username or "", parts.password or ""]
    found += [unquote(p) for p in parts.path.split("/") if len(p) >= 8]
    found += [unquote(v) for kv in parts.query.split("&") for v in kv.split("=")[1:] if len(v) >= 8]
    return [s for s in found if s]


# ---------------------------------------------------------------------- routes from the inventory


def routes_for(inventory: Inventory, mode: str) -> list[Route]:
    """The targets of this drive; an InputError naming the inventory field for an unusable one."""
    if mode not in MODES:
        raise InputError(f"--notify {mode!r}: expected one of {', '.join(MODES)}")
    settings = inventory.settings
    if mode == "off":
        return []
    reveal = _revealer(inventory)
    if mode == "test":
        if settings.cutover_notify_test is None:
            raise InputError(f"--notify test: inventory {inventory.name!r} sets no cutover_notify_test",
                             hint="set cutover_notify_test in group_vars/all.yml to an Apprise URL of a test target")
        url = reveal(settings.cutover_notify_test, "cutover_notify_test")
        return [Route(url, shown_url(url), frozenset(NOTICE_KINDS), None, "fr")]
    routes = []
    for index, target in enumerate(settings.cutover_notify):
        url = reveal(target.url, f"cutover_notify[{index}].url")
        samus = None if target.samus == "all" else frozenset(target.samus)
        routes.append(Route(url, shown_url(url), frozenset(target.events), samus, target.lang))
    for samu in inventory.samus.values():
        for index, contact in enumerate(samu.oncall):
            url = reveal(contact.url, f"{samu.host}: samu_oncall[{index}].url")
            routes.append(Route(url, shown_url(url), SAMU_KINDS, frozenset({samu.code}), contact.lang))
    return routes


def _revealer(inventory: Inventory) -> Callable[[str, str], str]:
    decrypt = vault_reader(inventory.vault_password_file)  # the inventory's own vault decryption

    def reveal(value: str, where: str) -> str:
        url = decrypt(value) if isinstance(value, VaultText) else value
        if url is None:
            raise InputError(f"inventory {inventory.name!r}, {where}: the vault value cannot be decrypted",
                             hint="check cutover_vault_password_file")
        if _apprise_plugin(url) is None:
            raise InputError(f"inventory {inventory.name!r}, {where}: not a URL Apprise can send to "
                             f"({shown_url(url)})",
                             hint="see Apprise's list of services, e.g. mailto://, json://, slack://, msteams://")
        return url

    return reveal


def _apprise_plugin(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def apprise_deliver(route: Route, title: str, body: str) -> str | None:
    """Send with Apprise; None when delivered, else what Apprise said went wrong (credentials redacted)."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(route.url):
        return "Apprise refused the URL"
    said: list[str] = []
    # plain text: a target that renders HTML or Markdown escapes it, so no detail becomes markup there
    ok = sender.notify(body=body, title=title, timeout=ATTEMPT_TIMEOUT_S, body_format=apprise.NotifyFormat.TEXT,
                       log_callback=lambda entry, _plugin: said.append(f"{entry.level}: {entry.message}"),
                       log_level=logging.WARNING)
    return None if ok else "; ".join(said[-3:]) or "not delivered"  # redacted by the notifier


# ---------------------------------------------------------------------- the notifier


_STOP = object()


class Notifier:
    """Turns a drive's events into notices and delivers them in the background."""

    def __init__(self, routes: Sequence[Route], *, deliver: Deliver = apprise_deliver,
                 backoff: Sequence[float] = BACKOFF_S, flush: float = FLUSH_S,
                 forecast: Callable[[], datetime | None] | None = None,
                 samu_names: dict[str, tuple[str, str]] | None = None) -> None:
        self.routes = list(routes)
        self.deliver = deliver
        self.backoff = tuple(backoff)
        self.flush = flush
        self.forecast = forecast  # the live forecast's P90 end now, for "window at risk"
        self._queues: dict[Route, queue.Queue[Any]] = {}
        self._current: dict[Route, Notice | None] = {}
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()  # journal appends vs. the end of the drive
        self._silenced = False
        self._window_said = False
        self.auto_approved = False
        self.journal: Journal | None = None
        self.state: RunState | None = None
        self.samu_names = samu_names or {}  # target host -> (SAMU code, name)

    @classmethod
    def for_inventory(cls, inventory: Inventory, mode: str, **options: Any) -> Notifier:
        return cls(routes_for(inventory, mode), samu_names={s.host: (s.code, s.name) for s in inventory.samus.values()},
                   **options)

    def __bool__(self) -> bool:
        return bool(self.routes)

    def start(self, journal: Journal, state: RunState, *, auto_approved: bool = False) -> None:
        self.journal, self.state, self.auto_approved = journal, state, auto_approved
        for route in self.routes:
            self._queues[route] = queue.Queue()
            self._current[route] = None
            thread = threading.Thread(target=self._deliver_loop, args=(route,), daemon=True,
                                      name=f"notify {route.shown}")
            thread.start()
            self._threads.append(thread)

    def observe(self, event: Event) -> None:
        """The engine's event callback: queue the notices this event makes; never raises, never blocks."""
        if self.state is None or not self.routes:
            return
        try:
            record = r.read(event)
            self._queue(notices_for(record, self.state, self.samu_names, auto_approved=self.auto_approved))
            if isinstance(record, r.RollbackPoint) and self._window_watch():
                # the forecast reads the journal: measured in the background, not on the engine's thread
                threading.Thread(target=self._check_window, daemon=True, name="notify window").start()
        except Exception:  # noqa: BLE001 - telling people must never stop the night
            logging.getLogger(__name__).exception("notice for event %s not made", event.seq)

    def _queue(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            for route in self.routes:
                if route.wants(notice):
                    self._queues[route].put(notice)

    def _window_watch(self) -> bool:
        wanted = any("window_at_risk" in route.kinds for route in self.routes)
        return wanted and self.forecast is not None and not self._window_said and bool(self.state and self.state.window_end)

    def _check_window(self) -> None:
        assert self.state is not None and self.state.window_end and self.forecast is not None
        try:
            notice = window_at_risk(self.state, self.forecast(), parse_time(self.state.window_end))
        except Exception:  # noqa: BLE001 - no forecast, no warning; the board still shows the window
            return
        with self._lock:
            if notice is None or self._window_said:
                return
            self._window_said = True
        self._queue([notice])

    def close(self) -> None:
        """End of the drive: a short time for deliveries under way, then what is left is journalled undelivered."""
        self._closing.set()  # no more backoff waits: one last attempt each
        for q in self._queues.values():
            q.put(_STOP)
        deadline = time.monotonic() + self.flush
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._silenced = True
        for route, q in self._queues.items():
            left = [self._current[route]] + _drain(q)
            for notice in (n for n in left if isinstance(n, Notice)):
                self._record(r.NotificationFailed(notice.kind, route.shown, 0, "not delivered before the drive ended",
                                                  final=True, samu=notice.samu, step=notice.step), force=True)

    def _deliver_loop(self, route: Route) -> None:
        q = self._queues[route]
        while True:
            notice = q.get()
            if notice is _STOP:
                return
            self._current[route] = notice
            self._deliver(route, notice)
            self._current[route] = None

    def _deliver(self, route: Route, notice: Notice) -> None:
        title, body = notice.text(route.lang)
        attempts = len(self.backoff) + 1
        redact = Redactor.of(url_secrets(route.url))  # whatever the sender says, the URL's secrets stay out
        for attempt in range(1, attempts + 1):
            try:
                error = self.deliver(route, title, body)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed delivery, not a failed night
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                error = redact(error)[:500]
            if error is None:
                self._record(r.NotificationSent(notice.kind, route.shown, attempt, notice.samu, notice.step))
                return
            final = attempt == attempts or self._closing.is_set()
            self._record(r.NotificationFailed(notice.kind, route.shown, attempt, error, final, notice.samu,
                                              notice.step))
            if final:
                return
            self._closing.wait(self.backoff[attempt - 1])

    def _record(self, record: r.Record, force: bool = False) -> None:
        assert self.journal is not None and self.state is not None
        with self._lock:
            if self._silenced and not force:
                return
            try:
                self.journal.append(self.state.run_id, record.KIND, record.to_payload())
            except Exception:  # noqa: BLE001 - e.g. the lease was lost: the night's outcome is what matters
                logging.getLogger(__name__).warning("notification record not journalled", exc_info=True)


def _drain(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items

