"""`ingest.watchlist`: parsing plane-alert-db style CSV (`parse_watchlist`, `load_watchlist`), grouping rows
into aircraft by registration, matching feed Observations by hex and by the feed's registration, the
registrations a feed may be queried for, and the bundled config/watchlist.csv.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import WatchlistError
from ingest.models import Observation
from ingest.watchlist import MAX_ROWS, Watchlist, load_watchlist, parse_watchlist
from tests.conftest import observation
from tests.unit.conftest import PLANE_ALERT_MIL, BigWatchlist

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


def test_one_registration_of_several_types_is_several_aircraft_known_by_hex() -> None:
    # plane-alert-db gives `17` to a French Air Force PC-21, a French Navy Atlantique and a Panther.
    wl = plain(
        "3B75EE,17,French Air Force,Pilatus PC-21,PC21",
        "3B9BD7,17,French Navy,Dassault Atlantique 2,ATLA",
        "3B9BF2,17,French Navy,Eurocopter AS565 Panther,AS65",
        "3B9BF3,17,French Navy,,",  # no type: which of the three it is, nothing says
    )
    assert [(e.key, e.registration, e.shared, e.hexes) for e in wl.entries] == [
        ("3b75ee", "17", True, ("3b75ee",)),
        ("3b9bd7", "17", True, ("3b9bd7",)),
        ("3b9bf2", "17", True, ("3b9bf2",)),
        ("3b9bf3", "17", True, ("3b9bf3",)),
    ]
    assert wl.by_registration("17") is None and len(wl.sharing("17")) == 4
    assert wl.match(make_obs("3b9bd7", registration="17")) is wl.entries[1]  # by hex, as ever
    assert wl.match(make_obs("3b0000", registration="17")) is None  # never by the shared registration
    assert not wl.wants("3b0000", False, "17")
    assert wl.queryable_registrations() == []  # a feed asked for `17` would answer with strangers


def test_one_registration_and_type_under_two_operator_spellings_is_one_aircraft() -> None:
    wl = plain(
        "AE4C01,168015,United States Marine Corps,Bell-Boeing MV-22B Osprey,V22",
        "AE4C0D,168015,US Marine Corps,Bell-Boeing MV-22B Osprey,V22",
        "AE4C0E,168015,US Marine Corps,,",  # a row without a type joins the only aircraft of that registration
    )
    (entry,) = wl.entries
    assert (entry.key, entry.shared, entry.hexes) == ("168015", False, ("ae4c01", "ae4c0d", "ae4c0e"))
    assert wl.by_registration("168015") is entry and wl.queryable_registrations() == ["168015"]


def test_plane_alert_dbs_shared_serials_are_told_apart() -> None:
    wl = load_watchlist(PLANE_ALERT_MIL)
    assert [(e.key, e.icao_type) for e in wl.sharing("17")] == [("3b75ee", "PC21"), ("3b9bd7", "ATLA"),
                                                                ("3b9bf2", "AS65")]  # fmt: skip
    assert wl.by_registration("F-RBAY") is not None and len(wl.by_registration("F-RBAY").hexes) == 2  # type: ignore[union-attr]
    assert len({e.key for e in wl.entries}) == len(wl)  # every aircraft has a key of its own
    assert sum(e.shared for e in wl.entries) == 99


def test_strict_refuses_one_hex_given_two_types() -> None:
    text = csv_text(
        PLAIN_HEADER, "3B75EE,17,French Air Force,Pilatus PC-21,PC21", "3B75EE,17,French Navy,Atlantique,ATLA"
    )
    with pytest.raises(WatchlistError, match=r"line 3: ICAO 3B75EE is already on line 2, for another aircraft"):
        parse_watchlist(text, strict=True)


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


@pytest.mark.parametrize("bad_hex", ["zzzzzz", "ae01d2f", "~ae01d", "", "0x1234", "ae 01d"])
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


# -- hostile and large files --------------------------------------------------------------------------


def test_a_hex_that_lost_its_leading_zeros_is_padded() -> None:
    """plane-alert-mil.csv at bf1e2ba lists Egypt's 010166 as `10166` (a spreadsheet dropped the zero)."""
    wl = plain("10166,SU-BRR,Egyptian Air Force,CASA C-295 M,C295", "4d2,X-1,Test,Test,T1")
    assert wl.hexes() == ["0004d2", "010166"]


def test_the_real_plane_alert_mil_list_loads() -> None:
    wl = load_watchlist(PLANE_ALERT_MIL)
    # 9,851 rows; some registrations have two hexes (re-hexed), and 46 name aircraft of several types (9,644
    # aircraft when those were merged)
    assert (len(wl), len(wl.hexes())) == (9_697, 9_851)
    assert wl.by_hex("010166") is not None


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        pytest.param(
            b'ICAO,Operator\nae01d2,"' + b"x" * 140_000 + b'"\n', 2, "field larger than field limit", id="field-140k"
        ),
        pytest.param(  # a quoted field over many lines: the line where it passes 128 KiB
            b'ICAO,Operator\nae01d2,ok\n71f00d,"' + b"x\n" * 70_000 + b'"\n', 65_539, "field larger", id="quoted-lines"
        ),
    ],
)
def test_a_csv_error_is_a_watchlist_error_naming_the_line(
    tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    """`_csv.Error: field larger than field limit (131072)` escaped from the reader."""
    path = tmp_path / "w.csv"
    path.write_bytes(content)
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    assert info.value.path == str(path)
    assert info.value.reason.startswith(f"line {line}: not CSV (")
    assert reason in info.value.reason
    with pytest.raises(WatchlistError):
        parse_watchlist(content.decode("utf-8"), "w.csv")


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"ICAO,Operator\n" + b"ae01d2,USAF\n" * 5000 + b"ae01d3,Fuerza A\xe9rea\n")
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    assert info.value.reason.startswith("line 5002: not UTF-8")


def test_a_line_over_a_mebibyte_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"ICAO,Operator\nae01d2," + b"x" * (3 << 20))
    with pytest.raises(WatchlistError, match=r"line 2: longer than 1,048,576 characters"):
        load_watchlist(path)


def test_old_mac_line_endings_still_load(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"ICAO,Registration\rae01d2,62-4125\r71f00d,230921\r")
    assert load_watchlist(path).hexes() == ["71f00d", "ae01d2"]


def test_a_lone_surrogate_in_text_is_refused() -> None:
    with pytest.raises(WatchlistError, match="line 2: not UTF-8"):
        parse_watchlist("ICAO,Operator\nae01d2,\udcff\n")


def rows_csv(n: int) -> str:
    return "ICAO,Registration\n" + "".join(f"{i:06x},R-{i}\n" for i in range(n))


def test_a_list_at_the_cap_loads() -> None:
    assert len(parse_watchlist(rows_csv(MAX_ROWS))) == MAX_ROWS == 50_000


def test_a_list_over_the_cap_is_refused_in_one_line_before_it_is_read_whole() -> None:
    text = rows_csv(MAX_ROWS + 1) + "this line is never read: not CSV \x00\n"
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(text, "big.csv")
    assert str(info.value) == "big.csv: more than 50,000 aircraft rows: the cap is 50,000"
    assert "\n" not in str(info.value)


def test_the_cap_is_checked_while_streaming(tmp_path: Path) -> None:
    """The reader stops at row 50,001: later lines (here, bytes that are not UTF-8) are never read."""
    path = tmp_path / "big.csv"
    path.write_bytes(rows_csv(MAX_ROWS + 1).encode() + b"\xff\xfe\n" * 10)
    with pytest.raises(WatchlistError, match="the cap is 50,000"):
        load_watchlist(path)


def test_seventeen_thousand_rows_load_in_well_under_a_second(big_watchlist: BigWatchlist) -> None:
    """plane-alert-db's whole list is about 17,000 rows (1,000,000 rows took 30 s and 1.7 GB before the cap)."""
    path = big_watchlist(17_000)
    started = time.perf_counter()
    wl = load_watchlist(path)
    elapsed_s = time.perf_counter() - started
    assert len(wl.hexes()) == 17_000
    assert elapsed_s < 2.0  # about 0.2 s on the 2-core test machine; slack for a loaded one


def test_many_rows_of_one_registration_stay_fast() -> None:
    """Each hex was looked up in a list of the registration's hexes: 20,000 rows of one registration took
    7 s, 50,000 about 45 s."""
    text = "ICAO,Registration\n" + "".join(f"{i:06x},SAME\n" for i in range(50_000))
    started = time.perf_counter()
    (entry,) = parse_watchlist(text).entries
    assert len(entry.hexes) == 50_000 and entry.hexes[:2] == ("000000", "000001")
    assert time.perf_counter() - started < 5.0  # about 0.3 s
