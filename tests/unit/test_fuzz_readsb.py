"""Fuzz: `parse_readsb` (the `ac` and `aircraft` envelopes, ADSBx's bare object) and the `parse` of the
readsb-v2, adsbx and airplanes-live adapters.

Allowed outcomes only: a ParseResult whose observations keep every promise of Observation and whose
rejections carry a reason, a field and a raw cut; or one FeedFormatError. And the good records of a
response whose envelope is sound are all kept, whatever the records around them hold (any JSON value,
huge and non-finite numbers, wrong types, deep nesting, invalid UTF-8 inside strings).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from ingest.config import FEED_KEYS, FeedSettings
from ingest.errors import FeedFormatError
from ingest.feeds.adsbx import AdsbxFeed
from ingest.feeds.airplaneslive import AirplanesLiveFeed
from ingest.feeds.base import FeedContext
from ingest.feeds.readsb import ReadsbFamilyFeed, ReadsbV2Feed, parse_readsb
from ingest.geo import Area
from ingest.models import ParseResult
from ingest.watchlist import WatchEntry, Watchlist
from tests.unit.conftest import check_result, fuzz, hostile_values, json_values, lone_surrogates, mutate

FEED = "fuzz"
SOURCE = "https://example.invalid/v2/hex/<n items>"
RECEIVED = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
NOW_MS = int(RECEIVED.timestamp() * 1000)

# Every field the parser reads, with the values readsb really sends.
FIELDS = (
    "hex", "type", "flight", "r", "t", "dbFlags", "alt_baro", "altitude", "alt_geom", "gs", "speed", "track",
    "squawk", "lat", "lon", "seen_pos", "seen", "messages", "mlat", "tisb", "lastPosition", "emergency",
)  # fmt: skip


@st.composite
def good_record(draw: st.DrawFn, hex_icao: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "hex": draw(st.sampled_from([hex_icao, hex_icao.upper(), f" {hex_icao} "])),
        "lat": draw(st.floats(-90, 90)),
        "lon": draw(st.floats(-180, 180)),
        "seen_pos": draw(st.floats(0, 86_400)),
    }
    optional = {
        "alt_baro": st.one_of(st.integers(-2_000, 100_000), st.just("ground")),
        "alt_geom": st.integers(-2_000, 100_000),
        "gs": st.floats(0, 4_000),
        "track": st.floats(0, 360),
        "flight": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789 ?", max_size=12),
        "squawk": st.sampled_from(["7700", "1200", "4651"]),
        "emergency": st.sampled_from(["none", "general", "nordo", "weird!", ""]),
        "type": st.sampled_from(["adsb_icao", "mlat", "tisb_other"]),
        "dbFlags": st.integers(0, 15),
        "messages": st.integers(0, 10**6),
        "r": st.text(max_size=10),
        "t": st.text(max_size=4),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        record[name] = draw(optional[name])
    return record


@st.composite
def bad_record(draw: st.DrawFn) -> bytes:
    """A record (or any JSON value in its place) with hostile values in readsb's fields."""
    if draw(st.booleans()):
        return draw(hostile_values)
    names = draw(st.lists(st.sampled_from(FIELDS) | st.text(max_size=8), max_size=8))
    pairs = [json.dumps(name).encode() + b":" + draw(hostile_values) for name in names]
    return b"{" + b",".join(pairs) + b"}"


@st.composite
def mixed_response(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]], str]:
    """A sound envelope whose records are good ones (distinct hexes) among bad ones."""
    hexes = draw(st.lists(st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06x}"), unique=True, max_size=5))
    goods = [draw(good_record(h)) for h in hexes]
    pieces = [json.dumps(g).encode() for g in goods] + draw(st.lists(bad_record(), max_size=6))
    order = draw(st.permutations(range(len(pieces))))
    records = b"[" + b",".join(pieces[i] for i in order) + b"]"
    envelope = draw(st.sampled_from(["ac", "aircraft"]))
    now = f"{NOW_MS}" if envelope == "ac" else f"{NOW_MS / 1000:.3f}"
    extra = b"".join(b',"x%d":' % i + v for i, v in enumerate(draw(st.lists(hostile_values, max_size=2))))
    body = b'{"%s":' % envelope.encode() + records + b',"now":' + now.encode() + extra + b"}"
    return body, goods, envelope


def parse(body: bytes) -> ParseResult | FeedFormatError:
    try:
        result = parse_readsb(body, feed=FEED, received_at=RECEIVED, source=SOURCE)
    except FeedFormatError as exc:
        event("FeedFormatError")
        assert exc.feed == FEED and exc.url == SOURCE and "\n" not in exc.reason
        return exc
    check_result(result, FEED)
    assert len(result.observations) + len(result.rejected) + result.without_position == result.aircraft
    event("ParseResult with rejected records" if result.rejected else "ParseResult")
    return result


def assert_kept(result: ParseResult, goods: list[dict[str, Any]]) -> None:
    got = {(o.hex_icao, o.lat_deg, o.lon_deg): o for o in result.observations}
    for good in goods:
        obs = got.get((good["hex"].strip().lower(), good["lat"], good["lon"]))
        assert obs is not None, (good, result.rejected)
        assert obs.position_at == RECEIVED - timedelta(seconds=good["seen_pos"])
        if "alt_baro" in good:
            assert (obs.alt_baro_ft, obs.on_ground) == (
                (None, True) if good["alt_baro"] == "ground" else (good["alt_baro"], False)
            )


@given(mixed_response())
@fuzz(60)
def test_good_records_among_hostile_ones_are_all_kept(case: tuple[bytes, list[dict[str, Any]], str]) -> None:
    body, goods, _ = case
    result = parse(body)
    assert isinstance(result, ParseResult), result  # a sound envelope is never a FeedFormatError
    assert_kept(result, goods)


@given(mixed_response(), st.data())
@fuzz(60)
def test_a_broken_body_is_a_result_or_one_feed_format_error(
    case: tuple[bytes, list[dict[str, Any]], str], data: st.DataObject
) -> None:
    parse(mutate(case[0], data))


@given(
    st.one_of(hostile_values, json_values, lone_surrogates, st.binary(max_size=64)),
    st.sampled_from(["ac", "aircraft", None]),
)
@fuzz(60)
def test_any_value_as_the_body_or_the_envelope_now(value: bytes, envelope: str | None) -> None:
    parse(value)
    parse(b'{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": ' + value + b"}")  # ADSBx's bare aircraft object
    if envelope is not None:
        parse(b'{"%s": [], "now": ' % envelope.encode() + value + b"}")
        parse(b'{"%s": ' % envelope.encode() + value + b', "now": 1785336058500}')


def watchlist(hexes: list[str]) -> Watchlist:
    return Watchlist(WatchEntry(None, (h,), "", "", "", "", (), "") for h in hexes)


ADAPTERS: dict[str, tuple[type[ReadsbFamilyFeed], dict[str, Any]]] = {
    "readsb-v2": (ReadsbV2Feed, {"base_url": "https://api.adsb.lol"}),
    "adsbx": (AdsbxFeed, {"auth": "rapidapi", "api_key": "k"}),
    "airplanes-live": (AirplanesLiveFeed, {"api_key": "k"}),
}


@given(mixed_response(), st.booleans(), st.sampled_from(sorted(ADAPTERS)))
@fuzz(40)
def test_through_the_adapters_watched_good_records_are_kept(
    case: tuple[bytes, list[dict[str, Any]], str], include_military: bool, kind: str
) -> None:
    """readsb-v2, adsbx and airplanes-live parse with the same parser, each with its watchlist filter."""
    body, goods, _ = case
    hexes = [g["hex"].strip().lower() for g in goods]
    context = FeedContext(watchlist(hexes[::2] or ["000000"]), Area("box", 33, 124, 43.5, 132), include_military)
    adapter, extra = ADAPTERS[kind]
    values = {k.name: k.default for k in FEED_KEYS} | {"name": FEED, "kind": kind, "queries": ("hex", "mil")}
    feed = adapter(FeedSettings(**(values | extra)), context)
    for request in feed.requests():
        result = feed.parse(body, RECEIVED, request.safe_url)
        check_result(result, FEED)
        assert_kept(result, goods[::2])
