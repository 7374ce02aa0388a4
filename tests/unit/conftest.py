"""Fixtures of the unit tests: large watchlists built from plane-alert-db's whole military list, and what
the fuzz tests share (settings, hostile JSON, the invariants of a ParseResult).

tests/fixtures/plane-alert-mil__...FULL_at_bf1e2ba.csv (9,851 rows; ODbL 1.0, see
tests/fixtures/PLANE-ALERT-DB.md) is repeated with shifted hexes and suffixed registrations until the list
has the rows asked for; the lists are written under tmp_path only, never shipped.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st

from ingest.models import Observation, ParseResult

FIXTURES = Path(__file__).parents[1] / "fixtures"
PLANE_ALERT_MIL = FIXTURES / "plane-alert-mil__sdr-enthusiasts_plane-alert-db__FULL_at_bf1e2ba.csv"

BigWatchlist = Callable[[int], Path]


def write_big_watchlist(path: Path, rows: int) -> Path:
    """A plane-alert-db CSV of `rows` rows with unique hexes, built from the real military list."""
    with PLANE_ALERT_MIL.open(encoding="utf-8", newline="") as fh:
        header, *data = list(csv.reader(fh))
    out: list[list[str]] = []
    used: set[str] = set()
    i = 0
    while len(out) < rows:
        row = list(data[i % len(data)])
        copy = i // len(data)
        row[0] = f"{(int(row[0], 16) + 0x10000 * copy) % 0xFFFFFF:06X}"
        if copy and row[1]:
            row[1] = f"{row[1]}-{copy}"
        i += 1
        if row[0] not in used:
            used.add(row[0])
            out.append(row)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *out])
    return path


@pytest.fixture
def big_watchlist(tmp_path: Path) -> BigWatchlist:
    return lambda rows: write_big_watchlist(tmp_path / f"watchlist-{rows}.csv", rows)


# -- fuzzing: settings, hostile JSON and the invariants of what a parser may return ----------------------
#
# The fuzz tests (tests/unit/test_fuzz_*.py) run a short profile in the normal suite; scripts/fuzz.py runs
# the same tests with INGEST_FUZZ_EXAMPLES set (e.g. 20000) for the long profile. `fuzz(n)` is the
# settings of one test: n examples in the suite, INGEST_FUZZ_EXAMPLES under scripts/fuzz.py.

FUZZ_EXAMPLES_ENV = "INGEST_FUZZ_EXAMPLES"


def fuzz(examples: int) -> hypothesis.settings:
    long_run = os.environ.get(FUZZ_EXAMPLES_ENV)
    return hypothesis.settings(
        max_examples=int(long_run) if long_run else examples,
        deadline=None,  # a 5,000-deep body takes a while on a loaded 2-core machine, and that is fine
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        print_blob=True,  # a failure prints the @reproduce_failure line
    )


# Numbers JSON text may carry that a Python float or a C integer cannot: the parsers see them as text.
HOSTILE_NUMBERS = (
    "1e300", "-1e300", "1e400", "-1e400", "1E309", "-0.0", "0", "-0", "1e-400", "4.9e-324",
    str(2**63), str(-(2**63) - 1), str(2**64), str(2**80), "9" * 400, "9" * 5_000, "253402300800", "253402300800000",
    "1785336058500", "1785336058.5", "-1",
)  # fmt: skip
NON_JSON_NUMBERS = ("NaN", "Infinity", "-Infinity", "nan", "inf", "+1", "01", "1.", ".5", "0x10")


def _json_string(data: bytes) -> bytes:
    return b'"' + data + b'"'


# Strings msgspec reads (or skips) without failing the whole body: any text, escapes, raw bytes that are
# not UTF-8 (skipped unread, or one record's DecodeError). A lone surrogate escape ("\ud800") is not among
# them: msgspec refuses the whole body for it, wherever it is (the feed-level FeedFormatError).
json_strings = st.one_of(
    st.text(max_size=30).map(lambda s: json.dumps(s).encode()),
    st.text(max_size=30).map(lambda s: json.dumps(s, ensure_ascii=False).encode()),
    st.sampled_from([b'"\\u0000"', b'"\\ud83d\\ude00"', b'"ground"', b'"GROUND"', b'""', b'"\\/"']),
    st.lists(st.integers(0x20, 0xFF).filter(lambda b: b not in b'"\\'), max_size=12).map(bytes).map(_json_string),
)  # raw bytes, UTF-8 or not; raw control characters (below 0x20) are a syntax error, see mutate()
lone_surrogates = st.sampled_from([b'"\\ud800"', b'"\\udfff"', b'"a\\ud83d"', b'"\\ude00b"'])
json_scalars = st.one_of(
    st.sampled_from([b"null", b"true", b"false"]),
    st.sampled_from(HOSTILE_NUMBERS).map(str.encode),
    st.integers().map(lambda i: str(i).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    json_strings,
)


def _array(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def _object(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"


json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(json_strings, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)


def deep(levels: int, inner: bytes = b"1") -> bytes:
    """An array nested `levels` deep: msgspec and tomllib recurse, and fail near 1,000."""
    return b"[" * levels + inner + b"]" * levels


# 100,000 levels cost a second an example to scan: only in the long profile.
DEEP_LEVELS = [2_000, 5_000, 100_000] if os.environ.get(FUZZ_EXAMPLES_ENV) else [2_000, 5_000]
hostile_values = st.one_of(
    json_values,
    st.sampled_from(DEEP_LEVELS).map(deep),
    st.integers(min_value=1, max_value=60).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


def mutate(body: bytes, data: st.DataObject) -> bytes:
    """A body as a broken or hostile sender could send it: cut, or with invalid UTF-8, a literal that
    is not JSON or a deep nest spliced in at some point."""
    kind = data.draw(st.sampled_from(["as is", "truncate", "splice", "splice", "bytes"]))
    if kind == "as is" or not body:
        return body
    at = data.draw(st.integers(0, len(body)))
    if kind == "truncate":
        return body[:at]
    if kind == "bytes":
        return body[:at] + data.draw(st.binary(min_size=1, max_size=8)) + body[at:]
    piece = data.draw(
        st.one_of(
            st.sampled_from(NON_JSON_NUMBERS).map(str.encode),
            st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b",", b"]", b"}", b'"', b"\\"]),
            lone_surrogates,
            st.sampled_from(DEEP_LEVELS).map(deep),
        )
    )
    return body[:at] + piece + body[at:]


def check_text(value: str | None) -> None:
    """A string the store and the log can write: valid UTF-8 (no lone surrogate)."""
    if value is not None:
        assert isinstance(value, str)
        value.encode("utf-8")


def check_observation(obs: Observation, feed: str) -> None:
    """What every Observation promises (ingest/models.py), whatever the input was."""
    assert re.fullmatch(r"[0-9a-f]{6}", obs.hex_icao), obs.hex_icao
    assert isinstance(obs.non_icao, bool) and isinstance(obs.on_ground, bool) and isinstance(obs.military, bool)
    assert isinstance(obs.lat_deg, float) and math.isfinite(obs.lat_deg) and -90.0 <= obs.lat_deg <= 90.0
    assert isinstance(obs.lon_deg, float) and math.isfinite(obs.lon_deg) and -180.0 <= obs.lon_deg <= 180.0
    assert isinstance(obs.position_at, datetime) and obs.position_at.utcoffset() == timedelta(0)
    for alt in (obs.alt_baro_ft, obs.alt_geom_ft):
        assert alt is None or (type(alt) is int and -2_000 <= alt <= 100_000), alt
    assert obs.gs_kt is None or (math.isfinite(obs.gs_kt) and 0.0 <= obs.gs_kt <= 4_000.0)
    assert obs.track_deg is None or (math.isfinite(obs.track_deg) and 0.0 <= obs.track_deg <= 360.0)
    assert obs.squawk is None or re.fullmatch(r"[0-7]{4}", obs.squawk)
    assert obs.callsign is None or (0 < len(obs.callsign) <= 8 and obs.callsign == obs.callsign.strip())
    assert obs.emergency is None or re.fullmatch(r"[a-z]{1,16}", obs.emergency)
    assert math.isfinite(obs.age_s) and obs.age_s >= 0.0
    assert obs.messages is None or type(obs.messages) is int
    assert obs.feed == feed
    for text in (obs.callsign, obs.squawk, obs.registration, obs.type_icao, obs.source_type, obs.emergency):
        check_text(text)


def check_result(result: ParseResult, feed: str) -> None:
    """A ParseResult's invariants: valid observations, rejections with a reason, a field and a raw cut."""
    for obs in result.observations:
        check_observation(obs, feed)
    for rejected in result.rejected:
        assert rejected.reason and rejected.field and len(rejected.raw) <= 200
        check_text(rejected.reason)
        check_text(rejected.raw)
        check_text(rejected.field)
    assert result.feed_now.utcoffset() == timedelta(0)
    assert result.aircraft >= 0 and result.without_position >= 0
