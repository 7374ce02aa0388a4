"""The detectors between the pipeline and the store: sorties counted in covered time, and what each
sortie's aircraft does (orbits, emergencies).

    PollOutcome ─► Tracker.save_poll ─► SortieDetector.update(reports, covered time)    detect/sorties.py
                        │                   └─► new airborne sightings of open sorties ─► Detectors
                        │                                                  (detect/orbits.py, emergencies.py)
                        └─► Store.save_poll: sightings, the feed_polls row, sortie changes, happenings and
                            their alerts in ONE transaction; only once it committed does the poll count
                            as coverage (detect/coverage.py), so a failed write never looks like silence.

Lives in the thread that owns the Store. Every method takes `now`; nothing here reads a clock. After a
restart (or a failed transaction) `reload()` rebuilds the sortie detector from the stored sorties, covered
time from the stored successful polls, and the behaviour detectors by replaying each open sortie's stored
track: the same track gives the same episodes with the same ids, which the outbox already holds.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ingest.alerts.messages import alert, happening_alert
from ingest.alerts.routing import Router
from ingest.config import Settings
from ingest.detect.airports import Airports
from ingest.detect.base import Detector, Happening, TrackPoint
from ingest.detect.coverage import ALL, Coverage, aircraft_scopes, feed_scopes
from ingest.detect.emergencies import EmergencyDetector
from ingest.detect.orbits import OrbitDetector
from ingest.detect.sorties import Locate, SortieDetector, Update
from ingest.metrics import NO_METRICS, Metrics
from ingest.models import Alert, Place, Sighting, Sortie, SortieEvent
from ingest.pipeline import PollOutcome
from ingest.store import Store, Tracking
from ingest.stream import Entry
from ingest.timeutil import from_epoch, iso_z
from ingest.watchlist import Watchlist, normalise_registration

log = logging.getLogger(__name__)

# Two successful polls of a feed at most this many intervals (plus the later poll's own duration) apart
# cover the time between them: one skipped tick (jitter, a slow answer) does not open a hole in the coverage.
COVER_TICKS = 2.0
# Responses of a recording (`ingest replay`, [replay] on_start) at most this far apart cover the time
# between them; a recorder that stopped for longer leaves a hole, not a phantom silence.
REPLAY_BOUND_S = 120.0

DetectorFactory = Callable[[], Sequence[Detector]]


def default_detectors() -> Sequence[Detector]:
    """What every sortie is watched for: orbits (detect/orbits.py) and emergencies (detect/emergencies.py)."""
    return (OrbitDetector(), EmergencyDetector())


def no_detectors() -> Sequence[Detector]:
    return ()


@functools.cache
def _airports() -> Airports:
    return Airports.bundled()


def locate_airport(lat_deg: float, lon_deg: float) -> Place | None:
    """The bundled airport within 5 km of a takeoff or landing (detect/airports.py), by ICAO code."""
    airport = _airports().nearest(lat_deg, lon_deg)
    return None if airport is None else Place(airport.icao or airport.ident, airport.name)


@dataclass(frozen=True, slots=True)
class FeedCover:
    """What a feed's successful polls cover, and how far apart two of them may be to cover the time between."""

    scopes: frozenset[str]
    bound_s: float


def feed_covers(settings: Settings) -> dict[str, FeedCover]:
    return {
        fs.name: FeedCover(feed_scopes(fs.kind, fs.queries), COVER_TICKS * fs.interval_s)
        for fs in settings.feeds
        if fs.enabled
    }


_RECORDING = FeedCover(frozenset({ALL}), REPLAY_BOUND_S)


def recording_cover() -> FeedCover:
    """What a recording (a replay) covers: everything it holds, responses up to REPLAY_BOUND_S apart."""
    return _RECORDING


def freshest(sightings: Sequence[Sighting], known: dict[str, datetime]) -> tuple[list[Sighting], dict[str, datetime]]:
    """Merge across feeds, freshest wins: a feed whose position of an aircraft is older than one another
    feed already gave (`known`: hex -> latest position time stored) is not stored (a lagging feed would
    zig-zag the track back in time). The same position from two feeds is one sighting (the store's key),
    kept from the feed that gave it first. Returns the sightings to store and the new latest times (to
    merge into `known` once the store committed them)."""
    kept: list[Sighting] = []
    latest: dict[str, datetime] = {}
    for s in sightings:
        hex_icao = s.obs.hex_icao
        last = latest.get(hex_icao) or known.get(hex_icao)
        if last is None or s.obs.position_at >= last:
            latest[hex_icao] = s.obs.position_at
            kept.append(s)
    return kept, latest


class _View:
    """Covered time of one aircraft, as the sortie detector asks for it; live up to `now`."""

    def __init__(self, tracker: Tracker, now: datetime) -> None:
        self.tracker = tracker
        self.now = now

    def covered_s(self, key: str, since: datetime, until: datetime) -> float:
        scopes = self.tracker.scopes_of(key)
        return self.tracker.coverage.covered_s(scopes, since, until, live_until=self.now)


class Tracker:
    """Sorties, their happenings and their alerts, kept in step with the store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_alerts: Callable[[], object] = lambda: None,
        *,
        watchlist: Watchlist | None = None,
        detectors: DetectorFactory = default_detectors,
        locate: Locate | None = locate_airport,
        alerts: bool | None = None,
        synthetic: bool = False,
        covers: dict[str, tuple[frozenset[str], float]] | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.on_alerts = on_alerts  # called after alerts were committed to the outbox
        self.on_change: Callable[[], object] = lambda: None  # called after sorties changed (the sortie clock)
        self.gap_s = settings.sorties.gap_s
        self.max_blind_s = settings.sorties.max_blind_s
        self.area = settings.area.name
        self.prefix = settings.mqtt.topic_prefix
        # Events go to the channels that want them (alerts/routing.py); without a channel nothing is queued,
        # and synthetic data (the bundled demo) never alerts anyone.
        self.router = Router(settings.channels())
        self.alerts = (alerts is not False) and bool(self.router) and not synthetic
        self.synthetic = synthetic
        self.metrics = metrics  # the demo's lane counts nothing: its sorties are no real ones
        self._settings = settings
        self._demo: Tracker | None = None  # the lane of synthetic recordings, made when one comes
        # What each feed covers: this daemon's own, and (a leader) what the stream says of other daemons'.
        learnt = {feed: FeedCover(scopes, bound_s) for feed, (scopes, bound_s) in (covers or {}).items()}
        self._covers = {**learnt, **feed_covers(settings)}
        self.stream: tuple[str, int] | None = None  # the leader's (daemon, place) in the poll stream, when it is one
        self._entries = {} if watchlist is None else {normalise_registration(e.key): e for e in watchlist.entries}
        self._watched = None if watchlist is None else set(self._entries)
        self._military: dict[str, bool] = {}
        self._latest: dict[str, datetime] = {}  # hex -> the freshest position time stored in this process
        self._make_detectors = detectors
        self._locate = locate
        self._stale = False
        self.reload(store)

    # -- state ------------------------------------------------------------------------------------

    def reload(self, store: Store) -> None:
        """(Re)build everything from what the store holds: after a restart, or a failed transaction."""
        open_sorties, last_report_at, last_end_at = store.tracker_state(self.synthetic)
        self.detector = SortieDetector(
            self.gap_s, open_sorties, last_report_at, last_end_at, max_blind_s=self.max_blind_s,
            locate=self._locate, synthetic=self.synthetic,
        )  # fmt: skip
        self.coverage = Coverage()
        horizon = min((s.last.at for s in open_sorties), default=None)
        polls = store.successful_polls(horizon - timedelta(seconds=self._max_bound_s())) if horizon else []
        for feed, at, took_s in [*polls, *store.last_successes()]:
            cover = self.cover_of(feed)
            self.coverage.poll_succeeded(feed, cover.scopes, at, cover.bound_s + took_s, took_s)
        self._detectors = list(self._make_detectors())
        self._fed: dict[str, int] = {}  # sortie_id -> the last position second fed to the detectors
        self._announced: set[str] = set()  # event ids of the open sorties' happenings already logged
        for sortie in open_sorties:
            self._replay_track(store, sortie)

    def _recover(self, store: Store) -> None:
        """After a failed transaction: the detectors moved on, the database did not. Rebuild them from the
        database now, or (it cannot be read either: a server away) before the next poll or check."""
        try:
            self.reload(store)
        except Exception:
            self._stale = True
        else:
            self._stale = False

    def _fresh(self, store: Store) -> None:
        if self._stale:
            self.reload(store)  # raises while the database still fails
            self._stale = False

    def cover_of(self, feed: str) -> FeedCover:
        """A configured feed's cover; anything else (a replay, a feed no longer configured) is a recording."""
        return self._covers.get(feed, _RECORDING)

    def skip(self, store: Store, daemon: str, entry_id: int) -> None:
        """The leader moves past a stream entry it cannot read (fenced, as follow() is)."""
        store.save_tracking(Tracking(stream=(daemon, entry_id)))
        self.stream = (daemon, entry_id)

    def use_watchlist(self, watchlist: Watchlist) -> None:
        """Count another list's aircraft as watched from now on (the daemon reloaded its watchlist)."""
        self._entries = {normalise_registration(e.key): e for e in watchlist.entries}
        self._watched = set(self._entries)

    def scopes_of(self, key: str) -> frozenset[str]:
        watched = self._watched is None or key in self._watched
        return aircraft_scopes(watched, self._military.get(key, False))

    def _max_bound_s(self) -> float:
        return max([REPLAY_BOUND_S, *(c.bound_s for c in self._covers.values())])

    def _replay_track(self, store: Store, sortie: Sortie) -> None:
        """Bring fresh detectors up to date with an open sortie's stored track; what they find again is
        already stored and alerted (same event ids), so it is dropped."""
        if not self._detectors:
            return
        for row in store.track(sortie):
            if not row["on_ground"]:
                self._announced.update(h.event_id for h in self._feed_point(sortie.sortie_id, _row_point(row)))

    # -- polls and checks ---------------------------------------------------------------------------

    def save_poll(self, store: Store, outcome: PollOutcome, now: datetime, record_poll: bool = True) -> int:
        """Store a poll with the sortie changes and happenings it causes; returns the new sightings. A
        synthetic recording's goes to a lane of its own: its sorties never link to, end or delay real ones."""
        if outcome.synthetic and not self.synthetic:
            return self._demo_lane(store).save_poll(store, outcome, now, record_poll=False)
        self._fresh(store)
        for report in outcome.reports:
            self._military[report.key] = report.obs.military
        update = self.detector.update(outcome.reports, now, _View(self, now))
        sightings, latest = freshest(outcome.sightings, self._latest)
        found = self._observe(update, sightings)
        try:
            stored = store.save_poll(
                outcome.record,
                sightings,
                record_poll=record_poll,
                tracking=self._tracking(update, found),
                health=outcome.health,
                synthetic=self.synthetic,
            )
        except Exception:
            self._recover(store)
            raise
        self._latest.update(latest)
        if outcome.failure is None:
            r = outcome.record
            cover = self.cover_of(r.feed)
            # A feed whose answers take long polls less often: its own duration widens the bound.
            took_s = r.duration_ms / 1000
            self.coverage.poll_succeeded(r.feed, cover.scopes, r.started_at, cover.bound_s + took_s, took_s)
        self._done(update, found)
        return stored

    def follow(self, store: Store, entry: Entry, daemon: str) -> None:
        """The leader's step: track a poll that a daemon (maybe this one) already stored, as save_poll tracks
        its own, and save the changes with our new place in the stream, fenced (NotLeader when another daemon
        leads now: nothing is saved). A recording's entry is checked at its own time right after."""
        lane = self._demo_lane(store) if entry.synthetic and not self.synthetic else self
        lane._fresh(store)
        if entry.record.feed not in self._covers and entry.ok:
            self._covers[entry.record.feed] = FeedCover(entry.scopes, entry.bound_s)
            lane._covers[entry.record.feed] = self._covers[entry.record.feed]
        for report in entry.reports:
            lane._military[report.key] = report.obs.military
        update = lane.detector.update(entry.reports, entry.now, _View(lane, entry.now))
        found = lane._observe(update, entry.sightings)
        if entry.ok:  # it committed before we read it: its coverage counts (the next entry's view needs it)
            r = entry.record
            cover = lane.cover_of(r.feed)
            took_s = r.duration_ms / 1000
            lane.coverage.poll_succeeded(r.feed, cover.scopes, r.started_at, cover.bound_s + took_s, took_s)
        tracking = lane._tracking(update, found, quiet=entry.quiet)
        checked: tuple[Update, list[tuple[Sortie, Happening]]] | None = None
        if entry.replay:
            checked = lane._checked(entry.now)
            tracking = _merged(tracking, lane._tracking(*checked, quiet=entry.quiet))
        try:
            store.save_tracking(replace(tracking, stream=(daemon, entry.id)))
        except Exception:
            lane._recover(store)
            raise
        self.stream = (daemon, entry.id)
        lane._done(update, found)
        if checked is not None:
            lane._done(*checked)

    def _demo_lane(self, store: Store) -> Tracker:
        if self._demo is None:
            self._demo = Tracker(
                self._settings, store, detectors=self._make_detectors, locate=self._locate, synthetic=True,
                covers={f: (c.scopes, c.bound_s) for f, c in self._covers.items()},
            )  # fmt: skip
        return self._demo

    def check(self, store: Store, now: datetime) -> tuple[SortieEvent, ...]:
        """End the sorties whose gap (in covered time) or blindness has run out by `now`."""
        if self._demo is not None:
            self._demo.stream = self.stream
            self._demo.check(store, now)
        self._fresh(store)
        update, found = self._checked(now)
        if update.changed or update.events or found:
            try:
                store.save_tracking(self._tracking(update, found))
            except Exception:
                self._recover(store)
                raise
        self._done(update, found)
        return update.events

    def _checked(self, now: datetime) -> tuple[Update, list[tuple[Sortie, Happening]]]:
        """What check() finds at `now`, not yet saved."""
        update = self.detector.check(now, _View(self, now))
        found = [pair for s in update.changed if not s.is_open for pair in self._finish(s)]
        oldest = min((s.last.at for s in self.detector.open_sorties()), default=now)
        self.coverage.prune(oldest - timedelta(seconds=self._max_bound_s()))
        return update, found

    def next_deadline(self, now: datetime) -> datetime | None:
        """When `check()` could next end a sortie (None without open sorties)."""
        return self.detector.next_deadline(now, _View(self, now))

    # -- the behaviour detectors ------------------------------------------------------------------------

    def _observe(self, update: Update, sightings: Sequence[Sighting]) -> list[tuple[Sortie, Happening]]:
        """Feed each new airborne sighting of an open (or just ended) sortie to the detectors."""
        if not self._detectors:
            return []
        ended = {s.key: s for s in update.changed if not s.is_open}
        found: list[tuple[Sortie, Happening]] = []
        for s in sorted(sightings, key=lambda s: s.obs.position_at):
            if s.obs.on_ground:
                continue
            key = s.key or normalise_registration(s.registration or s.obs.hex_icao)
            sortie = self.detector.open_sortie(key) or ended.get(key)
            if sortie is None or not sortie.start_at <= s.obs.position_at <= sortie.last.at:
                continue
            found += [(sortie, h) for h in self._feed_point(sortie.sortie_id, _sighting_point(s))]
        for sortie in ended.values():
            found += self._finish(sortie)
        return found

    def _feed_point(self, sortie_id: str, point: TrackPoint) -> list[Happening]:
        second = math.floor(point.at.timestamp())
        if second <= self._fed.get(sortie_id, -(2**62)):
            return []  # one point per position second, as the store keeps them
        self._fed[sortie_id] = second
        return [h for d in self._detectors for h in d.observe(sortie_id, point)]

    def _finish(self, sortie: Sortie) -> list[tuple[Sortie, Happening]]:
        self._fed.pop(sortie.sortie_id, None)
        return [(sortie, h) for d in self._detectors for h in d.finish(sortie.sortie_id)]

    # -- saving and telling ----------------------------------------------------------------------------

    def _tracking(self, update: Update, found: Sequence[tuple[Sortie, Happening]], *, quiet: bool = False) -> Tracking:
        """The changes to save, with their alerts (none when `quiet`: a replay nobody asked to alert on)."""
        alerts: list[Alert] = []
        if self.alerts and not quiet:
            entry = self._entries.get
            alerts += [
                self.router.route(alert(self.prefix, self.area, e), e.kind, e.sortie, entry(e.sortie.key))
                for e in update.events
            ]
            alerts += [
                self.router.route(happening_alert(self.prefix, self.area, s, h), h.kind, s, entry(s.key))
                for s, h in found
            ]
            alerts = [a for a in alerts if a.channels]
        # The demo's report times stay out of aircraft_state: they are no real aircraft's.
        last_report_at = {} if self.synthetic else update.last_report_at
        return Tracking(update.changed, last_report_at, alerts, [h for _, h in found], stream=self.stream)

    def _done(self, update: Update, found: Sequence[tuple[Sortie, Happening]]) -> None:
        _log_events(update.events)
        self.metrics.sortie_events(update.events)
        for sortie, h in found:  # one line per episode: its later snapshots (an orbit's laps) are not news
            if h.event_id not in self._announced:
                self._announced.add(h.event_id)
                self.metrics.happening(h.kind)
                log.info(
                    "sortie %s: %s %d at %.3f, %.3f since %s (%s)", sortie.sortie_id, h.kind, h.n, h.lat_deg,
                    h.lon_deg, iso_z(h.started_at), ", ".join(f"{k} {v}" for k, v in h.details.items()),
                    extra={"event": h.kind, "sortie_id": sortie.sortie_id, "hex": sortie.hex_icao, "kind": h.kind,
                           "n": h.n},
                )  # fmt: skip
        ended = {f"{s.sortie_id}/" for s in update.changed if not s.is_open}
        if ended:
            self._announced = {e for e in self._announced if not e.startswith(tuple(ended))}
        if self.alerts and (update.events or found):
            self.on_alerts()
        if update.changed:
            self.on_change()


def _merged(a: Tracking, b: Tracking) -> Tracking:
    """Two sets of changes saved as one (a replayed entry and the check at its time)."""
    sorties = {s.sortie_id: s for s in [*a.sorties, *b.sorties]}  # the later state of a sortie wins
    return Tracking(
        list(sorties.values()), {**a.last_report_at, **b.last_report_at}, [*a.alerts, *b.alerts],
        [*a.happenings, *b.happenings], stream=b.stream,
    )  # fmt: skip


def _sighting_point(s: Sighting) -> TrackPoint:
    """A live sighting as a point, timed to its second as the store keeps it: a restart's replay of the
    stored track then feeds the detectors exactly what they saw live."""
    o = s.obs
    at = from_epoch(math.floor(o.position_at.timestamp()))
    return TrackPoint(
        at, o.lat_deg, o.lon_deg, s.x_m, s.y_m, o.alt_baro_ft, o.gs_kt, o.track_deg, o.squawk, o.emergency, o.feed
    )


def _row_point(row: dict[str, Any]) -> TrackPoint:
    return TrackPoint(
        datetime.fromisoformat(row["time"]), row["lat"], row["lon"], row["x_m"], row["y_m"], row["alt_baro_ft"],
        row["gs_kt"], row["track_deg"], row["squawk"], row["emergency"], row["feed"],
    )  # fmt: skip


def _log_events(events: Sequence[SortieEvent]) -> None:
    for e in events:
        s = e.sortie
        tail = s.registration or s.hex_icao
        fields = {"sortie_id": s.sortie_id, "hex": s.hex_icao, "registration": s.registration}
        if e.kind == "start":
            log.info(
                "sortie %s started: %s (%s) %s at %s", s.sortie_id, tail, s.type_icao or "?", s.first.callsign or "-",
                iso_z(s.start_at), extra={"event": "sortie_started", "callsign": s.first.callsign, **fields},
            )  # fmt: skip
        else:
            log.info(
                "sortie %s ended (%s): %s, %s to %s, callsigns %s",
                s.sortie_id, s.end_reason, tail, iso_z(s.start_at), iso_z(s.last.at), ",".join(s.callsigns) or "-",
                extra={"event": "sortie_ended", "end_reason": s.end_reason, **fields},
            )  # fmt: skip
