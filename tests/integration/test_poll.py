"""`ingest poll` over real HTTP on loopback into a real SQLite file: what is stored, and bad answers.

Each bad answer (invalid JSON, truncation, NaN, 429/500, timeouts, a 50 MB body) must fail that feed
politely, keep the good records and leave what was stored before untouched.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from tests.conftest import INSIDE, OUTSIDE, T0, ConfigWriter, aircraft, envelope
from tests.integration.conftest import FeedServer, Reply

pytestmark = pytest.mark.integration


def feed(server: FeedServer, name: str = "loopback", **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "readsb-v2", "base_url": server.url, "interval_s": 1, **extra}


def sightings_json(config: Path, tail: str, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["sightings", tail, "--config", str(config), "--format", "json", *extra]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def count_sightings(config: Path) -> int:
    db = config.parent / "ingest.db"
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM sightings").fetchone()[0])


def test_poll_stores_watched_aircraft_inside_the_area(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    body = envelope(
        [
            aircraft("ae01d2", seen_pos=2.5),  # watched, inside
            aircraft("ae749d", *OUTSIDE, flight="PEDRO11 "),  # watched, outside the box
            aircraft("71c011", 37.5, 127.0, flight="KAL123  ", r="HL8001", t="B77W"),  # not watched
            aircraft("~1a2b3c", 37.4, 126.9, type="tisb_other"),  # non-ICAO, not watched
        ]
    )
    feed_server.reply("/v2/hex/", Reply(body=body))
    config = write_config([feed(feed_server)])

    assert main(["poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "loopback: ok, 2 requests, 4 aircraft, 2 watched, 1 in area, 1 new" in out

    rows = sightings_json(config, "62-4125", capsys)
    assert len(rows) == 1
    row = rows[0]
    assert row["hex"] == "ae01d2"
    assert row["registration"] == "62-4125"
    assert row["type"] == "R135"
    assert row["callsign"] == "TORA23"
    assert row["time"] == "2026-11-20T22:59:57Z"  # now - seen_pos (2.5 s), never `now`
    assert (row["lat"], row["lon"]) == INSIDE
    assert row["alt_baro_ft"] == 31000 and row["on_ground"] is False
    assert row["source_type"] == "adsb_icao" and row["feed"] == "loopback"
    # EPSG:5179 has its origin (1,000 km E, 2,000 km N) at 38 N 127.5 E: 124.8 E is ~240 km west of it,
    # 37 N ~111 km south (a little less off the central meridian).
    assert row["x_m"] == pytest.approx(760_000, abs=3_000) and row["y_m"] == pytest.approx(1_891_000, abs=5_000)
    assert set(row) >= {"alt_geom_ft", "gs_kt", "track_deg", "squawk"}
    assert sightings_json(config, "170478", capsys) == []  # known, but never inside the area


def test_requests_batch_the_watchlist_and_send_a_user_agent(
    feed_server: FeedServer, write_config: ConfigWriter
) -> None:
    config = write_config([feed(feed_server, max_per_request=3)])
    assert main(["poll", "--config", str(config)]) == 0
    paths = feed_server.paths()
    assert paths == [
        "/v2/hex/71f00d,ae01ce,ae01d2",
        "/v2/hex/ae749d",
        "/v2/reg/170478,230921,62-4125",
        "/v2/reg/62-4134",
    ]
    agent = feed_server.requests[0].headers["User-Agent"]
    assert agent.startswith("ingest/") and "python-requests" not in agent


def test_rehexed_airframe_matches_by_registration_and_is_remembered(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply("/v2/reg/", Reply(body=envelope([aircraft("ae7777", r="62-4125", t="R135")])))
    config = write_config([feed(feed_server)])
    assert main(["poll", "--config", str(config)]) == 0
    rows = sightings_json(config, "62-4125", capsys)
    assert [r["hex"] for r in rows] == ["ae7777"]
    assert sightings_json(config, "ae7777", capsys)[0]["registration"] == "62-4125"


def test_the_same_position_from_two_polls_or_two_feeds_is_stored_once(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    body = envelope([aircraft("ae01d2"), aircraft("71f00d", 37.2, 129.5, flight="ROKN621 ")])
    feed_server.reply("/v2/", Reply(body=body))  # hex and reg answers carry the same aircraft
    config = write_config([feed(feed_server, "first"), feed(feed_server, "second")])
    assert main(["poll", "--config", str(config)]) == 0
    assert main(["poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "first: ok, 2 requests, 4 aircraft, 2 watched, 2 in area, 2 new" in out
    assert "second: ok, 2 requests, 4 aircraft, 2 watched, 2 in area, 0 new" in out
    assert count_sightings(config) == 2
    assert [r["feed"] for r in sightings_json(config, "62-4125", capsys)] == ["first"]


def test_a_moving_aircraft_adds_one_sighting_per_position_time(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([feed(feed_server)])
    for minute in range(3):
        now = T0 + timedelta(minutes=minute)
        feed_server.reply("/v2/hex/", Reply(body=envelope([aircraft(lat=36.0 + minute / 10)], now=now)))
        assert main(["poll", "--config", str(config)]) == 0
    rows = sightings_json(config, "62-4125", capsys)
    assert [r["lat"] for r in rows] == [36.0, 36.1, 36.2]
    assert [r["time"] for r in rows] == ["2026-11-20T22:59:58Z", "2026-11-20T23:00:58Z", "2026-11-20T23:01:58Z"]
    later = sightings_json(
        config, "62-4125", capsys, "--since", "2026-11-20T23:00:00Z", "--until", "2026-11-20T23:01:00Z"
    )
    assert [r["lat"] for r in later] == [36.1]
    assert [r["lat"] for r in sightings_json(config, "62-4125", capsys, "--limit", "2")] == [36.1, 36.2]


GOOD = aircraft("ae01d2")

BAD_ANSWERS = {
    "not json": Reply(body=b"<html>Bad gateway</html>"),
    "truncated": Reply(body=envelope([GOOD]), cut_at=40),
    "nan literal": Reply(body=b'{"ac":[{"hex":"ae01d2","lat":NaN,"lon":124.8,"seen_pos":1}],"now":1790000000000}'),
    "http 500": Reply(status=500, body=b"oops"),
    "http 429 with retry-after": Reply(status=429, body=b"{}", headers={"Retry-After": "30"}),
    "http 503 with retry-after": Reply(status=503, body=b"{}", headers={"Retry-After": "120"}),
    "read timeout": Reply(body=envelope([GOOD]), delay_s=1.5),
    "50 MB body": Reply(body=b'{"ac":[', stream_bytes=50 * 1024 * 1024),
}


@pytest.mark.parametrize("case", BAD_ANSWERS, ids=list(BAD_ANSWERS))
def test_a_bad_answer_fails_the_feed_without_losing_stored_data(
    case: str, feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([feed(feed_server, read_timeout_s=0.5, max_body_mb=1)])
    feed_server.reply("/v2/hex/", Reply(body=envelope([GOOD])))
    assert main(["poll", "--config", str(config)]) == 0
    assert count_sightings(config) == 1

    feed_server.reply("/v2/hex/", BAD_ANSWERS[case])
    capsys.readouterr()
    assert main(["poll", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "loopback: FAILED" in out
    assert count_sightings(config) == 1
    with sqlite3.connect(config.parent / "ingest.db") as conn:
        error, status = conn.execute("SELECT error, http_status FROM feed_polls ORDER BY id DESC LIMIT 1").fetchone()
    assert error
    if case.startswith("http"):
        assert status == int(case.split()[1])
    if "retry-after" in case:
        assert "Retry-After" in error
    if case == "50 MB body":
        assert "cap" in error


def test_malformed_records_are_skipped_and_counted(
    feed_server: FeedServer,
    write_config: ConfigWriter,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = [
        aircraft("ae01d2"),
        aircraft("71f00d", lat=95.0),
        aircraft("71f00d", lat="37.5"),  # type: ignore[arg-type]
        aircraft("zzzzzz"),
        aircraft("ae749d", lat=None, lon=None),  # no position: not an error, nothing to store
    ]
    feed_server.reply("/v2/hex/", Reply(body=envelope(records)))
    config = write_config([feed(feed_server)])
    assert main(["poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "5 aircraft, 1 watched, 1 in area, 1 new, 3 malformed" in out
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 2  # one line per faulty field, however often it recurs: lat (twice), hex
    with sqlite3.connect(config.parent / "ingest.db") as conn:
        assert conn.execute("SELECT rejected FROM feed_polls WHERE requests = 2").fetchone()[0] == 3


def test_empty_answers_are_a_successful_poll(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([feed(feed_server)])
    assert main(["poll", "--config", str(config)]) == 0
    assert "loopback: ok, 2 requests, 0 aircraft, 0 watched, 0 in area, 0 new" in capsys.readouterr().out


def test_aircraft_json_from_a_file_and_from_a_url(
    feed_server: FeedServer, write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "aircraft.json"
    local.write_bytes(envelope([aircraft("ae01d2", flight="TORA23  ")], jv2=False))
    feed_server.reply("/data/aircraft.json", Reply(body=envelope([aircraft("71f00d", 37.3, 129.9)], jv2=False)))
    config = write_config(
        [
            {"name": "file", "kind": "aircraft-json", "source": str(local), "interval_s": 1},
            {
                "name": "url",
                "kind": "aircraft-json",
                "source": f"{feed_server.url}/data/aircraft.json",
                "interval_s": 1,
            },
        ]
    )
    assert main(["poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "file: ok, 1 request, 1 aircraft, 1 watched, 1 in area, 1 new" in out
    assert "url: ok, 1 request, 1 aircraft, 1 watched, 1 in area, 1 new" in out
    assert sightings_json(config, "230921", capsys)[0]["feed"] == "url"


def test_include_military_stores_unlisted_military_aircraft(
    feed_server: FeedServer, write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "aircraft.json"
    c17 = aircraft("ae0677", 37.09, 127.03, alt=9000, flight="RCH271  ", r="00-0172", t="C17", dbFlags=1)
    airliner = aircraft("71c011", 37.5, 127.0, flight="KAL123  ", r="HL8001", t="B77W")
    local.write_bytes(envelope([c17, airliner], jv2=False))
    receiver = {"name": "home", "kind": "aircraft-json", "source": str(local), "interval_s": 1}
    plain = write_config([receiver])
    assert main(["poll", "--config", str(plain)]) == 0
    assert "2 aircraft, 0 watched" in capsys.readouterr().out

    config = write_config([receiver], watchlist={"include_military": True})
    assert main(["poll", "--config", str(config)]) == 0
    assert "2 aircraft, 1 watched, 1 in area, 1 new" in capsys.readouterr().out
    rows = sightings_json(config, "00-0172", capsys)
    assert [(r["hex"], r["registration"], r["type"], r["callsign"]) for r in rows] == [
        ("ae0677", "00-0172", "C17", "RCH271")
    ]
    assert sightings_json(config, "AE0677", capsys) == rows


def test_two_feeds_merge_per_aircraft_and_the_freshest_position_wins(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    # "fresh" saw ae01d2 1 s ago; "lagging" reports an older position (6 s) of it, and the same position
    # of 71f00d as "fresh" does.
    p8 = aircraft("71f00d", 37.2, 129.5, flight="ROKN621 ", seen_pos=2.0)
    feed_server.reply("/fresh/v2/hex/", Reply(body=envelope([aircraft("ae01d2", lat=37.1, seen_pos=1.0), p8])))
    feed_server.reply("/lagging/v2/hex/", Reply(body=envelope([aircraft("ae01d2", lat=36.9, seen_pos=6.0), p8])))
    config = write_config(
        [feed(feed_server, "fresh", base_url=f"{feed_server.url}/fresh"),
         feed(feed_server, "lagging", base_url=f"{feed_server.url}/lagging")]
    )  # fmt: skip
    assert main(["poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "fresh: ok, 2 requests, 2 aircraft, 2 watched, 2 in area, 2 new" in out
    assert "lagging: ok, 2 requests, 2 aircraft, 2 watched, 2 in area, 0 new" in out
    assert [(r["lat"], r["feed"]) for r in sightings_json(config, "62-4125", capsys)] == [(37.1, "fresh")]
    assert [r["feed"] for r in sightings_json(config, "230921", capsys)] == ["fresh"]
