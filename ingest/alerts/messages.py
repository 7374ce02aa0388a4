"""Alert topics and payloads, pure: what a subscriber receives for a sortie's start and end.

Topics: `{prefix}/sortie/{tail}/start|end|orbit|emergency`, `tail` being the registration with every
character outside `[A-Za-z0-9._-]` replaced by `_`, or the hex without one. The payload is one JSON object;
`event_id` is stable (`<sortie_id>/start`, `<sortie_id>/end`, `<sortie_id>/orbit/<n>`,
`<sortie_id>/emergency/<n>`), so a subscriber de-duplicates on it: delivery is at least once.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ingest.models import Alert, Sortie, SortieEvent
from ingest.timeutil import iso_z
from ingest.views import place

if TYPE_CHECKING:
    from ingest.detect.base import Happening  # loaded when a happening is made, not by every read

SCHEMA_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def tail_segment(registration: str | None, hex_icao: str) -> str:
    """The topic level naming the aircraft: `62-4125`, `ZZ664`, `N_A` for `N/A`, or the hex."""
    return _UNSAFE.sub("_", registration) if registration else hex_icao


def topic(prefix: str, event: SortieEvent) -> str:
    s = event.sortie
    return f"{prefix}/sortie/{tail_segment(s.registration, s.hex_icao)}/{event.kind}"


def payload(event: SortieEvent, area: str) -> dict[str, Any]:
    """The alert as a JSON-ready dict; `end` adds the sortie's summary."""
    s, fix = event.sortie, event.fix
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event.event_id,
        "event": event.kind,
        "sortie_id": s.sortie_id,
        "hex": s.hex_icao,
        "registration": s.registration,
        "type": s.type_icao,
        "callsign": fix.callsign,
        "time": iso_z(fix.at),
        "lat": fix.lat_deg,
        "lon": fix.lon_deg,
        "alt_baro_ft": fix.alt_baro_ft,
        "area": area,
        "feed": fix.feed,
        "start": iso_z(s.start_at),
        "previous_sortie_end": iso_z(s.previous_sortie_end) if s.previous_sortie_end else None,
        "took_off_from": place(s.took_off_from),
    }
    if event.kind == "end":
        body.update(
            end_reason=s.end_reason,
            duration_s=s.duration_s,
            max_alt_baro_ft=s.max_alt_baro_ft,
            callsigns=list(s.callsigns),
            sightings=s.sightings,
            landed_at=place(s.landed_at),
        )
    return body


def alert(prefix: str, area: str, event: SortieEvent) -> Alert:
    return Alert(event.event_id, topic(prefix, event), json.dumps(payload(event, area), separators=(",", ":")))


def happening_payload(sortie: Sortie, h: Happening, area: str) -> dict[str, Any]:
    """An orbit or emergency as a JSON-ready dict: the sortie's identity, where and when, the details."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": h.event_id,
        "event": h.kind,
        "sortie_id": sortie.sortie_id,
        "hex": sortie.hex_icao,
        "registration": sortie.registration,
        "type": sortie.type_icao,
        "callsign": sortie.last.callsign,
        "time": iso_z(h.detected_at),
        "started": iso_z(h.started_at),
        "lat": h.lat_deg,
        "lon": h.lon_deg,
        "alt_baro_ft": sortie.last.alt_baro_ft,
        "area": area,
        "n": h.n,
        "details": dict(h.details),
    }


def happening_alert(prefix: str, area: str, sortie: Sortie, h: Happening) -> Alert:
    topic_ = f"{prefix}/sortie/{tail_segment(sortie.registration, sortie.hex_icao)}/{h.kind}"
    return Alert(h.event_id, topic_, json.dumps(happening_payload(sortie, h, area), separators=(",", ":")))
