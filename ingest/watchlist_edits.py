"""Your changes to the watchlist and what they do: the edits `ingest watchlist add` and `remove` record, how
they combine with the base list (the bundled list, or the one you imported), what changed between two
lists, and finding an aircraft in a list by its tail. Pure: watchlist_files.py reads and writes the files.

The edits file is plane-alert-db CSV with an `Action` column in front, so the rest of each row reads as
the list's own rows do:

    Action,$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link
    add,AE0999,62-4125,USAF,Boeing RC-135W,R135,,Eye In The Sky,SIGINT,Rivet Joint,Oxcart,https://w.wiki/DiyD
    remove,AE01CE,62-4134,,,,,,,,,

- `add` rows (one per hex) describe an aircraft whole. One that shares its registration (or, without
  one, its hex) with an aircraft of the base list replaces it; the others are added.
- `remove` rows take an aircraft of the base list out: the one with that registration, or, for a row
  without one, the one that has that hex (an aircraft whose registration others share is removed by hex).

The combined list puts the added aircraft first, so a hex that an update later gives to another aircraft
still matches yours.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ingest.errors import WatchlistError
from ingest.watchlist import (
    WatchEntry,
    Watchlist,
    build_watchlist,
    hex_problem,
    normalise_registration,
    raise_problems,
    read_watchlist_rows,
    real_registration,
)

HEADER = ("$ICAO", "$Registration", "$Operator", "$Type", "$ICAO Type", "#CMPG", "$Tag 1", "$#Tag 2", "$#Tag 3",
          "Category", "$#Link")  # fmt: skip
EDITS_HEADER = ("Action", *HEADER)
MAX_TEXT_CHARS = 200  # a registration, operator, type, category, tag or link given to `add`
MAX_REGISTRATION_CHARS = 32
MAX_TAGS = 3  # plane-alert-db has three tag columns
_ICAO_TYPE = re.compile(r"[A-Z0-9]{2,4}")  # ICAO Doc 8643 type designators: 2 to 4 letters or digits
FIELDS = ("registration", "hexes", "operator", "type", "icao_type", "category", "tags", "link")


def key_of(entry: WatchEntry) -> str:
    """How the store and the combined list name an aircraft: the upper-case registration, or the hex."""
    return normalise_registration(entry.key)


@dataclass(frozen=True, slots=True)
class Removal:
    """An aircraft of the base list taken out: by registration, or by hex when it has none."""

    registration: str | None
    hex_icao: str

    def matches(self, entry: WatchEntry) -> bool:
        if self.registration:
            return _by_registration(entry) and key_of(entry) == normalise_registration(self.registration)
        return not _by_registration(entry) and self.hex_icao in entry.hexes


@dataclass(frozen=True, slots=True)
class Edits:
    """What you added and removed, in the order you did it."""

    added: tuple[WatchEntry, ...] = ()
    removed: tuple[Removal, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True, slots=True)
class Combined:
    """The list the daemon watches: the base list with your edits applied, and where each aircraft came from."""

    watchlist: Watchlist
    origins: dict[str, str]  # key_of(entry) -> "added", else the base list's origin ("bundled", "imported")
    removed: int  # aircraft of the base list that a removal took out

    def origin(self, entry: WatchEntry) -> str:
        return self.origins[key_of(entry)]


def combine(base: Watchlist, edits: Edits, base_origin: str) -> Combined:
    """The base list with `edits` applied (module docstring). Without edits, the base list itself."""
    if not edits:
        return Combined(base, _Origins(base_origin, {}), 0)
    added_keys = {key_of(e) for e in edits.added}
    removed_regs = {normalise_registration(r.registration) for r in edits.removed if r.registration}
    removed_hexes = {r.hex_icao for r in edits.removed if not r.registration}
    kept: list[WatchEntry] = []
    removed = 0
    for entry in base.entries:
        key = key_of(entry)
        # Removal.matches(), with sets: by registration, or by hex for an aircraft not known by one.
        gone = key in removed_regs if _by_registration(entry) else not removed_hexes.isdisjoint(entry.hexes)
        if gone:
            removed += 1
        elif key not in added_keys:
            kept.append(entry)
    return Combined(
        Watchlist([*edits.added, *kept]), _Origins(base_origin, dict.fromkeys(added_keys, "added")), removed
    )


def _by_registration(entry: WatchEntry) -> bool:
    """Whether the aircraft is known by its registration (it has one, and no other listed aircraft has it)."""
    return entry.registration is not None and not entry.shared


class _Origins(dict[str, str]):
    """key_of(entry) -> origin: "added" for your additions, the base list's origin for every other key."""

    def __init__(self, base_origin: str, added: dict[str, str]) -> None:
        super().__init__(added)
        self.base_origin = base_origin

    def __missing__(self, key: str) -> str:
        return self.base_origin


# -- the edits file -------------------------------------------------------------------------------------


def parse_edits(text: str, path: str) -> Edits:
    """Read an edits file (strictly: every problem is a WatchlistError naming its line)."""
    problems: list[str] = []
    adds: list[tuple[int, tuple[str, ...]]] = []
    removed: list[Removal] = []
    for number, columns in read_watchlist_rows(text, path, problems, with_action=True):
        action, row = columns[0].lower(), columns[1:]
        if action == "add":
            adds.append((number, row))
        elif action == "remove":
            problem = hex_problem(row[0])
            if problem is not None:
                problems.append(f"line {number}: {problem}")
            else:
                removed.append(Removal(real_registration(row[1]), row[0].lower()))
        else:
            problems.append(f"line {number}: Action {columns[0][:20]!r} is neither add nor remove")
    added = build_watchlist(adds, path, problems)
    raise_problems(path, problems)
    return Edits(added.entries, tuple(removed))


def format_edits(edits: Edits) -> str:
    """The edits file's text (module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EDITS_HEADER)
    for entry in edits.added:
        writer.writerows(["add", *row] for row in entry_rows(entry))
    for removal in edits.removed:
        writer.writerow(["remove", removal.hex_icao.upper(), removal.registration or "", *[""] * (len(HEADER) - 2)])
    return out.getvalue()


def entry_rows(entry: WatchEntry) -> list[list[str]]:
    """An aircraft as plane-alert-db rows, one per hex (#CMPG, which ingest does not read, left empty)."""
    tags = [*entry.tags, "", "", ""][:MAX_TAGS]
    return [
        [h.upper(), entry.registration or "", entry.operator, entry.type_name, entry.icao_type, "", *tags,
         entry.category, entry.link]
        for h in entry.hexes
    ]  # fmt: skip


# -- add and remove ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAircraft:
    """What `ingest watchlist add` was given; None (or empty) for what it was not."""

    hexes: tuple[str, ...]
    registration: str | None = None
    operator: str | None = None
    type_name: str | None = None
    icao_type: str | None = None
    category: str | None = None
    tags: tuple[str, ...] | None = None
    link: str | None = None


def check_new(spec: NewAircraft) -> NewAircraft:
    """`spec` cleaned (hexes lower-case, ICAO type upper-case, text stripped); ValueError saying every
    problem, with the option to fix."""
    problems: list[str] = []
    hexes: list[str] = []
    for given in spec.hexes:
        problem = hex_problem(given.strip())
        if problem is not None:
            problems.append(f"--hex: {problem}")
        elif given.strip().lower() not in hexes:
            hexes.append(given.strip().lower())
    if not spec.hexes:
        problems.append("--hex: give the aircraft's ICAO hex (6 hex digits)")

    def clean(option: str, value: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > limit:
            problems.append(f"{option}: {len(value):,} characters; at most {limit}")
        elif not value.isprintable():
            problems.append(f"{option}: control characters (a line break, a tab) are not allowed")
        return value

    registration = clean("--registration", spec.registration, MAX_REGISTRATION_CHARS)
    icao_type = clean("--icao-type", spec.icao_type)
    if icao_type and not _ICAO_TYPE.fullmatch(icao_type.upper()):
        problems.append(f"--icao-type: {icao_type[:20]!r} is not an ICAO type designator (2-4 letters or digits: R135)")
    link = clean("--link", spec.link)
    if link and not link.startswith(("https://", "http://")):
        problems.append("--link: must be an http(s) URL")
    tags = None if spec.tags is None else tuple(t for t in (clean("--tag", t) for t in spec.tags) if t)
    if tags is not None and len(tags) > MAX_TAGS:
        problems.append(f"--tag: at most {MAX_TAGS} tags (plane-alert-db's Tag 1-3)")
    cleaned = NewAircraft(
        tuple(hexes), registration, clean("--operator", spec.operator), clean("--type", spec.type_name),
        icao_type.upper() if icao_type else icao_type, clean("--category", spec.category), tags, link,
    )  # fmt: skip
    if problems:
        raise ValueError("; ".join(problems))
    return cleaned


class NotWatched(WatchlistError):
    """A tail that names no aircraft of the list; `suggestions` are the closest names it has."""

    def __init__(self, text: str, suggestions: Sequence[str]) -> None:
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__("watchlist", f"{text[:60]!r} is not on the watchlist (no such registration or hex){hint}")


class SharedRegistration(WatchlistError):
    """A registration that several listed aircraft have: name one by its hex."""

    def __init__(self, text: str, entries: Sequence[WatchEntry]) -> None:
        self.entries = tuple(entries)
        named = ", ".join(
            f"{e.hexes[0]} ({' '.join(x for x in (e.operator, e.icao_type) if x) or '?'})" for e in entries
        )
        super().__init__(
            "watchlist",
            f"{text[:60]!r} is the registration of {len(entries)} watched aircraft: {named}; name one by its hex",
        )


class Conflict(WatchlistError):
    """An `add` that would give a hex to a second aircraft."""


def add(combined: Combined, edits: Edits, spec: NewAircraft) -> tuple[Edits, WatchEntry]:
    """The edits with `spec` (already checked) added: a new aircraft, or, when its registration (without
    one: its first hex) is already listed, that aircraft with the new hexes and the fields given. Conflict
    when a hex belongs to another aircraft."""
    current = combined.watchlist
    reg = real_registration(spec.registration)
    existing = current.by_registration(reg) if reg else current.by_hex(spec.hexes[0])
    for h in spec.hexes:
        owner = current.by_hex(h)
        if owner is not None and (existing is None or key_of(owner) != key_of(existing)):
            raise Conflict("watchlist", f"{h} is already watched as {owner.key}: remove that aircraft first")
    old = existing or WatchEntry(reg, (), "", "", "", "", (), "")
    entry = WatchEntry(
        registration=reg if reg else old.registration,
        hexes=tuple(dict.fromkeys([*old.hexes, *spec.hexes])),
        operator=_given(spec.operator, old.operator),
        type_name=_given(spec.type_name, old.type_name),
        icao_type=_given(spec.icao_type, old.icao_type),
        category=_given(spec.category, old.category),
        tags=old.tags if spec.tags is None else spec.tags,
        link=_given(spec.link, old.link),
    )
    key = key_of(entry)
    added = [e for e in edits.added if key_of(e) != key and (existing is None or key_of(e) != key_of(existing))]
    removed = [r for r in edits.removed if not r.matches(entry)]
    return replace(edits, added=(*added, entry), removed=tuple(removed)), entry


def _given(value: str | None, old: str) -> str:
    return old if value is None else value


def remove(combined: Combined, base: Watchlist, edits: Edits, tail: str) -> tuple[Edits, WatchEntry]:
    """The edits without the aircraft `tail` names: your addition of it dropped, and a removal recorded
    when the base list has it. NotWatched when no aircraft of the combined list goes by `tail`."""
    entry = find(combined.watchlist, tail)
    key = key_of(entry)
    added = tuple(e for e in edits.added if key_of(e) != key)
    removed = list(edits.removed)
    if any(key_of(e) == key for e in base.entries) and not any(r.matches(entry) for r in removed):
        removed.append(Removal(entry.registration if _by_registration(entry) else None, entry.hexes[0]))
    return Edits(added, tuple(removed)), entry


def compact(text: str) -> str:
    """A registration compared loosely: `62 4125`, `624125` and `62-4125` are the same aircraft."""
    return "".join(c for c in text.upper() if c.isalnum())


def find(watchlist: Watchlist, tail: str) -> WatchEntry:
    """The aircraft `tail` names: its registration in any case or spacing, or one of its hexes (`~` and case
    ignored). SharedRegistration for a registration several aircraft have; NotWatched, with up to three close
    registrations, otherwise."""
    wanted = tail.strip()
    entry = watchlist.by_registration(wanted) if wanted else None
    if entry is None and wanted:
        entry = watchlist.by_hex(wanted.lstrip("~"))
    loose = compact(wanted)
    if entry is None and loose:
        entry = next((e for e in watchlist.entries if _by_registration(e) and compact(e.registration or "") == loose),
                     None)  # fmt: skip
    if entry is not None:
        return entry
    sharing = watchlist.sharing(wanted) if wanted else []
    if sharing:
        raise SharedRegistration(tail, sharing)
    import difflib  # only to suggest names for a tail that is not listed

    names = [e.key for e in watchlist.entries]
    raise NotWatched(tail, difflib.get_close_matches(wanted.upper(), [n.upper() for n in names], n=3, cutoff=0.6))


# -- what changed -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Changed:
    """One aircraft in both lists with different values: (field, old, new) for each field that differs."""

    entry: WatchEntry
    fields: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class Changes:
    """What a new list adds, removes and changes against the old one, aircraft by aircraft."""

    added: tuple[WatchEntry, ...]
    removed: tuple[WatchEntry, ...]
    changed: tuple[Changed, ...]
    unchanged: int

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def summary(self) -> str:
        return (
            f"{len(self.added):,} added, {len(self.removed):,} removed, {len(self.changed):,} changed, "
            f"{self.unchanged:,} unchanged"
        )


def values(entry: WatchEntry) -> dict[str, str]:
    """The fields an aircraft is compared on, as text (hexes sorted: their order means nothing)."""
    return {
        "registration": entry.registration or "", "hexes": " ".join(sorted(entry.hexes)), "operator": entry.operator,
        "type": entry.type_name, "icao_type": entry.icao_type, "category": entry.category,
        "tags": "; ".join(entry.tags), "link": entry.link,
    }  # fmt: skip


def diff(old: Watchlist, new: Watchlist) -> Changes:
    """Changes from `old` to `new`, aircraft matched by key_of (registration, or hex without one)."""
    before = {key_of(e): e for e in old.entries}
    after = {key_of(e): e for e in new.entries}
    changed: list[Changed] = []
    unchanged = 0
    for key, entry in after.items():
        was = before.get(key)
        if was is None:
            continue
        if was == entry:  # most of a big list: one tuple comparison, no field by field
            unchanged += 1
            continue
        a, b = values(was), values(entry)
        differ = tuple((f, a[f], b[f]) for f in FIELDS if a[f] != b[f])
        if differ:
            changed.append(Changed(entry, differ))
        else:
            unchanged += 1
    return Changes(
        added=tuple(e for k, e in after.items() if k not in before),
        removed=tuple(e for k, e in before.items() if k not in after),
        changed=tuple(changed),
        unchanged=unchanged,
    )


def describe_entry(entry: WatchEntry) -> str:
    """`62-4125 (ae01d2; USAF, Boeing RC-135W)`: an aircraft in one short line."""
    about = ", ".join(x for x in (entry.operator, entry.type_name or entry.icao_type) if x)
    return f"{entry.key} ({' '.join(entry.hexes)}{'; ' + about if about else ''})"


def describe_changed(change: Changed) -> str:
    parts = [f"{name} {old or '(empty)'!s} -> {new or '(empty)'!s}" for name, old, new in change.fields]
    return f"{change.entry.key}: {'; '.join(parts)}"


def entries_matching(
    entries: Iterable[WatchEntry], operator: str | None, type_text: str | None, category: str | None
) -> list[WatchEntry]:
    """`ingest watchlist list`'s filters, each a case-insensitive substring (the type: of the ICAO type
    code or the type name)."""
    op, ty, cat = ((x or "").casefold() for x in (operator, type_text, category))
    return [
        e
        for e in entries
        if op in e.operator.casefold()
        and (ty in e.icao_type.casefold() or ty in e.type_name.casefold())
        and cat in e.category.casefold()
    ]
