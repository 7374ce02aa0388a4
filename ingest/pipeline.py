"""Where logic meets I/O: fetch -> parse -> match -> area filter -> project -> store.

    FeedSource.requests()  ──► Fetcher (HTTP / file) ──► FeedSource.parse() ──► Selector.select()
         (pure)                   (transport.py)            (pure)               (watchlist, geo)
                                                                                      │
    Store.save_poll()  ◄── writer thread (scheduler.py) or the CLI's own thread ◄─────┘

`poll_feed()` runs in a feed's job thread and never touches the database; `Store.save_poll()` is called
by whoever owns the Store. `replay_file()` pushes recorded responses through the same two steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ingest.alerts.messages import alert
from ingest.config import Settings
from ingest.detect.sorties import SortieDetector, Update
from ingest.errors import FeedError, FeedFormatError, FeedUnavailable
from ingest.feeds.base import FeedRequest, FeedSource, StreamFeed
from ingest.feeds.policy import Pacing
from ingest.feeds.readsb import parse_readsb
from ingest.feeds.recorded import read_replay
from ingest.feeds.transport import Response
from ingest.geo import Area, Projector
from ingest.models import FeedHealth, Observation, ParseResult, PollRecord, Rejected, Report, Sighting, SortieEvent
from ingest.store import Store, Tracking
from ingest.timeutil import iso_z
from ingest.watchlist import Watchlist, normalise_registration

log = logging.getLogger(__name__)

Fetch = Callable[[FeedRequest], Response]
Clock = Callable[[], datetime]
Sleep = Callable[[float], object]  # returns a true value when the wait was cut short by a stop


@dataclass(frozen=True, slots=True)
class Selection:
    """The watched records of a poll (`reports`, inside the area or not), and those inside, projected."""

    reports: tuple[Report, ...]
    sightings: tuple[Sighting, ...]

    @property
    def matched(self) -> int:
        return len(self.reports)


class Selector:
    """Keeps watched aircraft (and, with include_military, every military one) and projects those inside
    the area, one vectorised call per poll."""

    def __init__(self, watchlist: Watchlist, projector: Projector, area: Area, include_military: bool = False) -> None:
        self.watchlist = watchlist
        self.projector = projector
        self.area = area
        self.include_military = include_military

    def select(self, observations: Sequence[Observation], oldest: datetime | None = None) -> Selection:
        kept = [
            (obs, who)
            for obs in merge_freshest(observations)
            if (oldest is None or obs.position_at >= oldest) and (who := self._identify(obs)) is not None
        ]
        if not kept:
            return Selection((), ())
        lats = np.fromiter((obs.lat_deg for obs, _ in kept), dtype=np.float64, count=len(kept))
        lons = np.fromiter((obs.lon_deg for obs, _ in kept), dtype=np.float64, count=len(kept))
        contained = self.area.contains(lats, lons)
        inside = np.flatnonzero(contained)
        xs, ys = self.projector.project(lons[inside], lats[inside])
        finite = np.isfinite(xs) & np.isfinite(ys)
        reports = tuple(
            Report(who[0], who[1], who[2], obs, bool(c)) for (obs, who), c in zip(kept, contained.tolist(), strict=True)
        )
        sightings = tuple(
            Sighting(reports[i].obs, reports[i].registration, reports[i].type_icao, float(x), float(y), reports[i].key)
            for i, x, y, ok in zip(inside.tolist(), xs.tolist(), ys.tolist(), finite.tolist(), strict=True)
            if ok
        )
        return Selection(reports, sightings)

    def _identify(self, obs: Observation) -> tuple[str, str | None, str | None] | None:
        """(aircraft key, registration, ICAO type): the watchlist's, which win over the feed's database;
        for an unlisted military aircraft (include_military) the feed's, keyed by registration or hex."""
        entry = self.watchlist.match(obs)
        if entry is not None:
            key = normalise_registration(entry.key)  # as the store's aircraft table names it
            return key, entry.registration or obs.registration, entry.icao_type or obs.type_icao
        if self.include_military and obs.military:
            return normalise_registration(obs.registration or obs.hex_icao), obs.registration, obs.type_icao
        return None


def merge_freshest(observations: Iterable[Observation]) -> list[Observation]:
    """One observation per aircraft address, the freshest position: the same aircraft comes back from the
    hex, registration, area and mil queries of one tick, or from several feeds polled together."""
    best: dict[tuple[str, bool], Observation] = {}
    for obs in observations:
        key = (obs.hex_icao, obs.non_icao)
        current = best.get(key)
        if current is None or obs.position_at > current.position_at:
            best[key] = obs
    return list(best.values())


@dataclass(slots=True)
class PollOutcome:
    """What one poll of one feed produced, ready for the store."""

    record: PollRecord
    sightings: tuple[Sighting, ...]
    rejected: tuple[Rejected, ...] = ()
    failure: FeedError | None = None
    reports: tuple[Report, ...] = ()  # every watched position, inside the area or not: the sortie detector's input
    health: FeedHealth | None = None  # the feed's state after this poll (FeedJob fills it in)


@dataclass(slots=True)
class _Tally:
    aircraft: int = 0
    observations: list[Observation] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    requests: int = 0
    status: int | None = None

    def add(self, parsed: ParseResult) -> None:
        self.aircraft += parsed.aircraft
        self.observations.extend(parsed.observations)
        self.rejected.extend(parsed.rejected)


def poll_feed(
    feed: FeedSource | StreamFeed, fetch: Fetch, selector: Selector, clock: Clock, sleep: Sleep
) -> PollOutcome:
    """Make one tick's requests, keeping whatever arrived before a failure."""
    started_at = clock()
    t0 = time.perf_counter()
    tally = _Tally()
    if isinstance(feed, StreamFeed):
        failure = _take(feed, tally, started_at)
    else:
        failure = _fetch_all(feed, fetch, tally, clock, sleep)
    max_age_s = feed.settings.max_age_s
    selection = selector.select(tally.observations, started_at - timedelta(seconds=max_age_s) if max_age_s else None)
    record = PollRecord(
        feed=feed.name,
        started_at=started_at,
        duration_ms=round((time.perf_counter() - t0) * 1000),
        requests=tally.requests,
        http_status=tally.status,
        aircraft=tally.aircraft,
        matched=selection.matched,
        kept=len(selection.sightings),
        stored=0,
        rejected=len(tally.rejected),
        error=failure.reason if failure else None,
    )
    return PollOutcome(record, selection.sightings, tuple(tally.rejected), failure, selection.reports)


def _fetch_all(feed: FeedSource, fetch: Fetch, tally: _Tally, clock: Clock, sleep: Sleep) -> FeedError | None:
    for i, req in enumerate(feed.requests()):
        # Keep to the host's published rate (feeds/hosts.py); a stop request ends the poll here.
        if i and feed.min_request_spacing_s and sleep(feed.min_request_spacing_s):
            break
        tally.requests += 1
        try:
            response = fetch(req)
            tally.status = response.status
            tally.add(feed.parse(response.body, received_at=clock(), source=req.safe_url))
        except FeedUnavailable as exc:
            tally.status = exc.status
            return exc
        except FeedFormatError as exc:
            return exc
    return None


def _take(feed: StreamFeed, tally: _Tally, now: datetime) -> FeedError | None:
    try:
        tally.add(feed.take(now))
    except FeedUnavailable as exc:
        return exc
    return None


class FeedJob:
    """One feed's poll with its pacing and its logging: one line per degraded episode, one line per
    new kind of malformed record. Runs in that feed's job thread; `sink` takes the outcome to the store."""

    def __init__(
        self, feed: FeedSource | StreamFeed, fetch: Fetch, selector: Selector, clock: Clock, sleep: Sleep
    ) -> None:
        self.feed = feed
        self.fetch = fetch
        self.selector = selector
        self.clock = clock
        self.sleep = sleep
        self.pacing = Pacing(feed.settings.interval_s)
        self._logged_rejections: set[str] = set()

    def run(self, force: bool = False) -> PollOutcome | None:
        """Poll unless the feed is parked (`force` polls anyway); None when parked."""
        if not force and not self.pacing.ready(self.clock()):
            return None
        outcome = poll_feed(self.feed, self.fetch, self.selector, self.clock, self.sleep)
        self._log_rejections(outcome.rejected)
        if outcome.failure is None:
            failed = self.pacing.on_success()
            if failed:
                log.info("feed %s recovered after %d failed polls", self.feed.name, failed)
        else:
            self._log_failure(outcome.failure)
        now = self.clock()
        p = self.pacing
        outcome.health = FeedHealth(
            self.feed.name, p.state(now), now, p.failures, p.degraded_since, p.next_allowed_at, p.last_reason
        )
        return outcome

    def _log_failure(self, exc: FeedError) -> None:
        status = getattr(exc, "status", None)
        retry_after = exc.retry_after_s if isinstance(exc, FeedUnavailable) else None
        wait_s = self.pacing.on_failure(self.clock(), exc.reason, status, retry_after)
        if isinstance(self.feed, StreamFeed):
            return  # a stream logs its own outages, once each
        if self.pacing.new_episode:
            access = getattr(self.feed, "access_hint", "") or "the feed needs approval or a key"
            hint = f" (access refused: {access})" if status in (401, 403) else ""
            log.warning("feed %s failed: %s%s; next try in %.0f s", self.feed.name, exc.reason, hint, wait_s)
        else:
            log.debug("feed %s still failing (%d in a row): %s", self.feed.name, self.pacing.failures, exc.reason)

    def _log_rejections(self, rejected: Sequence[Rejected]) -> None:
        if isinstance(self.feed, StreamFeed):
            return  # a stream logs each kind of bad line once as it reads it
        for item in rejected:
            if item.field not in self._logged_rejections:
                self._logged_rejections.add(item.field)
                log.warning(
                    "feed %s: skipped a malformed aircraft record (%s): %s",
                    self.feed.name,
                    item.reason,
                    item.raw,
                )
        if rejected:
            log.debug("feed %s: %d malformed records skipped this poll", self.feed.name, len(rejected))


# -- replay --------------------------------------------------------------------------------------


Parse = Callable[[bytes, datetime, str], ParseResult]  # (body, received_at, source) -> ParseResult


def replay_file(
    path: Path, feed_name: str, selector: Selector, clock: Clock, parse: Parse | None = None
) -> Iterator[PollOutcome]:
    """Each response in the file as a PollOutcome, in file order; a bad response is one failed outcome.
    `parse` is a configured feed's parser (an OpenSky recording, say); by default the readsb family's."""
    for number, body in enumerate(read_replay(path), start=1):
        started_at = clock()
        source = f"{path}:{number}"
        try:
            if parse is not None:
                parsed = parse(body, started_at, source)
            else:
                parsed = parse_readsb(
                    body, feed=feed_name, received_at=started_at, source=source, wanted=selector.watchlist.wants,
                    keep_military=selector.include_military,
                )  # fmt: skip
        except FeedFormatError as exc:
            record = PollRecord(feed_name, started_at, 0, 1, None, 0, 0, 0, 0, 0, exc.reason)
            yield PollOutcome(record, (), (), exc)
            continue
        selection = selector.select(parsed.observations)
        record = PollRecord(
            feed=feed_name, started_at=parsed.feed_now, duration_ms=0, requests=1, http_status=None,
            aircraft=parsed.aircraft, matched=selection.matched, kept=len(selection.sightings), stored=0,
            rejected=len(parsed.rejected), error=None,
        )  # fmt: skip
        yield PollOutcome(record, selection.sightings, parsed.rejected, None, selection.reports)


# -- sorties ---------------------------------------------------------------------------------------


class Tracker:
    """The sortie detector between the pipeline and the store. Lives in the thread that owns the Store:
    a poll's sightings, the sortie changes they cause and the alerts those raise commit together."""

    def __init__(self, settings: Settings, store: Store, on_alerts: Callable[[], object] = lambda: None) -> None:
        self.on_alerts = on_alerts  # called after alerts were committed to the outbox
        self.gap_s = settings.sorties.gap_s
        self.area = settings.area.name
        self.prefix = settings.mqtt.topic_prefix
        self.alerts = settings.mqtt.enabled  # with MQTT off nothing is queued
        self._latest: dict[str, datetime] = {}  # hex -> the freshest position time stored in this process
        self.reload(store)

    def reload(self, store: Store) -> None:
        """(Re)build the detector from what the store holds: after a restart, or a failed transaction."""
        open_sorties, last_report_at, last_end_at = store.tracker_state()
        self.detector = SortieDetector(self.gap_s, open_sorties, last_report_at, last_end_at)

    def save_poll(self, store: Store, outcome: PollOutcome, now: datetime, record_poll: bool = True) -> int:
        """Store a poll with the sortie changes it causes; returns the new sightings."""
        update = self.detector.update(outcome.reports, now)
        sightings = self._freshest(outcome.sightings)
        try:
            stored = store.save_poll(
                outcome.record,
                sightings,
                record_poll=record_poll,
                tracking=self._tracking(update),
                health=outcome.health,
            )
        except Exception:
            self.reload(store)  # the detector moved on, the database did not
            raise
        self._done(update)
        return stored

    def _freshest(self, sightings: Sequence[Sighting]) -> list[Sighting]:
        """Merge across feeds, freshest wins: a feed whose position of an aircraft is older than one another
        feed already gave is not stored (a lagging feed would zig-zag the track back in time). The same
        position from two feeds is one sighting (the store's key), kept from the feed that gave it first."""
        kept = []
        for s in sightings:
            latest = self._latest.get(s.obs.hex_icao)
            if latest is None or s.obs.position_at >= latest:
                self._latest[s.obs.hex_icao] = s.obs.position_at
                kept.append(s)
        return kept

    def check(self, store: Store, now: datetime) -> tuple[SortieEvent, ...]:
        """End the sorties whose gap has passed (the periodic check)."""
        update = self.detector.check(now)
        if update.changed or update.events:
            try:
                store.save_tracking(self._tracking(update))
            except Exception:
                self.reload(store)
                raise
        self._done(update)
        return update.events

    def _done(self, update: Update) -> None:
        _log_events(update.events)
        if update.events and self.alerts:
            self.on_alerts()

    def _tracking(self, update: Update) -> Tracking:
        alerts = [alert(self.prefix, self.area, e) for e in update.events] if self.alerts else []
        return Tracking(update.changed, update.last_report_at, alerts)


def _log_events(events: Sequence[SortieEvent]) -> None:
    for e in events:
        s = e.sortie
        tail = s.registration or s.hex_icao
        if e.kind == "start":
            log.info(
                "sortie %s started: %s (%s) %s at %s",
                s.sortie_id,
                tail,
                s.type_icao or "?",
                s.first.callsign or "-",
                iso_z(s.start_at),
            )
        else:
            log.info(
                "sortie %s ended (%s): %s, %s to %s, callsigns %s",
                s.sortie_id, s.end_reason, tail, iso_z(s.start_at), iso_z(s.last.at), ",".join(s.callsigns) or "-",
            )  # fmt: skip
