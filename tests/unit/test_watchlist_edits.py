"""The strict reading `ingest watchlist import`/`update` use (ingest/watchlist.py), and your edits: combining
them with the base list, the edits file, `add`, `remove`, finding a tail and what changed between two lists
(ingest/watchlist_edits.py)."""

from __future__ import annotations

import re

import pytest

from ingest.errors import WatchlistError
from ingest.watchlist import WatchEntry, Watchlist, parse_watchlist
from ingest.watchlist_edits import (
    Conflict,
    Edits,
    NewAircraft,
    NotWatched,
    Removal,
    SharedRegistration,
    add,
    check_new,
    combine,
    describe_changed,
    diff,
    entries_matching,
    find,
    format_edits,
    parse_edits,
    remove,
)
from tests.unit.conftest import PLANE_ALERT_MIL

HEADER = "$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link"
RJ = "AE01D2,62-4125,USAF,Boeing RC-135W,R135,Mil,Eye In The Sky,SIGINT,Rivet Joint,Oxcart,https://w.wiki/DiyD"
RJ2 = "AE01CE,62-4134,USAF,Boeing RC-135W,R135,Mil,Eye In The Sky,SIGINT,Rivet Joint,Oxcart,https://w.wiki/DiyD"
P8 = "71F00D,230921,Republic of Korea Navy,Boeing P-8A Poseidon,P8,Mil,,,,Distinctive,"
NOREG = "AE67F0,????,United States Navy,Boeing P-8A Poseidon,P8,Mil,,,,USN,"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def strict(*rows: str, header: str = HEADER) -> Watchlist:
    return parse_watchlist(csv_text(*rows, header=header), "new.csv", strict=True)


def refused(*rows: str, header: str = HEADER) -> str:
    with pytest.raises(WatchlistError) as info:
        strict(*rows, header=header)
    assert info.value.path == "new.csv"
    assert "\n" not in str(info.value)
    return info.value.reason


BASE = strict(RJ, RJ2, P8, NOREG)


# -- strict reading ---------------------------------------------------------------------------------------


def test_a_good_list_reads_as_the_lenient_reader_reads_it() -> None:
    assert [(e.key, e.hexes) for e in BASE.entries] == [
        ("62-4125", ("ae01d2",)), ("62-4134", ("ae01ce",)), ("230921", ("71f00d",)), ("ae67f0", ("ae67f0",)),
    ]  # fmt: skip
    lenient = parse_watchlist(csv_text(RJ, RJ2, P8, NOREG))
    assert lenient.entries == BASE.entries


def test_a_spreadsheets_scientific_notation_is_refused_with_its_line_and_why() -> None:
    reason = refused(RJ, "4.41E+11,ZZ664,Royal Air Force,Boeing RC-135W Airseeker,R135,Mil,,,,Oxcart,")
    assert reason.startswith("1 bad row: line 3: ICAO '4.41E+11' is a number in scientific notation")
    assert "spreadsheet" in reason and "digits are lost" in reason


def test_a_lost_leading_zero_is_refused_with_the_six_digits_to_write() -> None:
    """Start-up pads `10166` to `010166` (test_watchlist.py); an import never guesses."""
    reason = refused("10166,SU-BRR,Egyptian Air Force,CASA C-295 M,C295,Mil,,,,Other Air Forces,", RJ)
    assert reason == (
        "1 bad row: line 2: ICAO '10166' has 5 digits, not 6: a spreadsheet drops leading zeros; "
        "write all six (010166 if that is the hex)"
    )


@pytest.mark.parametrize(
    ("icao", "words"),
    [("GGGGGG", "is not 6 hex digits"), ("ae01d2x", "is not 6 hex digits"), ("", "has"), ("~ae01d2", "not 6 hex")],
)
def test_other_bad_hexes_are_refused(icao: str, words: str) -> None:
    reason = refused(RJ2, f"{icao},X-1,Op,Type,T1,Mil,,,,Cat,")
    assert reason.startswith("1 bad row: line 3: ICAO") and (words in reason or icao == ""), reason


def test_the_real_list_is_refused_for_exactly_its_two_zero_less_hexes() -> None:
    """plane-alert-mil.csv at bf1e2ba lists Egypt's 010166 and 010177 as `10166` and `10177`."""
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(PLANE_ALERT_MIL.read_text(encoding="utf-8"), "mil.csv", strict=True)
    assert info.value.reason.startswith("2 bad rows: line 197: ICAO '10166'")
    assert "line 198: ICAO '10177'" in info.value.reason
    fixed = (
        PLANE_ALERT_MIL.read_text(encoding="utf-8").replace("\n10166,", "\n010166,").replace("\n10177,", "\n010177,")
    )
    assert len(parse_watchlist(fixed, "mil.csv", strict=True)) == 9_697


def test_rows_with_another_number_of_fields_are_refused() -> None:
    reason = refused(RJ, "AE01CE,62-4134,USAF", RJ2 + ",extra")
    assert "line 3: 3 fields where the header has 11" in reason
    assert "line 4: 12 fields where the header has 11" in reason
    assert reason.startswith("2 bad rows:")


def test_a_hex_given_to_two_aircraft_is_refused_and_the_same_row_twice_is_not() -> None:
    assert len(strict(RJ, RJ)) == 1
    reason = refused(RJ, RJ.replace("62-4125", "62-9999"))
    assert reason == "1 bad row: line 3: ICAO AE01D2 is already on line 2, for another aircraft"


def test_a_long_value_is_refused() -> None:
    reason = refused(RJ.replace("USAF", "U" * 5_000))
    assert "line 2: field 3 has 5,000 characters" in reason


def test_a_header_without_registration_or_icao_is_refused_in_one_line() -> None:
    with pytest.raises(WatchlistError, match=r"no Registration column in the header \['ICAO', 'Operator'\]"):
        strict("AE01D2,USAF", header="ICAO,Operator")
    with pytest.raises(WatchlistError, match="no ICAO column"):
        strict("62-4125,USAF", header="hex;reg;type")


def test_a_header_alone_is_refused() -> None:
    assert refused(header=HEADER) == "no aircraft rows: the file has a header only"


def test_many_bad_rows_name_the_first_five_and_count_the_rest() -> None:
    rows = [f"{i}.{i}E+11,R-{i},Op,Type,T1,Mil,,,,Cat," for i in range(1, 13)]
    reason = refused(*rows)
    assert reason.startswith("12 bad rows: line 2: ")
    assert reason.count("scientific notation") == 5
    assert reason.endswith("; and 7 more")


# -- combining your edits with the base list --------------------------------------------------------------


def entry(reg: str | None, *hexes: str, operator: str = "Test") -> WatchEntry:
    return WatchEntry(reg, hexes, operator, "Test Type", "T1", "Cat", (), "")


def test_edits_add_replace_and_remove_and_each_aircraft_knows_its_origin() -> None:
    edits = Edits(
        added=(entry("NEW-1", "abc123"), entry("62-4125", "ae01d2", "ae0999", operator="Air Force")),
        removed=(Removal("62-4134", "ae01ce"), Removal(None, "ae67f0")),
    )
    combined = combine(BASE, edits, "bundled")
    wl = combined.watchlist
    assert [e.key for e in wl.entries] == ["NEW-1", "62-4125", "230921"]
    assert wl.by_hex("ae0999") is wl.by_registration("62-4125")
    assert wl.by_registration("62-4125").operator == "Air Force"  # type: ignore[union-attr]
    assert wl.by_hex("ae01ce") is None and wl.by_hex("ae67f0") is None
    assert [combined.origin(e) for e in wl.entries] == ["added", "added", "bundled"]
    assert combined.removed == 2


def test_a_removal_by_registration_does_not_take_an_aircraft_without_one() -> None:
    combined = combine(BASE, Edits(removed=(Removal("AE67F0", "ae67f0"),)), "imported")
    assert len(combined.watchlist) == 4 and combined.removed == 0


def test_an_added_hex_that_the_base_gives_another_aircraft_matches_yours() -> None:
    combined = combine(BASE, Edits(added=(entry("MINE", "ae01d2"),)), "imported")
    assert combined.watchlist.by_hex("ae01d2").key == "MINE"  # type: ignore[union-attr]


def test_the_edits_file_reads_back_what_was_written() -> None:
    edits = Edits(
        added=(
            entry("NEW-1", "abc123", "abc124"),
            WatchEntry(None, ("00a0b0",), "Op, with comma", "", "", "", ("x",), ""),
        ),
        removed=(Removal("62-4134", "ae01ce"), Removal(None, "ae67f0")),
    )
    text = format_edits(edits)
    assert text.splitlines()[0] == "Action," + HEADER
    assert "add,ABC123,NEW-1,Test," in text and 'add,00A0B0,,"Op, with comma",' in text
    assert "remove,AE01CE,62-4134,,,,,,,,," in text
    assert parse_edits(text, "edits.csv") == edits


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("move,AE01CE,62-4134,,,,,,,,,", "line 2: Action 'move' is neither add nor remove"),
        ("add,4.41E+11,X,,,,,,,,,", "line 2: ICAO '4.41E+11' is a number in scientific notation"),
        ("remove,AE01C,62-4134,,,,,,,,,", "line 2: ICAO 'AE01C' has 5 digits"),
        ("add,AE01CE,62-4134", "line 2: 3 fields where the header has 12"),
    ],
)
def test_a_broken_edits_file_is_refused_naming_the_line(line: str, problem: str) -> None:
    with pytest.raises(WatchlistError) as info:
        parse_edits("Action," + HEADER + "\n" + line + "\n", "edits.csv")
    assert problem in info.value.reason


def test_an_edits_file_without_an_action_column_is_refused() -> None:
    with pytest.raises(WatchlistError, match="no Action column"):
        parse_edits(csv_text(RJ), "edits.csv")


# -- add and remove ---------------------------------------------------------------------------------------


def spec(*hexes: str, **fields: object) -> NewAircraft:
    return check_new(NewAircraft(hexes=hexes, **fields))  # type: ignore[arg-type]


def test_add_a_new_aircraft() -> None:
    edits, new = add(
        combine(BASE, Edits(), "bundled"), Edits(), spec("ABC123", registration="12-3456", icao_type="c17")
    )
    assert new == WatchEntry("12-3456", ("abc123",), "", "", "C17", "", (), "")
    assert edits.added == (new,)


def test_add_to_a_listed_registration_adds_its_hexes_and_keeps_its_values() -> None:
    combined = combine(BASE, Edits(), "bundled")
    edits, new = add(combined, Edits(), spec("ae0999", registration="62-4125", operator="Air Force"))
    assert new.hexes == ("ae01d2", "ae0999")
    assert (new.operator, new.type_name, new.tags) == (
        "Air Force",
        "Boeing RC-135W",
        ("Eye In The Sky", "SIGINT", "Rivet Joint"),
    )
    changes = diff(BASE, combine(BASE, edits, "bundled").watchlist)
    assert not changes.added and not changes.removed
    assert [describe_changed(c) for c in changes.changed] == [
        "62-4125: hexes ae01d2 -> ae01d2 ae0999; operator USAF -> Air Force"
    ]


def test_add_a_hex_of_another_aircraft_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="ae01ce is already watched as 62-4134: remove that aircraft first"):
        add(combine(BASE, Edits(), "bundled"), Edits(), spec("ae01ce", registration="NEW-1"))


def test_add_after_remove_brings_the_aircraft_back() -> None:
    removed, _ = remove(combine(BASE, Edits(), "bundled"), BASE, Edits(), "62-4134")
    assert removed.removed == (Removal("62-4134", "ae01ce"),)
    back, _ = add(combine(BASE, removed, "bundled"), removed, spec("ae01ce", registration="62-4134"))
    assert back.removed == ()
    assert combine(BASE, back, "bundled").watchlist.by_hex("ae01ce") is not None


def test_remove_what_you_added_forgets_the_addition_and_records_nothing() -> None:
    edits, _ = add(combine(BASE, Edits(), "bundled"), Edits(), spec("abc123", registration="NEW-1"))
    after, gone = remove(combine(BASE, edits, "bundled"), BASE, edits, "new-1")
    assert gone.key == "NEW-1" and after == Edits()


def test_remove_an_aircraft_you_changed_takes_it_out_altogether() -> None:
    edits, _ = add(combine(BASE, Edits(), "bundled"), Edits(), spec("ae0999", registration="62-4125"))
    after, _ = remove(combine(BASE, edits, "bundled"), BASE, edits, "ae0999")
    assert after == Edits(removed=(Removal("62-4125", "ae01d2"),))
    assert combine(BASE, after, "bundled").watchlist.by_registration("62-4125") is None


def test_remove_by_hex_an_aircraft_without_registration() -> None:
    after, gone = remove(combine(BASE, Edits(), "bundled"), BASE, Edits(), "AE67F0")
    assert gone.registration is None and after.removed == (Removal(None, "ae67f0"),)


PC21 = "3B75EE,17,French Air Force,Pilatus PC-21,PC21,Mil,,,,Cat,"
ATLA = "3B9BD7,17,French Navy,Dassault Atlantique 2,ATLA,Mil,,,,Cat,"


def test_a_shared_registration_names_no_one_aircraft_and_each_is_removed_by_hex() -> None:
    base = strict(RJ, PC21, ATLA)
    with pytest.raises(SharedRegistration) as info:
        find(base, "17")
    assert str(info.value) == (
        "watchlist: '17' is the registration of 2 watched aircraft: 3b75ee (French Air Force PC21), "
        "3b9bd7 (French Navy ATLA); name one by its hex"
    )
    after, gone = remove(combine(base, Edits(), "bundled"), base, Edits(), "3B9BD7")
    assert gone.icao_type == "ATLA" and after.removed == (Removal(None, "3b9bd7"),)
    left = combine(base, after, "bundled").watchlist
    assert [e.key for e in left.entries] == ["62-4125", "3b75ee"]  # the PC-21 stays, still known by its hex
    assert parse_edits(format_edits(after), "edits.csv") == after  # and so it reads back


@pytest.mark.parametrize("tail", ["62-4125", "62 4125", "624125", "AE01D2", "~ae01d2", " 62-4125 "])
def test_find_by_registration_in_any_spelling_or_by_hex(tail: str) -> None:
    assert find(BASE, tail).key == "62-4125"


def test_an_unlisted_tail_is_not_watched_with_suggestions() -> None:
    with pytest.raises(NotWatched) as info:
        find(BASE, "62-4126")
    assert info.value.suggestions[:2] == ("62-4125", "62-4134")
    assert str(info.value).startswith("watchlist: '62-4126' is not on the watchlist")
    with pytest.raises(NotWatched):
        find(BASE, "")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (dict(hexes=("4.41E+11",)), "--hex: ICAO '4.41E+11' is a number in scientific notation"),
        (dict(hexes=("10166",)), "--hex: ICAO '10166' has 5 digits"),
        (dict(hexes=()), "--hex: give the aircraft's ICAO hex"),
        (dict(hexes=("abc123",), registration="X" * 33), "--registration: 33 characters; at most 32"),
        (dict(hexes=("abc123",), operator="a\nb"), "--operator: control characters"),
        (dict(hexes=("abc123",), icao_type="RC-135"), "--icao-type: 'RC-135' is not an ICAO type designator"),
        (dict(hexes=("abc123",), link="javascript:alert(1)"), "--link: must be an http(s) URL"),
        (dict(hexes=("abc123",), tags=("a", "b", "c", "d")), "--tag: at most 3 tags"),
    ],
)
def test_add_checks_every_option(given: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(problem)):
        check_new(NewAircraft(**given))  # type: ignore[arg-type]


def test_add_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as info:
        check_new(NewAircraft(hexes=("zz",), icao_type="x", link="ftp://x"))
    assert str(info.value).count("; ") == 2


# -- what changed -----------------------------------------------------------------------------------------


def test_diff_names_added_removed_and_changed_fields() -> None:
    new = strict(RJ.replace("USAF", "United States Air Force"), P8, "ABC123,12-3456,USAF,Boeing C-17A,C17,Mil,,,,USAF,")
    changes = diff(BASE, new)
    assert [e.key for e in changes.added] == ["12-3456"]
    assert [e.key for e in changes.removed] == ["62-4134", "ae67f0"]
    assert [describe_changed(c) for c in changes.changed] == ["62-4125: operator USAF -> United States Air Force"]
    assert changes.unchanged == 1
    assert changes.summary() == "1 added, 2 removed, 1 changed, 1 unchanged"
    assert not diff(BASE, BASE)


def test_list_filters_are_case_insensitive_substrings() -> None:
    assert [e.key for e in entries_matching(BASE.entries, "usaf", None, None)] == ["62-4125", "62-4134"]
    assert [e.key for e in entries_matching(BASE.entries, None, "poseidon", "usn")] == ["ae67f0"]
    assert [e.key for e in entries_matching(BASE.entries, None, "r135", None)] == ["62-4125", "62-4134"]
    assert entries_matching(BASE.entries, "nobody", None, None) == []
