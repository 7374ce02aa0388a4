"""The store on a real database: de-duplication, learnt hexes, tail queries, sorties and the outbox on both
backends (the `database` fixture: a SQLite file and a PostgreSQL database); SQLite's own schema, WAL and
query plan. PostgreSQL's own (partitions, migrations, the password): test_store_postgres.py."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.errors import StoreError
from ingest.models import Fix, PollRecord, Sighting, Sortie
from ingest.store import SqliteStore, Store, Tracking
from ingest.store import open_store as any_store
from ingest.store.sqlite import applied_migrations
from ingest.watchlist import parse_watchlist
from tests.conftest import SMALL_WATCHLIST, observation

T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
MIGRATIONS = [
    "0001_initial",
    "0002_sorties_and_outbox",
    "0003_feed_state",
    "0004_coverage_happenings_airports",
    "0005_daemons_synthetic",
    "0006_alert_channels",
]
RECORD = PollRecord("test", T0, 5, 1, 200, 1, 1, 1, 0, 0, None)


def sighting(
    hex_icao: str = "ae01d2", at: datetime = T0, reg: str | None = "62-4125", feed: str = "a", lat: float = 37.0
) -> Sighting:
    obs = observation(
        hex_icao, position_at=at, lat_deg=lat, lon_deg=124.8, alt_baro_ft=31000, callsign="TORA23",
        registration=reg, type_icao="R135", feed=feed,
    )  # fmt: skip
    return Sighting(obs, reg, "R135", 759_739.9, 1_892_465.7)


def open_store(where: Path | str) -> Store:
    """The store at `where`: a tmp_path (a SQLite file under it) or the `database` fixture's location."""
    store = SqliteStore(where / "sub" / "ingest.db") if isinstance(where, Path) else any_store(where)
    store.sync_watchlist(parse_watchlist(SMALL_WATCHLIST.read_text()))
    return store


def test_open_creates_folder_wal_and_records_migrations(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert applied_migrations(store.conn) == MIGRATIONS
    store.close()
    again = SqliteStore(tmp_path / "sub" / "ingest.db")  # an existing database opens; nothing is re-applied
    assert applied_migrations(again.conn) == MIGRATIONS
    assert again.find_aircraft("62-4125") is not None
    again.close()


def test_same_hex_and_second_is_stored_once(database: str) -> None:
    store = open_store(database)
    assert store.save_poll(RECORD, [sighting(), sighting(at=T0 + timedelta(milliseconds=400))]) == 1
    assert store.save_poll(RECORD, [sighting(feed="b")]) == 0
    assert store.save_poll(RECORD, [sighting(at=T0 + timedelta(seconds=1))]) == 1
    rows = store.sightings(("ae01d2",))
    assert [(r["time"], r["feed"]) for r in rows] == [("2026-11-20T23:00:00Z", "a"), ("2026-11-20T23:00:01Z", "a")]
    polls = store.feed_polls()
    assert [p["stored"] for p in polls] == [1, 0, 1]
    store.close()


def test_a_poll_can_skip_its_record(database: str) -> None:
    store = open_store(database)
    assert store.save_poll(RECORD, [sighting()], record_poll=False) == 1
    assert store.feed_polls() == []
    store.close()


def test_find_aircraft_by_registration_any_case_and_by_hex(database: str) -> None:
    store = open_store(database)
    by_reg = store.find_aircraft("62-4125")
    assert by_reg is not None and by_reg.hexes == ("ae01d2",) and by_reg.icao_type == "R135"
    assert store.find_aircraft("AE01D2") == by_reg
    assert store.find_aircraft("n12345") is None
    store.close()


def test_a_new_hex_for_a_watched_registration_is_learnt(database: str) -> None:
    store = open_store(database)
    store.save_poll(RECORD, [sighting("ae7777")])
    aircraft = store.find_aircraft("62-4125")
    assert aircraft is not None and aircraft.hexes == ("ae01d2", "ae7777")
    assert store.find_aircraft("ae7777") == aircraft
    store.sync_watchlist(parse_watchlist(SMALL_WATCHLIST.read_text()))  # a later sync keeps it
    assert store.find_aircraft("ae7777") == aircraft
    store.close()


def test_since_until_limit(database: str) -> None:
    store = open_store(database)
    store.save_poll(RECORD, [sighting(at=T0 + timedelta(minutes=m), lat=30 + m) for m in range(10)])
    rows = store.sightings(("ae01d2",), since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=7), limit=3)
    assert [r["lat"] for r in rows] == [35, 36, 37]  # the latest three in range, oldest first
    assert len(store.sightings(("ae01d2",))) == 10
    assert store.sightings(()) == []
    store.close()


def test_tail_query_is_an_index_range_scan(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.close()
    with closing(sqlite3.connect(tmp_path / "sub" / "ingest.db")) as conn:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM sightings "
                "WHERE hex IN (?, ?) AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT 10",
                ("ae01d2", "ae7777", 0, 2**40),
            )
        )
    assert "SEARCH sightings USING PRIMARY KEY (hex=? AND ts>? AND ts<?)" in plan
    assert "SCAN sightings" not in plan


def test_sortie_and_its_track(database: str) -> None:
    store = open_store(database)
    store.save_poll(RECORD, [sighting(at=T0 + timedelta(minutes=m), lat=30 + m) for m in range(6)])
    first, last = (
        Fix(T0 + timedelta(minutes=1), 31, 124.8, 31000, "TORA23", "a"),
        Fix(T0 + timedelta(minutes=4), 34, 124.8, 31000, "TORA23", "a"),
    )
    sortie = Sortie(
        "ae01d2-x",
        "62-4125",
        "ae01d2",
        "62-4125",
        "R135",
        first,
        last,
        last.at,
        ("TORA23",),
        31000,
        4,
        None,
        "left_area",
    )
    store.save_tracking(Tracking(sorties=[sortie]))
    # A sortie read back also says what the watchlist knows of its aircraft.
    read = store.sortie("ae01d2-x")
    assert read == replace(sortie, operator="USAF", type_name="Boeing RC-135W")
    assert store.sortie("nope") is None
    assert [r["lat"] for r in store.track(sortie)] == [31, 32, 33, 34]


def test_a_checkpoint_truncates_a_wal_that_busy_readers_let_grow(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("ingest.store.sqlite.WAL_LIMIT_BYTES", 256 * 1024)
    store = open_store(tmp_path)
    reader = sqlite3.connect(tmp_path / "sub" / "ingest.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sightings").fetchone()  # holds a snapshot: the WAL cannot restart
    for i in range(40):
        rows = [sighting(f"{j:06x}", T0 + timedelta(seconds=i)) for j in range(200)]
        store.save_poll(RECORD, rows)
    assert store.wal_bytes() > 256 * 1024
    assert store.checkpoint()[1] > 0  # the reader still holds its snapshot: nothing to truncate yet
    reader.rollback()
    reader.close()
    before, after = store.checkpoint()
    assert before > 256 * 1024 and after == 0
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.conn.execute("SELECT count(*) FROM sightings").fetchone()[0] == 8000
    store.close()


def test_a_write_error_is_one_store_error(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    other = sqlite3.connect(tmp_path / "sub" / "ingest.db", timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for longer than the busy timeout
    store.conn.execute("PRAGMA busy_timeout=50")
    try:
        store.save_poll(RECORD, [sighting()])
    except StoreError as exc:
        assert "cannot store a poll" in str(exc) and "locked" in str(exc)
    else:
        raise AssertionError("the write should have failed")
    finally:
        other.rollback()
        other.close()
    assert store.save_poll(RECORD, [sighting()]) == 1  # and works again once the lock is gone
    store.close()


def test_the_store_knows_every_migration_the_schema_applies() -> None:
    from ingest.store import sqlite_schema as schema
    from ingest.store.sqlite import MIGRATIONS

    assert list(MIGRATIONS) == schema.names()


def test_a_read_command_s_store_does_not_create_a_missing_database(tmp_path: Path) -> None:
    from ingest.store import DatabaseMissing

    try:
        SqliteStore(tmp_path / "no" / "such.db", create=False)
    except DatabaseMissing as exc:
        assert "no database at" in str(exc) and "ingest run" in str(exc)
    else:
        raise AssertionError("a missing database must be refused")
    assert not (tmp_path / "no").exists()
