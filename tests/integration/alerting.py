"""Helpers for the alert channel tests: a scriptable loopback HTTP server that takes POSTs (webhooks, and
Apprise's json:// and form:// schemes), a config with [[alerts]] tables, and events raised the real way
(a recording replayed through the Tracker into a real SQLite file)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingest.alerts.delivery import utc_now
from ingest.app import build_app
from ingest.commands import locked_access
from ingest.config import Settings, load
from ingest.pipeline import replay_file
from ingest.store import Store, open_configured
from ingest.tracker import Tracker
from tests.conftest import config_sections, render_config, two_sorties_recording


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # > 0: the answer is written a byte at a time, this long apart


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class HookServer:
    """Answers every POST from a script per path prefix (the last answer repeats); records each request.
    `down()` closes the listening socket (connections refused), `up()` listens again on the same port."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.posted: list[Posted] = []
        self.cond = threading.Condition()
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.up()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = server.answer_for(self.path)
                with server.cond:
                    server.posted.append(Posted(self.path, dict(self.headers), body, time.monotonic(), answer.status))
                    server.cond.notify_all()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if answer.drip_s:
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(answer.drip_s)
                        return
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def up(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="hook-server", daemon=True).start()

    def down(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, prefix: str, *answers: Answer) -> None:
        with self.cond:
            self.answers[prefix] = list(answers)

    def answer_for(self, path: str) -> Answer:
        with self.cond:
            matches = [p for p in self.answers if path.startswith(p)]
            if not matches:
                return Answer()
            script = self.answers[max(matches, key=len)]
            return script.pop(0) if len(script) > 1 else script[0]

    def requests(self, prefix: str = "/") -> list[Posted]:
        with self.cond:
            return [p for p in self.posted if p.path.startswith(prefix)]

    def wait(self, prefix: str, count: int, timeout_s: float = 10.0) -> list[Posted]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len([p for p in self.posted if p.path.startswith(prefix)]) >= count,
                                    timeout_s)  # fmt: skip
        got = self.requests(prefix)
        assert ok, f"{count} POSTs to {prefix} within {timeout_s} s; got {[(p.path, p.status) for p in got]}"
        return got


@contextlib.contextmanager
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    try:
        yield server
    finally:
        server.down()


def write_alerts_config(tmp_path: Path, tables: str, **sections: dict[str, Any]) -> Path:
    path = tmp_path / "ingest.toml"
    path.write_text(render_config(config_sections(tmp_path, **sections), []) + tables)
    return path


class Bench:
    """A real SQLite file shared by the test thread and the channel threads (one at a time), as the
    one-shot commands share it; events raised by replaying a recording through the Tracker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = build_app(settings)
        self.store: Store = open_configured(settings.database, create=True, shared=True)
        self.access: Callable[..., Any] = locked_access(self.store)
        self.access(lambda s: s.sync_watchlist(self.app.watchlist))

    def replay(self, recording: Path, upto: int | None = None) -> None:
        """Replay a recording (its first `upto` responses) with alerts on: the events go to the outbox."""

        def run(store: Store) -> None:
            tracker = Tracker(self.settings, store, watchlist=self.app.watchlist, alerts=True)
            for n, outcome in enumerate(replay_file(recording, "replay", self.app.selector, utc_now), 1):
                tracker.save_poll(store, outcome, outcome.record.started_at)
                tracker.check(store, outcome.record.started_at)
                if upto is not None and n >= upto:
                    break

        self.access(run)

    def states(self) -> dict[str, Any]:
        return {s.channel: s for s in self.access(lambda s: s.channel_states())}

    def close(self) -> None:
        self.store.close()


def two_sorties(tmp_path: Path) -> Path:
    """62-4134 (ae01ce) flies, lands, takes off again and lands: start, end, start, end."""
    return two_sorties_recording(tmp_path)


def load_settings(config: Path, environ: dict[str, str]) -> Settings:
    return load(config, environ=environ)
