"""What the detectors of a sortie's behaviour (orbits, emergencies) share: their input, their output and
the Protocol each one follows.

The pipeline's Tracker feeds every open sortie's airborne sightings inside the area to each detector,
oldest first and at most one per position second, as `TrackPoint`s, and calls `finish()` when the sortie
ends. A detector answers with `Happening`s: one per episode (an orbit, an emergency), identified by
`(sortie_id, kind, n)`. A detector may hand out the same episode again with fresher details (an orbit's
laps): the store keeps the latest, and the outbox, keyed by `event_id`, alerts on the first only.

After a restart the Tracker replays an open sortie's stored track through fresh detectors; the same track
gives the same episodes with the same `n`, so nothing is alerted twice. Detectors are therefore pure and
deterministic: no I/O, no clock, no randomness; every time comes from the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

# A Happening is a record the read commands make too (`ingest sorties`): it lives in records.py, which
# they load without this module (scripts/bench_cli.py).
from ingest.records import DetailValue, Happening

__all__ = ["DetailValue", "Detector", "Happening", "TrackPoint"]


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One airborne sighting inside the area of an open sortie, as the detectors see it."""

    at: datetime  # position time, UTC
    lat_deg: float
    lon_deg: float
    x_m: float  # easting in the area's projected CRS (EPSG:5179 by default), metres
    y_m: float  # northing, metres
    alt_baro_ft: int | None
    gs_kt: float | None
    track_deg: float | None  # true track over the ground, 0-360; None when the feed did not give it
    squawk: str | None  # four octal digits
    emergency: str | None  # readsb `emergency`: none, general, lifeguard, minfuel, nordo, unlawful, downed, reserved
    feed: str


@runtime_checkable
class Detector(Protocol):
    """A detector of one kind of episode, holding state per open sortie."""

    kind: str

    def observe(self, sortie_id: str, point: TrackPoint) -> list[Happening]:
        """One more point of an open sortie (time order). Returns the episodes this point begins to be
        recognised as (new) or updates (same `n`, fresher details); usually none."""
        ...

    def finish(self, sortie_id: str) -> list[Happening]:
        """The sortie ended: return final snapshots of episodes still in progress (same `n`) and forget
        the sortie."""
        ...
