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
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ingest.app import App
from ingest.feeds.transport import Fetcher
from ingest.pipeline import Clock, FeedJob, PollOutcome, replay_file
from ingest.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
_SAVE_TIMEOUT_S = 60.0
_MAX_JITTER_S = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Writer(threading.Thread):
    """The only thread that touches the database while the daemon runs."""

    def __init__(self, app: App, clock: Clock) -> None:
        super().__init__(name="ingest-writer", daemon=True)
        self.app = app
        self.clock = clock
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
        for path in settings.replay.on_start:
            stored = responses = 0
            for outcome in replay_file(path, settings.replay.feed, self.app.selector, self.clock):
                stored += store.save_poll(outcome.record, outcome.sightings, record_poll=False)
                responses += 1
            log.info("replayed %s: %d responses, %d new sightings", path, responses, stored)


def _tick(job: FeedJob, writer: Writer) -> None:
    outcome = job.run()
    if outcome is None:
        return
    stored = writer.submit(_saver(outcome)).result(timeout=_SAVE_TIMEOUT_S)
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


def _saver(outcome: PollOutcome) -> Callable[[Store], int]:
    return lambda store: store.save_poll(outcome.record, outcome.sightings)


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed; its next tick runs as planned", event.job_id, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    else:
        log.warning("job %s still running at its next tick; that tick is skipped", event.job_id)


def run_daemon(app: App, stop: threading.Event, clock: Clock = utc_now) -> int:
    """Poll every feed on its interval until `stop` is set; returns the exit code."""
    writer = Writer(app, clock)
    writer.open()
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=max(1, len(app.feeds)))},
    )
    fetchers = []
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
        writer.close()
        for fetcher in fetchers:
            fetcher.close()
    log.info("stopped")
    return 0
