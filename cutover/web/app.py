"""``cutover serve``'s application: a read-only board over the journal (Starlette).

Routes (GET and HEAD only; ``cutover.web.security`` refuses every other method
before routing):

``/``                          the runs in the journal
``/runs/RUN_ID``               the live board (updated through the event stream)
``/runs/RUN_ID/report``        the HTML report, as ``cutover report`` writes it
``/api/runs``                  the runs, as ``cutover runs --json`` prints them
``/api/runs/RUN_ID``           the status JSON, as ``cutover status --json`` prints it
``/api/runs/RUN_ID/events``    server-sent events: ``status`` (the JSON above) at each change,
                               or ``board`` (the board's HTML) with ``?view=board``; ``end``
                               once the run is finished
``/login``                     the token sign-in page (only with ``--token-file``)
``/static/...``                the board's own stylesheet and script

The journal is only read, holding no lease, the way ``status --watch`` reads
it. Every viewer of a run shares one snapshot per poll period, so a room full
of phones costs one read of the journal per second, not one each.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cutover.app import queries
from cutover.app.history import LiveForecasts
from cutover.app.queries import runs_json
from cutover.app.report import Evidence, render, report_data, shown
from cutover.core.events import Event, Journal
from cutover.core.forecast import Outlook
from cutover.core.state import RunState, fold
from cutover.core.steps import RunbookSpec
from cutover.core.text import is_name, visible
from cutover.errors import CutoverError, JournalCorrupt, NotFound
from cutover.journal.chaincheck import VerifiedHeads, VerifiesSince, check_run_chain
from cutover.model.redact import redacted
from cutover.web.board import board_view
from cutover.web.i18n import LANGUAGES, pick_language, state_word, words
from cutover.web.security import REPORT_CSP, Access, Guard, Scope, local_path

HERE = Path(__file__).parent
POLL_S = 1.0  # how often a run's journal is re-read for its viewers
FORECAST_REFRESH_S = 10.0  # the forecast moves with the clock: recomputed this often even when nothing happens
KEEPALIVE_S = 15.0  # an idle event stream says it is alive (and finds a viewer gone) this often

ReportBuilder = Callable[[Journal, str], str]


@dataclass
class Snapshot:
    """One run as its viewers see it, taken at ``taken_at`` (monotonic seconds)."""

    state: RunState
    events: list[Event]
    spec: RunbookSpec | None
    outlook: Outlook | None
    now: datetime
    taken_at: float
    forecast_at: float

    @property
    def version(self) -> tuple[int, float]:
        """Changes when the run does, or when its clocks were recomputed: what the stream pushes on."""
        return (len(self.events), self.forecast_at)


@dataclass
class Snapshots:
    """The latest snapshot of each run being watched, shared by every viewer (thread-safe)."""

    journal: Journal
    fresh_s: float = POLL_S
    forecast_s: float = FORECAST_REFRESH_S
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _latest: dict[str, Snapshot] = field(default_factory=dict)
    _forecasts: LiveForecasts = field(init=False)
    _specs: dict[str, RunbookSpec | None] = field(default_factory=dict)
    # the chain is verified before a run is shown, as `cutover status` does: from the head verified at
    # the previous change where the journal can (SQLite), otherwise once per run (a whole PostgreSQL chain)
    _heads: VerifiedHeads = field(default_factory=lambda: VerifiedHeads(None))
    _chain_checked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._forecasts = LiveForecasts(self.journal)

    def get(self, run_id: str) -> Snapshot:
        with self._lock:
            clock = time.monotonic()
            cached = self._latest.get(run_id)
            if cached is not None and clock - cached.taken_at < self.fresh_s:
                return cached
            events = self.journal.events(run_id) if is_name(run_id) else []  # a path is no run: 404
            if not events:
                raise NotFound(f"no run {run_id!r} in this journal")
            if cached is not None and len(events) == len(cached.events) and clock - cached.forecast_at < self.forecast_s:
                cached.taken_at = clock
                return cached
            if cached is None or len(events) != len(cached.events):
                self._check_chain(run_id)
            snapshot = self._take(run_id, events, clock)
            self._latest[run_id] = snapshot
            return snapshot

    def _check_chain(self, run_id: str) -> None:
        if isinstance(self.journal, VerifiesSince) or run_id not in self._chain_checked:
            check_run_chain(self.journal, run_id, self._heads, "board")
            self._chain_checked.add(run_id)

    def _take(self, run_id: str, events: list[Event], clock: float) -> Snapshot:
        state = fold(events)
        now = datetime.now(timezone.utc)
        spec = self._spec(run_id, state)
        outlook = None
        if spec is not None:
            outlook = self._forecasts.of(state, now=now)
        return Snapshot(state, events, spec, outlook, now, clock, clock)

    def _spec(self, run_id: str, state: RunState) -> RunbookSpec | None:
        if run_id not in self._specs:
            try:
                self._specs[run_id] = self._forecasts.spec(state)  # converted once, for the forecast too
            except CutoverError:  # a runbook this version cannot read: the board still shows the run, without gates
                self._specs[run_id] = None
        return self._specs[run_id]


def status_document(snapshot: Snapshot) -> dict[str, Any]:
    """Exactly what ``cutover status --json`` prints, redacted once more."""
    return dict(redacted(queries.status_document(snapshot.state, snapshot.outlook)))


def default_report(journal: Journal, run_id: str) -> str:
    """The HTML report with the journal's own verification as evidence (the CLI passes its own builder)."""
    verified = journal.verify(run_id)
    evidence = Evidence(verified.ok, verified.events_checked, verified.head_hash, verified.reason)
    return render(report_data(journal, run_id, evidence), "html")


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return visible(json.dumps(content, indent=2, ensure_ascii=False, default=str)).encode("utf-8")


class BoardApp(Starlette):
    """Starlette with the guard (``cutover.web.security``) outside everything, error pages included."""

    guard: Callable[[Any], Any]

    def build_middleware_stack(self) -> Any:
        return self.guard(super().build_middleware_stack())


def create_app(journal: Journal, access: Access, *, report: ReportBuilder = default_report,
               poll_s: float = POLL_S) -> BoardApp:
    """The board over ``journal``; ``access`` says who may read it (see ``cutover.web.security``)."""
    pages = _Pages(journal, Snapshots(journal, fresh_s=poll_s), access, report, poll_s)
    routes = [
        Route("/", pages.runs, methods=["GET"], name="runs"),
        Route("/runs/{run_id}", pages.board, methods=["GET"], name="board"),
        Route("/runs/{run_id}/report", pages.report, methods=["GET"], name="report"),
        Route("/api/runs", pages.runs_api, methods=["GET"], name="runs_api"),
        Route("/api/runs/{run_id}", pages.status, methods=["GET"], name="status"),
        Route("/api/runs/{run_id}/events", pages.events, methods=["GET"], name="events"),
        Route("/login", pages.login, methods=["GET"], name="login"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = BoardApp(routes=routes, exception_handlers={HTTPException: pages.http_error, NotFound: pages.not_found,
                                                      JournalCorrupt: pages.broken_chain, Exception: pages.server_error})
    app.guard = lambda inner: Guard(inner, access, unauthorised_page=pages.login_page)
    return app


# Autoescape whatever a template's name; every interpolated text is made visible (no direction override).
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, finalize=shown,
    trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _clock(seconds: float | None) -> str:
    """A duration as the terminal shows it: 1h05m, or 4m07s under an hour."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _hhmm(moment: str | None) -> str:
    """An ISO instant as the wall clock of this server (the room's time zone), HH:MM:SS."""
    if not moment:
        return ""
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")


def _js_time(moment: str | None) -> str:
    """An ISO instant every browser's Date.parse reads (UTC, milliseconds: Safari refuses microseconds)."""
    if not moment:
        return ""
    instant = datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(timezone.utc)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_TEMPLATES.filters["clock"] = _clock
_TEMPLATES.filters["js_time"] = _js_time
_TEMPLATES.filters["hhmm"] = _hhmm


class _Pages:
    """The route handlers; every journal read runs in a worker thread (SQLite and psycopg block)."""

    def __init__(self, journal: Journal, snapshots: Snapshots, access: Access, report: ReportBuilder,
                 poll_s: float) -> None:
        self.journal, self.snapshots, self.access = journal, snapshots, access
        self.build_report, self.poll_s = report, poll_s

    # -- pages --

    async def runs(self, request: Request) -> Response:
        rows = await anyio.to_thread.run_sync(runs_json, self.journal)
        lang = _lang(request)
        for row in rows:
            row["state_word"], row["kind_word"] = state_word(row["state"], lang), state_word(row["kind"], lang)
        return self._page("runs.html.j2", request, runs=redacted(list(reversed(rows))))

    async def runs_api(self, request: Request) -> Response:
        return JSONBody(redacted(await anyio.to_thread.run_sync(runs_json, self.journal)))

    async def board(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        snapshot = await anyio.to_thread.run_sync(self.snapshots.get, run_id)
        return self._page("board.html.j2", request, board=self._board(snapshot, _lang(request)))

    async def report(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await anyio.to_thread.run_sync(self.snapshots.get, run_id)  # 404 for an unknown run
        html = await anyio.to_thread.run_sync(self.build_report, self.journal, run_id)
        return HTMLResponse(html, headers={"content-security-policy": REPORT_CSP})

    async def status(self, request: Request) -> Response:
        snapshot = await anyio.to_thread.run_sync(self.snapshots.get, request.path_params["run_id"])
        return JSONBody(status_document(snapshot))

    async def events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await anyio.to_thread.run_sync(self.snapshots.get, run_id)  # 404 before the stream starts
        as_board = request.query_params.get("view") == "board"
        lang = _lang(request)
        return StreamingResponse(self._stream(run_id, as_board, lang), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def login(self, request: Request) -> Response:
        """The sign-in page; its script sends the token as a bearer header and gets the cookie back.

        The token never travels in a URL (no history, no access log), and the
        exchange is a GET: the board keeps no route that accepts a body.
        """
        if self.access.token is None:
            return Response(status_code=404)
        header = request.headers.get("authorization")
        if header is None:
            return HTMLResponse(self.login_page(request.scope))
        if not self.access.bearer_ok(header):
            return Response(status_code=401, headers={"www-authenticate": 'Bearer realm="cutover"'})
        secure = request.url.scheme == "https"
        return Response(status_code=204, headers={"set-cookie": self.access.set_cookie_header(secure)})

    def login_page(self, scope: Scope) -> bytes:
        request = Request(scope)
        target = request.url.path if request.url.path != "/login" else request.query_params.get("next", "/")
        return self._render("login.html.j2", request, next=local_path(target) or "/").encode("utf-8")

    # -- the live stream --

    async def _stream(self, run_id: str, as_board: bool, lang: str) -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        last: tuple[int, float] | None = None
        quiet = 0.0
        while True:
            snapshot = await anyio.to_thread.run_sync(self.snapshots.get, run_id)
            if snapshot.version != last:
                last, quiet = snapshot.version, 0.0
                if as_board:
                    yield _sse("board", self._render_fragment(snapshot, lang))
                else:
                    yield _sse("status", visible(json.dumps(status_document(snapshot), ensure_ascii=False, default=str)))
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if snapshot.state.is_finished():
                yield _sse("end", snapshot.state.status.value)
                return
            await anyio.sleep(self.poll_s)
            quiet += self.poll_s

    def _render_fragment(self, snapshot: Snapshot, lang: str) -> str:
        template = _TEMPLATES.get_template("_board.html.j2")
        return template.render(board=self._board(snapshot, lang), t=words(lang), lang=lang)

    # -- errors --

    async def not_found(self, request: Request, exc: Exception) -> Response:
        lang = _lang(request)
        run_id = request.path_params.get("run_id")
        message = words(lang)["unknown_run"].format(run=run_id) if run_id else words(lang)["unknown_page"]
        return self._error(request, 404, message)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self._error(request, 404, words(_lang(request))["unknown_page"])
        return Response(status_code=status, headers=getattr(exc, "headers", None))

    async def broken_chain(self, request: Request, exc: Exception) -> Response:
        return self._error(request, 500, words(_lang(request))["broken_chain"])

    async def server_error(self, request: Request, exc: Exception) -> Response:
        return self._error(request, 500, words(_lang(request))["server_error"])

    def _error(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONBody({"error": message}, status_code=status)
        return self._page("error.html.j2", request, status=status, message=message, status_code=status)

    # -- rendering --

    def _board(self, snapshot: Snapshot, lang: str) -> dict[str, Any]:
        return board_view(snapshot.state, snapshot.spec, snapshot.outlook, snapshot.events, snapshot.now, lang)

    def _page(self, name: str, request: Request, *, status_code: int = 200, **context: Any) -> Response:
        return HTMLResponse(self._render(name, request, **context), status_code=status_code)

    def _render(self, name: str, request: Request, **context: Any) -> str:
        lang = _lang(request)
        other = next(code for code in LANGUAGES if code != lang)
        return _TEMPLATES.get_template(name).render(
            t=words(lang), lang=lang, other_lang=other, path=local_path(request.url.path) or "/",
            signed_in=self.access.token is not None, **context)


def _lang(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def _sse(event: str, data: str) -> str:
    """One server-sent event; every line of ``data`` gets its own ``data:`` field, as the format requires."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"
