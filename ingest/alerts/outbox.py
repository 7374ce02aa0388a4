"""Per-channel delivery state: what every channel kind shares (alerts/channels/ hold the kinds).

Events are written to the outbox in the same transaction as the sortie change that raised them, with one
delivery row for each channel that wants them (alerts/routing.py), so an event exists for a channel if and
only if its cause was stored. Each channel then works through its own rows, oldest first, on its own
thread (alerts/delivery.py): a channel that is down holds only its own queue.

- A delivery is marked done only once the service took it (an MQTT PUBACK, a 2xx answer, Apprise's
  success), in the database, never only in memory: after a crash or `kill -9` every unmarked row is sent
  again. So each channel may repeat an event in a short window (its module says which); never zero times,
  and every payload carries the stable `event_id` to de-duplicate on.
- A failure backs the channel off: `retry_min_s`, doubling up to `retry_max_s`, or exactly what the
  service's Retry-After asks (at most RETRY_AFTER_MAX_S). A refusal that retrying cannot fix (401, 403,
  404) parks the channel for `park_s`, with one log line; `ingest alerts test NAME` that succeeds un-parks
  it at once, also in a running daemon (which looks again every PARK_CHECK_S).
- Backing off and parking are noted in the database (`ingest alerts status` reads them, and a restarted
  daemon honours them). One log line when a channel starts failing, one when it works again.

The store is reached through `StoreAccess`: a callable that runs a function on the store where the store
lives (the daemon's writer thread; a lock in one-shot commands). The Protocol below is the part of the
store this package uses; the store satisfies it without being imported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from ingest.alerts.events import Event, decode
from ingest.config import AlertSettings
from ingest.metrics import NO_METRICS, Metrics
from ingest.models import ChannelState
from ingest.store.base import AlertStore
from ingest.timeutil import RETRY_AFTER_MAX_S

log = logging.getLogger("ingest.alerts")

T = TypeVar("T")
Clock = Callable[[], datetime]

PARK_CHECK_S = 30.0  # a parked channel looks this often whether `ingest alerts test` un-parked it
IDLE_S = 30.0  # a channel with nothing to do looks again this often (new events wake it at once)
PERMANENT = frozenset({401, 403, 404, 410})  # refusals that retrying cannot fix: the channel is parked


class StoreAccess(Protocol):
    """Runs `fn` on the store, where the store lives, and returns its result (or raises StoreError)."""

    def __call__(self, fn: Callable[[AlertStore], T], /) -> T: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a delivery did not happen: one line without secrets; when to try again; whether retrying helps."""

    reason: str
    retry_after_s: float | None = None
    permanent: bool = False  # a 401/403/404: park the channel


def state_of(access: StoreAccess, channel: str) -> ChannelState | None:
    return next((s for s in access(lambda store: store.channel_states()) if s.channel == channel), None)


class Channel:
    """One channel's delivery state and the rules every kind shares; a kind implements `pump()`.

    `pump()` runs on the channel's own thread (alerts/delivery.py) and returns how long it may sleep
    before it wants to run again; `wake` cuts the sleep short (new events, an MQTT acknowledgement)."""

    def __init__(self, settings: AlertSettings, access: StoreAccess, clock: Clock) -> None:
        self.settings = settings
        self.name = settings.name
        self.kind = settings.kind
        self.access = access
        self.clock = clock
        self.wake = threading.Event()
        self.fresh = True  # events may have been queued since the channel last read (poke() says so)
        self.blocked_until: datetime | None = None  # backing off, or parked, until then
        self.parked = False
        self.failures = 0
        self._failing_since: float | None = None
        self._next_park_check = 0.0
        self.delivered = 0  # by this process, for one-shot commands' summary
        self.metrics: Metrics = NO_METRICS  # delivered and failed per channel (Delivery sets the daemon's)
        self.last_marked = 0.0  # time.monotonic() of the latest mark (scripts/bench_alerts.py reads it)
        self.last_failure: Failure | None = None

    def poke(self) -> None:
        """New events were committed: look at once (any thread)."""
        self.fresh = True
        self.wake.set()

    # -- what a kind provides ---------------------------------------------------------------------

    def open(self) -> None:
        """Before the first pump, on the channel's thread: note the channel, honour a stored back-off."""
        self.access(lambda store: store.register_channel(self.name, self.kind))
        state = state_of(self.access, self.name)
        now = self.clock()
        if state is not None and state.parked_until is not None and state.parked_until > now:
            self.blocked_until, self.parked = state.parked_until, True
            log.warning(
                "alerts channel %s: parked until %s (%s)", self.name, _iso(state.parked_until), state.last_error
            )
        elif state is not None and state.next_try_at is not None and state.next_try_at > now:
            self.blocked_until = state.next_try_at
            self.failures = state.failures

    def pump(self) -> float:
        raise NotImplementedError

    def settled(self) -> bool:
        """Nothing in flight or delivered-but-unmarked, and nothing more to do now (stop may end the thread)."""
        return True

    def close(self) -> None:
        """After the last pump, on the channel's thread: mark what was delivered."""

    def abort(self) -> None:
        """From another thread: cut a delivery in progress (a stop whose time is up)."""

    # -- shared rules --------------------------------------------------------------------------------

    def wait_s(self) -> float:
        """0 when the channel may deliver now; else how long it is backing off or parked."""
        if self.blocked_until is None:
            return 0.0
        now = self.clock()
        if self.parked and time.monotonic() >= self._next_park_check:
            self._next_park_check = time.monotonic() + PARK_CHECK_S
            state = state_of(self.access, self.name)
            if state is not None and (state.parked_until is None or state.parked_until <= now):
                log.info("alerts channel %s: no longer parked; delivering again", self.name)
                self.blocked_until, self.parked = None, False
                return 0.0
        left = (self.blocked_until - now).total_seconds()
        if left <= 0:
            self.blocked_until = None
            return 0.0
        return min(left, PARK_CHECK_S) if self.parked else left

    def failed(self, failure: Failure) -> None:
        """Back off (or park) after a failed delivery; noted in the database, logged once per episode."""
        self.metrics.failed(self.name, 1)
        self.failures += 1
        self.last_failure = failure
        now = self.clock()
        s = self.settings
        parked_until = None
        if failure.permanent:
            delay = s.park_s
            parked_until = now + timedelta(seconds=delay)
            self.parked = True
            self._next_park_check = time.monotonic() + PARK_CHECK_S
            log.error(
                "alerts channel %s: parked until %s: %s; its events wait (fix it, then `ingest alerts test %s` "
                "resumes it)", self.name, _iso(parked_until), failure.reason, self.name,
            )  # fmt: skip
        else:
            delay = backoff_s(s, self.failures, failure.retry_after_s)
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning(
                    "alerts channel %s: %s; retrying in %.3g s, with backoff up to %.3g s (other channels go on)",
                    self.name, failure.reason, delay, max(delay, s.retry_max_s),
                )  # fmt: skip
            else:
                log.debug("alerts channel %s: %s; retrying in %.1f s", self.name, failure.reason, delay)
        self.blocked_until = now + timedelta(seconds=delay)
        try:
            self.access(
                lambda store: store.note_channel(
                    self.name,
                    self.kind,
                    now,
                    failure.reason,
                    None if failure.permanent else self.blocked_until,
                    parked_until,
                )
            )
        except Exception:  # the store's own failure is logged by the writer; the back-off holds
            log.debug("alerts channel %s: could not note its failure", self.name, exc_info=True)

    def succeeded(self) -> None:
        if self._failing_since is not None or self.parked:
            took = time.monotonic() - self._failing_since if self._failing_since is not None else 0.0
            log.info("alerts channel %s: delivering again after %d failed attempts in %.0f s", self.name,
                     self.failures, took)  # fmt: skip
        self._failing_since = None
        self.failures = 0
        self.parked = False
        self.last_failure = None


def backoff_s(s: AlertSettings, failures: int, retry_after_s: float | None) -> float:
    """How long to wait after the `failures`-th failure in a row: Retry-After when the service gave one,
    else retry_min_s doubling up to retry_max_s."""
    if retry_after_s is not None and retry_after_s >= 0:
        return min(max(retry_after_s, 0.1), RETRY_AFTER_MAX_S)
    return float(min(s.retry_max_s, s.retry_min_s * 2 ** min(failures - 1, 30)))


class SequentialChannel(Channel):
    """A channel that delivers one event at a time, in order (HTTP services): the next event waits until
    the one before it is delivered. Marks are written every `mark_every` deliveries or `mark_after_s`."""

    batch = 50  # events read from the outbox at a time
    mark_every = 1
    mark_after_s = 0.0

    def __init__(self, settings: AlertSettings, access: StoreAccess, clock: Clock) -> None:
        super().__init__(settings, access, clock)
        self.queue: deque[Event] = deque()
        self.done: list[int] = []  # delivered, not yet marked
        self._first_done = 0.0
        self.drained = False  # the last read found nothing more

    def send(self, event: Event) -> Failure | None:
        """Deliver one event; None when the service took it."""
        raise NotImplementedError

    def pump(self) -> float:
        wait = self.wait_s()
        if wait > 0:
            self.mark()
            return wait
        if not self.queue:
            self.read()
            if not self.queue:
                return IDLE_S
        event = self.queue[0]
        failure = self.send(event)
        if failure is None:
            self.queue.popleft()
            if not self.done:
                self._first_done = time.monotonic()
            self.done.append(event.outbox_id)
            self.delivered += 1
            self.metrics.delivered(self.name, 1)
            self.succeeded()
            if len(self.done) >= self.mark_every or time.monotonic() - self._first_done >= self.mark_after_s:
                self.mark()
            return 0.0
        self.mark()
        self.failed(failure)
        return self.wait_s()

    def read(self) -> None:
        """Mark what was delivered and read the next batch, in one round trip."""
        done = self.done
        # Read from the oldest waiting row: what was delivered is marked in the same call, so nothing is read
        # twice, and a row committed late (several writers) is never skipped.
        rows = self.access(lambda store: store.settle(self.name, done, self.clock(), read=self.batch))
        if done:
            self.last_marked = time.monotonic()
        self.done = []
        self.queue.extend(decode(r) for r in rows)
        self.drained = not rows

    def mark(self) -> None:
        if self.done:
            done, self.done = self.done, []
            try:
                self.access(lambda store: store.settle(self.name, done, self.clock()))
            except Exception:
                self.done = done + self.done  # kept: marked on a later try, never sent again by this process
                raise
            self.last_marked = time.monotonic()

    def settled(self) -> bool:
        return not self.done and (self.wait_s() > 0 or (not self.queue and self.drained))

    def close(self) -> None:
        self.mark()


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
