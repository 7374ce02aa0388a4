"""The read-only HTTP API: sightings, sorties and their tracks, feed health, a health check, OpenAPI.

- Starlette routes served by uvicorn (h11, no websockets, no lifespan); the only importer of both.
- Every request opens its own Store on the database file and closes it before answering: reads in WAL
  mode never wait for the daemon's writer, and the writer's connection is never shared. Handlers are plain
  functions, so Starlette runs each in its thread pool and a Store stays in the thread that opened it.
- Errors are JSON `{"error": "..."}`: 400 for a bad parameter, 404 for an unknown tail, sortie or path,
  503 when the database cannot be opened. Bad input is never a 500.
- Lists are paged oldest first: `limit` items and an opaque `next` cursor (null on the last page) that is
  passed back as `cursor` with the same other parameters. A cursor holds the sort key of the last item
  returned (position time and hex; sortie start and id): rows stored meanwhile never shift a page (no
  repeats, no gaps), but one stored late with a time before the cursor is not in that walk.
- `/` is a web page over this API (ingest/static: the latest sorties, a track as SVG, its sightings).
  `/api/coastline.geojson` is the land it draws: the bundled file `ingest map` draws, sent as it is.
- `/metrics` is the Prometheus text exposition (metrics_prometheus.py): inside `ingest run` the daemon's
  counters and the database's gauges; from `ingest serve` alone the database's gauges only.
- `ApiServer` runs it on a background thread (inside `ingest run`); `serve()` runs it until an Event is set
  (`ingest serve`). Both bind the socket first, so a port in use is an ApiError at once, not a log line.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingest.config import Settings
from ingest.errors import IngestError, StoreError
from ingest.export import geojson, sortie_id
from ingest.models import Sortie
from ingest.openapi import MAX_LIMIT, SIGHTINGS_LIMIT, SORTIES_LIMIT, openapi_document
from ingest.services import (
    AmbiguousTail,
    Resolved,
    UnknownTail,
    daemon_status,
    health,
    latest_positions,
    resolve_tail,
)
from ingest.store import Store, open_configured
from ingest.timeutil import parse_when
from ingest.views import feed_row, sortie_dict
from ingest.watchlist import Watchlist
from ingest.watchlist_files import load_effective

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080  # as the [http] section; tar1090 / dump1090-fa may hold it on a receiver: set http.port
DEFAULT_STALE_AFTER_S = 300.0
FEED_HEALTH_WINDOW = timedelta(hours=1)  # as `ingest feeds`
STATIC = Path(__file__).parent / "static"  # the web page at `/`: index.html, its script and style sheet
# The land the page draws under a track: the file `ingest map` draws (Natural Earth 1:50m, public domain;
# ingest/data/README.md). It only changes with a release, so browsers may keep it a day and revalidate.
COASTLINE = Path(__file__).parent / "data" / "coastline-korea-50m.geojson"
COASTLINE_CACHE = "public, max-age=86400"
# The page loads nothing but its own script, style sheet and API: no inline script, no other origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ApiError(IngestError):
    """The HTTP API cannot listen, or its server stopped."""


class BadRequest(Exception):
    """A parameter the API cannot use: answered 400 with the message."""


class NotFound(Exception):
    """An unknown tail or sortie: answered 404 with the message."""


# -- reads ---------------------------------------------------------------------------------------------


# -- parameters ----------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,9}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SEP = "\x1f"


def _query(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once; empty ones count as absent, unknown ones are an error."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; this endpoint takes {', '.join(allowed) or 'none'}")
    out: dict[str, str] = {}
    for name in allowed:
        values = params.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"{name}: given {len(values)} times; give it once")
        if values and values[0].strip():
            out[name] = values[0]
    return out


def _limit(text: str | None, default: int) -> int:
    if text is None:
        return default
    value = text.strip()
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit: {text!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _when(name: str, text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text, now)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None
    except OverflowError:
        raise BadRequest(f"{name}: {text!r} is out of range") from None


def _flag(name: str, text: str | None) -> bool:
    if text is None:
        return False
    value = text.strip().lower()
    if value not in _TRUE | _FALSE:
        raise BadRequest(f"{name}: {text!r} is not true or false")
    return value in _TRUE


def _encode_cursor(kind: str, *parts: str) -> str:
    raw = _SEP.join((kind, *parts)).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(kind: str, text: str) -> list[str]:
    """The parts of a cursor made by _encode_cursor(kind, ...); BadRequest for anything else."""
    bad = BadRequest("cursor: malformed; pass the `next` value of the previous page unchanged")
    if not _CURSOR.fullmatch(text):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    parts = raw.split(_SEP)
    if len(parts) != 3 or parts[0] != kind:
        raise bad
    return parts[1:]


def _sightings_cursor(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    ts, hex_icao = _decode_cursor("s1", text)
    if not re.fullmatch(r"-?[0-9]{1,19}", ts) or abs(int(ts)) > 2**62 or not 0 < len(hex_icao) <= 16:
        raise BadRequest("cursor: malformed; pass the `next` value of the previous page unchanged")
    return int(ts), hex_icao


def _sorties_cursor(text: str | None) -> tuple[float, str] | None:
    if text is None:
        return None
    first_at, last_id = _decode_cursor("o1", text)
    try:
        at = float(first_at)
    except ValueError:
        at = math.nan
    if not math.isfinite(at) or not 0 < len(last_id) <= 200:
        raise BadRequest("cursor: malformed; pass the `next` value of the previous page unchanged")
    return at, last_id


# -- the application -----------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


Exposition = Callable[[str], tuple[bytes, str]]  # Accept header -> Prometheus exposition (body, Content-Type)


class _Api:
    """The handlers, over the settings, the watchlist and the database path."""

    def __init__(
        self, settings: Settings, watchlist: Watchlist, stale_after_s: float, metrics: Exposition | None = None
    ) -> None:
        self.settings = settings
        self.watchlist = watchlist
        self.stale_after_s = stale_after_s
        self._metrics = metrics
        self._metrics_lock = threading.Lock()

    def _store(self) -> Store:
        return open_configured(self.settings.database, create=False)

    def _resolve(
        self, store: Store, tail: str, since: datetime | None = None, until: datetime | None = None
    ) -> Resolved:
        """The aircraft a tail (registration, hex or callsign) names, as the CLI resolves it."""
        try:
            return resolve_tail(store, tail, since, until, lambda: self.watchlist)
        except UnknownTail as exc:
            raise NotFound(str(exc)) from None

    def sightings(self, request: Request) -> Response:
        q = _query(request, ("since", "until", "limit", "cursor"))
        now = datetime.now(UTC)
        since, until = _when("since", q.get("since"), now), _when("until", q.get("until"), now)
        limit = _limit(q.get("limit"), SIGHTINGS_LIMIT)
        after = _sightings_cursor(q.get("cursor"))
        tail = request.path_params["tail"]
        store = self._store()
        try:
            rows = store.sightings_page(self._resolve(store, tail, since, until).hexes, since, until, after, limit + 1)
        finally:
            store.close()
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            cursor = _encode_cursor("s1", str(int(datetime.fromisoformat(last["time"]).timestamp())), last["hex"])
        return JSONResponse({"items": rows, "next": cursor})

    def sorties(self, request: Request) -> Response:
        q = _query(request, ("tail", "since", "open", "limit", "cursor"))
        since = _when("since", q.get("since"), datetime.now(UTC))
        open_only = _flag("open", q.get("open"))
        limit = _limit(q.get("limit"), SORTIES_LIMIT)
        after = _sorties_cursor(q.get("cursor"))
        store = self._store()
        try:
            keys = [self._resolve(store, q["tail"], since).key] if "tail" in q else None
            found = store.sorties_page(keys, since, open_only, after, limit + 1)
            cursor = None
            if len(found) > limit:
                found = found[:limit]
                last = found[-1]
                cursor = _encode_cursor("o1", repr(last.start_at.timestamp()), last.sortie_id)
            happenings = store.happenings([s.sortie_id for s in found])
        finally:
            store.close()
        return JSONResponse({"items": [sortie_dict(s, happenings) for s in found], "next": cursor})

    def _sortie(self, store: Store, request: Request) -> Sortie:
        text = request.path_params["sortie_id"]
        wanted = sortie_id(text)  # any case
        sortie = None if wanted is None else store.sortie(wanted)
        if sortie is None:
            raise NotFound(f"unknown sortie {text!r}")
        return sortie

    def sortie(self, request: Request) -> Response:
        _query(request, ())
        store = self._store()
        try:
            sortie = self._sortie(store, request)
            happenings = store.happenings([sortie.sortie_id])
        finally:
            store.close()
        return JSONResponse(sortie_dict(sortie, happenings))

    def track(self, request: Request) -> Response:
        _query(request, ())
        store = self._store()
        try:
            sortie = self._sortie(store, request)
            track = store.track(sortie)
        finally:
            store.close()
        return JSONResponse(geojson([(sortie, track)]), media_type="application/geo+json")

    def feeds(self, request: Request) -> Response:
        _query(request, ())
        store = self._store()
        now = datetime.now(UTC)
        try:
            health_rows = store.feed_health(now - FEED_HEALTH_WINDOW)
            daemon = daemon_status(store, now)
        finally:
            store.close()
        items = [feed_row(fs, health_rows.get(fs.name, {}), now, daemon.running) for fs in self.settings.feeds]
        return JSONResponse({"items": items, "daemon": daemon.as_dict()})

    def now(self, request: Request) -> Response:
        _query(request, ())
        store = self._store()
        try:
            rows = latest_positions(store, datetime.now(UTC))
        finally:
            store.close()
        return JSONResponse({"items": rows})

    def coastline(self, request: Request) -> Response:
        """The bundled coastline, with an ETag: a browser that has it gets a 304."""
        _query(request, ())
        body, etag = _coastline()
        headers = {"Cache-Control": COASTLINE_CACHE, "ETag": etag}
        if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/geo+json", headers=headers)

    def healthz(self, request: Request) -> Response:
        """services.health(), the rule `ingest health` applies too: 200 when healthy, else 503 with a reason."""
        _query(request, ())
        enabled = [fs.name for fs in self.settings.feeds if fs.enabled]
        try:
            store = self._store()
        except StoreError as exc:
            body = {"status": "unavailable", "stale_after_s": self.stale_after_s, "reason": str(exc)}
            return JSONResponse(body, status_code=503)
        try:
            answer = health(store, enabled, datetime.now(UTC), self.stale_after_s)
        finally:
            store.close()
        return JSONResponse(answer.as_dict(), status_code=200 if answer.healthy else 503)

    def metrics(self, request: Request) -> Response:
        """The Prometheus exposition; without a daemon's (`ingest serve`), the database's gauges alone."""
        _query(request, ())
        with self._metrics_lock:
            if self._metrics is None:
                from ingest.metrics_prometheus import database_metrics  # prometheus_client loads on the first scrape

                self._metrics = database_metrics(self.settings).render
            render = self._metrics
        body, content_type = render(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    def openapi(self, request: Request) -> Response:
        _query(request, ())
        return JSONResponse(openapi_document())

    def page(self, request: Request) -> Response:
        """The web page (ingest/static/index.html), the area's box in its `ingest-area` meta tag."""
        try:
            text = (STATIC / "index.html").read_text(encoding="utf-8")
        except OSError:
            raise NotFound("the web page is not installed (ingest/static/index.html)") from None
        a = self.settings.area
        area = {"name": a.name, "south": a.south, "west": a.west, "north": a.north, "east": a.east}
        text = text.replace("{{AREA}}", html.escape(json.dumps(area), quote=True), 1)
        return HTMLResponse(text, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})


@lru_cache(maxsize=1)
def _coastline() -> tuple[bytes, str]:
    """The coastline file's bytes and their ETag; NotFound when the file is not installed."""
    try:
        body = COASTLINE.read_bytes()
    except OSError:
        raise NotFound(f"the coastline is not installed (ingest/data/{COASTLINE.name})") from None
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _handled(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """A handler whose BadRequest, NotFound, AmbiguousTail and StoreError become JSON 400, 404, 409 and 503."""

    def handler(request: Request) -> Response:
        try:
            return fn(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except AmbiguousTail as exc:  # a callsign several aircraft flew: say which, let the caller pick
            return JSONResponse({"error": str(exc), "candidates": list(exc.candidates)}, status_code=409)
        except StoreError as exc:
            log.warning("http api: %s", exc)
            return _error(503, f"the database is unavailable: {exc}")

    handler.__name__ = getattr(fn, "__name__", "handler")
    return handler


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path 404, wrong method 405) as JSON."""
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail, dict(exc.headers or {}))


def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error; see the daemon's log")


def create_app(
    settings: Settings,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    *,
    watchlist: Watchlist | None = None,
    metrics: Exposition | None = None,
) -> Starlette:
    """The ASGI application. The watchlist (for tails watched but never stored) is loaded as the daemon
    loads it (watchlist_files.py) unless given; ConfigError when it cannot be read. `metrics` renders
    `/metrics` (a daemon's registry); without it, the database's gauges are served."""
    if watchlist is None:
        watchlist = load_effective(settings)
    api = _Api(settings, watchlist, stale_after_s, metrics)
    routes = [
        Route("/api/sightings/{tail}", _handled(api.sightings), methods=["GET"]),
        Route("/api/sorties", _handled(api.sorties), methods=["GET"]),
        Route("/api/sorties/{sortie_id}/track.geojson", _handled(api.track), methods=["GET"]),
        Route("/api/sorties/{sortie_id}", _handled(api.sortie), methods=["GET"]),
        Route("/api/feeds", _handled(api.feeds), methods=["GET"]),
        Route("/api/now", _handled(api.now), methods=["GET"]),
        Route("/api/coastline.geojson", _handled(api.coastline), methods=["GET"]),
        Route("/healthz", _handled(api.healthz), methods=["GET"]),
        Route("/metrics", _handled(api.metrics), methods=["GET"]),
        Route("/openapi.json", _handled(api.openapi), methods=["GET"]),
        Route("/", _handled(api.page), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})


# -- serving -------------------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port); ApiError when that is impossible."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ApiError(f"http api: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class ApiServer:
    """The API on a background thread, for `ingest run`:

        server = ApiServer(settings, host, port, stale_after_s=...)
        server.start()   # ApiError when the port cannot be bound; returns once it accepts connections
        ...
        server.stop()    # finishes the requests in flight (at most a few seconds) and joins the thread

    `port` is the bound port (useful with port 0). Also a context manager."""

    def __init__(
        self,
        settings: Settings,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        watchlist: Watchlist | None = None,
        metrics: Exposition | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.app = create_app(settings, stale_after_s, watchlist=watchlist, metrics=metrics)
        config = uvicorn.Config(
            self.app, http="h11", ws="none", lifespan="off", log_config=None, access_log=False,
            server_header=False, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = 10.0) -> None:
        sock = _listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name="http-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ApiError(f"http api: the server on {self.url} did not start")
            time.sleep(0.01)
        log.info("http api on %s", self.url)

    def _run(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except BaseException:  # SystemExit included: uvicorn exits on a failed startup
            log.exception("http api: the server stopped")
        finally:
            sock.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    stop: threading.Event | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> None:
    """Serve the API until `stop` is set (None: until KeyboardInterrupt). Signals are left to the caller:
    set `stop` from SIGTERM/SIGINT handlers. ApiError when it cannot listen or the server dies."""
    stop = stop or threading.Event()
    server = ApiServer(settings, host, port, stale_after_s=stale_after_s)
    server.start()
    try:
        while not stop.wait(0.5):
            if not server.running:
                raise ApiError(f"http api: the server on {server.url} stopped")
    finally:
        server.stop()
