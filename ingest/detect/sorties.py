"""The sortie state machine: turns watched aircraft's reports into sorties and start/end events.

Owns the rules that say when a sortie of a watched aircraft starts and ends: a sortie starts at the
first airborne report inside the area, whether the aircraft took off there or arrived at altitude;
reports less than `gap_s` of *covered time* apart belong to one sortie even across the area's edge or a
callsign change; it ends `landed` on an on-ground report inside the area, `left_area` when only outside
reports came for `gap_s` of covered time, `signal_lost` when none came at all, and `no_coverage` when no
feed covered the aircraft for `max_blind_s` in all since its last sighting inside (its end time is still
that sighting). Covered time (detect/coverage.py) is time in which a feed that would have reported the
aircraft was polled successfully and its result stored: while our feeds fail, the disk is full or the
daemon is down, the gap clock stops, so our own outage never splits a flight into two sorties.

A sortie that starts within `TAKEOFF_WINDOW_S` of an on-ground report (or low, below
`TAKEOFF_BELOW_FT`) took off: `locate` names the airport there; a landing names the airport likewise.

Pure: no I/O and no clock. The caller passes `now`, restores the state saved by the store at start-up
and saves what each `Update` says changed. Which reports are watched and inside the area is decided
before (pipeline's selector); storing sightings, sorties and alerts is left to the store and outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ingest.models import Fix, Observation, Place, Report, Sortie, SortieEvent

# readsb keeps a position "reliable" for 60 s after its last update; older ones are not used here.
FRESH_POSITION_S = 60.0
# A record built from a single message is often a garbled decode (a bit error gives a phantom hex).
MIN_MESSAGES = 2

LANDED = "landed"
LEFT_AREA = "left_area"
SIGNAL_LOST = "signal_lost"
NO_COVERAGE = "no_coverage"
END_REASONS = (LANDED, LEFT_AREA, SIGNAL_LOST, NO_COVERAGE)

DEFAULT_MAX_BLIND_S = 3 * 3600.0
# A first airborne fix this soon after an on-ground report of the aircraft, or this low, is a takeoff.
TAKEOFF_WINDOW_S = 600.0
TAKEOFF_BELOW_FT = 2_500

Locate = Callable[[float, float], Place | None]  # (lat, lon) -> the airport there, if any


class CoverageView(Protocol):
    """How much of a time span the feeds that would report an aircraft were looking (detect/coverage.py)."""

    def covered_s(self, key: str, since: datetime, until: datetime) -> float: ...


class WallClock:
    """Coverage that is always there: every second counts (tests, and callers without feed records)."""

    def covered_s(self, key: str, since: datetime, until: datetime) -> float:
        return max(0.0, (until - since).total_seconds())


ALWAYS_COVERED = WallClock()


@dataclass(frozen=True, slots=True)
class Update:
    """What one `update()` or `check()` did, for the store to save and the outbox to publish."""

    events: tuple[SortieEvent, ...] = ()  # in the order they happened
    changed: tuple[Sortie, ...] = ()  # the latest snapshot of every sortie that changed, open or just ended
    last_report_at: dict[str, datetime] = field(default_factory=dict)  # keys whose last report time moved


class _Changes:
    """Collects one call's events and changed snapshots; a sortie changed twice is saved once, latest."""

    def __init__(self) -> None:
        self.events: list[SortieEvent] = []
        self.changed: dict[str, Sortie] = {}  # by sortie_id, in the order of first change
        self.last_report_at: dict[str, datetime] = {}

    def save(self, sortie: Sortie) -> None:
        self.changed[sortie.sortie_id] = sortie

    def emit(self, kind: str, sortie: Sortie) -> None:
        self.events.append(SortieEvent(kind, sortie))
        self.save(sortie)

    def freeze(self) -> Update:
        return Update(tuple(self.events), tuple(self.changed.values()), dict(self.last_report_at))


class SortieDetector:
    """Per watched aircraft (`Report.key`): the open sortie, the last report processed, the last end.

    The state lives here between calls; every record handed out is a frozen snapshot.
    """

    def __init__(
        self,
        gap_s: float,
        open_sorties: Iterable[Sortie] = (),
        last_report_at: Mapping[str, datetime] = {},
        last_end_at: Mapping[str, datetime] = {},
        *,
        max_blind_s: float = DEFAULT_MAX_BLIND_S,
        locate: Locate | None = None,
        synthetic: bool = False,
    ) -> None:
        """Start from the state the store saved: open sorties, last report time per key, latest end per key."""
        if not gap_s > 0:
            raise ValueError(f"gap_s must be positive, not {gap_s!r}")
        if not max_blind_s > 0:
            raise ValueError(f"max_blind_s must be positive, not {max_blind_s!r}")
        self._gap_s = gap_s
        self._max_blind_s = max_blind_s
        self._locate = locate
        self._synthetic = synthetic  # the sorties it makes come from a synthetic recording (the demo)
        self._ground: dict[str, Observation] = {}  # key -> its latest on-ground report (takeoffs)
        self._open: dict[str, Sortie] = {}
        self._last_report_at = dict(last_report_at)
        self._last_end_at = dict(last_end_at)
        for sortie in open_sorties:
            self._restore(sortie)

    def _restore(self, sortie: Sortie) -> None:
        """Take back one open sortie. Its last_seen_at was processed too, whatever last_report_at says."""
        if not sortie.is_open:
            raise ValueError(f"sortie {sortie.sortie_id} has ended ({sortie.end_reason}); pass open ones only")
        if sortie.key in self._open:
            raise ValueError(
                f"two open sorties for {sortie.key}: {self._open[sortie.key].sortie_id}, {sortie.sortie_id}"
            )
        self._open[sortie.key] = sortie
        known = self._last_report_at.get(sortie.key)
        if known is None or known < sortie.last_seen_at:
            self._last_report_at[sortie.key] = sortie.last_seen_at

    def update(self, reports: Sequence[Report], now: datetime, coverage: CoverageView = ALWAYS_COVERED) -> Update:
        """Apply one poll's reports, oldest first, and say what started, ended and changed.

        `now` ends nothing here: only reports do (a landing, or a report after the gap). Ends on time
        are `check(now)`'s job; the argument keeps the two calls alike for the pipeline.
        """
        changes = _Changes()
        for report in sorted(reports, key=lambda r: (r.obs.position_at, r.key)):
            if self._is_fresh(report):
                self._process(report, changes, coverage)
        return changes.freeze()

    def check(self, now: datetime, coverage: CoverageView = ALWAYS_COVERED) -> Update:
        """End every open sortie whose gap (in covered time) or blindness since its last airborne sighting
        inside has run out by `now`."""
        changes = _Changes()
        for sortie in sorted(self._open.values(), key=lambda s: (s.last.at, s.key)):
            reason = self._silence_ends(sortie, now, coverage)
            if reason is not None:
                self._end(sortie, reason, changes)
        return changes.freeze()

    def next_deadline(self, now: datetime, coverage: CoverageView = ALWAYS_COVERED) -> datetime | None:
        """The earliest time at which `check()` could end an open sortie: when its gap runs out if the
        feeds keep covering it, or when its blindness does if they stay blind. None without open sorties."""
        deadlines = []
        for sortie in self._open.values():
            elapsed_s = max(0.0, (now - sortie.last.at).total_seconds())
            covered_s = min(coverage.covered_s(sortie.key, sortie.last.at, now), elapsed_s)
            blind_s = elapsed_s - covered_s
            wait_s = min(self._gap_s - covered_s, self._max_blind_s - blind_s)
            deadlines.append(now + timedelta(seconds=max(0.0, wait_s)))
        return min(deadlines, default=None)

    def _silence_ends(self, sortie: Sortie, until: datetime, coverage: CoverageView) -> str | None:
        """Why a sortie without an airborne sighting inside since its last one has ended by `until`, if it has:
        gap_s of covered silence (left_area or signal_lost), or max_blind_s without coverage."""
        elapsed_s = (until - sortie.last.at).total_seconds()
        if elapsed_s <= 0:
            return None
        covered_s = coverage.covered_s(sortie.key, sortie.last.at, until)
        if covered_s >= self._gap_s:
            return _silent_end_reason(sortie)
        if elapsed_s - covered_s >= self._max_blind_s:
            return NO_COVERAGE
        return None

    def open_sortie(self, key: str) -> Sortie | None:
        """The aircraft's open sortie, if it has one."""
        return self._open.get(key)

    def open_sorties(self) -> list[Sortie]:
        """The open sorties, oldest start first: what a restarted detector needs back."""
        return sorted(self._open.values(), key=lambda s: (s.first.at, s.key))

    def _is_fresh(self, report: Report) -> bool:
        """False for junk and for positions already processed (a replay, a lagging feed, a second feed)."""
        obs = report.obs
        if obs.messages is not None and obs.messages < MIN_MESSAGES:
            return False
        if obs.age_s > FRESH_POSITION_S:
            return False
        last = self._last_report_at.get(report.key)
        return last is None or obs.position_at > last

    def _process(self, report: Report, changes: _Changes, coverage: CoverageView) -> None:
        """One report: first end a sortie the gap has already closed, then extend, end or start one."""
        at = report.obs.position_at
        self._last_report_at[report.key] = at
        changes.last_report_at[report.key] = at
        sortie = self._open.get(report.key)
        if sortie is not None:
            # Ended before this report came; the reason depends only on what came within the gap.
            reason = self._silence_ends(sortie, at, coverage)
            if reason is not None:
                self._end(sortie, reason, changes)
                sortie = None
        if sortie is not None:
            self._extend(sortie, report, changes)
        elif report.inside and not report.obs.on_ground:
            self._start(report, changes)
        if report.obs.on_ground:
            self._ground[report.key] = report.obs

    def _extend(self, sortie: Sortie, report: Report, changes: _Changes) -> None:
        """A report within the gap: outside only moves last_seen_at, on the ground inside is a landing."""
        obs = report.obs
        if not report.inside:
            self._keep(replace(sortie, last_seen_at=obs.position_at), changes)
        elif obs.on_ground:
            landed = replace(sortie, last_seen_at=obs.position_at, landed_at=self._airport(obs))
            self._end(landed, LANDED, changes)
        else:
            self._keep(_with_sighting(sortie, obs), changes)

    def _start(self, report: Report, changes: _Changes) -> None:
        sortie = _new_sortie(report, self._last_end_at.get(report.key))
        if self._synthetic:
            sortie = replace(sortie, synthetic=True)
        where = self._takeoff(report)
        if where is not None:
            sortie = replace(sortie, took_off_from=self._airport(where))
        self._open[report.key] = sortie
        changes.emit("start", sortie)

    def _takeoff(self, report: Report) -> Observation | None:
        """Where the aircraft took off, when this first airborne report follows one on the ground (or is
        low enough to be a climb-out); None when it arrived at altitude."""
        ground = self._ground.get(report.key)
        obs = report.obs
        if ground is not None and 0 <= (obs.position_at - ground.position_at).total_seconds() <= TAKEOFF_WINDOW_S:
            return ground
        if obs.alt_baro_ft is not None and obs.alt_baro_ft <= TAKEOFF_BELOW_FT:
            return obs
        return None

    def _airport(self, obs: Observation) -> Place | None:
        return self._locate(obs.lat_deg, obs.lon_deg) if self._locate is not None else None

    def _keep(self, sortie: Sortie, changes: _Changes) -> None:
        self._open[sortie.key] = sortie
        changes.save(sortie)

    def _end(self, sortie: Sortie, reason: str, changes: _Changes) -> None:
        """Close a sortie at its last airborne sighting inside, whenever the end was noticed."""
        ended = replace(sortie, end_reason=reason)
        del self._open[sortie.key]
        self._last_end_at[sortie.key] = ended.last.at
        changes.emit("end", ended)


def _silent_end_reason(sortie: Sortie) -> str:
    """Why a sortie with no airborne sighting inside for the gap ended: was the aircraft seen elsewhere?"""
    # Reports are processed in time order and a gap-closed sortie ends before the next one is applied,
    # so last_seen_at > last.at means a report (outside the area) came within the gap.
    return LEFT_AREA if sortie.last_seen_at > sortie.last.at else SIGNAL_LOST


def sortie_id(hex_icao: str, start: datetime) -> str:
    """Stable id: the same first sighting always gives the same id, across restarts and replays."""
    return f"{hex_icao}-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _fix(obs: Observation) -> Fix:
    return Fix(obs.position_at, obs.lat_deg, obs.lon_deg, obs.alt_baro_ft, obs.callsign, obs.feed)


def _new_sortie(report: Report, previous_end: datetime | None) -> Sortie:
    obs = report.obs
    fix = _fix(obs)
    return Sortie(
        sortie_id=sortie_id(obs.hex_icao, obs.position_at),
        key=report.key,
        hex_icao=obs.hex_icao,
        registration=report.registration,
        type_icao=report.type_icao,
        first=fix,
        last=fix,
        last_seen_at=obs.position_at,
        callsigns=_add_callsign((), obs.callsign),
        max_alt_baro_ft=obs.alt_baro_ft,
        sightings=1,
        previous_sortie_end=previous_end,
    )


def _with_sighting(sortie: Sortie, obs: Observation) -> Sortie:
    """The sortie after one more airborne sighting inside the area."""
    return replace(
        sortie,
        last=_fix(obs),
        last_seen_at=obs.position_at,
        callsigns=_add_callsign(sortie.callsigns, obs.callsign),
        max_alt_baro_ft=_higher(sortie.max_alt_baro_ft, obs.alt_baro_ft),
        sightings=sortie.sightings + 1,
    )


def _add_callsign(callsigns: tuple[str, ...], callsign: str | None) -> tuple[str, ...]:
    """Keep the order of first use: an RC-135 may fly out as one callsign and return as another."""
    if callsign is None or callsign in callsigns:
        return callsigns
    return (*callsigns, callsign)


def _higher(a: int | None, b: int | None) -> int | None:
    """The higher altitude; an absent one (None) never wins over a known one."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)
