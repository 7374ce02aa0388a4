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
- Retention (retention.py) runs in the writer too, one short transaction at a time and only when no
  poll waits, so that deleting a year of old sightings never delays a poll.
- A failed database write (a full disk) is logged once per episode by the writer, and once when writes
  work again; the poll's data is not stored, and its time does not count as coverage.
- Under systemd (deploy/ingest.service) ingest/systemd.py says READY=1 once all this runs, pings the
  watchdog while `_liveness` finds the threads working, and says STOPPING=1 when a stop begins.
- `stop` (set by SIGTERM/SIGINT in the CLI) cuts any pacing wait short; `shutdown(wait=True)` lets the
  running polls finish, the writer stores what they returned, a last check ends what is due by then and
  the alert channels deliver it (for a few seconds; alerts/delivery.py) before the database is closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ingest import __version__, lead, systemd
from ingest.alerts.delivery import Delivery
from ingest.app import App, rewire
from ingest.config import Settings
from ingest.errors import StoreError
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.lead import Shared, Solo
from ingest.metrics import NO_METRICS, Metrics
from ingest.pipeline import Clock, FeedJob, PollOutcome, replay_file
from ingest.retention import PAUSE_S, ROUND_EVERY_S, Retention
from ingest.store import Store, open_configured
from ingest.tracker import Tracker
from ingest.watchlist import Watchlist
from ingest.watchlist_files import sources
from ingest.watchlist_reload import WatchlistWatcher

log = logging.getLogger(__name__)

T = TypeVar("T")
_SAVE_TIMEOUT_S = 60.0
_WRITER_BEHIND = 200  # jobs waiting for the writer past which a poll waits for its own save
_FLUSH_ON_STOP_S = 3.0
_MAX_JITTER_S = 1.0
_CHECK_FLOOR_S = 0.5  # the sortie clock never spins faster than this (a deadline that coverage keeps moving)
_CHECK_RETRY_S = 1.0  # after a failed check (the database)
_RETRY_MIN_S, _RETRY_MAX_S = 1.0, 15.0  # after a failed write, the database is left alone this long
# Polls kept in memory while database writes fail, counted in positions (a report or a sighting, some
# 0.5 KB each in memory): a day of the bundled watchlist's few dozen aircraft; past it the oldest go.
BACKLOG_MAX_POSITIONS = 200_000
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

    def __init__(self, app: App, clock: Clock, metrics: Metrics = NO_METRICS) -> None:
        super().__init__(name="ingest-writer", daemon=True)
        self.app = app
        self.clock = clock
        self.metrics = metrics
        self.watchlist = app.watchlist  # the one in use: the daemon reloads a changed list (watch_watchlist)
        self.sorter: Solo | Shared | None = None  # built in the writer thread, with the Store
        self.on_alerts: Callable[[], None] = lambda: None  # the relay's wake-up, once there is one
        self.on_change: Callable[[], None] = lambda: None  # the sortie clock's wake-up
        self._queue: queue.Queue[tuple[Callable[[Store], Any], Future[Any], Callable[[], object] | None] | None] = (
            queue.Queue()
        )
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._failing_since: float | None = None  # monotonic start of a failing-writes episode
        self._failed_writes = 0
        # Polls whose write failed (a server away, a full disk), kept in order to be written first when
        # writes work again; bounded by the positions they hold (BACKLOG_MAX_POSITIONS).
        self._backlog: deque[tuple[PollOutcome, datetime]] = deque()
        self._backlog_positions = 0
        self._backlog_dropped = 0
        self._backlog_written = 0
        self._retry_at = 0.0  # monotonic time before which the database is not tried again (it failed)
        self._retry_s = _RETRY_MIN_S
        self._next_checkpoint = time.monotonic() + _WAL_CHECK_S
        self._next_beat = time.monotonic()
        self.retention = Retention(app.settings.retention)
        self._next_prune = time.monotonic() if self.retention.enabled else float("inf")  # a round at start-up
        self._busy_since: float | None = None  # monotonic start of the job running now (the watchdog reads it)
        self.daemon_id = lead.daemon_id()

    def open(self) -> None:
        """Start the thread and wait until the database is open, migrated and seeded; re-raise failures."""
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[[Store], T], when_down: Callable[[], object] | None = None) -> Future[T]:
        """Run `fn` in the writer thread. While the database is known to be down (a failure less than a
        back-off ago) it is not tried: the future fails at once, after `when_down` (keep the poll)."""
        future: Future[T] = Future()
        self._queue.put((fn, future, when_down))
        return future

    def pending(self) -> int:
        """Jobs waiting for the writer."""
        return self._queue.qsize()

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
                    if not self._down():
                        self._beat(store)
                    continue
                if item is _PRUNE:
                    if not self._down():
                        self._prune(store)
                    continue
                fn, future, when_down = item
                if not future.set_running_or_notify_cancel():
                    continue
                if self._down():  # a server away would hold every job for the pool's timeout: fail at once
                    if when_down is not None:
                        when_down()
                    future.set_exception(StoreError("the database is unavailable; trying again shortly"))
                    continue
                commits = store.commits
                if self._backlog and not self._drain_kept(store):  # polls kept meanwhile go in before any job
                    if when_down is not None:
                        when_down()
                    future.set_exception(StoreError("the database is unavailable; trying again shortly"))
                    continue
                try:
                    result = fn(store)
                except StoreError as exc:
                    self._write_failed(exc)
                    future.set_exception(exc)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    self._retry_at = 0.0  # the database answered
                    if store.commits > commits:  # a job that wrote nothing proves nothing about the disk
                        self._write_worked()
                    future.set_result(result)
        finally:
            self._beat(store, stopped=True)
            if self.sorter is not None:
                self.sorter.close(store)  # another daemon takes the leadership at once
            store.close()

    def stuck_s(self) -> float:
        """How long the job running now has run (0 while the writer waits for work)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def _get(self) -> Any:
        """The next job, or the writer's own when one is due: a heartbeat, a checkpoint, a retention step
        (which gives way to any job waiting). Meanwhile the writer counts as idle (the watchdog's stuck_s)."""
        self._busy_since = None
        item = self._next()
        self._busy_since = time.monotonic()
        return item

    def _next(self) -> Any:
        while (wait_s := min(self._next_checkpoint, self._next_beat, self._next_prune) - time.monotonic()) > 0:
            try:
                return self._queue.get(timeout=wait_s)
            except queue.Empty:
                continue
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_S
            return _HEARTBEAT
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + _WAL_CHECK_S
            return _CHECKPOINT
        try:
            return self._queue.get_nowait()  # polls first: retention waits for a quiet moment
        except queue.Empty:
            return _PRUNE

    def _prune(self, store: Store) -> None:
        """One retention step (one short transaction); the next one soon while the round lasts."""
        try:
            more = self.retention.step(store, self.clock())
        except StoreError as exc:  # the round starts again later; polls are not concerned
            log.warning("retention: %s; trying again in %.0f min", exc, ROUND_EVERY_S / 60)
            self.retention = Retention(self.app.settings.retention)
            more = False
        self._next_prune = time.monotonic() + (PAUSE_S if more else ROUND_EVERY_S)

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

    def _down(self) -> bool:
        return time.monotonic() < self._retry_at

    def _write_failed(self, exc: StoreError) -> None:
        """One line per episode of failing writes (a full disk, a server away): not one per poll. Jobs are
        not tried again for a back-off (1 s, doubling up to _RETRY_MAX_S)."""
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, _RETRY_MAX_S)
        self._failed_writes += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error(
                "database writes failing: %s; polls are kept in memory (up to %d positions) and written when "
                "it works again; until then they do not count as coverage", exc, BACKLOG_MAX_POSITIONS,
                extra={"event": "database_failing", "reason": str(exc)},
            )  # fmt: skip

    def _write_worked(self) -> None:
        if self._failing_since is not None:
            kept = f"; {self._backlog_written} polls kept meanwhile written" if self._backlog_written else ""
            lost = f", {self._backlog_dropped} oldest dropped (memory bound)" if self._backlog_dropped else ""
            log.info(
                "database writes work again after %d failed writes in %.0f s%s%s",
                self._failed_writes, time.monotonic() - self._failing_since, kept, lost,
                extra={"event": "database_recovered", "failures": self._failed_writes},
            )  # fmt: skip
            self._failing_since = None
            self._failed_writes = 0
            self._backlog_written = self._backlog_dropped = 0
        self._retry_s = _RETRY_MIN_S

    def _save_outcome(self, store: Store, outcome: PollOutcome, now: datetime) -> int:
        """Write this poll (run() wrote the polls kept from a failing episode first); a failure keeps it, after
        them, for the next try."""
        assert self.sorter is not None
        try:
            return self.sorter.save(store, outcome, now)
        except StoreError:
            self._keep(outcome, now)
            raise

    def _write_kept(self, store: Store) -> None:
        """Write the polls kept from a failing episode, oldest first; a failure leaves the rest kept."""
        assert self.sorter is not None
        while self._backlog:
            kept, at = self._backlog[0]
            try:
                self.sorter.save(store, kept, at)
            except StoreError:
                raise
            except Exception:  # a poll that cannot be written at all must not hold the others back
                log.exception("a poll kept while the database failed could not be written; it is dropped")
                self._backlog_dropped += 1
            else:
                self._backlog_written += 1
            self._backlog.popleft()
            self._backlog_positions -= _positions(kept)

    def _drain_kept(self, store: Store) -> bool:
        """Write what was kept while writes failed, before the next job (whichever: a poll, the sortie
        clock); False (a new failure, counted) when that failed."""
        if not self._backlog:
            return True
        try:
            self._write_kept(store)
        except StoreError as exc:
            self._write_failed(exc)
            return False
        return True

    def _keep(self, outcome: PollOutcome, now: datetime) -> None:
        self._backlog.append((outcome, now))
        self._backlog_positions += _positions(outcome)
        while self._backlog_positions > BACKLOG_MAX_POSITIONS and len(self._backlog) > 1:
            old, _ = self._backlog.popleft()
            self._backlog_positions -= _positions(old)
            if not self._backlog_dropped:
                log.warning("database still failing: dropping the oldest polls kept in memory")
            self._backlog_dropped += 1

    def use_watchlist(self, watchlist: Watchlist) -> None:
        """The daemon reloaded its watchlist: the tracker (now, or when we next lead) counts its aircraft."""
        self.watchlist = watchlist
        tracker = self.sorter.tracker if self.sorter is not None else None
        if tracker is not None:
            tracker.use_watchlist(watchlist)

    def _seed(self, store: Store) -> None:
        settings = self.app.settings
        store.sync_watchlist(self.app.watchlist)

        def make_tracker(store: Store, covers: dict[str, tuple[frozenset[str], float]]) -> Tracker:
            tracker = Tracker(
                settings, store, on_alerts=lambda: self.on_alerts(), watchlist=self.watchlist, covers=covers,
                metrics=self.metrics,
            )  # fmt: skip
            tracker.on_change = lambda: self.on_change()
            return tracker

        self.sorter = sorter = lead.sorter(settings, store, self.daemon_id, make_tracker)
        removed = store.demo_removed()
        for path in settings.replay.on_start:
            stored = responses = synthetic = 0
            for outcome in replay_file(path, settings.replay.feed, self.app.selector, self.clock):
                synthetic += outcome.synthetic
                if outcome.synthetic and removed:
                    continue  # `ingest demo remove` ran: the demo stays out
                # Replayed data runs on its own clock: the recording's time, not ours.
                stored += sorter.save_replayed(store, outcome)
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
            assert self.sorter is not None
            stored = self._save_outcome(store, outcome, now)
            if self.sorter.shared:
                self.on_change()  # the leader (maybe us) tracks it from the stream: look at once
            return stored

        now = self.clock()
        return self.submit(save, when_down=lambda: self._keep(outcome, now))

    def check_sorties(self) -> Future[datetime | None]:
        """End the sorties whose time has come (as the leader, when several daemons share the database,
        first tracking every poll stored since); returns the next deadline (None: none)."""

        def check(store: Store) -> datetime | None:
            assert self.sorter is not None
            return self.sorter.check(store, self.clock())

        return self.submit(check)

    @property
    def leading(self) -> bool:
        """Whether this daemon detects sorties and relays alerts (always, alone on its database)."""
        return self.sorter is not None and self.sorter.leading


def _positions(outcome: PollOutcome) -> int:
    return len(outcome.reports) + len(outcome.sightings) + 1


_CHECKPOINT = object()  # the writer's own jobs: checkpoint the WAL, write the heartbeat, prune (retention.py)
_HEARTBEAT = object()
_PRUNE = object()


class SortieClock(threading.Thread):
    """Ends sorties on time: checks at the earliest deadline the tracker gives, at the latest every
    `max_wait_s`, and at once when sorties changed. Its own thread, so slow polls never delay an end."""

    def __init__(
        self, writer: Writer, clock: Clock, max_wait_s: float, on_leading: Callable[[bool], None] = lambda _: None
    ) -> None:
        super().__init__(name="ingest-sorties", daemon=True)
        self.writer = writer
        self.clock = clock
        self.max_wait_s = max_wait_s
        self.on_leading = on_leading  # told when this daemon starts or stops leading (in this thread)
        self._leading = False
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
            if self.writer.leading != self._leading:
                self._leading = not self._leading
                self.on_leading(self._leading)
            self._wake.wait(max(_CHECK_FLOOR_S, wait_s))


def writer_access(writer: Writer) -> Callable[[Callable[[Store], T]], T]:
    """The alert channels' way to the store (alerts/outbox.py StoreAccess): run on the writer thread."""

    def access(fn: Callable[[Store], T]) -> T:
        return writer.submit(fn).result(_SAVE_TIMEOUT_S)

    return access


def _tick(job: FeedJob, writer: Writer) -> None:
    """Poll, and hand the outcome to the writer without waiting for it: a database that stalls (a server
    away holds a write for the pool's timeout) never stops the feeds, whose polls are kept meanwhile. Only a
    writer far behind makes the poll wait (back-pressure)."""
    outcome = job.run()
    if outcome is None:
        return
    future = writer.save(outcome)
    future.add_done_callback(lambda f: _saved(job, outcome, f))
    if writer.pending() > _WRITER_BEHIND:
        with contextlib.suppress(Exception):
            future.result(timeout=_SAVE_TIMEOUT_S)


def _saved(job: FeedJob, outcome: PollOutcome, future: Future[int]) -> None:
    if future.exception() is not None:
        return  # the writer logs failing writes once per episode
    stored = future.result()
    r = outcome.record
    job.metrics.stored(r.feed, stored)
    # DEBUG: a line per poll is no state change (a feed's failure, recovery and each sortie are logged).
    log.debug("feed %s: %d aircraft, %d watched, %d in area, %d new", r.feed, r.aircraft, r.matched, r.kept, stored)


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed; its next tick runs as planned", event.job_id, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:  # a tick that came late (a busy machine): its next one runs
        log.debug("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    else:  # a poll slower than its interval (a slow feed): its own failure, if any, is what gets reported
        log.debug("job %s still running at its next tick; that tick is skipped", event.job_id)


class Alerts:
    """The alert channels' delivery (alerts/delivery.py), run while this daemon leads: always, alone on its
    database; with several daemons on one, only the leader delivers, so each event goes out from one."""

    def __init__(self, settings: Settings, writer: Writer, clock: Clock, metrics: Metrics = NO_METRICS) -> None:
        self.settings = settings
        self.writer = writer
        self.clock = clock
        self.metrics = metrics
        self.delivery: Delivery | None = None

    def lead(self, leading: bool) -> None:
        if leading:
            self.start()
        else:
            self.stop(0.0)  # the new leader delivers what is pending; we stop at once

    def start(self) -> None:
        if self.delivery is not None:
            return
        self.delivery = Delivery(self.settings, writer_access(self.writer), self.clock, metrics=self.metrics)
        self.writer.on_alerts = self.delivery.wake
        self.delivery.start()

    def stop(self, flush_s: float) -> None:
        """Deliver what is pending for up to `flush_s`, then let every channel go."""
        if self.delivery is None:
            return
        self.writer.on_alerts = lambda: None
        self.delivery.stop(flush_s)
        self.delivery = None


def _final_check(writer: Writer) -> None:
    """After the last poll: end what is due by now, so that its alert goes out before we exit; nothing that
    is not due (our own stop is no silence of the aircraft)."""
    try:
        writer.check_sorties().result(timeout=_SAVE_TIMEOUT_S)
    except StoreError:
        pass  # logged by the writer
    except Exception:
        log.exception("the last sortie check failed")


def watch_watchlist(app: App, writer: Writer, jobs: Sequence[FeedJob]) -> WatchlistWatcher:
    """Start the thread that notices a changed watchlist (watchlist_reload.py) and applies it: the store
    learns the new aircraft and the tracker which are watched (in the writer thread), then each feed job gets
    the feed rebuilt for the new list (a stream keeps its connection and filters anew) and the new selector,
    used from its next tick. With `[watchlist] check_interval_s` 0 it looks only when asked (SIGHUP)."""
    period_s = app.settings.watchlist.check_interval_s
    where = sources(app.settings)
    current = [app]

    def apply(watchlist: Watchlist) -> None:
        rewired = rewire(current[0], watchlist)  # ConfigError: an interval too short for the new list's requests

        def sync(store: Store) -> None:
            store.sync_watchlist(watchlist)
            writer.use_watchlist(watchlist)

        writer.submit(sync).result(timeout=_SAVE_TIMEOUT_S)
        feeds = {feed.name: feed for feed in rewired.feeds}
        for job in jobs:
            if isinstance(job.feed, StreamFeed):
                getattr(job.feed, "use_watchlist", lambda _: None)(watchlist)
            elif job.feed.name in feeds:
                job.feed = feeds[job.feed.name]
            job.selector = rewired.selector
        current[0] = rewired

    watcher = WatchlistWatcher(where, period_s, app.watchlist, apply)
    watcher.start()
    return watcher


def _reload_on_sighup(watcher: WatchlistWatcher) -> Any:
    """SIGHUP (`systemctl reload`) asks the watcher to read the watchlist now; returns the handler it
    replaced (None where signals cannot be set: not the main thread, as when tests run the daemon in one)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_hup(signum: int, frame: object) -> None:
        watcher.ask()  # the watcher's thread reads and logs (no logging from a signal handler)

    return signal.signal(signal.SIGHUP, on_hup)


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


def run_daemon(app: App, stop: threading.Event, clock: Clock = utc_now, metrics: Metrics = NO_METRICS) -> int:
    """Poll every feed on its interval until `stop` is set, counting in `metrics`; returns the exit code."""
    writer = Writer(app, clock, metrics)
    writer.open()
    metrics.database_ready()
    alerts = Alerts(app.settings, writer, clock, metrics)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=max(1, len(app.feeds)))},
    )
    fetchers = []
    # Each feed's failing episode goes on across a restart: failures in a row count the whole episode.
    recorded = writer.submit(lambda store: store.feed_health(clock())).result(timeout=_SAVE_TIMEOUT_S)
    jobs: list[FeedJob] = []
    streams = [feed for feed in app.feeds if isinstance(feed, StreamFeed)]
    for stream in streams:
        stream.start()  # reads in its own thread; each tick takes what arrived
    for feed in app.feeds:
        fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
        fetchers.append(fetcher)
        job = FeedJob(feed, fetcher, app.selector, clock, stop.wait, metrics=metrics)
        job.resume(recorded.get(feed.name, {}))
        jobs.append(job)
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
    max_wait_s = app.settings.sorties.check_interval_s
    if writer.sorter is not None and writer.sorter.shared:
        max_wait_s = min(max_wait_s, lead.FOLLOW_EVERY_S)  # follow the other daemons' polls; try to lead
    sortie_clock = SortieClock(writer, clock, max_wait_s, on_leading=alerts.lead)
    writer.on_change = sortie_clock.wake
    sortie_clock.start()  # its first check decides at once the sorties whose time ran out while we were down
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    watcher = watch_watchlist(app, writer, jobs)
    on_hup = _reload_on_sighup(watcher)
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
        if on_hup is not None:
            signal.signal(signal.SIGHUP, on_hup)
        watcher.stop()
        sortie_clock.stop()
        _final_check(writer)
        alerts.stop(_FLUSH_ON_STOP_S)
        for stream in streams:
            stream.stop()
        writer.close()
        for fetcher in fetchers:
            fetcher.close()
    log.info("stopped", extra={"event": "daemon_stopped", "daemon": writer.daemon_id})
    return 0
