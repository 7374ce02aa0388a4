"""The sortie records: a sortie, the fixes that mark its start and end, the airports it used, its events.

Frozen, with units in the field names and tz-aware UTC datetimes, as every record in models.py (which
names these too). They are apart so that reading sorties (`ingest sorties`, the API) loads only them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Fix:
    """The sighting that marks a sortie's start or end: where, when, how high, who reported it."""

    at: datetime
    lat_deg: float
    lon_deg: float
    alt_baro_ft: int | None
    callsign: str | None
    feed: str


@dataclass(frozen=True, slots=True)
class Place:
    """A named place, such as the airport a sortie took off from: its ICAO code (or OurAirports ident)."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Sortie:
    """A period of airborne presence of one watched aircraft inside the area (a snapshot)."""

    sortie_id: str  # stable: "<hex>-<start as %Y%m%dT%H%M%SZ>"
    key: str
    hex_icao: str
    registration: str | None
    type_icao: str | None
    first: Fix  # the first airborne sighting inside the area
    last: Fix  # the last airborne sighting inside the area; the end time is last.at
    last_seen_at: datetime  # the last report of this aircraft from any feed, inside or outside the area
    callsigns: tuple[str, ...]  # every callsign used, in order of first use
    max_alt_baro_ft: int | None
    sightings: int  # airborne sightings inside the area
    previous_sortie_end: datetime | None  # when this aircraft's previous sortie ended
    end_reason: str | None = None  # None while open; "landed", "left_area", "signal_lost" or "no_coverage"
    took_off_from: Place | None = None  # the airport within 5 km of the takeoff, when it started so
    landed_at: Place | None = None  # the airport within 5 km of the landing, when it ended so
    synthetic: bool = False  # from a recording marked synthetic (the bundled demo): never alerted
    operator: str | None = None  # the watchlist's, when the store read it (e.g. "United States Air Force")
    type_name: str | None = None  # the watchlist's full type (e.g. "Boeing RC-135W"), likewise

    @property
    def is_open(self) -> bool:
        return self.end_reason is None

    @property
    def start_at(self) -> datetime:
        return self.first.at

    @property
    def end_at(self) -> datetime | None:
        return None if self.end_reason is None else self.last.at

    @property
    def duration_s(self) -> int:
        return int((self.last.at - self.first.at).total_seconds())


@dataclass(frozen=True, slots=True)
class SortieEvent:
    """A sortie started or ended; `sortie` is its state right after the event."""

    kind: str  # "start" or "end"
    sortie: Sortie

    @property
    def event_id(self) -> str:
        """Stable: the same event always has the same id, so subscribers can de-duplicate on it."""
        return f"{self.sortie.sortie_id}/{self.kind}"

    @property
    def fix(self) -> Fix:
        """The sighting that triggered the event."""
        return self.sortie.first if self.kind == "start" else self.sortie.last


DetailValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Happening:
    """One episode of something a sortie's aircraft did, found by a detector."""

    kind: str  # "orbit", "emergency": the detector's kind
    sortie_id: str
    n: int  # 1 for the sortie's first episode of this kind, 2 for the next, ...
    started_at: datetime  # when the episode began (its first point)
    detected_at: datetime  # the point at which it was recognised: the alert's time
    lat_deg: float  # where: an orbit's centre; an emergency's position when recognised
    lon_deg: float
    details: Mapping[str, DetailValue] = field(default_factory=dict)  # per kind; units in the names

    @property
    def event_id(self) -> str:
        """Stable and unique: `<sortie_id>/<kind>/<n>`; subscribers de-duplicate on it."""
        return f"{self.sortie_id}/{self.kind}/{self.n}"
