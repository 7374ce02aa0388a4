"""Alert topics and payloads (pure); the channels' delivery rules (alerts/outbox.py, channels/mqtt.py) against
a fake broker connection or service and a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.alerts.channels.mqtt import FAILED_RETRY_S, MqttChannel
from ingest.alerts.events import Event
from ingest.alerts.messages import alert, payload, tail_segment, topic
from ingest.alerts.outbox import PARK_CHECK_S, Failure, SequentialChannel, StoreAccess
from ingest.config import ALERT_KEYS, AlertSettings
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


def channel_settings(name: str = "mqtt", kind: str = "mqtt", **values: object) -> AlertSettings:
    defaults = {k.name: k.default for k in ALERT_KEYS}
    defaults.update(name=name, kind=kind, **values)
    return AlertSettings(**defaults)


class FakeHub:
    """The MqttHub's face to a channel: publish, take_acks, is_connected; acks are scripted by the test."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[int, str, str]] = []
        self.acks: list[tuple[int, bool, str]] = []
        self.next_mid = 1
        self.queue_full = False
        self.status_topic = "ingest/status"
        self.connections = 1

    def attach(self, wake: object) -> None:
        pass

    def wake_after(self, channel: str, acks: int) -> None:
        pass

    def publish(self, channel: str, topic: str, payload: str, retain: bool = False) -> int | None:
        if self.queue_full:
            return None
        mid, self.next_mid = self.next_mid, self.next_mid + 1
        self.sent.append((mid, topic, payload))
        return mid

    def take_acks(self, channel: str) -> list[tuple[int, bool, str]]:
        acks, self.acks = self.acks, []
        return acks

    def is_connected(self) -> bool:
        return self.connected

    def ack_all(self, ok: bool = True) -> None:
        self.acks += [(mid, ok, "Success" if ok else "Not authorized") for mid, _, _ in self.sent]
        self.sent = []


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def store_with_alerts(tmp_path: Path, n: int, channels: tuple[str, ...] = ("mqtt",)) -> Store:
    store = SqliteStore(tmp_path / "db.sqlite")
    alerts = [Alert(f"e{i}", f"ingest/sortie/T{i}/start", f'{{"i":{i}}}', channels=channels) for i in range(n)]
    store.save_tracking(Tracking(alerts=alerts))
    return store


def direct(store: Store) -> StoreAccess:
    def access(fn):  # type: ignore[no-untyped-def]
        return fn(store)

    return access  # type: ignore[return-value]


def mqtt_channel(store: Store, hub: FakeHub, clock: Clock, **values: object) -> MqttChannel:
    ch = MqttChannel(channel_settings(**values), direct(store), clock, hub, "ingest")  # type: ignore[arg-type]
    ch.open()
    return ch


def test_mqtt_publishes_in_order_and_marks_on_puback_in_one_round_trip(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 5)
    hub, clock = FakeHub(), Clock()
    ch = mqtt_channel(store, hub, clock)
    ch.pump()
    assert [t for _, t, _ in hub.sent] == [f"ingest/sortie/T{i}/start" for i in range(5)]
    assert [p for _, _, p in hub.sent] == [f'{{"i":{i}}}' for i in range(5)]
    assert store.outbox_counts() == (5, 0)
    ch.pump()  # nothing acknowledged: nothing repeated
    assert len(hub.sent) == 5
    hub.ack_all()
    ch.pump()
    assert store.outbox_counts() == (0, 5) and ch.settled() and ch.delivered == 5
    assert hub.sent == []  # nothing published twice


def test_mqtt_topic_prefix_of_its_own_and_nothing_while_disconnected(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 2)
    hub, clock = FakeHub(), Clock()
    hub.connected = False
    ch = mqtt_channel(store, hub, clock, topic_prefix="rc135")
    ch.pump()
    assert hub.sent == [] and ch.settled()  # waiting for the broker; a stop does not wait for it
    hub.connected = True
    ch.pump()
    assert [t for _, t, _ in hub.sent] == ["rc135/sortie/T0/start", "rc135/sortie/T1/start"]


def test_mqtt_a_refused_message_is_held_and_retried(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 2)
    hub, clock = FakeHub(), Clock()
    ch = mqtt_channel(store, hub, clock)
    ch.pump()
    hub.ack_all(ok=False)
    ch.pump()
    assert hub.sent == [] and store.outbox_counts() == (2, 0)  # held, not re-read at once
    clock.now += timedelta(seconds=FAILED_RETRY_S + 1)
    ch.pump()
    assert len(hub.sent) == 2
    hub.ack_all()
    ch.pump()
    assert store.outbox_counts() == (0, 2)


def test_mqtt_after_a_crash_unacknowledged_events_go_out_again(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 2)
    mqtt_channel(store, FakeHub(), Clock()).pump()  # published, the process dies before any PUBACK
    again = FakeHub()
    mqtt_channel(store, again, Clock()).pump()
    assert len(again.sent) == 2  # at least once: never zero times


def test_mqtt_a_failed_mark_never_publishes_the_acknowledged_events_again(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 5)
    failing = {"on": False}

    class Flaky:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def settle(self, channel: str, delivered: Sequence[int], at: datetime, **kw: object) -> object:
            if failing["on"] and delivered:
                raise StoreError("cannot mark alerts delivered: disk I/O error")
            return store.settle(channel, delivered, at, **kw)  # type: ignore[arg-type]

    hub, clock = FakeHub(), Clock()
    ch = MqttChannel(channel_settings(), direct(Flaky()), clock, hub, "ingest")  # type: ignore[arg-type]
    ch.pump()
    hub.ack_all()
    failing["on"] = True
    with pytest.raises(StoreError):
        ch.pump()
    with pytest.raises(StoreError):
        ch.pump()
    assert hub.sent == []  # the acknowledged ones are kept aside, never published again
    failing["on"] = False
    ch.pump()
    assert store.outbox_counts() == (0, 5) and ch.settled()


def test_each_channel_has_its_own_queue(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 3, channels=("a", "b"))
    hub_a, hub_b, clock = FakeHub(), FakeHub(), Clock()
    a = mqtt_channel(store, hub_a, clock, name="a")
    b = mqtt_channel(store, hub_b, clock, name="b")
    a.pump()
    hub_a.ack_all()
    a.pump()
    assert {s.channel: (s.queued, s.delivered) for s in store.channel_states()} == {"a": (0, 3), "b": (3, 0)}
    b.pump()
    assert len(hub_b.sent) == 3


class Service(SequentialChannel):
    """A sequential channel whose service answers from a script (None: took it)."""

    def __init__(self, store: Store, clock: Clock, answers: list[Failure | None], **values: object) -> None:
        super().__init__(channel_settings("svc", "webhook", **values), direct(store), clock)
        self.answers = answers
        self.got: list[str] = []

    def send(self, event: Event) -> Failure | None:
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            self.got.append(event.event_id)
        return answer


def drain(ch: Service, pumps: int = 20) -> None:
    for _ in range(pumps):
        if ch.pump() > 0 and ch.settled():
            return


def test_a_failure_holds_the_later_events_and_backs_off(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 3, channels=("svc",))
    clock = Clock()
    ch = Service(store, clock, [Failure("HTTP 500"), Failure("HTTP 500"), None], retry_min_s=5.0, retry_max_s=60.0)
    ch.open()
    assert ch.pump() == pytest.approx(5.0)  # first failure: retry_min_s
    assert ch.got == [] and ch.pump() == pytest.approx(5.0)  # still waiting
    clock.now += timedelta(seconds=5)
    assert ch.pump() == pytest.approx(10.0)  # doubled
    (state,) = store.channel_states()
    assert (state.failures, state.last_error, state.next_try_at) == (2, "HTTP 500", clock.now + timedelta(seconds=10))
    clock.now += timedelta(seconds=10)
    drain(ch)
    assert ch.got == ["e0", "e1", "e2"]  # once each, in order
    (state,) = store.channel_states()
    assert (state.queued, state.delivered, state.failures, state.next_try_at) == (0, 3, 0, None)


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 1, channels=("svc",))
    ch = Service(store, Clock(), [Failure("HTTP 429", retry_after_s=120.0)], retry_min_s=5.0, retry_max_s=60.0)
    ch.open()
    assert ch.pump() == pytest.approx(120.0)


def test_a_refusal_parks_the_channel_until_a_test_unparks_it(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 2, channels=("svc",))
    clock = Clock()
    ch = Service(store, clock, [Failure("HTTP 403", permanent=True)], park_s=3600.0)
    ch.open()
    assert ch.pump() == pytest.approx(PARK_CHECK_S)  # parked: looks again now and then
    (state,) = store.channel_states()
    assert state.parked_until == T0 + timedelta(hours=1) and state.queued == 2
    assert ch.settled()  # a stop does not wait for a parked channel
    clock.now += timedelta(minutes=5)
    ch._next_park_check = 0.0
    ch.pump()
    assert ch.got == []  # still parked
    store.note_channel("svc", "webhook", clock.now, None)  # what a successful `ingest alerts test svc` does
    ch._next_park_check = 0.0
    drain(ch)
    assert ch.got == ["e0", "e1"]


def test_a_restarted_channel_honours_a_stored_back_off(tmp_path: Path) -> None:
    store = store_with_alerts(tmp_path, 1, channels=("svc",))
    clock = Clock()
    first = Service(store, clock, [Failure("HTTP 503", retry_after_s=600.0)])
    first.open()
    first.pump()
    again = Service(store, clock, [])
    again.open()
    assert again.pump() == pytest.approx(600.0) and again.got == []
