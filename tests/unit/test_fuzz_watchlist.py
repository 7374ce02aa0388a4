"""Fuzz: the watchlist reader (parse_watchlist on text, load_watchlist on bytes in a file).

Cells are good values or hostile ones (quotes, commas, line breaks, NUL, lone surrogates, `#`, fields over
csv's 128 KiB limit), under plane-alert-db's header or a plain one; files get bytes that are not UTF-8 and
are cut anywhere. Allowed: a Watchlist whose hexes are 6 lower-case hex digits, holding every row of a
list that has only good rows, or one WatchlistError (the reader is strict: a config file is fixed by
its owner, not skipped over).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import WatchlistError
from ingest.watchlist import Watchlist, load_watchlist, parse_watchlist
from tests.unit.conftest import check_text, fuzz

HEADERS = [
    ["$ICAO", "$Registration", "$Operator", "$Type", "$ICAO Type", "#CMPG", "$Tag 1", "$#Tag 2", "$#Tag 3", "Category",
     "$#Link"],
    ["ICAO", "Registration", "Operator", "Type", "ICAO Type"],
    ["icao", "registration"],
    ["Registration", "ICAO", "Unknown Column"],
    ["ICAO"],
]  # fmt: skip
hexes = st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06X}")
good_cells = st.one_of(st.text(max_size=12), st.sampled_from(["????", "Tactical", "", "62-4125", "N/A"]))
hostile_cells = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=20),  # lone surrogates included
    st.sampled_from(['"', '""', "a,b", "a\nb", "a\r\nb", "a\rb", "\x00", "#comment", "  ", "\ufeff", "zz", "~abc"]),
    st.sampled_from(["1" * 7, "ABCDEFG", "0x1234", "1e5", "10166"]),
    st.just("x" * 140_000),  # over csv's field limit
)


def check(wl: Watchlist) -> None:
    for entry in wl.entries:
        assert entry.hexes and all(re.fullmatch(r"[0-9a-f]{6}", h) for h in entry.hexes)
        assert wl.by_hex(entry.hexes[0]) is not None
        for text in (entry.registration, entry.operator, entry.type_name, entry.icao_type, entry.link):
            check_text(text)
    assert wl.hexes() == sorted(set(wl.hexes()))


def write_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


@st.composite
def good_list(draw: st.DrawFn) -> tuple[str, set[str]]:
    header = draw(st.sampled_from(HEADERS))
    icao_at = header.index(next(h for h in header if h.strip("$#").lower() == "icao"))
    rows, listed = [], set()
    for hex_icao in draw(st.lists(hexes, max_size=20)):
        row = [draw(good_cells) for _ in header]
        row[icao_at] = hex_icao
        if not row[0].lstrip().startswith("#"):  # a row whose first cell starts with # is a comment
            rows.append(row)
            listed.add(hex_icao.lower())
    return write_csv([header, *rows]), listed


@given(good_list())
@fuzz(80)
def test_a_list_of_good_rows_keeps_every_hex(case: tuple[str, set[str]]) -> None:
    text, listed = case
    wl = parse_watchlist(text, "w.csv")
    check(wl)
    assert set(wl.hexes()) == listed


@st.composite
def hostile_list(draw: st.DrawFn) -> str:
    text, _ = draw(good_list())
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        cells = draw(st.lists(st.one_of(hexes, good_cells, hostile_cells), min_size=1, max_size=6))
        lines.insert(draw(st.integers(0, len(lines))), ",".join(cells) + "\n")
    return "".join(lines)


@given(hostile_list())
@fuzz(80)
def test_any_text_is_a_watchlist_or_one_watchlist_error(text: str) -> None:
    try:
        wl = parse_watchlist(text, "w.csv")
    except WatchlistError as exc:
        assert exc.path == "w.csv" and "\n" not in str(exc)
        check_text(str(exc))
        return
    check(wl)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-watchlist")


@given(hostile_list(), st.data())
@fuzz(60)
def test_any_file_is_a_watchlist_or_one_watchlist_error(folder: Path, text: str, data: st.DataObject) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    at = data.draw(st.integers(0, len(raw)))
    raw = data.draw(
        st.sampled_from(
            [raw, raw[:at], raw[:at] + b"\xff\xfe" + raw[at:], b"\xef\xbb\xbf" + raw, raw.replace(b"\n", b"\r")]
        )
    )
    path = folder / "w.csv"
    path.write_bytes(raw)
    try:
        wl = load_watchlist(path)
    except WatchlistError as exc:
        assert exc.path == str(path) and "\n" not in str(exc)
        return
    check(wl)
