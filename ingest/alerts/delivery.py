"""The delivery side of alerts, as one object: every channel's relay and connection behind `start()` and
`stop(flush_s)`, built from the Settings and a store accessor.

    outbox + deliveries (store) ──► Channel threads, one per channel ──► MQTT broker (one shared connection)
                                      mqtt, homeassistant, apprise, webhook      Apprise services, webhooks

- Each channel runs on its own thread (ChannelWorker), so a channel that is down (a broker gone, a
  webhook answering 500, a rate-limited Telegram) holds only its own queue; `wake()` (new events committed)
  wakes them all. What was delivered lives in the database only (alerts/outbox.py): a Delivery can be
  started and stopped several times in one process (a leader that loses and wins again), and starts from
  what the database says.
- `stop(flush_s)` lets each channel deliver what it can for up to `flush_s`, then ends its thread; a
  channel that is backing off or whose service is away ends at once.
- A homeassistant channel that was turned off is removed from Home Assistant at start (its entities).
- `deliver(settings, access, timeout_s)` is the one-shot commands' form (`ingest poll`, `replay --alerts`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ingest import __version__
from ingest.alerts.outbox import Channel, Clock, StoreAccess
from ingest.config import AlertSettings, Settings
from ingest.errors import StoreError
from ingest.metrics import NO_METRICS, Metrics

if TYPE_CHECKING:
    from ingest.alerts.channels.mqtt import MqttHub

log = logging.getLogger("ingest.alerts")

CONNECT_WAIT_S = 5.0  # one-shot commands wait this long for the broker before giving up on MQTT channels
_ERROR_RETRY_S = 1.0
_MAX_SLEEP_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChannelWorker(threading.Thread):
    """Runs one channel's pump until stopped; a failing store or channel is logged once per episode."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(name=f"ingest-alerts-{channel.name}", daemon=True)
        self.channel = channel
        self._stop_at: float | None = None
        self.opened = threading.Event()

    def run(self) -> None:
        ch = self.channel
        failing = False
        opened = False
        while True:
            ch.wake.clear()  # before the pump: a wake-up during it is not lost
            try:
                if not opened:
                    ch.open()
                    opened = True
                    self.opened.set()
                wait = ch.pump()
            except StoreError as exc:
                if not failing:
                    log.error("alerts channel %s: %s; its events wait in the outbox", ch.name, exc)
                failing, wait = True, _ERROR_RETRY_S
            except Exception:
                log.exception("alerts channel %s failed; retrying", ch.name)
                wait = _ERROR_RETRY_S
            else:
                if failing:
                    log.warning("alerts channel %s: the outbox works again", ch.name)
                failing = False
            if self._stop_at is not None:
                if time.monotonic() >= self._stop_at or not opened or ch.settled():
                    break
                wait = min(wait, max(0.0, self._stop_at - time.monotonic()))
            ch.wake.wait(min(max(wait, 0.0), _MAX_SLEEP_S))
        self.opened.set()
        try:
            if opened:
                ch.close()
        except Exception:
            log.warning("alerts channel %s: could not mark its last deliveries", ch.name, exc_info=True)

    def request_stop(self, flush_s: float) -> None:
        self._stop_at = time.monotonic() + flush_s
        self.channel.wake.set()

    def finish(self, flush_s: float) -> None:
        self.join(flush_s + 1.0)
        if self.is_alive():  # a delivery outlasting the flush (a slow webhook): cut it, then wait for it
            self.channel.abort()
            self.join()


@dataclass
class Summary:
    """What a one-shot delivery did, per channel."""

    delivered: dict[str, int]
    failures: dict[str, str]  # channel -> why it stopped short


class Delivery:
    """Every alert channel, started and stopped as one; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        access: StoreAccess,
        clock: Clock = utc_now,
        maps: Callable[[str], bytes | None] | None = None,
        *,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.access = access
        self.clock = clock
        self.maps = maps if maps is not None else MapMaker(settings, access)
        self.channels: list[Channel] = []
        self.workers: list[ChannelWorker] = []
        self.hub: MqttHub | None = None
        self._running = False

    @property
    def configured(self) -> tuple[AlertSettings, ...]:
        return self.settings.channels()

    def start(self) -> None:
        """Build the channels and their connection, and start their threads; idempotent while running."""
        if self._running:
            return
        channels = [self._build(c) for c in self.configured]
        channels += self._removals()
        for channel in channels:
            channel.metrics = self.metrics
        if self.hub is not None:
            self.hub.start()
            hub = self.hub
            for channel in channels:
                if channel.kind in ("mqtt", "homeassistant"):
                    self.metrics.watch_connection(channel.name, hub.is_connected)
        self.channels = channels
        self.workers = [ChannelWorker(c) for c in channels]
        for w in self.workers:
            w.start()
        self._running = True
        if channels:
            log.info("alerts: %s", ", ".join(f"{c.name} ({c.kind})" for c in channels))

    def _hub(self) -> MqttHub:
        if self.hub is None:
            from ingest.alerts.channels.mqtt import MqttHub, options

            self.hub = MqttHub(options(self.settings.mqtt))
        return self.hub

    def _build(self, c: AlertSettings) -> Channel:
        prefix = self.settings.mqtt.topic_prefix
        if c.kind == "mqtt":
            from ingest.alerts.channels.mqtt import MqttChannel

            return MqttChannel(c, self.access, self.clock, self._hub(), prefix)
        if c.kind == "homeassistant":
            from ingest.alerts.channels.homeassistant import HomeAssistantChannel

            return HomeAssistantChannel(c, self.access, self.clock, self._hub(), prefix, __version__)
        if c.kind == "apprise":
            from ingest.alerts.channels.apprise import AppriseChannel

            return AppriseChannel(c, self.access, self.clock, self.maps)
        from ingest.alerts.channels.webhook import WebhookChannel

        return WebhookChannel(c, self.access, self.clock)

    def _removals(self) -> list[Channel]:
        """homeassistant channels the database knows with topics, that are no longer configured and on."""
        on = {c.name for c in self.configured}
        try:
            states = self.access(lambda store: store.channel_states())
        except StoreError as exc:
            log.warning("alerts: cannot read the channels' state (%s); turned-off channels are not cleaned up", exc)
            return []
        gone = [s for s in states if s.kind == "homeassistant" and s.memo and s.channel not in on]
        if not gone:
            return []
        import json

        from ingest.alerts.channels.homeassistant import HomeAssistantRemoval

        removals: list[Channel] = []
        for state in gone:
            try:
                memo = json.loads(state.memo)
            except ValueError:
                continue
            if isinstance(memo, dict):
                removals.append(HomeAssistantRemoval(state.channel, self.access, self.clock, self._hub(), memo))
        return removals

    def wake(self) -> None:
        """New events were committed: every channel looks at once."""
        for c in self.channels:
            c.poke()

    def stop(self, flush_s: float) -> None:
        """Deliver what can be for up to `flush_s`, end the threads, close the connection."""
        if not self._running:
            return
        for w in self.workers:
            w.request_stop(flush_s)
        for w in self.workers:
            w.finish(flush_s)
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        self.workers = []
        self._running = False

    def summary(self) -> Summary:
        failures = {c.name: c.last_failure.reason for c in self.channels if c.last_failure is not None}
        return Summary({c.name: c.delivered for c in self.channels}, failures)


def deliver(settings: Settings, access: StoreAccess, timeout_s: float, clock: Clock = utc_now) -> Summary:
    """Deliver what the outbox holds, every channel at once, for at most `timeout_s` (one-shot commands)."""
    delivery = Delivery(settings, access, clock)
    delivery.start()
    try:
        if delivery.hub is not None:
            delivery.hub.wait_connected(min(CONNECT_WAIT_S, timeout_s))
        for w in delivery.workers:
            w.opened.wait(timeout_s)
    finally:
        delivery.stop(timeout_s)
    return delivery.summary()


class MapMaker:
    """A sortie's map as PNG bytes (ingest/mapping.py, as `ingest map` draws it), for channels that attach it."""

    def __init__(self, settings: Settings, access: StoreAccess) -> None:
        self.settings = settings
        self.access = access
        self._lock = threading.Lock()  # matplotlib figures are independent, but pyproj and the cache are shared
        self._projector: object | None = None

    def __call__(self, sortie_id: str) -> bytes | None:
        sortie = self.access(lambda store: store.sortie(sortie_id))
        if sortie is None:
            return None
        rows = self.access(lambda store: store.track(sortie))
        happenings = self.access(lambda store: store.happenings([sortie_id]))
        if not rows:
            return None
        from ingest.geo import Area, Projector
        from ingest.mapping import render_map

        a = self.settings.area
        with self._lock:
            if self._projector is None:
                self._projector = Projector(a.crs)
            projector = self._projector
        assert isinstance(projector, Projector)
        area = Area(a.name, a.south, a.west, a.north, a.east)
        return render_map([(sortie, rows)], area, projector, "png", happenings=happenings)
