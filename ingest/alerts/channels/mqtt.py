"""The `mqtt` channel kind, and the one broker connection that every MQTT-based channel shares.

Topics and payloads are today's (alerts/messages.py, README "MQTT alerts"): `{topic_prefix}/sortie/{tail}/
start|end|orbit|emergency`, QoS 1, not retained, the payload as the outbox holds it. A channel's own
`topic_prefix` replaces the [mqtt] one.

Delivery: events are handed to paho up to WINDOW at a time, in order (paho keeps MAX_INFLIGHT of them on
the wire and sends the rest as PUBACKs free the window), and marked delivered in batches when their PUBACKs
arrive: one round trip to the store marks a batch and reads the next. The channel's thread looks every
WAKE_EVERY PUBACKs, not at each: every look takes the GIL that paho's thread needs to read PUBACKs
(scripts/bench_alerts.py: the drain at 0.86x of bare paho, from 0.43x with one store call per message).

Repeats: an event published but whose PUBACK was not yet marked when the daemon died (at most
MARK_AFTER_S of PUBACKs, or a connection drop's unacknowledged messages, which MQTT itself sends again)
is published again after the restart.

`MqttHub` owns the paho client (alerts/mqtt.py, the only paho importer): one connection, one client id,
one retained `{topic_prefix}/status` with its last will, whatever number of MQTT channels use it. It hands
each PUBACK to the channel that published the message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.alerts.mqtt import MqttOptions, MqttPublisher
from ingest.alerts.outbox import IDLE_S, Channel, Clock, StoreAccess
from ingest.config import AlertSettings, MqttSettings
from ingest.models import QueuedEvent

log = logging.getLogger("ingest.alerts")

WINDOW = 4000  # events handed to paho and not yet acknowledged, at most
REFILL_AT = WINDOW // 2  # read more once this much of the window is free (or nothing is in flight)
MARK_BATCH = 2000  # PUBACKs marked in one round trip ...
MARK_AFTER_S = 0.25  # ... or once the oldest unmarked one is this old, or nothing else is in flight
YIELD_EVERY = 500  # publishes between two GIL yields, while a batch is handed to paho
WAKE_EVERY = 500  # while many are in flight, the channel looks after this many PUBACKs (or MARK_AFTER_S)
FAILED_RETRY_S = 60.0  # a PUBACK with a failure code (e.g. an ACL denial) is retried this much later


def options(m: MqttSettings, client_id: str | None = None) -> MqttOptions:
    from pathlib import Path

    return MqttOptions(
        host=m.host, port=m.port, topic_prefix=m.topic_prefix, client_id=client_id or m.client_id,
        username=m.username or None, password=m.password or None, tls=m.tls,
        ca_file=Path(m.ca_file) if m.ca_file else None, cert_file=Path(m.cert_file) if m.cert_file else None,
        key_file=Path(m.key_file) if m.key_file else None, keepalive_s=m.keepalive_s,
    )  # fmt: skip


Ack = tuple[int, bool, str]


class MqttHub:
    """One MqttPublisher shared by the MQTT-based channels; each PUBACK goes to the channel that published."""

    def __init__(self, opts: MqttOptions) -> None:
        self.publisher = MqttPublisher(opts, on_ack=self._acked, on_connect=self._wake_all)
        self.status_topic = self.publisher.status_topic
        self._lock = threading.Lock()  # publish + owner, and the sorting of acks: never taken on paho's thread
        self._owner: dict[int, str] = {}
        self._acks: dict[str, list[Ack]] = defaultdict(list)
        self._wakes: list[threading.Event] = []
        self._wants: dict[str, int] = {}  # channel -> after how many PUBACKs it wants to be woken
        self._due = 1
        self._seen = 0

    def attach(self, wake: threading.Event) -> None:
        """`wake` is set on PUBACKs (every one by default; see wake_after) and broker messages."""
        self._wakes.append(wake)

    def wake_after(self, channel: str, acks: int) -> None:
        """Wake the channels after `acks` PUBACKs from now rather than each: a drain of thousands need not look
        at every one (each look costs the GIL that paho's thread needs); a lone event's PUBACK wakes at once."""
        self._wants[channel] = max(1, acks)
        self._due = min(self._wants.values())
        self._seen = 0

    def _acked(self) -> None:  # paho's thread: signal only (a racy count only moves a wake-up a little)
        self._seen += 1
        if self._seen >= self._due:
            self._seen = 0
            self._wake_all()

    def _wake_all(self) -> None:  # paho's thread: signal only
        for wake in self._wakes:
            wake.set()

    def publish(self, channel: str, topic: str, payload: str, retain: bool = False) -> int | None:
        with self._lock:
            mid = self.publisher.publish(topic, payload, retain)
            if mid is not None:
                self._owner[mid] = channel
            return mid

    def take_acks(self, channel: str) -> list[Ack]:
        with self._lock:
            for mid, ok, reason in self.publisher.take_acks():
                owner = self._owner.pop(mid, None)
                if owner is not None:
                    self._acks[owner].append((mid, ok, reason))
            return self._acks.pop(channel, [])

    def subscribe(self, topic_filter: str, on_message: Callable[[str, bytes], object]) -> None:
        self.publisher.subscribe(topic_filter, on_message)

    def is_connected(self) -> bool:
        return self.publisher.is_connected()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.publisher.wait_connected(timeout_s)

    @property
    def connections(self) -> int:
        return self.publisher.connections

    def start(self) -> None:
        self.publisher.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.publisher.stop(timeout_s)


@dataclass(slots=True)
class _Held:
    until: datetime
    row: QueuedEvent


class MqttChannel(Channel):
    """Publishes events in order, many in flight; marks them delivered on their PUBACKs, in batches."""

    def __init__(self, settings: AlertSettings, access: StoreAccess, clock: Clock, hub: MqttHub, prefix: str) -> None:
        super().__init__(settings, access, clock)
        self.hub = hub
        self.default_prefix = prefix  # the [mqtt] prefix the outbox's topics were written with
        self.prefix = settings.topic_prefix or prefix
        hub.attach(self.wake)
        self.inflight: dict[int, QueuedEvent] = {}  # paho mid -> the row
        self.cursor = 0  # the highest outbox id handed to paho
        self.acked: list[int] = []  # acknowledged, not yet marked
        self._first_ack = 0.0
        self.held: dict[int, _Held] = {}  # refused by the broker (a failure reason code), retried later
        self.drained = False
        self._last_read = 0.0

    def pump(self) -> float:
        self._take_acks()
        connected = self.hub.is_connected()
        room = WINDOW - len(self.inflight)
        wanted = self.fresh or not self.drained or time.monotonic() - self._last_read >= IDLE_S
        read = room if connected and wanted and (room >= REFILL_AT or not self.inflight) else 0
        mark = bool(self.acked) and (
            not self.inflight or len(self.acked) >= MARK_BATCH or time.monotonic() - self._first_ack >= MARK_AFTER_S
        )
        if read or mark:
            self._settle(read)
        for row in self._due_held() if connected else []:
            self._publish(row)
        # Many in flight: look every WAKE_EVERY PUBACKs (or MARK_AFTER_S); fewer: after a quarter of them, so
        # that the last one still wakes the channel at once.
        self.hub.wake_after(self.name, min(WAKE_EVERY, len(self.inflight) // 4))
        if self.acked or self.inflight:
            return MARK_AFTER_S
        return IDLE_S if connected else 1.0

    def _settle(self, read: int) -> None:
        acked = self.acked
        if not self.inflight and not self.held:
            self.cursor = 0  # read from the oldest waiting row: a row committed late is never skipped
        exclude = list(self.held)  # the acknowledged are marked in the same call, before the read
        if read:
            self.fresh = False  # before the read: an event committed during it pokes again
        rows = self.access(
            lambda store: store.settle(self.name, acked, self.clock(), read=read, after=self.cursor, exclude=exclude)
        )
        self.acked = []
        if acked:
            self.last_marked = time.monotonic()
            self.delivered += len(acked)
            self.metrics.delivered(self.name, len(acked))
            self.succeeded()
        if read:
            self._last_read = time.monotonic()
            self.drained = len(rows) < read
            for n, row in enumerate(rows, 1):
                if not self._publish(row):
                    break
                self.cursor = row.outbox_id
                if n % YIELD_EVERY == 0:
                    time.sleep(0)  # let paho's thread send and read PUBACKs meanwhile (it needs the GIL)

    def _publish(self, row: QueuedEvent) -> bool:
        topic = row.topic
        if self.prefix != self.default_prefix:
            at = topic.rfind("/sortie/")
            topic = self.prefix + topic[at:] if at >= 0 else f"{self.prefix}/{topic}"
        mid = self.hub.publish(self.name, topic, row.payload)
        if mid is None:  # paho's queue refused it: the next read picks it up again
            self.drained = False
            return False
        self.inflight[mid] = row
        return True

    def _take_acks(self) -> None:
        for mid, ok, reason in self.hub.take_acks(self.name):
            row = self.inflight.pop(mid, None)
            if row is None:
                continue
            if ok:
                if not self.acked:
                    self._first_ack = time.monotonic()
                self.acked.append(row.outbox_id)
            else:
                self.held[row.outbox_id] = _Held(self.clock() + timedelta(seconds=FAILED_RETRY_S), row)
                log.error("alerts channel %s: the broker refused %s: %s; retrying in %.0f s", self.name,
                          row.event_id, reason, FAILED_RETRY_S)  # fmt: skip

    def _due_held(self) -> list[QueuedEvent]:
        now = self.clock()
        due = [h.row for h in self.held.values() if h.until <= now]
        for row in due:
            del self.held[row.outbox_id]
        return due

    def settled(self) -> bool:
        return (
            not self.acked
            and (not self.inflight or not self.hub.is_connected())
            and (self.drained or not self.hub.is_connected())
        )

    def close(self) -> None:
        self._take_acks()
        if self.acked:
            self._settle(0)
