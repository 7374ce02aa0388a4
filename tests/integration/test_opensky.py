"""`ingest poll` against a fake OpenSky on loopback: `/api/states/all` on the FeedServer and an OAuth2
token endpoint on a small POST server of its own (the FeedServer answers GET only).

Covers anonymous and authenticated polls, one token per poll reused across its requests, a new token
after expiry (injected clock) and after a 401, a token endpoint that refuses the client, 429 with
`X-Rate-Limit-Retry-After-Seconds`, and that the client secret and the tokens never reach a log line,
stdout, stderr or the database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from ingest.cli import main
from ingest.config import load
from ingest.feeds.base import FeedRequest
from ingest.feeds.transport import Fetcher
from tests.conftest import INSIDE, T0, ConfigWriter
from tests.integration.conftest import FeedServer, Reply

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-9fQ2-opensky-client"
CLIENT_ID = "ingest-api-client"
T = int(T0.timestamp())


def token_value(n: int) -> str:
    return f"eyJ-token-{n}-b7c1"


@dataclass
class TokenReply:
    status: int = 200
    doc: dict[str, Any] | None = None  # None: a fresh token "eyJ-token-<n>-b7c1" for 1800 s
    headers: dict[str, str] = field(default_factory=dict)


class TokenServer:
    """An OAuth2 token endpoint on 127.0.0.1: answers POSTs from a script, records each form."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.script: list[TokenReply] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                with server.lock:
                    server.forms.append(form)
                    server.content_types.append(self.headers.get("Content-Type", ""))
                    n = len(server.forms)
                    reply = server.script.pop(0) if server.script else TokenReply()
                doc = reply.doc
                if doc is None:
                    doc = {"access_token": token_value(n), "expires_in": 1800, "token_type": "Bearer"}
                body = json.dumps(doc).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/auth/token"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def row(icao24: str, lat: float | None, lon: float | None, **over: Any) -> list[Any]:
    values: dict[str, Any] = dict(
        callsign="TORA23  ", time_position=T - 3, last_contact=T - 1, baro_m=9448.8, on_ground=False,
        velocity=200.0, track=45.5, geo_m=9601.2, squawk="4651", source=0,
    )  # fmt: skip
    values.update(over)
    v = values
    return [
        icao24, v["callsign"], "United States", v["time_position"], v["last_contact"], lon, lat, v["baro_m"],
        v["on_ground"], v["velocity"], v["track"], 0.0, None, v["geo_m"], v["squawk"], False, v["source"],
    ]  # fmt: skip


def answer(*rows: list[Any], **headers: str) -> Reply:
    body = json.dumps({"time": T, "states": list(rows)}).encode()
    return Reply(body=body, headers={"X-Rate-Limit-Remaining": "3990", **headers})


WATCHED = answer(
    row("ae01d2", *INSIDE),  # RC-135W 62-4125, inside the Korean box
    row("71c011", 37.5, 127.0, callsign="KAL123  "),  # not watched
    row("ae749d", None, None),  # no position
)


def opensky(feed_server: FeedServer, token_server: TokenServer | None = None, **extra: Any) -> dict[str, Any]:
    feed: dict[str, Any] = {"name": "opensky", "kind": "opensky", "base_url": f"{feed_server.url}/api", "interval_s": 5}
    if token_server is not None:
        feed.update(client_id=CLIENT_ID, token_url=token_server.url)
    return {**feed, **extra}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_FEEDS_OPENSKY_CLIENT_SECRET", SECRET)


def states_requests(feed_server: FeedServer) -> list[tuple[str, str | None]]:
    return [(s.path, s.headers.get("Authorization")) for s in feed_server.requests if s.path.startswith("/api/")]


def last_poll(config: Path) -> tuple[str | None, int | None]:
    with sqlite3.connect(config.parent / "ingest.db") as conn:
        error, status = conn.execute("SELECT error, http_status FROM feed_polls ORDER BY id DESC LIMIT 1").fetchone()
    return error, status


def assert_no_secrets(config: Path, caplog: pytest.LogCaptureFixture, out: str, err: str, tokens: int = 3) -> None:
    secrets = [SECRET, *(token_value(n) for n in range(1, tokens + 1))]
    db = (config.parent / "ingest.db").read_bytes()
    for text in secrets:
        assert text not in caplog.text
        assert text not in out and text not in err
        assert text.encode() not in db


def poll(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["poll", "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_anonymous_poll_stores_converted_units(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply("/api/states/all", WATCHED)
    config = write_config([opensky(feed_server, queries=["hex", "area"])])
    code, out, _ = poll(config, capsys)
    assert code == 0, out
    assert "opensky: ok, 2 requests, 6 aircraft, 1 watched, 1 in area, 1 new, 0 malformed, HTTP 200" in out
    assert states_requests(feed_server) == [
        ("/api/states/all?icao24=71f00d&icao24=ae01ce&icao24=ae01d2&icao24=ae749d", None),
        ("/api/states/all?lamin=33&lomin=124&lamax=43.5&lomax=132", None),
    ]
    assert main(["sightings", "62-4125", "--config", str(config), "--format", "json"]) == 0
    (sighting,) = json.loads(capsys.readouterr().out)
    assert sighting["hex"] == "ae01d2" and sighting["feed"] == "opensky"
    assert sighting["time"] == "2026-11-20T22:59:57Z"  # time_position, 3 s before `time`
    assert (sighting["lat"], sighting["lon"]) == INSIDE
    assert (sighting["alt_baro_ft"], sighting["alt_geom_ft"], sighting["on_ground"]) == (31000, 31500, False)
    assert sighting["gs_kt"] == pytest.approx(200.0 * 3600 / 1852)
    assert (sighting["track_deg"], sighting["squawk"], sighting["callsign"]) == (45.5, "4651", "TORA23")
    assert sighting["source_type"] == "adsb_icao"


def test_one_token_per_poll_reused_for_every_request(
    feed_server: FeedServer,
    token_server: TokenServer,
    write_config: ConfigWriter,
    secret_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.reply("/api/states/all", WATCHED)
    config = write_config(
        [opensky(feed_server, token_server, queries=["hex", "area"], max_per_request=2)],
        daemon={"log_level": "DEBUG"},
    )
    caplog.set_level(logging.DEBUG)
    code, out, err = poll(config, capsys)
    assert code == 0, out + err
    assert "opensky: ok, 3 requests, 9 aircraft" in out
    assert token_server.forms == [{"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}]
    assert token_server.content_types == ["application/x-www-form-urlencoded"]
    bearer = f"Bearer {token_value(1)}"
    assert states_requests(feed_server) == [
        ("/api/states/all?icao24=71f00d&icao24=ae01ce", bearer),
        ("/api/states/all?icao24=ae01d2&icao24=ae749d", bearer),
        ("/api/states/all?lamin=33&lomin=124&lamax=43.5&lomax=132", bearer),
    ]
    sent = {name.lower() for s in feed_server.requests for name in s.headers}
    assert not {n for n in sent if n.startswith("x-ingest")}  # nothing of ours but the Authorization header
    assert "3990 API credits left" in caplog.text
    assert_no_secrets(config, caplog, out, err)


def test_a_401_gets_a_new_token_and_one_retry(
    feed_server: FeedServer,
    token_server: TokenServer,
    write_config: ConfigWriter,
    secret_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expired = Reply(status=401, body=b'{"error": "token expired"}')
    feed_server.reply("/api/states/all", expired, WATCHED)
    config = write_config([opensky(feed_server, token_server, queries=["area"])])
    code, out, err = poll(config, capsys)
    assert code == 0, out + err
    assert "opensky: ok, 1 request, 3 aircraft, 1 watched, 1 in area, 1 new" in out
    assert [auth for _, auth in states_requests(feed_server)] == [
        f"Bearer {token_value(1)}",
        f"Bearer {token_value(2)}",
    ]
    assert len(token_server.forms) == 2

    # A second 401 with the new token fails the poll: access refused, the feed is parked.
    feed_server.reply("/api/states/all", expired)
    code, out, err = poll(config, capsys)
    assert code == 1
    assert "opensky: FAILED" in out and "HTTP 401" in out
    assert len(token_server.forms) == 4  # a new poll, a new fetcher: one token, one more after the 401
    assert last_poll(config)[1] == 401
    assert_no_secrets(config, caplog, out, err, tokens=4)


def test_token_refreshed_after_expiry(
    feed_server: FeedServer, token_server: TokenServer, write_config: ConfigWriter, secret_env: None
) -> None:
    """The daemon keeps one Fetcher per feed: its TokenSource replaces the token 30 s before it expires."""
    token_server.script = [TokenReply(doc={"access_token": token_value(1), "expires_in": 300})]
    feed_server.reply("/api/states/all", WATCHED)
    settings = load(write_config([opensky(feed_server, token_server)]))
    clock = [5000.0]
    fetcher = Fetcher(settings.feeds[0], "ingest-test/1", clock=lambda: clock[0])
    url = f"{feed_server.url}/api/states/all?icao24=ae01d2"
    req = FeedRequest("opensky", url, url, bearer_token_url=token_server.url)
    try:
        for at in (0.0, 100.0, 269.9, 270.0, 270.0 + 1769.9, 270.0 + 1770.0):
            clock[0] = 5000.0 + at
            assert fetcher(req).status == 200
    finally:
        fetcher.close()
    assert [auth for _, auth in states_requests(feed_server)] == [
        *[f"Bearer {token_value(1)}"] * 3,
        *[f"Bearer {token_value(2)}"] * 2,
        f"Bearer {token_value(3)}",
    ]
    assert len(token_server.forms) == 3


def test_a_refused_client_fails_the_poll_with_a_clear_reason(
    feed_server: FeedServer,
    token_server: TokenServer,
    write_config: ConfigWriter,
    secret_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = {"error": "invalid_client", "error_description": f"Invalid client or Invalid client credentials {SECRET}"}
    token_server.script = [TokenReply(status=401, doc=refusal)]
    config = write_config([opensky(feed_server, token_server)])
    code, out, err = poll(config, capsys)
    assert code == 1
    reason = "OpenSky token request failed: HTTP 401 invalid_client — check client_id/client_secret"
    assert "opensky: FAILED, 1 request, 0 aircraft" in out and reason in out
    assert states_requests(feed_server) == []  # no states request without a token
    assert last_poll(config) == (reason, 401)
    assert any("opensky failed" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert_no_secrets(config, caplog, out, err)


def test_429_waits_as_long_as_opensky_says(
    feed_server: FeedServer,
    token_server: TokenServer,
    write_config: ConfigWriter,
    secret_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    exhausted = Reply(
        status=429,
        body=b"Too many requests",
        headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Retry-After-Seconds": "120"},
    )
    feed_server.reply("/api/states/all", exhausted)
    config = write_config([opensky(feed_server, token_server)])
    code, out, err = poll(config, capsys)
    assert code == 1
    assert "opensky: FAILED" in out
    assert "HTTP 429 Too Many Requests, X-Rate-Limit-Retry-After-Seconds 120 s" in out
    error, status = last_poll(config)
    assert status == 429 and error is not None and "120 s" in error
    messages = [r.getMessage() for r in caplog.records]
    assert any("feed opensky failed" in m and "next try" not in m for m in messages)  # a one-shot run
    assert any("only 0 API credits left" in m for m in messages)
    assert len(token_server.forms) == 1  # a 429 is no reason for a new token
    assert_no_secrets(config, caplog, out, err)
