"""`ingest.feeds.readsb.parse_readsb` and `clean_callsign`.

Covers every recorded response in tests/fixtures/samples/ (jv2 `ac` envelopes with `now` in ms, readsb and
dump1090-fa `aircraft` envelopes with `now` in s, a legacy dump1090 file, a truncated .txt excerpt) with
exact per-record expectations, then small hand-written malformed bodies: whole-body errors raise
FeedFormatError, one bad record is rejected (with the field at fault) while the rest is kept.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import FeedFormatError
from ingest.feeds.readsb import clean_callsign, parse_readsb
from ingest.models import Observation, ParseResult

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
FEED = "test-feed"
SOURCE = "https://example.invalid/v2/hex/<1 items>"
# Far from every sample's `now`, so a fallback to the receive time cannot pass unnoticed.
RECEIVED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def sample(prefix: str) -> Path:
    matches = sorted(SAMPLES.glob(f"{prefix}*"))
    assert len(matches) == 1, f"expected one sample named {prefix}*, found {matches}"
    return matches[0]


def parse(body: bytes | str) -> ParseResult:
    if isinstance(body, str):
        body = body.encode()
    return parse_readsb(body, feed=FEED, received_at=RECEIVED, source=SOURCE)


def parse_sample(prefix: str) -> ParseResult:
    return parse(sample(prefix).read_bytes())


def by_hex(result: ParseResult) -> dict[str, Observation]:
    return {o.hex_icao: o for o in result.observations}


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def one_record(record: str, now: str = '"now": 1785336058500') -> str:
    return f'{{"ac": [{record}], {now}}}'


# -- every sample file -----------------------------------------------------------------------------

# prefix: (aircraft, observations, without_position, rejected)
SAMPLE_COUNTS = {
    "adsb_lol_v2_point__": (6, 6, 0, 0),
    "adsb_one_v2_icao__": (1, 1, 0, 0),
    "airplanes_live_v2__": (1, 1, 0, 0),
    "dump1090fa_aircraft_json__r00b_": (5, 3, 2, 0),
    "legacy_dump1090_aircraft_json__": (4, 0, 4, 0),
    "readsb_aircraft_json__ernesttan1976_": (4, 1, 0, 3),
    "readsb_globe_aircraft_json__ANG13T_": (18, 17, 1, 0),
}
NOT_JSON_SAMPLES = ("dump1090fa_aircraft_json__plord12_",)


def test_every_sample_file_has_expectations() -> None:
    # every readsb-family sample (the OpenSky and SBS samples have their own tests)
    files = {
        p.name for p in SAMPLES.iterdir() if p.name != "README.md" and not p.name.startswith(("opensky_", "sbs1_"))
    }
    covered = {sample(prefix).name for prefix in (*SAMPLE_COUNTS, *NOT_JSON_SAMPLES)}
    assert files == covered


@pytest.mark.parametrize(("prefix", "counts"), SAMPLE_COUNTS.items(), ids=list(SAMPLE_COUNTS))
def test_sample_counts(prefix: str, counts: tuple[int, int, int, int]) -> None:
    result = parse_sample(prefix)
    assert (result.aircraft, len(result.observations), result.without_position, len(result.rejected)) == counts
    assert all(o.feed == FEED for o in result.observations)
    assert all(o.position_at.tzinfo is UTC for o in result.observations)


# adsb.lol: jv2 envelope, `ac`, `now` in ms --------------------------------------------------------

LOL = "adsb_lol_v2_point__"
LOL_NOW = utc(2026, 7, 29, 14, 40, 58, 500_000)  # 1785336058500 ms


def test_adsb_lol_envelope_now_in_milliseconds() -> None:
    assert parse_sample(LOL).feed_now == LOL_NOW


def test_adsb_lol_mlat_military_p8() -> None:
    p8 = by_hex(parse_sample(LOL))["ae749d"]
    assert p8.source_type == "mlat"
    assert p8.military is True
    assert p8.registration == "170478"
    assert p8.type_icao == "P8"
    assert p8.position_at == LOL_NOW - timedelta(seconds=2.102)
    assert p8.position_at == utc(2026, 7, 29, 14, 40, 56, 398_000)
    assert (p8.lat_deg, p8.lon_deg) == (39.488589, -78.293714)
    assert (p8.alt_baro_ft, p8.on_ground, p8.alt_geom_ft) == (25825, False, None)
    assert (p8.gs_kt, p8.track_deg, p8.squawk, p8.messages) == (441.0, 53.0, "7334", 45166)
    assert p8.callsign is None  # no `flight` key
    assert p8.non_icao is False


@pytest.mark.parametrize(
    ("hex_icao", "callsign", "military"),
    [
        ("a3c9b4", "DAL1375", False),
        ("c030ea", "ASP675", False),
        ("ae0c73", "G26533", True),  # dbFlags 1
        ("a49a50", "KFB396", False),  # dbFlags 8 (LADD) is not military
        ("a95128", "POD6", False),
    ],
)
def test_adsb_lol_callsigns_stripped_and_military_flag(hex_icao: str, callsign: str, military: bool) -> None:
    obs = by_hex(parse_sample(LOL))[hex_icao]
    assert obs.callsign == callsign
    assert obs.military is military
    assert obs.source_type == "adsb_icao"


def test_adsb_lol_first_record_fields() -> None:
    obs = by_hex(parse_sample(LOL))["a3c9b4"]
    assert obs.registration == "N343NW"
    assert obs.type_icao == "A320"
    assert (obs.alt_baro_ft, obs.alt_geom_ft, obs.gs_kt, obs.track_deg) == (32000, 32975, 454.5, 42.15)
    assert obs.squawk == "6062"
    assert obs.position_at == utc(2026, 7, 29, 14, 40, 58, 202_000)  # now - 0.298 s


def test_adsb_lol_source_key_is_ignored() -> None:
    path = sample(LOL)
    doc = json.loads(path.read_text())
    assert "_source" in doc
    del doc["_source"]
    assert parse(json.dumps(doc)) == parse(path.read_bytes())


# readsb native (ernesttan1976): `aircraft`, `now` in s, three `{}` records ------------------------

ERNEST = "readsb_aircraft_json__ernesttan1976_"


def test_readsb_native_keeps_good_record_and_rejects_empty_objects() -> None:
    result = parse_sample(ERNEST)
    assert result.feed_now == utc(2025, 6, 1, 0, 0, 54, 1_000)  # 1748736054.001 s
    (obs,) = result.observations
    assert obs.hex_icao == "aa5f41"
    assert obs.callsign == "AAL61"
    assert (obs.registration, obs.type_icao) == ("N768AA", "B772")
    assert obs.position_at == utc(2025, 6, 1, 0, 0, 50, 628_000)  # now - 3.373 s
    assert len(result.rejected) == 3
    for rejected in result.rejected:
        assert rejected.raw == "{}"
        assert rejected.field == "record"
        assert "hex" in rejected.reason


# readsb globe excerpt (ANG13T): one aircraft per `type` ------------------------------------------

GLOBE = "readsb_globe_aircraft_json__ANG13T_"


def test_globe_feed_now_in_seconds() -> None:
    assert parse_sample(GLOBE).feed_now == utc(2022, 4, 30, 23, 59, 59, 612_000)


@pytest.mark.parametrize("hex_icao", ["2b82ae", "26c1be", "c1e5bd"])
def test_globe_non_icao_hex_loses_tilde(hex_icao: str) -> None:
    obs = by_hex(parse_sample(GLOBE))[hex_icao]
    assert obs.non_icao is True
    assert obs.hex_icao == hex_icao


def test_globe_icao_hexes_are_not_flagged() -> None:
    result = parse_sample(GLOBE)
    flagged = sorted(o.hex_icao for o in result.observations if o.non_icao)
    assert flagged == ["26c1be", "2b82ae", "c1e5bd"]
    assert all("~" not in o.hex_icao for o in result.observations)


@pytest.mark.parametrize(
    ("hex_icao", "alt_geom_ft"), [("a0618c", None), ("c1e5e1", None), ("a5828e", 50), ("c1e5bd", None)]
)
def test_globe_ground_altitude(hex_icao: str, alt_geom_ft: int | None) -> None:
    obs = by_hex(parse_sample(GLOBE))[hex_icao]
    assert obs.on_ground is True
    assert obs.alt_baro_ft is None
    assert obs.alt_geom_ft == alt_geom_ft


def test_globe_airborne_records_are_not_on_ground() -> None:
    result = parse_sample(GLOBE)
    grounded = sorted(o.hex_icao for o in result.observations if o.on_ground)
    assert grounded == ["a0618c", "a5828e", "c1e5bd", "c1e5e1"]


def test_globe_source_types() -> None:
    types = {o.hex_icao: o.source_type for o in parse_sample(GLOBE).observations}
    assert types == {
        "a125f9": "adsb_icao",
        "a0618c": "adsb_icao",
        "c1e5e1": "adsb_icao_nt",
        "c06ca2": "mlat",
        "780fa4": "mode_s",
        "a0c300": "mode_s",
        "acbca2": "tisb_icao",
        "2b82ae": "tisb_other",
        "26c1be": "tisb_trackfile",
        "a5828e": "adsr_icao",
        "c1e5bd": "adsb_other",
        "845f9f": "adsc",
        "a3ffe9": "other",
        "ae63dd": "adsb_icao",
        "50801b": "adsb_icao",
        "aafd2b": "adsb_icao",
        "4baad9": "adsb_icao",
    }  # ~0ea389 ("unknown") has no position and is counted in without_position


def test_globe_mode_s_record_uses_last_position() -> None:
    obs = by_hex(parse_sample(GLOBE))["780fa4"]
    assert (obs.lat_deg, obs.lon_deg) == (24.412785, 114.954512)
    assert obs.position_at == utc(2022, 4, 30, 23, 59, 59, 612_000) - timedelta(seconds=40630.697)
    assert obs.alt_baro_ft is None
    assert obs.on_ground is False


def test_globe_misc_fields() -> None:
    obs = by_hex(parse_sample(GLOBE))
    assert obs["c1e5e1"].callsign == "TOW 902"  # inner space kept, padding stripped
    assert obs["ae63dd"].military is True
    assert obs["50801b"].military is False  # dbFlags 2 = interesting, not military
    assert obs["845f9f"].position_at == utc(2022, 4, 30, 23, 45, 26, 213_000)  # ADS-C, seen_pos 873.399
    assert obs["a0c300"].squawk is None
    assert obs["a0c300"].gs_kt is None


# airplanes.live: a `mode_s` record with only `lastPosition` ---------------------------------------


def test_airplanes_live_mode_s_record_uses_last_position_and_its_age() -> None:
    result = parse_sample("airplanes_live_v2__")
    now = utc(2023, 9, 22, 22, 16, 29, 961_000)  # 1695420989961 ms
    assert result.feed_now == now
    (obs,) = result.observations
    assert obs.hex_icao == "45211e"
    assert obs.source_type == "mode_s"
    assert (obs.lat_deg, obs.lon_deg) == (43.261414, 29.636404)
    assert obs.position_at == now - timedelta(seconds=3061.406)
    assert obs.position_at == utc(2023, 9, 22, 21, 25, 28, 555_000)
    assert obs.callsign == "CFG846"
    assert (obs.registration, obs.type_icao) == ("LZ-LAJ", "A320")
    assert (obs.alt_baro_ft, obs.gs_kt, obs.squawk) == (37000, 496.0, "7665")


def test_adsb_one_record() -> None:
    result = parse_sample("adsb_one_v2_icao__")
    (obs,) = result.observations
    assert result.feed_now == utc(2023, 2, 5, 21, 47, 51, 226_000)
    assert obs.hex_icao == "a9cee9"
    assert obs.callsign == "N731BP"
    assert obs.registration is None
    assert obs.type_icao is None
    assert obs.position_at == utc(2023, 2, 5, 21, 47, 47, 740_000)  # now - 3.486 s


# dump1090-fa: no `type` -------------------------------------------------------------------------

R00B = "dump1090fa_aircraft_json__r00b_"


def test_dump1090fa_records_without_type_are_unknown() -> None:
    result = parse_sample(R00B)
    now = utc(2020, 2, 12, 2, 55, 9, 700_000)  # 1581476109.7 s
    assert result.feed_now == now
    obs = by_hex(result)
    assert sorted(obs) == ["a04a6d", "aa96e2", "ae038b"]  # ab674b and ad72f1 have no position
    assert {o.source_type for o in obs.values()} == {"unknown"}
    assert obs["aa96e2"].position_at == now  # seen_pos 0.0
    assert obs["aa96e2"].callsign is None
    assert obs["ae038b"].callsign == "DECEE22"
    assert obs["ae038b"].position_at == now - timedelta(seconds=4.3)
    assert obs["a04a6d"].registration is None


@pytest.mark.parametrize(
    ("extra", "source_type"),
    [
        ('"mlat": ["gs", "track", "lat", "lon"], "tisb": []', "mlat"),
        ('"mlat": [], "tisb": ["lat", "lon"]', "tisb"),
        ('"mlat": ["gs"], "tisb": []', "unknown"),  # only velocity from MLAT
        ('"mlat": [], "tisb": []', "unknown"),
        ('"type": "adsb_icao", "mlat": ["lat", "lon"]', "adsb_icao"),  # readsb's `type` wins
    ],
)
def test_dump1090fa_source_type_from_mlat_and_tisb_lists(extra: str, source_type: str) -> None:
    body = f'{{"now": 1581476109.7, "aircraft": [{{"hex": "a1b2c3", "lat": 39.1, "lon": -77.0, {extra}}}]}}'
    (obs,) = parse(body).observations
    assert obs.source_type == source_type


def test_dump1090fa_plord12_excerpt_is_not_json_after_removing_comments() -> None:
    text = sample("dump1090fa_aircraft_json__plord12_").read_text()
    assert text.startswith("#")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert body.lstrip().startswith("{")
    with pytest.raises(FeedFormatError) as info:
        parse(body)
    assert info.value.feed == FEED
    assert info.value.url == SOURCE


def test_dump1090fa_plord12_excerpt_as_is_is_not_json() -> None:
    with pytest.raises(FeedFormatError):
        parse(sample("dump1090fa_aircraft_json__plord12_").read_bytes())


# legacy dump1090: `altitude`, `speed` -----------------------------------------------------------

LEGACY = "legacy_dump1090_aircraft_json__"


def test_legacy_dump1090_records_without_position() -> None:
    result = parse_sample(LEGACY)
    assert result.feed_now == utc(2023, 10, 31, 11, 23, 24, 700_000)
    assert result.observations == ()
    assert result.without_position == 4
    assert result.rejected == ()


def test_legacy_altitude_and_speed_keys_map_to_alt_baro_and_gs() -> None:
    body = (
        '{"now": 1698751404.7, "aircraft": [{"hex": "151ec2", "flight": "SBI1010 ", "altitude": 2975,'
        ' "speed": 250, "lat": 55.1, "lon": 37.2, "seen_pos": 0.7}]}'
    )
    (obs,) = parse(body).observations
    assert obs.alt_baro_ft == 2975
    assert obs.on_ground is False
    assert obs.gs_kt == 250.0
    assert obs.callsign == "SBI1010"
    assert obs.position_at == utc(2023, 10, 31, 11, 23, 24)


def test_alt_baro_wins_over_legacy_altitude() -> None:
    (obs,) = parse(one_record('{"hex": "151ec2", "alt_baro": 1000, "altitude": 2975, "lat": 1, "lon": 2}')).observations
    assert obs.alt_baro_ft == 1000


def test_legacy_altitude_ground() -> None:
    (obs,) = parse(one_record('{"hex": "151ec2", "altitude": "ground", "lat": 1, "lon": 2}')).observations
    assert (obs.alt_baro_ft, obs.on_ground) == (None, True)


# envelopes and `now` ----------------------------------------------------------------------------


def test_now_in_seconds_and_milliseconds_agree() -> None:
    record = '{"hex": "abcdef", "lat": 37.5, "lon": 127.0, "seen_pos": 1.5}'
    in_ms = parse(one_record(record, '"now": 1785336058500'))
    in_s = parse(f'{{"aircraft": [{record}], "now": 1785336058.5}}')
    assert in_ms.feed_now == in_s.feed_now == LOL_NOW
    assert in_ms.observations == in_s.observations
    assert in_ms.observations[0].position_at == LOL_NOW - timedelta(seconds=1.5)


@pytest.mark.parametrize("now", ["", ', "now": 0', ', "now": null'])
def test_missing_now_falls_back_to_received_at(now: str) -> None:
    result = parse(f'{{"ac": [{{"hex": "abcdef", "lat": 37.5, "lon": 127.0, "seen_pos": 2.0}}]{now}}}')
    assert result.feed_now == RECEIVED
    (obs,) = result.observations
    assert obs.position_at == RECEIVED - timedelta(seconds=2)


def test_seen_used_when_seen_pos_is_absent() -> None:
    (obs,) = parse(one_record('{"hex": "abcdef", "lat": 37.5, "lon": 127.0, "seen": 4.0}')).observations
    assert obs.position_at == LOL_NOW - timedelta(seconds=4)


def test_empty_ac_list_is_no_aircraft_not_an_error() -> None:
    result = parse('{"ac": [], "now": 1785336058500}')
    assert result.observations == ()
    assert result.rejected == ()
    assert (result.aircraft, result.without_position) == (0, 0)
    assert result.feed_now == LOL_NOW


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"ac": [{"hex": "abcdef", "lat": 37.5', id="truncated"),
        # NaN is not JSON: msgspec rejects the whole body, not just the record.
        pytest.param(b'{"ac": [{"hex": "abcdef", "lat": NaN, "lon": 127.0}], "now": 1}', id="nan-literal"),
        pytest.param(b'{"now": 1785336058500, "total": 0}', id="no-ac-or-aircraft"),
        pytest.param(b'{"ac": null, "now": 1785336058500}', id="ac-null"),
        pytest.param(b"[]", id="top-level-array"),
        pytest.param(b'{"ac": {}, "now": 1}', id="ac-not-a-list"),
        pytest.param(b'{"ac": [], "now": "yesterday"}', id="now-a-string"),
    ],
)
def test_unusable_body_raises_feed_format_error(body: bytes) -> None:
    with pytest.raises(FeedFormatError) as info:
        parse(body)
    assert info.value.feed == FEED
    assert info.value.url == SOURCE


# one bad record ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "field", "in_reason"),
    [
        pytest.param('{"hex": "abcdef", "lat": 95, "lon": 127.0}', "lat", "out of range", id="lat-95"),
        pytest.param('{"hex": "abcdef", "lat": -90.5, "lon": 127.0}', "lat", "out of range", id="lat-minus-90.5"),
        pytest.param('{"hex": "abcdef", "lat": 37.5, "lon": 181}', "lon", "out of range", id="lon-181"),
        pytest.param('{"hex": "abcdef", "lat": "37.5", "lon": 127.0}', "lat", "str", id="lat-string"),
        pytest.param('{"hex": "abcdef", "lat": true, "lon": 127.0}', "lat", "bool", id="lat-bool"),
        pytest.param('{"hex": "zzzzzz", "lat": 37.5, "lon": 127.0}', "hex", "zzzzzz", id="hex-zzzzzz"),
        pytest.param('{"hex": "abcde", "lat": 37.5, "lon": 127.0}', "hex", "abcde", id="hex-5-digits"),
        pytest.param('{"hex": "~abc", "lat": 37.5, "lon": 127.0}', "hex", "~abc", id="hex-tilde-short"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "alt_baro": "banana"}', "alt_baro", "banana", id="alt"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "alt_baro": 250000}', "alt_baro", "range", id="alt-high"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "gs": 5000}', "gs", "range", id="gs-5000"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "track": 361}', "track", "range", id="track-361"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": -3}', "seen_pos", "-3", id="negative-age"),
        pytest.param('{"hex": "abcdef", "lat": 37.5}', "lat", "without lon", id="lat-without-lon"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "dbFlags": true}', "dbFlags", "bool", id="dbflags-bool"),
        pytest.param('{"lat": 37.5, "lon": 127.0}', "record", "hex", id="no-hex"),
        pytest.param("{}", "record", "hex", id="empty-object"),
        pytest.param("42", "record", "object", id="not-an-object"),
    ],
)
def test_bad_record_is_rejected_with_field(record: str, field: str, in_reason: str) -> None:
    result = parse(one_record(record))
    assert result.observations == ()
    assert result.aircraft == 1
    assert result.without_position == 0
    (rejected,) = result.rejected
    assert rejected.field == field
    assert in_reason in rejected.reason
    assert rejected.raw == record


def test_one_bad_record_among_good_ones() -> None:
    body = one_record(
        '{"hex": "aaaaa1", "lat": 37.1, "lon": 127.1},'
        ' {"hex": "aaaaa2", "lat": "37.5", "lon": 127.2},'
        ' {"hex": "aaaaa3", "lat": 37.3, "lon": 127.3},'
        ' {"hex": "aaaaa4", "seen": 1.0}'
    )
    result = parse(body)
    assert [o.hex_icao for o in result.observations] == ["aaaaa1", "aaaaa3"]
    assert result.aircraft == 4
    assert result.without_position == 1
    (rejected,) = result.rejected
    assert rejected.field == "lat"
    assert '"aaaaa2"' in rejected.raw


def test_aircraft_without_position_is_counted_not_rejected() -> None:
    result = parse(one_record('{"hex": "abcdef", "flight": "TORA23  ", "alt_baro": 30000, "seen": 1.0}'))
    assert result.observations == ()
    assert result.rejected == ()
    assert (result.aircraft, result.without_position) == (1, 1)


def test_rejected_raw_is_cut_to_200_characters() -> None:
    record = '{"hex": "zzzzzz", "desc": "' + "x" * 500 + '"}'
    (rejected,) = parse(one_record(record)).rejected
    assert rejected.raw == record[:200]


def test_bad_optional_values_are_dropped_not_rejected() -> None:
    record = '{"hex": "ABCDEF", "lat": 1, "lon": 2, "squawk": "9999", "flight": "00000000", "r": " ", "t": "b77w"}'
    (obs,) = parse(one_record(record)).observations
    assert obs.hex_icao == "abcdef"
    assert obs.squawk is None  # not octal
    assert obs.callsign is None
    assert obs.registration is None
    assert obs.type_icao == "B77W"
    assert obs.source_type == "unknown"
    assert obs.messages is None


# clean_callsign ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flight", "expected"),
    [
        ("", None),
        ("        ", None),
        ("00000000", None),
        ("????????", None),
        (None, None),
        ("  TORA23 ", "TORA23"),
        ("DAL1375 ", "DAL1375"),
        ("tora23", "TORA23"),
        ("0000000 0", "0000000"),  # cut to 8 then stripped: found by tests/unit/test_fuzz_readsb.py
        ("ABCDEFG HIJ", "ABCDEFG"),
        ("00000000X", None),
        ("TORA23 LONG NAME", "TORA23 L"),
    ],
)
def test_clean_callsign(flight: str | None, expected: str | None) -> None:
    assert clean_callsign(flight) == expected


# -- the watchlist prefilter -----------------------------------------------------------------------


def test_wanted_builds_only_accepted_records_but_still_rejects_bad_identities() -> None:
    body = json.dumps(
        {
            "ac": [
                {"hex": "ae01d2", "lat": 37.0, "lon": 124.8, "seen_pos": 1.0},
                {"hex": "71c011", "lat": 37.5, "lon": 127.0, "seen_pos": 1.0},
                {"hex": "~abc123", "r": "62-4125", "lat": 37.6, "lon": 127.1, "seen_pos": 1.0},
                {"hex": "71c012", "lat": "37.5", "lon": 127.0},
                {"hex": "71c013", "lat": 95.0, "lon": 127.0},
                {"hex": "zzzzzz", "lat": 37.0, "lon": 127.0},
            ],
            "now": 1785336058500,
        }
    ).encode()
    asked: list[tuple[str, bool, str | None]] = []

    def wanted(hex_icao: str, non_icao: bool, registration: str | None) -> bool:
        asked.append((hex_icao, non_icao, registration))
        return hex_icao == "ae01d2" or registration == "62-4125"

    result = parse_readsb(body, feed=FEED, received_at=RECEIVED, source=SOURCE, wanted=wanted)
    assert [(o.hex_icao, o.non_icao) for o in result.observations] == [("ae01d2", False), ("abc123", True)]
    assert result.aircraft == 6
    # a bad hex is rejected whoever sent it; an unwatched record's other fields ("37.5", 95.0) are not read
    assert [r.field for r in result.rejected] == ["hex"]
    assert asked == [
        ("ae01d2", False, None),
        ("71c011", False, None),
        ("abc123", True, "62-4125"),
        ("71c012", False, None),
        ("71c013", False, None),
    ]


# -- hostile input: ages, `now`, nesting, emergency ----------------------------------------------

GOOD = '{"hex": "aaaaa1", "lat": 37.1, "lon": 127.1, "seen_pos": 1.0}'


@pytest.mark.parametrize(
    ("record", "field"),
    [
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": 1e300}', "seen_pos", id="seen_pos-1e300"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": 1e11}', "seen_pos", id="seen_pos-1e11"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": 86401}', "seen_pos", id="seen_pos-a-day-and-1"),
        pytest.param('{"hex": "abcdef", "lat": 1, "lon": 2, "seen": 1e300}', "seen", id="seen-1e300"),
        pytest.param(
            '{"hex": "abcdef", "lastPosition": {"lat": 1, "lon": 2, "seen_pos": 1e11}}',
            "lastPosition.seen_pos",
            id="lastPosition-seen_pos-1e11",
        ),
    ],
)
def test_an_age_beyond_a_day_is_a_rejected_record(record: str, field: str) -> None:
    """1e300 s used to raise OverflowError from `feed_now - timedelta(...)` and cost the whole poll."""
    result = parse(one_record(f"{GOOD}, {record}"))
    assert [o.hex_icao for o in result.observations] == ["aaaaa1"]
    (rejected,) = result.rejected
    assert rejected.field == field
    assert "older than a day" in rejected.reason


def test_an_age_of_a_day_is_kept() -> None:
    (obs,) = parse(one_record('{"hex": "abcdef", "lat": 1, "lon": 2, "seen_pos": 86400}')).observations
    assert obs.position_at == utc(2026, 7, 29, 14, 40, 58, 500_000) - timedelta(days=1)


@pytest.mark.parametrize(
    "now",
    [
        pytest.param("253402300800000", id="year-10000-in-ms"),
        pytest.param("1e300", id="1e300"),
        pytest.param("1e20", id="1e20"),
        pytest.param(str(2**80), id="2**80"),
    ],
)
def test_an_envelope_now_that_cannot_be_a_time_is_a_feed_format_error(now: str) -> None:
    """These raised OSError, ValueError or OverflowError from timeutil.from_epoch."""
    with pytest.raises(FeedFormatError, match=r"now .* is not a time"):
        parse(one_record(GOOD, f'"now": {now}'))


def test_now_at_the_end_of_year_9999_is_a_time() -> None:
    result = parse(one_record(GOOD, '"now": 253402300799000'))
    assert result.feed_now == utc(9999, 12, 31, 23, 59, 59)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [5_000, 100_000])
@pytest.mark.parametrize("envelope", ["ac", "aircraft"])
def test_a_record_nested_deep_is_rejected_and_the_rest_kept(levels: int, envelope: str) -> None:
    """msgspec skips unread values recursively: the envelope decode raised RecursionError for one record."""
    bad = f'{{"hex": "abcdef", "lat": 1, "lon": 2, "junk": {deep(levels)}}}'
    body = f'{{"{envelope}": [{GOOD}, {bad}, {GOOD.replace("aaaaa1", "aaaaa2")}], "now": 1785336058500}}'
    result = parse(body)
    assert [o.hex_icao for o in result.observations] == ["aaaaa1", "aaaaa2"]
    assert result.aircraft == 3
    (rejected,) = result.rejected
    assert (rejected.field, rejected.reason) == ("record", "nested too deep to decode")
    assert rejected.raw == bad[:200]


def test_a_deep_record_is_rejected_from_deep_in_the_call_stack() -> None:
    """msgspec counts Python's stack: 300 levels fail when 150 frames are left below the recursion limit."""
    body = one_record(f'{GOOD}, {{"hex": "abcdef", "junk": {deep(300)}}}')

    def call_at(frames: int) -> ParseResult:
        return call_at(frames - 1) if frames else parse(body)

    result = call_at(sys.getrecursionlimit() - len(inspect.stack(0)) - 150)
    assert [o.hex_icao for o in result.observations] == ["aaaaa1"]
    assert len(result.rejected) == 1


def test_a_deep_unknown_envelope_field_is_ignored_like_any_unknown_field() -> None:
    result = parse(f'{{"ac": [{GOOD}], "ptime": {deep(5_000)}, "msg": "No error", "now": 1785336058500}}')
    assert [o.hex_icao for o in result.observations] == ["aaaaa1"]
    assert result.feed_now == utc(2026, 7, 29, 14, 40, 58, 500_000)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f'{{"ac": [{GOOD}], "now": {deep(5_000)}}}', id="now"),
        pytest.param(f'{{"ac": {{"x": {deep(5_000)}}}, "now": 1}}', id="ac-an-object"),
        pytest.param(f'{{"ac": [{GOOD}], "x": {deep(5_000)}, "now": NaN}}', id="deep-and-nan"),
        pytest.param(f'{{"ac": [{GOOD}], "x": {deep(5_000)}', id="deep-and-truncated"),
        pytest.param(f"{deep(5_000)}", id="top-level-array"),
        pytest.param(f'{{"ac": []}} {{"x": {deep(5_000)}}}', id="two-documents"),
    ],
)
def test_a_deep_envelope_that_is_unusable_is_one_feed_format_error(body: str) -> None:
    with pytest.raises(FeedFormatError):
        parse(body)


def test_the_deep_split_stays_linear_for_a_body_ending_inside_a_string() -> None:
    """The scan's string pattern once failed at every escaped quote of an unterminated string and started
    again at the next: 40,000 of them took 41 s (20 MB would never end). Now each string is read once."""
    body = f'{{"ac": [{GOOD}], "x": {deep(5_000)}, "y": "' + '\\"' * 100_000
    started = time.perf_counter()
    with pytest.raises(FeedFormatError):
        parse(body)
    assert time.perf_counter() - started < 10.0  # about 0.05 s; quadratic was minutes


def test_a_deep_bare_aircraft_object_is_one_rejected_record() -> None:
    result = parse(f'{{"hex": "abcdef", "lat": 1, "lon": 2, "junk": {deep(5_000)}}}')
    assert result.observations == ()
    assert result.aircraft == 1
    assert [r.reason for r in result.rejected] == ["nested too deep to decode"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"none"', "none"),
        ('"general"', "general"),
        ('"lifeguard"', "lifeguard"),
        ('"minfuel"', "minfuel"),
        ('"nordo"', "nordo"),
        ('"unlawful"', "unlawful"),
        ('"downed"', "downed"),
        ('"reserved"', "reserved"),
        ('" general "', "general"),
        ('"spoofed"', "spoofed"),  # a short lower-case word a newer readsb may send
        ('"GENERAL"', None),
        ('"mayday!"', None),
        ('"x' + "y" * 40 + '"', None),
        ('""', None),
        ("7700", None),
        ("true", None),
        ("null", None),
        ('["general"]', None),
        ('{"a": 1}', None),
    ],
)
def test_emergency_is_parsed_or_dropped_never_rejected(value: str, expected: str | None) -> None:
    (obs,) = parse(one_record(f'{{"hex": "abcdef", "lat": 1, "lon": 2, "emergency": {value}}}')).observations
    assert obs.emergency == expected


def test_emergency_absent_is_none() -> None:
    (obs,) = parse(one_record(GOOD)).observations
    assert obs.emergency is None
