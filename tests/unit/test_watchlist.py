"""`ingest.watchlist`: parsing plane-alert-db style CSV (`parse_watchlist`, `load_watchlist`), grouping rows
into aircraft by registration, matching feed Observations by hex and by the feed's registration, the
registrations a feed may be queried for, and the bundled config/watchlist.csv.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import WatchlistError
from ingest.models import Observation
from ingest.watchlist import Watchlist, load_watchlist, parse_watchlist
from tests.conftest import observation

BUNDLED = Path(__file__).parents[2] / "config" / "watchlist.csv"
PLANE_ALERT_HEADER = "$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link"
PLAIN_HEADER = "ICAO,Registration,Operator,Type,ICAO Type"
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)


def make_obs(hex_icao: str = "ae01d2", **fields: Any) -> Observation:
    return observation(hex_icao, **{"position_at": T0, **fields})


def csv_text(header: str, *rows: str) -> str:
    return "\n".join((header, *rows)) + "\n"


def plain(*rows: str) -> Watchlist:
    return parse_watchlist(csv_text(PLAIN_HEADER, *rows))


# -- headers and columns --------------------------------------------------------------------------


def test_plane_alert_db_header_with_prefixes() -> None:
    text = csv_text(
        PLANE_ALERT_HEADER,
        "AE01D2,62-4125,USAF,Boeing RC-135W,R135,Mil,Eye In The Sky,SIGINT,Rivet Joint,Oxcart,https://w.wiki/DiyD",
    )
    wl = parse_watchlist(text)
    assert len(wl) == 1
    (entry,) = wl.entries
    assert entry.registration == "62-4125"
    assert entry.hexes == ("ae01d2",)
    assert entry.operator == "USAF"
    assert entry.type_name == "Boeing RC-135W"
    assert entry.icao_type == "R135"
    assert entry.category == "Oxcart"
    assert entry.tags == ("Eye In The Sky", "SIGINT", "Rivet Joint")
    assert entry.link == "https://w.wiki/DiyD"
    assert entry.key == "62-4125"


def test_plain_header() -> None:
    wl = plain("ae01d2,62-4125,USAF,Boeing RC-135W,r135")
    (entry,) = wl.entries
    assert (entry.registration, entry.hexes, entry.operator) == ("62-4125", ("ae01d2",), "USAF")
    assert entry.type_name == "Boeing RC-135W"
    assert entry.icao_type == "R135"  # upper-cased
    assert (entry.category, entry.tags, entry.link) == ("", (), "")


def test_extra_unknown_columns_are_ignored() -> None:
    text = csv_text(
        "Notes,ICAO,Registration,Squadron,Operator,Type,ICAO Type,Whatever",
        "first,ae01d2,62-4125,55 Wing,USAF,Boeing RC-135W,R135,x",
    )
    (entry,) = parse_watchlist(text).entries
    assert entry.registration == "62-4125"
    assert entry.hexes == ("ae01d2",)
    assert entry.operator == "USAF"
    assert entry.type_name == "Boeing RC-135W"
    assert entry.icao_type == "R135"


def test_cells_are_stripped_and_blank_and_comment_lines_skipped() -> None:
    text = "# a comment\n\nICAO,Registration,Operator\n  AE01D2 , 62-4125 , USAF \n\n# another\n"
    (entry,) = parse_watchlist(text).entries
    assert (entry.registration, entry.hexes, entry.operator) == ("62-4125", ("ae01d2",), "USAF")


# -- grouping ---------------------------------------------------------------------------------------


def test_same_registration_two_hexes_is_one_entry() -> None:
    wl = plain(
        "AE57B6,168850,United States Navy,Boeing P-8A Poseidon,P8",
        "AE684E,168850,United States Navy,Boeing P-8A Poseidon,P8",
    )
    assert len(wl) == 1
    (entry,) = wl.entries
    assert entry.registration == "168850"
    assert entry.hexes == ("ae57b6", "ae684e")
    assert wl.by_hex("ae57b6") is entry
    assert wl.by_hex("AE684E") is entry
    assert wl.hexes() == ["ae57b6", "ae684e"]


def test_same_hex_listed_twice_is_kept_once() -> None:
    wl = plain("ae01d2,62-4125,USAF,RC-135W,R135", "AE01D2,62-4125,USAF,RC-135W,R135")
    (entry,) = wl.entries
    assert entry.hexes == ("ae01d2",)


@pytest.mark.parametrize("placeholder", ["????", "Tactical", "TACTICAL", "", "  "])
def test_placeholder_registrations_are_keyed_by_hex(placeholder: str) -> None:
    wl = plain(
        f"ae6785,{placeholder},United States Navy,Boeing P-8A Poseidon,P8",
        f"ae6788,{placeholder},United States Navy,Boeing P-8A Poseidon,P8",
    )
    assert len(wl) == 2
    assert [e.registration for e in wl.entries] == [None, None]
    assert [e.key for e in wl.entries] == ["ae6785", "ae6788"]
    assert [e.hexes for e in wl.entries] == [("ae6785",), ("ae6788",)]
    assert wl.queryable_registrations() == []


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_hex", ["zzzzzz", "ae01d", "ae01d2f", "~ae01d", ""])
def test_bad_hex_raises_naming_the_line(bad_hex: str) -> None:
    text = csv_text(PLAIN_HEADER, "ae01d2,62-4125,USAF,RC-135W,R135", f"{bad_hex},62-4126,USAF,RC-135W,R135")
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(text, "lists/watch.csv")
    assert info.value.path == "lists/watch.csv"
    assert "line 3" in info.value.reason
    assert repr(bad_hex) in info.value.reason


def test_bad_hex_line_number_counts_blank_and_comment_lines() -> None:
    # The bad row is on line 5 of the file; users open the file at the line the error names.
    text = "# watched ISR aircraft\nICAO,Registration\nae01d2,62-4125\n\nzzzzzz,62-4126\n"
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(text)
    assert "line 5:" in info.value.reason


def test_no_icao_column_raises() -> None:
    with pytest.raises(WatchlistError) as info:
        parse_watchlist("Hex,Registration\nae01d2,62-4125\n", "w.csv")
    assert "no ICAO column" in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_raises(text: str) -> None:
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(text, "w.csv")
    assert info.value.reason == "the file is empty"


def test_load_watchlist_reads_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "watch.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(PLANE_ALERT_HEADER, "AE01D2,62-4125,USAF,RC-135W,R135").encode())
    entry = load_watchlist(path).by_hex("ae01d2")
    assert entry is not None
    assert entry.registration == "62-4125"


def test_load_watchlist_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    assert info.value.path == str(path)


def test_load_watchlist_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"ICAO,Operator\nae01d2,Fuerza A\xe9rea\n")
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    assert "not UTF-8" in info.value.reason


# -- matching ---------------------------------------------------------------------------------------


@pytest.fixture
def watchlist() -> Watchlist:
    return plain(
        "ae01d2,62-4125,USAF,Boeing RC-135W,R135",
        "ae6785,????,United States Navy,Boeing P-8A Poseidon,P8",
        "71f00d,230921,Republic of Korea Navy,Boeing P-8A Poseidon,P8",
    )


def test_match_by_hex(watchlist: Watchlist) -> None:
    entry = watchlist.match(make_obs("ae01d2"))
    assert entry is not None
    assert entry.registration == "62-4125"
    placeholder = watchlist.match(make_obs("ae6785"))
    assert placeholder is not None
    assert placeholder.key == "ae6785"


def test_match_by_feed_registration_when_hex_unknown(watchlist: Watchlist) -> None:
    # A re-hexed airframe: a new hex, but the feed's database still knows the serial.
    entry = watchlist.match(make_obs("ae0fff", registration="62-4125"))
    assert entry is not None
    assert entry.hexes == ("ae01d2",)
    assert watchlist.match(make_obs("ae0fff", registration=" 62-4125 ")) is entry


def test_match_by_registration_is_case_insensitive() -> None:
    wl = plain("c0ffee,N123AB,Someone,Cessna,C172")
    assert wl.match(make_obs("aaaaaa", registration="n123ab")) is wl.entries[0]


def test_hex_wins_over_registration(watchlist: Watchlist) -> None:
    entry = watchlist.match(make_obs("71f00d", registration="62-4125"))
    assert entry is not None
    assert entry.registration == "230921"


def test_no_match(watchlist: Watchlist) -> None:
    assert watchlist.match(make_obs("abcdef")) is None
    assert watchlist.match(make_obs("abcdef", registration="N999ZZ")) is None
    assert watchlist.match(make_obs("abcdef", registration="????")) is None


def test_non_icao_record_does_not_match_by_hex(watchlist: Watchlist) -> None:
    assert watchlist.match(make_obs("ae01d2", non_icao=True)) is None
    assert watchlist.match(make_obs("71f00d", non_icao=True)) is None


def test_lookups_by_hex_and_registration(watchlist: Watchlist) -> None:
    assert watchlist.by_hex("AE01D2") is watchlist.by_registration("62-4125")
    assert watchlist.by_registration("nope") is None
    assert watchlist.hexes() == ["71f00d", "ae01d2", "ae6785"]


def test_queryable_registrations_excludes_unsafe_characters() -> None:
    wl = plain(
        "a00001,62-4125,,,",
        "a00002,N 123,,,",  # space
        "a00003,62/4126,,,",  # slash
        "a00004,ÄB-1,,,",  # non-ASCII
        "a00005,ok_1.2,,,",
        "a00006,????,,,",  # placeholder: no registration
        "a00007,230921,,,",
        "a00008,62-4125,,,",  # same registration: listed once
        "a00009,a%2Cb,,,",  # percent
    )
    assert wl.queryable_registrations() == ["230921", "62-4125", "ok_1.2"]


# -- the bundled watchlist --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> Watchlist:
    return load_watchlist(BUNDLED)


def test_bundled_watchlist_loads(bundled: Watchlist) -> None:
    assert len(bundled) > 100
    assert all(re.fullmatch(r"[0-9a-f]{6}", h) for h in bundled.hexes())


def test_bundled_rivet_joint_62_4125(bundled: Watchlist) -> None:
    entry = bundled.by_registration("62-4125")
    assert entry is not None
    assert "ae01d2" in entry.hexes
    assert entry.icao_type == "R135"
    assert entry.operator == "USAF"
    assert "RC-135" in entry.type_name
    assert bundled.by_hex("ae01d2") is entry
    assert bundled.match(make_obs("ae01d2")) is entry


def _has(wl: Watchlist, type_pattern: str, operator: str | None = None) -> bool:
    return any(
        re.search(type_pattern, e.type_name) and (operator is None or e.operator == operator) for e in wl.entries
    )


@pytest.mark.parametrize(
    ("type_pattern", "operator"),
    [
        (r"\bRC-135V\b", None),
        (r"\bRC-135W\b", None),
        (r"\bRC-135S\b", None),
        (r"\bRC-135U\b", None),
        (r"\bRQ-4\b", None),
        (r"\bEP-3E\b", None),
        (r"\bP-8", "United States Navy"),
        (r"\bP-8", "Republic of Korea Navy"),
        (r"\bE-3[A-G]?\b", None),
        (r"\bU-2", None),
        (r"\bE-737\b", "Republic of Korea Air Force"),
    ],
)
def test_bundled_watchlist_contains(bundled: Watchlist, type_pattern: str, operator: str | None) -> None:
    assert _has(bundled, type_pattern, operator)


@pytest.mark.parametrize("type_pattern", [r"\bTC-135", r"\bWC-135", r"\bOC-135"])
def test_bundled_watchlist_excludes(bundled: Watchlist, type_pattern: str) -> None:
    assert not _has(bundled, type_pattern)
