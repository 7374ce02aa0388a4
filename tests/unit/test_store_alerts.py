"""The outbox with alert channels, on both backends (the `database` fixture): one event row, one delivery row
per channel written with it, each channel's queue on its own, the channels' state for `ingest alerts
status`, and an older database's unsent MQTT alerts becoming the mqtt channel's queue."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from ingest.models import Alert, Fix, Sortie
from ingest.store import Store, Tracking, postgres_schema, sqlite_schema
from ingest.store import open_store as any_store
from ingest.watchlist import parse_watchlist
from tests.conftest import SMALL_WATCHLIST

T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def open_store(where: str) -> Store:
    store = any_store(where)
    store.sync_watchlist(parse_watchlist(SMALL_WATCHLIST.read_text()))
    return store


def alerts(*ids: str, channels: tuple[str, ...] = ("mqtt", "phone")) -> list[Alert]:
    return [Alert(i, f"ingest/sortie/T/{i}", f'{{"event_id":"{i}"}}', '{"key":"62-4125"}', channels) for i in ids]


def queue(store: Store, channel: str) -> list[str]:
    return [e.event_id for e in store.pending_events(channel, 100)]


def test_each_channel_has_its_own_queue_written_with_the_event(database: str) -> None:
    store = open_store(database)
    store.save_tracking(Tracking(alerts=alerts("a/start", "a/end")))
    store.save_tracking(Tracking(alerts=alerts("b/start", channels=("phone",))))
    assert queue(store, "mqtt") == ["a/start", "a/end"]
    assert queue(store, "phone") == ["a/start", "a/end", "b/start"]
    (first, *_) = store.pending_events("phone", 1)
    assert (first.topic, first.payload, first.facts) == ("ingest/sortie/T/a/start", '{"event_id":"a/start"}',
                                                         '{"key":"62-4125"}')  # fmt: skip
    # The mqtt channel delivers both: one call marks them and reads what is next.
    ids = [e.outbox_id for e in store.pending_events("mqtt", 10)]
    assert store.settle("mqtt", ids, T0, read=10) == []
    assert queue(store, "phone") == ["a/start", "a/end", "b/start"]  # the other channel's queue is untouched
    assert store.outbox_counts() == (3, 2)
    phone = store.pending_events("phone", 10)
    rest = store.settle("phone", [phone[0].outbox_id], T0, read=10)
    assert [e.event_id for e in rest] == ["a/end", "b/start"]
    assert [e.event_id for e in store.settle("phone", [], T0, read=10, after=rest[0].outbox_id)] == ["b/start"]
    assert [e.event_id for e in store.settle("phone", [], T0, read=10, exclude=[rest[0].outbox_id])] == ["b/start"]
    store.close()


def test_an_event_raised_again_is_queued_once_and_a_new_channel_gets_it(database: str) -> None:
    store = open_store(database)
    store.save_tracking(Tracking(alerts=alerts("o/orbit/1", channels=("mqtt",))))
    ids = [e.outbox_id for e in store.pending_events("mqtt", 10)]
    store.settle("mqtt", ids, T0)
    store.save_tracking(Tracking(alerts=alerts("o/orbit/1", channels=("mqtt", "hook"))))  # its next lap
    assert queue(store, "mqtt") == [] and queue(store, "hook") == ["o/orbit/1"]
    store.close()


def test_channel_state_for_alerts_status(database: str) -> None:
    store = open_store(database)
    store.save_tracking(Tracking(alerts=alerts("a/start", "a/end")))
    store.register_channel("quiet", "webhook")
    store.note_channel("phone", "apprise", T0, "Telegram: error=429", next_try_at=T0 + timedelta(seconds=30))
    store.note_channel("phone", "apprise", T0, "Telegram: error=403", parked_until=T0 + timedelta(hours=1))
    states = {s.channel: s for s in store.channel_states()}
    assert set(states) == {"mqtt", "phone", "quiet"}
    phone = states["phone"]
    assert (phone.kind, phone.queued, phone.delivered, phone.failures) == ("apprise", 2, 0, 2)
    assert (phone.last_error, phone.last_error_at) == ("Telegram: error=403", T0)
    assert (phone.next_try_at, phone.parked_until) == (None, T0 + timedelta(hours=1))
    assert (states["quiet"].kind, states["quiet"].queued) == ("webhook", 0)
    store.settle("phone", [e.outbox_id for e in store.pending_events("phone", 1)], T0 + timedelta(minutes=1))
    phone = {s.channel: s for s in store.channel_states()}["phone"]
    assert (phone.queued, phone.delivered, phone.failures, phone.parked_until) == (1, 1, 0, None)
    assert phone.last_delivered_at == T0 + timedelta(minutes=1)
    store.set_channel_memo("ha", "homeassistant", '{"topics":["homeassistant/x/config"]}')
    assert {s.channel: s.memo for s in store.channel_states()}["ha"] == '{"topics":["homeassistant/x/config"]}'
    store.remove_channel("ha")
    assert {s.channel: s.memo for s in store.channel_states()}["ha"] == ""
    store.close()


def test_removing_the_demo_removes_its_deliveries(database: str) -> None:
    store = open_store(database)
    fix = Fix(T0, 37.0, 124.8, 31000, "TORA23", "replay")
    demo = Sortie("ae01d2-20261120T230000Z", "62-4125", "ae01d2", "62-4125", "R135", fix, fix, T0, ("TORA23",),
                  31000, 1, None, synthetic=True)  # fmt: skip
    store.save_tracking(Tracking(sorties=[demo], alerts=alerts("ae01d2-20261120T230000Z/start", "real/start")))
    store.remove_synthetic()
    assert queue(store, "mqtt") == ["real/start"] and store.outbox_counts() == (2, 0)
    store.close()


def test_an_older_sqlite_database_s_unsent_alerts_become_the_mqtt_channel_s_queue(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Migrations("ingest")
    for m in sqlite_schema.migrations._migrations:
        if m.name != "0006_alert_channels":
            old(name=m.name)(m.fn)
    with closing(sqlite3.connect(path)) as conn:
        old.apply(Database(conn))
        conn.executemany(
            "INSERT INTO outbox (event_id, topic, payload, created_at, sent_at) VALUES (?, ?, ?, ?, ?)",
            [("a/start", "ingest/sortie/A/start", "{}", "2026-11-20T23:00:00Z", "2026-11-20T23:00:01Z"),
             ("a/end", "ingest/sortie/A/end", "{}", "2026-11-20T23:30:00Z", None)],
        )  # fmt: skip
        conn.commit()
    store = any_store(path)
    assert queue(store, "mqtt") == ["a/end"]
    (mqtt,) = store.channel_states()
    assert (mqtt.kind, mqtt.queued, mqtt.delivered) == ("mqtt", 1, 1)
    assert mqtt.last_delivered_at == datetime(2026, 11, 20, 23, 0, 1, tzinfo=UTC)
    store.close()


def test_an_older_postgresql_database_s_unsent_alerts_become_the_mqtt_channel_s_queue() -> None:
    from tests.pg import fresh_database

    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            for name, statements in postgres_schema.MIGRATIONS:
                if name == "0003_alert_channels":
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (%s, 'then')", (name,))
            conn.execute(
                "INSERT INTO outbox (event_id, topic, payload, created_at, sent_at) VALUES "
                "('a/start', 't', '{}', '2026-11-20T23:00:00Z', '2026-11-20T23:00:01Z'), "
                "('a/end', 't', '{}', '2026-11-20T23:30:00Z', NULL)"
            )
        store = any_store(url)
        assert queue(store, "mqtt") == ["a/end"]
        (mqtt,) = store.channel_states()
        assert (mqtt.kind, mqtt.queued, mqtt.delivered) == ("mqtt", 1, 1)
        store.close()
