"""The JSON shapes that the CLI (`--format json`) and the HTTP API share, built from records; pure."""

from __future__ import annotations

from typing import Any

from ingest.config import FeedSettings
from ingest.models import Sortie
from ingest.timeutil import iso_z

SORTIE_FIELDS = (
    "sortie_id", "hex", "registration", "type", "callsigns", "start", "end", "end_reason", "duration_s",
    "max_alt_baro_ft", "sightings", "previous_sortie_end", "last_seen",
)  # fmt: skip


def sortie_dict(s: Sortie) -> dict[str, Any]:
    """A sortie as `ingest sorties --format json` prints it."""
    return {
        "sortie_id": s.sortie_id, "hex": s.hex_icao, "registration": s.registration, "type": s.type_icao,
        "callsigns": list(s.callsigns), "start": iso_z(s.start_at), "end": iso_z(s.end_at) if s.end_at else None,
        "end_reason": s.end_reason, "duration_s": s.duration_s, "max_alt_baro_ft": s.max_alt_baro_ft,
        "sightings": s.sightings,
        "previous_sortie_end": iso_z(s.previous_sortie_end) if s.previous_sortie_end else None,
        "last_seen": iso_z(s.last_seen_at),
    }  # fmt: skip


def feed_row(fs: FeedSettings, h: dict[str, Any]) -> dict[str, Any]:
    """One feed's health as `ingest feeds --format json` prints it; `state` is disabled (by config),
    never polled, ok, degraded or parked."""
    state = "disabled" if not fs.enabled else h.get("state", "never polled")
    return {
        "feed": fs.name, "kind": fs.kind, "state": state, "last_poll": h.get("at"),
        "last_success": h.get("last_success_at"), "last_error": h.get("last_error_at"),
        "error": h.get("reason") if h.get("failures") else None, "failures": h.get("failures", 0),
        "next_try": h.get("next_try_at") if h.get("failures") else None,
        "polls_1h": h.get("polls", 0), "failed_1h": h.get("failed", 0), "requests_1h": h.get("requests", 0),
        "aircraft_1h": h.get("aircraft", 0), "kept_1h": h.get("kept", 0),
    }  # fmt: skip
