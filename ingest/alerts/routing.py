"""Which channels an event goes to: each channel's `events` and its filter on the aircraft. Pure.

A channel's filter keys (`registrations`, `hexes`, `types`, `operators`, `tags`, `categories`) each hold
globs (`RC-135*`, `R135`, `62-41??`), matched without regard to case; an empty key matches any aircraft,
a key that is set must match (any of its globs), and every key that is set must: "RC-135s and RQ-4s to my
phone" is `types = ["R135", "Q4"]`. Tags match when any of the aircraft's watchlist tags does.

The facts a filter reads (the watchlist's operator, full type name, category and tags) travel with the
event in the outbox (`Alert.facts`), so every channel describes the aircraft as the watchlist did when the
event was raised.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ingest.config import AlertSettings
from ingest.models import Alert, Sortie
from ingest.watchlist import WatchEntry


@dataclass(frozen=True, slots=True)
class AircraftFacts:
    """What the watchlist says of an aircraft, and how a feed named it."""

    key: str
    registration: str | None
    hex_icao: str
    icao_type: str | None
    operator: str | None = None
    type_name: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()

    def as_json(self) -> str:
        """The facts an outbox row keeps beside its payload (which already names registration, hex and type)."""
        return json.dumps(
            {"key": self.key, "operator": self.operator, "type_name": self.type_name, "category": self.category,
             "tags": list(self.tags)},
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def from_event(cls, payload: dict[str, Any], facts: dict[str, Any]) -> AircraftFacts:
        """The facts of a queued event: its payload's identity and its stored watchlist words."""
        tags = facts.get("tags") or ()
        return cls(
            key=str(facts.get("key") or payload.get("registration") or payload.get("hex") or ""),
            registration=payload.get("registration"),
            hex_icao=str(payload.get("hex") or ""),
            icao_type=payload.get("type"),
            operator=facts.get("operator"),
            type_name=facts.get("type_name"),
            category=facts.get("category"),
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        )


def _any(value: str | None, globs: Sequence[str]) -> bool:
    if value is None:
        return False
    folded = value.casefold()
    return any(fnmatchcase(folded, g.casefold()) for g in globs)


def wants(channel: AlertSettings, kind: str, aircraft: AircraftFacts) -> bool:
    """Whether `channel` takes an event of `kind` about `aircraft`."""
    if kind not in channel.events:
        return False
    checks = (
        (channel.registrations, (aircraft.registration,)),
        (channel.hexes, (aircraft.hex_icao,)),
        (channel.types, (aircraft.icao_type,)),
        (channel.operators, (aircraft.operator,)),
        (channel.categories, (aircraft.category,)),
        (channel.tags, aircraft.tags),
    )
    return all(not globs or any(_any(v, globs) for v in values) for globs, values in checks)


def aircraft_wanted(channel: AlertSettings, aircraft: AircraftFacts) -> bool:
    """Whether `channel`'s filter takes this aircraft, whatever the event (the homeassistant channel's devices)."""
    return any(wants(channel, kind, aircraft) for kind in channel.events)


def facts_of(sortie: Sortie, entry: WatchEntry | None) -> AircraftFacts:
    """An aircraft's facts: the watchlist's entry when it is listed (else only what the feeds said)."""
    if entry is None:
        return AircraftFacts(sortie.key, sortie.registration, sortie.hex_icao, sortie.type_icao,
                             sortie.operator, sortie.type_name)  # fmt: skip
    return AircraftFacts(
        key=sortie.key, registration=sortie.registration, hex_icao=sortie.hex_icao,
        icao_type=entry.icao_type or sortie.type_icao, operator=entry.operator or None,
        type_name=entry.type_name or None, category=entry.category or None, tags=entry.tags,
    )  # fmt: skip


class Router:
    """The channels of one configuration, asked per event."""

    def __init__(self, channels: Sequence[AlertSettings]) -> None:
        self.channels = tuple(channels)

    def __bool__(self) -> bool:
        return bool(self.channels)

    def channels_for(self, kind: str, aircraft: AircraftFacts) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels if wants(c, kind, aircraft))

    def route(self, alert: Alert, kind: str, sortie: Sortie, entry: WatchEntry | None) -> Alert:
        """The alert with its facts and the channels that take it (none: nobody wants it)."""
        aircraft = facts_of(sortie, entry)
        return Alert(alert.event_id, alert.topic, alert.payload, aircraft.as_json(), self.channels_for(kind, aircraft))
