"""Real components for integration tests: a readsb-v2 feed server on 127.0.0.1 in a thread.

The server answers every GET from a script: `server.reply(prefix, Reply(...))` sets the answer for paths
that start with `prefix` (longest prefix wins); everything else gets an empty `{"ac": []}`. A Reply can
delay, stream a huge body, cut the body short or send any status and headers. Each request is recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import aircraft, envelope
from tests.integration.drip import raw_server  # noqa: F401  (fixtures for the tests of this folder)
from tests.mqtt_broker import mqtt_broker  # noqa: F401


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stream_bytes: int = 0  # send this many filler bytes after `body`, in 64 KiB chunks, no Content-Length
    cut_at: int | None = None  # announce the full length, send only this many bytes, close


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float


class FeedServer:
    def __init__(self) -> None:
        self.replies: dict[str, Reply | list[Reply] | Callable[[], Reply]] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append(Seen(self.path, dict(self.headers), time.monotonic()))
                reply = server.reply_for(self.path)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                # The client may give up (timeout or body cap): that is what such a test wants.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(reply)

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                if reply.stream_bytes:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                    chunk = b" " * 65536
                    for _ in range(reply.stream_bytes // len(chunk)):
                        self.wfile.write(chunk)
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                if reply.cut_at is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body[: reply.cut_at])
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="feed-server", daemon=True)

    def reply(self, prefix: str, *replies: Reply | Callable[[], Reply]) -> None:
        """Answer paths starting with `prefix`: with one reply (or a function that builds it at request
        time) always, or with several replies in turn (the last repeats)."""
        with self.lock:
            if len(replies) == 1:
                self.replies[prefix] = replies[0]
            else:
                self.replies[prefix] = [r for r in replies if isinstance(r, Reply)]

    def reply_for(self, path: str) -> Reply:
        with self.lock:
            matches = [p for p in self.replies if path.startswith(p)]
            if not matches:
                return Reply(body=envelope([]))
            prefix = max(matches, key=len)
            script = self.replies[prefix]
            if isinstance(script, list):
                return script.pop(0) if len(script) > 1 else script[0]
            return script if isinstance(script, Reply) else script()

    def paths(self) -> list[str]:
        with self.lock:
            return [s.path for s in self.requests]


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


class Daemon:
    """`ingest run --config CONFIG` as a child process, its stderr in a log file beside the config."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, log_name: str = "daemon.log") -> None:
        self.config = config
        self.log = config.parent / log_name
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}, **(env or {})}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                cwd=config.parent,
            )

    def output(self) -> str:
        return self.log.read_text()

    def query(self, sql: str) -> Any:
        """The first column of the first row `sql` gives, on the daemon's database (None before its tables
        exist, or when there is no row yet): its SQLite file, or the PostgreSQL database its config's
        [database] url names."""
        url = tomllib.loads(self.config.read_text()).get("database", {}).get("url", "")
        if url:
            return pg_query(url, sql)
        db = self.config.parent / "ingest.db"
        if not db.exists():
            return None
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            try:
                row = conn.execute(sql).fetchone()
            except sqlite3.OperationalError:  # tables not created yet
                return None
        return None if row is None else row[0]

    def wait_for(self, check: Callable[[], bool], timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited early ({self.proc.returncode}):\n{self.output()}")
            if check():
                return
            time.sleep(0.1)
        pytest.fail(f"condition not met in {timeout_s} s; daemon log:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 5) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        return code, time.monotonic() - t0


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test started; any still running at teardown are killed."""
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


class Sky:
    """What the loopback feed reports right now, per hex; every answer carries the current time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flying: dict[str, dict[str, Any]] = {}

    def put(self, hex_icao: str, at: tuple[float, float], alt: int | str = 31000, flight: str = "TORA23") -> None:
        with self.lock:
            self.flying[hex_icao] = aircraft(hex_icao, at[0], at[1], alt=alt, flight=f"{flight:<8}", seen_pos=0.2)

    def clear(self, hex_icao: str = "ae01d2") -> None:
        with self.lock:
            self.flying.pop(hex_icao, None)

    def reply(self) -> Reply:
        with self.lock:
            return Reply(body=envelope(list(self.flying.values()), now=datetime.now(UTC)))


@pytest.fixture
def sky(feed_server: FeedServer) -> Sky:
    sky = Sky()
    feed_server.reply("/v2/", sky.reply)
    return sky


def pg_query(url: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        try:
            row = conn.execute(sql).fetchone()
        except psycopg.errors.UndefinedTable:  # tables not created yet
            return None
    return None if row is None else row[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
