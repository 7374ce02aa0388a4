"""SbsFeed against a real TCP server on 127.0.0.1 (socketserver in a thread).

The server plays one script per connection: bytes to send, pauses, `DOWN` (close the listening socket, so
reconnection attempts are refused until a new server binds the same port) and `HOLD` (keep the connection
open until the test ends). Reconnect delays are cut to 50-200 ms through the constructor.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.app import build_app
from ingest.config import FeedSettings, load
from ingest.errors import ConfigError, FeedUnavailable
from ingest.feeds import StreamFeed, build_feeds
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.sbs_stream import SbsFeed
from ingest.feeds.transport import Response
from ingest.geo import Area
from ingest.models import Observation, ParseResult, Rejected
from ingest.pipeline import poll_feed
from ingest.store import SqliteStore
from ingest.tracker import Tracker
from ingest.watchlist import WatchEntry, Watchlist
from tests.conftest import ConfigWriter

pytestmark = pytest.mark.integration

LOGGER = "ingest.feeds.sbs"
DOWN = "down"
HOLD = "hold"
Step = bytes | float | str


def line(kind: int, hex_: str, *, shift: timedelta = timedelta(0), **fields: str) -> bytes:
    """A readsb MSG line stamped with the current UTC time (plus `shift`), CRLF-terminated."""
    now = datetime.now(UTC) + shift
    stamp = [now.strftime("%Y/%m/%d"), now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d}"]
    names = ["callsign", "alt", "gs", "track", "lat", "lon", "vrate", "squawk", "alert", "emerg", "spi", "ground"]
    values = [fields.get(name, "") for name in names]
    return (",".join(["MSG", str(kind), "1", "1", hex_, "1", *stamp, *stamp, *values]) + "\r\n").encode()


class ScriptServer:
    """A TCP server on 127.0.0.1 whose n-th connection plays scripts[n]."""

    def __init__(self, scripts: list[list[Step]], port: int = 0) -> None:
        self.scripts = scripts
        self.connections = 0
        self.release = threading.Event()
        self.done = threading.Event()  # the last script has run to its end (or to HOLD)
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                index = outer.connections
                outer.connections += 1
                script = outer.scripts[index] if index < len(outer.scripts) else []
                for step in script:
                    if isinstance(step, bytes):
                        self.request.sendall(step)
                    elif isinstance(step, float):
                        time.sleep(step)
                    elif step == DOWN:
                        outer.go_down()
                    elif step == HOLD:
                        outer.done.set()
                        outer.release.wait(10)
                outer.done.set()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self._down = False

    def go_down(self) -> None:
        """Stop accepting and close the listening socket (callable from a handler thread)."""
        if not self._down:
            self._down = True
            self.server.shutdown()
            self.server.server_close()

    def close(self) -> None:
        self.release.set()
        self.go_down()
        self.thread.join(2)


@pytest.fixture
def servers() -> Iterator[list[ScriptServer]]:
    started: list[ScriptServer] = []
    yield started
    for server in started:
        server.close()


def settings(port: int, **overrides: Any) -> FeedSettings:
    values: dict[str, Any] = dict(
        name="receiver", kind="sbs", base_url="", source="", interval_s=1.0, enabled=True,
        connect_timeout_s=1.0, read_timeout_s=10.0, max_body_mb=20.0, max_per_request=1000, max_age_s=0.0,
        queries=(), auth="", api_key="", api_key_file="", client_id="", client_secret="", client_secret_file="",
        token_url="", host="127.0.0.1", port=port, timezone="UTC",
    )  # fmt: skip
    values.update(overrides)
    return FeedSettings(**values)


WATCHED = ("ae01d2", "71f00d", "ae749d")


def context() -> FeedContext:
    entries = [WatchEntry(None, (h,), "USAF", "Boeing RC-135W", "R135", "", (), "") for h in WATCHED]
    return FeedContext(Watchlist(entries), Area("korea", 33.0, 124.0, 39.0, 132.0))


def make_feed(port: int, **overrides: Any) -> SbsFeed:
    return SbsFeed(settings(port, **overrides), context(), backoff_initial_s=0.05, backoff_max_s=0.2)


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Taker:
    """Calls take() like the daemon would, keeping everything it returned."""

    def __init__(self, feed: SbsFeed) -> None:
        self.feed = feed
        self.observations: list[Observation] = []
        self.rejected: list[Rejected] = []
        self.failures: list[FeedUnavailable] = []

    def take(self) -> ParseResult | None:
        try:
            result = self.feed.take(datetime.now(UTC))
        except FeedUnavailable as exc:
            self.failures.append(exc)
            return None
        self.observations += result.observations
        self.rejected += result.rejected
        return result

    def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        def check() -> bool:
            self.take()
            return condition()

        wait_for(check, timeout_s)


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING and "retrying in" in r.getMessage()
    ]


def test_stream_split_lines_garbage_outage_and_reconnect(
    servers: list[ScriptServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    split = line(3, "71F00D", alt="25000", lat="37.5", lon="126.9", ground="0")
    first: list[Step] = [
        line(1, "AE01D2", callsign="TORA23  "),
        line(4, "AE01D2", gs="412.3", track="45.5"),
        line(6, "AE01D2", squawk="4651"),
        b"\r\n",  # heartbeat
        line(3, "AE01D2", alt="31000", lat="37.0", lon="124.8", ground="0"),
        line(3, "4CA215", alt="31000", lat="37.1", lon="124.9", ground="0"),  # heard, not watched
        split[:40],
        0.3,  # the rest of the line comes in a later recv()
        split[40:],
        b"GARBAGE FROM A CONFUSED DEVICE\r\n",
        line(3, "AE01D2", lat="99.0", lon="124.8"),
        b"NOT SBS EITHER\n",
        line(3, "AE01D2", alt="31100", lat="37.01", lon="124.81", ground="0"),
        0.1,
        DOWN,  # the connection closes and nothing listens for a while
    ]
    server = ScriptServer([first])
    servers.append(server)
    feed = make_feed(server.port)
    taker = Taker(feed)
    feed.start()
    try:
        taker.until(lambda: len(taker.observations) == 3 and len(taker.rejected) == 3)
        wait_for(lambda: server.done.is_set() and not feed.connected)

        ae01d2 = [o for o in taker.observations if o.hex_icao == "ae01d2"]
        assert [(o.lat_deg, o.alt_baro_ft) for o in ae01d2] == [(37.0, 31000), (37.01, 31100)]
        assert all((o.callsign, o.squawk, o.gs_kt, o.track_deg) == ("TORA23", "4651", 412.3, 45.5) for o in ae01d2)
        (whole,) = [o for o in taker.observations if o.hex_icao == "71f00d"]  # parsed once, whole
        assert (whole.lat_deg, whole.lon_deg, whole.alt_baro_ft) == (37.5, 126.9, 25000)
        assert all(o.source_type == "other" and o.feed == "receiver" and o.age_s < 5 for o in taker.observations)
        assert sorted(r.field for r in taker.rejected) == ["lat", "message_type", "message_type"]
        assert (feed.lines, feed.rejected) == (11, 3)  # the heartbeat counts as a line
        garbage_logs = [r for r in caplog.records if "malformed SBS line" in r.getMessage()]
        assert len(garbage_logs) == 2  # once per kind: message_type, lat

        # Down for a whole interval: take() says so, with the reason.
        taker.take()
        time.sleep(0.4)  # several refused attempts at 50-200 ms
        with pytest.raises(FeedUnavailable, match="refused"):
            feed.take(datetime.now(UTC))

        # The receiver comes back on the same port.
        back = ScriptServer([[line(3, "AE749D", alt="28000", lat="36.5", lon="125.5", ground="0"), HOLD]], server.port)
        servers.append(back)
        taker.until(lambda: any(o.hex_icao == "ae749d" for o in taker.observations))
        assert feed.connected
        assert len(outage_warnings(caplog)) == 1  # one outage: closed, then refused several times
        assert "closed the connection" in outage_warnings(caplog)[0]
        infos = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
        assert len(infos) == 2 and "connected to" in infos[0] and "reconnected to" in infos[1]
        assert taker.take() is not None  # connected during the window
    finally:
        t0 = time.monotonic()
        feed.stop()
        stop_s = time.monotonic() - t0
    assert stop_s < 1.0
    assert not feed.connected


def test_unreachable_receiver_one_warning_and_fast_stop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    feed = make_feed(port)
    feed.start()
    try:
        time.sleep(0.5)
        with pytest.raises(FeedUnavailable) as info:
            feed.take(datetime.now(UTC))
        assert "cannot connect" in info.value.reason and info.value.feed == "receiver"
        assert len(outage_warnings(caplog)) == 1
        attempts = [r for r in caplog.records if r.name == LOGGER and "still down" in r.getMessage()]
        assert len(attempts) >= 2
    finally:
        t0 = time.monotonic()
        feed.stop()
    assert time.monotonic() - t0 < 1.0


def test_stop_during_a_long_backoff_is_fast(servers: list[ScriptServer]) -> None:
    server = ScriptServer([[line(8, "AE01D2"), DOWN]])
    servers.append(server)
    feed = SbsFeed(settings(server.port), context(), backoff_initial_s=30.0, backoff_max_s=60.0)
    feed.start()
    wait_for(lambda: server.done.is_set() and not feed.connected)
    t0 = time.monotonic()
    feed.stop()
    assert time.monotonic() - t0 < 1.0


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        make_feed(30003, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="host"):
        make_feed(30003, host="")


@pytest.mark.parametrize(("zone", "skewed"), [("Asia/Seoul", False), ("UTC", True)])
def test_receiver_local_time_over_the_wire(
    zone: str, skewed: bool, servers: list[ScriptServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A dump1090-fa receiver in Korea writes local time: read as Asia/Seoul it is now; read as UTC it is 9 h
    ahead, so the receive time is used instead and the warning hints at the setting."""
    kst = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul"))
    stamp = f"{kst:%Y/%m/%d},{kst:%H:%M:%S}.000"
    raw = f"MSG,3,1,1,AE01D2,1,{stamp},{stamp},,31000,,,37.0,124.8,,,,,,0\r\n".encode()
    server = ScriptServer([[raw, HOLD]])
    servers.append(server)
    feed = make_feed(server.port, timezone=zone)
    taker = Taker(feed)
    feed.start()
    try:
        taker.until(lambda: len(taker.observations) == 1)
    finally:
        feed.stop()
    age_s = (datetime.now(UTC) - taker.observations[0].position_at).total_seconds()
    assert abs(age_s) < 5
    warnings = [r.getMessage() for r in caplog.records if "receiver clock is" in r.getMessage()]
    assert len(warnings) == int(skewed)
    assert all("s off ours; using receive time (+9.0 h: is timezone = 'UTC' right?" in w for w in warnings)


@pytest.mark.slow
def test_a_receiver_clock_stepped_back_an_hour_keeps_positions_stored(
    servers: list[ScriptServer], caplog: pytest.LogCaptureFixture, write_config: ConfigWriter
) -> None:
    """The Assembler merges by message time: after the step, the known aircraft's positions were an hour
    older than those stored (so not stored), and a newly heard one lost its callsign and altitude because
    its state was forgotten as an hour silent. Now the receive time is used, and logged once."""
    back = -timedelta(hours=1)
    script: list[Step] = [
        line(1, "AE01D2", callsign="TORA23  "),
        line(3, "AE01D2", alt="31000", lat="37.0", lon="124.8", ground="0"),
        1.1,  # the store keeps one sighting per aircraft and second
        line(1, "71F00D", shift=back, callsign="SNOOP01 "),  # heard for the first time, after the step
        line(3, "AE01D2", shift=back, alt="31100", lat="37.01", lon="124.81", ground="0"),
        line(5, "71F00D", shift=back, alt="25000"),
        line(4, "AE01D2", shift=back, gs="412.3", track="45.5"),
        line(3, "71F00D", shift=back, lat="37.5", lon="126.9", ground="0"),
        1.1,
        line(3, "AE01D2", shift=back, alt="31200", lat="37.02", lon="124.82", ground="0"),
        line(3, "71F00D", shift=back, alt="25100", lat="37.51", lon="126.91", ground="0"),
        HOLD,
    ]
    server = ScriptServer([script])
    servers.append(server)
    path = write_config([{"name": "receiver", "kind": "sbs", "host": "127.0.0.1", "port": server.port}])
    app = build_app(load(path, {}, {}))
    (feed,) = app.feeds
    assert isinstance(feed, SbsFeed)
    store = SqliteStore(path.parent / "ingest.db")
    tracker = Tracker(app.settings, store)
    stored = 0

    def fetch(request: FeedRequest) -> Response:
        raise AssertionError("a stream feed makes no requests")

    feed.start()
    try:
        deadline = time.monotonic() + 10
        while stored < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
            now = datetime.now(UTC)
            outcome = poll_feed(feed, fetch, app.selector, clock=lambda at=now: at, sleep=lambda _: False)
            stored += tracker.save_poll(store, outcome, now)
    finally:
        feed.stop()
        store.close()
    store = SqliteStore(path.parent / "ingest.db")
    try:
        ae01d2 = store.sightings(["ae01d2"])
        k71f00d = store.sightings(["71f00d"])
    finally:
        store.close()
    assert [(r["lat"], r["alt_baro_ft"], r["callsign"]) for r in ae01d2] == [
        (37.0, 31000, "TORA23"),
        (37.01, 31100, "TORA23"),
        (37.02, 31200, "TORA23"),
    ]
    assert [(r["lat"], r["alt_baro_ft"], r["callsign"]) for r in k71f00d] == [
        (37.5, 25000, "SNOOP01"),
        (37.51, 25100, "SNOOP01"),
    ]
    recent = datetime.now(UTC) - timedelta(seconds=30)
    assert all(datetime.fromisoformat(r["time"]) >= recent for r in ae01d2 + k71f00d)  # by our clock
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and "receiver clock" in r.getMessage()]
    assert len(warnings) == 1 and "s off ours; using receive time (-1.0 h" in warnings[0]


def test_built_from_config_as_a_stream_feed(write_config: ConfigWriter) -> None:
    path = write_config([{"name": "home", "kind": "sbs", "host": "127.0.0.1", "port": 30003, "timezone": "Asia/Seoul"}])
    loaded = load(path, {}, {})
    (feed,) = build_feeds(loaded, context().watchlist, context().area)
    assert isinstance(feed, SbsFeed) and isinstance(feed, StreamFeed)
    assert (feed.name, feed.url) == ("home", "tcp://127.0.0.1:30003")
