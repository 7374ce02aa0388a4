"""Retention ([retention]): old sightings and delivered alerts go, a small batch a transaction, on both
backends (whole months dropped on PostgreSQL); sorties, their happenings and undelivered alerts stay. And
the real daemon prunes a backlog at start-up while its polls go on."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.config import RetentionSettings
from ingest.detect.base import Happening
from ingest.models import Alert, Fix, PollRecord, Sighting, Sortie
from ingest.retention import Retention
from ingest.store import Store, Tracking, open_store
from ingest.store.base import sighting_row
from ingest.store.sql import INSERT_SIGHTING
from ingest.timeutil import iso_z
from tests.conftest import ConfigWriter, aircraft, envelope, observation
from tests.integration.conftest import Daemon, FeedServer, Reply

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CUT = NOW - timedelta(days=365)  # 2025-12-07T12:00Z: inside the month of December 2025
RECORD = PollRecord("a", NOW, 5, 1, 200, 1, 1, 1, 0, 0, None)
HEXES = ("ae01ce", "ae01d2", "ae749d", "71f00d")


def sighting(hex_icao: str, at: datetime) -> Sighting:
    obs = observation(hex_icao, position_at=at, lat_deg=37.0, lon_deg=124.8, feed="a")
    return Sighting(obs, None, "R135", 759_739.9, 1_892_465.7)


def times() -> list[datetime]:
    """Every 9 days from 16 months ago to now (whole months before the cut, and after it), and every day of
    the month across the cut until a few days after it."""
    every_9_days = [NOW - timedelta(days=480) + timedelta(days=9 * i) for i in range(54)]
    return sorted({*every_9_days, *(datetime(2025, 12, day, 6, 0, tzinfo=UTC) for day in range(1, 11))})


def sortie(sortie_id: str, at: datetime) -> Sortie:
    fix = Fix(at, 37.0, 124.8, 31000, "TORA23", "a")
    return Sortie(sortie_id, "62-4125", "ae01d2", "62-4125", "R135", fix, fix, at, ("TORA23",), 31000, 1, None,
                  "landed")  # fmt: skip


def sightings_left(store: Store) -> set[tuple[str, int]]:
    rows = store.sightings(HEXES)
    return {(r["hex"], int(datetime.fromisoformat(r["time"]).timestamp())) for r in rows}


def test_retention_prunes_exactly_the_old_rows_in_batches(database: str) -> None:
    store = open_store(database)
    every = [(h, at) for h in HEXES for at in times()]
    store.save_poll(RECORD, [sighting(h, at) for h, at in every], record_poll=False)
    old_sortie, old_orbit = sortie("ae01d2-old", NOW - timedelta(days=700)), "ae01d2-old/orbit/1"
    happening = Happening("orbit", "ae01d2-old", 1, old_sortie.start_at, old_sortie.start_at, 37.0, 124.8, {})
    alerts = [Alert(f"e{i}", "ingest/x", "{}", channels=("mqtt",)) for i in range(5)]
    store.save_tracking(Tracking(sorties=[old_sortie], happenings=[happening], alerts=alerts))
    ids = [q.outbox_id for q in store.settle("mqtt", [], NOW, read=10)]
    store.settle("mqtt", ids[:3], NOW - timedelta(days=40))  # delivered long ago: pruned
    store.settle("mqtt", ids[3:4], NOW - timedelta(days=2))  # delivered lately: kept; ids[4] never: kept
    retention = Retention(RetentionSettings(sightings_days=365, outbox_days=30), batch=7, max_hexes=3)

    before = len(sightings_left(store))
    steps: list[int] = []
    while retention.step(store, NOW):
        now_left = len(sightings_left(store))
        steps.append(before - now_left)
        before = now_left
        assert len(steps) < 1000
    cut = int(CUT.timestamp())
    assert sightings_left(store) == {(h, int(at.timestamp())) for h, at in every if int(at.timestamp()) >= cut}
    if store.backend == "postgresql":
        # The first step dropped the months wholly before the cut; the month across it went in batches.
        assert steps[0] == len([1 for _, at in every if at < datetime(2025, 12, 1, tzinfo=UTC)])
        assert all(n <= 7 for n in steps[1:])
        assert len([n for n in steps[1:] if n]) >= 2
    else:
        old = len([1 for _, at in every if int(at.timestamp()) < cut])
        assert all(n <= 7 for n in steps) and len([n for n in steps if n]) >= -(-old // 7) >= 7
    assert store.sortie("ae01d2-old") is not None  # sorties and their happenings stay, however old
    assert [h.event_id for h in store.happenings(["ae01d2-old"])] == [old_orbit]
    assert store.outbox_counts() == (1, 1)  # the undelivered one, and the one delivered two days ago
    # A second round finds nothing more, and says nothing.
    while retention.step(store, NOW):
        pass
    assert len(sightings_left(store)) == len([1 for _, at in every if int(at.timestamp()) >= cut])


def test_old_polls_go_a_batch_a_step_feed_by_feed(database: str) -> None:
    store = open_store(database)
    every = [
        (feed, NOW - timedelta(days=day, hours=hour), hour % 3 == 0)
        for feed in ("adsb.fi", "adsb.lol", "opensky") for day in range(60) for hour in (1, 12)
    ]  # fmt: skip
    for feed, at, failed in every:
        record = PollRecord(feed, at, 5, 1, 500 if failed else 200, 1, 1, 1, 0, 0, "HTTP 500" if failed else None)
        store.save_poll(record, [], record_poll=True)
    retention = Retention(RetentionSettings(sightings_days=0, outbox_days=0, polls_days=30), batch=7)
    assert retention.enabled

    def left() -> list[str]:
        return sorted(r["started_at"] for r in store.feed_polls(limit=10_000))

    before, steps, more = len(left()), [], True
    while more:
        more = retention.step(store, NOW)
        steps.append(before - len(left()))
        before -= steps[-1]
        assert len(steps) < 1000
    cut = NOW - timedelta(days=30)
    kept = sorted(iso_z(at) for _, at, _ in every if at >= cut)
    assert left() == kept  # failed and successful polls alike; every feed
    old = len(every) - len(kept)
    assert all(n <= 7 for n in steps) and len([n for n in steps if n]) >= -(-old // 7)
    while retention.step(store, NOW):  # a second round finds nothing
        pass
    assert left() == kept


def test_zero_days_keeps_everything(database: str) -> None:
    store = open_store(database)
    store.save_poll(RECORD, [sighting("ae01d2", at) for at in times()], record_poll=False)
    store.save_poll(replace(RECORD, started_at=NOW - timedelta(days=900)), [], record_poll=True)
    retention = Retention(RetentionSettings(sightings_days=0, outbox_days=0, polls_days=0), batch=5)
    assert not retention.enabled
    while retention.step(store, NOW):
        pass
    assert len(sightings_left(store)) == len(times())
    assert len(store.feed_polls()) == 1


def test_the_daemon_prunes_a_backlog_while_it_polls(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon], tmp_path: Path
) -> None:
    feed_server.reply(
        "/live/v2/hex/", lambda: Reply(body=envelope([aircraft("ae01d2", seen_pos=0.3)], now=datetime.now(UTC)))
    )
    config = write_config(
        [{"name": "live", "kind": "readsb-v2", "base_url": f"{feed_server.url}/live", "interval_s": 0.5}],
        retention={"sightings_days": 30},
    )
    # A database with 10,000 sightings two months old (five batches of 2,000) and an old sortie.
    db = tmp_path / "ingest.db"
    store = open_store(db)
    store.save_tracking(Tracking(sorties=[sortie("ae01ce-old", datetime.now(UTC) - timedelta(days=60))]))
    store.close()
    old = int((datetime.now(UTC) - timedelta(days=60)).timestamp())
    base = sighting("ae01ce", datetime.now(UTC))
    with closing(sqlite3.connect(db)) as conn, conn:
        template = sighting_row(base)
        conn.executemany(INSERT_SIGHTING, [(f"{i:06x}", old + i, *template[2:]) for i in range(10_000)])
        conn.executemany(  # and the record of 3,000 polls as old
            "INSERT INTO feed_polls (started_at, feed, duration_ms, requests, http_status, aircraft, matched, kept, "
            "stored, rejected, error) VALUES (?, 'live', 5, 1, 200, 1, 1, 1, 1, 0, NULL)",
            [(iso_z(datetime.fromtimestamp(old + i, UTC)),) for i in range(3_000)],
        )
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: "retention: deleted 10000 sightings" in daemon.output(), timeout_s=30)
    line = next(x for x in daemon.output().splitlines() if "retention: deleted" in x)
    assert "3000 polls recorded over 30 days ago" in line, line
    assert int(line.rsplit("in ", 1)[1].split()[0]) >= 5, line  # five batches at least, polls between them
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls") or 0) >= 3)
    assert daemon.query("SELECT count(*) FROM sightings WHERE ts < strftime('%s', 'now') - 30 * 86400") == 0
    assert daemon.query("SELECT count(*) FROM sightings WHERE hex = 'ae01d2'") >= 1  # the live feed's
    assert daemon.query("SELECT count(*) FROM feed_polls WHERE started_at < strftime('%Y-%m-%dT%H:%M:%SZ', "
                        "'now', '-30 days')") == 0  # fmt: skip
    assert daemon.query("SELECT count(*) FROM sorties WHERE sortie_id = 'ae01ce-old'") == 1
    assert daemon.stop()[0] == 0
    assert "Traceback" not in daemon.output()
