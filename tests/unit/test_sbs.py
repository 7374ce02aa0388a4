"""`ingest.feeds.sbs`: parse_line on both recorded SBS samples and on hand-written dump1090/readsb lines,
split_lines, the Assembler's merging per hex, and parse_sbs over a whole capture.

The samples: wiseman/node-sbs1 (the Kinetic doc's examples, every record type; its MSG,2 line has a stray
extra field, which shifts 258.3 into the latitude) and davewalker5 (dump1090-style lines, one SEL line
with a trailing note). Both start with `#` provenance lines, skipped here.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.feeds.sbs import (
    CLOCK_TOLERANCE_S,
    Assembler,
    ClockChange,
    ReceiverClock,
    SbsLineError,
    SbsMessage,
    parse_line,
    parse_sbs,
    rejected_line,
    resolve_timezone,
    split_lines,
)

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
FEED = "sbs-test"
SEOUL = ZoneInfo("Asia/Seoul")


def sample_lines(prefix: str) -> list[str]:
    (path,) = SAMPLES.glob(f"{prefix}*")
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def parse_all(lines: list[str]) -> tuple[list[SbsMessage], list[SbsLineError]]:
    messages, errors = [], []
    for line in lines:
        try:
            msg = parse_line(line, UTC)
        except SbsLineError as exc:
            errors.append(exc)
            continue
        if msg is not None:
            messages.append(msg)
    return messages, errors


def msg_line(kind: int, hex_: str = "71F00D", when: str = "2026/11/20,23:00:00.000", **fields: str) -> str:
    """A dump1090/readsb MSG line with the named fields (11 callsign ... 22 is_on_ground) filled in."""
    names = ["callsign", "alt", "gs", "track", "lat", "lon", "vrate", "squawk", "alert", "emerg", "spi", "ground"]
    values = [fields.get(name, "") for name in names]
    return ",".join(["MSG", str(kind), "1", "1", hex_, "1", *when.split(","), *when.split(","), *values]) + "\r"


T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


# -- the samples -------------------------------------------------------------------------------------


def test_wiseman_sample_every_record_type() -> None:
    messages, errors = parse_all(sample_lines("sbs1_basestation__wiseman"))
    # SEL, ID, AIR, STA, CLK carry no aircraft state: None, not errors.
    assert [(m.transmission_type, m.hex_icao) for m in messages] == [
        (1, "7404f2"),
        (3, "4ca2d6"),
        (4, "4ca767"),
        (5, "394a65"),
        (6, "4ca215"),
        (7, "51106e"),
        (8, "405f4e"),
    ]
    by_type = {m.transmission_type: m for m in messages}
    assert by_type[1].callsign == "RJA1118"
    assert by_type[1].generated_at == datetime(2008, 11, 28, 23, 48, 18, 611000, tzinfo=UTC)
    pos = by_type[3]
    assert (pos.lat_deg, pos.lon_deg, pos.alt_baro_ft, pos.on_ground) == (51.45735, -1.02826, 37000, False)
    assert (by_type[4].gs_kt, by_type[4].track_deg, by_type[4].has_position) == (288.6, 103.2, False)
    assert by_type[5].alt_baro_ft == 10000
    assert (by_type[6].squawk, by_type[6].alt_baro_ft) == ("0271", 33325)
    assert by_type[8].alt_baro_ft is None and by_type[8].callsign is None
    # The MSG,2 example has 23 fields: the extra one moves the track (258.3) into the latitude.
    assert [(e.field, str(e)) for e in errors] == [("lat", "lat 258.3 out of range")]


def test_davewalker_sample_dump1090_lines() -> None:
    messages, errors = parse_all(sample_lines("sbs1_dump1090__davewalker5"))
    assert errors == []  # the SEL line with its trailing note is a non-MSG record
    assert [(m.transmission_type, m.hex_icao) for m in messages] == [
        (8, "3965a3"),
        (6, "3965a3"),
        (7, "407dcd"),
        (5, "a8e8a0"),
    ]
    assert messages[1].squawk == "6303"
    assert messages[1].on_ground is None  # field 22 empty
    assert messages[0].on_ground is False  # field 22 "0"
    assert (messages[2].alt_baro_ft, messages[3].alt_baro_ft) == (18025, 32000)
    assert messages[3].generated_at == datetime(2023, 8, 23, 10, 37, 32, 733000, tzinfo=UTC)


def test_samples_through_parse_sbs() -> None:
    body = "\r\n".join(sample_lines("sbs1_basestation__wiseman")).encode()
    result = parse_sbs(body, feed=FEED, tz=UTC, received_at=T0)
    (obs,) = result.observations  # the one well-formed MSG,3
    assert (obs.hex_icao, obs.lat_deg, obs.lon_deg, obs.alt_baro_ft) == ("4ca2d6", 51.45735, -1.02826, 37000)
    assert (obs.source_type, obs.feed, obs.military, obs.on_ground) == ("other", FEED, False, False)
    assert obs.position_at == datetime(2008, 11, 28, 14, 53, 50, 594000, tzinfo=UTC)
    assert obs.age_s == (T0 - obs.position_at).total_seconds()
    assert [r.field for r in result.rejected] == ["lat"]
    assert result.aircraft == 7 and result.without_position == 6


# -- single lines --------------------------------------------------------------------------------------


def test_heartbeat_and_other_records_are_none() -> None:
    for line in ["", "\r", "   ", "SEL,,496,,,", "CLK,,496,-1,,-1,2010/02/19,18:18:19.036,2010/02/19,18:18:19.036"]:
        assert parse_line(line, UTC) is None


def test_geometric_altitude_h_suffix() -> None:
    msg = parse_line(msg_line(3, alt="35000H", lat="37.5", lon="126.9", ground="0"), UTC)
    assert msg is not None
    assert (msg.alt_baro_ft, msg.alt_geom_ft) == (None, 35000)
    baro = parse_line(msg_line(5, alt="35000"), UTC)
    assert baro is not None and (baro.alt_baro_ft, baro.alt_geom_ft) == (35000, None)


def test_surface_position_is_on_ground_without_altitude() -> None:
    msg = parse_line(msg_line(2, alt="25", gs="12.0", track="90.0", lat="37.46", lon="126.44"), UTC)
    assert msg is not None
    assert (msg.on_ground, msg.alt_baro_ft, msg.gs_kt, msg.lat_deg) == (True, None, 12.0, 37.46)


def test_is_on_ground_minus_one() -> None:
    msg = parse_line(msg_line(3, lat="37.46", lon="126.44", ground="-1"), UTC)
    assert msg is not None and msg.on_ground is True


def test_hex_lower_case_and_non_icao() -> None:
    msg = parse_line(msg_line(8, hex_="AE01D2"), UTC)
    assert msg is not None and (msg.hex_icao, msg.non_icao) == ("ae01d2", False)
    msg = parse_line(msg_line(8, hex_="~2B3C4D"), UTC)
    assert msg is not None and (msg.hex_icao, msg.non_icao) == ("2b3c4d", True)


def test_callsign_cleaned() -> None:
    msg = parse_line(msg_line(1, callsign="tora23  "), UTC)
    assert msg is not None and msg.callsign == "TORA23"
    msg = parse_line(msg_line(1, callsign="????????"), UTC)
    assert msg is not None and msg.callsign is None


def test_extra_trailing_fields_are_ignored() -> None:
    msg = parse_line(msg_line(6, squawk="7700").rstrip("\r") + ",extra,fields", UTC)
    assert msg is not None and msg.squawk == "7700"


def test_timezone_seoul_is_nine_hours_before_utc() -> None:
    line = msg_line(3, when="2026/11/21,08:00:00.250", lat="37.5", lon="126.9")
    as_utc, as_seoul = parse_line(line, UTC), parse_line(line, SEOUL)
    assert as_utc is not None and as_seoul is not None
    assert as_utc.generated_at == datetime(2026, 11, 21, 8, 0, 0, 250000, tzinfo=UTC)
    assert as_seoul.generated_at == datetime(2026, 11, 20, 23, 0, 0, 250000, tzinfo=UTC)
    assert as_utc.generated_at - as_seoul.generated_at == timedelta(hours=9)
    assert as_seoul.generated_at.tzinfo is UTC


def test_local_timezone_is_this_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    line = msg_line(8, when="2026/07/01,12:00:00.000")
    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        local = parse_line(line, None)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert local is not None and local.generated_at == datetime(2026, 7, 1, 3, 0, tzinfo=UTC)


def test_resolve_timezone() -> None:
    assert resolve_timezone("UTC") is UTC
    assert resolve_timezone("local") is None
    assert resolve_timezone("Asia/Seoul") == SEOUL
    with pytest.raises(ValueError, match="Mars/Olympus"):
        resolve_timezone("Mars/Olympus")


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("HELLO WORLD", "message_type"),
        ("MSG,3,1,1,71F00D,1,2026/11/20,23:00:00.000", "field_count"),
        (msg_line(9), "transmission_type"),
        (msg_line(3, hex_="71F00"), "hex"),
        (msg_line(3, hex_="ZZZZZZ"), "hex"),
        (msg_line(3, when="2026-11-20,23:00:00.000"), "date_generated"),
        (msg_line(3, when="2026/02/30,23:00:00.000"), "date_generated"),
        (msg_line(3, when="2026/11/20,23h00"), "time_generated"),
        (msg_line(3, lat="91.0", lon="126.9"), "lat"),
        (msg_line(3, lat="37.5", lon="-181"), "lon"),
        (msg_line(3, lat="nan", lon="126.9"), "lat"),
        (msg_line(3, lat="37.5"), "lon"),
        (msg_line(3, alt="FL350"), "altitude"),
        (msg_line(3, alt="999999"), "altitude"),
        (msg_line(4, gs="-5", track="10"), "ground_speed"),
        (msg_line(4, gs="400", track="1_0"), "track"),
        (msg_line(6, squawk="7800"), "squawk"),
        (msg_line(3, ground="yes"), "is_on_ground"),
        (msg_line(3, lat="\u0663\u0667.0", lon="126.9"), "lat"),  # Arabic-Indic digits: float() takes them
        (msg_line(3, alt="\uff13\uff15\uff10\uff10\uff10"), "altitude"),  # full-width digits
        (msg_line(3, alt="9" * 5000), "altitude"),
        (msg_line(3, when="0001/01/01,00:00:00.000"), "date_generated"),  # used to overflow the Assembler
        (msg_line(3, when="1969/12/31,23:59:59.999"), "date_generated"),
        (msg_line(3, when="\u0662\u0660\u0662\u0666/11/20,23:00:00.000"), "date_generated"),
        (msg_line(3, hex_="\udcff\udcfe\udcfd"), "hex"),
    ],
)
def test_malformed_lines_name_the_field(line: str, field: str) -> None:
    with pytest.raises(SbsLineError) as info:
        parse_line(line, UTC)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    rejected = rejected_line(info.value, line + "x" * 500)
    assert rejected.field == field and len(rejected.raw) == 200


def test_rejected_raw_escapes_lone_surrogates() -> None:
    line = msg_line(3, hex_="\udcffZZZZZ")
    with pytest.raises(SbsLineError) as info:
        parse_line(line, UTC)
    rejected = rejected_line(info.value, line)
    rejected.raw.encode("utf-8")  # storable and loggable
    assert "\\udcff" in rejected.raw


@pytest.mark.parametrize(
    ("when", "zone"),
    [
        ("9999/12/31,23:59:59.999", UTC),
        ("9999/12/31,23:59:59.999", ZoneInfo("America/New_York")),  # year 10000 in UTC
        ("1970/01/01,00:00:00.000", SEOUL),  # 1969 in UTC
    ],
)
def test_far_dates_are_a_time_or_a_rejected_line(when: str, zone: ZoneInfo) -> None:
    try:
        msg = parse_line(msg_line(3, when=when, lat="37.0", lon="124.8"), zone)
    except SbsLineError as exc:
        assert exc.field == "date_generated"
        return
    assert msg is not None
    asm = Assembler(FEED)
    asm.add(msg)
    (obs,) = asm.take(T0).observations
    assert obs.position_at.tzinfo is UTC


@pytest.mark.parametrize(("flag", "expected"), [("-1", True), ("0", False), ("", None), ("1", None), ("12.5", None)])
def test_emergency_flag_never_rejects_the_line(flag: str, expected: bool | None) -> None:
    msg = parse_line(msg_line(3, lat="37.0", lon="124.8", squawk="7700", emerg=flag), UTC)
    assert msg is not None and msg.emergency is expected and msg.squawk == "7700"


def test_assembler_emergency_is_general_while_the_flag_is_set() -> None:
    asm = Assembler(FEED)
    feed_lines(
        asm,
        msg_line(3, when="2026/11/20,23:00:00.000", lat="37.0", lon="124.8", emerg="0"),
        msg_line(6, when="2026/11/20,23:00:01.000", squawk="7700", emerg="-1"),
        msg_line(3, when="2026/11/20,23:00:02.000", lat="37.01", lon="124.81"),  # field 20 empty: still set
        msg_line(3, when="2026/11/20,23:00:03.000", lat="37.02", lon="124.82", emerg="0"),
    )
    observations = asm.take(T0 + timedelta(seconds=5)).observations
    assert [o.emergency for o in observations] == [None, "general", None]
    assert [o.squawk for o in observations] == [None, "7700", "7700"]


def test_receiver_clock_switches_to_the_receive_time_beyond_the_tolerance() -> None:
    clock = ReceiverClock()
    assert clock.tolerance_s == CLOCK_TOLERANCE_S == 30.0
    msg = parse_line(msg_line(3, lat="37.0", lon="124.8"), UTC)
    assert msg is not None  # stamped T0
    assert clock.stamp(msg, T0 + timedelta(seconds=29)) == (msg, None)  # within: the receiver's time
    later = T0 + timedelta(hours=1)
    stamped, change = clock.stamp(msg, later)
    assert stamped.generated_at == later and change == ClockChange(True, -3600.0)
    assert clock.stamp(msg, later + timedelta(seconds=1))[1] is None  # one change per episode
    assert clock.stamp(msg, T0 + timedelta(seconds=20)) == (replace(msg, generated_at=T0 + timedelta(seconds=20)), None)
    stamped, change = clock.stamp(msg, T0 + timedelta(seconds=10))  # within half the tolerance: back
    assert stamped == msg and change == ClockChange(False, -10.0)


# -- split_lines -----------------------------------------------------------------------------------------


def test_split_lines_crlf_lf_and_partial() -> None:
    lines, rest = split_lines(b"a\r\nb\n\r\nc,d")
    assert (lines, rest) == (["a", "b", ""], b"c,d")
    lines, rest = split_lines(rest + b",e\r")  # CR arrived, LF not yet
    assert (lines, rest) == ([], b"c,d,e\r")
    lines, rest = split_lines(rest + b"\n")
    assert (lines, rest) == (["c,d,e"], b"")


# -- the Assembler -------------------------------------------------------------------------------------


def feed_lines(assembler: Assembler, *lines: str, tz: ZoneInfo | None = None) -> None:
    for line in lines:
        msg = parse_line(line, tz or UTC)
        assert msg is not None
        assembler.add(msg)


def test_assembler_merges_callsign_velocity_squawk_into_positions() -> None:
    asm = Assembler(FEED)
    feed_lines(
        asm,
        msg_line(1, when="2026/11/20,23:00:00.000", callsign="TORA23"),
        msg_line(4, when="2026/11/20,23:00:00.500", gs="412.5", track="45.2"),
        msg_line(6, when="2026/11/20,23:00:00.700", squawk="4651"),
        msg_line(3, when="2026/11/20,23:00:01.000", alt="31000", lat="37.0", lon="124.8", ground="0"),
        msg_line(5, when="2026/11/20,23:00:01.500", alt="31100"),
        msg_line(3, when="2026/11/20,23:00:02.000", lat="37.01", lon="124.81"),  # no altitude in this one
    )
    result = asm.take(T0 + timedelta(seconds=5))
    first, second = result.observations
    assert first.position_at == T0 + timedelta(seconds=1)
    assert first.age_s == 4.0
    assert (first.callsign, first.gs_kt, first.track_deg, first.squawk) == ("TORA23", 412.5, 45.2, "4651")
    assert (first.alt_baro_ft, first.on_ground, first.alt_geom_ft) == (31000, False, None)
    assert (second.lat_deg, second.alt_baro_ft, second.age_s) == (37.01, 31100, 3.0)  # the MSG,5 altitude
    assert (second.hex_icao, second.source_type, second.military, second.feed) == ("71f00d", "other", False, FEED)
    assert second.messages == 6
    assert (result.aircraft, result.without_position, result.feed_now) == (1, 0, T0 + timedelta(seconds=5))
    # Taken once: the next take is empty, but the hex's state is kept for its next position.
    assert asm.take(T0 + timedelta(seconds=6)).observations == ()
    feed_lines(asm, msg_line(3, when="2026/11/20,23:00:07.000", lat="37.02", lon="124.82"))
    (third,) = asm.take(T0 + timedelta(seconds=8)).observations
    assert third.callsign == "TORA23" and third.squawk == "4651"


def test_assembler_age_clipped_at_zero_and_hexes_kept_apart() -> None:
    asm = Assembler(FEED)
    feed_lines(
        asm,
        msg_line(1, hex_="AE01D2", callsign="TORA23"),
        msg_line(3, hex_="AE01CE", lat="36.0", lon="125.0", alt="20000"),
        msg_line(8, hex_="4CA215"),
    )
    result = asm.take(T0 - timedelta(seconds=3))  # our clock behind the receiver's
    (obs,) = result.observations
    assert (obs.hex_icao, obs.callsign, obs.age_s) == ("ae01ce", None, 0.0)
    assert (result.aircraft, result.without_position) == (3, 2)


def test_assembler_surface_and_geometric_altitudes() -> None:
    asm = Assembler(FEED)
    feed_lines(
        asm,
        msg_line(5, alt="1000"),
        msg_line(2, when="2026/11/20,23:00:01.000", gs="15", track="270", lat="37.46", lon="126.44"),
        msg_line(3, hex_="AE01D2", alt="35000H", lat="37.0", lon="125.0", ground="0"),
    )
    surface, airborne = asm.take(T0).observations
    assert (surface.on_ground, surface.alt_baro_ft, surface.gs_kt, surface.track_deg) == (True, None, 15.0, 270.0)
    assert (airborne.alt_baro_ft, airborne.alt_geom_ft, airborne.on_ground) == (None, 35000, False)


def test_assembler_stale_kinematics_are_not_copied() -> None:
    asm = Assembler(FEED)
    feed_lines(
        asm,
        msg_line(1, when="2026/11/20,23:00:00.000", callsign="TORA23"),
        msg_line(4, when="2026/11/20,23:00:00.000", gs="400", track="10"),
        msg_line(5, when="2026/11/20,23:00:00.000", alt="30000"),
        msg_line(3, when="2026/11/20,23:02:00.000", lat="37.0", lon="125.0"),
    )
    (obs,) = asm.take(T0 + timedelta(minutes=2)).observations
    assert (obs.callsign, obs.gs_kt, obs.alt_baro_ft) == ("TORA23", None, None)


def test_assembler_forgets_a_hex_after_five_silent_minutes() -> None:
    asm = Assembler(FEED)
    feed_lines(asm, msg_line(1, hex_="AE01D2", when="2026/11/20,23:00:00.000", callsign="TORA23"))
    feed_lines(asm, msg_line(8, hex_="4CA215", when="2026/11/20,23:04:00.000"))
    assert len(asm) == 2
    feed_lines(asm, msg_line(8, hex_="4CA215", when="2026/11/20,23:05:01.000"))
    assert len(asm) == 1  # ae01d2 forgotten by the stream's clock
    feed_lines(asm, msg_line(3, hex_="AE01D2", when="2026/11/20,23:05:02.000", lat="37.0", lon="125.0"))
    (obs,) = asm.take(T0 + timedelta(minutes=6)).observations
    assert obs.callsign is None  # not carried over from the forgotten state


def test_assembler_caps_hexes_pending_and_rejected() -> None:
    asm = Assembler(FEED, max_hexes=3, max_pending=2, max_rejected=1)
    for i in range(5):
        feed_lines(asm, msg_line(3, hex_=f"{i:06X}", lat="37.0", lon="125.0"))
    assert len(asm) == 3
    for line in ["junk", "more junk"]:
        with pytest.raises(SbsLineError) as info:
            parse_line(line, UTC)
        asm.reject(rejected_line(info.value, line))
    result = asm.take(T0)
    assert [o.hex_icao for o in result.observations] == ["000003", "000004"]  # the newest kept
    assert [r.raw for r in result.rejected] == ["more junk"]
    assert (asm.dropped_observations, asm.dropped_rejections) == (3, 1)


def test_assembler_wanted_filters_positions_but_counts_aircraft() -> None:
    asm = Assembler(FEED, wanted=lambda hex_icao, non_icao, reg: hex_icao == "ae01d2")
    feed_lines(
        asm,
        msg_line(3, hex_="AE01D2", lat="37.0", lon="125.0"),
        msg_line(3, hex_="4CA215", lat="37.1", lon="125.1"),
    )
    result = asm.take(T0)
    assert [o.hex_icao for o in result.observations] == ["ae01d2"]
    assert (result.aircraft, result.without_position) == (2, 0)


def test_timezone_through_the_assembler() -> None:
    line = msg_line(3, when="2026/11/21,08:00:00.000", lat="37.0", lon="125.0")
    utc = parse_sbs(line.encode() + b"\n", feed=FEED, tz=UTC, received_at=T0 + timedelta(hours=10))
    seoul = parse_sbs(line.encode() + b"\n", feed=FEED, tz=SEOUL, received_at=T0 + timedelta(hours=10))
    assert utc.observations[0].position_at - seoul.observations[0].position_at == timedelta(hours=9)
    assert (seoul.observations[0].position_at, seoul.observations[0].age_s) == (T0, 36000.0)
