"""Fuzz: SBS-1 lines (parse_line), captures (parse_sbs: split_lines, parse_line, the Assembler) and the live
stream's ReceiverClock.

A line is any text (lone surrogates included, as a caller may hand one in) or a MSG line whose fields are
good or hostile (huge numbers, other scripts' digits, far dates, garbage); a capture is any bytes
(invalid UTF-8 included) with good position lines among bad ones. Allowed: an SbsMessage that keeps its
promises, None (heartbeat, other records) or SbsLineError; a capture keeps every good position.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ingest.feeds.sbs import (
    Assembler,
    ReceiverClock,
    SbsLineError,
    SbsMessage,
    parse_line,
    parse_sbs,
    rejected_line,
)
from tests.unit.conftest import check_result, check_text, fuzz

FEED = "sbs"
T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
STAMP = ("2026/11/20", "23:00:00.000")
ZONES = [UTC, ZoneInfo("Asia/Seoul"), ZoneInfo("America/New_York"), None]

any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates included
hostile_field = st.one_of(
    any_text,
    st.sampled_from(
        [
            "nan", "inf", "-inf", "1_0", "1e5", "0x1F", "\u0663\u0667.5", "\uff13\uff15", "9" * 400, "-1", "0",
            "-0", "+1", "99999999", "-2001", "100001", "35000H", "H", "0001/01/01", "9999/12/31", "1969/12/31",
            "2026/02/30", "2026/13/01", "24:00:00", "23:59:60.000", "23:00:00.1234567", "\x00", "~ae01d2", "AE01D2 ",
        ]
    ),
    st.integers().map(str),
    st.floats().map(repr),
)  # fmt: skip
GOOD_FIELDS = {
    1: st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8"]),
    4: st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06X}"),
    6: st.just(STAMP[0]),
    7: st.just(STAMP[1]),
    10: st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", max_size=8),
    11: st.integers(-2_000, 100_000).map(str),
    12: st.floats(0, 4_000).map(lambda f: f"{f:.1f}"),
    13: st.floats(0, 360).map(lambda f: f"{f:.1f}"),
    14: st.floats(-90, 90).map(lambda f: f"{f:.5f}"),
    15: st.floats(-180, 180).map(lambda f: f"{f:.5f}"),
    17: st.sampled_from(["7700", "1200", ""]),
    19: st.sampled_from(["-1", "0", "", "12"]),
    21: st.sampled_from(["-1", "0", ""]),
}


@st.composite
def msg_line(draw: st.DrawFn) -> str:
    fields = ["MSG"] + [""] * 21
    for i in range(1, 22):
        good = GOOD_FIELDS.get(i)
        fields[i] = draw(hostile_field) if good is None or draw(st.integers(0, 4)) == 0 else draw(good)
    count = draw(st.sampled_from([22, 22, 22, 10, 23, 30]))
    return ",".join((fields + [""] * 10)[:count]).replace("\n", " ")


def check_message(msg: SbsMessage) -> None:
    assert re.fullmatch(r"[0-9a-f]{6}", msg.hex_icao)
    assert 1 <= msg.transmission_type <= 8
    assert msg.generated_at.utcoffset() == timedelta(0) and msg.generated_at.year >= 1969
    assert msg.lat_deg is None or -90.0 <= msg.lat_deg <= 90.0
    assert msg.lon_deg is None or -180.0 <= msg.lon_deg <= 180.0
    assert (msg.lat_deg is None) == (msg.lon_deg is None)
    for alt in (msg.alt_baro_ft, msg.alt_geom_ft):
        assert alt is None or -2_000 <= alt <= 100_000
    assert msg.squawk is None or re.fullmatch(r"[0-7]{4}", msg.squawk)
    check_text(msg.callsign)


def parse_any(line: str, tz: ZoneInfo | None) -> SbsMessage | None:
    try:
        msg = parse_line(line, tz)
    except SbsLineError as exc:
        rejected = rejected_line(exc, line)
        assert rejected.field and len(rejected.raw) <= 200
        check_text(rejected.raw)
        check_text(rejected.reason)
        return None
    if msg is not None:
        check_message(msg)
    return msg


@given(st.one_of(any_text, msg_line()), st.sampled_from(ZONES))
@fuzz(200)
def test_a_line_is_a_message_none_or_an_sbs_line_error(line: str, tz: ZoneInfo | None) -> None:
    parse_any(line, tz)


@given(st.lists(msg_line(), max_size=12), st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=3))
@fuzz(100)
def test_the_assembler_keeps_its_promises(lines: list[str], takes_s: list[int]) -> None:
    assembler = Assembler(FEED)
    for line in lines:
        msg = parse_any(line, UTC)
        if msg is not None:
            assembler.add(msg)
    for offset_s in takes_s:
        result = assembler.take(T0 + timedelta(seconds=offset_s))
        check_result(result, FEED)
        assert all(o.emergency in (None, "general") for o in result.observations)


@st.composite
def capture(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, float, float]]]:
    """Good MSG,3 lines (distinct hexes) among bad lines and raw bytes."""
    hexes = draw(st.lists(st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06x}"), unique=True, max_size=5))
    goods = [(h, draw(st.integers(-90_000, 90_000)) / 1000, draw(st.integers(-180_000, 180_000)) / 1000) for h in hexes]
    lines = [
        f"MSG,3,1,1,{h.upper()},1,{STAMP[0]},{STAMP[1]},{STAMP[0]},{STAMP[1]},,31000,,,{lat},{lon},,,,,,0".encode()
        for h, lat, lon in goods
    ]
    bad = st.one_of(msg_line().map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=60))
    for piece in draw(st.lists(bad, max_size=8)):
        lines.insert(draw(st.integers(0, len(lines))), piece)
    ending = draw(st.sampled_from([b"\r\n", b"\n"]))
    return ending.join(lines) + draw(st.sampled_from([b"", ending, ending + b"MSG,3,1"])), goods


@given(capture())
@fuzz(100)
def test_a_capture_keeps_every_good_position_among_bad_lines(
    case: tuple[bytes, list[tuple[str, float, float]]],
) -> None:
    body, goods = case
    result = parse_sbs(body, feed=FEED, tz=UTC, received_at=T0)
    check_result(result, FEED)
    got = {(o.hex_icao, o.lat_deg, o.lon_deg, o.position_at) for o in result.observations}
    assert {(h, lat, lon, T0) for h, lat, lon in goods} <= got


@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=20), st.floats(1.0, 120.0))
@fuzz(100)
def test_a_live_message_is_always_within_the_tolerance_of_its_receive_time(
    offsets_s: list[int], tolerance_s: float
) -> None:
    clock = ReceiverClock(tolerance_s)
    msg = parse_line(f"MSG,3,1,1,AE01D2,1,{STAMP[0]},{STAMP[1]},,,,,,,37.0,124.8,,,,,,0", UTC)
    assert msg is not None and clock.tolerance_s == tolerance_s
    for offset_s in offsets_s:
        received = T0 - timedelta(seconds=offset_s)
        stamped, _ = clock.stamp(msg, received)
        assert abs((stamped.generated_at - received).total_seconds()) <= tolerance_s
        assert stamped.generated_at in (msg.generated_at, received)
