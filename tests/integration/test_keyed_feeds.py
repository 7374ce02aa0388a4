"""`ingest poll` over loopback for the keyed readsb-family feeds (adsbx, airplanes-live) and for readsb-v2's
area and mil queries: the requests and headers that reach the server, gzip answers, a 403 that fails the
poll (and parks the feed), and an API key that never shows in the output or the log."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.app import build_app
from ingest.cli import main
from ingest.config import load
from ingest.errors import ConfigError
from ingest.feeds.policy import FORBIDDEN_PARK_S
from ingest.feeds.readsb import ReadsbFamilyFeed
from ingest.feeds.transport import Fetcher
from ingest.geo import Area, circle_cover
from ingest.pipeline import FeedJob
from tests.conftest import INSIDE, ConfigWriter, aircraft, envelope
from tests.integration.conftest import FeedServer, Reply, Seen

pytestmark = pytest.mark.integration

KEY = "live-KEY-5ec12e7-do-not-log"
HEXES = "71f00d,ae01ce,ae01d2,ae749d"
REGS = "170478,230921,62-4125,62-4134"
KOREA = Area("Korean Peninsula", 33.0, 124.0, 43.5, 132.0)


def header(seen: Seen, name: str) -> str | None:
    return next((v for k, v in seen.headers.items() if k.lower() == name.lower()), None)


def no_key_anywhere(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, config: Path) -> None:
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    assert KEY not in caplog.text
    assert all(KEY not in str(record.args) for record in caplog.records)
    with sqlite3.connect(config.parent / "ingest.db") as conn:
        rows = conn.execute("SELECT * FROM feed_polls").fetchall()
    assert rows and KEY not in repr(rows)


def poll(config: Path) -> int:
    return main(["poll", "--config", str(config)])


# -- adsbx ---------------------------------------------------------------------------------------------


def test_adsbx_gateway_sends_its_key_header_and_reads_gzip(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = gzip.compress(envelope([aircraft("ae01d2"), aircraft("71c011", 37.5, 127.0)]))
    feed_server.reply("/hex/", Reply(body=body, headers={"Content-Encoding": "gzip"}))
    monkeypatch.setenv("INGEST_FEEDS_ADSBX_API_KEY", KEY)
    config = write_config(
        [{"name": "adsbx", "kind": "adsbx", "auth": "x-api-key", "base_url": feed_server.url, "interval_s": 1}]
    )
    assert poll(config) == 0
    assert "adsbx: ok, 2 requests, 2 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out
    assert feed_server.paths() == [f"/hex/{HEXES}", f"/registration/{REGS}"]
    for seen in feed_server.requests:
        assert header(seen, "x-api-key") == KEY
        assert "gzip" in (header(seen, "Accept-Encoding") or "")
        assert header(seen, "X-RapidAPI-Key") is None
    no_key_anywhere(capsys, caplog, config)


def test_adsbx_gateway_single_hex_gets_a_trailing_comma_and_a_bare_answer_is_read(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The gateway's answer to one hex without the comma is a bare object (feeds.md §4.2): read it anyway.
    bare = aircraft("ae01d2") | {"now": 1795215600000}
    feed_server.reply("/hex/", Reply(body=json.dumps(bare).encode()))
    monkeypatch.setenv("INGEST_FEEDS_ADSBX_API_KEY", KEY)
    feed = {"name": "adsbx", "kind": "adsbx", "auth": "api-auth", "base_url": feed_server.url, "interval_s": 1}
    config = write_config([feed | {"max_per_request": 1}])
    assert poll(config) == 0
    assert feed_server.paths()[:4] == ["/hex/71f00d,", "/hex/ae01ce,", "/hex/ae01d2,", "/hex/ae749d,"]
    assert all(header(s, "api-auth") == KEY for s in feed_server.requests)
    # the same position four times (every hex gets the same answer) is one watched record
    assert "adsbx: ok, 8 requests, 4 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out


def test_adsbx_rapidapi_paths_and_headers(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.reply("/v2/mil/", Reply(body=envelope([aircraft("ae01ce", 38.0, 128.0)])))
    monkeypatch.setenv("INGEST_FEEDS_RAPID_API_KEY", KEY)
    feed = {"name": "rapid", "kind": "adsbx", "auth": "rapidapi", "base_url": feed_server.url, "interval_s": 1}
    config = write_config([feed | {"queries": ["hex", "mil"]}])
    assert poll(config) == 0
    assert "rapid: ok, 3 requests, 1 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out
    assert feed_server.paths() == [f"/v2/hex/{HEXES}/", f"/v2/registration/{REGS}/", "/v2/mil/"]
    for seen in feed_server.requests:
        assert header(seen, "X-RapidAPI-Key") == KEY
        assert header(seen, "X-RapidAPI-Host") == "adsbexchange-com1.p.rapidapi.com"
    no_key_anywhere(capsys, caplog, config)


# -- airplanes.live ------------------------------------------------------------------------------------


def airplanes_live(server: FeedServer, **extra: Any) -> dict[str, Any]:
    return {"name": "apl", "kind": "airplanes-live", "base_url": server.url, "interval_s": 1, **extra}


def test_airplanes_live_sends_the_auth_header(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.reply("/?find_hex=", Reply(body=envelope([aircraft("ae01d2")])))
    monkeypatch.setenv("INGEST_FEEDS_APL_API_KEY", KEY)
    config = write_config([airplanes_live(feed_server)])
    assert poll(config) == 0
    assert "apl: ok, 2 requests, 1 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out
    assert feed_server.paths() == [f"/?find_hex={HEXES}&jv2", f"/?find_reg={REGS}&jv2"]
    assert all(header(s, "auth") == KEY for s in feed_server.requests)
    no_key_anywhere(capsys, caplog, config)


FORBIDDEN = Reply(
    status=403,
    body=b'{"msg": "Please contact us at contact@airplanes.live. Your email MUST include a link to your project"}',
)


def test_airplanes_live_403_fails_the_poll_without_showing_the_key(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.reply("/", FORBIDDEN)
    monkeypatch.setenv("INGEST_FEEDS_APL_API_KEY", KEY)
    config = write_config([airplanes_live(feed_server)], daemon={"log_level": "DEBUG"})  # every line
    assert poll(config) == 1
    out, err = capsys.readouterr()
    assert "apl: FAILED, 1 request" in out and "HTTP 403" in out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "apl" in r.getMessage()]
    assert len(warnings) == 1 and "access refused" in warnings[0]
    assert KEY not in out + err
    no_key_anywhere(capsys, caplog, config)
    with sqlite3.connect(config.parent / "ingest.db") as conn:
        error, status = conn.execute("SELECT error, http_status FROM feed_polls").fetchone()
    assert status == 403 and "403" in error and KEY not in error


def test_airplanes_live_403_parks_the_feed_for_an_hour(
    feed_server: FeedServer, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.reply("/", FORBIDDEN)
    monkeypatch.setenv("INGEST_FEEDS_APL_API_KEY", KEY)
    app = build_app(load(write_config([airplanes_live(feed_server)])))
    [feed] = app.feeds
    assert isinstance(feed, ReadsbFamilyFeed)
    assert "access must be requested from airplanes.live" in feed.access_hint
    now = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    fetcher = Fetcher(feed.settings, "ingest-test/1")
    try:
        job = FeedJob(feed, fetcher, app.selector, lambda: now, lambda _: False)
        outcome = job.run()
        assert outcome is not None and outcome.failure is not None
        assert job.pacing.next_allowed_at is not None
        assert job.pacing.next_allowed_at - now >= timedelta(seconds=FORBIDDEN_PARK_S)
        assert job.run() is None  # parked: nothing is asked
        assert len(feed_server.requests) == 1
    finally:
        fetcher.close()


def test_a_keyed_feed_without_a_key_is_refused_at_start(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([airplanes_live(feed_server)])
    # FeedSettingError (a ValueError naming the key) until build_feeds maps it to a ConfigError
    with pytest.raises((ValueError, ConfigError)) as err:
        build_app(load(config))
    assert "feeds[0].api_key" in str(err.value) and "INGEST_FEEDS_APL_API_KEY" in str(err.value)
    assert feed_server.requests == []


# -- readsb-v2: hex, area and mil ----------------------------------------------------------------------


def test_readsb_v2_area_and_mil_with_include_military(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    mil = envelope(
        [
            aircraft("ae01d2"),  # watched
            aircraft("ae5555", 37.2, 127.1, flight="RCH123  ", dbFlags=1, t="C17"),  # military, not watched, inside
            aircraft("ae6666", 30.0, 140.0, flight="RCH456  ", dbFlags=1),  # military, outside the box
        ]
    )
    civil = envelope([aircraft("71c011", 37.5, 127.0, flight="KAL123  "), aircraft("ae7777", *INSIDE, dbFlags=1)])
    feed_server.reply("/v2/mil", Reply(body=mil))
    feed_server.reply("/v2/lat/", Reply(body=civil))
    feed = {"name": "lol", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 1}
    config = write_config([feed | {"queries": ["hex", "area", "mil"]}], watchlist={"include_military": True})

    assert poll(config) == 0
    circles = circle_cover(KOREA)
    assert feed_server.paths() == [
        f"/v2/hex/{HEXES}",
        f"/v2/reg/{REGS}",
        *(f"/v2/lat/{lat:.4f}/lon/{lon:.4f}/dist/{nm}" for lat, lon, nm in circles),
        "/v2/mil",
    ]
    assert f"lol: ok, {2 + len(circles) + 1} requests" in capsys.readouterr().out

    # What the adapter parses from each answer (storing the unwatched ones is the Selector's business).
    app = build_app(load(config))
    [adapter] = app.feeds
    assert isinstance(adapter, ReadsbFamilyFeed)
    fetcher = Fetcher(adapter.settings, "ingest-test/1")
    try:
        parsed = {}
        for request in adapter.requests():
            body = fetcher(request).body
            parsed[request.url.removeprefix(feed_server.url)] = sorted(
                o.hex_icao for o in adapter.parse(body, datetime.now(UTC), request.safe_url).observations
            )
    finally:
        fetcher.close()
    assert parsed[f"/v2/hex/{HEXES}"] == []  # the default empty answer
    assert parsed["/v2/mil"] == ["ae01d2", "ae5555", "ae6666"]  # watched, and every dbFlags & 1 record
    for lat, lon, nm in circles:
        assert parsed[f"/v2/lat/{lat:.4f}/lon/{lon:.4f}/dist/{nm}"] == ["ae7777"]  # military; 71c011 is not


def test_readsb_v2_mil_without_include_military_keeps_the_watchlist(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    mil = envelope([aircraft("ae01d2"), aircraft("ae5555", 37.2, 127.1, dbFlags=1)])
    feed_server.reply("/v2/mil", Reply(body=mil))
    feed = {"name": "lol", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 1}
    config = write_config([feed | {"queries": ["mil"]}])
    assert poll(config) == 0
    assert feed_server.paths() == ["/v2/mil"]
    assert "lol: ok, 1 request, 2 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out
