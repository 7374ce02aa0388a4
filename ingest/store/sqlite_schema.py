"""The SQLite schema: every migration, applied in order by sqlite-utils' Migrations. The only importer of
sqlite_utils.

sqlite.py opens databases with the standard library's sqlite3 alone and imports this module only when a
database lacks a migration (a new or older file): sqlite_utils imports numpy when it can, which would
cost every read command a fifth of a second (scripts/bench_cli.py). `sqlite.MIGRATIONS` names what this
module applies; a test keeps the two in step.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

DEMO_SORTIES = ("ae01d2-20261120T225558Z", "71f00d-20261120T234056Z")  # the bundled demo's (config/demo/)

migrations = Migrations("ingest")


@migrations(name="0001_initial")
def _m0001_initial(db: Database) -> None:
    db.execute(
        """CREATE TABLE aircraft (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,          -- upper-case registration, or the hex without one
            registration TEXT,
            icao_type TEXT,
            type_name TEXT,
            operator TEXT,
            category TEXT,
            tags TEXT,
            link TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE aircraft_hex (
            hex TEXT PRIMARY KEY,
            aircraft_id INTEGER NOT NULL REFERENCES aircraft(id),
            source TEXT NOT NULL               -- 'watchlist', or the feed whose `r` revealed it
        )"""
    )
    db.execute("CREATE INDEX aircraft_hex_aircraft ON aircraft_hex(aircraft_id)")
    db.execute(
        """CREATE TABLE sightings (
            hex TEXT NOT NULL,                 -- 6 lower-case hex digits
            ts INTEGER NOT NULL,               -- position time, Unix seconds UTC
            registration TEXT,
            type TEXT,
            callsign TEXT,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            x_m REAL NOT NULL,
            y_m REAL NOT NULL,
            alt_baro_ft INTEGER,
            on_ground INTEGER NOT NULL,
            alt_geom_ft INTEGER,
            gs_kt REAL,
            track_deg REAL,
            squawk TEXT,
            source_type TEXT NOT NULL,
            non_icao INTEGER NOT NULL,
            military INTEGER NOT NULL,
            feed TEXT NOT NULL,
            PRIMARY KEY (hex, ts)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE feed_polls (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            feed TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            http_status INTEGER,
            aircraft INTEGER NOT NULL,
            matched INTEGER NOT NULL,
            kept INTEGER NOT NULL,
            stored INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            error TEXT
        )"""
    )
    db.execute("CREATE INDEX feed_polls_feed_time ON feed_polls(feed, started_at)")


@migrations(name="0002_sorties_and_outbox")
def _m0002_sorties_and_outbox(db: Database) -> None:
    db.execute(
        """CREATE TABLE sorties (
            sortie_id TEXT PRIMARY KEY,        -- <hex>-<start %Y%m%dT%H%M%SZ>
            key TEXT NOT NULL,                 -- the watched aircraft: registration, or hex without one
            hex TEXT NOT NULL,
            registration TEXT,
            type TEXT,
            first_at REAL NOT NULL,            -- Unix seconds UTC: the first airborne sighting in the area
            first_lat REAL NOT NULL,
            first_lon REAL NOT NULL,
            first_alt_baro_ft INTEGER,
            first_callsign TEXT,
            first_feed TEXT NOT NULL,
            last_at REAL NOT NULL,             -- the last airborne sighting in the area (the end time)
            last_lat REAL NOT NULL,
            last_lon REAL NOT NULL,
            last_alt_baro_ft INTEGER,
            last_callsign TEXT,
            last_feed TEXT NOT NULL,
            last_seen_at REAL NOT NULL,        -- the last report from any feed, inside or outside
            callsigns TEXT NOT NULL,           -- JSON list, in order of first use
            max_alt_baro_ft INTEGER,
            sightings INTEGER NOT NULL,
            previous_sortie_end REAL,
            end_reason TEXT                    -- NULL while open
        )"""
    )
    db.execute("CREATE INDEX sorties_key_start ON sorties(key, first_at)")
    db.execute("CREATE INDEX sorties_start ON sorties(first_at)")
    db.execute("CREATE INDEX sorties_open ON sorties(key) WHERE end_reason IS NULL")
    db.execute(
        """CREATE TABLE aircraft_state (
            key TEXT PRIMARY KEY,
            last_report_at REAL NOT NULL       -- the newest report the sortie detector has processed
        )"""
    )
    db.execute(
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            sent_at TEXT                       -- set when the broker acknowledged it (PUBACK)
        )"""
    )
    db.execute("CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_at IS NULL")


@migrations(name="0003_feed_state")
def _m0003_feed_state(db: Database) -> None:
    db.execute(
        """CREATE TABLE feed_state (
            feed TEXT PRIMARY KEY,
            state TEXT NOT NULL,               -- ok, degraded or parked, after the feed's latest poll
            at TEXT NOT NULL,                  -- when that poll ended
            failures INTEGER NOT NULL,         -- failed polls in a row
            degraded_since TEXT,
            next_try_at TEXT,
            reason TEXT,                       -- the latest error
            last_success_at TEXT,
            last_error_at TEXT
        )"""
    )


@migrations(name="0004_coverage_happenings_airports")
def _m0004_happenings_airports(db: Database) -> None:
    # Covered time is rebuilt from successful polls after a restart (detect/coverage.py).
    db.execute("CREATE INDEX feed_polls_ok_time ON feed_polls(started_at) WHERE error IS NULL")
    for column in ("took_off_code", "took_off_name", "landed_code", "landed_name"):
        db.execute(f"ALTER TABLE sorties ADD COLUMN {column} TEXT")
    db.execute("ALTER TABLE sightings ADD COLUMN emergency TEXT")  # readsb `emergency`, for the detectors
    db.execute(
        """CREATE TABLE happenings (
            event_id TEXT PRIMARY KEY,         -- <sortie_id>/<kind>/<n>
            sortie_id TEXT NOT NULL,
            kind TEXT NOT NULL,                -- orbit, emergency
            n INTEGER NOT NULL,
            started_at REAL NOT NULL,          -- Unix seconds UTC: the episode's first point
            detected_at REAL NOT NULL,         -- when it was recognised (the alert's time)
            lat REAL NOT NULL,                 -- an orbit's centre; where an emergency was recognised
            lon REAL NOT NULL,
            details TEXT NOT NULL              -- JSON object, per kind (detect/orbits.py, detect/emergencies.py)
        )"""
    )
    db.execute("CREATE INDEX happenings_sortie ON happenings(sortie_id, started_at)")


@migrations(name="0005_daemons_synthetic")
def _m0005_daemons_synthetic(db: Database) -> None:
    db.execute(
        """CREATE TABLE daemons (
            daemon TEXT PRIMARY KEY,           -- host:pid of an `ingest run`
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            version TEXT NOT NULL,
            started_at TEXT NOT NULL,
            beat_at TEXT NOT NULL,             -- its latest heartbeat (every HEARTBEAT_S while it runs)
            stopped_at TEXT                    -- set by a clean stop; NULL while running or after a crash
        )"""
    )
    # Data from a recording marked synthetic (the bundled demo): shown as such, never alerted, removable.
    db.execute("ALTER TABLE sorties ADD COLUMN synthetic INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE sightings ADD COLUMN synthetic INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")  # e.g. demo_removed
    # Databases from before this migration hold the bundled demo unmarked: its two aircraft's replayed
    # sightings within the demo's span (config/demo/README.md) and the sorties they made.
    db.execute(
        "UPDATE sightings SET synthetic = 1 WHERE feed = 'replay' AND hex IN ('ae01d2', '71f00d') "
        "AND ts BETWEEN 1795210200 AND 1795235400"
    )
    db.execute("UPDATE sorties SET synthetic = 1 WHERE sortie_id IN (?, ?)", DEMO_SORTIES)


@migrations(name="0006_alert_channels")
def _m0006_alert_channels(db: Database) -> None:
    # An outbox row is one event; each channel ([[alerts]], alerts/delivery.py) delivers it on its own, so each
    # has its own row here, written in the same transaction as the event.
    db.execute("ALTER TABLE outbox ADD COLUMN facts TEXT")  # the watchlist's words for the aircraft (JSON)
    db.execute(
        """CREATE TABLE deliveries (
            channel TEXT NOT NULL,             -- an [[alerts]] name, or `mqtt` for the [mqtt] section
            outbox_id INTEGER NOT NULL,        -- outbox.id
            delivered_at TEXT,                 -- ISO 8601 UTC; NULL while it waits
            progress TEXT,                     -- channel-specific (apprise: the URLs that already took it)
            PRIMARY KEY (channel, outbox_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX deliveries_pending ON deliveries(channel, outbox_id) WHERE delivered_at IS NULL")
    db.execute("CREATE INDEX deliveries_outbox ON deliveries(outbox_id)")  # an event's channels (outbox.sent_at)
    db.execute(
        """CREATE TABLE alert_channels (
            channel TEXT PRIMARY KEY,
            kind TEXT NOT NULL,                -- mqtt, homeassistant, apprise, webhook
            last_delivered_at TEXT,
            last_error TEXT,                   -- one line, never a secret
            last_error_at TEXT,
            failures INTEGER NOT NULL DEFAULT 0,  -- failed attempts in a row
            next_try_at TEXT,                  -- backing off until then
            parked_until TEXT,                 -- refused for good (401/403/404) until then
            memo TEXT                          -- channel-specific (homeassistant: its discovery topics)
        )"""
    )
    # Before channels, every outbox row was an MQTT message: the unsent ones are the mqtt channel's queue.
    # outbox.sent_at is no longer written from here on: each channel's delivered_at says it.
    db.execute("DROP INDEX outbox_unsent")
    db.execute("INSERT INTO deliveries (channel, outbox_id, delivered_at) SELECT 'mqtt', id, sent_at FROM outbox")
    db.execute(
        "INSERT INTO alert_channels (channel, kind, last_delivered_at) "
        "SELECT 'mqtt', 'mqtt', (SELECT max(sent_at) FROM outbox) WHERE EXISTS (SELECT 1 FROM outbox)"
    )


def apply(conn: sqlite3.Connection, stop_before: str | None = None) -> None:
    """Apply every migration the database lacks (those before `stop_before`, when given: an older schema,
    for the tests of upgrades), each in its own transaction."""
    migrations.apply(Database(conn), stop_before=stop_before)


def names() -> list[str]:
    """The migrations this module knows, in order."""
    return [m.name for m in migrations._migrations]
