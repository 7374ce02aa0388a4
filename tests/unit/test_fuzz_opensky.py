"""Fuzz: OpenSky `parse_states`.

Rows are positional arrays (feeds.md §5.2): good rows with distinct icao24s among rows of any length whose
elements are any JSON value (huge and non-finite numbers, wrong types, deep nesting), in an envelope
whose `time` is any value. Allowed: a ParseResult keeping every good row, or, for a body broken as a
whole, one FeedFormatError.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from ingest.errors import FeedFormatError
from ingest.feeds.opensky import FT_PER_M, parse_states
from ingest.models import ParseResult
from tests.unit.conftest import check_result, fuzz, hostile_values, json_values, lone_surrogates, mutate

FEED = "opensky"
SOURCE = "https://opensky-network.org/api/states/all?icao24=<n items>"
RECEIVED = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
T = int(RECEIVED.timestamp())


@st.composite
def good_row(draw: st.DrawFn, icao24: str) -> list[Any]:
    on_ground = draw(st.booleans())
    return [
        icao24,
        draw(st.one_of(st.none(), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", max_size=8))),
        draw(st.text(max_size=20)),  # origin_country
        draw(st.one_of(st.none(), st.integers(T - 300, T))),  # time_position
        T - 1,  # last_contact
        draw(st.floats(-180, 180)),
        draw(st.floats(-90, 90)),
        draw(st.one_of(st.none(), st.floats(-600, 30_000))),  # baro_altitude, m
        on_ground,
        draw(st.one_of(st.none(), st.floats(0, 2_000))),  # velocity, m/s
        draw(st.one_of(st.none(), st.floats(0, 360))),
        draw(st.one_of(st.none(), st.floats(-100, 100))),  # vertical_rate (not read)
        None,
        draw(st.one_of(st.none(), st.floats(-600, 30_000))),  # geo_altitude, m
        draw(st.one_of(st.none(), st.sampled_from(["7700", "1200", "12345", ""]))),
        False,
        draw(st.sampled_from([0, 1, 2, 3, 7])),
        *draw(st.lists(st.integers(0, 20), max_size=2)),  # `extended=1` adds a category; rows may carry more
    ]


@st.composite
def bad_row(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(hostile_values)
    return b"[" + b",".join(draw(st.lists(hostile_values, max_size=19))) + b"]"


@st.composite
def mixed_states(draw: st.DrawFn) -> tuple[bytes, list[list[Any]]]:
    hexes = draw(st.lists(st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06x}"), unique=True, max_size=5))
    goods = [draw(good_row(h)) for h in hexes]
    pieces = [json.dumps(g).encode() for g in goods] + draw(st.lists(bad_row(), max_size=6))
    order = draw(st.permutations(range(len(pieces))))
    extra = b"".join(b',"x%d":' % i + v for i, v in enumerate(draw(st.lists(hostile_values, max_size=2))))
    body = b'{"time":%d,"states":[' % T + b",".join(pieces[i] for i in order) + b"]" + extra + b"}"
    return body, goods


def parse(body: bytes) -> ParseResult | FeedFormatError:
    try:
        result = parse_states(body, feed=FEED, received_at=RECEIVED, source=SOURCE)
    except FeedFormatError as exc:
        event("FeedFormatError")
        assert exc.feed == FEED and "\n" not in exc.reason
        return exc
    check_result(result, FEED)
    assert len(result.observations) + len(result.rejected) + result.without_position == result.aircraft
    event("ParseResult with rejected records" if result.rejected else "ParseResult")
    return result


@given(mixed_states())
@fuzz(60)
def test_good_rows_among_hostile_ones_are_all_kept(case: tuple[bytes, list[list[Any]]]) -> None:
    body, goods = case
    result = parse(body)
    assert isinstance(result, ParseResult), result
    got = {o.hex_icao: o for o in result.observations}
    for row in goods:
        obs = got.get(row[0])
        assert obs is not None, (row, result.rejected)
        assert (obs.lon_deg, obs.lat_deg, obs.on_ground) == (row[5], row[6], row[8])
        assert obs.position_at == datetime.fromtimestamp(row[3] if row[3] is not None else row[4], tz=UTC)
        if row[7] is not None and not row[8]:
            assert obs.alt_baro_ft == round(row[7] * FT_PER_M)


@given(mixed_states(), st.data())
@fuzz(60)
def test_a_broken_body_is_a_result_or_one_feed_format_error(
    case: tuple[bytes, list[list[Any]]], data: st.DataObject
) -> None:
    parse(mutate(case[0], data))


@given(st.one_of(hostile_values, json_values, lone_surrogates, st.binary(max_size=64)))
@fuzz(60)
def test_any_value_as_the_body_time_or_states(value: bytes) -> None:
    parse(value)
    parse(b'{"time": ' + value + b', "states": []}')
    parse(b'{"time": %d, "states": ' % T + value + b"}")
