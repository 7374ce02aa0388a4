"""The readsb family's query modes and keyed adapters: the requests each mode builds (readsb-v2, adsbx over
RapidAPI and the gateway, airplanes.live REST), their headers, the prefilter of area/mil answers, and that
an API key never shows in a URL, a safe_url or a repr."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.config import FEED_KEYS, FeedSettings
from ingest.feeds.adsbx import AdsbxFeed
from ingest.feeds.airplaneslive import AirplanesLiveFeed
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.readsb import FeedSettingError, ReadsbFamilyFeed, ReadsbV2Feed, SecretHeaders, parse_readsb
from ingest.geo import Area, circle_cover
from ingest.watchlist import load_watchlist
from tests.conftest import SMALL_WATCHLIST, aircraft, envelope

KEY = "sk-TEST-0123456789abcdef"
KOREA = Area("Korean Peninsula", 33.0, 124.0, 43.5, 132.0)
CIRCLES = circle_cover(KOREA)
HEXES = ["71f00d", "ae01ce", "ae01d2", "ae749d"]
REGS = ["170478", "230921", "62-4125", "62-4134"]
RECEIVED = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def feed_settings(**values: Any) -> FeedSettings:
    base = {k.name: k.default for k in FEED_KEYS} | {"name": "test", "kind": "readsb-v2", "index": 3}
    return FeedSettings(**(base | values))


@pytest.fixture(scope="module")
def context() -> FeedContext:
    return FeedContext(load_watchlist(SMALL_WATCHLIST), KOREA)


@pytest.fixture(scope="module")
def military() -> FeedContext:
    return FeedContext(load_watchlist(SMALL_WATCHLIST), KOREA, include_military=True)


def paths(feed: ReadsbFamilyFeed, base: str) -> list[str]:
    urls = [r.url for r in feed.requests()]
    assert all(u.startswith(base) for u in urls)
    return [u.removeprefix(base) for u in urls]


ALL = ("hex", "area", "mil")


# -- readsb-v2 -----------------------------------------------------------------------------------------


def test_readsb_v2_hex_is_unchanged(context: FeedContext) -> None:
    feed = ReadsbV2Feed(feed_settings(base_url="https://api.adsb.lol/"), context)
    assert paths(feed, "https://api.adsb.lol") == ["/v2/hex/" + ",".join(HEXES), "/v2/reg/" + ",".join(REGS)]
    assert [r.safe_url for r in feed.requests()] == [
        "https://api.adsb.lol/v2/hex/<4 items>",
        "https://api.adsb.lol/v2/reg/<4 items>",
    ]
    assert feed.min_request_spacing_s == 1.0


def test_readsb_v2_every_mode(context: FeedContext) -> None:
    feed = ReadsbV2Feed(feed_settings(base_url="https://api.adsb.lol", queries=ALL, max_per_request=3), context)
    circles = [f"/v2/lat/{lat:.4f}/lon/{lon:.4f}/dist/{nm}" for lat, lon, nm in CIRCLES]
    assert paths(feed, "https://api.adsb.lol") == [
        "/v2/hex/71f00d,ae01ce,ae01d2",
        "/v2/hex/ae749d",
        "/v2/reg/170478,230921,62-4125",
        "/v2/reg/62-4134",
        *circles,
        "/v2/mil",
    ]
    assert len(feed.requests()) == 2 + 2 + len(CIRCLES) + 1  # what the rate check counts
    assert circles == ["/v2/lat/35.5294/lon/128.0000/dist/250", "/v2/lat/40.7765/lon/128.0000/dist/242"]
    assert all(r.headers == {} for r in feed.requests())


def test_readsb_v2_area_alone_and_host_routes(context: FeedContext) -> None:
    area = ReadsbV2Feed(feed_settings(base_url="https://api.adsb.lol", queries=("area",)), context)
    assert len(area.requests()) == len(CIRCLES)
    fi = ReadsbV2Feed(feed_settings(base_url="https://opendata.adsb.fi/api", queries=ALL), context)
    assert paths(fi, "https://opendata.adsb.fi/api")[1].startswith("/v2/registration/")
    assert paths(fi, "https://opendata.adsb.fi/api")[2].startswith("/v2/lat/")
    classic = ReadsbV2Feed(feed_settings(base_url="https://api.airplanes.live", queries=("area",)), context)
    lat, lon, nm = CIRCLES[0]
    assert paths(classic, "https://api.airplanes.live")[0] == f"/v2/point/{lat:.4f}/{lon:.4f}/{nm}"
    assert "airplanes.live" in classic.access_hint
    assert ReadsbV2Feed(feed_settings(base_url="http://127.0.0.1:8080"), context).access_hint == ""


# -- the prefilter ---------------------------------------------------------------------------------------

MIXED = envelope(
    [
        aircraft("ae01d2"),  # watched
        aircraft("ae5555", dbFlags=1, flight="RCH123  "),  # military, not watched
        aircraft("71c011", 37.5, 127.0, flight="KAL123  "),  # neither
    ]
)


def kept(feed: ReadsbFamilyFeed, request: FeedRequest) -> list[str]:
    result = feed.parse(MIXED, RECEIVED, request.safe_url)
    assert result.aircraft == 3
    return sorted(o.hex_icao for o in result.observations)


def test_area_and_mil_answers_keep_military_aircraft_when_asked(context: FeedContext, military: FeedContext) -> None:
    for ctx, expect in ((context, ["ae01d2"]), (military, ["ae01d2", "ae5555"])):
        feed = ReadsbV2Feed(feed_settings(base_url="https://api.adsb.lol", queries=ALL), ctx)
        requests = feed.requests()
        assert kept(feed, requests[0]) == ["ae01d2"]  # hex answers: the watchlist only
        assert kept(feed, requests[1]) == ["ae01d2"]  # registration answers too
        for broad in requests[2:]:  # circles and /v2/mil
            assert kept(feed, broad) == expect


def test_parse_readsb_keep_military_flag() -> None:
    def parsed(keep: bool) -> list[str]:
        result = parse_readsb(
            MIXED, feed="f", received_at=RECEIVED, source="s", wanted=lambda *_: False, keep_military=keep
        )
        return [o.hex_icao for o in result.observations]

    assert parsed(False) == []
    assert parsed(True) == ["ae5555"]
    [obs] = parse_readsb(MIXED, feed="f", received_at=RECEIVED, source="s", wanted=None).observations[1:2]
    assert obs.military is True


def test_a_bare_aircraft_object_is_a_list_of_one() -> None:
    body = json.dumps(aircraft("ae01d2") | {"now": int(RECEIVED.timestamp() * 1000)}).encode()
    result = parse_readsb(body, feed="f", received_at=RECEIVED, source="s")
    assert [o.hex_icao for o in result.observations] == ["ae01d2"] and result.aircraft == 1
    assert result.feed_now == RECEIVED


# -- adsbx ---------------------------------------------------------------------------------------------


def adsbx(context: FeedContext, auth: str, **values: Any) -> AdsbxFeed:
    return AdsbxFeed(
        feed_settings(**({"kind": "adsbx", "auth": auth, "api_key": KEY, "queries": ALL} | values)), context
    )


def test_adsbx_rapidapi(context: FeedContext) -> None:
    feed = adsbx(context, "rapidapi")
    base = "https://adsbexchange-com1.p.rapidapi.com"
    lat, lon, nm = CIRCLES[0]
    assert paths(feed, base) == [
        "/v2/hex/" + ",".join(HEXES) + "/",
        "/v2/registration/" + ",".join(REGS) + "/",
        f"/v2/lat/{lat:.4f}/lon/{lon:.4f}/dist/{nm}/",
        f"/v2/lat/{CIRCLES[1][0]:.4f}/lon/{CIRCLES[1][1]:.4f}/dist/{CIRCLES[1][2]}/",
        "/v2/mil/",
    ]
    assert feed.requests()[0].safe_url == f"{base}/v2/hex/<4 items>/"
    for request in feed.requests():
        assert request.headers == {"X-RapidAPI-Key": KEY, "X-RapidAPI-Host": "adsbexchange-com1.p.rapidapi.com"}
    one = adsbx(context, "rapidapi", max_per_request=1, queries=("hex",))
    assert paths(one, base)[0] == "/v2/hex/71f00d/"


@pytest.mark.parametrize("auth", ["x-api-key", "api-auth"])
def test_adsbx_gateway(context: FeedContext, auth: str) -> None:
    feed = adsbx(context, auth)
    base = "https://gateway.adsbexchange.com/api/aircraft/v2"
    lat, lon, nm = CIRCLES[0]
    got = paths(feed, base)
    assert got[:3] == [
        "/hex/" + ",".join(HEXES),
        "/registration/" + ",".join(REGS),
        f"/lat/{lat:.4f}/lon/{lon:.4f}/dist/{nm}",
    ]
    assert got[-1] == "/mil"
    for request in feed.requests():
        assert request.headers == {auth: KEY, "Accept-Encoding": "gzip"}
    # A single hex gets a trailing comma so that the gateway answers with a collection.
    one = adsbx(context, auth, max_per_request=1, queries=("hex",))
    assert paths(one, base)[:4] == [f"/hex/{h}," for h in HEXES]
    assert one.requests()[0].safe_url == f"{base}/hex/<1 items>"
    assert feed.min_request_spacing_s == 0.0
    assert auth in feed.access_hint


def test_adsbx_base_url_override(context: FeedContext) -> None:
    feed = adsbx(context, "x-api-key", base_url="http://127.0.0.1:9999/", queries=("mil",))
    assert [r.url for r in feed.requests()] == ["http://127.0.0.1:9999/mil"]


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        (
            {"auth": "rapidapi", "api_key": ""},
            "api_key",
            ["feeds[3].api_key", "INGEST_FEEDS_MY_ADSBX_API_KEY", "api_key_file"],
        ),
        ({"auth": "rapidapi", "api_key": "  "}, "api_key", ["INGEST_FEEDS_MY_ADSBX_API_KEY"]),
        ({"auth": "", "api_key": KEY}, "auth", ["feeds[3].auth", "rapidapi, x-api-key, api-auth"]),
        ({"auth": "bearer", "api_key": KEY}, "auth", ["'bearer'"]),
        ({"auth": "x-api-key", "api_key": KEY, "base_url": "gateway.adsbexchange.com"}, "base_url", ["http(s)"]),
    ],
    ids=["no key", "blank key", "no auth", "unknown auth", "bad base_url"],
)
def test_adsbx_settings_errors(context: FeedContext, values: dict[str, Any], key: str, words: list[str]) -> None:
    with pytest.raises(FeedSettingError) as err:
        AdsbxFeed(feed_settings(name="my.adsbx", kind="adsbx", **values), context)
    assert isinstance(err.value, ValueError) and err.value.key == key
    for word in words:
        assert word in str(err.value)
    assert KEY not in str(err.value)


# -- airplanes.live ------------------------------------------------------------------------------------


def test_airplanes_live_rest(context: FeedContext) -> None:
    feed = AirplanesLiveFeed(feed_settings(kind="airplanes-live", api_key=KEY, queries=ALL), context)
    base = "https://rest.api.airplanes.live"
    lat, lon, nm = CIRCLES[0]
    assert paths(feed, base) == [
        "/?find_hex=" + ",".join(HEXES) + "&jv2",
        "/?find_reg=" + ",".join(REGS) + "&jv2",
        f"/?circle={lat:.4f},{lon:.4f},{nm}&jv2",
        f"/?circle={CIRCLES[1][0]:.4f},{CIRCLES[1][1]:.4f},{CIRCLES[1][2]}&jv2",
        "/?all&filter_mil&jv2",  # presence-only flags, no `=`
    ]
    assert [r.safe_url for r in feed.requests()][:2] == [
        f"{base}/?find_hex=<4 items>&jv2",
        f"{base}/?find_reg=<4 items>&jv2",
    ]
    assert all(r.headers == {"auth": KEY} for r in feed.requests())
    assert feed.min_request_spacing_s == 1.0  # rest.api.airplanes.live: 1 request/s
    assert "access must be requested from airplanes.live" in feed.access_hint


def test_airplanes_live_needs_a_key(context: FeedContext) -> None:
    with pytest.raises(FeedSettingError, match=r"feeds\[3\]\.api_key: airplanes-live needs an API key") as err:
        AirplanesLiveFeed(feed_settings(kind="airplanes-live"), context)
    assert "INGEST_FEEDS_TEST_API_KEY" in str(err.value)


# -- secrets -------------------------------------------------------------------------------------------


def keyed_feeds(context: FeedContext) -> list[ReadsbFamilyFeed]:
    return [
        adsbx(context, "rapidapi"),
        adsbx(context, "x-api-key"),
        adsbx(context, "api-auth", max_per_request=1),
        AirplanesLiveFeed(feed_settings(kind="airplanes-live", api_key=KEY, queries=ALL), context),
    ]


def test_the_key_is_only_in_headers(context: FeedContext) -> None:
    for feed in keyed_feeds(context):
        assert KEY not in repr(feed) and KEY not in str(feed) and KEY not in repr(feed.settings)
        for request in feed.requests():
            for text in (request.url, request.safe_url, repr(request), str(request), repr(request.headers)):
                assert KEY not in text
            assert KEY in request.headers.values()
            assert "***" in repr(request.headers)  # masked, and FeedRequest does not show its headers at all
            for hex_icao in HEXES:
                assert hex_icao not in request.safe_url  # counts, not lists


def test_secret_headers_mask_only_secrets() -> None:
    headers = SecretHeaders({"X-RapidAPI-Key": KEY, "X-RapidAPI-Host": "h", "Accept-Encoding": "gzip"})
    assert repr(headers) == "{'X-RapidAPI-Key': '***', 'X-RapidAPI-Host': 'h', 'Accept-Encoding': 'gzip'}"
    assert f"{headers}" == repr(headers)
    assert dict(headers)["X-RapidAPI-Key"] == KEY
