"""Retention: keeps the database bounded while the daemon runs for months ([retention] in the config).

Sightings older than `sightings_days`, alerts delivered more than `outbox_days` ago and the record of polls
older than `polls_days` (feed_polls: what `ingest feeds`, the metrics and covered time read, never further
back than a few hours) are deleted; sorties, their happenings (orbits, emergencies) and undelivered alerts
are kept, whatever their age.

The work is cut into short steps, each one small transaction, so that the daemon's writer thread
(scheduler.py) runs polls between two of them and a year of backlog never holds up a poll:

1. PostgreSQL: drop the months of sightings that lie wholly before the cut (one step: a DROP TABLE of a
   partition costs the same whatever it holds);
2. delete the rest (the month straddling the cut; on SQLite, everything) `batch` rows a step, walking the
   aircraft in hex order with primary-key lookups (store/sql.py `prune_sightings`);
3. delete delivered alerts, `batch` a step;
4. delete old polls, `batch` a step, walking the feeds in name order (store/sql.py `prune_polls`).

A round runs at start-up and then every `ROUND_EVERY_S`; each step takes `now`, nothing reads a clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.config import RetentionSettings
from ingest.store import Store
from ingest.timeutil import iso_z

log = logging.getLogger(__name__)

BATCH_ROWS = 2_000  # rows a step: milliseconds of work, well inside a poll's interval
MAX_HEXES = 500  # aircraft looked at in one step: a bound on a step's work when few rows are old
ROUND_EVERY_S = 600.0  # a new round ten minutes after the last one ended: sightings age by the second
PAUSE_S = 0.05  # between two steps of a round: the writer serves what waits first anyway


@dataclass(slots=True)
class Retention:
    """One round of pruning, step by step: `step()` until it returns False, then a new round later."""

    settings: RetentionSettings
    batch: int = BATCH_ROWS
    max_hexes: int = MAX_HEXES
    _stage: int = 0  # 0: partitions, 1: sightings, 2: outbox, 3: polls
    _hex: str = ""  # where the sightings' walk goes on
    _feed: str = ""  # where the polls' walk goes on
    _steps: int = 0
    _sightings: int = 0
    _outbox: int = 0
    _polls: int = 0
    _partitions: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.sightings_days or self.settings.outbox_days or self.settings.polls_days)

    def step(self, store: Store, now: datetime) -> bool:
        """Do one short transaction of the round; True while the round has more to do. Raises StoreError."""
        if self._stage == 0:
            self._stage = 1
            if self.settings.sightings_days:
                self._partitions += store.drop_partitions_before(self._sightings_cut(now))
                self._steps += 1
            return True
        if self._stage == 1:
            if not self.settings.sightings_days:
                self._stage = 2
                return True
            deleted, start = store.prune_sightings(self._sightings_cut(now), self._hex, self.batch, self.max_hexes)
            self._steps += 1
            self._sightings += deleted
            if start is None:
                self._stage, self._hex = 2, ""
            else:
                self._hex = start
            return True
        if self._stage == 2:
            if self.settings.outbox_days:
                deleted = store.prune_outbox(now - timedelta(days=self.settings.outbox_days), self.batch)
                self._steps += 1
                self._outbox += deleted
                if deleted >= self.batch:
                    return True
            self._stage = 3
            return True
        if self.settings.polls_days:
            deleted, feed = store.prune_polls(now - timedelta(days=self.settings.polls_days), self._feed, self.batch)
            self._steps += 1
            self._polls += deleted
            if feed is not None:
                self._feed = feed
                return True
        self._report(now)
        self._stage, self._steps, self._sightings, self._outbox, self._polls, self._partitions = 0, 0, 0, 0, 0, []
        self._hex = self._feed = ""
        return False

    def _sightings_cut(self, now: datetime) -> datetime:
        return now - timedelta(days=self.settings.sightings_days)

    def _report(self, now: datetime) -> None:
        """One line per round that deleted something; nothing for a round that found nothing to do."""
        if not (self._sightings or self._outbox or self._polls or self._partitions):
            return
        parts = []
        if self._sightings or self._partitions:
            cut = iso_z(self._sightings_cut(now))
            months = (
                f" and {len(self._partitions)} whole months ({', '.join(self._partitions)})" if self._partitions else ""
            )
            parts.append(f"{self._sightings} sightings{months} from before {cut}")
        if self._outbox:
            parts.append(f"{self._outbox} alerts delivered over {self.settings.outbox_days} days ago")
        if self._polls:
            parts.append(f"{self._polls} polls recorded over {self.settings.polls_days} days ago")
        log.info("retention: deleted %s, in %d steps", "; ".join(parts), self._steps)
