"""Alert topics and payloads (pure), and the outbox relay against a fake publisher and a real store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.alerts.messages import alert, payload, tail_segment, topic
from ingest.alerts.outbox import FAILED_RETRY_S, OutboxRelay
from ingest.errors import StoreError
from ingest.models import Alert, Fix, Sortie, SortieEvent
from ingest.store import SqliteStore, Store, Tracking

T0 = datetime(2026, 11, 20, 22, 56, tzinfo=UTC)


def sortie(end_reason: str | None = None, registration: str | None = "62-4125") -> Sortie:
    first = Fix(T0, 33.01, 124.9, 31000, "TORA23", "adsb.lol")
    last = Fix(T0 + timedelta(hours=4, minutes=41), 33.07, 129.08, 31000, "TORA24", "adsb.fi")
    return Sortie(
        sortie_id="ae01d2-20261120T225600Z", key="62-4125", hex_icao="ae01d2", registration=registration,
        type_icao="R135", first=first, last=last, last_seen_at=last.at + timedelta(minutes=30),
        callsigns=("TORA23", "TORA24"), max_alt_baro_ft=31000, sightings=272,
        previous_sortie_end=T0 - timedelta(days=2), end_reason=end_reason,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("registration", "hex_icao", "segment"),
    [
        ("62-4125", "ae01d2", "62-4125"),
        ("N/A 1+#", "ae01d2", "N_A_1__"),
        (None, "71f00d", "71f00d"),
        ("ZZ664", "43c38c", "ZZ664"),
    ],
)
def test_tail_segment(registration: str | None, hex_icao: str, segment: str) -> None:
    assert tail_segment(registration, hex_icao) == segment


def test_start_payload() -> None:
    event = SortieEvent("start", sortie())
    assert topic("ingest", event) == "ingest/sortie/62-4125/start"
    body = payload(event, "Korean Peninsula")
    assert body == {
        "schema_version": 1, "event_id": "ae01d2-20261120T225600Z/start", "event": "start",
        "sortie_id": "ae01d2-20261120T225600Z", "hex": "ae01d2", "registration": "62-4125", "type": "R135",
        "callsign": "TORA23", "time": "2026-11-20T22:56:00Z", "lat": 33.01, "lon": 124.9, "alt_baro_ft": 31000,
        "area": "Korean Peninsula", "feed": "adsb.lol", "start": "2026-11-20T22:56:00Z",
        "previous_sortie_end": "2026-11-18T22:56:00Z", "took_off_from": None,
    }  # fmt: skip


def test_end_payload_adds_the_summary() -> None:
    event = SortieEvent("end", sortie("left_area"))
    body = payload(event, "Korean Peninsula")
    assert topic("x/y", event) == "x/y/sortie/62-4125/end"
    assert body["event_id"] == "ae01d2-20261120T225600Z/end"
    assert body["time"] == "2026-11-21T03:37:00Z" and body["callsign"] == "TORA24" and body["feed"] == "adsb.fi"
    assert (body["end_reason"], body["duration_s"], body["max_alt_baro_ft"]) == ("left_area", 16860, 31000)
    assert body["callsigns"] == ["TORA23", "TORA24"]


def test_alert_is_compact_json_and_stable() -> None:
    event = SortieEvent("start", sortie())
    a, b = alert("ingest", "Korea", event), alert("ingest", "Korea", event)
    assert a == b and a.event_id == "ae01d2-20261120T225600Z/start"
    assert json.loads(a.payload)["area"] == "Korea" and " " not in a.payload.replace("Korean Peninsula", "")


class FakePublisher:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[int, str, str]] = []
        self.acks: list[tuple[int, bool, str]] = []
        self.next_mid = 1
        self.queue_full = False

    def publish(self, topic: str, payload: str) -> int | None:
        if self.queue_full:
            return None
        mid, self.next_mid = self.next_mid, self.next_mid + 1
        self.sent.append((mid, topic, payload))
        return mid

    def take_acks(self) -> list[tuple[int, bool, str]]:
        acks, self.acks = self.acks, []
        return acks

    def is_connected(self) -> bool:
        return self.connected

    def ack_all(self, ok: bool = True) -> None:
        self.acks += [(mid, ok, "Success" if ok else "Not authorized") for mid, _, _ in self.sent]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def store_with_alerts(tmp_path: Path, n: int) -> Store:
    store = SqliteStore(tmp_path / "db.sqlite")
    store.save_tracking(Tracking(alerts=[Alert(f"e{i}", f"t/{i}", f'{{"i":{i}}}') for i in range(n)]))
    return store


def test_relay_publishes_in_order_and_marks_sent_only_on_puback(tmp_path: Path) -> None:
    store, pub, clock = store_with_alerts(tmp_path, 5), FakePublisher(), Clock()
    relay = OutboxRelay(store, pub, clock, max_inflight=3)
    assert relay.pump() == 3
    assert [t for _, t, _ in pub.sent] == ["t/0", "t/1", "t/2"]
    assert relay.pump() == 0  # no room until PUBACKs come
    assert store.outbox_counts() == (5, 0)
    pub.ack_all()
    assert relay.pump() == 2
    assert store.outbox_counts() == (2, 3)
    pub.ack_all()
    relay.pump()
    assert store.outbox_counts() == (0, 5) and relay.idle and relay.sent == 5
    assert len(pub.sent) == 5  # nothing published twice


def test_relay_waits_while_disconnected_and_holds_refused_rows(tmp_path: Path) -> None:
    store, pub, clock = store_with_alerts(tmp_path, 2), FakePublisher(), Clock()
    relay = OutboxRelay(store, pub, clock)
    pub.connected = False
    assert relay.pump() == 0 and pub.sent == []
    pub.connected = True
    assert relay.pump() == 2
    pub.ack_all(ok=False)  # e.g. an ACL denial: stays unsent, retried later, not at once
    assert relay.pump() == 0
    assert store.outbox_counts() == (2, 0)
    clock.now += timedelta(seconds=FAILED_RETRY_S + 1)
    assert relay.pump() == 2


def test_relay_stops_when_paho_will_not_queue(tmp_path: Path) -> None:
    store, pub = store_with_alerts(tmp_path, 3), FakePublisher()
    pub.queue_full = True
    relay = OutboxRelay(store, pub, Clock())
    assert relay.pump() == 0 and relay.idle


def test_after_a_restart_unsent_rows_go_out_again(tmp_path: Path) -> None:
    store, pub = store_with_alerts(tmp_path, 2), FakePublisher()
    OutboxRelay(store, pub, Clock()).pump()  # published, the process dies before any PUBACK
    again = FakePublisher()
    assert OutboxRelay(store, again, Clock()).pump() == 2
    assert [t for _, t, _ in again.sent] == ["t/0", "t/1"]


def test_the_same_event_is_queued_once(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 2)
    store.save_tracking(Tracking(alerts=[Alert("e1", "t/1", "{}")]))
    assert store.outbox_counts() == (2, 0)


def test_a_failed_mark_sent_never_publishes_the_acknowledged_alerts_again(tmp_path: Path) -> None:
    """While marking rows sent fails (the database, for a while), the relay keeps the acknowledged rows
    aside: each alert goes out once, and is marked once the database works again."""

    class Flaky:
        def __init__(self, store: Store) -> None:
            self.store, self.broken = store, True

        def pending_alerts(self, limit: int, exclude: Sequence[int]) -> list[tuple[int, str, str]]:
            return self.store.pending_alerts(limit, exclude)

        def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
            if self.broken:
                raise StoreError("cannot mark alerts sent: database is locked")
            self.store.mark_sent(ids, at)

    store, pub = store_with_alerts(tmp_path, 5), FakePublisher()
    outbox = Flaky(store)
    relay = OutboxRelay(outbox, pub, Clock())
    assert relay.pump() == 5
    pub.ack_all()
    for _ in range(30):  # 3 s of pumps every 0.1 s, each failing to mark
        with pytest.raises(StoreError):
            relay.pump()
    assert len(pub.sent) == 5 and not relay.idle
    outbox.broken = False
    assert relay.pump() == 0
    assert store.outbox_counts() == (0, 5) and relay.idle
    assert sorted(json.loads(p)["i"] for _, _, p in pub.sent) == [0, 1, 2, 3, 4]
