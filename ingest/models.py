"""Frozen records that cross module boundaries: what a feed reported, what we keep, what a poll did.

Units live in the field names (`_ft`, `_kt`, `_deg`, `_m`); every datetime is tz-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The sortie records live in records.py, which the read commands load without these (scripts/bench_cli.py);
# they are named here too, so every record is importable from models.
from ingest.records import Fix, Place, Sortie, SortieEvent

__all__ = [
    "Alert", "ChannelState", "FeedHealth", "Fix", "Observation", "ParseResult", "Place", "PollRecord", "QueuedEvent",
    "Rejected", "Report", "Sighting", "Sortie", "SortieEvent",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Observation:
    """One aircraft position as a feed reported it, normalised to these units and meanings."""

    hex_icao: str  # 6 lower-case hex digits, '~' removed; non_icao says it was there
    non_icao: bool
    position_at: datetime  # UTC: the feed's `now` minus `seen_pos`, never the envelope time
    lat_deg: float
    lon_deg: float
    alt_baro_ft: int | None  # None when readsb says "ground" (on_ground is then True) or it is absent
    on_ground: bool
    alt_geom_ft: int | None
    gs_kt: float | None
    track_deg: float | None
    squawk: str | None
    callsign: str | None  # stripped; None for "", "00000000", "????????"
    registration: str | None  # the feed's `r` (its aircraft database), not our watchlist's
    type_icao: str | None  # the feed's `t`
    source_type: str  # readsb `type`: adsb_icao, mlat, tisb_other, ... ("unknown" when absent)
    military: bool  # readsb `dbFlags & 1`
    messages: int | None
    feed: str
    age_s: float = 0.0  # how old the position was at the feed's `now` (readsb `seen_pos`)
    emergency: str | None = None  # readsb `emergency` (none, general, lifeguard, minfuel, nordo, unlawful, ...)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be used, with the reason and a cut of the raw value."""

    reason: str
    raw: str  # at most 200 characters
    field: str = "record"  # the field at fault: what "logged once" is counted by


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What one feed response held."""

    observations: tuple[Observation, ...]
    rejected: tuple[Rejected, ...]
    aircraft: int  # records in the response, good or bad
    without_position: int  # good records that carried no position
    feed_now: datetime  # the envelope's `now` (or the receive time when it has none)
    synthetic: bool = False  # the response says it is made up (the bundled demo's `_synthetic` key)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A watched aircraft's position inside the area, projected, as stored."""

    obs: Observation
    registration: str | None  # the watchlist's registration (falls back to the feed's `r`)
    type_icao: str | None  # the watchlist's ICAO type (falls back to the feed's `t`)
    x_m: float
    y_m: float
    key: str = ""  # the aircraft's key in the store (Report.key); empty: derive it from registration or hex


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll of one feed did; stored in feed_polls and printed by `ingest poll`."""

    feed: str
    started_at: datetime
    duration_ms: int
    requests: int
    http_status: int | None
    aircraft: int  # records returned
    matched: int  # watched aircraft among them, anywhere
    kept: int  # matched and inside the area
    stored: int  # new rows (the rest were already stored)
    rejected: int
    error: str | None


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A feed's state after a poll, for `ingest feeds`: ok, degraded (failing, retried soon) or parked."""

    feed: str
    state: str
    at: datetime  # when the poll ended
    failures: int  # failed polls in a row
    degraded_since: datetime | None
    next_try_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Report:
    """A watched aircraft's position as the sortie detector sees it, inside the area or not."""

    key: str  # the watched aircraft: its upper-case registration, or its first hex without one
    registration: str | None
    type_icao: str | None
    obs: Observation
    inside: bool


@dataclass(frozen=True, slots=True)
class Alert:
    """One event for the outbox (alerts/messages.py builds it): its stable id, its MQTT topic and JSON payload
    (the neutral event, as the `mqtt` channel publishes it unchanged), what the watchlist says of the aircraft
    (`facts`, JSON), and the channels it goes to (alerts/routing.py), each delivered on its own."""

    event_id: str
    topic: str
    payload: str
    facts: str = ""  # JSON object: key, operator, type_name, category, tags (alerts/routing.py)
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event waiting in the outbox for one channel: the outbox row and that channel's progress on it."""

    outbox_id: int
    event_id: str
    topic: str
    payload: str  # the neutral event as JSON (alerts/messages.py)
    facts: str  # JSON object, "" for rows from before channels existed
    progress: str = ""  # channel-specific, e.g. which of an apprise channel's URLs already took it


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One alert channel's delivery state, as the database holds it (`ingest alerts status`)."""

    channel: str
    kind: str
    queued: int  # events waiting for it
    delivered: int
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int  # failed attempts in a row
    next_try_at: datetime | None  # backing off until then (Retry-After honoured)
    parked_until: datetime | None  # refused for good (401/403/404) until then
    memo: str = ""  # channel-specific (homeassistant: the discovery topics it published, to remove them)
