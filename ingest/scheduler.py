"""The daemon: one APScheduler 3.x interval job per feed, one writer thread that owns the database.

    feed jobs (thread pool, one worker per feed) ── PollOutcome ──► Writer (one thread, one Store)

- A job fetches and parses in its own worker, so a slow or failing feed delays nobody else; the writer
  only runs short transactions. `max_instances=1` and `coalesce=True` never let a backlog of polls pile up.
- Every I/O in a job has a timeout (transport.py), so a job always returns (reliability-and-performance.md §3).
- `stop` (set by SIGTERM/SIGINT in the CLI) cuts any pacing wait short; `shutdown(wait=True)` lets the
  running polls finish, then the writer stores what they returned and closes the database.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ingest.alerts.mqtt import MqttOptions, MqttPublisher
from ingest.alerts.outbox import OutboxRelay
from ingest.app import App
from ingest.config import Settings
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.pipeline import Clock, FeedJob, PollOutcome, Tracker, replay_file
from ingest.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
_SAVE_TIMEOUT_S = 60.0
_RELAY_PERIOD_S = 0.2
_FLUSH_ON_STOP_S = 3.0
_CONNECT_WAIT_S = 5.0
_ACK_WAIT_S = 0.5
_MAX_JITTER_S = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Writer(threading.Thread):
    """The only thread that touches the database while the daemon runs."""

    def __init__(self, app: App, clock: Clock) -> None:
        super().__init__(name="ingest-writer", daemon=True)
        self.app = app
        self.clock = clock
        self.tracker: Tracker | None = None  # built in the writer thread, with the Store
        self.on_alerts: Callable[[], None] = lambda: None  # the relay's wake-up, once there is one
        self._queue: queue.Queue[tuple[Callable[[Store], Any], Future[Any]] | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def open(self) -> None:
        """Start the thread and wait until the database is open, migrated and seeded; re-raise failures."""
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[[Store], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        """Store everything already submitted, then close the database."""
        self._queue.put(None)
        self.join()

    def run(self) -> None:
        try:
            store = Store(self.app.settings.database.path)
            self._seed(store)
        except BaseException as exc:  # handed to open(), which re-raises it in the main thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (item := self._queue.get()) is not None:
                fn, future = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(store))
                    except Exception as exc:
                        future.set_exception(exc)
        finally:
            store.close()

    def _seed(self, store: Store) -> None:
        settings = self.app.settings
        store.sync_watchlist(self.app.watchlist)
        self.tracker = tracker = Tracker(settings, store, on_alerts=lambda: self.on_alerts())
        for path in settings.replay.on_start:
            stored = responses = 0
            for outcome in replay_file(path, settings.replay.feed, self.app.selector, self.clock):
                # Replayed data runs on its own clock: the recording's time, not ours.
                stored += tracker.save_poll(store, outcome, outcome.record.started_at, record_poll=False)
                tracker.check(store, outcome.record.started_at)
                responses += 1
            log.info("replayed %s: %d responses, %d new sightings", path, responses, stored)

    def save(self, outcome: PollOutcome) -> Future[int]:
        """Store a poll's outcome, with its sortie changes and alerts, in the writer thread."""

        def save(store: Store) -> int:
            assert self.tracker is not None
            return self.tracker.save_poll(store, outcome, self.clock())

        return self.submit(save)

    def check_sorties(self) -> Future[int]:
        """The periodic check: end sorties whose gap has passed."""

        def check(store: Store) -> int:
            assert self.tracker is not None
            return len(self.tracker.check(store, self.clock()))

        return self.submit(check)


def mqtt_options(settings: Settings) -> MqttOptions:
    m = settings.mqtt
    return MqttOptions(
        host=m.host, port=m.port, topic_prefix=m.topic_prefix, client_id=m.client_id,
        username=m.username or None, password=m.password or None, tls=m.tls,
        ca_file=Path(m.ca_file) if m.ca_file else None, cert_file=Path(m.cert_file) if m.cert_file else None,
        key_file=Path(m.key_file) if m.key_file else None, keepalive_s=m.keepalive_s,
    )  # fmt: skip


class _WriterOutbox:
    """The relay's view of the outbox, served by the writer thread (the only one that writes)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def pending_alerts(self, limit: int, exclude: Sequence[int]) -> list[tuple[int, str, str]]:
        return self.writer.submit(lambda store: store.pending_alerts(limit, exclude)).result(_SAVE_TIMEOUT_S)

    def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        self.writer.submit(lambda store: store.mark_sent(ids, at)).result(_SAVE_TIMEOUT_S)


class AlertRelay(threading.Thread):
    """Drains the outbox to the broker: woken when alerts are queued, when a PUBACK arrives (to mark it
    sent and fill its place at once), and every `_RELAY_PERIOD_S` (to notice a reconnect)."""

    def __init__(self, relay: OutboxRelay, wake: threading.Event) -> None:
        super().__init__(name="ingest-alerts", daemon=True)
        self.relay = relay
        self._wake = wake
        self._stop_at: float | None = None

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while True:
            self._wake.clear()  # before the pump: a wake-up during it is not lost
            try:
                published = self.relay.pump()
            except Exception:
                log.exception("alert relay failed; retrying")
                published = 0
            if self._stop_at is not None and (time.monotonic() >= self._stop_at or (self.relay.idle and not published)):
                return
            self._wake.wait(_RELAY_PERIOD_S)

    def stop(self, flush_s: float) -> None:
        """Publish what is pending for up to `flush_s`, then end the thread."""
        self._stop_at = time.monotonic() + flush_s
        self._wake.set()
        self.join()


def _tick(job: FeedJob, writer: Writer) -> None:
    outcome = job.run()
    if outcome is None:
        return
    stored = writer.save(outcome).result(timeout=_SAVE_TIMEOUT_S)
    r = outcome.record
    level = logging.INFO if stored else logging.DEBUG
    log.log(
        level,
        "feed %s: %d aircraft, %d watched, %d in area, %d new",
        r.feed,
        r.aircraft,
        r.matched,
        r.kept,
        stored,
    )


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed; its next tick runs as planned", event.job_id, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    else:
        log.warning("job %s still running at its next tick; that tick is skipped", event.job_id)


def deliver_pending(settings: Settings, store: Store, clock: Clock, timeout_s: float) -> int:
    """Publish the outbox from this thread for at most `timeout_s` (one-shot commands); returns how many
    alerts the broker acknowledged. What is left stays in the outbox for the next run."""
    acked = threading.Event()
    publisher = MqttPublisher(mqtt_options(settings), on_ack=acked.set)
    publisher.start()
    try:
        deadline = time.monotonic() + timeout_s
        if not publisher.wait_connected(min(_CONNECT_WAIT_S, timeout_s)):
            return 0
        relay = OutboxRelay(store, publisher, clock)
        while time.monotonic() < deadline:
            acked.clear()
            published = relay.pump()
            if not published and relay.idle and not store.pending_alerts(1, ()):
                break
            acked.wait(_ACK_WAIT_S)  # the next PUBACK, or a look again after a while
        return relay.sent
    finally:
        publisher.stop()


def _start_alerts(settings: Settings, writer: Writer, clock: Clock) -> tuple[MqttPublisher | None, AlertRelay | None]:
    if not settings.mqtt.enabled:
        return None, None
    wake = threading.Event()  # set by new alerts in the outbox and by every PUBACK
    publisher = MqttPublisher(mqtt_options(settings), on_ack=wake.set)
    publisher.start()
    relay = AlertRelay(OutboxRelay(_WriterOutbox(writer), publisher, clock), wake)
    writer.on_alerts = relay.wake
    relay.start()
    return publisher, relay


def run_daemon(app: App, stop: threading.Event, clock: Clock = utc_now) -> int:
    """Poll every feed on its interval until `stop` is set; returns the exit code."""
    writer = Writer(app, clock)
    writer.open()
    publisher, relay = _start_alerts(app.settings, writer, clock)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=max(1, len(app.feeds)))},
    )
    fetchers = []
    streams = [feed for feed in app.feeds if isinstance(feed, StreamFeed)]
    for stream in streams:
        stream.start()  # reads in its own thread; each tick takes what arrived
    for feed in app.feeds:
        fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
        fetchers.append(fetcher)
        job = FeedJob(feed, fetcher, app.selector, clock, stop.wait)
        interval_s = feed.settings.interval_s
        scheduler.add_job(
            _tick,
            IntervalTrigger(seconds=interval_s, jitter=min(_MAX_JITTER_S, interval_s / 10), timezone=UTC),
            args=(job, writer),
            id=feed.name,
            name=f"poll {feed.name}",
            next_run_time=clock(),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval_s)),
        )
    check_s = app.settings.sorties.check_interval_s
    scheduler.add_job(
        lambda: writer.check_sorties().result(timeout=_SAVE_TIMEOUT_S),
        IntervalTrigger(seconds=check_s, timezone=UTC),
        id="sorties",
        name="check sorties",
        next_run_time=clock(),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(check_s)),
    )
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    log.info(
        "ingest running: %d feeds (%s), %d watched aircraft, area %s, database %s",
        len(app.feeds), ", ".join(f.name for f in app.feeds) or "none", len(app.watchlist),
        app.area.name, app.settings.database.path,
    )  # fmt: skip
    try:
        stop.wait()
        log.info("stopping: finishing running polls")
        scheduler.shutdown(wait=True)
    finally:
        if relay is not None and publisher is not None:
            relay.stop(_FLUSH_ON_STOP_S)
            publisher.stop()
        for stream in streams:
            stream.stop()
        writer.close()
        for fetcher in fetchers:
            fetcher.close()
    log.info("stopped")
    return 0
