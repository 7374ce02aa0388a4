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
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.errors import FeedError, FeedFormatError, FeedUnavailable
from ingest.feeds.base import FeedRequest, FeedSource, StreamFeed
from ingest.feeds.policy import Pacing
from ingest.feeds.readsb import parse_readsb
from ingest.feeds.recorded import Unreadable, read_replay
from ingest.geo import Area, Projector
from ingest.metrics import NO_METRICS, Metrics
from ingest.models import FeedHealth, Observation, ParseResult, PollRecord, Rejected, Report, Sighting
from ingest.watchlist import Watchlist, normalise_registration

if TYPE_CHECKING:  # requests loads with the fetcher, not for a replay
    from ingest.feeds.transport import Response

log = logging.getLogger(__name__)

Fetch = Callable[[FeedRequest], "Response"]
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
    synthetic: bool = False  # from a recording marked synthetic: stored as such, never alerted


# A position timed more than this ahead of our clock is refused (counted as a malformed record): one answer
# from a feed whose clock jumped an hour ahead would otherwise mark every later, correct position of that
# aircraft as already processed, and hold its sortie open with a last fix in the future.
MAX_AHEAD_S = 30.0


@dataclass(slots=True)
class _Tally:
    aircraft: int = 0
    observations: list[Observation] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    requests: int = 0
    status: int | None = None

    def add(self, parsed: ParseResult, received_at: datetime) -> None:
        self.aircraft += parsed.aircraft
        kept, ahead = refuse_future(parsed.observations, received_at)
        self.observations.extend(kept)
        self.rejected.extend(parsed.rejected)
        self.rejected.extend(ahead)


def refuse_future(
    observations: Sequence[Observation], received_at: datetime
) -> tuple[list[Observation], list[Rejected]]:
    """The observations timed at most MAX_AHEAD_S after `received_at`, and the others as Rejected."""
    limit = received_at + timedelta(seconds=MAX_AHEAD_S)
    kept: list[Observation] = []
    refused: list[Rejected] = []
    for obs in observations:
        if obs.position_at <= limit:
            kept.append(obs)
        else:
            ahead_s = (obs.position_at - received_at).total_seconds()
            reason = f"position time {ahead_s:.0f} s ahead of our clock (is the feed's clock, or ours, wrong?)"
            refused.append(Rejected(reason, f"{obs.hex_icao} at {obs.position_at.isoformat()}", "position_time"))
    return kept, refused


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
    if failure is None and tally.aircraft and len(tally.rejected) >= tally.aircraft:
        # Every record of every answer was refused: the feed answered, but nothing it said was usable.
        first = tally.rejected[0].reason
        failure = FeedFormatError(feed.name, "", f"all {tally.aircraft} records malformed (first: {first})")
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
    """Every request of the tick. A refused request (FeedUnavailable: a 429, a timeout) ends the tick; an
    unreadable answer does not keep the other answers from being used. Either fails the poll. A stop
    request ends the tick between two requests (a big watchlist makes many)."""
    failure: FeedError | None = None
    for i, req in enumerate(feed.requests()):
        # Keep to the host's published rate (feeds/hosts.py); sleep(0) still tells whether we must stop.
        if i and sleep(feed.min_request_spacing_s):
            return FeedUnavailable(feed.name, req.safe_url, "stopped before the tick's last request")
        tally.requests += 1
        try:
            response = fetch(req)
            tally.status = response.status
            tally.add(feed.parse(response.body, received_at=clock(), source=req.safe_url), clock())
        except FeedUnavailable as exc:
            tally.status = exc.status
            return exc
        except FeedFormatError as exc:
            failure = failure or exc
        except Exception as exc:  # a parser's own bug must cost this answer, not the whole poll
            failure = failure or _parser_bug(feed.name, req.safe_url, exc)
    return failure


_REPORTED_BUGS: set[tuple[str, str]] = set()


def _parser_bug(feed: str, safe_url: str, exc: Exception) -> FeedFormatError:
    """An exception a parser should never raise (parsers reject bad records and raise FeedFormatError for
    bad answers): the answer is counted as unreadable, and the traceback logged once per feed and kind, so
    that the bug gets reported rather than the poll lost."""
    if (feed, type(exc).__name__) not in _REPORTED_BUGS:
        _REPORTED_BUGS.add((feed, type(exc).__name__))
        log.error(
            "feed %s: the parser failed on an answer (a bug, please report it)", feed, exc_info=exc,
            extra={"event": "parser_bug", "feed": feed},
        )  # fmt: skip
    return FeedFormatError(feed, safe_url, f"unreadable answer ({type(exc).__name__})")


def _take(feed: StreamFeed, tally: _Tally, now: datetime) -> FeedError | None:
    try:
        tally.add(feed.take(now), now)
    except FeedUnavailable as exc:
        return exc
    return None


class FeedJob:
    """One feed's poll with its pacing and its logging: one line per degraded episode, one line per
    new kind of malformed record. Runs in that feed's job thread; `sink` takes the outcome to the store."""

    def __init__(
        self,
        feed: FeedSource | StreamFeed,
        fetch: Fetch,
        selector: Selector,
        clock: Clock,
        sleep: Sleep,
        *,
        one_shot: bool = False,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.feed = feed
        self.fetch = fetch if metrics is NO_METRICS else _counting(fetch, feed.name, metrics)
        self.metrics = metrics
        self.selector = selector
        self.clock = clock
        self.sleep = sleep
        self.one_shot = one_shot  # `ingest poll`: there is no next try
        self.pacing = Pacing(feed.settings.interval_s)
        self._logged_rejections: set[str] = set()
        self._told = False  # this run has logged the current failing episode

    def run(self, force: bool = False) -> PollOutcome | None:
        """Poll unless the feed is parked (`force` polls anyway); None when parked."""
        if not force and not self.pacing.ready(self.clock()):
            return None
        outcome = poll_feed(self.feed, self.fetch, self.selector, self.clock, self.sleep)
        self.metrics.poll(outcome.record, outcome.failure, outcome.rejected)
        self._log_rejections(outcome.rejected)
        if outcome.failure is not None and self.sleep(0):
            # Cut short by our own stop (SIGTERM): no failure of the feed's. Its state stays as it was, so that
            # `ingest feeds` never shows a healthy feed as failing after a clean stop.
            return outcome
        if outcome.failure is None:
            failed = self.pacing.on_success()
            if failed:
                log.info(
                    "feed %s recovered after %d failed polls", self.feed.name, failed,
                    extra={"event": "feed_recovered", "feed": self.feed.name, "failures": failed},
                )  # fmt: skip
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
        if self.pacing.new_episode or not self._told:  # and once in this run, for an episode taken up (resume)
            self._told = True
            access = getattr(self.feed, "access_hint", "") or "the feed needs approval or a key"
            hint = f" (access refused: {access})" if status in (401, 403) else ""
            # A one-shot run (`ingest poll`) has no next try to announce.
            then = "" if self.one_shot else f"; next try in {wait_s:.0f} s"
            fields = {"event": "feed_failed", "feed": self.feed.name, "reason": exc.reason, "status": status}
            if not self.one_shot:
                fields["next_try_s"] = round(wait_s)
            log.warning("feed %s failed: %s%s%s", self.feed.name, exc.reason, hint, then, extra=fields)
        else:
            log.debug("feed %s still failing (%d in a row): %s", self.feed.name, self.pacing.failures, exc.reason)

    def resume(self, health: dict[str, Any]) -> None:
        """Take up the failing episode the store recorded for this feed (its feed_state row), if any."""
        failures = health.get("failures") or 0
        since = health.get("degraded_since")
        self.pacing.resume(int(failures), datetime.fromisoformat(since) if since else None, health.get("reason"))

    def _log_rejections(self, rejected: Sequence[Rejected]) -> None:
        if isinstance(self.feed, StreamFeed):
            return  # a stream logs each kind of bad line once as it reads it
        log_rejections(self.feed.name, rejected, self._logged_rejections)


def _counting(fetch: Fetch, feed: str, metrics: Metrics) -> Fetch:
    """`fetch`, telling `metrics` the status of every HTTP answer (an error status included)."""

    def counted(req: FeedRequest) -> Response:
        try:
            response = fetch(req)
        except FeedUnavailable as exc:
            if exc.status is not None:
                metrics.response(feed, exc.status)
            raise
        if response.status is not None:  # None: a file, no HTTP
            metrics.response(feed, response.status)
        return response

    return counted


def log_rejections(feed: str, rejected: Sequence[Rejected], logged: set[str]) -> None:
    """One warning per kind of malformed record (its field) for as long as `logged` lives; a count at DEBUG."""
    for item in rejected:
        if item.field not in logged:
            logged.add(item.field)
            log.warning(
                "feed %s: skipped a malformed aircraft record (%s): %s", feed, item.reason, item.raw,
                extra={"event": "record_rejected", "feed": feed, "reason": item.reason},
            )  # fmt: skip
    if rejected:
        log.debug("feed %s: %d malformed records skipped this poll", feed, len(rejected))


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
            if isinstance(body, Unreadable):
                raise FeedFormatError(feed_name, source, str(body.error))
            if parse is not None:
                parsed = parse(body, started_at, source)
            else:
                parsed = parse_readsb(
                    body, feed=feed_name, received_at=started_at, source=source, wanted=selector.watchlist.wants,
                    keep_military=selector.include_military,
                )  # fmt: skip
            if parsed.feed_now > started_at + timedelta(seconds=MAX_AHEAD_S):
                raise FeedFormatError(
                    feed_name, source, f"recorded at {parsed.feed_now.isoformat()}, ahead of our clock"
                )
        except FeedFormatError as exc:
            record = PollRecord(feed_name, started_at, 0, 1, None, 0, 0, 0, 0, 0, exc.reason)
            yield PollOutcome(record, (), (), exc)
            continue
        # A recording is never from the future: a line whose positions are is refused as a live poll's are.
        kept, ahead = refuse_future(parsed.observations, started_at)
        selection = selector.select(kept)
        rejected = (*parsed.rejected, *ahead)
        record = PollRecord(
            feed=feed_name, started_at=parsed.feed_now, duration_ms=0, requests=1, http_status=None,
            aircraft=parsed.aircraft, matched=selection.matched, kept=len(selection.sightings), stored=0,
            rejected=len(rejected), error=None,
        )  # fmt: skip
        yield PollOutcome(record, selection.sightings, rejected, None, selection.reports, synthetic=parsed.synthetic)
