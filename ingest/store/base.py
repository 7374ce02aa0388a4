"""What the rest of ingest sees of the database, whichever backend holds it: the `Store` Protocol, the
records its calls take and give, and the row conversions both backends share (so that SQLite and
PostgreSQL give the same answers, value for value).

The backends (sqlite.py, postgres.py) share one implementation of every query (sql.py); they differ in
how they connect, migrate, run a transaction and spell a few things.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ingest.errors import StoreError
from ingest.timeutil import from_epoch

if TYPE_CHECKING:  # loaded when a record is made, not by every read: `ingest sightings` makes none (bench_cli)
    from ingest.detect.base import Happening
    from ingest.models import Alert, ChannelState, FeedHealth, PollRecord, QueuedEvent, Sighting
    from ingest.records import Fix, Place, Sortie
    from ingest.watchlist import Watchlist

SIGHTING_FIELDS = (
    "hex", "registration", "type", "callsign", "time", "lat", "lon", "x_m", "y_m", "alt_baro_ft",
    "on_ground", "alt_geom_ft", "gs_kt", "track_deg", "squawk", "source_type", "feed", "emergency", "synthetic",
)  # fmt: skip


class DatabaseMissing(StoreError):
    """A read command was pointed at a database that does not exist."""

    def __init__(self, where: Path | str) -> None:
        self.path = where
        super().__init__(
            f"no database at {where}: `ingest run`, `ingest poll` or `ingest replay` create one "
            "(or give --database / [database] path or url)"
        )


@dataclass(frozen=True, slots=True)
class Aircraft:
    """A row of `aircraft` with its hexes."""

    id: int
    key: str
    registration: str | None
    icao_type: str | None
    type_name: str | None
    operator: str | None
    hexes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    """What `ingest db stats` tells of a database: rows per table, the sightings' span, sizes on disk."""

    backend: str
    where: str  # a path, or a URL without its password
    tables: Mapping[str, int]  # rows per table of ours
    oldest_sighting: datetime | None
    newest_sighting: datetime | None
    size_bytes: int  # the file (SQLite) or pg_database_size (PostgreSQL)
    wal_bytes: int | None = None  # SQLite's write-ahead log
    free_bytes: int | None = None  # SQLite's free pages, which VACUUM gives back to the file system
    partitions: Sequence[tuple[str, int, int]] = ()  # PostgreSQL: (name, rows, bytes) of each month of sightings


@dataclass(frozen=True, slots=True)
class Tracking:
    """Sortie changes, per-aircraft report times, what the detectors found and the alerts all these raised,
    saved with their poll."""

    sorties: Sequence[Sortie] = ()
    last_report_at: Mapping[str, datetime] = field(default_factory=dict)
    alerts: Sequence[Alert] = ()
    happenings: Sequence[Happening] = ()
    # The leader's place in the poll stream after these changes (PostgreSQL, several daemons): (daemon, entry
    # id). Saved with them, and only while `daemon` is still the leader (else NotLeader, nothing saved).
    stream: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class StreamRow:
    """A poll's entry in the stream (ingest/stream.py), appended with the poll's sightings."""

    daemon: str
    feed: str
    scopes: str  # comma-separated coverage scopes
    bound_s: float
    body: str


class NotLeader(StoreError):
    """Another daemon leads now: this one's sortie changes were not saved."""

    def __init__(self, daemon: str) -> None:
        super().__init__(f"{daemon} is no longer the leader; its sortie changes were not saved")


class AlertStore(Protocol):
    """The part of the store the alert channels use (alerts/outbox.py and its channels): the outbox, each
    channel's deliveries and state, and the sorties the channels describe."""

    def settle(
        self,
        channel: str,
        delivered: Sequence[int],
        at: datetime,
        *,
        read: int = 0,
        after: int = 0,
        exclude: Iterable[int] = (),
    ) -> list[QueuedEvent]: ...
    def note_progress(self, channel: str, outbox_id: int, progress: str) -> None: ...
    def note_channel(
        self,
        channel: str,
        kind: str,
        at: datetime,
        error: str | None,
        next_try_at: datetime | None = None,
        parked_until: datetime | None = None,
    ) -> None: ...
    def register_channel(self, channel: str, kind: str) -> None: ...
    def set_channel_memo(self, channel: str, kind: str, memo: str) -> None: ...
    def remove_channel(self, channel: str) -> None: ...
    def channel_states(self) -> list[ChannelState]: ...
    def latest_sorties(self) -> list[tuple[Sortie, str | None, str | None]]: ...
    def latest_positions(self, since: datetime) -> list[dict[str, Any]]: ...
    def sortie(self, sortie_id: str) -> Sortie | None: ...
    def track(self, sortie: Sortie) -> list[dict[str, Any]]: ...
    def happenings(self, sortie_ids: Sequence[str]) -> list[Happening]: ...


class Store(AlertStore, Protocol):
    """The database, as the daemon, the CLI and the API use it (with AlertStore's part). Every method
    raises StoreError (one line) for whatever the database says; none returns a driver's object."""

    backend: str  # "sqlite" or "postgresql"
    commits: int  # transactions committed: the writer tells a failing disk from a quiet moment
    migrated: list[str]  # the migrations opening it applied

    def close(self) -> None: ...
    def atomic(self) -> AbstractContextManager[None]: ...
    def describe(self) -> str: ...  # where it is, for messages: a path, or a URL without its password
    def wal_bytes(self) -> int: ...
    def size_bytes(self) -> int: ...
    def checkpoint(self) -> tuple[int, int]: ...

    # writes
    def sync_watchlist(self, watchlist: Watchlist) -> None: ...
    def save_poll(
        self,
        record: PollRecord,
        sightings: Sequence[Sighting],
        *,
        record_poll: bool = True,
        tracking: Tracking | None = None,
        health: FeedHealth | None = None,
        synthetic: bool = False,
        stream: StreamRow | None = None,
    ) -> int: ...
    def save_tracking(self, tracking: Tracking) -> None: ...
    def heartbeat(
        self, daemon: str, host: str, pid: int, version: str, now: datetime, stopped: bool = False
    ) -> None: ...
    def remove_synthetic(self) -> tuple[int, int]: ...
    def prune_sightings(
        self, before: datetime, start_hex: str, limit: int, max_hexes: int
    ) -> tuple[int, str | None]: ...
    def prune_outbox(self, before: datetime, limit: int) -> int: ...
    def prune_polls(self, before: datetime, start_feed: str, limit: int) -> tuple[int, str | None]: ...
    def drop_partitions_before(self, before: datetime) -> list[str]: ...
    def stats(self) -> DatabaseStats: ...
    def vacuum(self) -> None: ...

    # reads
    def feed_health(self, since: datetime) -> dict[str, dict[str, Any]]: ...
    def find_aircraft(self, tail: str) -> Aircraft | None: ...
    def aircraft_names(self) -> list[tuple[int, str, str | None]]: ...
    def aircraft(self, aircraft_id: int) -> Aircraft: ...
    def hex_sources(self, aircraft_id: int) -> list[tuple[str, str]]: ...
    def callsign_users(
        self, callsign: str, prefix: bool, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, int, datetime, tuple[str, ...]]]: ...
    def callsigns(self) -> list[str]: ...
    def sightings(
        self,
        hexes: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def sightings_page(
        self,
        hexes: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]: ...
    def successful_polls(self, since: datetime) -> list[tuple[str, datetime, float]]: ...
    def last_successes(self) -> list[tuple[str, datetime, float]]: ...
    def daemons(self) -> list[dict[str, Any]]: ...
    def tracker_state(
        self, synthetic: bool = False
    ) -> tuple[list[Sortie], dict[str, datetime], dict[str, datetime]]: ...
    def synthetic_counts(self) -> tuple[int, int]: ...
    def demo_removed(self) -> bool: ...
    def sorties(
        self,
        keys: Sequence[str] | None = None,
        since: datetime | None = None,
        open_only: bool = False,
        limit: int | None = None,
        until: datetime | None = None,
    ) -> list[Sortie]: ...
    def sorties_page(
        self,
        keys: Sequence[str] | None,
        since: datetime | None,
        open_only: bool,
        after: tuple[float, str] | None,
        limit: int,
    ) -> list[Sortie]: ...
    def pending_events(
        self, channel: str, limit: int, after: int = 0, exclude: Iterable[int] = ()
    ) -> list[QueuedEvent]: ...
    def outbox_counts(self) -> tuple[int, int]: ...
    def feed_polls(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...


class SharedStore(Store, Protocol):
    """A database several daemons share (PostgreSQL): the poll stream and the leadership over it."""

    def try_lead(self, daemon: str, now: datetime) -> int | None: ...  # our place in the stream, if we lead now
    def leading(self) -> bool: ...  # still holding the leadership (the session that holds the lock is alive)
    def resign(self) -> None: ...
    def leader(self) -> tuple[str, str] | None: ...  # (daemon, since) of the leader on record
    def stream_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, float, str]]: ...
    def stream_covers(self) -> dict[str, tuple[str, float]]: ...  # feed -> (scopes, bound_s), the latest
    def prune_stream(self, upto_id: int, before: datetime) -> int: ...


# -- rows <-> records, shared by the backends -----------------------------------------------------------


def sighting_row(s: Sighting, synthetic: bool = False) -> tuple[Any, ...]:
    """A sighting as the `sightings` table's columns (INSERT_SIGHTING's order)."""
    o = s.obs
    return (
        o.hex_icao, int(o.position_at.timestamp()), s.registration, s.type_icao, o.callsign,
        o.lat_deg, o.lon_deg, s.x_m, s.y_m, o.alt_baro_ft, int(o.on_ground), o.alt_geom_ft, o.gs_kt,
        o.track_deg, o.squawk, o.source_type, int(o.non_icao), int(o.military), o.feed, o.emergency, int(synthetic),
    )  # fmt: skip


def sighting_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A sighting row (sql.py's SIGHTING_SELECT: the time already ISO 8601 text, from the database) as
    `ingest sightings --format json` prints it: the flags as booleans."""
    d = dict(zip(SIGHTING_FIELDS, row, strict=True))
    d["on_ground"] = d["on_ground"] == 1
    d["synthetic"] = d["synthetic"] == 1
    return d


def sighting_dicts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """sighting_dict for many rows: the tail query's whole cost in Python (scripts/bench_store.py), the dicts
    made by map() in C. The rows come from SIGHTING_SELECT, whose columns are SIGHTING_FIELDS."""
    out: list[dict[str, Any]] = list(map(dict, map(zip, repeat(SIGHTING_FIELDS), rows)))
    for d in out:
        d["on_ground"] = d["on_ground"] == 1
        d["synthetic"] = d["synthetic"] == 1
    return out


def like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def happening_row(h: Happening) -> tuple[Any, ...]:
    return (
        h.event_id, h.sortie_id, h.kind, h.n, h.started_at.timestamp(), h.detected_at.timestamp(),
        h.lat_deg, h.lon_deg, json.dumps(dict(h.details), separators=(",", ":")),
    )  # fmt: skip


SORTIE_FIELDS = (
    "sortie_id", "key", "hex", "registration", "type",
    "first_at", "first_lat", "first_lon", "first_alt_baro_ft", "first_callsign", "first_feed",
    "last_at", "last_lat", "last_lon", "last_alt_baro_ft", "last_callsign", "last_feed",
    "last_seen_at", "callsigns", "max_alt_baro_ft", "sightings", "previous_sortie_end", "end_reason",
    "took_off_code", "took_off_name", "landed_code", "landed_name", "synthetic",
)  # fmt: skip


def _fix_row(fix: Fix) -> tuple[Any, ...]:
    return (fix.at.timestamp(), fix.lat_deg, fix.lon_deg, fix.alt_baro_ft, fix.callsign, fix.feed)


def _place_row(place: Place | None) -> tuple[str | None, str | None]:
    return (place.code, place.name) if place is not None else (None, None)


def sortie_row(s: Sortie) -> tuple[Any, ...]:
    """A sortie as the `sorties` table's columns (SORTIE_FIELDS' order)."""
    return (
        s.sortie_id, s.key, s.hex_icao, s.registration, s.type_icao, *_fix_row(s.first), *_fix_row(s.last),
        s.last_seen_at.timestamp(), json.dumps(list(s.callsigns)), s.max_alt_baro_ft, s.sightings,
        s.previous_sortie_end.timestamp() if s.previous_sortie_end else None, s.end_reason,
        *_place_row(s.took_off_from), *_place_row(s.landed_at), int(s.synthetic),
    )  # fmt: skip


def _place(code: str | None, name: str | None) -> Place | None:
    from ingest.records import Place

    return Place(code, name or code) if code else None


def _fix(values: Sequence[Any]) -> Fix:
    from ingest.records import Fix

    return Fix(from_epoch(values[0]), values[1], values[2], values[3], values[4], values[5])


def sortie_record(row: Sequence[Any]) -> Sortie:
    """A SORTIE_SELECT row (the sortie's columns, then the aircraft's operator and type name) as a Sortie."""
    from ingest.records import Sortie

    return Sortie(
        sortie_id=row[0], key=row[1], hex_icao=row[2], registration=row[3], type_icao=row[4],
        first=_fix(row[5:11]), last=_fix(row[11:17]), last_seen_at=from_epoch(row[17]),
        callsigns=tuple(json.loads(row[18])), max_alt_baro_ft=row[19], sightings=row[20],
        previous_sortie_end=from_epoch(row[21]) if row[21] is not None else None, end_reason=row[22],
        took_off_from=_place(row[23], row[24]), landed_at=_place(row[25], row[26]), synthetic=bool(row[27]),
        operator=row[28] or None, type_name=row[29] or None,
    )  # fmt: skip


def rows_as_dicts(
    description: Sequence[Any], rows: Iterator[Sequence[Any]] | Sequence[Sequence[Any]]
) -> list[dict[str, Any]]:
    """Rows under their column names (a cursor's description: each entry's first item is the name)."""
    names = [d[0] for d in description]
    return [dict(zip(names, row, strict=True)) for row in rows]
