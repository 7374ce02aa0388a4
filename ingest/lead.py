"""Who detects sorties: this process alone (`Solo`), or the leader among the daemons that share a PostgreSQL
database (`Shared`). The writer thread (scheduler.py) and the one-shot commands (`poll`, `replay`) store
polls and check sorties through one of the two, and never need to know which.

    Solo (SQLite):     poll ─► Tracker.save_poll: sightings + sortie changes + alerts, one transaction
    Shared (several daemons, one PostgreSQL database):
        every daemon:  poll ─► sightings + feed_polls row + stream entry, one transaction   (stream.py)
        the leader:    stream entries, in commit order ─► Tracker.follow: sortie changes + alerts + its
                       place in the stream, one fenced transaction; sortie checks; the alert relay

The leader is whoever holds a PostgreSQL session advisory lock (store/postgres.py). The others try to take
it every LEAD_TRY_S. A leader killed with `kill -9` loses the lock when its connection closes (a vanished
machine: within ~11 s, TCP keepalives); the next one reads on from the place the last one saved, so no poll
is tracked twice or skipped, and a former leader that does not know yet that it lost cannot save anything
(the `leader` row fences it). Alerts are queued in the outbox with the changes that raised them, and only
the leader relays them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from ingest.config import Settings
from ingest.errors import StoreError
from ingest.pipeline import PollOutcome
from ingest.store import Store
from ingest.store.base import NotLeader, SharedStore, StreamRow
from ingest.stream import decode, encode
from ingest.tracker import Tracker, feed_covers, freshest, recording_cover
from ingest.watchlist import Watchlist

log = logging.getLogger(__name__)

LEAD_TRY_S = 2.0  # how often a daemon that does not lead tries to take the leadership
FOLLOW_EVERY_S = 1.0  # how often the leader looks for other daemons' polls (its own wake it at once)
_BATCH = 500  # stream entries read at a time
_STREAM_KEEP = timedelta(hours=24)  # entries the leader has read are deleted after this long
_PRUNE_EVERY_S = 600.0

MakeTracker = Callable[[Store, dict[str, tuple[frozenset[str], float]]], Tracker]


class Solo:
    """This process detects sorties as it stores its polls (a SQLite database, or PostgreSQL used alone)."""

    shared = False

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.leading = True

    def save(self, store: Store, outcome: PollOutcome, now: datetime, record_poll: bool = True) -> int:
        return self.tracker.save_poll(store, outcome, now, record_poll=record_poll)

    def save_replayed(self, store: Store, outcome: PollOutcome) -> int:
        """A recorded response: it runs on its own clock, sorties checked at its time."""
        at = outcome.record.started_at
        stored = self.tracker.save_poll(store, outcome, at, record_poll=False)
        self.tracker.check(store, at)
        return stored

    def check(self, store: Store, now: datetime, *, end: bool = True) -> datetime | None:
        """End the sorties due at `now` (not with end=False); returns the next deadline."""
        if not end:
            return None
        self.tracker.check(store, now)
        return self.tracker.next_deadline(now)

    def close(self, store: Store) -> None:
        """Nothing to give up."""


class Shared:
    """One of the daemons (or one-shot commands) that share a PostgreSQL database: stores its polls with
    their stream entries, and detects sorties for everyone while it leads."""

    shared = True

    def __init__(self, settings: Settings, daemon: str, make_tracker: MakeTracker) -> None:
        self.daemon = daemon
        self.make_tracker = make_tracker
        self.tracker: Tracker | None = None  # while we lead
        self._covers = feed_covers(settings)
        self._latest: dict[str, datetime] = {}
        self._next_try = 0.0
        self._next_prune = 0.0
        self._follower_said = False
        self.quiet_replays = False  # replayed responses alert nobody (`ingest replay` without --alerts)

    @property
    def leading(self) -> bool:
        return self.tracker is not None

    def save_replayed(self, store: Store, outcome: PollOutcome) -> int:
        """A recorded response, as an entry the leader checks at its own time."""
        return self.save(store, outcome, outcome.record.started_at, record_poll=False)

    def save(self, store: Store, outcome: PollOutcome, now: datetime, record_poll: bool = True) -> int:
        """Store a poll with its stream entry; the leader tracks it. A replayed response (record_poll=False)
        is an entry checked at its own time."""
        sightings, latest = freshest(outcome.sightings, self._latest)
        r = outcome.record
        cover = self._covers.get(r.feed, recording_cover())
        body = encode(
            r, sightings, outcome.reports, now=now, ok=outcome.failure is None, replay=not record_poll,
            synthetic=outcome.synthetic, quiet=self.quiet_replays and not record_poll,
        )  # fmt: skip
        row = StreamRow(self.daemon, r.feed, ",".join(sorted(cover.scopes)), cover.bound_s, body)
        stored = store.save_poll(
            r, sightings, record_poll=record_poll, health=outcome.health, synthetic=outcome.synthetic, stream=row
        )
        self._latest.update(latest)
        return stored

    def check(self, store: Store, now: datetime, *, end: bool = True) -> datetime | None:
        """Lead when we can: track what the stream holds past our place, then end the sorties due at `now`
        (not with end=False: only follow). Returns when to look again."""
        shared = cast(SharedStore, store)
        if self.tracker is None and not self._take(shared, now):
            return None
        tracker = self.tracker
        assert tracker is not None
        try:
            if not shared.leading():
                raise NotLeader(self.daemon)
            self._follow(shared, tracker)
            if end:
                tracker.check(store, now)
                self._prune(shared, tracker, now)
        except NotLeader:
            log.warning("no longer the leader (our database session ended, or another daemon took over); trying again")
            self._step_down(shared)
            return None
        except StoreError:
            self.tracker = None  # rebuilt from the database at the next step; the lock stays ours
            raise
        deadline = tracker.next_deadline(now)
        soon = now + timedelta(seconds=FOLLOW_EVERY_S)
        return soon if deadline is None else min(deadline, soon)

    def _take(self, store: SharedStore, now: datetime) -> bool:
        if time.monotonic() < self._next_try:
            return False
        self._next_try = time.monotonic() + LEAD_TRY_S
        position = store.try_lead(self.daemon, now)
        if position is None:
            if not self._follower_said:
                held = store.leader()
                log.info("not the leader (%s leads): storing polls for it", held[0] if held else "another daemon")
                self._follower_said = True
            return False
        learnt = {feed: (frozenset(filter(None, sc.split(","))), b) for feed, (sc, b) in store.stream_covers().items()}
        tracker = self.make_tracker(store, learnt)
        tracker.stream = (self.daemon, position)
        self.tracker = tracker
        self._follower_said = False
        log.info("leading: detecting sorties and relaying alerts for every daemon on %s (from entry %d)",
                 store.describe(), position)  # fmt: skip
        return True

    def _follow(self, store: SharedStore, tracker: Tracker) -> None:
        assert tracker.stream is not None
        while True:
            rows = store.stream_after(tracker.stream[1], _BATCH)
            for entry_id, daemon, scopes, bound_s, body in rows:
                try:
                    entry = decode(entry_id, daemon, scopes, bound_s, body)
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    log.error("stream entry %d from %s cannot be read (%s); skipped", entry_id, daemon, exc)
                    tracker.skip(store, self.daemon, entry_id)
                    continue
                tracker.follow(store, entry, self.daemon)
            if len(rows) < _BATCH:
                return

    def _prune(self, store: SharedStore, tracker: Tracker, now: datetime) -> None:
        if time.monotonic() < self._next_prune or tracker.stream is None:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY_S
        deleted = store.prune_stream(tracker.stream[1], now - _STREAM_KEEP)
        if deleted:
            log.debug("poll stream: %d entries read more than a day ago deleted", deleted)

    def _step_down(self, store: SharedStore) -> None:
        self.tracker = None
        store.resign()
        self._next_try = time.monotonic() + LEAD_TRY_S

    def close(self, store: Store) -> None:
        """Give the leadership up, so that another daemon takes over at once."""
        if self.tracker is not None:
            self.tracker = None
            log.info("leadership given up")
        cast(SharedStore, store).resign()


def daemon_id() -> str:
    """This process, as the database knows it (heartbeats, the leader, stream entries): host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def one_shot(settings: Settings, store: Store, watchlist: Watchlist, *, alerts: bool = True) -> Solo | Shared:
    """The sorter of a one-shot command (`poll`, `replay`): on a shared database it leads only when no
    daemon does, for as long as the command runs. Without `alerts` (a replay without --alerts) what it
    stores alerts nobody, whoever tracks it."""

    def make(st: Store, covers: dict[str, tuple[frozenset[str], float]]) -> Tracker:
        return Tracker(settings, st, watchlist=watchlist, covers=covers, alerts=alerts)

    found = sorter(settings, store, daemon_id(), make)
    if isinstance(found, Shared):
        found.quiet_replays = not alerts
    return found


def sorter(settings: Settings, store: Store, daemon: str, make_tracker: MakeTracker) -> Solo | Shared:
    """How this process detects sorties on `store`: alone (SQLite), or as one of the daemons that may share
    it (PostgreSQL: one daemon alone there is simply always the leader)."""
    if store.backend == "postgresql":
        return Shared(settings, daemon, make_tracker)
    return Solo(make_tracker(store, {}))
