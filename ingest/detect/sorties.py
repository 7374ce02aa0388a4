"""The sortie state machine: turns watched aircraft's reports into sorties and start/end events.

Owns the rules that say when a sortie of a watched aircraft starts and ends (peers.md §0, §4.3): a sortie
starts at the first airborne report inside the area, whether the aircraft took off there or arrived at
altitude (plane-notify misses the second case); reports less than `gap_s` apart belong to one sortie
even across the area's edge or a callsign change; it ends `landed` on an on-ground report inside the
area, `left_area` when only outside reports came for `gap_s`, and `signal_lost` when none came at all.

Pure: no I/O and no clock. The caller passes `now`, restores the state saved by the store at start-up
and saves what each `Update` says changed. Which reports are watched and inside the area is decided
before (pipeline's selector); storing sightings, sorties and alerts is left to the store and outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ingest.models import Fix, Observation, Report, Sortie, SortieEvent

# readsb keeps a position "reliable" for 60 s (feeds.md §6.3); older ones are not used here.
FRESH_POSITION_S = 60.0
# A record built from a single message is often a garbled decode (a bit error gives a phantom hex).
MIN_MESSAGES = 2

LANDED = "landed"
LEFT_AREA = "left_area"
SIGNAL_LOST = "signal_lost"


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
    ) -> None:
        """Start from the state the store saved: open sorties, last report time per key, latest end per key."""
        if not gap_s > 0:
            raise ValueError(f"gap_s must be positive, not {gap_s!r}")
        self._gap = timedelta(seconds=gap_s)
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

    def update(self, reports: Sequence[Report], now: datetime) -> Update:
        """Apply one poll's reports, oldest first, and say what started, ended and changed.

        `now` ends nothing here: only reports do (a landing, or a report after the gap). Ends on time
        are `check(now)`'s job; the argument keeps the two calls alike for the pipeline.
        """
        changes = _Changes()
        for report in sorted(reports, key=lambda r: (r.obs.position_at, r.key)):
            if self._is_fresh(report):
                self._process(report, changes)
        return changes.freeze()

    def check(self, now: datetime) -> Update:
        """End every open sortie whose last airborne sighting inside is `gap_s` or more before `now`."""
        changes = _Changes()
        for sortie in sorted(self._open.values(), key=lambda s: (s.last.at, s.key)):
            if now - sortie.last.at >= self._gap:
                self._end(sortie, _silent_end_reason(sortie), changes)
        return changes.freeze()

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

    def _process(self, report: Report, changes: _Changes) -> None:
        """One report: first end a sortie the gap has already closed, then extend, end or start one."""
        at = report.obs.position_at
        self._last_report_at[report.key] = at
        changes.last_report_at[report.key] = at
        sortie = self._open.get(report.key)
        if sortie is not None and at - sortie.last.at >= self._gap:
            # Ended before this report came; the reason depends only on what came within the gap.
            self._end(sortie, _silent_end_reason(sortie), changes)
            sortie = None
        if sortie is not None:
            self._extend(sortie, report, changes)
        elif report.inside and not report.obs.on_ground:
            self._start(report, changes)

    def _extend(self, sortie: Sortie, report: Report, changes: _Changes) -> None:
        """A report within the gap: outside only moves last_seen_at, on the ground inside is a landing."""
        obs = report.obs
        if not report.inside:
            self._keep(replace(sortie, last_seen_at=obs.position_at), changes)
        elif obs.on_ground:
            self._end(replace(sortie, last_seen_at=obs.position_at), LANDED, changes)
        else:
            self._keep(_with_sighting(sortie, obs), changes)

    def _start(self, report: Report, changes: _Changes) -> None:
        sortie = _new_sortie(report, self._last_end_at.get(report.key))
        self._open[report.key] = sortie
        changes.emit("start", sortie)

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
