"""Every query of the store, written once for both backends: SQLite (sqlite.py) and PostgreSQL (postgres.py).

The SQL here is the common subset the two speak alike (`INSERT ... ON CONFLICT`, `RETURNING`, `LIKE ...
ESCAPE`); placeholders are written `?` and a backend turns them into its own. A backend provides four
primitives (`_rows`, `_one`, `_exec`, `_many`), a transaction (`atomic()`), the errors its driver raises
(`_db_errors`, each turned into one StoreError line) and `GREATEST`, the one function spelt differently.

- `sightings` has PRIMARY KEY (hex, ts): the same position reported by two polls or two feeds (same hex,
  same position second) is stored once, and a tail's time range is one primary-key range scan.
- Times are stored as Unix seconds (sightings.ts, sortie times) or ISO 8601 text with `Z` (poll and daemon
  times), the same on both backends, so both answer with the same values.
- Values always travel as parameters; no SQL is built from feed data.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ingest.errors import StoreError
from ingest.store.base import (
    SORTIE_FIELDS,
    Aircraft,
    NotLeader,
    StreamRow,
    Tracking,
    happening_row,
    like,
    rows_as_dicts,
    sighting_dict,
    sighting_dicts,
    sighting_row,
    sortie_record,
    sortie_row,
)
from ingest.timeutil import from_epoch, iso_z

if TYPE_CHECKING:
    from ingest.detect.base import Happening
    from ingest.models import Alert, ChannelState, FeedHealth, PollRecord, QueuedEvent, Sighting
    from ingest.records import Sortie
    from ingest.watchlist import Watchlist

SIGHTING_COLUMNS = (
    "hex, ts, registration, type, callsign, lat, lon, x_m, y_m, alt_baro_ft, on_ground, alt_geom_ft, gs_kt, "
    "track_deg, squawk, source_type, non_icao, military, feed, emergency, synthetic"
)
# What a sighting reads as (SIGHTING_FIELDS' order: `ts` becomes `time`, ISO 8601 text written by the
# database, {time} being each backend's ISO_TIME, rather than per row in Python (scripts/bench_store.py).
SIGHTING_SELECT = (
    "hex, registration, type, callsign, {time}, lat, lon, x_m, y_m, alt_baro_ft, on_ground, alt_geom_ft, gs_kt, "
    "track_deg, squawk, source_type, feed, emergency, synthetic"
)
INSERT_SIGHTING = (
    f"INSERT INTO sightings ({SIGHTING_COLUMNS}) VALUES ({', '.join('?' for _ in SIGHTING_COLUMNS.split(','))}) "
    "ON CONFLICT (hex, ts) DO NOTHING"
)
SORTIE_COLUMNS = ", ".join(SORTIE_FIELDS)
# Reads add what the watchlist says of the aircraft (USAF, Boeing RC-135W) to the sortie's own columns.
SORTIE_SELECT = (
    ", ".join(f"sorties.{c}" for c in SORTIE_FIELDS)
    + ", aircraft.operator, aircraft.type_name FROM sorties LEFT JOIN aircraft ON aircraft.key = sorties.key"
)
UPSERT_SORTIE = (
    f"INSERT INTO sorties ({SORTIE_COLUMNS}) VALUES ({', '.join('?' for _ in SORTIE_FIELDS)}) "
    "ON CONFLICT (sortie_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in SORTIE_FIELDS if c not in ("sortie_id", "first_at"))
)
UPSERT_HAPPENING = (
    "INSERT INTO happenings (event_id, sortie_id, kind, n, started_at, detected_at, lat, lon, details) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET "
    "lat = excluded.lat, lon = excluded.lon, details = excluded.details"
)
_MIN_TS, _MAX_TS = -(2**62), 2**62
_IDS_PER_STATEMENT = 500  # ids bound in one IN (...): far below SQLite's and PostgreSQL's limits

F = TypeVar("F", bound=Callable[..., Any])


def reading(what: str) -> Callable[[F], F]:
    """The driver's errors on a read (a file gone, a server away, a lock held too long) as one StoreError."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(self: SqlStore, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except StoreError:
                raise
            except self._db_errors as exc:
                raise StoreError(f"cannot {what}: {self._reason(exc)}") from exc

        return cast(F, guarded)

    return wrap


def normalise_registration(reg: str) -> str:
    """As watchlist.normalise_registration (not imported: a read command does not need the watchlist)."""
    return reg.strip().upper()


class SqlStore:
    """The queries; a backend subclass provides the connection."""

    backend = "sql"
    GREATEST = "max"
    ISO_TIME = "strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch')"  # Unix seconds as 2026-11-20T22:55:58Z
    _db_errors: tuple[type[BaseException], ...] = ()
    commits = 0

    @functools.cached_property
    def _select(self) -> str:
        return SIGHTING_SELECT.format(time=self.ISO_TIME)

    # -- what a backend provides -----------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _described(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        raise NotImplementedError

    def atomic(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _reason(self, exc: BaseException) -> str:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """The driver's errors on a write (a full disk, a read-only file, a server away) as one StoreError."""
        try:
            yield
        except StoreError:
            raise
        except self._db_errors as exc:
            raise StoreError(f"cannot {what}: {self._reason(exc)}") from exc

    # -- writes ----------------------------------------------------------------------------------------

    def sync_watchlist(self, watchlist: Watchlist) -> None:
        """Upsert every watched aircraft and its hexes; aircraft no longer listed are kept."""
        with self._writing("store the watchlist"), self.atomic():
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
                self._many(
                    "INSERT INTO aircraft_hex (hex, aircraft_id, source) VALUES (?, ?, 'watchlist') "
                    "ON CONFLICT (hex) DO UPDATE SET aircraft_id = excluded.aircraft_id, source = 'watchlist'",
                    [(h, aircraft_id) for h in entry.hexes],
                )

    def _upsert_aircraft(self, **values: Any) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values if c != "key")
        row = self._one(
            f"INSERT INTO aircraft ({cols}) VALUES ({marks}) ON CONFLICT (key) DO UPDATE SET {updates} RETURNING id",
            list(values.values()),
        )
        assert row is not None
        return int(row[0])

    @functools.cached_property
    def _known_hexes(self) -> set[tuple[str, str]]:
        """(hex, aircraft key) pairs this handle stored (committed): those need no statement again."""
        return set()

    @functools.cached_property
    def _learnt(self) -> set[tuple[str, str]]:
        """Pairs stored by the transaction under way: known once it commits."""
        return set()

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
    ) -> int:
        """Store a poll's sightings, the sortie changes and alerts they caused, and (unless told not to)
        its feed_polls row, in one transaction; returns how many sightings were new. With `stream` (a
        database several daemons share), the poll's entry for the leader goes in with them."""
        try:
            with self._writing("store a poll"), self.atomic():
                stored = self._insert_sightings([sighting_row(s, synthetic) for s in sightings])
                self._learn_hexes(sightings)
                if tracking is not None:
                    self._save_tracking(tracking)
                if health is not None:
                    self._save_health(health)
                if record_poll:
                    self._exec(
                        "INSERT INTO feed_polls (started_at, feed, duration_ms, requests, http_status, aircraft, "
                        "matched, kept, stored, rejected, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            iso_z(record.started_at), record.feed, record.duration_ms, record.requests,
                            record.http_status, record.aircraft, record.matched, record.kept, stored,
                            record.rejected, record.error,
                        ),
                    )  # fmt: skip
                if stream is not None:
                    self._append_stream(stream)
        except BaseException:
            self._learnt.clear()  # rolled back: not stored after all
            raise
        self._known_hexes.update(self._learnt)
        self._learnt.clear()
        return stored

    def copy_in(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows copied from another database (transfer.py), keeping those already here; returns how
        many were new."""
        marks = ", ".join("?" for _ in columns)
        return self._many(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
            rows,
        )

    def _append_stream(self, row: StreamRow) -> None:
        raise StoreError(f"a {self.backend} database holds no poll stream: several daemons need PostgreSQL")

    def _insert_sightings(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert sightings, ignoring those already stored; returns how many were new."""
        return self._many(INSERT_SIGHTING, rows) if rows else 0

    def save_tracking(self, tracking: Tracking) -> None:
        """Store sortie changes and their alerts (from the periodic check) in one transaction."""
        with self._writing("store sortie changes"), self.atomic():
            self._save_tracking(tracking)

    def _save_tracking(self, tracking: Tracking) -> None:
        if tracking.stream is not None:
            daemon, position = tracking.stream
            # The fence: only the leader on record moves its place, so a daemon that lost the leadership
            # (and does not know it yet) saves nothing.
            if not self._exec(
                "UPDATE leader SET last_report_id = ? WHERE id = 1 AND daemon = ? AND last_report_id <= ?",
                (position, daemon, position),
            ):
                raise NotLeader(daemon)
        if tracking.sorties:
            self._many(UPSERT_SORTIE, [sortie_row(s) for s in tracking.sorties])
        if tracking.last_report_at:
            self._many(
                "INSERT INTO aircraft_state (key, last_report_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                f"last_report_at = {self.GREATEST}(aircraft_state.last_report_at, excluded.last_report_at)",
                [(key, at.timestamp()) for key, at in tracking.last_report_at.items()],
            )
        if tracking.happenings:
            self._many(UPSERT_HAPPENING, [happening_row(h) for h in tracking.happenings])
        if tracking.alerts:
            self._enqueue(tracking.alerts)

    def _enqueue(self, alerts: Sequence[Alert]) -> None:
        """Outbox rows for new events, and a delivery row for each channel an event goes to. An event raised
        again (an orbit's later laps, a replayed track) keeps its row; a channel already given it is not again."""
        now = iso_z(datetime.now(UTC))
        self._many(
            "INSERT INTO outbox (event_id, topic, payload, created_at, facts) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (event_id) DO NOTHING",
            [(a.event_id, a.topic, a.payload, now, a.facts or None) for a in alerts],
        )
        wanted = [(channel, a.event_id) for a in alerts for channel in a.channels]
        if wanted:
            self._many(
                "INSERT INTO deliveries (channel, outbox_id) SELECT CAST(? AS TEXT), id FROM outbox WHERE event_id = ? "
                "ON CONFLICT (channel, outbox_id) DO NOTHING",
                wanted,
            )

    def _save_health(self, h: FeedHealth) -> None:
        at = iso_z(h.at)
        self._exec(
            "INSERT INTO feed_state (feed, state, at, failures, degraded_since, next_try_at, reason, "
            "last_success_at, last_error_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (feed) DO UPDATE SET "
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

    def _learn_hexes(self, sightings: Iterable[Sighting]) -> None:
        """Remember every hex a sighting came under: a watched registration seen under a hex we did not
        list (a re-hexed airframe), or a military aircraft kept by include_military (a new aircraft row)."""
        known = self._known_hexes
        seen = {
            pair: s
            for s in sightings
            if (pair := (s.obs.hex_icao, s.key or normalise_registration(s.registration or s.obs.hex_icao)))
            not in known
        }
        if not seen:
            return  # every one already stored: a poll of the same aircraft costs no statement here
        self._many(
            "INSERT INTO aircraft (key, registration, icao_type) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            [(key, s.registration, s.type_icao) for (_, key), s in seen.items()],
        )
        self._many(
            # Typed: PostgreSQL cannot tell a parameter's type in a SELECT list by itself.
            "INSERT INTO aircraft_hex (hex, aircraft_id, source) SELECT CAST(? AS TEXT), id, CAST(? AS TEXT) "
            "FROM aircraft WHERE key = ? ON CONFLICT (hex) DO NOTHING",
            [(hex_icao, s.obs.feed, key) for (hex_icao, key), s in seen.items()],
        )
        self._learnt.update(seen)

    def heartbeat(self, daemon: str, host: str, pid: int, version: str, now: datetime, stopped: bool = False) -> None:
        """The daemon `daemon` is alive at `now` (or, with `stopped`, has stopped cleanly)."""
        at = iso_z(now)
        with self._writing("write the heartbeat"), self.atomic():
            self._exec(
                "INSERT INTO daemons (daemon, host, pid, version, started_at, beat_at, stopped_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (daemon) DO UPDATE SET beat_at = excluded.beat_at, "
                "stopped_at = excluded.stopped_at",
                (daemon, host, pid, version, at, at, at if stopped else None),
            )

    # -- alert channels (alerts/delivery.py) -------------------------------------------------------------

    def settle(
        self,
        channel: str,
        delivered: Sequence[int],
        at: datetime,
        *,
        read: int = 0,
        after: int = 0,
        exclude: Iterable[int] = (),
    ) -> list[QueuedEvent]:
        """Mark `delivered` (outbox ids) delivered to `channel` at `at`, then read up to `read` events still
        waiting for it with an outbox id above `after`, oldest first, skipping `exclude`: one round trip for
        a relay's marks and its next batch."""
        if delivered:
            stamp = iso_z(at)
            with self._writing(f"mark alerts delivered to {channel}"), self.atomic():
                # A batch in one statement, not one per event (scripts/bench_alerts.py: the MQTT drain). Since
                # 0006_alert_channels, outbox.sent_at is no longer written: deliveries say who took what.
                for start in range(0, len(delivered), _IDS_PER_STATEMENT):
                    ids = [int(i) for i in delivered[start : start + _IDS_PER_STATEMENT]]
                    marks = ", ".join("?" for _ in ids)
                    self._exec(
                        "UPDATE deliveries SET delivered_at = ? "
                        f"WHERE channel = ? AND outbox_id IN ({marks}) AND delivered_at IS NULL",
                        (stamp, channel, *ids),
                    )
                self._exec(
                    "INSERT INTO alert_channels (channel, kind, last_delivered_at) VALUES (?, '', ?) "
                    "ON CONFLICT (channel) DO UPDATE SET last_delivered_at = excluded.last_delivered_at, failures = 0, "
                    "next_try_at = NULL, parked_until = NULL",
                    (channel, stamp),
                )
        return self.pending_events(channel, read, after, exclude) if read > 0 else []

    @reading("read the outbox")
    def pending_events(
        self, channel: str, limit: int, after: int = 0, exclude: Iterable[int] = ()
    ) -> list[QueuedEvent]:
        """Events waiting for `channel` with an outbox id above `after`, oldest first, skipping `exclude`."""
        from ingest.models import QueuedEvent

        skip = set(exclude)
        rows = self._rows(
            "SELECT o.id, o.event_id, o.topic, o.payload, o.facts, d.progress FROM deliveries d "
            "JOIN outbox o ON o.id = d.outbox_id WHERE d.channel = ? AND d.delivered_at IS NULL AND d.outbox_id > ? "
            "ORDER BY d.outbox_id LIMIT ?",
            (channel, after, limit + len(skip)),
        )
        return [QueuedEvent(int(r[0]), r[1], r[2], r[3], r[4] or "", r[5] or "") for r in rows if r[0] not in skip][
            :limit
        ]

    def note_progress(self, channel: str, outbox_id: int, progress: str) -> None:
        """What part of an event a channel has delivered (apprise: which of its URLs took it)."""
        with self._writing(f"note progress for {channel}"), self.atomic():
            self._exec(
                "UPDATE deliveries SET progress = ? WHERE channel = ? AND outbox_id = ?", (progress, channel, outbox_id)
            )

    def note_channel(
        self,
        channel: str,
        kind: str,
        at: datetime,
        error: str | None,
        next_try_at: datetime | None = None,
        parked_until: datetime | None = None,
    ) -> None:
        """A channel's failed attempt (one line, no secret), with when it tries again or how long it is parked;
        with `error` None, just that the channel exists (and is no longer parked)."""
        with self._writing(f"note the state of {channel}"), self.atomic():
            if error is None:
                self._exec(
                    "INSERT INTO alert_channels (channel, kind) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET "
                    "kind = excluded.kind, parked_until = NULL, next_try_at = NULL, failures = 0",
                    (channel, kind),
                )
                return
            self._exec(
                "INSERT INTO alert_channels (channel, kind, last_error, last_error_at, failures, next_try_at, "
                "parked_until) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (channel) DO UPDATE SET kind = excluded.kind, "
                "last_error = excluded.last_error, last_error_at = excluded.last_error_at, "
                "failures = alert_channels.failures + 1, next_try_at = excluded.next_try_at, "
                "parked_until = excluded.parked_until",
                (channel, kind, error, iso_z(at), _iso(next_try_at), _iso(parked_until)),
            )

    def register_channel(self, channel: str, kind: str) -> None:
        """A configured channel exists (so `ingest alerts status` lists it before its first event)."""
        with self._writing(f"note the state of {channel}"), self.atomic():
            self._exec(
                "INSERT INTO alert_channels (channel, kind) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET "
                "kind = excluded.kind",
                (channel, kind),
            )

    def set_channel_memo(self, channel: str, kind: str, memo: str) -> None:
        """Keep what a channel must remember across restarts (homeassistant: the discovery topics it made)."""
        with self._writing(f"note the state of {channel}"), self.atomic():
            self._exec(
                "INSERT INTO alert_channels (channel, kind, memo) VALUES (?, ?, ?) ON CONFLICT (channel) DO UPDATE "
                "SET memo = excluded.memo",
                (channel, kind, memo or None),
            )

    @reading("read the alert channels")
    def channel_states(self) -> list[ChannelState]:
        """Every channel the database knows (delivered to, queued for or failed), by name."""
        from ingest.models import ChannelState

        counts = {
            channel: (int(queued), int(done))
            for channel, queued, done in self._rows(
                "SELECT channel, count(*) - count(delivered_at), count(delivered_at) FROM deliveries GROUP BY channel"
            )
        }
        rows = {
            r[0]: r
            for r in self._rows(
                "SELECT channel, kind, last_delivered_at, last_error, last_error_at, failures, next_try_at, "
                "parked_until, memo FROM alert_channels"
            )
        }
        states = []
        for name in sorted(set(counts) | set(rows)):
            queued, done = counts.get(name, (0, 0))
            r = rows.get(name) or (name, "", None, None, None, 0, None, None, None)
            states.append(ChannelState(
                name, r[1], queued, done, _time(r[2]), r[3], _time(r[4]), int(r[5] or 0), _time(r[6]), _time(r[7]),
                r[8] or "",
            ))  # fmt: skip
        return states

    @reading("read the latest sorties")
    def latest_sorties(self) -> list[tuple[Sortie, str | None, str | None]]:
        """Each aircraft's latest sortie (real data only), with the watchlist's category and tags (comma
        separated): what the homeassistant channel makes a device of."""
        rows = self._rows(
            f"SELECT {SORTIE_SELECT.replace(' FROM sorties', ', aircraft.category, aircraft.tags FROM sorties', 1)} "
            "WHERE sorties.synthetic = 0 AND sorties.first_at = "
            "(SELECT max(s2.first_at) FROM sorties s2 WHERE s2.key = sorties.key AND s2.synthetic = 0) "
            "ORDER BY sorties.key"
        )
        return [(sortie_record(r[:30]), r[30], r[31]) for r in rows]

    def remove_channel(self, channel: str) -> None:
        """Forget a channel (its queue included): the homeassistant channel once its entities are removed."""
        with self._writing(f"forget {channel}"), self.atomic():
            self._exec("DELETE FROM deliveries WHERE channel = ? AND delivered_at IS NULL", (channel,))
            self._exec("UPDATE alert_channels SET memo = NULL WHERE channel = ?", (channel,))

    def remove_synthetic(self) -> tuple[int, int]:
        """Delete everything from synthetic recordings (the bundled demo), and remember it, so that the demo
        is not loaded again; returns (sightings, sorties) deleted."""
        with self._writing("remove the demo data"), self.atomic():
            ids = [i for (i,) in self._rows("SELECT sortie_id FROM sorties WHERE synthetic = 1")]
            for sortie_id in ids:
                self._exec("DELETE FROM happenings WHERE sortie_id = ?", (sortie_id,))
                pattern = (like(sortie_id) + "/%",)
                self._exec(
                    "DELETE FROM deliveries WHERE outbox_id IN "
                    "(SELECT id FROM outbox WHERE event_id LIKE ? ESCAPE '\\')",
                    pattern,
                )
                self._exec("DELETE FROM outbox WHERE event_id LIKE ? ESCAPE '\\'", pattern)
            sightings = self._exec("DELETE FROM sightings WHERE synthetic = 1")
            self._exec("DELETE FROM sorties WHERE synthetic = 1")
            self._exec(
                "INSERT INTO meta (key, value) VALUES ('demo_removed', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (iso_z(datetime.now(UTC)),),
            )
        return sightings, len(ids)

    # -- retention (retention.py): each call one short transaction ---------------------------------------

    def prune_sightings(self, before: datetime, start_hex: str, limit: int, max_hexes: int) -> tuple[int, str | None]:
        """Delete at most `limit` sightings timed before `before`, walking the aircraft in hex order from
        `start_hex` on (at most `max_hexes` of them), in one transaction. Returns (deleted, the hex to go on
        from next time, or None when the walk reached the last one). Each step is a primary-key lookup or
        range scan: no scan of the table, however large."""
        cut = int(before.timestamp())
        deleted = 0
        with self._writing("delete old sightings"), self.atomic():
            row = self._one("SELECT min(hex) FROM sightings WHERE hex >= ?", (start_hex,))
            current: str | None = row[0] if row else None
            for _ in range(max_hexes):
                if current is None:
                    break
                deleted += self._exec(
                    "DELETE FROM sightings WHERE hex = ? AND ts IN "
                    "(SELECT ts FROM sightings WHERE hex = ? AND ts < ? ORDER BY ts LIMIT ?)",
                    (current, current, cut, limit - deleted),
                )
                if deleted >= limit:
                    break  # this aircraft may hold more: start from it next time
                row = self._one("SELECT min(hex) FROM sightings WHERE hex > ?", (current,))
                current = row[0] if row else None
        return deleted, current

    def prune_polls(self, before: datetime, start_feed: str, limit: int) -> tuple[int, str | None]:
        """Delete at most `limit` feed_polls rows started before `before`, walking the feeds in name order
        from `start_feed` on, in one transaction (index range scans on (feed, started_at), as
        prune_sightings walks the aircraft). Returns (deleted, the feed to go on from, or None at the end)."""
        cut = iso_z(before)
        deleted = 0
        with self._writing("delete old polls"), self.atomic():
            row = self._one("SELECT min(feed) FROM feed_polls WHERE feed >= ?", (start_feed,))
            current: str | None = row[0] if row else None
            while current is not None:
                deleted += self._exec(
                    "DELETE FROM feed_polls WHERE id IN "
                    "(SELECT id FROM feed_polls WHERE feed = ? AND started_at < ? ORDER BY started_at LIMIT ?)",
                    (current, cut, limit - deleted),
                )
                if deleted >= limit:
                    break  # this feed may hold more: start from it next time
                row = self._one("SELECT min(feed) FROM feed_polls WHERE feed > ?", (current,))
                current = row[0] if row else None
        return deleted, current

    def prune_outbox(self, before: datetime, limit: int) -> int:
        """Delete at most `limit` events (outbox rows, with their deliveries) that every channel took before
        `before`; never one a channel still waits for. Rows from before alert channels count by their
        `sent_at`; an event no channel wanted, by when it was made."""
        cut = iso_z(before)
        with self._writing("delete delivered alerts"), self.atomic():
            ids = [i for (i,) in self._rows(
                "SELECT o.id FROM outbox o WHERE (o.sent_at IS NULL OR o.sent_at < ?) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id "
                "AND (d.delivered_at IS NULL OR d.delivered_at >= ?)) "
                # taken by its channels (above), sent before channels existed, or wanted by none and old
                "AND (EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id) OR o.sent_at IS NOT NULL "
                "OR o.created_at < ?) ORDER BY o.id LIMIT ?",
                (cut, cut, cut, limit),
            )]  # fmt: skip
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            self._exec(f"DELETE FROM deliveries WHERE outbox_id IN ({marks})", ids)
            return self._exec(f"DELETE FROM outbox WHERE id IN ({marks})", ids)

    def drop_partitions_before(self, before: datetime) -> list[str]:
        """Drop whole partitions of sightings that lie before `before` (PostgreSQL); SQLite has none."""
        return []

    # -- upkeep (`ingest db`) ------------------------------------------------------------------------------

    def _row_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Exact rows per table (a full count: `ingest db stats` is run by hand, not on every poll)."""
        counts: dict[str, int] = {}
        for name in tables:
            quoted = '"' + name.replace('"', '""') + '"'  # a name from the catalog, quoted all the same
            row = self._one(f"SELECT count(*) FROM {quoted}")
            counts[name] = int(row[0]) if row else 0
        return counts

    def _sightings_span(self) -> tuple[datetime | None, datetime | None]:
        row = self._one("SELECT min(ts), max(ts) FROM sightings")
        if row is None or row[0] is None:
            return None, None
        return from_epoch(row[0]), from_epoch(row[1])

    # -- reads -----------------------------------------------------------------------------------------

    @reading("read the feeds' health")
    def feed_health(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Per feed: its feed_state row and its polls since `since` (polls, failed, requests, aircraft, kept)."""
        health = {row["feed"]: row for row in self._described("SELECT * FROM feed_state")}
        for feed, polls, failed, requests, aircraft, kept, rejected in self._rows(
            "SELECT feed, count(*), count(error), sum(requests), sum(aircraft), sum(kept), sum(rejected) "
            "FROM feed_polls WHERE started_at >= ? GROUP BY feed",
            (iso_z(since),),
        ):
            health.setdefault(feed, {"feed": feed}).update(
                polls=polls, failed=failed, requests=_int(requests), aircraft=_int(aircraft), kept=_int(kept),
                rejected=_int(rejected),
            )  # fmt: skip
        return health

    @reading("look up an aircraft")
    def find_aircraft(self, tail: str) -> Aircraft | None:
        """An aircraft by registration (any case) or by one of its hexes."""
        tail = tail.strip()
        row = self._one(
            "SELECT id FROM aircraft WHERE key = ? UNION SELECT aircraft_id FROM aircraft_hex WHERE hex = ? LIMIT 1",
            (normalise_registration(tail), tail.lower().lstrip("~")),
        )
        return None if row is None else self._aircraft(int(row[0]))

    @reading("list the aircraft")
    def aircraft_names(self) -> list[tuple[int, str, str | None]]:
        """(id, key, registration) of every aircraft: what a tail that is not spelt exactly is matched against."""
        return [(int(r[0]), r[1], r[2]) for r in self._rows("SELECT id, key, registration FROM aircraft")]

    @reading("look up an aircraft")
    def aircraft(self, aircraft_id: int) -> Aircraft:
        return self._aircraft(aircraft_id)

    def _aircraft(self, aircraft_id: int) -> Aircraft:
        row = self._one(
            "SELECT id, key, registration, icao_type, type_name, operator FROM aircraft WHERE id = ?", (aircraft_id,)
        )
        assert row is not None
        hexes = [
            r[0] for r in self._rows("SELECT hex FROM aircraft_hex WHERE aircraft_id = ? ORDER BY hex", (aircraft_id,))
        ]
        return Aircraft(int(row[0]), row[1], row[2], row[3], row[4], row[5], tuple(hexes))

    @reading("look up an aircraft's hexes")
    def hex_sources(self, aircraft_id: int) -> list[tuple[str, str]]:
        """(hex, source) of every hex known for an aircraft: source 'watchlist', or the feed that revealed it."""
        rows = self._rows("SELECT hex, source FROM aircraft_hex WHERE aircraft_id = ? ORDER BY hex", (aircraft_id,))
        return [(r[0], r[1]) for r in rows]

    @reading("look up a callsign")
    def callsign_users(
        self, callsign: str, prefix: bool, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, int, datetime, tuple[str, ...]]]:
        """Aircraft that flew a sortie under `callsign` (or a callsign starting with it) overlapping
        [since, until]: (key, sorties, latest start, the matching callsigns), the latest first."""
        pattern = f'%"{like(callsign.upper())}{"%" if prefix else ""}"%'
        where = ["callsigns LIKE ? ESCAPE '\\'"]
        params: list[Any] = [pattern]
        if since is not None:
            where.append("(end_reason IS NULL OR last_at >= ?)")
            params.append(since.timestamp())
        if until is not None:
            where.append("first_at <= ?")
            params.append(until.timestamp())
        rows = self._rows(
            f"SELECT key, first_at, callsigns FROM sorties WHERE {' AND '.join(where)} ORDER BY first_at DESC", params
        )
        found: dict[str, tuple[int, datetime, list[str]]] = {}
        wanted = callsign.upper()
        for key, first_at, callsigns in rows:
            names = [c for c in json.loads(callsigns) if (c.startswith(wanted) if prefix else c == wanted)]
            if not names:
                continue  # LIKE matched across a quote; the JSON says otherwise
            n, latest, seen = found.get(key, (0, from_epoch(first_at), []))
            found[key] = (n + 1, latest, seen + [c for c in names if c not in seen])
        return [(key, n, latest, tuple(seen)) for key, (n, latest, seen) in found.items()]

    @reading("list the callsigns")
    def callsigns(self) -> list[str]:
        """Every callsign a sortie was flown under (for suggestions)."""
        names: set[str] = set()
        for (callsigns,) in self._rows("SELECT DISTINCT callsigns FROM sorties"):
            names.update(json.loads(callsigns))
        return sorted(names)

    @reading("read sightings")
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
        lo = int(since.timestamp()) if since else _MIN_TS
        hi = int(until.timestamp()) if until else _MAX_TS
        sql = (
            f"SELECT {self._select} FROM sightings WHERE hex IN ({', '.join('?' for _ in hexes)}) "
            "AND ts BETWEEN ? AND ? ORDER BY ts DESC"
        )
        params: list[Any] = [*hexes, lo, hi]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = sighting_dicts(self._rows(sql, params))
        rows.reverse()
        return rows

    @reading("read sightings")
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
        lo = int(since.timestamp()) if since else _MIN_TS
        hi = int(until.timestamp()) if until else _MAX_TS
        marks = ", ".join("?" for _ in hexes)
        sql = f"SELECT {self._select} FROM sightings WHERE hex IN ({marks}) AND ts BETWEEN ? AND ?"
        params: list[Any] = [*hexes, lo, hi]
        if after is not None:
            sql += " AND (ts > ? OR (ts = ? AND hex > ?))"
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY ts, hex LIMIT ?"
        params.append(limit)
        return sighting_dicts(self._rows(sql, params))

    @reading("read the polls")
    def successful_polls(self, since: datetime) -> list[tuple[str, datetime, float]]:
        """(feed, start, duration in s) of every poll since `since` that succeeded and was stored, oldest
        first: what covered time is rebuilt from (detect/coverage.py)."""
        rows = self._rows(
            "SELECT feed, started_at, duration_ms FROM feed_polls WHERE error IS NULL AND started_at >= ?",
            (iso_z(since),),
        )
        polls = [(feed, datetime.fromisoformat(at), ms / 1000) for feed, at, ms in rows]  # ISO 8601 with Z
        polls.sort(key=lambda p: p[1])
        return polls

    @reading("read the polls")
    def last_successes(self) -> list[tuple[str, datetime, float]]:
        """Each feed's latest successful, stored poll (feed, start, duration in s)."""
        rows = self._rows(
            "SELECT feed, started_at, duration_ms FROM feed_polls p WHERE error IS NULL AND started_at = "
            "(SELECT max(started_at) FROM feed_polls q WHERE q.feed = p.feed AND q.error IS NULL)"
        )
        latest: dict[str, tuple[str, datetime, float]] = {}
        for feed, at, ms in rows:
            latest[feed] = (feed, datetime.fromisoformat(at), ms / 1000)
        return list(latest.values())

    @reading("read the daemons")
    def daemons(self) -> list[dict[str, Any]]:
        """Every daemon that has run on this database, the latest heartbeat first."""
        return self._described("SELECT * FROM daemons ORDER BY beat_at DESC")

    @reading("read the latest positions")
    def latest_positions(self, since: datetime) -> list[dict[str, Any]]:
        """The latest stored sighting, at or after `since`, of every aircraft reported since then, with its
        aircraft key: one primary-key lookup per aircraft that the sortie detector saw lately."""
        rows: list[dict[str, Any]] = []
        for (key,) in self._rows("SELECT key FROM aircraft_state WHERE last_report_at >= ?", (since.timestamp(),)):
            hexes = [h for (h,) in self._rows(
                "SELECT hex FROM aircraft_hex JOIN aircraft ON aircraft.id = aircraft_id WHERE key = ?", (key,)
            )]  # fmt: skip
            if not hexes:
                continue
            row = self._one(
                f"SELECT {self._select} FROM sightings WHERE hex IN ({', '.join('?' for _ in hexes)}) "
                "AND ts >= ? ORDER BY ts DESC LIMIT 1",
                [*hexes, int(since.timestamp())],
            )
            if row is not None:
                rows.append({"key": key, **sighting_dict(row)})
        return rows

    @reading("read the happenings")
    def happenings(self, sortie_ids: Sequence[str]) -> list[Happening]:
        """The orbits, emergencies ... of these sorties, in the order they began."""
        if not sortie_ids:
            return []
        from ingest.records import Happening

        rows = self._rows(
            "SELECT sortie_id, kind, n, started_at, detected_at, lat, lon, details FROM happenings "
            f"WHERE sortie_id IN ({', '.join('?' for _ in sortie_ids)}) ORDER BY started_at, event_id",
            list(sortie_ids),
        )
        return [
            Happening(r[1], r[0], r[2], from_epoch(r[3]), from_epoch(r[4]), r[5], r[6], json.loads(r[7])) for r in rows
        ]

    @reading("read the sorties' state")
    def tracker_state(self, synthetic: bool = False) -> tuple[list[Sortie], dict[str, datetime], dict[str, datetime]]:
        """What the sortie detector needs after a restart: open sorties, the last report processed per
        aircraft, and each aircraft's latest sortie end; of real data, or (`synthetic`) of the demo's, which
        never mix (a real sortie's previous one is never the demo's)."""
        flag = int(synthetic)
        open_sorties = [
            sortie_record(r)
            for r in self._rows(f"SELECT {SORTIE_SELECT} WHERE end_reason IS NULL AND synthetic = ?", (flag,))
        ]
        last_report = (
            {}
            if synthetic
            else {k: from_epoch(t) for k, t in self._rows("SELECT key, last_report_at FROM aircraft_state")}
        )
        last_end = {
            k: from_epoch(t)
            for k, t in self._rows(
                "SELECT key, max(last_at) FROM sorties WHERE end_reason IS NOT NULL AND synthetic = ? GROUP BY key",
                (flag,),
            )
        }
        return open_sorties, last_report, last_end

    @reading("count the demo data")
    def synthetic_counts(self) -> tuple[int, int]:
        """(sightings, sorties) from synthetic recordings."""
        row = self._one(
            "SELECT (SELECT count(*) FROM sightings WHERE synthetic = 1), "
            "(SELECT count(*) FROM sorties WHERE synthetic = 1)"
        )
        assert row is not None
        return int(row[0]), int(row[1])

    @reading("read the database's notes")
    def demo_removed(self) -> bool:
        """Whether `ingest demo remove` ran on this database."""
        return self._one("SELECT 1 FROM meta WHERE key = 'demo_removed'") is not None

    @reading("read sorties")
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
        sql = f"SELECT {SORTIE_SELECT} WHERE {' AND '.join(where)} ORDER BY first_at DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = [sortie_record(row) for row in self._rows(sql, params)]
        rows.reverse()
        return rows

    @reading("read sorties")
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
        sql = f"SELECT {SORTIE_SELECT} WHERE {' AND '.join(where)} ORDER BY first_at, sortie_id LIMIT ?"
        params.append(limit)
        return [sortie_record(row) for row in self._rows(sql, params)]

    @reading("read a sortie")
    def sortie(self, sortie_id: str) -> Sortie | None:
        """One sortie by its id."""
        row = self._one(f"SELECT {SORTIE_SELECT} WHERE sortie_id = ?", (sortie_id,))
        return None if row is None else sortie_record(row)

    @reading("read a track")
    def track(self, sortie: Sortie) -> list[dict[str, Any]]:
        """The stored sightings of a sortie, oldest first: its aircraft's hexes from start to end (to its
        last sighting while open)."""
        hexes = [r[0] for r in self._rows(
            "SELECT hex FROM aircraft_hex JOIN aircraft ON aircraft.id = aircraft_id WHERE key = ?", (sortie.key,)
        )] or [sortie.hex_icao]  # fmt: skip
        return self.sightings(hexes, sortie.start_at, sortie.last.at)

    @reading("read the outbox")
    def outbox_counts(self) -> tuple[int, int]:
        """(waiting, delivered) deliveries, every channel together."""
        row = self._one("SELECT count(*) - count(delivered_at), count(delivered_at) FROM deliveries")
        assert row is not None
        return int(row[0] or 0), int(row[1] or 0)

    @reading("read the polls")
    def feed_polls(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest poll records, newest first."""
        where = "WHERE feed = ?" if feed else ""
        params: list[Any] = [feed] if feed else []
        return self._described(f"SELECT * FROM feed_polls {where} ORDER BY id DESC LIMIT ?", [*params, limit])


def _iso(at: datetime | None) -> str | None:
    return None if at is None else iso_z(at)


def _time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def _int(value: Any) -> int:
    """A SUM() as an int: PostgreSQL sums integers as numeric."""
    return 0 if value is None else int(value)


__all__ = ["INSERT_SIGHTING", "SIGHTING_COLUMNS", "SIGHTING_SELECT", "SqlStore", "Tracking", "rows_as_dicts"]
