"""`ingest watchlist list|show|add|remove|import|update`: reading and changing the watchlist.

Which files make the list and how they combine is watchlist_files.py's; what an edit does and what changed
is watchlist_edits.py's. This module parses nothing and writes nothing itself: it checks the arguments,
holds the lock while it reads, changes and writes, and prints. A change is checked whole first (every row,
and the configured feeds' published rate limits against the new list's requests): a refused change writes
nothing. `list` and `show` write nothing and create no database.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from ingest.commands import fail, open_store, settings
from ingest.config import Settings
from ingest.errors import ConfigError, FeedError, WatchlistError
from ingest.watchlist import WatchEntry, Watchlist
from ingest.watchlist_edits import (
    HEADER,
    Changes,
    NewAircraft,
    add,
    check_new,
    combine,
    describe_changed,
    describe_entry,
    diff,
    entries_matching,
    entry_rows,
    find,
    key_of,
    remove,
)
from ingest.watchlist_files import (
    MAX_LIST_BYTES,
    Loaded,
    Sources,
    check_list,
    load,
    locked,
    read_capped,
    require_folder,
    save_edits,
    save_imported,
    sources,
)

SHOWN_PER_KIND = 20  # changes listed per kind (added, removed, changed) unless --all
MAX_URL_CHARS = 2000


def cmd_watchlist(args: argparse.Namespace) -> int:
    handlers = {
        "list": _list, "show": _show, "add": _add, "remove": _remove, "import": _import, "update": _update,
    }  # fmt: skip
    return handlers[args.action](args)


def _loaded(s: Settings) -> Loaded:
    return load(sources(s))


# -- reading ---------------------------------------------------------------------------------------------


def entry_dict(entry: WatchEntry, origin: str) -> dict[str, Any]:
    """An aircraft of the list as `--format json` prints it."""
    return {
        "registration": entry.registration, "hexes": list(entry.hexes), "icao_type": entry.icao_type or None,
        "type": entry.type_name or None, "operator": entry.operator or None, "category": entry.category or None,
        "tags": list(entry.tags), "link": entry.link or None, "origin": origin,
    }  # fmt: skip


_LIST_TABLE = (
    ("registration", "reg", 8), ("hexes", "hexes", 6), ("icao_type", "type", 4), ("type", "type name", 9),
    ("operator", "operator", 8), ("category", "category", 8), ("origin", "origin", 6),
)  # fmt: skip


def _cell(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if key == "registration" and not value:
        return "-"
    if isinstance(value, list):
        return " ".join(value) or "-"
    return "-" if value is None else str(value)


def _list(args: argparse.Namespace) -> int:
    loaded = _loaded(settings(args, log=False))
    entries = entries_matching(loaded.watchlist.entries, args.operator, args.type, args.category)
    if args.format == "csv":  # plane-alert-db's format: `ingest watchlist import` reads it back
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(HEADER)
        for entry in entries:
            writer.writerows(entry_rows(entry))
        return 0
    rows = [entry_dict(e, loaded.combined.origin(e)) for e in entries]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    print(f"watchlist: {loaded.describe()}", file=sys.stderr)
    if not rows:
        print("no aircraft match", file=sys.stderr)
        return 0
    from ingest.views import grid

    print(grid(rows, _LIST_TABLE, _cell))
    return 0


def _show(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    loaded = _loaded(s)
    entry = find(loaded.watchlist, args.tail)
    origin = loaded.combined.origin(entry)
    about = entry_dict(entry, origin)
    about["origin_file"] = str(loaded.sources.edits if origin == "added" else loaded.base_path)
    about |= _stored(s, entry)
    if args.format == "json":
        print(json.dumps(about, indent=1))
        return 0
    for key, value in about.items():
        print(f"{key:<14}{_shown(key, value)}")
    return 0


def _stored(s: Settings, entry: WatchEntry) -> dict[str, Any]:
    """What the database knows of the aircraft: hexes learnt from feeds, its last sighting and sortie."""
    from ingest.store import DatabaseMissing
    from ingest.views import sortie_dict

    try:
        store = open_store(s, create=False)
    except DatabaseMissing:
        return {"database": None, "learnt_hexes": [], "last_sighting": None, "last_sortie": None}
    try:
        aircraft = next(filter(None, (store.find_aircraft(t) for t in (entry.key, *entry.hexes))), None)
        learnt = (
            [] if aircraft is None else [(h, src) for h, src in store.hex_sources(aircraft.id) if src != "watchlist"]
        )
        hexes = sorted({*entry.hexes, *(h for h, _ in learnt)})
        last = store.sightings(hexes, limit=1)
        keys = sorted({key_of(entry), *([aircraft.key] if aircraft else [])})
        sorties = store.sorties(keys, limit=1)
        where = store.describe()
    finally:
        store.close()
    return {
        "database": where,
        "learnt_hexes": [{"hex": h, "feed": src} for h, src in learnt if h not in entry.hexes],
        "last_sighting": last[-1] if last else None,
        "last_sortie": sortie_dict(sorties[-1]) if sorties else None,
    }


def _shown(key: str, value: Any) -> str:
    """A `show` value on one line."""
    if value is None or value == []:
        return "-" if key != "database" else "none yet (`ingest run`, `poll` or `replay` create it)"
    if key == "learnt_hexes":
        return ", ".join(f"{h['hex']} (from {h['feed']})" for h in value)
    demo = "  DEMO (synthetic)" if isinstance(value, dict) and value.get("synthetic") else ""
    if key == "last_sighting":
        alt = "ground" if value["on_ground"] else "-" if value["alt_baro_ft"] is None else f"{value['alt_baro_ft']} ft"
        return (
            f"{value['time']}  {value['hex']}  {value['callsign'] or '-'}  {value['lat']:.5f} {value['lon']:.5f}  "
            f"{alt}  ({value['feed']}){demo}"
        )
    if key == "last_sortie":
        end = value["end"] or "(open)"
        return f"{value['sortie_id']}  {value['start']} -> {end}  {value['end_reason'] or ''}".rstrip() + demo
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


# -- changing --------------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    given = NewAircraft(
        hexes=tuple(args.hex), registration=args.registration, operator=args.operator, type_name=args.type,
        icao_type=args.icao_type, category=args.category, tags=tuple(args.tag) if args.tag else None, link=args.link,
    )  # fmt: skip
    try:
        spec = check_new(given)
    except ValueError as exc:
        return fail(str(exc), 2)
    where = require_folder(s)
    with _changing(args, where):
        loaded = load(where)
        edits, entry = add(loaded.combined, loaded.edits, spec)
        new = combine(loaded.base, edits, loaded.base_origin).watchlist
        if not _changed(args, s, where, loaded, new, f"{describe_entry(entry)} is already on the watchlist as given"):
            return 0
        if not args.dry_run:
            save_edits(where, edits)
    return _done(args, s, where)


def _remove(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    where = require_folder(s)
    with _changing(args, where):
        loaded = load(where)
        edits, _ = remove(loaded.combined, loaded.base, loaded.edits, args.tail)
        new = combine(loaded.base, edits, loaded.base_origin).watchlist
        _changed(args, s, where, loaded, new, "")
        if not args.dry_run:
            save_edits(where, edits)
    return _done(args, s, where)


def _import(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    data = read_capped(args.file)
    label = "standard input" if str(args.file) == "-" else str(args.file)
    return _replace(args, s, data, label, f"imported from {label}")


def _update(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    problem = _url_problem(args.url)
    if problem:
        return fail(f"URL: {problem}", 2)
    from ingest.feeds.transport import document_safe_url, fetch_document

    shown = document_safe_url(args.url)
    try:
        data = fetch_document(args.url, s.daemon.user_agent, MAX_LIST_BYTES, name="watchlist")
    except FeedError as exc:
        raise WatchlistError(exc.url, exc.reason) from None
    return _replace(args, s, data, shown, f"updated from {shown}")


def _url_problem(url: str) -> str | None:
    if len(url) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS:,} characters"
    if not url.isprintable() or " " in url:
        return "spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port out of range raises ValueError)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL (`ingest watchlist import FILE` reads a file)"
    if "@" in parts.netloc:
        return "a user name or password is never taken from the command line (every user sees it in `ps`)"
    return None


def _replace(args: argparse.Namespace, s: Settings, data: bytes, label: str, note: str) -> int:
    """import and update: `data` checked whole, then written as your imported list."""
    new_base = check_list(data, label)
    where = require_folder(s)
    with _changing(args, where):
        loaded = load(where)
        new = combine(new_base, loaded.edits, "imported").watchlist
        _changed(args, s, where, loaded, new, "")
        if not args.dry_run:
            from datetime import UTC, datetime

            from ingest.timeutil import iso_z

            path = save_imported(where, data, f"{note} at {iso_z(datetime.now(UTC))}")
            print(
                f"your list is now {path}"
                + ("" if loaded.base_origin == "imported" else " (instead of the bundled list)")
            )
    return _done(args, s, where)


def _changed(args: argparse.Namespace, s: Settings, where: Sources, loaded: Loaded, new: Watchlist, same: str) -> bool:
    """Check `new` against the feeds and print what changes; False (after saying `same`) when nothing does."""
    changes = diff(loaded.watchlist, new)
    if not changes and same:
        print(same)
        return False
    _check_feeds(s, new)
    _print_changes(changes, args.all)
    print(
        f"watchlist: {changes.summary()}; {len(new):,} aircraft"
        + (" (dry run: nothing written)" if args.dry_run else "")
    )
    if loaded.edits and args.action in ("import", "update"):
        edits = loaded.edits
        print(f"your edits still apply: {len(edits.added):,} added, {len(edits.removed):,} removed ({where.edits})")
    return True


def _changing(args: argparse.Namespace, where: Sources) -> contextlib.AbstractContextManager[None]:
    """The folder's lock, for a change; a dry run takes none (and so creates no folder and no lock file)."""
    return contextlib.nullcontext() if args.dry_run else locked(where)


def _check_feeds(s: Settings, watchlist: Watchlist) -> None:
    """ConfigError when a configured feed could not poll `watchlist` within its interval at its host's
    published rate (`ingest run` would refuse to start with it)."""
    if not any(feed.enabled for feed in s.feeds):
        return  # nothing to poll: nothing to check (and the feed stack, pyproj included, stays unloaded)
    from ingest.feeds import build_feeds
    from ingest.geo import Area

    a = s.area
    try:
        build_feeds(s, watchlist, Area(a.name, a.south, a.west, a.north, a.east))
    except ConfigError as exc:
        raise ConfigError(
            exc.key, exc.source, f"{exc.reason} to poll {len(watchlist):,} aircraft; nothing was changed"
        ) from None


def _print_changes(changes: Changes, everything: bool) -> None:
    limit = None if everything else SHOWN_PER_KIND
    for title, mark, lines in (
        ("added", "+", [describe_entry(e) for e in changes.added]),
        ("removed", "-", [describe_entry(e) for e in changes.removed]),
        ("changed", "~", [describe_changed(c) for c in changes.changed]),
    ):
        if not lines:
            continue
        print(f"{title} {len(lines):,}:")
        for line in lines[:limit]:
            print(f"  {mark} {line}")
        if limit is not None and len(lines) > limit:
            print(f"  ... and {len(lines) - limit:,} more (--all lists every one)")


def _done(args: argparse.Namespace, s: Settings, where: Sources) -> int:
    if args.dry_run:
        return 0
    interval_s = s.watchlist.check_interval_s
    if interval_s:
        print(f"a running `ingest run` uses it within {2 * interval_s:g} s ([watchlist] check_interval_s)")
    else:
        print("restart `ingest run` to use it ([watchlist] check_interval_s = 0)")
    return 0
