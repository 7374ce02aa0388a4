"""The watchlist: plane-alert-db CSV rows grouped into aircraft, and matching feed records to them.

An aircraft is identified by its registration (serial) and may have several hexes: military fleets get
re-hexed (peers.md §0.5), so a record also matches when the feed's `r` equals a listed registration.
Rows whose registration is a placeholder (`????`, `Tactical`, empty) are identified by their hex alone.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import WatchlistError
from ingest.models import Observation

_HEX = re.compile(r"[0-9a-f]{6}")
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

    @property
    def key(self) -> str:
        """The registration, or the first hex when there is none: how the store names this aircraft."""
        return self.registration or self.hexes[0]


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
        self.entries: tuple[WatchEntry, ...] = tuple(entries)
        self._by_hex: dict[str, WatchEntry] = {}
        self._by_reg: dict[str, WatchEntry] = {}
        for entry in self.entries:
            for hex_icao in entry.hexes:
                self._by_hex.setdefault(hex_icao, entry)
            if entry.registration:
                self._by_reg.setdefault(normalise_registration(entry.registration), entry)

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
        return self.lookup(hex_icao, non_icao, registration) is not None

    def by_hex(self, hex_icao: str) -> WatchEntry | None:
        return self._by_hex.get(hex_icao.lower())

    def by_registration(self, reg: str) -> WatchEntry | None:
        return self._by_reg.get(normalise_registration(reg))

    def hexes(self) -> list[str]:
        """Every watched hex, sorted."""
        return sorted(self._by_hex)

    def queryable_registrations(self) -> list[str]:
        """Registrations a feed can be asked for by `/v2/reg/`, sorted and unique."""
        regs = {e.registration for e in self.entries if e.registration}
        return sorted(r for r in regs if _QUERYABLE_REG.fullmatch(r))


def _clean_header(name: str) -> str:
    """`$#Tag 2` -> `tag 2`: plane-alert-db prefixes are display hints (feeds.md §9)."""
    return name.strip().lstrip("$#").strip().lower()


def _rows(text: str, path: str) -> Iterable[tuple[int, Mapping[str, str]]]:
    """(line number in the file, row) for every data row; blank and `#` comment lines are skipped."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for values in reader:
        if not any(v.strip() for v in values) or values[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [_clean_header(h) for h in values]
            if "icao" not in header:
                raise WatchlistError(path, f"no ICAO column in the header {values!r}")
            continue
        yield reader.line_num, dict(zip(header, (v.strip() for v in values), strict=False))
    if header is None:
        raise WatchlistError(path, "the file is empty")


@dataclass(slots=True)
class _Group:
    """Rows that share one registration, while the file is read."""

    registration: str | None
    row: Mapping[str, str]
    hexes: list[str]


def parse_watchlist(text: str, path: str = "<watchlist>") -> Watchlist:
    """Parse plane-alert-db CSV text (header `$ICAO,$Registration,...`; plain headers work too)."""
    groups: dict[str, _Group] = {}
    for number, row in _rows(text, path):
        hex_icao = row.get("icao", "").lower()
        if not _HEX.fullmatch(hex_icao):
            raise WatchlistError(path, f"line {number}: ICAO {row.get('icao', '')!r} is not 6 hex digits")
        reg = real_registration(row.get("registration"))
        key = normalise_registration(reg) if reg else f"hex:{hex_icao}"
        group = groups.setdefault(key, _Group(reg, row, []))
        if hex_icao not in group.hexes:
            group.hexes.append(hex_icao)
    return Watchlist(_entry(g) for g in groups.values())


def _entry(group: _Group) -> WatchEntry:
    row = group.row
    tags = tuple(t for t in (row.get("tag 1", ""), row.get("tag 2", ""), row.get("tag 3", "")) if t)
    return WatchEntry(
        registration=group.registration,
        hexes=tuple(group.hexes),
        operator=row.get("operator", ""),
        type_name=row.get("type", ""),
        icao_type=row.get("icao type", "").upper(),
        category=row.get("category", ""),
        tags=tags,
        link=row.get("link", ""),
    )


def load_watchlist(path: Path) -> Watchlist:
    """Read and parse a watchlist file (UTF-8, an optional BOM is ignored)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise WatchlistError(str(path), exc.strerror or type(exc).__name__) from exc
    except UnicodeDecodeError as exc:
        raise WatchlistError(str(path), f"not UTF-8 text ({exc.reason})") from exc
    return parse_watchlist(text, str(path))
