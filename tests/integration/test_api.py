"""The HTTP API on a real socket: uvicorn in a thread on a free 127.0.0.1 port, over the demo replay in a
SQLite file and in a PostgreSQL database (each test that reads it runs on both)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from ingest.api import ApiError, ApiServer, _encode_cursor, serve
from ingest.cli import main
from ingest.config import load
from ingest.models import FeedHealth
from ingest.store import Store, Tracking, open_configured
from tests.conftest import REPO, SMALL_WATCHLIST, ConfigWriter, aircraft, envelope, render_config
from tests.integration.conftest import FeedServer, Reply, free_port
from tests.pg import fresh_database

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA23 = "ae01d2-20261120T225558Z"
ROKN621 = "71f00d-20261120T234056Z"
FEEDS: list[dict[str, Any]] = [
    {"name": "lol", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9"},
    {"name": "off", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "enabled": False},
]
INJECTIONS = ["' OR 1=1 --", '"; DROP TABLE sightings; --', "%", "_"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database holding the synthetic TORA23 and ROKN621 sorties, two feeds configured, none polled."""
    folder = tmp_path_factory.mktemp("api")
    config = folder / "ingest.toml"
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgresql" else ""
        sections: dict[str, dict[str, Any]] = {
            "database": {"path": str(folder / "ingest.db"), "url": url},
            "watchlist": {"path": str(SMALL_WATCHLIST)},
            "replay": {"on_start": []},
        }
        config.write_text(render_config(sections, FEEDS))
        assert main(["replay", "--config", str(config), str(DEMO)]) == 0
        yield config


@pytest.fixture(scope="module")
def api(demo_config: Path) -> Iterator[ApiServer]:
    with ApiServer(load(demo_config, environ={}), port=0) as server:
        yield server


def get(server: ApiServer, path: str, **params: Any) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=10)


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def database(config: Path) -> Store:
    """The config's database, through the store (either backend)."""
    return open_configured(load(config, environ={}).database)


def count(config: Path, table: str) -> int:
    store = database(config)
    try:
        return int(store._rows(f"SELECT count(*) FROM {table}")[0][0])
    finally:
        store.close()


# -- the endpoints -------------------------------------------------------------------------------------


def test_sightings_are_the_cli_json(api: ApiServer, demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = cli_json(
        capsys, "sightings", "62-4125", "--config", str(demo_config), "--format", "json", "--limit", "0"
    )
    assert len(expected) == 170
    for tail in ("62-4125", "ae01d2", "AE01D2", " 62-4125 "):
        r = get(api, f"/api/sightings/{quote(tail)}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {"items": expected, "next": None}


def test_sightings_since_until(api: ApiServer) -> None:
    body = get(api, "/api/sightings/62-4125", since="2026-11-21T00:00:00Z", until="2026-11-21T09:10:00+09:00").json()
    times = [r["time"] for r in body["items"]]
    assert len(times) == 10 and times[0] >= "2026-11-21T00:00:00Z" and times[-1] <= "2026-11-21T00:10:00Z"
    assert get(api, "/api/sightings/62-4125", since="24h").json() == {"items": [], "next": None}
    # watched, never seen: an empty answer, as the CLI's
    assert get(api, "/api/sightings/62-4134").json() == {"items": [], "next": None}


def test_a_large_answer_is_paged(api: ApiServer) -> None:
    whole = get(api, "/api/sightings/62-4125", limit=10000).json()["items"]
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        body = get(api, "/api/sightings/62-4125", limit=100, cursor=cursor).json()
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [100, 70]
    assert [row for page in pages for row in page] == whole
    # a page that ends exactly at the last row says so
    assert get(api, "/api/sightings/62-4125", limit=170).json()["next"] is None


def test_paging_keeps_the_filters(api: ApiServer) -> None:
    since, until = "2026-11-21T00:00:00Z", "2026-11-21T00:10:00Z"
    first = get(api, "/api/sightings/62-4125", since=since, until=until, limit=6).json()
    second = get(api, "/api/sightings/62-4125", since=since, until=until, limit=6, cursor=first["next"]).json()
    assert len(first["items"]) == 6 and len(second["items"]) == 4 and second["next"] is None
    assert (
        first["items"] + second["items"] == get(api, "/api/sightings/62-4125", since=since, until=until).json()["items"]
    )


def test_sorties_are_the_cli_json(api: ApiServer, demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = cli_json(capsys, "sorties", "--config", str(demo_config), "--format", "json")
    assert [s["sortie_id"] for s in expected] == [TORA23, ROKN621]
    assert get(api, "/api/sorties").json() == {"items": expected, "next": None}
    only = cli_json(capsys, "sorties", "230921", "--config", str(demo_config), "--format", "json")
    assert get(api, "/api/sorties", tail="230921").json() == {"items": only, "next": None}
    assert get(api, "/api/sorties", tail="71F00D").json()["items"] == only
    assert get(api, "/api/sorties", open="true").json() == {"items": [], "next": None}
    assert get(api, "/api/sorties", open="false").json()["items"] == expected
    assert get(api, "/api/sorties", since="2026-11-20T23:00:00Z").json()["items"] == only
    assert get(api, "/api/sorties", tail="62-4134").json() == {"items": [], "next": None}  # watched, never flew


def test_sorties_are_paged(api: ApiServer) -> None:
    first = get(api, "/api/sorties", limit=1).json()
    assert [s["sortie_id"] for s in first["items"]] == [TORA23] and first["next"]
    second = get(api, "/api/sorties", limit=1, cursor=first["next"]).json()
    assert [s["sortie_id"] for s in second["items"]] == [ROKN621] and second["next"] is None


def test_one_sortie_and_its_track(api: ApiServer) -> None:
    listed = get(api, "/api/sorties").json()["items"][0]
    assert get(api, f"/api/sorties/{TORA23}").json() == listed
    assert get(api, f"/api/sorties/{TORA23.upper()}").json() == listed
    r = get(api, f"/api/sorties/{TORA23}/track.geojson")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    line = doc["features"][0]
    assert line["id"] == TORA23 and line["properties"]["sortie_id"] == TORA23
    assert line["geometry"]["type"] == "LineString" and len(line["geometry"]["coordinates"]) == 170
    sightings = get(api, "/api/sightings/62-4125").json()["items"]
    first = sightings[0]
    assert line["geometry"]["coordinates"][0] == [first["lon"], first["lat"], round(first["alt_baro_ft"] * 0.3048, 2)]
    assert [f["geometry"]["coordinates"][:2] for f in doc["features"][1:]] == [[s["lon"], s["lat"]] for s in sightings]


def test_feeds_are_the_cli_json(api: ApiServer, demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = cli_json(capsys, "feeds", "--config", str(demo_config), "--format", "json")
    assert [f["state"] for f in expected] == ["never polled", "disabled"]
    body = get(api, "/api/feeds").json()
    assert body["items"] == expected
    assert body["daemon"]["running"] is False and body["daemon"]["text"] == "no daemon has run on this database"


def test_openapi_document(api: ApiServer) -> None:
    doc = get(api, "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/api/sightings/{tail}", "/api/sorties", "/api/sorties/{sortie_id}",
        "/api/sorties/{sortie_id}/track.geojson", "/api/feeds", "/api/now", "/api/coastline.geojson", "/healthz",
        "/metrics", "/openapi.json", "/",
    }  # fmt: skip
    sighting = get(api, "/api/sightings/62-4125", limit=1).json()["items"][0]
    assert list(doc["components"]["schemas"]["Sighting"]["properties"]) == list(sighting)
    sortie = get(api, f"/api/sorties/{TORA23}").json()
    assert list(doc["components"]["schemas"]["Sortie"]["properties"]) == list(sortie)
    feed = get(api, "/api/feeds").json()["items"][0]
    assert list(doc["components"]["schemas"]["Feed"]["properties"]) == list(feed)


# -- bad input -----------------------------------------------------------------------------------------

BAD = [
    ("/api/sightings/62-4125", {"limit": "-1"}, "limit: '-1' is not a whole number from 1 to 10000"),
    ("/api/sightings/62-4125", {"limit": "abc"}, "limit: 'abc'"),
    ("/api/sightings/62-4125", {"limit": "0"}, "limit: '0'"),
    ("/api/sightings/62-4125", {"limit": "10001"}, "limit: '10001'"),
    ("/api/sightings/62-4125", {"limit": "1e3"}, "limit: '1e3'"),
    ("/api/sightings/62-4125", {"since": "yesterday"}, "since: 'yesterday' is neither ISO 8601 nor a duration"),
    ("/api/sightings/62-4125", {"until": "2026-13-01"}, "until: '2026-13-01'"),
    ("/api/sightings/62-4125", {"since": "99999999999999d"}, "since: '99999999999999d' is out of range"),
    ("/api/sightings/62-4125", {"since": "0001-01-01T00:00:00+01:00"}, "is out of range"),
    ("/api/sightings/62-4125", {"cursor": "not a cursor"}, "cursor: malformed"),
    ("/api/sightings/62-4125", {"cursor": "czE"}, "cursor: malformed"),
    ("/api/sightings/62-4125", {"cursor": _encode_cursor("o1", "1.5", TORA23)}, "cursor: malformed"),
    ("/api/sightings/62-4125", {"cursor": _encode_cursor("s1", "x", "ae01d2")}, "cursor: malformed"),
    ("/api/sightings/62-4125", {"sinse": "24h"}, "unknown parameter 'sinse'"),
    ("/api/sorties", {"open": "maybe"}, "open: 'maybe' is not true or false"),
    ("/api/sorties", {"limit": "-1"}, "limit: '-1'"),
    ("/api/sorties", {"cursor": _encode_cursor("s1", "1", "ae01d2")}, "cursor: malformed"),
    ("/api/sorties", {"cursor": _encode_cursor("o1", "nan", TORA23)}, "cursor: malformed"),
    ("/api/sorties", {"since": "soon"}, "since: 'soon'"),
    (f"/api/sorties/{TORA23}", {"limit": "1"}, "unknown parameter 'limit'"),
]


@pytest.mark.parametrize(("path", "params", "message"), BAD)
def test_bad_parameters_are_400(api: ApiServer, path: str, params: dict[str, str], message: str) -> None:
    r = get(api, path, **params)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_a_parameter_given_twice_is_400(api: ApiServer) -> None:
    r = requests.get(api.url + "/api/sightings/62-4125?limit=1&limit=2", timeout=10)
    assert r.status_code == 400 and r.json() == {"error": "limit: given 2 times; give it once"}


def test_unknown_tail_sortie_and_path_are_404(api: ApiServer) -> None:
    r = get(api, "/api/sightings/N12345")
    assert r.status_code == 404 and r.json() == {
        "error": "unknown tail 'N12345': no registration, hex or callsign of a watched aircraft"
    }
    assert get(api, "/api/sorties", tail="N12345").status_code == 404
    for path in (f"/api/sorties/{TORA23[:-1]}X", "/api/sorties/ae01d2-20991231T000000Z/track.geojson", "/nothing"):
        r = get(api, path)
        assert r.status_code == 404 and "error" in r.json()
    r = requests.post(api.url + "/api/sorties", timeout=10)
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_metacharacters_never_reach_sql(api: ApiServer, demo_config: Path, payload: str) -> None:
    sightings, sorties = count(demo_config, "sightings"), count(demo_config, "sorties")
    tail = quote(payload, safe="")
    answers = [
        get(api, f"/api/sightings/{tail}"),
        get(api, f"/api/sorties/{tail}"),
        get(api, f"/api/sorties/{tail}/track.geojson"),
        get(api, "/api/sorties", tail=payload),
        *(get(api, "/api/sightings/62-4125", **{name: payload}) for name in ("since", "until", "limit", "cursor")),
        *(get(api, "/api/sorties", **{name: payload}) for name in ("since", "open", "limit", "cursor")),
        # well-formed cursors that carry the text to the query: bound as a value, so only an order position
        get(api, "/api/sightings/62-4125", cursor=_encode_cursor("s1", "1795215358", payload)),
        get(api, "/api/sorties", cursor=_encode_cursor("o1", "1795215358.0", payload)),
    ]
    for r in answers:
        assert r.status_code in (200, 400, 404), (r.url, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        if r.status_code == 200:
            assert len(r.json()["items"]) <= 170
    assert count(demo_config, "sightings") == sightings == 344
    assert count(demo_config, "sorties") == sorties == 2


def test_reads_go_on_while_a_writer_holds_the_database(api: ApiServer, demo_config: Path) -> None:
    store = database(demo_config)
    try:
        with store.atomic():  # a writer in the middle of a transaction
            store._exec("DELETE FROM sightings")
            t0 = time.monotonic()
            r = get(api, "/api/sightings/62-4125", limit=5)
            assert r.status_code == 200 and len(r.json()["items"]) == 5  # the last committed state
            assert time.monotonic() - t0 < 2
            raise _RollBack
    except _RollBack:
        pass
    finally:
        store.close()
    assert count(demo_config, "sightings") == 344


class _RollBack(Exception):
    """Ends a transaction with a rollback."""


# -- /healthz --------------------------------------------------------------------------------------------


def health_server(config: Path, stale_after_s: float = 300) -> ApiServer:
    return ApiServer(load(config, environ={}), port=0, stale_after_s=stale_after_s)


def _save_health(config: Path, health: FeedHealth) -> None:
    store = database(config)
    try:
        with store.atomic():
            store._save_health(health)
    finally:
        store.close()


def test_healthz_503_until_a_feed_succeeds(api: ApiServer, demo_config: Path, write_config: ConfigWriter) -> None:
    r = get(api, "/healthz")
    assert r.status_code == 503
    assert r.json() == {
        "status": "unavailable", "reason": "no feed has succeeded yet", "stale_after_s": 300.0,
        "feeds": {"lol": "never polled"}, "last_success": None, "age_s": None,
        "daemon": {
            "running": False, "daemon": None, "started_at": None, "last_beat_at": None, "stopped_at": None,
            "beat_age_s": None, "text": "no daemon has run on this database",
        },
    }  # fmt: skip

    config = write_config(FEEDS)
    with health_server(config, stale_after_s=60) as server:
        now = datetime.now(UTC)
        _save_health(config, FeedHealth("lol", "degraded", now, 1, now, now + timedelta(seconds=30), "HTTP 503"))
        r = get(server, "/healthz")
        assert r.status_code == 503 and r.json()["reason"] == "no feed has succeeded yet"
        assert r.json()["feeds"] == {"lol": "never succeeded"}

        _save_health(config, FeedHealth("lol", "ok", now - timedelta(seconds=120), 0, None, None, None))
        r = get(server, "/healthz")
        assert r.status_code == 503 and r.json()["reason"] == "no feed has succeeded for 120 s (more than 60 s)"

        _save_health(config, FeedHealth("lol", "ok", datetime.now(UTC), 0, None, None, None))
        r = get(server, "/healthz")
        body = r.json()
        assert r.status_code == 200 and body["status"] == "ok" and "reason" not in body
        assert body["feeds"] == {"lol": "ok"} and 0 <= body["age_s"] < 5


def test_healthz_503_without_enabled_feeds(write_config: ConfigWriter) -> None:
    config = write_config([FEEDS[1]])
    _save_health(config, FeedHealth("off", "ok", datetime.now(UTC), 0, None, None, None))
    with health_server(config) as server:
        r = get(server, "/healthz")
        assert r.status_code == 503 and r.json()["reason"] == "no feed is enabled"


def test_healthz_200_after_a_real_poll(
    write_config: ConfigWriter, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply("/v2/", Reply(body=envelope([aircraft("ae01d2")], now=datetime.now(UTC))))
    config = write_config([{"name": "local", "kind": "readsb-v2", "base_url": feed_server.url}])
    with health_server(config) as server:
        assert get(server, "/healthz").status_code == 503
        assert main(["poll", "--config", str(config)]) == 0
        assert "local: ok" in capsys.readouterr().out
        r = get(server, "/healthz")
        assert r.status_code == 200 and r.json()["feeds"] == {"local": "ok"}
        feeds = get(server, "/api/feeds").json()["items"]
        assert feeds[0]["state"] == "ok" and feeds[0]["polls_1h"] == 1


# -- running it ----------------------------------------------------------------------------------------


def test_a_port_in_use_is_an_api_error(api: ApiServer, demo_config: Path) -> None:
    with pytest.raises(ApiError, match=f"cannot listen on 127.0.0.1:{api.port}"):
        ApiServer(load(demo_config, environ={}), port=api.port).start()


def test_serve_runs_until_stop_is_set(demo_config: Path) -> None:
    port = free_port()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(load(demo_config, environ={}), "127.0.0.1", port, stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/api/feeds", timeout=5).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and thread.is_alive(), errors
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not errors
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_a_tail_may_be_a_callsign_or_any_spelling_and_an_ambiguous_one_is_409(
    api: ApiServer, demo_config: Path
) -> None:
    by_reg = get(api, "/api/sightings/62-4125").json()["items"]
    for tail in ("TORA23", "tora23", "TORA*", "62 4125", "624125"):
        r = get(api, f"/api/sightings/{tail}")
        assert r.status_code == 200 and r.json()["items"] == by_reg, tail
    assert [s["registration"] for s in get(api, "/api/sorties", tail="ROKN621").json()["items"]] == ["230921"]
    r = get(api, "/api/sightings/TORA24")
    assert r.status_code == 404 and "did you mean TORA23" in r.json()["error"]
    # Another aircraft that flew as TORA23 makes the callsign ambiguous: 409 with the candidates.
    store = database(demo_config)
    try:
        other = replace(store.sorties()[0], sortie_id="ae01ce-20261122T230000Z", key="62-4134", hex_icao="ae01ce",
                        registration="62-4134", synthetic=False)  # fmt: skip
        store.save_tracking(Tracking(sorties=[other]))
        r = get(api, "/api/sightings/TORA23")
        assert r.status_code == 409 and sorted(r.json()["candidates"]) == ["62-4125", "62-4134"]
        assert "was flown by 2 aircraft" in r.json()["error"]
    finally:
        with store.atomic():
            store._exec("DELETE FROM sorties WHERE sortie_id = 'ae01ce-20261122T230000Z'")
        store.close()
