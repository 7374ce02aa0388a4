"""Fetching a FeedRequest: HTTP through one requests.Session per feed, or a local file. The only
importer of requests and urllib3.

- Every call has a (connect, read) timeout and a hard total deadline, connect timeout + 3 read timeouts:
  requests has no default timeout, and its read timeout is the gap between bytes, so a feed that drips
  one byte at a time never trips it. See "Deadline and abort" below.
- The body is streamed and capped on *decoded* bytes: a 97 KB gzip body can expand to 100 MB
  (reliability-and-performance.md §4, H5).
- urllib3's Retry handles connection failures only; 429/503 and Retry-After go back to the feed's
  pacing (policy.py) instead of sleeping inside the job thread (STYLE §2.6). Redirects are not followed:
  a 3xx is a failure that says so.
- Errors name the feed and the request's safe_url, never the full URL: keyed feeds may carry secrets.
- OAuth2 client credentials (OpenSky, feeds.md §5.3): a request whose headers carry
  `bearer_token_url` gets `Authorization: Bearer <token>`, from a TokenSource that fetches a
  token from that URL with the feed's client_id/client_secret, reuses it until 30 s before it expires and
  fetches a new one once on a 401. The secret and the token never reach a log line, an error or a repr.
- Credits (OpenSky): `X-Rate-Limit-Remaining` is logged at DEBUG on every answer and at WARNING once when
  it drops below LOW_CREDITS; `X-Rate-Limit-Retry-After-Seconds` counts as a Retry-After.
- Documents (`fetch_document`: a watchlist for `ingest watchlist update`) go through the same Fetcher, so
  they get the User-Agent, timeouts, deadline and decoded-size cap a feed gets; unlike a feed's request
  they follow a few redirects (GitHub's `/raw/` links redirect to raw.githubusercontent.com), http(s)
  only and never from https to http.

Deadline and abort. Each GET and each token POST is one `_Call`. A `threading.Timer` (the watchdog) cuts
it at the deadline, `Fetcher.abort()` (from any thread) cuts it at once; cutting shuts down the socket of
every connection the call uses with `socket.socket.shutdown(sock, SHUT_RDWR)` (the unbound method: it
skips ssl.SSLSocket.shutdown, which would unwrap TLS under a reader), so the read blocked in status line,
headers or body returns now, and the call raises FeedUnavailable with the cut's reason, whatever error
the library made of the cut. Finding those sockets: urllib3 builds pools and connections itself and
hands them nothing of ours, so the Session's adapter installs pool classes (`pool_classes_by_scheme`)
whose `ConnectionCls` registers each connection with the call running in the current thread (a
thread-local, set for the duration of the call; a Fetcher is used by one thread at a time) when it
connects and when it sends a request, which covers keep-alive reuse. The same hooks refuse a new
connection or request once the call is cut, clamp a connect attempt to the time left, and end the
Retry backoff between connect attempts early. What they cannot cut is a connect attempt in progress (DNS
lookup, TCP connect, TLS handshake: urllib3 shows us the socket only once it is connected), so abort()
then waits for that attempt to end, at most the connect timeout; the deadline still holds. A connection
that was shut down reports itself as not connected, so the pool drops it instead of reusing it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import IncompleteRead
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ingest.config import FEED_KEYS, FeedSettings
from ingest.errors import FeedUnavailable
from ingest.feeds.base import FeedRequest
from ingest.feeds.hosts import host_limit
from ingest.timeutil import retry_after_s

_CHUNK_BYTES = 65_536
_DEADLINE_READS = 3  # total deadline = connect timeout + this many read timeouts
STOPPED = "stopped"  # the reason of every failure after Fetcher.abort()
_TOKEN_MAX_BYTES = 65_536
_RETRY_AFTER_HEADERS = ("Retry-After", "X-Rate-Limit-Retry-After-Seconds")  # the second: OpenSky (feeds.md §5.4)
_REMAINING_HEADER = "X-Rate-Limit-Remaining"
LOW_CREDITS = 50  # X-Rate-Limit-Remaining below this is logged at WARNING (once per episode)

TOKEN_REFRESH_MARGIN_S = 30.0  # the official Python client's TokenManager refreshes 30 s early (feeds.md §5.3)
DEFAULT_TOKEN_LIFETIME_S = 1800.0  # OpenSky: "Tokens expire after 30 minutes"
_OAUTH_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DOCUMENT_CONNECT_TIMEOUT_S = 10.0
DOCUMENT_READ_TIMEOUT_S = 30.0
MAX_DOCUMENT_REDIRECTS = 5

log = logging.getLogger(__name__)

# urllib3 logs request paths (query strings included) at DEBUG, and again in its WARNING "Retrying"
# lines: keep it quiet (reliability-and-performance.md §7).
logging.getLogger("urllib3").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class Response:
    """A body that arrived in full, with its status and headers (None and none for files)."""

    status: int | None
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# (url, form fields) -> the answer, whatever its status; FeedUnavailable when none arrived.
PostForm = Callable[[str, Mapping[str, str]], Response]


# -- deadline and abort (see the module docstring) ------------------------------------------------


class _Cut(Exception):
    """Raised by our urllib3 hooks when the call was cut: no new connection, no new request."""


class _Call:
    """One request in flight (a GET or a token POST): its deadline, the connections it uses and, once the
    watchdog or Fetcher.abort() has cut it, why."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.expires_at = time.monotonic() + deadline_s
        self.reason: str | None = None
        self._woken = threading.Event()  # set by a cut: ends a Retry backoff early
        self._lock = threading.Lock()
        self._conns: list[_WatchedHTTPConnection] = []
        self._done = False

    def expire(self) -> None:
        """The watchdog's cut, at the deadline."""
        self.cut(f"timeout (no complete answer within {self.deadline_s:g} s)")

    def cut(self, reason: str) -> None:
        """Shut down every connection of the call now; the first reason sticks. No-op once finished."""
        with self._lock:
            if self._done or self.reason is not None:
                return
            self.reason = reason
            conns = list(self._conns)
        self._woken.set()
        for conn in conns:
            conn.shut()

    def attach(self, conn: _WatchedHTTPConnection) -> None:
        """Watch a connection the call uses; shut it at once if the call was cut meanwhile."""
        with self._lock:
            if self._done:
                return
            if conn not in self._conns:
                self._conns.append(conn)
            cut = self.reason is not None
        if cut:
            conn.shut()

    def check(self) -> None:
        """Raise _Cut once cut or past the deadline (the watchdog thread may not have run yet)."""
        if self.reason is None and time.monotonic() >= self.expires_at:
            self.expire()
        if self.reason is not None:
            raise _Cut(self.reason)

    def time_left_s(self) -> float:
        return self.expires_at - time.monotonic()

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, but not past the deadline, and wake at a cut."""
        self._woken.wait(max(0.0, min(seconds, self.time_left_s())))

    def finish(self) -> str | None:
        """End the call: later cuts do nothing (its connections may be back in the pool). Returns why it
        was cut, or None."""
        with self._lock:
            self._done = True
            self._conns.clear()
            return self.reason


_ACTIVE = threading.local()  # .call: the _Call the current thread is making, if any


def _active_call() -> _Call | None:
    call: _Call | None = getattr(_ACTIVE, "call", None)
    return call


class _WatchedHTTPConnection(HTTPConnection):
    """An urllib3 connection that the current call can shut down, and that the pool never reuses once
    shut. Outside a call (no _Call in this thread) it is a plain HTTPConnection."""

    _shut = False

    def _new_conn(self) -> socket.socket:
        call = _active_call()
        if call is not None:
            call.check()
            if isinstance(self.timeout, int | float):  # a connect attempt may not outlast the deadline
                self.timeout = max(min(self.timeout, call.time_left_s()), 0.001)
        self._shut = False
        return super()._new_conn()

    def connect(self) -> None:
        super().connect()  # for HTTPS this includes the TLS handshake: self.sock is then the SSLSocket
        call = _active_call()
        if call is not None:
            call.attach(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = _active_call()
        if call is not None:  # a reused keep-alive connection connects no more: watch it here
            call.check()
            call.attach(self)
        super().request(*args, **kwargs)

    @property
    def is_connected(self) -> bool:
        return not self._shut and super().is_connected

    def shut(self) -> None:
        """Shut the socket down both ways, so that a read blocked on it returns now."""
        self._shut = True
        sock: object = self.sock
        if not isinstance(sock, socket.socket):  # TLS inside a TLS proxy tunnel: urllib3's SSLTransport
            sock = getattr(sock, "socket", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed, or not yet connected
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The HTTPS connection with the same hooks (they wrap HTTPSConnection's connect and request)."""


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": _WatchedHTTPConnectionPool,
    "https": _WatchedHTTPSConnectionPool,
}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with pools of watched connections, direct or through an HTTP(S) proxy (a SOCKS
    proxy keeps its own pool classes, and so only the read and connect timeouts)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


class _Retry(Retry):
    """urllib3's Retry whose backoff between connect attempts ends at a cut and never outlasts the
    deadline (Retry.new() keeps the subclass)."""

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        call = _active_call()
        if call is None:
            super().sleep(response)
        else:  # respect_retry_after_header is off (make_session): only the backoff is left
            call.pause(self.get_backoff_time())


def make_session(user_agent: str) -> requests.Session:
    """A Session with a real User-Agent that retries connection failures only, on watched connections."""
    retry = _Retry(
        total=None, connect=2, read=0, redirect=0, status=0, other=0,
        backoff_factor=0.5, respect_retry_after_header=False,
    )  # fmt: skip
    session = requests.Session()
    session.headers["User-Agent"] = user_agent  # adsb.lol rejects library defaults (feeds.md §2.3)
    session.headers["Accept-Encoding"] = "gzip"  # 6x less on the wire; ADSBx requires it
    adapter = _WatchedAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def refresh_after_s(expires_in_s: float) -> float:
    """Seconds after its fetch at which a token is replaced: 30 s before it expires (half its life when
    it lives less than a minute)."""
    return expires_in_s - min(TOKEN_REFRESH_MARGIN_S, expires_in_s / 2)


class TokenSource:
    """OAuth2 client-credentials access tokens for one feed (feeds.md §5.3): fetched on first use, reused
    until `refresh_after_s` has passed on `clock` (monotonic seconds), dropped by `invalidate()` after a
    401. Not thread-safe: owned by one Fetcher. Neither the secret nor the token is in its repr."""

    def __init__(
        self,
        *,
        feed: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        post: PostForm,
        clock: Callable[[], float] = time.monotonic,
        label: str = "OAuth2",
    ) -> None:
        self.feed = feed
        self.token_url = token_url
        self.label = label
        self.fetches = 0
        self._client_id = client_id
        self._client_secret = client_secret
        self._post = post
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:
        held = "held" if self._token else "none"
        return f"TokenSource(feed={self.feed!r}, url={self.token_url!r}, client_id={self._client_id!r}, token={held})"

    def bearer(self) -> str:
        """A token that is not about to expire; FeedUnavailable when the token endpoint refuses or fails."""
        now = self._clock()
        if self._token is None or now >= self._refresh_at:
            self._token = None
            token, expires_in_s = self._fetch()
            self._token = token
            self._refresh_at = now + refresh_after_s(expires_in_s)
        return self._token

    def invalidate(self) -> None:
        """Forget the token (the API answered 401: "the token has expired"), so the next call fetches one."""
        self._token = None

    def _fail(self, reason: str, status: int | None = None, retry_after: float | None = None) -> FeedUnavailable:
        return FeedUnavailable(
            self.feed, self.token_url, f"{self.label} token request failed: {reason}", status, retry_after
        )

    def _fetch(self) -> tuple[str, float]:
        self.fetches += 1
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        resp = self._post(self.token_url, form)
        doc = _json_object(resp.body)
        if resp.status != 200:
            reason = f"HTTP {resp.status}"
            code = doc.get("error")
            if isinstance(code, str) and _OAUTH_ERROR_CODE.fullmatch(code):  # a fixed OAuth2 code, never text
                reason += f" {code}"
            if resp.status in (400, 401, 403):
                reason += " — check client_id/client_secret"
            wait, header = _retry_after(resp.headers, datetime.now(UTC))
            if wait is not None:
                reason += f", {header} {wait:g} s"
            raise self._fail(reason, resp.status, wait)
        token = doc.get("access_token")
        if not isinstance(token, str) or not token or not (token.isascii() and token.isprintable()) or " " in token:
            raise self._fail("the answer holds no usable access_token", resp.status)  # never show the body
        return token, _lifetime_s(doc.get("expires_in"))


def _json_object(body: bytes) -> dict[str, object]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _lifetime_s(value: object) -> float:
    """`expires_in` as seconds; the documented 1800 when absent or unreadable."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return DEFAULT_TOKEN_LIFETIME_S


def _retry_after(headers: Mapping[str, str], now: datetime) -> tuple[float | None, str]:
    """The longest wait any retry-after header asks for, and that header's name."""
    lowered = {key.lower(): value for key, value in headers.items()}
    best: tuple[float | None, str] = (None, "")
    for name in _RETRY_AFTER_HEADERS:
        wait = retry_after_s(lowered.get(name.lower()), now)
        if wait is not None and (best[0] is None or wait > best[0]):
            best = (wait, name)
    return best


class Fetcher:
    """Fetches one feed's requests; owned by that feed's job, never shared between threads, except for
    abort(), which any thread may call."""

    def __init__(self, settings: FeedSettings, user_agent: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.max_bytes = int(settings.max_body_mb * 1024 * 1024)
        self.deadline_s = settings.connect_timeout_s + _DEADLINE_READS * settings.read_timeout_s
        self._session = make_session(user_agent)
        self._clock = clock  # monotonic seconds, for token lifetimes
        self._tokens: dict[str, TokenSource] = {}
        self._credits_low = False
        self._lock = threading.Lock()  # guards _stopped and _call against abort()
        self._stopped = threading.Event()
        self._call: _Call | None = None

    def close(self) -> None:
        self._session.close()

    def abort(self) -> None:
        """Stop this Fetcher, from any thread, at once: the request in flight is cut (it raises
        FeedUnavailable "stopped"), a wait at a host gate ends, and every later call raises
        FeedUnavailable("stopped") without touching the network. Idempotent; close() stays the owner's."""
        with self._lock:
            self._stopped.set()
            call = self._call
        if call is not None:
            call.cut(STOPPED)
        _wake_gates()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __call__(self, req: FeedRequest) -> Response:
        if self._stopped.is_set():
            raise FeedUnavailable(req.feed, req.safe_url, STOPPED)
        if req.is_file:
            return self._read_file(req)
        headers = dict(req.headers)
        token_url = req.bearer_token_url
        if not token_url:
            return self._get(req, headers)
        tokens = self.token_source(req.feed, token_url)
        headers["Authorization"] = f"Bearer {tokens.bearer()}"
        try:
            return self._get(req, headers)
        except FeedUnavailable as exc:
            if exc.status != 401:
                raise
        # "A 401 Unauthorized response means the token has expired" (feeds.md §5.3): one new token, one retry.
        tokens.invalidate()
        headers["Authorization"] = f"Bearer {tokens.bearer()}"
        return self._get(req, headers)

    def token_source(self, feed: str, token_url: str) -> TokenSource:
        """The feed's TokenSource for `token_url`, made on first use from its client_id/client_secret."""
        tokens = self._tokens.get(token_url)
        if tokens is None:
            fs = self.settings
            if not fs.client_id:
                raise FeedUnavailable(feed, token_url, "a bearer token is needed but client_id is not set")
            label = "OpenSky" if fs.kind == "opensky" else "OAuth2"
            tokens = TokenSource(
                feed=feed, token_url=token_url, client_id=fs.client_id, client_secret=fs.client_secret,
                post=lambda url, form: self.post_form(feed, url, form, label), clock=self._clock, label=label,
            )  # fmt: skip
            self._tokens[token_url] = tokens
        return tokens

    def post_form(self, feed: str, url: str, form: Mapping[str, str], label: str = "OAuth2") -> Response:
        """POST a urlencoded form (a token request); the answer whatever its status. Only fixed words about
        a failure go out: the form holds the client secret."""
        fs = self.settings

        def send() -> Response:
            with self._session.post(
                url,
                data=dict(form),
                headers={"Accept": "application/json"},
                timeout=(fs.connect_timeout_s, fs.read_timeout_s),
                stream=True,
                allow_redirects=False,
            ) as resp:
                body = self._read_capped(feed, url, resp, _TOKEN_MAX_BYTES)
                return Response(resp.status_code, body, _headers(resp))

        return self._within_deadline(feed, url, send, f"{label} token request failed: ")

    def _read_file(self, req: FeedRequest) -> Response:
        path = Path(req.url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedUnavailable(req.feed, req.safe_url, f"file of {size} bytes is over the cap")
            return Response(None, path.read_bytes())
        except OSError as exc:
            raise FeedUnavailable(req.feed, req.safe_url, exc.strerror or type(exc).__name__) from exc

    def get_document(self, url: str, max_redirects: int = MAX_DOCUMENT_REDIRECTS) -> Response:
        """GET `url` whole (not a feed's request: no host gate), following up to `max_redirects` redirects;
        a 200 with a body, or FeedUnavailable naming the URL without its query string."""
        for _ in range(max_redirects + 1):
            req = FeedRequest(self.settings.name, url, document_safe_url(url))
            if self._stopped.is_set():
                raise FeedUnavailable(req.feed, req.safe_url, STOPPED)
            response = self._get_now(req, {}, follow=True)
            if response.status == 200:
                return response
            url = _redirected(req, response.header("Location"))
        raise FeedUnavailable(self.settings.name, document_safe_url(url), f"more than {max_redirects} redirects")

    def _get(self, req: FeedRequest, headers: dict[str, str]) -> Response:
        gate = _host_gate(req.url)
        if gate is None:  # a host we do not know (a receiver, a test server): no limit to keep
            return self._get_now(req, headers)
        # A public host: one request in flight, across feeds, spaced by its published limit. The wait
        # ends early when this Fetcher is aborted.
        if not gate.acquire(self._stopped.is_set):
            raise FeedUnavailable(req.feed, req.safe_url, STOPPED)
        try:
            return self._get_now(req, headers)
        finally:
            gate.release()

    def _get_now(self, req: FeedRequest, headers: dict[str, str], follow: bool = False) -> Response:
        """One GET; with `follow`, a redirect comes back as its status and headers (no body read)."""
        fs = self.settings

        def send() -> Response:
            with self._session.get(
                req.url,
                headers=headers,
                timeout=(fs.connect_timeout_s, fs.read_timeout_s),
                stream=True,
                allow_redirects=False,
            ) as resp:
                if follow and resp.is_redirect:
                    return Response(resp.status_code, b"", _headers(resp))
                self._note_credits(req.feed, resp.headers.get(_REMAINING_HEADER))
                self._check_status(req, resp)
                body = self._read_capped(req.feed, req.safe_url, resp)
                if not body:  # every feed format is a JSON document: an empty 200 is no answer
                    raise FeedUnavailable(req.feed, req.safe_url, "HTTP 200 with an empty body", 200)
                return Response(resp.status_code, body, _headers(resp))

        return self._within_deadline(req.feed, req.safe_url, send)

    def _within_deadline(self, feed: str, url: str, send: Callable[[], Response], prefix: str = "") -> Response:
        """`send()` as one _Call: cut by the watchdog at the deadline and by abort() at once. A cut call
        raises FeedUnavailable with the cut's reason, whatever error the cut caused (or none: a body
        without Content-Length just ends early). Library errors become FeedUnavailable."""
        call = _Call(self.deadline_s)
        with self._lock:
            if self._stopped.is_set():
                raise FeedUnavailable(feed, url, STOPPED)
            self._call = call
        watchdog = threading.Timer(self.deadline_s, call.expire)
        watchdog.daemon = True
        watchdog.name = f"deadline {feed}"
        watchdog.start()
        outer, _ACTIVE.call = _active_call(), call
        try:
            try:
                response = send()
            finally:
                _ACTIVE.call = outer
                watchdog.cancel()
                with self._lock:
                    self._call = None
                cut = call.finish()
        except Exception as exc:
            if cut is not None:  # the cut's reason, not the error it made (a reset, a short body, ...)
                raise FeedUnavailable(feed, url, cut if cut == STOPPED else prefix + cut) from exc
            if isinstance(exc, requests.RequestException | _Cut):
                # The exception text holds the full URL (and so any key in it): only fixed words go out.
                raise FeedUnavailable(feed, url, prefix + _describe(exc, self.settings)) from exc
            raise
        if cut is not None:
            raise FeedUnavailable(feed, url, cut if cut == STOPPED else prefix + cut)
        return response

    def _note_credits(self, feed: str, value: str | None) -> None:
        """OpenSky's remaining API credits: DEBUG every answer, WARNING once when they run low."""
        if value is None or not value.strip().isdigit():
            return
        remaining = int(value.strip())
        log.debug("feed %s: %d API credits left (%s)", feed, remaining, _REMAINING_HEADER)
        if remaining < LOW_CREDITS and not self._credits_low:
            log.warning(
                "feed %s: only %d API credits left (%s); polls will fail with HTTP 429 when they run out",
                feed, remaining, _REMAINING_HEADER,
            )  # fmt: skip
        self._credits_low = remaining < LOW_CREDITS

    def _check_status(self, req: FeedRequest, resp: requests.Response) -> None:
        if resp.status_code == 200:
            return
        wait, header = _retry_after(resp.headers, datetime.now(UTC))
        reason = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
        if resp.is_redirect:
            reason += _redirect_words(resp.headers.get("Location"))
        if wait is not None:
            reason += f", {header} {wait:g} s"
        raise FeedUnavailable(req.feed, req.safe_url, reason, status=resp.status_code, retry_after_s=wait)

    def _read_capped(self, feed: str, safe_url: str, resp: requests.Response, max_bytes: int | None = None) -> bytes:
        cap = self.max_bytes if max_bytes is None else max_bytes
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cap:
            raise FeedUnavailable(feed, safe_url, f"Content-Length {length} is over the cap", 200)
        buf = bytearray()
        for chunk in resp.iter_content(chunk_size=_CHUNK_BYTES):  # decoded (gunzipped) bytes
            buf += chunk
            if len(buf) > cap:
                raise FeedUnavailable(feed, safe_url, f"body over the {cap} byte cap", 200)
        return bytes(buf)


def fetch_document(
    url: str,
    user_agent: str,
    max_bytes: int,
    name: str = "download",
    connect_timeout_s: float = DOCUMENT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DOCUMENT_READ_TIMEOUT_S,
) -> bytes:
    """The body of `url` (decoded, at most `max_bytes`), fetched as a feed's answer is (module docstring);
    FeedUnavailable(name, URL without its query string, reason) otherwise."""
    values = {key.name: key.default for key in FEED_KEYS} | {
        "name": name, "kind": "document", "max_body_mb": max_bytes / (1024 * 1024),
        "connect_timeout_s": connect_timeout_s, "read_timeout_s": read_timeout_s,
    }  # fmt: skip
    fetcher = Fetcher(FeedSettings(**values), user_agent)
    fetcher.max_bytes = max_bytes  # exactly, not rounded through MiB
    try:
        return fetcher.get_document(url).body
    finally:
        fetcher.close()


def document_safe_url(url: str) -> str:
    """A URL as messages show it: no user name or password, no query string (it may hold a token)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def _redirected(req: FeedRequest, location: str | None) -> str:
    """Where a redirect points, as an absolute http(s) URL; FeedUnavailable for one that goes elsewhere or
    from https down to http."""
    from urllib.parse import urljoin

    target = urljoin(req.url, (location or "").strip())
    scheme = urlsplit(target).scheme
    if not location or scheme not in ("http", "https") or not urlsplit(target).netloc:
        raise FeedUnavailable(req.feed, req.safe_url, "a redirect without a usable http(s) Location")
    if scheme == "http" and urlsplit(req.url).scheme == "https":
        raise FeedUnavailable(
            req.feed, req.safe_url, f"a redirect from https down to http ({document_safe_url(target)})"
        )
    return target


def _redirect_words(location: str | None) -> str:
    """`: redirects are not followed`, with the target's scheme and host (never its path or query, which
    may carry a key) so the base_url can be fixed."""
    target = urlsplit(location or "")
    where = f" (Location: {target.scheme}://{target.netloc.rpartition('@')[2]}/…)" if target.netloc else ""
    return f": redirects are not followed, set the feed's URL to where it points{where}"


def _headers(resp: requests.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in resp.headers.items()}


class _HostGate:
    """At most one request in flight to a host, and a known host's spacing kept across all its feeds.
    A Condition rather than a Lock held through the spacing sleep, so that abort() can end a wait."""

    def __init__(self, spacing_s: float) -> None:
        self.spacing_s = spacing_s
        self.last_end = float("-inf")
        self._busy = False
        self._cond = threading.Condition()

    def acquire(self, stopped: Callable[[], bool]) -> bool:
        """Wait until no request is in flight to the host and its spacing has passed; False (the gate not
        taken) as soon as `stopped()` is true."""
        with self._cond:
            while not stopped():
                wait_s = self.last_end + self.spacing_s - time.monotonic()
                if not self._busy and wait_s <= 0:
                    self._busy = True
                    return True
                self._cond.wait(wait_s if not self._busy else None)
            return False

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self.last_end = time.monotonic()
            self._cond.notify_all()

    def wake(self) -> None:
        """Make every waiter look at its `stopped()` again."""
        with self._cond:
            self._cond.notify_all()


_GATES: dict[str, _HostGate] = {}
_GATES_LOCK = threading.Lock()


def _host_gate(url: str) -> _HostGate | None:
    limit = host_limit(url)
    if limit is None:
        return None
    host = (urlsplit(url).hostname or url).lower()
    with _GATES_LOCK:
        gate = _GATES.get(host)
        if gate is None:
            gate = _GATES[host] = _HostGate(limit.min_request_spacing_s)
        return gate


def _wake_gates() -> None:
    with _GATES_LOCK:
        gates = list(_GATES.values())
    for gate in gates:
        gate.wake()


def _describe(exc: Exception, fs: FeedSettings) -> str:
    """Fixed words for a library error: its text carries the full URL, so never show it."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"timeout (no connection within the {fs.connect_timeout_s:g} s connect timeout)"
    if isinstance(exc, requests.Timeout):
        return f"timeout (no answer within the {fs.read_timeout_s:g} s read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        short = _find_cause(exc, IncompleteRead)
        if isinstance(short, IncompleteRead):  # urllib3's: bytes read so far, bytes still expected
            total = short.partial + short.expected
            return f"body cut short: the connection closed after {short.partial} of {total} bytes"
        return "body cut short: the connection broke before the end of the body"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "corrupt compressed body (its Content-Encoding could not be decoded)"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "ReadTimeoutError" in text or "Read timed out" in text:  # urllib3's, wrapped by the retry layer
            return f"timeout (no answer within the {fs.read_timeout_s:g} s read timeout)"
        if "BadStatusLine" in text or "LineTooLong" in text:  # http.client's, on bytes that are not HTTP
            return "not an HTTP answer (unreadable status line or headers)"
        for marker, words in _CONNECTION_CAUSES:
            if marker in text:
                return f"connection failed: {words}"
        return "connection failed"
    return type(exc).__name__


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first `kind` among an exception's arguments and causes, depth first (requests wraps urllib3's
    errors in its own, with the original as an argument)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        if isinstance(item, kind):
            return item
        seen.add(id(item))
        todo.extend([item.__context__, item.__cause__, *item.args])
    return None


_CONNECTION_CAUSES = (
    ("NameResolutionError", "DNS lookup failed"),
    ("Name or service not known", "DNS lookup failed"),
    ("Temporary failure in name resolution", "DNS lookup failed"),
    ("Connection refused", "connection refused"),
    ("Network is unreachable", "network unreachable"),
    ("RemoteDisconnected", "server closed the connection"),
    ("Connection reset", "connection reset"),
    ("SSLError", "TLS error"),
)
