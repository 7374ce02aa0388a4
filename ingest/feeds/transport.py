"""Fetching a FeedRequest: HTTP through one requests.Session per feed, or a local file. The only
importer of requests.

- Every call has a (connect, read) timeout and a total deadline: requests has no default timeout, and
  its read timeout is the gap between bytes, not the whole download.
- The body is streamed and capped on *decoded* bytes: a 97 KB gzip body can expand to 100 MB
  (reliability-and-performance.md §4, H5).
- urllib3's Retry handles connection failures only; 429/503 and Retry-After go back to the feed's
  pacing (policy.py) instead of sleeping inside the job thread (STYLE §2.6).
- Errors name the feed and the request's safe_url, never the full URL: keyed feeds may carry secrets.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ingest.config import FeedSettings
from ingest.errors import FeedUnavailable
from ingest.feeds.base import FeedRequest

_CHUNK_BYTES = 65_536
_DEADLINE_READS = 3  # total deadline = connect timeout + this many read timeouts
_RETRY_AFTER_MAX_S = 6 * 3600.0

# urllib3 logs request paths (query strings included) at DEBUG, and again in its WARNING "Retrying"
# lines: keep it quiet (reliability-and-performance.md §7).
logging.getLogger("urllib3").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class Response:
    """A body that arrived in full, with its status (None for files)."""

    status: int | None
    body: bytes


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


class Fetcher:
    """Fetches one feed's requests; owned by that feed's job, never shared between threads."""

    def __init__(self, settings: FeedSettings, user_agent: str) -> None:
        self.settings = settings
        self.max_bytes = int(settings.max_body_mb * 1024 * 1024)
        self._session = make_session(user_agent)

    def close(self) -> None:
        self._session.close()

    def __call__(self, req: FeedRequest) -> Response:
        if req.is_file:
            return self._read_file(req)
        return self._get(req)

    def _read_file(self, req: FeedRequest) -> Response:
        path = Path(req.url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedUnavailable(req.feed, req.safe_url, f"file of {size} bytes is over the cap")
            return Response(None, path.read_bytes())
        except OSError as exc:
            raise FeedUnavailable(req.feed, req.safe_url, exc.strerror or type(exc).__name__) from exc

    def _get(self, req: FeedRequest) -> Response:
        fs = self.settings
        try:
            with self._session.get(
                req.url,
                headers=req.headers,
                timeout=(fs.connect_timeout_s, fs.read_timeout_s),
                stream=True,
                allow_redirects=False,
            ) as resp:
                self._check_status(req, resp)
                return Response(resp.status_code, self._read_capped(req, resp))
        except requests.RequestException as exc:
            # The exception text holds the full URL (and so any key in it): keep only its type.
            raise FeedUnavailable(req.feed, req.safe_url, _describe(exc)) from exc

    def _check_status(self, req: FeedRequest, resp: requests.Response) -> None:
        if resp.status_code == 200:
            return
        wait = retry_after_s(resp.headers.get("Retry-After"), datetime.now(UTC))
        reason = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
        if wait is not None:
            reason += f", Retry-After {wait:g} s"
        raise FeedUnavailable(req.feed, req.safe_url, reason, status=resp.status_code, retry_after_s=wait)

    def _read_capped(self, req: FeedRequest, resp: requests.Response) -> bytes:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise FeedUnavailable(req.feed, req.safe_url, f"Content-Length {length} is over the cap", 200)
        deadline = time.monotonic() + self.settings.connect_timeout_s + _DEADLINE_READS * self.settings.read_timeout_s
        buf = bytearray()
        for chunk in resp.iter_content(chunk_size=_CHUNK_BYTES):  # decoded (gunzipped) bytes
            buf += chunk
            if len(buf) > self.max_bytes:
                raise FeedUnavailable(req.feed, req.safe_url, f"body over the {self.max_bytes} byte cap", 200)
            if time.monotonic() > deadline:
                raise FeedUnavailable(req.feed, req.safe_url, "body still arriving at the deadline", 200)
        return bytes(buf)


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        # Only fixed words go out: the exception text itself carries the full URL.
        text = str(exc)
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
