"""Alert topics and payloads, pure: what a subscriber receives for a sortie's start and end.

Topics: `{prefix}/sortie/{tail}/start|end`, `tail` being the registration with every character outside
`[A-Za-z0-9._-]` replaced by `_`, or the hex without one. The payload is one JSON object; `event_id` is
stable (`<sortie_id>/<event>`), so a subscriber de-duplicates on it: delivery is at least once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ingest.models import Alert, SortieEvent
from ingest.timeutil import iso_z

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
    }
    if event.kind == "end":
        body.update(
            end_reason=s.end_reason,
            duration_s=s.duration_s,
            max_alt_baro_ft=s.max_alt_baro_ft,
            callsigns=list(s.callsigns),
            sightings=s.sightings,
        )
    return body


def alert(prefix: str, area: str, event: SortieEvent) -> Alert:
    return Alert(event.event_id, topic(prefix, event), json.dumps(payload(event, area), separators=(",", ":")))
