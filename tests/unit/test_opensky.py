"""`ingest.feeds.opensky` (parser, requests, credits, config checks) and the pure parts of its OAuth2
support in `ingest.feeds.transport` (TokenSource with an injected clock and a fake token endpoint).

The recorded samples are the two `opensky_*` files in tests/fixtures/samples/: an OpenSkyTrack README
answer (three airborne rows) and the opensky-api deserializer test rows (nulls, sensors, unknown position
sources, an extra trailing element) plus two rows printed by an old Python client.
"""

from __future__ import annotations

import ast
import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from ingest.app import build_app
from ingest.config import FEED_KEYS, FeedSettings, load
from ingest.errors import ConfigError, FeedFormatError, FeedUnavailable
from ingest.feeds import transport
from ingest.feeds.base import FeedContext
from ingest.feeds.opensky import (
    DEFAULT_BASE_URL,
    DEFAULT_TOKEN_URL,
    MIN_ROW_LEN,
    OpenSkyFeed,
    box_area_sq_deg,
    check_opensky,
    credit_cost,
    credit_problem,
    min_interval_s,
    parse_states,
)
from ingest.feeds.transport import Fetcher, Response, TokenSource, refresh_after_s
from ingest.geo import Area
from ingest.models import Observation, ParseResult
from ingest.watchlist import load_watchlist
from tests.conftest import SAMPLES, SMALL_WATCHLIST, ConfigWriter

FEED = "opensky"
SOURCE = "https://opensky-network.org/api/states/all?icao24=<4 items>"
RECEIVED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)  # far from every sample's `time`
KOREA = Area("Korean Peninsula", 33.0, 124.0, 43.5, 132.0)
T = 1_790_000_000  # 2026-09-21T14:13:20Z


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def parse(body: bytes | str | dict[str, Any]) -> ParseResult:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return parse_states(body, feed=FEED, received_at=RECEIVED, source=SOURCE)


def row(
    icao24: Any = "ae01d2",
    callsign: Any = "TORA23  ",
    time_position: Any = T - 2,
    last_contact: Any = T - 1,
    lon: Any = 124.8,
    lat: Any = 37.0,
    baro_m: Any = 9448.8,
    on_ground: Any = False,
    velocity: Any = 200.0,
    track: Any = 45.5,
    geo_m: Any = 9601.2,
    squawk: Any = "4651",
    source: Any = 0,
    extra: tuple[Any, ...] = (),
) -> list[Any]:
    """One state vector in OpenSky's index order (feeds.md §5.2)."""
    return [
        icao24, callsign, "United States", time_position, last_contact, lon, lat, baro_m, on_ground, velocity,
        track, -0.33, None, geo_m, squawk, False, source, *extra,
    ]  # fmt: skip


def states(*rows: list[Any], time: Any = T) -> dict[str, Any]:
    return {"time": time, "states": list(rows)}


def sample(prefix: str) -> Path:
    matches = sorted(SAMPLES.glob(f"{prefix}*"))
    assert len(matches) == 1, f"expected one sample named {prefix}*, found {matches}"
    return matches[0]


def misc_lines() -> list[str]:
    return [
        line
        for line in sample("opensky_state_rows__").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


# -- the samples ------------------------------------------------------------------------------------


def test_every_opensky_sample_is_used() -> None:
    names = {p.name for p in SAMPLES.glob("opensky_*")}
    assert names == {sample("opensky_states_all__").name, sample("opensky_state_rows__").name}


def test_opensky_track_readme_answer_exactly() -> None:
    result = parse(sample("opensky_states_all__").read_bytes())
    assert (result.aircraft, len(result.observations), result.without_position, result.rejected) == (3, 3, 0, ())
    assert result.feed_now == utc(1748457533)
    easyjet, speedbird, _ = result.observations
    assert easyjet == Observation(
        hex_icao="4400ec",
        non_icao=False,
        position_at=utc(1748457532),  # time_position, not the envelope time
        lat_deg=47.3525,
        lon_deg=6.6009,
        alt_baro_ft=21800,  # 6644.64 m
        on_ground=False,
        alt_geom_ft=22625,  # 6896.1 m
        gs_kt=198.28 * (3600 / 1852),  # 198.28 m/s = 385.43 kt
        track_deg=224.05,
        squawk="6740",
        callsign="EJU12AL",
        registration=None,
        type_icao=None,
        source_type="adsb_icao",
        military=False,
        messages=None,
        feed=FEED,
        age_s=1.0,
    )
    assert (speedbird.callsign, speedbird.alt_baro_ft, speedbird.alt_geom_ft) == ("BAW425", 38025, 38925)
    assert [o.hex_icao for o in result.observations] == ["4400ec", "407b8e", "3cf19d"]


def test_opensky_api_bare_row_in_an_envelope() -> None:
    bare = misc_lines()[0]
    result = parse(f'{{"time": 1507198219, "states": [{bare}]}}')
    (fedex,) = result.observations
    assert (fedex.hex_icao, fedex.callsign, fedex.squawk) == ("a086d8", "FDX1869", "6714")
    assert (fedex.lat_deg, fedex.lon_deg) == (37.2541, -121.8445)
    assert (fedex.alt_baro_ft, fedex.alt_geom_ft) == (21500, 22125)  # 6553.2 m, 6743.7 m
    assert fedex.gs_kt == pytest.approx(236.88 * 3600 / 1852)
    assert (fedex.position_at, fedex.age_s) == (utc(1507198218), 1.0)


def test_opensky_api_deserializer_rows_nulls_extras_and_sources() -> None:
    envelope = misc_lines()[1]
    result = parse(envelope)
    assert result.feed_now == utc(1002)
    # Six rows: one without a position (time_position, lat and lon null), five kept.
    assert (result.aircraft, len(result.observations), result.without_position, result.rejected) == (6, 5, 1, ())
    full, nulls, asterix, unknown, grounded = result.observations
    assert (full.position_at, full.age_s, full.callsign, full.source_type) == (utc(1001), 1.0, "ABCDEFG", "adsb_icao")
    assert (full.alt_baro_ft, full.alt_geom_ft, full.gs_kt, full.track_deg) == (10, 22125, 4.0 * 3600 / 1852, 5.0)
    # last_contact null, velocity/track/squawk/callsign null: kept, with Nones.
    assert (nulls.callsign, nulls.gs_kt, nulls.track_deg, nulls.squawk) == (None, None, None, None)
    assert nulls.position_at == utc(1001)
    assert asterix.source_type == "asterix"
    assert unknown.source_type == "unknown"  # position_source 8 is not one OpenSky documents
    # The last row has two extra trailing elements, and is on the ground: no barometric altitude.
    assert (grounded.on_ground, grounded.alt_baro_ft, grounded.alt_geom_ft) == (True, None, None)


def test_old_python_client_rows() -> None:
    """Rows printed as Python values by an old client (Manaya20/opensky-api README), turned into JSON."""
    rows = [ast.literal_eval(line.split("dict_values(", 1)[1].rsplit(")", 2)[0]) for line in misc_lines()[2:]]
    result = parse(states(*rows, time=1507203250))
    canada, uta = result.observations
    assert canada.callsign is None  # '' is no callsign
    assert (canada.position_at, canada.age_s) == (utc(1507203246), 4.0)
    assert (canada.alt_baro_ft, canada.alt_geom_ft, canada.squawk) == (36025, 36000, None)
    assert (uta.on_ground, uta.alt_baro_ft, uta.callsign, uta.squawk) == (True, None, "UTA716", "4325")
    assert uta.age_s == 1507203250 - 1507202967


# -- rows and envelopes ------------------------------------------------------------------------------


def test_unit_conversions_are_exact() -> None:
    (obs,) = parse(states(row(baro_m=1000.0, geo_m=0.3048 * 12345, velocity=100.0))).observations
    assert obs.alt_baro_ft == 3281  # 1000 / 0.3048 = 3280.84
    assert obs.alt_geom_ft == 12345
    assert obs.gs_kt == 100.0 * 3600 / 1852 == pytest.approx(194.3844492)
    # feeds.md's rounded factors agree to 6 digits
    assert math.isclose(1000.0 * 3.28084, 3280.84, rel_tol=1e-6)
    assert math.isclose(obs.gs_kt, 100.0 * 1.943844, rel_tol=1e-6)


def test_rows_with_extra_elements_are_read_by_index() -> None:
    extended = row(extra=(6,))  # `extended=1` category
    longer = row(icao24="71f00d", extra=(6, "future", [1, 2], {"x": 1}))
    result = parse(states(extended, longer))
    assert [o.hex_icao for o in result.observations] == ["ae01d2", "71f00d"]
    assert result.rejected == ()


def test_position_time_falls_back_to_last_contact_and_age_counts_from_time() -> None:
    (obs,) = parse(states(row(time_position=None, last_contact=T - 7))).observations
    assert (obs.position_at, obs.age_s) == (utc(T - 7), 7.0)
    (late,) = parse(states(row(time_position=T + 2))).observations  # a little after `time`: age 0
    assert (late.position_at, late.age_s) == (utc(T + 2), 0.0)


def test_nulls_and_empty_answers() -> None:
    assert parse({"time": T, "states": None}).aircraft == 0
    assert parse({"time": T, "states": []}).observations == ()
    result = parse({"time": None, "states": [row(time_position=RECEIVED.timestamp() - 3)]})
    assert result.feed_now == RECEIVED  # no `time`: the receive time
    assert result.observations[0].age_s == 3.0
    (obs,) = parse(states(row(callsign=None, squawk=None, baro_m=None, geo_m=None, velocity=None))).observations
    assert (obs.callsign, obs.squawk, obs.alt_baro_ft, obs.alt_geom_ft, obs.gs_kt) == (None, None, None, None, None)
    assert obs.on_ground is False
    nowhere = parse(states(row(lat=None, lon=None, time_position=None)))
    assert (nowhere.aircraft, nowhere.without_position, nowhere.observations) == (1, 1, ())


@pytest.mark.parametrize(
    ("callsign", "expected"),
    [("KAL123  ", "KAL123"), ("        ", None), ("", None), ("00000000", None), ("????????", None), ("rch9 ", "RCH9")],
)
def test_callsigns_are_stripped_and_junk_dropped(callsign: str, expected: str | None) -> None:
    assert parse(states(row(callsign=callsign))).observations[0].callsign == expected


def test_invalid_squawk_is_dropped_not_rejected() -> None:
    assert parse(states(row(squawk="8888"))).observations[0].squawk is None


BAD_ROWS: dict[str, tuple[Any, str]] = {
    "short row": (row()[: MIN_ROW_LEN - 1], "row"),
    "not an array": ({"icao24": "ae01d2"}, "row"),
    "hex not hex": (row(icao24="zzzzzz"), "icao24"),
    "hex a number": (row(icao24=123456), "icao24"),
    "lat out of range": (row(lat=91.0), "latitude"),
    "lon out of range": (row(lon=-180.5), "longitude"),
    "lat a string": (row(lat="37.5"), "latitude"),
    "lat without lon": (row(lon=None), "longitude"),
    "lat a bool": (row(lat=True), "latitude"),
    "number out of range": (row(baro_m="__HUGE__"), "baro_altitude"),
    "altitude absurd": (row(baro_m=99_999.0), "baro_altitude"),
    "geo altitude absurd": (row(geo_m=-5_000.0), "geo_altitude"),
    "negative velocity": (row(velocity=-1.0), "velocity"),
    "track over 360": (row(track=361.0), "true_track"),
    "on_ground a string": (row(on_ground="false"), "on_ground"),
    "callsign a number": (row(callsign=42), "callsign"),
    "squawk a number": (row(squawk=7700), "squawk"),
    "time_position a string": (row(time_position="1790000000"), "time_position"),
    "time_position in ms": (row(time_position=(T - 2) * 1000), "time_position"),
    "time_position far ahead": (row(time_position=T + 3600), "time_position"),
    "no time at all": (row(time_position=None, last_contact=None), "time_position"),
    "position_source a float": (row(source=0.5), "position_source"),
    "time_position 2**80": (row(time_position=2**80), "time_position"),
    "time_position negative": (row(time_position=-1), "time_position"),
    "time_position an array": (row(time_position=[T]), "time_position"),
    "last_contact huge": (row(time_position=None, last_contact=10**300), "last_contact"),
    "lat 2**80": (row(lat=2**80), "latitude"),
    "lon a 4300-digit integer": (row(lon=10**4299), "longitude"),
    "velocity an object": (row(velocity={"v": 1}), "velocity"),
    "squawk a list": (row(squawk=["7700"]), "squawk"),
    "row too short": (row()[:16], "row"),
    "row empty": ([], "row"),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_a_bad_row_is_rejected_with_its_field_and_the_rest_kept(case: str) -> None:
    bad, field = BAD_ROWS[case]
    body = json.dumps(states(row(icao24="71f00d"), bad, row(icao24="ae749d"))).replace('"__HUGE__"', "1e400")
    result = parse(body)
    assert [o.hex_icao for o in result.observations] == ["71f00d", "ae749d"]
    assert result.aircraft == 3
    (rejected,) = result.rejected
    assert rejected.field == field, rejected.reason
    assert len(rejected.raw) <= 200 and rejected.raw.startswith(("[", "{"))


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [5_000, 100_000])
@pytest.mark.parametrize("where", ["row", "element"])
def test_a_row_nested_deep_is_rejected_and_the_rest_kept(levels: int, where: str) -> None:
    """msgspec skips the rows recursively: one deep row raised RecursionError from the envelope decode."""
    bad = deep(levels) if where == "row" else json.dumps(row(icao24="ae01ce")).replace('"United States"', deep(levels))
    good = [json.dumps(row(icao24="71f00d")), json.dumps(row(icao24="ae749d"))]
    result = parse(f'{{"time": {T}, "states": [{good[0]}, {bad}, {good[1]}]}}')
    assert [o.hex_icao for o in result.observations] == ["71f00d", "ae749d"]
    assert result.aircraft == 3
    (rejected,) = result.rejected
    assert rejected.field == "row"
    assert rejected.reason == "state vector nested too deep to decode"
    assert result.feed_now == utc(T)


def test_a_deep_unknown_envelope_key_is_ignored() -> None:
    result = parse(f'{{"time": {T}, "extra": {deep(5_000)}, "states": [{json.dumps(row())}]}}')
    assert [o.hex_icao for o in result.observations] == ["ae01d2"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f'{{"time": {deep(5_000)}, "states": []}}', id="deep-time"),
        pytest.param(f'{{"extra": {deep(5_000)}}}', id="deep-without-states"),
        pytest.param(f'{{"extra": {deep(5_000)}, "states": [', id="deep-and-truncated"),
        pytest.param(deep(5_000), id="deep-array"),
    ],
)
def test_a_deep_unusable_envelope_is_a_format_error(body: str) -> None:
    with pytest.raises(FeedFormatError):
        parse(body)


@pytest.mark.parametrize("time", [10**30, 1e300, -1, 0, 1e11, -0.0])
def test_an_envelope_time_that_is_no_unix_time_gives_way_to_the_receive_time(time: float) -> None:
    result = parse(states(row(time_position=RECEIVED.timestamp() - 3), time=time))
    assert result.feed_now == RECEIVED
    assert [o.hex_icao for o in result.observations] == ["ae01d2"]


def test_a_rejected_raw_value_is_cut() -> None:
    result = parse(states(row(icao24="x" * 500)))
    assert len(result.rejected[0].raw) == 200


@pytest.mark.parametrize(
    "body",
    [b"<html>502</html>", b"[]", b'{"time": 1}', b'{"time": "x", "states": []}', b'{"states": {}}', b""],
    ids=["html", "array", "no states", "time a string", "states an object", "empty"],
)
def test_an_unusable_body_is_a_format_error(body: bytes) -> None:
    with pytest.raises(FeedFormatError) as err:
        parse(body)
    assert err.value.feed == FEED and err.value.url == SOURCE


# -- requests ------------------------------------------------------------------------------------------


def feed_settings(**values: Any) -> FeedSettings:
    base = {k.name: k.default for k in FEED_KEYS} | {"name": FEED, "kind": "opensky", "base_url": ""}
    return FeedSettings(**(base | values))


@pytest.fixture(scope="module")
def context() -> FeedContext:
    return FeedContext(load_watchlist(SMALL_WATCHLIST), KOREA)


def test_hex_and_area_requests(context: FeedContext) -> None:
    feed = OpenSkyFeed(feed_settings(queries=("hex", "area"), max_per_request=3), context)
    urls = [r.url for r in feed.requests()]
    base = f"{DEFAULT_BASE_URL}/states/all"
    assert urls == [
        f"{base}?icao24=71f00d&icao24=ae01ce&icao24=ae01d2",
        f"{base}?icao24=ae749d",
        f"{base}?lamin=33&lomin=124&lamax=43.5&lomax=132",
    ]
    assert [r.safe_url for r in feed.requests()] == [
        f"{base}?icao24=<3 items>",
        f"{base}?icao24=<1 items>",
        f"{base}?lamin=33&lomin=124&lamax=43.5&lomax=132",
    ]
    assert all(r.headers == {} and not r.bearer_token_url and r.feed == FEED for r in feed.requests())  # anonymous
    assert feed.credit_costs == (4, 4, 2)
    assert feed.min_request_spacing_s == 0.0


def test_authenticated_requests_ask_for_a_bearer_token(context: FeedContext) -> None:
    feed = OpenSkyFeed(feed_settings(client_id="me-api-client", client_secret="s3cr3t"), context)
    (req,) = feed.requests()
    assert req.bearer_token_url == DEFAULT_TOKEN_URL and req.headers == {}
    assert "s3cr3t" not in repr(feed.requests()) and "s3cr3t" not in repr(feed.settings)
    own = OpenSkyFeed(feed_settings(client_id="x", client_secret="y", token_url="http://127.0.0.1:1/t"), context)
    assert own.requests()[0].bearer_token_url == "http://127.0.0.1:1/t"


def test_base_url_setting_and_a_fractional_box(context: FeedContext) -> None:
    box = FeedContext(context.watchlist, Area("box", 37.56652, -0.5, 38.0, 0.25))
    feed = OpenSkyFeed(feed_settings(base_url="http://127.0.0.1:8080/api/", queries=("area",)), box)
    (req,) = feed.requests()
    assert req.url == "http://127.0.0.1:8080/api/states/all?lamin=37.56652&lomin=-0.5&lamax=38&lomax=0.25"


def test_large_watchlists_are_chunked_to_short_urls(context: FeedContext) -> None:
    from ingest.watchlist import parse_watchlist

    text = "$ICAO,$Registration\n" + "\n".join(f"{i:06x},R{i}" for i in range(1000))
    big = FeedContext(parse_watchlist(text), KOREA)
    feed = OpenSkyFeed(feed_settings(), big)  # max_per_request 1000
    reqs = feed.requests()
    assert len(reqs) > 1 and all(len(r.url) <= 4000 for r in reqs)
    asked = [h for r in reqs for k, h in parse_qsl(urlsplit(r.url).query) if k == "icao24"]
    assert asked == sorted(f"{i:06x}" for i in range(1000))
    assert len(OpenSkyFeed(feed_settings(max_per_request=100), big).requests()) == 10


# -- credits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("area", "credits"),
    [(0.0, 1), (25.0, 1), (25.01, 2), (100.0, 2), (100.5, 3), (400.0, 3), (400.01, 4), (64_800.0, 4), (None, 4)],
)
def test_credit_cost_by_box_area(area: float | None, credits: int) -> None:
    assert credit_cost(area) == credits


def test_korean_box_costs_two_credits() -> None:
    assert box_area_sq_deg(KOREA) == 84.0  # 10.5 x 8, feeds.md §5.4
    assert credit_cost(box_area_sq_deg(KOREA)) == 2
    assert box_area_sq_deg(Area("Swiss", 45.8389, 5.9962, 47.8229, 10.5226)) == pytest.approx(8.98, abs=0.01)


def test_daily_credit_budget() -> None:
    assert min_interval_s(2, authenticated=False) == 432.0  # 200 calls a day
    assert min_interval_s(2, authenticated=True) == 43.2
    assert min_interval_s(4 + 2, authenticated=True) == 129.6
    assert credit_problem(432.0, [2], authenticated=False) is None
    assert credit_problem(43.2, [2], authenticated=True) is None
    assert credit_problem(10.0, [], authenticated=False) is None  # nothing asked
    problem = credit_problem(10.0, [4, 2], authenticated=False)
    assert problem is not None
    assert "51840 a day" in problem and "400 a day" in problem and "at least 1296 s" in problem
    authenticated = credit_problem(43.0, [2], authenticated=True)
    assert authenticated is not None and "4000 a day" in authenticated and "at least 44 s" in authenticated


def test_the_budget_applies_to_opensky_org_only(context: FeedContext) -> None:
    hosted = OpenSkyFeed(feed_settings(queries=("area",), interval_s=60.0), context)
    assert hosted.credit_problem() is not None
    local = OpenSkyFeed(feed_settings(queries=("area",), interval_s=1.0, base_url="http://127.0.0.1:9/api"), context)
    assert local.credit_problem() is None


def opensky_config(write_config: ConfigWriter, **feed: Any) -> Path:
    return write_config([{"name": FEED, "kind": "opensky", "queries": ["area"], "interval_s": 600, **feed}])


@pytest.mark.parametrize(
    ("feed", "key", "words"),
    [
        ({"interval_s": 60}, "interval_s", "at least 432 s"),
        ({"interval_s": 30, "client_id": "me", "client_secret_file": "SECRET"}, "interval_s", "at least 44 s"),
        ({"queries": ["hex", "mil"]}, "queries", "hex and area"),
        ({"base_url": "https://opensky-network.org/api/states/all"}, "base_url", "before /states/all"),
        ({"base_url": "opensky-network.org/api"}, "base_url", "http(s) URL"),
        ({"token_url": "ftp://auth/token", "client_id": "me", "client_secret_file": "SECRET"}, "token_url", "http(s)"),
        ({"client_id": "me"}, "client_secret", "INGEST_FEEDS_OPENSKY_CLIENT_SECRET"),
        ({"client_secret_file": "SECRET"}, "client_id", "client_id is empty"),
    ],
)
def test_build_feeds_refuses_settings_that_cannot_work(
    write_config: ConfigWriter, tmp_path: Path, feed: dict[str, Any], key: str, words: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-value\n")
    if feed.get("client_secret_file") == "SECRET":
        feed = {**feed, "client_secret_file": str(secret)}
    settings = load(opensky_config(write_config, **feed), environ={})
    with pytest.raises(ConfigError) as err:
        build_app(settings)
    assert err.value.key == f"feeds[0].{key}"
    assert words in err.value.reason
    assert "s3cr3t-value" not in str(err.value)


def test_check_opensky_passes_good_settings_and_ignores_other_feeds(
    write_config: ConfigWriter, context: FeedContext
) -> None:
    settings = load(opensky_config(write_config), environ={})
    app = build_app(settings)
    assert [type(f).__name__ for f in app.feeds] == ["OpenSkyFeed"]
    check_opensky(settings, settings.feeds[0], object())  # not an OpenSkyFeed: nothing to check


# -- OAuth2 tokens (transport.TokenSource) ----------------------------------------------------------

SECRET = "s3cr3t-Value-9f2"


class FakeTokenEndpoint:
    """Answers token requests from a script; records each form."""

    def __init__(self, *answers: Response) -> None:
        self.answers = list(answers)
        self.forms: list[dict[str, str]] = []

    def __call__(self, url: str, form: Mapping[str, str]) -> Response:
        self.forms.append(dict(form))
        if self.answers:
            return self.answers.pop(0)
        return token_answer(f"tok-{len(self.forms)}")


def token_answer(token: str, expires_in: Any = 1800, status: int = 200, **headers: str) -> Response:
    doc: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "scope": "profile email"}
    if expires_in is not None:
        doc["expires_in"] = expires_in
    return Response(status, json.dumps(doc).encode(), {k.lower().replace("_", "-"): v for k, v in headers.items()})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_source(post: Callable[[str, Mapping[str, str]], Response], clock: Clock) -> TokenSource:
    return TokenSource(
        feed=FEED, token_url=DEFAULT_TOKEN_URL, client_id="me-api-client", client_secret=SECRET,
        post=post, clock=clock, label="OpenSky",
    )  # fmt: skip


def test_token_is_reused_until_30_s_before_it_expires() -> None:
    endpoint, clock = FakeTokenEndpoint(), Clock()
    tokens = token_source(endpoint, clock)
    assert tokens.bearer() == "tok-1"
    assert endpoint.forms == [
        {"grant_type": "client_credentials", "client_id": "me-api-client", "client_secret": SECRET}
    ]
    clock.now += 1769.9
    assert tokens.bearer() == "tok-1"
    clock.now += 0.1  # 1770 s = 1800 - 30
    assert tokens.bearer() == "tok-2"
    clock.now += 1769.9
    assert tokens.bearer() == "tok-2"
    assert tokens.fetches == 2


def test_token_lifetime_from_expires_in_or_the_default() -> None:
    assert refresh_after_s(1800) == 1770
    assert refresh_after_s(300) == 270
    assert refresh_after_s(40) == 20  # a short-lived token is replaced at half its life
    for expires_in, refresh_s in ((300, 270.0), (None, 1770.0), ("600", 570.0), (0, 1770.0), ("soon", 1770.0)):
        endpoint, clock = FakeTokenEndpoint(token_answer("short", expires_in=expires_in)), Clock()
        tokens = token_source(endpoint, clock)
        tokens.bearer()
        clock.now += refresh_s - 0.01
        assert tokens.bearer() == "short", expires_in
        clock.now += 0.01
        assert tokens.bearer() == "tok-2", expires_in


def test_invalidate_after_a_401_fetches_a_new_token() -> None:
    endpoint, clock = FakeTokenEndpoint(), Clock()
    tokens = token_source(endpoint, clock)
    assert tokens.bearer() == "tok-1"
    tokens.invalidate()
    assert tokens.bearer() == "tok-2"
    assert tokens.bearer() == "tok-2"


def test_token_endpoint_refusal_is_a_clear_feed_unavailable() -> None:
    refusal = Response(401, b'{"error":"invalid_client","error_description":"Invalid client credentials s3cr3t"}')
    tokens = token_source(FakeTokenEndpoint(refusal), Clock())
    with pytest.raises(FeedUnavailable) as err:
        tokens.bearer()
    exc = err.value
    assert exc.reason == "OpenSky token request failed: HTTP 401 invalid_client — check client_id/client_secret"
    assert (exc.status, exc.url, exc.feed) == (401, DEFAULT_TOKEN_URL, FEED)
    assert "s3cr3t" not in str(exc)


def test_token_endpoint_busy_keeps_its_retry_after() -> None:
    busy = Response(503, b"<html>maintenance</html>", {"retry-after": "60"})
    with pytest.raises(FeedUnavailable) as err:
        token_source(FakeTokenEndpoint(busy), Clock()).bearer()
    assert err.value.reason == "OpenSky token request failed: HTTP 503, Retry-After 60 s"
    assert (err.value.status, err.value.retry_after_s) == (503, 60.0)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"token_type": "Bearer"}', b'{"access_token": ""}', b'{"access_token": "a\\nb"}'],
)
def test_a_200_without_a_usable_token_fails_without_echoing_the_body(body: bytes) -> None:
    with pytest.raises(FeedUnavailable) as err:
        token_source(FakeTokenEndpoint(Response(200, body)), Clock()).bearer()
    assert err.value.reason == "OpenSky token request failed: the answer holds no usable access_token"


def test_a_failed_refresh_does_not_keep_the_expired_token() -> None:
    clock = Clock()
    endpoint = FakeTokenEndpoint(token_answer("old"), Response(500, b""), token_answer("new"))
    tokens = token_source(endpoint, clock)
    assert tokens.bearer() == "old"
    clock.now += 1770
    with pytest.raises(FeedUnavailable):
        tokens.bearer()
    assert tokens.bearer() == "new"


def test_neither_secret_nor_token_in_reprs() -> None:
    tokens = token_source(FakeTokenEndpoint(token_answer("eyJ-secret-token")), Clock())
    tokens.bearer()
    text = repr(tokens)
    assert SECRET not in text and "eyJ-secret-token" not in text and "token=held" in text


# -- transport: credits and retry-after headers -------------------------------------------------------


def test_remaining_credits_debug_every_answer_and_warn_once_when_low(caplog: pytest.LogCaptureFixture) -> None:
    fetcher = Fetcher(feed_settings(), "ingest-test/1")
    caplog.set_level(logging.DEBUG, logger="ingest.feeds.transport")
    try:
        for remaining in ("3990", "120", "49", "12", "not a number", "3999", "3"):
            fetcher._note_credits(FEED, remaining)
    finally:
        fetcher.close()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(debug) == 6
    assert "opensky: 3990 API credits left (X-Rate-Limit-Remaining)" in debug[0]
    assert warnings == [  # once below 50, again only after a refill
        "feed opensky: only 49 API credits left (X-Rate-Limit-Remaining); polls will fail with HTTP 429 when "
        "they run out",
        "feed opensky: only 3 API credits left (X-Rate-Limit-Remaining); polls will fail with HTTP 429 when "
        "they run out",
    ]


def test_opensky_retry_after_header_is_a_retry_after() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    assert transport._retry_after({"X-Rate-Limit-Retry-After-Seconds": "120"}, now) == (
        120.0,
        "X-Rate-Limit-Retry-After-Seconds",
    )
    later = (now + timedelta(seconds=300)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    both = {"retry-after": later, "x-rate-limit-retry-after-seconds": "120"}
    assert transport._retry_after(both, now) == (300.0, "Retry-After")
    assert transport._retry_after({}, now) == (None, "")
