"""Files of sorties: `ingest export` (GeoJSON, KML, GPX, CSV) and `ingest map` (PNG, SVG). Both take a sortie
id, or a TAIL with --since, and say exactly what was not found."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ingest.commands import fail, open_store, plural, progress, settings, watchlist_loader, write_atomic
from ingest.config import Settings
from ingest.detect.base import Happening
from ingest.errors import IngestError
from ingest.export import FORMATS, render, sortie_id
from ingest.models import Sortie
from ingest.services import resolve_tail
from ingest.store import SIGHTING_FIELDS
from ingest.timeutil import iso_z

Tracks = list[tuple[Sortie, list[dict[str, Any]]]]

_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".kml": "kml", ".gpx": "gpx", ".csv": "csv"}
# What a sortie id looks like with a part missing (its final Z, its time), to say so instead of "unknown tail".
_ALMOST_SORTIE_ID = re.compile(r"^[0-9a-f]{6}-\d{8}(T\d{0,6}Z?)?$", re.IGNORECASE)


class _Usage(IngestError):
    """A misuse of export/map's arguments (exit 2)."""


def _selected(args: argparse.Namespace) -> tuple[Settings, Tracks, str, list[Happening]]:
    """The sorties that `export` and `map` were asked for, each with its track, a subject line and what the
    aircraft did; an IngestError (one line) for anything that was not found."""
    wanted = sortie_id(args.target)
    if wanted is not None and args.since is not None:
        raise _Usage(f"{args.target!r}: --since goes with a TAIL, not with a sortie id")
    s = settings(args)
    store = open_store(s, create=False)
    try:
        if wanted is not None:
            found = store.sortie(wanted)
            if found is None:
                raise IngestError(f"no sortie {wanted!r} in {s.database.where()}")
            sorties, subject = [found], wanted
        elif _ALMOST_SORTIE_ID.match(args.target.strip()):
            raise _Usage(f"{args.target!r} is not a sortie id: they look like ae01d2-20261120T225558Z (ending in Z)")
        else:
            aircraft = resolve_tail(store, args.target, args.since, None, watchlist_loader(s))
            if args.since is None:
                raise _Usage(f"{args.target!r} is {aircraft.label}: a TAIL needs --since WHEN (or give a sortie id)")
            sorties, subject = store.sorties([aircraft.key], args.since), f"{aircraft.label} since {iso_z(args.since)}"
            if not sorties:
                print(f"no sorties of {aircraft.label} since {iso_z(args.since)}", file=sys.stderr)
        tracks = [(x, store.track(x)) for x in progress(sorties, "tracks", "sortie")]
        return s, tracks, subject, store.happenings([x.sortie_id for x in sorties])
    finally:
        store.close()


def _write(path: Path, data: bytes, fmt: str, tracks: Tracks) -> int:
    try:
        write_atomic(path, data)
    except OSError as exc:
        return fail(f"cannot write {path}: {exc.strerror or exc}")
    points = sum(len(rows) for _, rows in tracks)
    print(f"{path}: {fmt}, {plural(len(tracks), 'sortie')}, {plural(points, 'sighting')}")
    return 0


def export_format(option: str | None, output: str | None) -> str:
    """--format, else -o's suffix, else GeoJSON; a --format that contradicts the suffix is refused."""
    suffix = _SUFFIXES.get(Path(output).suffix.lower()) if output and output != "-" else None
    if option and suffix and option != suffix:
        raise _Usage(f"--format {option} contradicts {output!r} (a {suffix} name): drop one, or rename the file")
    if output and output != "-" and not option and suffix is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise _Usage(f"{output!r}: give --format ({', '.join(FORMATS)}) or a name ending in {known}")
    return option or suffix or "geojson"


def cmd_export(args: argparse.Namespace) -> int:
    try:
        fmt = export_format(args.format, args.output)
        _, tracks, _, _ = _selected(args)
    except _Usage as exc:
        return fail(str(exc), 2)
    text = render(fmt, tracks, SIGHTING_FIELDS)
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
        return 0
    return _write(Path(args.output), text.encode(), fmt, tracks)


def cmd_map(args: argparse.Namespace) -> int:
    from ingest.app import build_app
    from ingest.mapping import MAP_FORMATS, map_format, render_map  # matplotlib loads only for this command

    fmt = map_format(args.output)
    if fmt is None:
        known = " or ".join(f".{f}" for f in MAP_FORMATS)
        return fail(f"{args.output}: the picture's name must end in {known}", 2)
    try:
        s, tracks, subject, happenings = _selected(args)
    except _Usage as exc:
        return fail(str(exc), 2)
    app = build_app(s)
    picture = render_map(tracks, app.area, app.projector, fmt, subject=subject, happenings=happenings)
    return _write(args.output, picture, fmt, tracks)
