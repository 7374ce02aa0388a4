"""The `webhook` channel kind: each event as one JSON POST to a URL, signed when a secret is set.

The body is the event's payload (README "MQTT alerts") plus `operator`, `type_name`, `title` and `text`
(alerts/events.py) and `channel`; headers `X-Ingest-Event` (start, end, orbit, emergency, test),
`X-Ingest-Event-Id` and, with a secret, `X-Ingest-Signature: sha256=<hex HMAC-SHA256 of the body>`; and the
channel's own `headers` (`Authorization: Bearer ...` for ntfy, n8n or Home Assistant's webhooks), a secret
like the URL.

- 2xx: delivered. 401, 403, 404, 410: the channel is parked (`park_s`). 429 and 503 honour Retry-After
  (seconds or an HTTP date). Anything else, a timeout or a refused connection: back off and retry the same
  event; later events wait behind it, so they arrive in order.
- Redirects are not followed (a 3xx is a failure that says so): give the final URL.
- One keep-alive connection (the standard library's http.client), a `timeout_s` on connecting and on each
  read, at most POST_TIMEOUTS x `timeout_s` for the whole POST (a server that drips its answer a byte at a
  time is cut then, by a watchdog thread of the channel's own), and at most MAX_ANSWER_BYTES of the answer
  read.
- Repeats: an event whose 2xx answer was lost, or that was answered but not yet marked when the daemon
  died (marks are written every MARK_EVERY events or MARK_AFTER_S), is POSTed again after the restart.
- The URL may carry a token: it is never logged; errors name the channel and the host only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ingest import __version__
from ingest.alerts.events import Event, describe
from ingest.alerts.outbox import PERMANENT, Clock, Failure, SequentialChannel, StoreAccess
from ingest.config import AlertSettings, webhook_headers
from ingest.errors import ConfigError
from ingest.timeutil import retry_after_s

MAX_ANSWER_BYTES = 65_536
POST_TIMEOUTS = 3  # a whole POST (connect, send, answer) gets this many timeout_s
MARK_EVERY = 100  # webhook marks are written in batches: a POST is quick, a store round trip is not free
MARK_AFTER_S = 0.1
RETRY_STATUSES = frozenset({429, 503})


class PostDeadline(TimeoutError):
    """A POST cut by the watchdog: the server kept answering, too slowly to finish within total_s."""


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body with the channel's secret (as GitHub signs webhooks)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Poster:
    """POSTs to one URL over a kept-alive connection; `abort()` from another thread cuts a POST short."""

    def __init__(self, url: str, timeout_s: float, channel: str) -> None:
        self.total_s = POST_TIMEOUTS * timeout_s
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"alerts.{channel}.url", "environment", "must be an http:// or https:// URL")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.https else 80)
        except ValueError:
            raise ConfigError(f"alerts.{channel}.url", "environment", "has an invalid port") from None
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout_s = timeout_s
        self.where = f"{parts.scheme}://{self.host}:{self.port}"  # for messages: never the path or query
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._started: float | None = None  # monotonic start of the POST in flight
        self._cut: float | None = None  # the start of the POST the watchdog cut
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        """(status, lower-cased headers); OSError or http.client.HTTPException when no answer came."""
        with self._lock:
            conn = self._connection()
            self._started = started = time.monotonic()
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="webhook-deadline", daemon=True)
                self._watchdog.start()
        try:
            conn.request("POST", self.target, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(MAX_ANSWER_BYTES)
            answer = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close or not resp.isclosed():
                self.close()  # an answer longer than we read, or the server closes: a fresh connection next
            return resp.status, answer
        except BaseException as exc:
            self.close()
            if self._cut == started:
                raise PostDeadline from exc
            raise
        finally:
            with self._lock:
                self._started = None

    def _watch(self) -> None:
        """Cut the POST in flight once it has taken total_s (checked a few times a timeout)."""
        tick = max(0.05, min(1.0, self.total_s / 10))
        while not self._stop.wait(tick):
            with self._lock:
                started = self._started
                if started is None or time.monotonic() - started < self.total_s:
                    continue
                self._cut, self._started = started, None
                sock = getattr(self._conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the blocked read or write returns now

    def stop(self) -> None:
        """End the watchdog (the channel is closing)."""
        self._stop.set()
        self.close()

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        with self._lock:
            conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the blocked read returns now


class WebhookChannel(SequentialChannel):
    mark_every = MARK_EVERY
    mark_after_s = MARK_AFTER_S

    def __init__(self, settings: AlertSettings, access: StoreAccess, clock: Clock) -> None:
        super().__init__(settings, access, clock)
        self.poster = Poster(settings.url, settings.timeout_s, settings.name)
        self.tz = ZoneInfo(settings.timezone) if settings.timezone else None
        self.headers = {"Content-Type": "application/json", "User-Agent": f"ingest/{__version__}"}
        self.headers.update(webhook_headers(settings.headers))  # checked at start-up (config.check_channel_urls)

    def body(self, event: Event) -> bytes:
        text = describe(event, self.tz)
        doc = event.body({"title": text.title, "text": text.body, "channel": self.name})
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def send(self, event: Event) -> Failure | None:
        body = self.body(event)
        headers = {**self.headers, "X-Ingest-Event": event.kind, "X-Ingest-Event-Id": event.event_id}
        if self.settings.secret:
            headers["X-Ingest-Signature"] = signature(self.settings.secret, body)
        try:
            status, answer = self.poster.post(body, headers)
        except PostDeadline:
            return Failure(f"{self.poster.where} did not finish answering within {self.poster.total_s:g} s")
        except TimeoutError:
            return Failure(f"{self.poster.where} did not answer within {self.settings.timeout_s:g} s")
        except (OSError, http.client.HTTPException) as exc:
            return Failure(f"{self.poster.where}: {_reason(exc)}")
        if 200 <= status < 300:
            return None
        words = f"{self.poster.where} answered HTTP {status}"
        if status in PERMANENT:
            return Failure(f"{words} (a refusal that retrying will not fix)", permanent=True)
        if 300 <= status < 400:
            return Failure(f"{words}, a redirect (not followed: give the final URL)")
        wait = retry_after_s(answer.get("retry-after"), self.clock()) if status in RETRY_STATUSES else None
        return Failure(words + (f", Retry-After {wait:.0f} s" if wait is not None else ""), retry_after_s=wait)

    def abort(self) -> None:
        self.poster.abort()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.poster.stop()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
