"""What only the PostgreSQL store has, on a real server: monthly partitions that a tail query prunes to the
months it asks for, the poll stream in commit order, and the leadership (one holder, fenced, handed over)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.models import PollRecord, Sighting
from ingest.store.base import NotLeader, StreamRow, Tracking
from ingest.store.postgres import PostgresStore, close_pool
from tests.conftest import observation
from tests.pg import fresh_database

NOV = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEC = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RECORD = PollRecord("a", NOV, 5, 1, 200, 1, 1, 1, 0, 0, None)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as where:
        yield where


def sighting(at: datetime, hex_icao: str = "ae01d2") -> Sighting:
    return Sighting(observation(hex_icao, position_at=at, feed="a"), "62-4125", "R135", 1.0, 2.0)


def row(body: str, daemon: str = "d1") -> StreamRow:
    return StreamRow(daemon, "a", "watched", 20.0, body)


def test_sightings_go_into_monthly_partitions_and_a_tail_query_reads_only_its_months(url: str) -> None:
    store = PostgresStore(url)
    store.save_poll(RECORD, [sighting(NOV), sighting(NOV + timedelta(minutes=1)), sighting(DEC)])
    with psycopg.connect(url, autocommit=True) as conn:
        parts = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'sightings'::regclass ORDER BY c.relname"
        ).fetchall()
        assert [name for (name,) in parts] == ["sightings_y2026m11", "sightings_y2026m12"]
        assert conn.execute("SELECT count(*) FROM sightings_y2026m11").fetchone() == (2,)
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM sightings WHERE hex IN ('ae01d2') AND ts BETWEEN %s AND %s",
                (int(NOV.timestamp()) - 3600, int(NOV.timestamp()) + 3600),
            ).fetchall()
        )
    assert "sightings_y2026m11" in plan and "sightings_y2026m12" not in plan, plan
    rows = store.sightings(("ae01d2",), since=NOV - timedelta(hours=1), until=NOV + timedelta(hours=1))
    assert [r["time"] for r in rows] == ["2026-11-20T12:00:00Z", "2026-11-20T12:01:00Z"]


def test_stream_entries_come_back_in_the_order_they_committed(url: str) -> None:
    a, b = PostgresStore(url), PostgresStore(url)
    a.save_poll(RECORD, [sighting(NOV)], stream=row("first"))
    holding = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        # Takes the next id, then holds its transaction open: nobody may read past it meanwhile.
        with b.atomic():
            b._append_stream(row("slow", "d2"))
            holding.set()
            release.wait(5)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert holding.wait(5)
    blocked = threading.Thread(target=lambda: a.save_poll(RECORD, [sighting(NOV + timedelta(seconds=1))],
                                                          stream=row("after")))  # fmt: skip
    blocked.start()
    time.sleep(0.5)
    assert [body for *_, body in a.stream_after(0, 10)] == ["first"]  # the later append waits for the slow one
    release.set()
    t.join(5)
    blocked.join(5)
    entries = a.stream_after(0, 10)
    assert [body for *_, body in entries] == ["first", "slow", "after"]
    assert [e[0] for e in entries] == sorted(e[0] for e in entries)
    assert a.stream_covers() == {"a": ("watched", 20.0)}


def test_one_leader_at_a_time_fenced_and_handed_over(url: str) -> None:
    first, second = PostgresStore(url), PostgresStore(url)
    assert first.try_lead("d1", NOV) == 0
    assert second.try_lead("d2", NOV) is None  # the lock is held
    assert first.leading() and first.leader() == ("d1", "2026-11-20T12:00:00Z")
    first.save_tracking(Tracking(stream=("d1", 5)))
    # The first leader's session ends (a crash); the second takes over from the saved place.
    assert first._lead_conn is not None
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
            (0x1A6E5A,),
        )
    assert not first.leading()
    assert second.try_lead("d2", DEC) == 5
    # The former leader, not knowing yet, cannot save anything: the leader row fences it off.
    with pytest.raises(NotLeader):
        first.save_tracking(Tracking(stream=("d1", 6)))
    second.save_tracking(Tracking(stream=("d2", 6)))
    second.resign()
    assert first.try_lead("d1", DEC) == 6
    first.close()
    close_pool(url)
