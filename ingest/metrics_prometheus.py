"""The Prometheus side of metrics.py: the only importer of prometheus_client.

Two sources in one registry, rendered by the HTTP API at `/metrics` (api.py) in the text format (or
OpenMetrics, when the scraper's Accept header asks for it):

- `PrometheusMetrics`, the counters of a running daemon (`ingest run` with `[http] enabled = true`): they
  live in its process, from its start;
- `DatabaseCollector`, gauges read from the database at each scrape, so that `ingest serve` alone (no
  daemon in its process) still tells the database's size, the outbox's depth, the open sorties and each
  feed's last success, as `ingest run` does.

Names follow Prometheus' conventions: the `ingest_` prefix, `_total` on counters, base units (seconds,
bytes), times as `_timestamp_seconds` (the age is `time() - ...` in PromQL), and only low-cardinality
labels (metrics.py). Every configured feed, outcome and channel is there from the start at 0, so
`rate()` sees the first increase.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from ingest import __version__
from ingest.errors import FeedError, StoreError
from ingest.metrics import CHANNEL_MQTT, POLL_OUTCOMES, poll_outcome, reject_class, status_class

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.models import PollRecord, Rejected, SortieEvent
    from ingest.store import Store

log = logging.getLogger(__name__)

# Poll durations: a local receiver answers in milliseconds, a public API in a second or two, a slow one
# in tens (the read timeout is 10 s a request, and a tick can make several requests).
POLL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
END_REASONS = ("landed", "left_area", "signal_lost", "no_coverage")
EVENT_KINDS = ("start", "end", "orbit", "emergency")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


class PrometheusMetrics:
    """metrics.Metrics, kept in a registry of its own; `render()` gives the text exposition."""

    def __init__(
        self,
        feeds: Sequence[str] = (),
        channels: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        process: bool = True,
    ) -> None:
        self._ready = threading.Event()  # the database may be read (add_database)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside each counter: half the series, none needed
        self.registry = r = registry or CollectorRegistry()
        if process:  # memory, CPU, open files: what a months-long run wants watched
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        Gauge("ingest_build_info", "The running ingest's version", ["version"], registry=r).labels(__version__).set(1)
        self.polls = Counter(
            "ingest_feed_polls", "Polls of a feed, by outcome (ok, timeout, http_5xx, ...)", ["feed", "outcome"],
            registry=r,
        )  # fmt: skip
        self.responses = Counter(
            "ingest_feed_http_responses", "HTTP answers from a feed, by status class", ["feed", "code"], registry=r
        )
        self.duration = Histogram(
            "ingest_feed_poll_duration_seconds", "How long a poll took, all its requests", ["feed"],
            buckets=POLL_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.aircraft = Counter("ingest_feed_aircraft", "Aircraft records a feed returned", ["feed"], registry=r)
        self.watched = Counter(
            "ingest_feed_aircraft_watched", "Watched aircraft among them, anywhere", ["feed"], registry=r
        )
        self.kept = Counter(
            "ingest_feed_aircraft_kept", "Watched aircraft inside the area (sightings offered to the store)", ["feed"],
            registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "ingest_feed_rejected_records", "Malformed records skipped, by class of the field at fault",
            ["feed", "reason"], registry=r,
        )  # fmt: skip
        self.sightings = Counter(
            "ingest_sightings_stored", "New sightings committed to the database", ["feed"], registry=r
        )
        self.started = Counter("ingest_sorties_started", "Sorties started", registry=r)
        self.ended = Counter("ingest_sorties_ended", "Sorties ended, by reason", ["reason"], registry=r)
        self.events = Counter("ingest_events", "Events raised (sortie start and end, orbits, emergencies)", ["kind"],
                              registry=r)  # fmt: skip
        self.delivered_alerts = Counter(
            "ingest_alerts_delivered", "Alerts a channel confirmed (MQTT: PUBACK)", ["channel"], registry=r
        )
        self.failed_alerts = Counter(
            "ingest_alerts_failed", "Alerts a channel refused (retried later)", ["channel"], registry=r
        )
        self.connected = Gauge(
            "ingest_alert_channel_connected", "1 while an alert channel is connected (MQTT: to its broker)",
            ["channel"], registry=r,
        )  # fmt: skip
        for feed in feeds:
            for outcome in POLL_OUTCOMES:
                self.polls.labels(feed, outcome)
            for code in STATUS_CLASSES:
                self.responses.labels(feed, code)
            for family in (self.duration, self.aircraft, self.watched, self.kept, self.sightings):
                family.labels(feed)
        for reason in END_REASONS:
            self.ended.labels(reason)
        for kind in EVENT_KINDS:
            self.events.labels(kind)
        for channel in channels:
            self.delivered_alerts.labels(channel)
            self.failed_alerts.labels(channel)

    # -- metrics.Metrics ---------------------------------------------------------------------------------

    def poll(self, record: PollRecord, failure: FeedError | None, rejected: Sequence[Rejected]) -> None:
        feed = record.feed
        self.polls.labels(feed, poll_outcome(failure)).inc()
        self.duration.labels(feed).observe(record.duration_ms / 1000)
        self.aircraft.labels(feed).inc(record.aircraft)
        self.watched.labels(feed).inc(record.matched)
        self.kept.labels(feed).inc(record.kept)
        for item in rejected:
            self.rejected.labels(feed, reject_class(item.field)).inc()

    def response(self, feed: str, status: int) -> None:
        self.responses.labels(feed, status_class(status)).inc()

    def stored(self, feed: str, sightings: int) -> None:
        self.sightings.labels(feed).inc(sightings)

    def sortie_events(self, events: Sequence[SortieEvent]) -> None:
        for e in events:
            self.events.labels(e.kind).inc()
            if e.kind == "start":
                self.started.inc()
            elif e.kind == "end":
                self.ended.labels(e.sortie.end_reason or "unknown").inc()

    def happening(self, kind: str) -> None:
        self.events.labels(kind).inc()

    def delivered(self, channel: str, alerts: int) -> None:
        self.delivered_alerts.labels(channel).inc(alerts)

    def failed(self, channel: str, alerts: int) -> None:
        self.failed_alerts.labels(channel).inc(alerts)

    def watch_connection(self, channel: str, connected: Callable[[], bool]) -> None:
        self.connected.labels(channel).set_function(lambda: float(connected()))

    def database_ready(self) -> None:
        self._ready.set()

    # -- exposition --------------------------------------------------------------------------------------

    def add_database(self, settings: Settings, wait_for_daemon: bool = False) -> None:
        """Also read the database's gauges at each scrape (DatabaseCollector); with `wait_for_daemon`, only
        once database_ready() was called (a reader opening the file would race the daemon's migrations)."""
        if not wait_for_daemon:
            self._ready.set()
        self.registry.register(DatabaseCollector(settings, self._ready.is_set))

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """(body, Content-Type) in the format the scraper's Accept header asks for: OpenMetrics, or the
        text format (0.0.4 by default, which every Prometheus reads)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


def daemon_metrics(settings: Settings) -> PrometheusMetrics:
    """The registry of `ingest run`: its counters, and the database's gauges."""
    channels = [CHANNEL_MQTT] if settings.mqtt.enabled else []
    metrics = PrometheusMetrics([f.name for f in settings.feeds if f.enabled], channels)
    metrics.add_database(settings, wait_for_daemon=True)
    return metrics


def database_metrics(settings: Settings) -> PrometheusMetrics:
    """The registry of `ingest serve` alone: the database's gauges (no daemon runs in this process)."""
    metrics = PrometheusMetrics(process=True)
    metrics.add_database(settings)
    return metrics


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape, on a connection of its own (as the API's handlers):
    its size (and, for SQLite, the write-ahead log's), the outbox's depth, the open sorties, and each
    configured feed's last success, parked state and failures in a row (as `ingest feeds` tells them).
    A database that cannot be read gives `ingest_database_readable 0` and no other of these gauges."""

    def __init__(self, settings: Settings, ready: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.ready = ready  # False while the daemon still opens and migrates the database

    def describe(self) -> Iterable[Metric]:
        return ()  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        readable = GaugeMetricFamily("ingest_database_readable", "1 when the database answered this scrape")
        if not self.ready():
            readable.add_metric([], 0)
            return [readable]
        try:
            families = self._read()
        except StoreError as exc:
            log.warning("metrics: %s", exc)
            readable.add_metric([], 0)
            return [readable]
        readable.add_metric([], 1)
        return [readable, *families]

    def _read(self) -> list[Metric]:
        from ingest.store import open_configured  # the store's driver loads with the first scrape

        store = open_configured(self.settings.database, create=False)
        try:
            return _database_families(self.settings, store)
        finally:
            store.close()


def _database_families(settings: Settings, store: Store) -> list[Metric]:
    size = GaugeMetricFamily("ingest_database_size_bytes", "The database's size on disk", labels=["backend"])
    size.add_metric([store.backend], store.size_bytes())
    out: list[Metric] = [size]
    if store.backend == "sqlite":
        wal = GaugeMetricFamily("ingest_database_wal_size_bytes", "The SQLite write-ahead log's size")
        wal.add_metric([], store.wal_bytes())
        out.append(wal)
    pending = GaugeMetricFamily(
        "ingest_outbox_pending_alerts", "Alerts waiting in the outbox for their channel", labels=["channel"]
    )
    for state in store.channel_states():
        pending.add_metric([state.channel], state.queued)
    opened = GaugeMetricFamily("ingest_sorties_open", "Sorties in progress (the demo's excluded)")
    opened.add_metric([], sum(1 for s in store.sorties(open_only=True) if not s.synthetic))
    out += [pending, opened]
    now = datetime.now(UTC)
    health = store.feed_health(now)
    last = GaugeMetricFamily(
        "ingest_feed_last_success_timestamp_seconds", "When a feed last answered usably (Unix time)", labels=["feed"]
    )
    parked = GaugeMetricFamily("ingest_feed_parked", "1 while a feed is parked (a 403, a long Retry-After)",
                               labels=["feed"])  # fmt: skip
    failures = GaugeMetricFamily("ingest_feed_failures_in_a_row", "A feed's failed polls since its last success",
                                 labels=["feed"])  # fmt: skip
    for fs in settings.feeds:
        if not fs.enabled:
            continue
        h = health.get(fs.name, {})
        if h.get("last_success_at"):
            last.add_metric([fs.name], datetime.fromisoformat(h["last_success_at"]).timestamp())
        parked.add_metric([fs.name], 1 if h.get("state") == "parked" else 0)
        failures.add_metric([fs.name], h.get("failures") or 0)
    out += [last, parked, failures]
    beats = [d for d in store.daemons() if d["stopped_at"] is None]
    heartbeat = GaugeMetricFamily(
        "ingest_daemon_heartbeat_timestamp_seconds",
        "The latest heartbeat of a daemon that has not stopped cleanly (Unix time; one every 10 s while it runs)",
    )
    if beats:
        heartbeat.add_metric([], max(datetime.fromisoformat(d["beat_at"]).timestamp() for d in beats))
    out.append(heartbeat)
    return out
