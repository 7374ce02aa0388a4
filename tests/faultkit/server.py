"""The loopback readsb-v2 feed server: answers from the World, and every way a feed can fail.

`/v2/hex/...` answers carry the world's aircraft; `/v2/reg/...` and any other `/v2/` path answer an
empty list. While a fault is set, every `/v2/` request gets it (a poison only the hex answers, and only
for a number of answers). Every answer is logged in the World with what it carried and whether it was
written in full; faulty answers never count as carried, whatever reached the client.

Responses are written raw (status line, headers, body) so that a fault can stop or slow anywhere.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
import time
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import aircraft
from tests.faultkit.world import (
    FAULT,
    GOOD,
    POISON_ENVELOPE,
    POISON_HEX,
    POISON_RECORD,
    Served,
    World,
    answer_clock,
    envelope_bytes,
)

YEAR_10000_S = 253_402_300_800  # 10000-01-01T00:00:00Z, one past what datetime can hold
DRIP_BYTE_S = 0.2  # a slow drip: one byte every 0.2 s


@dataclass(frozen=True, slots=True)
class FeedFault:
    """One way the feed misbehaves. An outage lasts a time span; a poison a number of hex answers."""

    name: str
    kind: str  # status, hang, cut, drip-headers, drip-body, garbage, gzip-bomb, poison
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay_s: float = 0.0  # hang: answer this late; drips: give up after this long
    poison: str = ""  # seen-pos, nested, now-year-10000, now-future
    inflated_mb: int = 0  # gzip-bomb

    @property
    def outage(self) -> bool:
        return self.kind != "poison"


def feed_faults(read_timeout_s: float, max_body_mb: float, drip_max_s: float) -> dict[str, FeedFault]:
    """The catalogue, by scenario name."""
    html = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    faults = [
        FeedFault("http-429-retry-after", "status", 429, (("Retry-After", "2"),), b'{"error":"rate limited"}'),
        FeedFault("http-429", "status", 429, (), b"Too Many Requests"),
        FeedFault("http-500", "status", 500, (), b"Internal Server Error"),
        FeedFault("http-503", "status", 503, (), b"Service Unavailable"),
        FeedFault("hang", "hang", delay_s=read_timeout_s + 1.5),
        FeedFault("cut-mid-body", "cut"),
        FeedFault("drip-headers", "drip-headers", delay_s=drip_max_s),
        FeedFault("drip-body", "drip-body", delay_s=drip_max_s),
        FeedFault("garbage", "garbage"),
        FeedFault("gzip-bomb", "gzip-bomb", inflated_mb=int(max_body_mb * 4) + 1),
        FeedFault("redirect-302", "status", 302, (("Location", "/v2/moved/"),), b""),
        FeedFault("html-200", "status", 200, (("Content-Type", "text/html"),), html),
        FeedFault("poison-seen-pos-1e300", "poison", poison="seen-pos"),
        FeedFault("poison-now-year-10000", "poison", poison="now-year-10000"),
        FeedFault("poison-nested-5000", "poison", poison="nested"),
        FeedFault("poison-now-future-1h", "poison", poison="now-future"),
    ]
    return {f.name: f for f in faults}


@cache
def gzip_bomb(inflated_mb: int) -> bytes:
    """A valid gzip stream of a JSON answer padded with spaces to `inflated_mb` MiB (~1 kB per MiB)."""
    return gzip.compress(b'{"now": 1, "ac": [' + b" " * (inflated_mb * 1024 * 1024) + b"]}", compresslevel=9)


def _head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 302: "Found", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class FeedServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) in a thread."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.Lock()
        self.fault: FeedFault | None = None
        self.poison_left = 0
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):  # the client gave up: what some faults want
                    server.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fault-feed", daemon=True)

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    # -- the fault switch ----------------------------------------------------------------------------

    def set_fault(self, fault: FeedFault | None, poison_answers: int = 0) -> None:
        with self.lock:
            self.fault = fault
            self.poison_left = poison_answers

    def poison_done(self) -> bool:
        with self.lock:
            return self.poison_left <= 0

    def _current(self, path: str) -> FeedFault | None:
        with self.lock:
            fault = self.fault
            if fault is None or fault.kind != "poison":
                return fault
            if "/hex/" not in path or self.poison_left <= 0:
                return None
            self.poison_left -= 1
            return fault

    # -- answering -----------------------------------------------------------------------------------

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        now = time.time()
        if not h.path.startswith("/v2/"):
            self._write(h, 404, [("Content-Type", "text/plain")], b"not found")
            return
        fault = self._current(h.path)
        if fault is None or fault.kind == "poison":
            served, body = self._build(h.path, now, fault)
            self._write(h, 200, [("Content-Type", "application/json")], body)
            self.world.delivered(served)
            return
        self.world.record(Served(now, h.path, FAULT, fault.name))
        getattr(self, "_fault_" + fault.kind.replace("-", "_"))(h, fault, now)

    def _build(self, path: str, now: float, poison: FeedFault | None) -> tuple[Served, bytes]:
        now_ms, seen_pos, _ = answer_clock(now)
        if "/hex/" not in path:
            return self.world.record(Served(now, path, GOOD)), envelope_bytes([], now_ms)
        records, positions, _ = self.world.records(now_ms // 1000 - 0.5, seen_pos)
        kind, shift_s, parts = GOOD, 0.0, list[dict[str, object] | bytes](records)
        name = poison.name if poison else ""
        if poison is not None and poison.poison == "seen-pos":
            kind = POISON_RECORD
            parts.insert(1, aircraft(POISON_HEX, 37.6, 126.4, alt=30000, flight="POISON1 ", seen_pos=1e300))
        elif poison is not None and poison.poison == "nested":
            kind = POISON_RECORD
            record = aircraft(POISON_HEX, 37.6, 126.4, alt=30000, flight="POISON2 ", seen_pos=seen_pos)
            parts.insert(1, b"[" * 5000 + json.dumps(record).encode() + b"]" * 5000)  # a record 5,000 levels down
        elif poison is not None and poison.poison == "now-year-10000":
            kind, shift_s = POISON_ENVELOPE, YEAR_10000_S + (now % 86400) - now
        elif poison is not None and poison.poison == "now-future":
            kind, shift_s = POISON_ENVELOPE, 3600.0
        served = self.world.record(Served(now, path, kind, name, positions, now_shift_s=shift_s))
        return served, envelope_bytes(parts, now_ms + int(shift_s * 1000))

    def _write(self, h: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        headers = [*headers, ("Content-Length", str(len(body)))]
        h.wfile.write(_head(status, _REASONS.get(status, "Status"), headers) + body)

    # -- faults (each writes its whole misbehaviour; the connection closes after all but status) ------

    def _fault_status(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        headers = list(fault.headers)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        self._write(h, fault.status, headers, fault.body)

    def _fault_hang(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        if self.stopping.wait(fault.delay_s):
            return
        body = self._peek_body(h.path, now)  # a late answer is no answer: logged as the fault
        h.close_connection = True
        self._write(h, 200, [("Content-Type", "application/json"), ("Connection", "close")], body)

    def _fault_cut(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        body = self._peek_body(h.path, now)
        head = _head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        h.close_connection = True
        h.wfile.write(head + body[: len(body) // 2])

    def _fault_drip_headers(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        body = self._peek_body(h.path, now)
        headers = [("Content-Type", "application/json"), ("X-Padding", "p" * 400), ("Content-Length", str(len(body)))]
        h.close_connection = True
        self._drip(h, _head(200, "OK", headers), fault.delay_s)

    def _fault_drip_body(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        body = self._peek_body(h.path, now)
        h.close_connection = True
        h.wfile.write(_head(200, "OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]))
        self._drip(h, body, fault.delay_s)

    def _fault_garbage(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        self._write(h, 200, [("Content-Type", "application/json")], os.urandom(4096))

    def _fault_gzip_bomb(self, h: BaseHTTPRequestHandler, fault: FeedFault, now: float) -> None:
        body = gzip_bomb(fault.inflated_mb)
        h.close_connection = True
        self._write(h, 200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                             ("Connection", "close")], body)  # fmt: skip

    def _peek_body(self, path: str, now: float) -> bytes:
        """A well-formed body for a fault to mangle (nothing is logged as served for it)."""
        now_ms, seen_pos, _ = answer_clock(now)
        records = self.world.records(now_ms // 1000 - 0.5, seen_pos)[0] if "/hex/" in path else []
        return envelope_bytes(records, now_ms)

    def _drip(self, h: BaseHTTPRequestHandler, data: bytes, max_s: float) -> None:
        """One byte every DRIP_BYTE_S until `data` is out, the client leaves or `max_s` has passed."""
        deadline = time.monotonic() + max_s
        for i in range(len(data)):
            if time.monotonic() > deadline or self.stopping.wait(DRIP_BYTE_S):
                return
            h.wfile.write(data[i : i + 1])
