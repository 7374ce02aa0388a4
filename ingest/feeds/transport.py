"""Fetching a FeedRequest: HTTP through one requests.Session per feed, or a local file. The only
importer of requests.

- Every call has a (connect, read) timeout and a total deadline: requests has no default timeout, and
  its read timeout is the gap between bytes, not the whole download.
- The body is streamed and capped on *decoded* bytes: a 97 KB gzip body can expand to 100 MB
  (reliability-and-performance.md §4, H5).
- urllib3's Retry handles connection failures only; 429/503 and Retry-After go back to the feed's
  pacing (policy.py) instead of sleeping inside the job thread (STYLE §2.6).
- Errors name the feed and the request's safe_url, never the full URL: keyed feeds may carry secrets.
- OAuth2 client credentials (OpenSky, feeds.md §5.3): a request whose headers carry
  `bearer_token_url` gets `Authorization: Bearer <token>`, from a TokenSource that fetches a
  token from that URL with the feed's client_id/client_secret, reuses it until 30 s before it expires and
  fetches a new one once on a 401. The secret and the token never reach a log line, an error or a repr.
- Credits (OpenSky): `X-Rate-Limit-Remaining` is logged at DEBUG on every answer and at WARNING once when
  it drops below LOW_CREDITS; `X-Rate-Limit-Retry-After-Seconds` counts as a Retry-After.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ingest.config import FeedSettings
from ingest.errors import FeedUnavailable
from ingest.feeds.base import FeedRequest
from ingest.feeds.hosts import host_limit

_CHUNK_BYTES = 65_536
_DEADLINE_READS = 3  # total deadline = connect timeout + this many read timeouts
_RETRY_AFTER_MAX_S = 6 * 3600.0
_TOKEN_MAX_BYTES = 65_536
_RETRY_AFTER_HEADERS = ("Retry-After", "X-Rate-Limit-Retry-After-Seconds")  # the second: OpenSky (feeds.md §5.4)
_REMAINING_HEADER = "X-Rate-Limit-Remaining"
LOW_CREDITS = 50  # X-Rate-Limit-Remaining below this is logged at WARNING (once per episode)

TOKEN_REFRESH_MARGIN_S = 30.0  # the official Python client's TokenManager refreshes 30 s early (feeds.md §5.3)
DEFAULT_TOKEN_LIFETIME_S = 1800.0  # OpenSky: "Tokens expire after 30 minutes"
_OAUTH_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

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


def make_session(user_agent: str) -> requests.Session:
    """A Session with a real User-Agent that retries connection failures only."""
    retry = Retry(
        total=None, connect=2, read=0, redirect=0, status=0, other=0,
        backoff_factor=0.5, respect_retry_after_header=False,
    )  # fmt: skip
    session = requests.Session()
    session.headers["User-Agent"] = user_agent  # adsb.lol rejects library defaults (feeds.md §2.3)
    session.headers["Accept-Encoding"] = "gzip"  # 6x less on the wire; ADSBx requires it
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX_S)


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
    """Fetches one feed's requests; owned by that feed's job, never shared between threads."""

    def __init__(self, settings: FeedSettings, user_agent: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.max_bytes = int(settings.max_body_mb * 1024 * 1024)
        self._session = make_session(user_agent)
        self._clock = clock  # monotonic seconds, for token lifetimes
        self._tokens: dict[str, TokenSource] = {}
        self._credits_low = False

    def close(self) -> None:
        self._session.close()

    def __call__(self, req: FeedRequest) -> Response:
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
        try:
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
        except requests.RequestException as exc:
            raise FeedUnavailable(feed, url, f"{label} token request failed: {_describe(exc)}") from exc

    def _read_file(self, req: FeedRequest) -> Response:
        path = Path(req.url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedUnavailable(req.feed, req.safe_url, f"file of {size} bytes is over the cap")
            return Response(None, path.read_bytes())
        except OSError as exc:
            raise FeedUnavailable(req.feed, req.safe_url, exc.strerror or type(exc).__name__) from exc

    def _get(self, req: FeedRequest, headers: dict[str, str]) -> Response:
        gate = _host_gate(req.url)
        if gate is None:  # a host we do not know (a receiver, a test server): no limit to keep
            return self._get_now(req, headers)
        with gate:  # a public host: one request in flight, across feeds, spaced by its published limit
            return self._get_now(req, headers)

    def _get_now(self, req: FeedRequest, headers: dict[str, str]) -> Response:
        fs = self.settings
        try:
            with self._session.get(
                req.url,
                headers=headers,
                timeout=(fs.connect_timeout_s, fs.read_timeout_s),
                stream=True,
                allow_redirects=False,
            ) as resp:
                self._note_credits(req.feed, resp.headers.get(_REMAINING_HEADER))
                self._check_status(req, resp)
                return Response(resp.status_code, self._read_capped(req.feed, req.safe_url, resp), _headers(resp))
        except requests.RequestException as exc:
            # The exception text holds the full URL (and so any key in it): keep only its type.
            raise FeedUnavailable(req.feed, req.safe_url, _describe(exc)) from exc

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
        if wait is not None:
            reason += f", {header} {wait:g} s"
        raise FeedUnavailable(req.feed, req.safe_url, reason, status=resp.status_code, retry_after_s=wait)

    def _read_capped(self, feed: str, safe_url: str, resp: requests.Response, max_bytes: int | None = None) -> bytes:
        cap = self.max_bytes if max_bytes is None else max_bytes
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cap:
            raise FeedUnavailable(feed, safe_url, f"Content-Length {length} is over the cap", 200)
        deadline = time.monotonic() + self.settings.connect_timeout_s + _DEADLINE_READS * self.settings.read_timeout_s
        buf = bytearray()
        for chunk in resp.iter_content(chunk_size=_CHUNK_BYTES):  # decoded (gunzipped) bytes
            buf += chunk
            if len(buf) > cap:
                raise FeedUnavailable(feed, safe_url, f"body over the {cap} byte cap", 200)
            if time.monotonic() > deadline:
                raise FeedUnavailable(feed, safe_url, "body still arriving at the deadline", 200)
        return bytes(buf)


def _headers(resp: requests.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in resp.headers.items()}


class _HostGate:
    """At most one request in flight to a host, and a known host's spacing kept across all its feeds."""

    def __init__(self, spacing_s: float) -> None:
        self.spacing_s = spacing_s
        self.lock = threading.Lock()
        self.last_end = float("-inf")

    def __enter__(self) -> None:
        self.lock.acquire()
        wait_s = self.last_end + self.spacing_s - time.monotonic()
        if wait_s > 0:
            time.sleep(wait_s)

    def __exit__(self, *exc: object) -> None:
        self.last_end = time.monotonic()
        self.lock.release()


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


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        # Only fixed words go out: the exception text itself carries the full URL.
        text = str(exc)
        if "ReadTimeoutError" in text or "Read timed out" in text:  # urllib3's, wrapped by the retry layer
            return "timeout (no answer within the read timeout)"
        for marker, words in _CONNECTION_CAUSES:
            if marker in text:
                return f"connection failed: {words}"
        return "connection failed"
    return type(exc).__name__


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
