"""Draining the outbox to MQTT: publish unsent rows in order, mark a row sent only on its PUBACK.

Alerts are written to the outbox in the same transaction as the sortie change that raised them
(store.py), so an alert exists if and only if its cause was stored. The relay publishes what is unsent
while the broker is connected, keeps at most `max_inflight` rows in flight, and marks rows sent when
paho reports their PUBACK. After a crash nothing is in flight: every unsent row is published again, so
an event whose PUBACK was lost may arrive twice, never zero times (subscribers de-duplicate on event_id).
A row whose PUBACK came but could not be marked sent (the database failed) is never published again by
this relay: it is kept aside and marked on a later pump.
The relay reaches the store and the broker through the two small Protocols below, not by importing them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from ingest.metrics import CHANNEL_MQTT, NO_METRICS, Metrics

log = logging.getLogger(__name__)

MAX_INFLIGHT = 100
FAILED_RETRY_S = 60.0  # a PUBACK with a failure code (e.g. an ACL denial) is retried this much later


class OutboxPort(Protocol):
    def pending_alerts(self, limit: int, exclude: Sequence[int]) -> list[tuple[int, str, str]]: ...
    def mark_sent(self, ids: Sequence[int], at: datetime) -> None: ...


class PublisherPort(Protocol):
    def publish(self, topic: str, payload: str) -> int | None: ...
    def take_acks(self) -> list[tuple[int, bool, str]]: ...
    def is_connected(self) -> bool: ...


class OutboxRelay:
    """One relay per publisher; `pump()` is called from one thread only."""

    def __init__(
        self,
        outbox: OutboxPort,
        publisher: PublisherPort,
        clock: Callable[[], datetime],
        max_inflight: int = MAX_INFLIGHT,
        *,
        metrics: Metrics = NO_METRICS,
        channel: str = CHANNEL_MQTT,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics
        self.channel = channel
        self.publisher = publisher
        self.clock = clock
        self.max_inflight = max_inflight
        self.inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._held: dict[int, datetime] = {}  # row id -> when a failed row may be tried again
        self._acked: list[int] = []  # acknowledged by the broker, not yet marked sent in the outbox
        self.sent = 0

    def pump(self) -> int:
        """Record the PUBACKs that arrived, then publish what is unsent; returns how many were published.
        Raises what the outbox raises (a StoreError): nothing acknowledged is forgotten."""
        self._take_acks()
        self._mark_acked()
        if not self.publisher.is_connected():
            return 0
        room = self.max_inflight - len(self.inflight)
        if room <= 0:
            return 0
        now = self.clock()
        self._held = {row: until for row, until in self._held.items() if until > now}
        skip = [*self.inflight.values(), *self._held, *self._acked]
        published = 0
        for row_id, topic, payload in self.outbox.pending_alerts(room, skip):
            mid = self.publisher.publish(topic, payload)
            if mid is None:  # paho's queue is full: try again on the next pump
                break
            self.inflight[mid] = row_id
            published += 1
        return published

    def _take_acks(self) -> None:
        for mid, ok, reason in self.publisher.take_acks():
            row_id = self.inflight.pop(mid, None)
            if row_id is None:
                continue
            if ok:
                self._acked.append(row_id)
                self.metrics.delivered(self.channel, 1)
            else:
                self.metrics.failed(self.channel, 1)
                self._held[row_id] = self.clock() + timedelta(seconds=FAILED_RETRY_S)
                log.error("the broker refused alert %d: %s; retrying in %.0f s", row_id, reason, FAILED_RETRY_S)

    def _mark_acked(self) -> None:
        if self._acked:
            self.outbox.mark_sent(self._acked, self.clock())  # on failure they stay aside, never re-published
            self.sent += len(self._acked)
            self._acked = []

    @property
    def idle(self) -> bool:
        """Nothing in flight or waiting to be marked (what is unsent may still wait for a connection)."""
        return not self.inflight and not self._acked
