"""The watchlist: plane-alert-db CSV rows grouped into aircraft, and matching feed records to them.

An aircraft is identified by its registration (serial) and may have several hexes: military fleets get
re-hexed (peers.md §0.5), so a record also matches when the feed's `r` equals a listed registration.
Rows whose registration is a placeholder (`????`, `Tactical`, empty) are identified by their hex alone.
So are rows whose registration other aircraft share: short serials such as `17` name a French Air Force
PC-21, a French Navy Atlantique and a Panther in plane-alert-db, which tells them apart by ICAO type. Rows
of one registration and one ICAO type are one aircraft (re-hexed; its operator may be spelt two ways);
of one registration and several types, as many aircraft, each named by its first hex, its registration
kept for people but never used to match a feed's record or to query a feed.

The file is read line by line and refused past MAX_ROWS (50,000) data rows, before the rest is read;
every problem (a bad hex, bytes that are not UTF-8, a CSV error such as a field over 128 KiB) is one
WatchlistError naming the line.

Two readings: lenient (the default: start-up, which has always padded a hex that lost its leading zeros,
`10166` -> `010166`) and strict (`strict=True`: what `ingest watchlist import` and `update` accept). Strict
refuses every row whose ICAO is not exactly 6 hex digits, saying how it got that way (a spreadsheet's
`4.41E+11`, a lost leading zero), a row whose number of fields is not the header's, a hex listed for two
aircraft, a field over MAX_FIELD_CHARS, a header without ICAO and Registration columns, and a list without
aircraft; it names the line of each (the first MAX_PROBLEMS_SHOWN) and how many rows are wrong.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import WatchlistError

if TYPE_CHECKING:
    from ingest.models import Observation

_HEX = re.compile(r"[0-9a-f]{6}")
_SHORT_HEX = re.compile(r"[0-9a-f]{1,5}")
# How a spreadsheet shows a hex it took for a number: `4408E8` is 4408 x 10^8, shown as `4.41E+11`.
_SPREADSHEET_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)?E[+-][0-9]+", re.IGNORECASE)
# The character set adsb.lol accepts in a path parameter (adsblol/api, feeds.md §2.1).
_QUERYABLE_REG = re.compile(r"[A-Za-z0-9_.-]+")
_PLACEHOLDER_REGS = frozenset({"", "????", "TACTICAL", "UNKNOWN", "N/A", "NONE", "-"})


@dataclass(frozen=True, slots=True)
class WatchEntry:
    """One watched aircraft."""

    registration: str | None  # None when the list gives only a placeholder
    hexes: tuple[str, ...]  # lower-case, in file order
    operator: str
    type_name: str  # e.g. "Boeing RC-135W"
    icao_type: str  # e.g. "R135"
    category: str
    tags: tuple[str, ...]
    link: str
    shared: bool = False  # its registration names other listed aircraft too: it is known by its hex

    @property
    def key(self) -> str:
        """The registration, or the first hex when there is none or others share it: how the store names
        this aircraft."""
        return self.hexes[0] if self.shared or not self.registration else self.registration


def normalise_registration(reg: str) -> str:
    """The form registrations are compared in: stripped and upper-case."""
    return reg.strip().upper()


def real_registration(reg: str | None) -> str | None:
    """The registration, or None for empty and placeholder values."""
    if reg is None:
        return None
    reg = reg.strip()
    return None if normalise_registration(reg) in _PLACEHOLDER_REGS or "?" in reg else reg


class Watchlist:
    """Watched aircraft, looked up by hex and by registration."""

    def __init__(self, entries: Iterable[WatchEntry]) -> None:
        self.entries: tuple[WatchEntry, ...] = _mark_shared(tuple(entries))
        self._by_hex: dict[str, WatchEntry] = {}
        self._by_reg: dict[str, WatchEntry] = {}
        for entry in self.entries:
            for hex_icao in entry.hexes:
                self._by_hex.setdefault(hex_icao, entry)
            if entry.registration and not entry.shared:
                self._by_reg.setdefault(normalise_registration(entry.registration), entry)
        self._hexes: tuple[str, ...] | None = None  # sorted once, on first use: every feed plans from them
        self._queryable: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, obs: Observation) -> WatchEntry | None:
        """The watched aircraft this record is, by ICAO hex first, then by the feed's registration."""
        return self.lookup(obs.hex_icao, obs.non_icao, obs.registration)

    def lookup(self, hex_icao: str, non_icao: bool, registration: str | None) -> WatchEntry | None:
        """The same match on a record's raw identity, before it is built into an Observation."""
        if not non_icao:
            entry = self._by_hex.get(hex_icao)
            if entry is not None:
                return entry
        if registration:
            return self._by_reg.get(normalise_registration(registration))
        return None

    def wants(self, hex_icao: str, non_icao: bool, registration: str | None) -> bool:
        """lookup() is not None, inlined: it runs for every record of a 10,000-aircraft answer."""
        if not non_icao and hex_icao in self._by_hex:
            return True
        return bool(registration) and registration.strip().upper() in self._by_reg  # type: ignore[union-attr]

    def by_hex(self, hex_icao: str) -> WatchEntry | None:
        return self._by_hex.get(hex_icao.lower())

    def by_registration(self, reg: str) -> WatchEntry | None:
        """The one aircraft `reg` names (None too when several share it: see sharing())."""
        return self._by_reg.get(normalise_registration(reg))

    def sharing(self, reg: str) -> list[WatchEntry]:
        """The aircraft that share the registration `reg` (empty when one or none has it)."""
        wanted = normalise_registration(reg)
        return [e for e in self.entries if e.shared and normalise_registration(e.registration or "") == wanted]

    def hexes(self) -> list[str]:
        """Every watched hex, sorted."""
        if self._hexes is None:
            self._hexes = tuple(sorted(self._by_hex))
        return list(self._hexes)

    def queryable_registrations(self) -> list[str]:
        """Registrations a feed can be asked for by `/v2/reg/`, sorted and unique."""
        if self._queryable is None:
            regs = {e.registration for e in self.entries if e.registration and not e.shared}
            self._queryable = tuple(sorted(r for r in regs if _QUERYABLE_REG.fullmatch(r)))
        return list(self._queryable)


# plane-alert-db's whole list is about 17,000 rows; a list this long is far beyond any watchlist and makes
# start-up and the feeds' request plans (1,000 hexes a request) slow. Refused while it is read.
MAX_ROWS = 50_000
MAX_LINE_CHARS = 1 << 20  # a physical line this long is no watchlist row (csv refuses fields over 128 KiB)
MAX_FIELD_CHARS = 1_000  # strict: the longest value plane-alert-db holds is a link of about 200 characters
MAX_PROBLEMS_SHOWN = 5  # strict: the bad rows named in the error (all are counted)
# Columns read, by their cleaned header names; others are ignored.
_COLUMNS = ("icao", "registration", "operator", "type", "icao type", "category", "tag 1", "tag 2", "tag 3", "link")


def _clean_header(name: str) -> str:
    """`$#Tag 2` -> `tag 2`: plane-alert-db prefixes are display hints (feeds.md §9)."""
    return name.strip().lstrip("$#").strip().lower()


def _checked(lines: Iterable[str], path: str) -> Iterator[str]:
    """The lines, each checked as it comes: WatchlistError naming the line for one over MAX_LINE_CHARS or
    with bytes that are not UTF-8 (load_watchlist decodes them to lone surrogates, and so does nothing
    else: a lone surrogate could not be stored)."""
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise WatchlistError(path, f"line {number}: longer than {MAX_LINE_CHARS:,} characters")
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise WatchlistError(path, f"line {number}: not UTF-8 text") from None
        yield line


def _rows(
    lines: Iterable[str], path: str, problems: list[str] | None = None, columns: tuple[str, ...] = _COLUMNS
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line number in the file, the `columns` of a data row, stripped) for every data row, read as they
    come; blank and `#` comment lines are skipped. WatchlistError for a CSV error (with its line), a file
    without an ICAO column or data, and past MAX_ROWS rows. With `problems` (strict), the header must also
    have a Registration column, and a row with another number of fields than the header, or a field over
    MAX_FIELD_CHARS, is not yielded but described in `problems`."""
    reader = csv.reader(_checked(lines, path))
    pick: Callable[[list[str]], tuple[str, ...]] | None = None
    width = 0  # the header's columns, plus one empty column that stands for those it lacks
    count = 0
    try:
        for values in reader:
            if not "".join(values).strip() or values[0].lstrip().startswith("#"):
                continue
            if pick is None:
                header = [_clean_header(h) for h in values]
                _check_header(header, values, path, columns if problems is not None else ("icao",))
                width = len(header) + 1
                pick = itemgetter(*(header.index(c) if c in header else len(header) for c in columns))
                continue
            count += 1
            if count > MAX_ROWS:
                raise WatchlistError(path, f"more than {MAX_ROWS:,} aircraft rows: the cap is {MAX_ROWS:,}")
            if problems is not None:
                problem = _shape_problem(values, width - 1)
                if problem is not None:
                    problems.append(f"line {reader.line_num}: {problem}")
                    continue
            if len(values) < width:
                values += [""] * (width - len(values))
            yield reader.line_num, tuple(map(str.strip, pick(values)))
    except csv.Error as exc:
        raise WatchlistError(path, f"line {reader.line_num}: not CSV ({exc})") from None
    if pick is None:
        raise WatchlistError(path, "the file is empty")


def _check_header(header: list[str], values: list[str], path: str, columns: tuple[str, ...]) -> None:
    """WatchlistError unless the header has the ICAO column, and strictly (`columns` given) also the
    Registration column and an Action column when `columns` asks for one (the edits file)."""
    needed = [c for c in columns if c in ("icao", "registration", "action")]
    for name in needed:
        if name not in header:
            shown = name.title() if name != "icao" else "ICAO"
            raise WatchlistError(
                path,
                f"no {shown} column in the header {values[:20]!r:.300}: "
                "plane-alert-db's is $ICAO,$Registration,$Operator,$Type,$ICAO Type,...",
            )


def _shape_problem(values: list[str], width: int) -> str | None:
    """Strict: why a row does not fit the header, or None."""
    if len(values) != width:
        return f"{len(values)} fields where the header has {width} (an unquoted comma, or a cut line?)"
    if max(map(len, values)) <= MAX_FIELD_CHARS:  # the common case, without a Python-level loop
        return None
    number, value = next((i, v) for i, v in enumerate(values, 1) if len(v) > MAX_FIELD_CHARS)
    return f"field {number} has {len(value):,} characters; a watchlist value has at most {MAX_FIELD_CHARS:,}"


def hex_problem(text: str) -> str | None:
    """Why `text` is not a 6-digit ICAO hex, saying how it probably got that way; None when it is one."""
    if _HEX.fullmatch(text.lower()):
        return None
    shown = repr(text[:20])
    if _SPREADSHEET_NUMBER.fullmatch(text):
        return (
            f"ICAO {shown} is a number in scientific notation: a spreadsheet took the hex for a number and its "
            "digits are lost; copy the row from the source again (and never save the list from a spreadsheet)"
        )
    if _SHORT_HEX.fullmatch(text.lower()):
        return (
            f"ICAO {shown} has {len(text)} digit{'s' if len(text) > 1 else ''}, not 6: a spreadsheet drops leading "
            f"zeros; write all six ({text.zfill(6).upper()} if that is the hex)"
        )
    return f"ICAO {shown} is not 6 hex digits"


def _hex(text: str) -> str | None:
    """6 lower-case hex digits; plane-alert-db has rows whose leading zeros a spreadsheet dropped
    (`10166` for Egypt's 010166 in plane-alert-mil.csv at bf1e2ba), so 1-5 digits are padded."""
    text = text.lower()
    if _HEX.fullmatch(text):
        return text
    return text.zfill(6) if _SHORT_HEX.fullmatch(text) else None


@dataclass(slots=True)
class _Group:
    """Rows of one aircraft (one registration and ICAO type), while the file is read: the first row's
    columns, every hex."""

    registration: str | None
    columns: tuple[str, ...]
    hexes: dict[str, None]  # in file order; a dict, as 50,000 rows may share one registration


def parse_watchlist(text: str, path: str = "<watchlist>", *, strict: bool = False) -> Watchlist:
    """Parse plane-alert-db CSV text (header `$ICAO,$Registration,...`; plain headers work too)."""
    return read_watchlist(io.StringIO(text, newline=None), path, strict=strict)


def read_watchlist(lines: Iterable[str], path: str = "<watchlist>", *, strict: bool = False) -> Watchlist:
    """Parse plane-alert-db CSV lines as they come; WatchlistError naming the line on the first bad one,
    and past MAX_ROWS data rows (before the rest is read). `strict`: see the module docstring."""
    problems: list[str] | None = [] if strict else None
    watchlist = build_watchlist(_rows(lines, path, problems), path, problems)
    if problems is not None and not problems and not len(watchlist):
        raise WatchlistError(path, "no aircraft rows: the file has a header only")
    raise_problems(path, problems)
    return watchlist


def raise_problems(path: str, problems: list[str] | None) -> None:
    """WatchlistError naming the first MAX_PROBLEMS_SHOWN problems of a strict reading, if there are any."""
    if not problems:
        return
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    rows = f"{len(problems):,} bad row{'s' if len(problems) != 1 else ''}"
    raise WatchlistError(path, f"{rows}: {shown}" + (f"; and {more:,} more" if more > 0 else ""))


def read_watchlist_rows(
    text: str, path: str, problems: list[str], *, with_action: bool = False
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Strict (line, columns) rows of CSV text, for build_watchlist(); `with_action`: an `Action` column
    first (the edits file of watchlist_edits.py)."""
    columns = ("action", *_COLUMNS) if with_action else _COLUMNS
    return _rows(io.StringIO(text, newline=None), path, problems, columns)


def build_watchlist(
    rows: Iterable[tuple[int, tuple[str, ...]]], path: str, problems: list[str] | None = None
) -> Watchlist:
    """Group (line, _COLUMNS) rows into aircraft by registration and ICAO type (module docstring). Lenient
    (`problems` None): a hex that lost its leading zeros is padded, any other bad hex raises WatchlistError.
    Strict: every bad hex and every hex given to two aircraft goes into `problems`."""
    by_reg: dict[str, dict[str, _Group]] = {}  # registration key -> ICAO type -> its aircraft ("": no type)
    owners: dict[str, tuple[int, str, str]] = {}  # strict: hex -> (line, registration key, ICAO type)
    for number, columns in rows:
        if problems is None:
            hex_icao = _hex(columns[0])
            if hex_icao is None:
                raise WatchlistError(path, f"line {number}: ICAO {columns[0][:20]!r} is not 6 hex digits")
        else:
            problem = hex_problem(columns[0])
            if problem is not None:
                problems.append(f"line {number}: {problem}")
                continue
            hex_icao = columns[0].lower()
        reg = real_registration(columns[1])
        key = normalise_registration(reg) if reg else f"hex:{hex_icao}"
        icao_type = columns[4].strip().upper()
        if problems is not None:
            first = owners.setdefault(hex_icao, (number, key, icao_type))
            if first[1] != key or (first[2] and icao_type and first[2] != icao_type):
                problems.append(
                    f"line {number}: ICAO {hex_icao.upper()} is already on line {first[0]}, for another aircraft"
                )
                continue
        types = by_reg.setdefault(key, {})
        group = types.get(icao_type)
        if group is None:
            types[icao_type] = _Group(reg, columns, {hex_icao: None})
        else:
            group.hexes[hex_icao] = None
    return Watchlist(_entry(g) for types in by_reg.values() for g in _aircraft_of(types))


def _aircraft_of(types: dict[str, _Group]) -> list[_Group]:
    """The aircraft of one registration: one per ICAO type, rows without a type joining the only typed
    one (Watchlist marks them shared when there are several)."""
    untyped = types.pop("", None)
    if untyped is not None:
        if len(types) == 1:
            (only,) = types.values()
            only.hexes.update(untyped.hexes)
        else:
            types[""] = untyped
    return list(types.values())


def _mark_shared(entries: tuple[WatchEntry, ...]) -> tuple[WatchEntry, ...]:
    """The entries, those whose registration another entry has too marked `shared` (known by their hex)."""
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.registration:
            reg = normalise_registration(entry.registration)
            seen[reg] = seen.get(reg, 0) + 1
    if all(n == 1 for n in seen.values()):
        return entries
    return tuple(
        replace(e, shared=True)
        if e.registration and not e.shared and seen[normalise_registration(e.registration)] > 1
        else e
        for e in entries
    )


def _entry(group: _Group) -> WatchEntry:
    _, _, operator, type_name, icao_type, category, tag1, tag2, tag3, link = group.columns
    return WatchEntry(
        registration=group.registration,
        hexes=tuple(group.hexes),
        operator=operator,
        type_name=type_name,
        icao_type=icao_type.upper(),
        category=category,
        tags=tuple(t for t in (tag1, tag2, tag3) if t),
        link=link,
    )


def load_watchlist(path: Path) -> Watchlist:
    """Read and parse a watchlist file (UTF-8, an optional BOM is ignored), streaming its lines: a file
    over MAX_ROWS rows is refused when its row MAX_ROWS + 1 is read."""
    try:
        # Universal newlines as before; bytes that are not UTF-8 become lone surrogates, refused with
        # their line number by _checked() (a strict decoder fails a whole 8 KiB chunk, lines ahead).
        with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
            return read_watchlist(iter(lambda: fh.readline(MAX_LINE_CHARS + 1), ""), str(path))
    except OSError as exc:
        raise WatchlistError(str(path), exc.strerror or type(exc).__name__) from exc
