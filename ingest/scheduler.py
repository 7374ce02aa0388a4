"""The daemon: one APScheduler 3.x interval job per feed, one writer thread that owns the database, and
a sortie clock that ends sorties on time.

    feed jobs (thread pool, one worker per feed) ── PollOutcome ──► Writer (one thread, one Store)
    SortieClock (its own thread) ── "check now" at the earliest sortie deadline ──┘

- A job fetches and parses in its own worker, so a slow or failing feed delays nobody else; the writer
  only runs short transactions. `max_instances=1` and `coalesce=True` never let a backlog of polls pile up.
- Every I/O in a job has a timeout (transport.py), so a job always returns.
- The sortie clock does not share the poll jobs' pool: it sleeps until the earliest time a sortie could
  end (Tracker.next_deadline, in covered time), at most `[sorties] check_interval_s`, or until sorties
  change, and asks the writer to check. An end is found within a second of its deadline however slow the
  feeds are.
- A failed database write (a full disk) is logged once per episode by the writer, and once when writes
  work again; the poll's data is not stored, and its time does not count as coverage.
- Under systemd (deploy/ingest.service) ingest/systemd.py says READY=1 once all this runs, pings the
  watchdog while `_liveness` finds the threads working, and says STOPPING=1 when a stop begins.
- `stop` (set by SIGTERM/SIGINT in the CLI) cuts any pacing wait short; `shutdown(wait=True)` lets the
  running polls finish, the writer stores what they returned, a last check ends what is due by then and
  the relay publishes it (for a few seconds) before the database is closed.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
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

from ingest import __version__, systemd
from ingest.alerts.mqtt import MqttOptions, MqttPublisher
from ingest.alerts.outbox import OutboxRelay
from ingest.app import App
from ingest.config import Settings
from ingest.errors import StoreError
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.pipeline import Clock, FeedJob, PollOutcome, replay_file
from ingest.store import Store, open_configured
from ingest.tracker import Tracker

log = logging.getLogger(__name__)

T = TypeVar("T")
_SAVE_TIMEOUT_S = 60.0
_RELAY_PERIOD_S = 0.2
_FLUSH_ON_STOP_S = 3.0
_CONNECT_WAIT_S = 5.0
_ACK_WAIT_S = 0.5
_MAX_JITTER_S = 1.0
_CHECK_FLOOR_S = 0.5  # the sortie clock never spins faster than this (a deadline that coverage keeps moving)
_CHECK_RETRY_S = 1.0  # after a failed check (the database)
HEARTBEAT_S = 10.0  # how often the writer tells readers the daemon runs (ingest feeds, the page)
_WAL_CHECK_S = 30.0  # how often the writer checkpoints the WAL (store.py WAL_LIMIT_BYTES)
# A writer job running longer than this is stuck: twice the longest a poll waits for its save. systemd's
# watchdog (deploy/ingest.service) then gets no more pings.
_WRITER_STUCK_S = 2 * 60.0
_STOP_POLL_S = 0.5  # how often the main thread looks up from waiting for a stop


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
        self.on_change: Callable[[], None] = lambda: None  # the sortie clock's wake-up
        self._queue: queue.Queue[tuple[Callable[[Store], Any], Future[Any]] | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._failing_since: float | None = None  # monotonic start of a failing-writes episode
        self._failed_writes = 0
        self._next_checkpoint = time.monotonic() + _WAL_CHECK_S
        self._next_beat = time.monotonic()
        self._busy_since: float | None = None  # monotonic start of the job running now (the watchdog reads it)
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}"

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
            store = open_configured(self.app.settings.database)
            self._seed(store)
        except BaseException as exc:  # handed to open(), which re-raises it in the main thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (item := self._get()) is not None:
                if item is _CHECKPOINT:
                    self._checkpoint(store)
                    continue
                if item is _HEARTBEAT:
                    self._beat(store)
                    continue
                fn, future = item
                if future.set_running_or_notify_cancel():
                    commits = store.commits
                    try:
                        result = fn(store)
                    except StoreError as exc:
                        self._write_failed(exc)
                        future.set_exception(exc)
                    except Exception as exc:
                        future.set_exception(exc)
                    else:
                        if store.commits > commits:  # a job that wrote nothing proves nothing about the disk
                            self._write_worked()
                        future.set_result(result)
        finally:
            self._beat(store, stopped=True)
            store.close()

    def stuck_s(self) -> float:
        """How long the job running now has run (0 while the writer waits for work)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def _get(self) -> Any:
        """The next job, or the writer's own when one is due: a heartbeat, a checkpoint."""
        self._busy_since = None
        item = self._next()
        self._busy_since = time.monotonic()
        return item

    def _next(self) -> Any:
        now = time.monotonic()
        wait_s = min(self._next_checkpoint, self._next_beat) - now
        if wait_s > 0:
            try:
                return self._queue.get(timeout=wait_s)
            except queue.Empty:
                now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_S
            return _HEARTBEAT
        self._next_checkpoint = now + _WAL_CHECK_S
        return _CHECKPOINT

    def _beat(self, store: Store, stopped: bool = False) -> None:
        """Tell readers (`ingest feeds`, the page) that this daemon runs, or has stopped cleanly."""
        try:
            store.heartbeat(self.daemon_id, socket.gethostname(), os.getpid(), __version__, self.clock(), stopped)
        except StoreError as exc:
            self._write_failed(exc)

    def _checkpoint(self, store: Store) -> None:
        try:
            before, after = store.checkpoint()
        except StoreError as exc:
            self._write_failed(exc)
            return
        if after < before:
            log.info("database: write-ahead log truncated from %.1f MB", before / 1e6)

    def _write_failed(self, exc: StoreError) -> None:
        """One line per episode of failing writes (a full disk): not one per poll."""
        self._failed_writes += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error(
                "database writes failing: %s; polls are not stored and do not count as coverage", exc,
                extra={"event": "database_failing", "reason": str(exc)},
            )  # fmt: skip

    def _write_worked(self) -> None:
        if self._failing_since is not None:
            log.info(
                "database writes work again after %d failed writes in %.0f s",
                self._failed_writes, time.monotonic() - self._failing_since,
                extra={"event": "database_recovered", "failures": self._failed_writes},
            )  # fmt: skip
            self._failing_since = None
            self._failed_writes = 0

    def _seed(self, store: Store) -> None:
        settings = self.app.settings
        store.sync_watchlist(self.app.watchlist)
        self.tracker = tracker = Tracker(
            settings, store, on_alerts=lambda: self.on_alerts(), watchlist=self.app.watchlist
        )
        tracker.on_change = lambda: self.on_change()
        removed = store.demo_removed()
        for path in settings.replay.on_start:
            stored = responses = synthetic = 0
            for outcome in replay_file(path, settings.replay.feed, self.app.selector, self.clock):
                synthetic += outcome.synthetic
                if outcome.synthetic and removed:
                    continue  # `ingest demo remove` ran: the demo stays out
                # Replayed data runs on its own clock: the recording's time, not ours.
                stored += tracker.save_poll(store, outcome, outcome.record.started_at, record_poll=False)
                tracker.check(store, outcome.record.started_at)
                responses += 1
            if synthetic and removed:
                log.info("not replaying %s: its synthetic demo data was removed (ingest demo remove)", path)
            elif synthetic:
                log.info("replayed %s: %d responses, %d new sightings (SYNTHETIC demo data, never alerted; "
                         "`ingest demo remove` deletes it)", path, responses, stored)  # fmt: skip
            else:
                log.info("replayed %s: %d responses, %d new sightings", path, responses, stored)

    def save(self, outcome: PollOutcome) -> Future[int]:
        """Store a poll's outcome, with its sortie changes and alerts, in the writer thread."""

        def save(store: Store) -> int:
            assert self.tracker is not None
            return self.tracker.save_poll(store, outcome, self.clock())

        return self.submit(save)

    def check_sorties(self) -> Future[datetime | None]:
        """End the sorties whose time has come; returns the next deadline (None: no open sortie)."""

        def check(store: Store) -> datetime | None:
            assert self.tracker is not None
            now = self.clock()
            self.tracker.check(store, now)
            return self.tracker.next_deadline(now)

        return self.submit(check)


_CHECKPOINT = object()  # the writer's own jobs: checkpoint the WAL, write the heartbeat
_HEARTBEAT = object()


class SortieClock(threading.Thread):
    """Ends sorties on time: checks at the earliest deadline the tracker gives, at the latest every
    `max_wait_s`, and at once when sorties changed. Its own thread, so slow polls never delay an end."""

    def __init__(self, writer: Writer, clock: Clock, max_wait_s: float) -> None:
        super().__init__(name="ingest-sorties", daemon=True)
        self.writer = writer
        self.clock = clock
        self.max_wait_s = max_wait_s
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.join()

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the check: a change during it is not lost
            try:
                deadline = self.writer.check_sorties().result(timeout=_SAVE_TIMEOUT_S)
            except StoreError:
                wait_s = _CHECK_RETRY_S  # the writer logged it once for the episode
            except Exception:
                log.exception("sortie check failed; retrying")
                wait_s = _CHECK_RETRY_S
            else:
                wait_s = self.max_wait_s
                if deadline is not None:
                    wait_s = min(wait_s, (deadline - self.clock()).total_seconds())
            self._wake.wait(max(_CHECK_FLOOR_S, wait_s))


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
        failing = False
        while True:
            self._wake.clear()  # before the pump: a wake-up during it is not lost
            try:
                published = self.relay.pump()
            except StoreError as exc:  # the outbox cannot be read or written: once per episode
                if not failing:
                    log.error("alert relay: %s; alerts wait in the outbox", exc)
                failing, published = True, 0
            except Exception:
                log.exception("alert relay failed; retrying")
                published = 0
            else:
                if failing:
                    log.warning("alert relay: the outbox works again")
                failing = False
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
    try:
        stored = writer.save(outcome).result(timeout=_SAVE_TIMEOUT_S)
    except StoreError:
        return  # the writer logs failing writes once per episode
    r = outcome.record
    # DEBUG: a line per poll is no state change (a feed's failure, recovery and each sortie are logged).
    log.debug("feed %s: %d aircraft, %d watched, %d in area, %d new", r.feed, r.aircraft, r.matched, r.kept, stored)


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed; its next tick runs as planned", event.job_id, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:  # a tick that came late (a busy machine): its next one runs
        log.debug("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    else:  # a poll slower than its interval (a slow feed): its own failure, if any, is what gets reported
        log.debug("job %s still running at its next tick; that tick is skipped", event.job_id)


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


def _final_check(writer: Writer) -> None:
    """After the last poll: end what is due by now, so that its alert goes out before we exit; nothing that
    is not due (our own stop is no silence of the aircraft)."""
    try:
        writer.check_sorties().result(timeout=_SAVE_TIMEOUT_S)
    except StoreError:
        pass  # logged by the writer
    except Exception:
        log.exception("the last sortie check failed")


def _liveness(writer: Writer, scheduler: BackgroundScheduler, sortie_clock: SortieClock) -> Callable[[], str | None]:
    """What systemd's watchdog asks before each ping: None while the daemon's threads work, else what does not."""

    def check() -> str | None:
        if not writer.is_alive():
            return "the database writer thread has died"
        if (stuck_s := writer.stuck_s()) > _WRITER_STUCK_S:
            return f"the database writer has been stuck in one job for {stuck_s:.0f} s"
        thread = getattr(scheduler, "_thread", None)  # BackgroundScheduler's loop (APScheduler 3.x)
        if not scheduler.running or (thread is not None and not thread.is_alive()):
            return "the poll scheduler has stopped"
        if not sortie_clock.is_alive():
            return "the sortie clock thread has died"
        return None

    return check


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
    sortie_clock = SortieClock(writer, clock, app.settings.sorties.check_interval_s)
    writer.on_change = sortie_clock.wake
    sortie_clock.start()  # its first check decides at once the sorties whose time ran out while we were down
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    log.info(
        "ingest running: %d feeds (%s), %d watched aircraft, area %s, database %s",
        len(app.feeds), ", ".join(f.name for f in app.feeds) or "none", len(app.watchlist),
        app.area.name, app.settings.database.where(), extra={"event": "daemon_started", "daemon": writer.daemon_id},
    )  # fmt: skip
    watchdog = systemd.start(_liveness(writer, scheduler, sortie_clock))  # READY=1; WATCHDOG=1 while alive
    try:
        # A timed wait: the kernel may hand SIGTERM to any thread, and Python runs the handler (which sets
        # `stop`) only when the main thread wakes; an untimed wait then slept through it (1 stop in ~5 of
        # scripts/faults.py's daemon-stopped runs hung until killed).
        while not stop.wait(_STOP_POLL_S):
            pass
        systemd.stopping(watchdog)
        log.info("stopping: finishing running polls", extra={"event": "daemon_stopping"})
        for fetcher in fetchers:
            fetcher.abort()  # a feed that drips bytes would otherwise hold the stop until its deadline
        scheduler.shutdown(wait=True)
    finally:
        sortie_clock.stop()
        _final_check(writer)
        if relay is not None and publisher is not None:
            relay.stop(_FLUSH_ON_STOP_S)
            publisher.stop()
        for stream in streams:
            stream.stop()
        writer.close()
        for fetcher in fetchers:
            fetcher.close()
    log.info("stopped", extra={"event": "daemon_stopped", "daemon": writer.daemon_id})
    return 0
