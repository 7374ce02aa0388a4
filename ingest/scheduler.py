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
- `stop` (set by SIGTERM/SIGINT in the CLI) cuts any pacing wait short; `shutdown(wait=True)` lets the
  running polls finish, the writer stores what they returned, a last check ends what is due by then and
  the alert channels deliver it (for a few seconds; alerts/delivery.py) before the database is closed.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ingest import __version__
from ingest.alerts.delivery import Delivery
from ingest.app import App
from ingest.errors import StoreError
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.pipeline import Clock, FeedJob, PollOutcome, replay_file
from ingest.store import Store, open_configured
from ingest.tracker import Tracker

log = logging.getLogger(__name__)

T = TypeVar("T")
_SAVE_TIMEOUT_S = 60.0
_FLUSH_ON_STOP_S = 3.0
_SIGNAL_POLL_S = 0.5
_MAX_JITTER_S = 1.0
_CHECK_FLOOR_S = 0.5  # the sortie clock never spins faster than this (a deadline that coverage keeps moving)
_CHECK_RETRY_S = 1.0  # after a failed check (the database)
HEARTBEAT_S = 10.0  # how often the writer tells readers the daemon runs (ingest feeds, the page)
_WAL_CHECK_S = 30.0  # how often the writer checkpoints the WAL (store.py WAL_LIMIT_BYTES)


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

    def _get(self) -> Any:
        """The next job, or the writer's own when one is due: a heartbeat, a checkpoint."""
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
            log.error("database writes failing: %s; polls are not stored and do not count as coverage", exc)

    def _write_worked(self) -> None:
        if self._failing_since is not None:
            log.info(
                "database writes work again after %d failed writes in %.0f s",
                self._failed_writes, time.monotonic() - self._failing_since,
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


def writer_access(writer: Writer) -> Callable[[Callable[[Store], T]], T]:
    """The alert channels' way to the store (alerts/outbox.py StoreAccess): run on the writer thread."""

    def access(fn: Callable[[Store], T]) -> T:
        return writer.submit(fn).result(_SAVE_TIMEOUT_S)

    return access


def _tick(job: FeedJob, writer: Writer) -> None:
    outcome = job.run()
    if outcome is None:
        return
    try:
        stored = writer.save(outcome).result(timeout=_SAVE_TIMEOUT_S)
    except StoreError:
        return  # the writer logs failing writes once per episode
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
    elif event.code == EVENT_JOB_MISSED:  # a tick that came late (a busy machine): its next one runs
        log.debug("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    else:  # a poll slower than its interval (a slow feed): its own failure, if any, is what gets reported
        log.debug("job %s still running at its next tick; that tick is skipped", event.job_id)


def _final_check(writer: Writer) -> None:
    """After the last poll: end what is due by now, so that its alert goes out before we exit; nothing that
    is not due (our own stop is no silence of the aircraft)."""
    try:
        writer.check_sorties().result(timeout=_SAVE_TIMEOUT_S)
    except StoreError:
        pass  # logged by the writer
    except Exception:
        log.exception("the last sortie check failed")


def run_daemon(app: App, stop: threading.Event, clock: Clock = utc_now) -> int:
    """Poll every feed on its interval until `stop` is set; returns the exit code."""
    writer = Writer(app, clock)
    writer.open()
    delivery = Delivery(app.settings, writer_access(writer), clock)
    writer.on_alerts = delivery.wake
    delivery.start()
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
        app.area.name, app.settings.database.where(),
    )  # fmt: skip
    try:
        # With a timeout: a SIGTERM that the kernel hands to another thread runs its Python handler only when
        # the main thread wakes up, and a wait without one may never (faultkit's daemon-stopped saw it hang).
        while not stop.wait(_SIGNAL_POLL_S):
            pass
        log.info("stopping: finishing running polls")
        for fetcher in fetchers:
            fetcher.abort()  # a feed that drips bytes would otherwise hold the stop until its deadline
        scheduler.shutdown(wait=True)
    finally:
        sortie_clock.stop()
        _final_check(writer)
        delivery.stop(_FLUSH_ON_STOP_S)
        for stream in streams:
            stream.stop()
        writer.close()
        for fetcher in fetchers:
            fetcher.close()
    log.info("stopped")
    return 0
