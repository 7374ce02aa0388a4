"""The SQLite store: sightings, aircraft, feed polls, sorties, the outbox and tail queries, over the standard
library's sqlite3 (schema.py holds the migrations, with sqlite-utils, and loads only when one is due).

- WAL is set once (it persists in the file); `synchronous=NORMAL` and a busy timeout on every
  connection: no committed transaction is lost on a process crash.
- `sightings` is WITHOUT ROWID with PRIMARY KEY (hex, ts): the same position reported by two polls or two
  feeds (same hex, same position second) is stored once by INSERT OR IGNORE, and a tail's time range is
  one primary-key range scan: 1.0 ms p50 for the bare SELECT of a day of one tail at 1e7 rows, 3.0 ms for
  `sightings()` with its row conversion (scripts/bench_query.py).
- A Store belongs to the thread that opened it (sqlite3's check_same_thread); the daemon writes from one
  writer thread, readers open their own Store.
- Values always travel as `?` parameters; no SQL is built from feed data.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ingest.errors import StoreError
from ingest.timeutil import from_epoch, iso_z
from ingest.watchlist import Watchlist, normalise_registration

if TYPE_CHECKING:  # loaded when a record is made, not by every read: `ingest sightings` makes none (bench_cli)
    from ingest.detect.base import Happening
    from ingest.models import Alert, FeedHealth, PollRecord, Sighting
    from ingest.records import Fix, Place, Sortie

BUSY_TIMEOUT_MS = 5_000

_INSERT_SIGHTING = """INSERT OR IGNORE INTO sightings (hex, ts, registration, type, callsign, lat, lon,
    x_m, y_m, alt_baro_ft, on_ground, alt_geom_ft, gs_kt, track_deg, squawk, source_type, non_icao,
    military, feed, emergency, synthetic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

SIGHTING_FIELDS = (
    "hex", "registration", "type", "callsign", "time", "lat", "lon", "x_m", "y_m", "alt_baro_ft",
    "on_ground", "alt_geom_ft", "gs_kt", "track_deg", "squawk", "source_type", "feed", "emergency", "synthetic",
)  # fmt: skip
_SIGHTING_COLUMNS = (
    "hex, registration, type, callsign, ts, lat, lon, x_m, y_m, alt_baro_ft, on_ground, alt_geom_ft, gs_kt, "
    "track_deg, squawk, source_type, feed, emergency, synthetic"
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


def _like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_is_sqlite(path: Path) -> None:
    """Refuse a file that exists and is not an SQLite database: opening it would make it one."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open the database {path}: {exc.strerror or exc}") from exc
    if head and head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not an SQLite database (left untouched)")


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations this database has, in the order they were applied."""
    try:
        rows = conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'ingest' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # no such table: a new database
        return []
    return [name for (name,) in rows]


def sighting_row(s: Sighting, synthetic: bool = False) -> tuple[Any, ...]:
    o = s.obs
    return (
        o.hex_icao, int(o.position_at.timestamp()), s.registration, s.type_icao, o.callsign,
        o.lat_deg, o.lon_deg, s.x_m, s.y_m, o.alt_baro_ft, int(o.on_ground), o.alt_geom_ft, o.gs_kt,
        o.track_deg, o.squawk, o.source_type, int(o.non_icao), int(o.military), o.feed, o.emergency, int(synthetic),
    )  # fmt: skip


# The WAL is truncated back to this size whenever SQLite restarts it, and a checkpoint that finds it
# larger truncates it (with readers busy it would only grow: tests/unit/test_store.py).
WAL_LIMIT_BYTES = 16 * 1024 * 1024


F = TypeVar("F", bound=Callable[..., Any])


def _reading(what: str) -> Callable[[F], F]:
    """sqlite3's errors on a read (a file gone, corrupt or locked for too long) as one StoreError."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {what}: {exc}") from exc

        return cast(F, guarded)

    return wrap


# Every migration the schema has (schema.py applies them; a test keeps the two lists equal).
MIGRATIONS = (
    "0001_initial", "0002_sorties_and_outbox", "0003_feed_state", "0004_coverage_happenings_airports",
    "0005_daemons_synthetic",
)  # fmt: skip


class DatabaseMissing(StoreError):
    """A read command was pointed at a database file that does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no database at {path}: `ingest run`, `ingest poll` or `ingest replay` create one "
            "(or give --database / [database] path)"
        )


class Store:
    """One connection to the SQLite file, migrated on open. `create=False` (the read commands) refuses a
    file that does not exist instead of creating an empty database (and its folders) there."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._savepoints: list[str] = []
        self.commits = 0  # transactions committed: the writer tells a failing disk from a quiet moment
        memory = str(path) == ":memory:"
        if not create and not memory and not path.is_file():
            raise DatabaseMissing(path)
        if not memory:
            _check_is_sqlite(path)
        try:
            if not memory:
                path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: transactions are atomic()'s, explicit, as sqlite-utils' are.
            self.conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            if not memory and self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode=WAL")
            if applied_migrations(self.conn) != list(MIGRATIONS):
                from ingest import schema  # sqlite_utils loads only for a new or older database

                schema.apply(self.conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction (a savepoint when nested), committed on success, rolled back on any error."""
        conn = self.conn
        if conn.in_transaction:
            name = f"ingest_{id(conn)}_{len(self._savepoints)}"
            self._savepoints.append(name)
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                conn.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._savepoints.pop()
            return
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.commits += 1

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0 when there is none)."""
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except OSError:
            return 0

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database without waiting for readers (PASSIVE); when the WAL has grown past
        WAL_LIMIT_BYTES, wait briefly for readers and truncate it. Returns (WAL bytes before, after)."""
        before = self.wal_bytes()
        mode = "TRUNCATE" if before > WAL_LIMIT_BYTES else "PASSIVE"
        with _writing("checkpoint the WAL"):
            self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        return before, self.wal_bytes()

    # -- writes -------------------------------------------------------------------------------

    def sync_watchlist(self, watchlist: Watchlist) -> None:
        """Upsert every watched aircraft and its hexes; aircraft no longer listed are kept."""
        with _writing("store the watchlist"), self.atomic():
            for entry in watchlist.entries:
                aircraft_id = self._upsert_aircraft(
                    key=normalise_registration(entry.key),
                    registration=entry.registration,
                    icao_type=entry.icao_type or None,
                    type_name=entry.type_name or None,
                    operator=entry.operator or None,
                    category=entry.category or None,
                    tags=",".join(entry.tags) or None,
                    link=entry.link or None,
                )
                self.conn.executemany(
                    "INSERT INTO aircraft_hex (hex, aircraft_id, source) VALUES (?, ?, 'watchlist') "
                    "ON CONFLICT(hex) DO UPDATE SET aircraft_id = excluded.aircraft_id, source = 'watchlist'",
                    [(h, aircraft_id) for h in entry.hexes],
                )

    def _upsert_aircraft(self, **values: Any) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values if c != "key")
        row = self.conn.execute(
            f"INSERT INTO aircraft ({cols}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE SET {updates} RETURNING id",
            list(values.values()),
        ).fetchone()
        return int(row[0])

    def save_poll(
        self,
        record: PollRecord,
        sightings: Sequence[Sighting],
        *,
        record_poll: bool = True,
        tracking: Tracking | None = None,
        health: FeedHealth | None = None,
        synthetic: bool = False,
    ) -> int:
        """Store a poll's sightings, the sortie changes and alerts they caused, and (unless told not to)
        its feed_polls row, in one transaction; returns how many sightings were new."""
        conn = self.conn
        with _writing("store a poll"), self.atomic():
            before = conn.total_changes
            conn.executemany(_INSERT_SIGHTING, [sighting_row(s, synthetic) for s in sightings])
            stored = conn.total_changes - before
            self._learn_hexes(sightings)
            if tracking is not None:
                self._save_tracking(tracking)
            if health is not None:
                self._save_health(health)
            if not record_poll:
                return stored
            conn.execute(
                "INSERT INTO feed_polls (started_at, feed, duration_ms, requests, http_status, aircraft, "
                "matched, kept, stored, rejected, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    iso_z(record.started_at), record.feed, record.duration_ms, record.requests,
                    record.http_status, record.aircraft, record.matched, record.kept, stored,
                    record.rejected, record.error,
                ),
            )  # fmt: skip
        return stored

    def save_tracking(self, tracking: Tracking) -> None:
        """Store sortie changes and their alerts (from the periodic check) in one transaction."""
        with _writing("store sortie changes"), self.atomic():
            self._save_tracking(tracking)

    def _save_tracking(self, tracking: Tracking) -> None:
        conn = self.conn
        conn.executemany(_UPSERT_SORTIE, [_sortie_row(s) for s in tracking.sorties])
        conn.executemany(
            "INSERT INTO aircraft_state (key, last_report_at) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET last_report_at = max(last_report_at, excluded.last_report_at)",
            [(key, at.timestamp()) for key, at in tracking.last_report_at.items()],
        )
        conn.executemany(_UPSERT_HAPPENING, [_happening_row(h) for h in tracking.happenings])
        now = iso_z(datetime.now(UTC))
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)",
            [(a.event_id, a.topic, a.payload, now) for a in tracking.alerts],
        )

    def _save_health(self, h: FeedHealth) -> None:
        at = iso_z(h.at)
        self.conn.execute(
            "INSERT INTO feed_state (feed, state, at, failures, degraded_since, next_try_at, reason, "
            "last_success_at, last_error_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(feed) DO UPDATE SET "
            "state = excluded.state, at = excluded.at, failures = excluded.failures, "
            "degraded_since = excluded.degraded_since, next_try_at = excluded.next_try_at, "
            "reason = coalesce(excluded.reason, feed_state.reason), "
            "last_success_at = coalesce(excluded.last_success_at, feed_state.last_success_at), "
            "last_error_at = coalesce(excluded.last_error_at, feed_state.last_error_at)",
            (
                h.feed, h.state, at, h.failures, iso_z(h.degraded_since) if h.degraded_since else None,
                iso_z(h.next_try_at) if h.next_try_at else None, h.reason,
                at if h.failures == 0 else None, at if h.failures else None,
            ),
        )  # fmt: skip

    @_reading("read the feeds' health")
    def feed_health(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Per feed: its feed_state row and its polls since `since` (polls, failed, requests, aircraft, kept)."""
        cur = self.conn.execute("SELECT * FROM feed_state")
        names = [d[0] for d in cur.description]
        health = {row[0]: dict(zip(names, row, strict=True)) for row in cur}
        for feed, polls, failed, requests, aircraft, kept, rejected in self.conn.execute(
            "SELECT feed, count(*), count(error), sum(requests), sum(aircraft), sum(kept), sum(rejected) "
            "FROM feed_polls WHERE started_at >= ? GROUP BY feed",
            (iso_z(since),),
        ):
            health.setdefault(feed, {"feed": feed}).update(
                polls=polls, failed=failed, requests=requests, aircraft=aircraft, kept=kept, rejected=rejected
            )
        return health

    def _learn_hexes(self, sightings: Iterable[Sighting]) -> None:
        """Remember every hex a sighting came under: a watched registration seen under a hex we did not
        list (a re-hexed airframe), or a military aircraft kept by include_military (a new aircraft row)."""
        seen = {(s.obs.hex_icao, _key(s)): s for s in sightings}
        conn = self.conn
        conn.executemany(
            "INSERT OR IGNORE INTO aircraft (key, registration, icao_type) VALUES (?, ?, ?)",
            [(key, s.registration, s.type_icao) for (_, key), s in seen.items()],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO aircraft_hex (hex, aircraft_id, source) SELECT ?, id, ? FROM aircraft WHERE key = ?",
            [(hex_icao, s.obs.feed, key) for (hex_icao, key), s in seen.items()],
        )

    # -- reads --------------------------------------------------------------------------------

    @_reading("look up an aircraft")
    def find_aircraft(self, tail: str) -> Aircraft | None:
        """An aircraft by registration (any case) or by one of its hexes."""
        tail = tail.strip()
        row = self.conn.execute(
            "SELECT id FROM aircraft WHERE key = ? UNION SELECT aircraft_id FROM aircraft_hex WHERE hex = ? LIMIT 1",
            (normalise_registration(tail), tail.lower().lstrip("~")),
        ).fetchone()
        return None if row is None else self._aircraft(int(row[0]))

    @_reading("list the aircraft")
    def aircraft_names(self) -> list[tuple[int, str, str | None]]:
        """(id, key, registration) of every aircraft: what a tail that is not spelt exactly is matched against."""
        return [(int(r[0]), r[1], r[2]) for r in self.conn.execute("SELECT id, key, registration FROM aircraft")]

    @_reading("look up an aircraft")
    def aircraft(self, aircraft_id: int) -> Aircraft:
        return self._aircraft(aircraft_id)

    @_reading("look up a callsign")
    def callsign_users(
        self, callsign: str, prefix: bool, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, int, datetime, tuple[str, ...]]]:
        """Aircraft that flew a sortie under `callsign` (or a callsign starting with it) overlapping
        [since, until]: (key, sorties, latest start, the matching callsigns), the latest first."""
        pattern = f'%"{_like(callsign.upper())}{"%" if prefix else ""}"%'
        where = ["callsigns LIKE ? ESCAPE '\\'"]
        params: list[Any] = [pattern]
        if since is not None:
            where.append("(end_reason IS NULL OR last_at >= ?)")
            params.append(since.timestamp())
        if until is not None:
            where.append("first_at <= ?")
            params.append(until.timestamp())
        rows = self.conn.execute(
            f"SELECT key, first_at, callsigns FROM sorties WHERE {' AND '.join(where)} ORDER BY first_at DESC",
            params,
        ).fetchall()
        found: dict[str, tuple[int, datetime, list[str]]] = {}
        wanted = callsign.upper()
        for key, first_at, callsigns in rows:
            names = [c for c in json.loads(callsigns) if (c.startswith(wanted) if prefix else c == wanted)]
            if not names:
                continue  # LIKE matched across a quote; the JSON says otherwise
            count, latest, seen = found.get(key, (0, from_epoch(first_at), []))
            found[key] = (count + 1, latest, seen + [n for n in names if n not in seen])
        return [(key, n, latest, tuple(seen)) for key, (n, latest, seen) in found.items()]

    @_reading("list the callsigns")
    def callsigns(self) -> list[str]:
        """Every callsign a sortie was flown under (for suggestions)."""
        names: set[str] = set()
        for (callsigns,) in self.conn.execute("SELECT DISTINCT callsigns FROM sorties"):
            names.update(json.loads(callsigns))
        return sorted(names)

    def _aircraft(self, aircraft_id: int) -> Aircraft:
        row = self.conn.execute(
            "SELECT id, key, registration, icao_type, type_name, operator FROM aircraft WHERE id = ?",
            (aircraft_id,),
        ).fetchone()
        hexes = [r[0] for r in self.conn.execute(
            "SELECT hex FROM aircraft_hex WHERE aircraft_id = ? ORDER BY hex", (aircraft_id,)
        )]  # fmt: skip
        return Aircraft(row[0], row[1], row[2], row[3], row[4], row[5], tuple(hexes))

    @_reading("read sightings")
    def sightings(
        self,
        hexes: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Sightings of these hexes in [since, until], the latest `limit` of them, oldest first."""
        if not hexes:
            return []
        lo = int(since.timestamp()) if since else -(2**62)
        hi = int(until.timestamp()) if until else 2**62
        marks = ", ".join("?" for _ in hexes)
        sql = (
            "SELECT hex, registration, type, callsign, ts, lat, lon, x_m, y_m, alt_baro_ft, on_ground, "
            "alt_geom_ft, gs_kt, track_deg, squawk, source_type, feed, emergency, synthetic FROM sightings "
            f"WHERE hex IN ({marks}) AND ts BETWEEN ? AND ? ORDER BY ts DESC"
        )
        params: list[Any] = [*hexes, lo, hi]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = [_sighting_dict(r) for r in self.conn.execute(sql, params)]
        rows.reverse()
        return rows

    # -- sorties and the outbox ------------------------------------------------------------------

    @_reading("read the polls")
    def successful_polls(self, since: datetime) -> list[tuple[str, datetime, float]]:
        """(feed, start, duration in s) of every poll since `since` that succeeded and was stored, oldest
        first: what covered time is rebuilt from (detect/coverage.py)."""
        rows = self.conn.execute(
            "SELECT feed, started_at, duration_ms FROM feed_polls WHERE error IS NULL AND started_at >= ?",
            (iso_z(since),),
        ).fetchall()
        polls = [(feed, datetime.fromisoformat(at), ms / 1000) for feed, at, ms in rows]  # ISO 8601 with Z
        polls.sort(key=lambda p: p[1])
        return polls

    @_reading("read the polls")
    def last_successes(self) -> list[tuple[str, datetime, float]]:
        """Each feed's latest successful, stored poll (feed, start, duration in s)."""
        rows = self.conn.execute(
            "SELECT feed, max(started_at), duration_ms FROM feed_polls WHERE error IS NULL GROUP BY feed"
        ).fetchall()
        return [(feed, datetime.fromisoformat(at), ms / 1000) for feed, at, ms in rows]

    def heartbeat(self, daemon: str, host: str, pid: int, version: str, now: datetime, stopped: bool = False) -> None:
        """The daemon `daemon` is alive at `now` (or, with `stopped`, has stopped cleanly)."""
        at = iso_z(now)
        with _writing("write the heartbeat"), self.atomic():
            self.conn.execute(
                "INSERT INTO daemons (daemon, host, pid, version, started_at, beat_at, stopped_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(daemon) DO UPDATE SET beat_at = excluded.beat_at, "
                "stopped_at = excluded.stopped_at",
                (daemon, host, pid, version, at, at, at if stopped else None),
            )

    @_reading("read the daemons")
    def daemons(self) -> list[dict[str, Any]]:
        """Every daemon that has run on this database, the latest heartbeat first."""
        cur = self.conn.execute("SELECT * FROM daemons ORDER BY beat_at DESC")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    @_reading("read the latest positions")
    def latest_positions(self, since: datetime) -> list[dict[str, Any]]:
        """The latest stored sighting, at or after `since`, of every aircraft reported since then, with its
        aircraft key: one primary-key lookup per aircraft that the sortie detector saw lately."""
        conn = self.conn
        rows: list[dict[str, Any]] = []
        for (key,) in conn.execute("SELECT key FROM aircraft_state WHERE last_report_at >= ?", (since.timestamp(),)):
            hexes = [h for (h,) in conn.execute(
                "SELECT hex FROM aircraft_hex JOIN aircraft ON aircraft.id = aircraft_id WHERE key = ?", (key,)
            )]  # fmt: skip
            if not hexes:
                continue
            row = conn.execute(
                f"SELECT {_SIGHTING_COLUMNS} FROM sightings WHERE hex IN ({', '.join('?' for _ in hexes)}) "
                "AND ts >= ? ORDER BY ts DESC LIMIT 1",
                [*hexes, int(since.timestamp())],
            ).fetchone()
            if row is not None:
                rows.append({"key": key, **_sighting_dict(row)})
        return rows

    @_reading("read the happenings")
    def happenings(self, sortie_ids: Sequence[str]) -> list[Happening]:
        """The orbits, emergencies ... of these sorties, in the order they began."""
        from ingest.detect.base import Happening

        if not sortie_ids:
            return []
        marks = ", ".join("?" for _ in sortie_ids)
        rows = self.conn.execute(
            f"SELECT sortie_id, kind, n, started_at, detected_at, lat, lon, details FROM happenings "
            f"WHERE sortie_id IN ({marks}) ORDER BY started_at, event_id",
            list(sortie_ids),
        )
        return [
            Happening(r[1], r[0], r[2], from_epoch(r[3]), from_epoch(r[4]), r[5], r[6], json.loads(r[7])) for r in rows
        ]

    @_reading("read the sorties' state")
    def tracker_state(self, synthetic: bool = False) -> tuple[list[Sortie], dict[str, datetime], dict[str, datetime]]:
        """What the sortie detector needs after a restart: open sorties, the last report processed per
        aircraft, and each aircraft's latest sortie end; of real data, or (`synthetic`) of the demo's, which
        never mix (a real sortie's previous one is never the demo's)."""
        flag = int(synthetic)
        cur = self.conn.execute(f"SELECT {_SORTIE_SELECT} WHERE end_reason IS NULL AND synthetic = ?", (flag,))
        open_sorties = [_sortie(row) for row in cur]
        last_report = (
            {}
            if synthetic
            else {k: from_epoch(t) for k, t in self.conn.execute("SELECT key, last_report_at FROM aircraft_state")}
        )
        last_end = {
            k: from_epoch(t)
            for k, t in self.conn.execute(
                "SELECT key, max(last_at) FROM sorties WHERE end_reason IS NOT NULL AND synthetic = ? GROUP BY key",
                (flag,),
            )
        }
        return open_sorties, last_report, last_end

    def remove_synthetic(self) -> tuple[int, int]:
        """Delete everything from synthetic recordings (the bundled demo), and remember it, so that the demo
        is not loaded again; returns (sightings, sorties) deleted."""
        with _writing("remove the demo data"), self.atomic():
            conn = self.conn
            ids = [i for (i,) in conn.execute("SELECT sortie_id FROM sorties WHERE synthetic = 1")]
            for sortie_id in ids:
                conn.execute("DELETE FROM happenings WHERE sortie_id = ?", (sortie_id,))
                conn.execute("DELETE FROM outbox WHERE event_id LIKE ? ESCAPE '\\'", (_like(sortie_id) + "/%",))
            sightings = conn.execute("DELETE FROM sightings WHERE synthetic = 1").rowcount
            conn.execute("DELETE FROM sorties WHERE synthetic = 1")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('demo_removed', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (iso_z(datetime.now(UTC)),),
            )
        return sightings, len(ids)

    @_reading("count the demo data")
    def synthetic_counts(self) -> tuple[int, int]:
        """(sightings, sorties) from synthetic recordings."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM sightings WHERE synthetic = 1), "
            "(SELECT count(*) FROM sorties WHERE synthetic = 1)"
        ).fetchone()
        return int(row[0]), int(row[1])

    @_reading("read the database's notes")
    def demo_removed(self) -> bool:
        """Whether `ingest demo remove` ran on this database."""
        return self.conn.execute("SELECT 1 FROM meta WHERE key = 'demo_removed'").fetchone() is not None

    @_reading("read sorties")
    def sorties(
        self,
        keys: Sequence[str] | None = None,
        since: datetime | None = None,
        open_only: bool = False,
        limit: int | None = None,
        until: datetime | None = None,
    ) -> list[Sortie]:
        """Sorties (of these aircraft keys, or all) that started in [since, until], the latest `limit`
        of them, oldest first."""
        where: list[str] = ["first_at >= ?"]
        params: list[Any] = [since.timestamp() if since else -math.inf]
        if until is not None:
            where.append("first_at <= ?")
            params.append(until.timestamp())
        if keys is not None:
            where.append(f"sorties.key IN ({', '.join('?' for _ in keys)})")
            params.extend(keys)
        if open_only:
            where.append("end_reason IS NULL")
        sql = f"SELECT {_SORTIE_SELECT} WHERE {' AND '.join(where)} ORDER BY first_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = [_sortie(row) for row in self.conn.execute(sql, params)]
        rows.reverse()
        return rows

    @_reading("read a sortie")
    def sortie(self, sortie_id: str) -> Sortie | None:
        """One sortie by its id."""
        row = self.conn.execute(f"SELECT {_SORTIE_SELECT} WHERE sortie_id = ?", (sortie_id,)).fetchone()
        return None if row is None else _sortie(row)

    @_reading("read a track")
    def track(self, sortie: Sortie) -> list[dict[str, Any]]:
        """The stored sightings of a sortie, oldest first: its aircraft's hexes from start to end (to its
        last sighting while open)."""
        hexes = [r[0] for r in self.conn.execute(
            "SELECT hex FROM aircraft_hex JOIN aircraft ON aircraft.id = aircraft_id WHERE key = ?", (sortie.key,)
        )] or [sortie.hex_icao]  # fmt: skip
        return self.sightings(hexes, sortie.start_at, sortie.last.at)

    @_reading("read sightings")
    def sightings_page(
        self,
        hexes: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The first `limit` sightings of these hexes in [since, until] after the (ts, hex) `after`,
        in (ts, hex) order."""
        if not hexes:
            return []
        lo = int(since.timestamp()) if since else -(2**62)
        hi = int(until.timestamp()) if until else 2**62
        sql = (
            "SELECT hex, registration, type, callsign, ts, lat, lon, x_m, y_m, alt_baro_ft, on_ground, "
            "alt_geom_ft, gs_kt, track_deg, squawk, source_type, feed, emergency, synthetic FROM sightings "
            f"WHERE hex IN ({', '.join('?' for _ in hexes)}) AND ts BETWEEN ? AND ?"
        )
        params: list[Any] = [*hexes, lo, hi]
        if after is not None:
            sql += " AND (ts > ? OR (ts = ? AND hex > ?))"
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY ts, hex LIMIT ?"
        params.append(limit)
        return [_sighting_dict(r) for r in self.conn.execute(sql, params)]

    @_reading("read sorties")
    def sorties_page(
        self,
        keys: Sequence[str] | None,
        since: datetime | None,
        open_only: bool,
        after: tuple[float, str] | None,
        limit: int,
    ) -> list[Sortie]:
        """The first `limit` sorties (of these aircraft keys, or all) that started at or after `since`,
        after the (first_at, sortie_id) `after`, in that order."""
        where = ["first_at >= ?"]
        params: list[Any] = [since.timestamp() if since else -math.inf]
        if keys is not None:
            where.append(f"sorties.key IN ({', '.join('?' for _ in keys)})")
            params.extend(keys)
        if open_only:
            where.append("end_reason IS NULL")
        if after is not None:
            where.append("(first_at > ? OR (first_at = ? AND sortie_id > ?))")
            params += [after[0], after[0], after[1]]
        sql = f"SELECT {_SORTIE_SELECT} WHERE {' AND '.join(where)} ORDER BY first_at, sortie_id LIMIT ?"
        params.append(limit)
        return [_sortie(row) for row in self.conn.execute(sql, params)]

    @_reading("read the outbox")
    def pending_alerts(self, limit: int, exclude: Iterable[int] = ()) -> list[tuple[int, str, str]]:
        """Unsent outbox rows (id, topic, payload), oldest first, skipping the ids in `exclude`."""
        skip = set(exclude)
        rows = self.conn.execute(
            "SELECT id, topic, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", (limit + len(skip),)
        ).fetchall()
        return [(int(r[0]), r[1], r[2]) for r in rows if r[0] not in skip][:limit]

    def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        with _writing("mark alerts sent"), self.atomic():
            self.conn.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ? AND sent_at IS NULL", [(iso_z(at), i) for i in ids]
            )

    @_reading("read the outbox")
    def outbox_counts(self) -> tuple[int, int]:
        """(unsent, sent) outbox rows."""
        row = self.conn.execute("SELECT count(*) - count(sent_at), count(sent_at) FROM outbox").fetchone()
        return int(row[0]), int(row[1])

    @_reading("read the polls")
    def feed_polls(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest poll records, newest first."""
        where = "WHERE feed = ?" if feed else ""
        params: list[Any] = [feed] if feed else []
        cur = self.conn.execute(f"SELECT * FROM feed_polls {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]


def _sighting_dict(row: Sequence[Any]) -> dict[str, Any]:
    values = list(row)
    values[4] = iso_z(from_epoch(values[4]))
    values[10] = bool(values[10])
    values[18] = bool(values[18])
    return dict(zip(SIGHTING_FIELDS, values, strict=True))


@dataclass(frozen=True, slots=True)
class Tracking:
    """Sortie changes, per-aircraft report times, what the detectors found and the alerts all these raised,
    saved with their poll."""

    sorties: Sequence[Sortie] = ()
    last_report_at: Mapping[str, datetime] = field(default_factory=dict)
    alerts: Sequence[Alert] = ()
    happenings: Sequence[Happening] = ()


@contextmanager
def _writing(what: str) -> Iterator[None]:
    """sqlite3's errors on a write (a full disk, a locked or read-only file) as one StoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {what}: {exc}") from exc


_UPSERT_HAPPENING = (
    "INSERT INTO happenings (event_id, sortie_id, kind, n, started_at, detected_at, lat, lon, details) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO UPDATE SET detected_at = detected_at, "
    "lat = excluded.lat, lon = excluded.lon, details = excluded.details"
)


def _happening_row(h: Happening) -> tuple[Any, ...]:
    return (
        h.event_id, h.sortie_id, h.kind, h.n, h.started_at.timestamp(), h.detected_at.timestamp(),
        h.lat_deg, h.lon_deg, json.dumps(dict(h.details), separators=(",", ":")),
    )  # fmt: skip


_SORTIE_FIELDS = (
    "sortie_id", "key", "hex", "registration", "type",
    "first_at", "first_lat", "first_lon", "first_alt_baro_ft", "first_callsign", "first_feed",
    "last_at", "last_lat", "last_lon", "last_alt_baro_ft", "last_callsign", "last_feed",
    "last_seen_at", "callsigns", "max_alt_baro_ft", "sightings", "previous_sortie_end", "end_reason",
    "took_off_code", "took_off_name", "landed_code", "landed_name", "synthetic",
)  # fmt: skip
_SORTIE_COLUMNS = ", ".join(_SORTIE_FIELDS)
# Reads add what the watchlist says of the aircraft (USAF, Boeing RC-135W) to the sortie's own columns.
_SORTIE_SELECT = (
    ", ".join(f"sorties.{c}" for c in _SORTIE_FIELDS)
    + ", aircraft.operator, aircraft.type_name FROM sorties LEFT JOIN aircraft ON aircraft.key = sorties.key"
)
_UPSERT_SORTIE = (
    f"INSERT INTO sorties ({_SORTIE_COLUMNS}) VALUES ({', '.join('?' for _ in _SORTIE_FIELDS)}) "
    "ON CONFLICT(sortie_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _SORTIE_FIELDS if c not in ("sortie_id", "first_at"))
)


def _key(s: Sighting) -> str:
    return s.key or normalise_registration(s.registration or s.obs.hex_icao)


def _fix_row(fix: Fix) -> tuple[Any, ...]:
    return (fix.at.timestamp(), fix.lat_deg, fix.lon_deg, fix.alt_baro_ft, fix.callsign, fix.feed)


def _sortie_row(s: Sortie) -> tuple[Any, ...]:
    return (
        s.sortie_id, s.key, s.hex_icao, s.registration, s.type_icao, *_fix_row(s.first), *_fix_row(s.last),
        s.last_seen_at.timestamp(), json.dumps(list(s.callsigns)), s.max_alt_baro_ft, s.sightings,
        s.previous_sortie_end.timestamp() if s.previous_sortie_end else None, s.end_reason,
        *_place_row(s.took_off_from), *_place_row(s.landed_at), int(s.synthetic),
    )  # fmt: skip


def _place_row(place: Place | None) -> tuple[str | None, str | None]:
    return (place.code, place.name) if place is not None else (None, None)


def _place(code: str | None, name: str | None) -> Place | None:
    from ingest.records import Place

    return Place(code, name or code) if code else None


def _fix(values: Sequence[Any]) -> Fix:
    from ingest.records import Fix

    return Fix(from_epoch(values[0]), values[1], values[2], values[3], values[4], values[5])


def _sortie(row: Sequence[Any]) -> Sortie:
    from ingest.records import Sortie

    return Sortie(
        sortie_id=row[0], key=row[1], hex_icao=row[2], registration=row[3], type_icao=row[4],
        first=_fix(row[5:11]), last=_fix(row[11:17]), last_seen_at=from_epoch(row[17]),
        callsigns=tuple(json.loads(row[18])), max_alt_baro_ft=row[19], sightings=row[20],
        previous_sortie_end=from_epoch(row[21]) if row[21] is not None else None, end_reason=row[22],
        took_off_from=_place(row[23], row[24]), landed_at=_place(row[25], row[26]), synthetic=bool(row[27]),
        operator=row[28] or None, type_name=row[29] or None,
    )  # fmt: skip
