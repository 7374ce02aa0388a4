"""The neutral event as channels read it, and the one function that writes its human text. Pure.

An event is an outbox row: its JSON payload (alerts/messages.py, what the `mqtt` channel publishes as it
is) and the watchlist's words for the aircraft (`facts`, alerts/routing.py). `describe()` turns it into a
title and one sentence for a phone, shared by every channel that shows text (apprise, webhook):

    USAF Boeing RC-135W 62-4125 (TORA23) entered the Korean Peninsula area at 31,000 ft, 2 days after its
    previous sortie ended. 22:55 UTC (07:55 KST, 21 Nov).

Times are UTC, and also in a channel's `timezone` when it has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingest.alerts.routing import AircraftFacts
from ingest.models import QueuedEvent

TEST = "test"  # the kind of `ingest alerts test` events: never about an aircraft
_END_WORDS = {
    "left_area": "left the {area} area",
    "signal_lost": "fell silent over the {area} area",
    "no_coverage": "went out of our feeds' coverage over the {area} area",
}
_EMERGENCY_SQUAWKS = {"7500": "hijack", "7600": "radio failure", "7700": "general emergency"}


@dataclass(frozen=True, slots=True)
class Event:
    """One queued event, decoded: what channels deliver."""

    outbox_id: int
    event_id: str
    kind: str  # start, end, orbit, emergency (or test)
    topic: str  # its MQTT topic under the [mqtt] prefix it was raised with
    payload: dict[str, Any]
    aircraft: AircraftFacts
    progress: str = ""

    @property
    def sortie_id(self) -> str | None:
        value = self.payload.get("sortie_id")
        return str(value) if value else None

    def body(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The event as one JSON object: the payload, the watchlist's words and `extra` (title, text...)."""
        a = self.aircraft
        return {**self.payload, "operator": a.operator, "type_name": a.type_name, **(extra or {})}


def decode(row: QueuedEvent) -> Event:
    """An outbox row as an Event; a payload that is not a JSON object becomes an empty one (never a crash)."""
    payload = _object(row.payload)
    facts = _object(row.facts) if row.facts else {}
    kind = str(payload.get("event") or row.event_id.rsplit("/", 1)[-1])
    return Event(row.outbox_id, row.event_id, kind, row.topic, payload, AircraftFacts.from_event(payload, facts),
                 row.progress)  # fmt: skip


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str


def who(e: Event) -> str:
    """`USAF Boeing RC-135W 62-4125 (TORA23)`: operator, full type (else the ICAO code), registration (else
    the hex) and callsign, from what is known."""
    a, p = e.aircraft, e.payload
    parts = [a.operator, a.type_name or p.get("type"), p.get("registration") or p.get("hex")]
    text = " ".join(str(x) for x in parts if x) or "An aircraft"
    callsign = p.get("callsign")
    return f"{text} ({callsign})" if callsign else text


def describe(e: Event, tz: ZoneInfo | None = None) -> Text:
    """The title and sentence of an event, for people."""
    p = e.payload
    tail = p.get("registration") or p.get("hex") or "aircraft"
    area = p.get("area") or "watched"
    when = _when(p.get("time"), tz)
    if e.kind == "start":
        title, sentence = _start(e, tail, area)
    elif e.kind == "end":
        title, sentence = _end(e, tail, area)
    elif e.kind == "orbit":
        title, sentence = _orbit(e, tail)
    elif e.kind == "emergency":
        title, sentence = _emergency(e, tail)
    elif e.kind == TEST:
        return Text(f"ingest test alert ({p.get('channel')})", str(p.get("text") or "A test alert from ingest."))
    else:
        title, sentence = f"{tail}: {e.kind}", f"{who(e)}: {e.kind}"
    return Text(title, f"{sentence}. {when}." if when else f"{sentence}.")


def _start(e: Event, tail: str, area: str) -> tuple[str, str]:
    p = e.payload
    place = _place(p.get("took_off_from"))
    sentence = f"{who(e)} took off from {place}" if place else f"{who(e)} entered the {area} area"
    sentence += _altitude(p.get("alt_baro_ft"))
    previous = _ago(p.get("previous_sortie_end"), p.get("time"))
    if previous:
        sentence += f", {previous} after its previous sortie ended"
    return f"{tail}: sortie started", sentence


def _end(e: Event, tail: str, area: str) -> tuple[str, str]:
    p = e.payload
    reason = p.get("end_reason")
    place = _place(p.get("landed_at"))
    if reason == "landed":
        sentence = f"{who(e)} landed" + (f" at {place}" if place else "")
    else:
        sentence = f"{who(e)} " + _END_WORDS.get(str(reason), "ended its sortie over the {area} area").format(area=area)
    duration = p.get("duration_s")
    if isinstance(duration, int | float) and duration > 0:
        sentence += f" after {_duration(duration)}"
    top = p.get("max_alt_baro_ft")
    if isinstance(top, int | float):
        sentence += f", up to {top:,.0f} ft"
    return f"{tail}: sortie ended ({str(reason).replace('_', ' ')})", sentence


def _orbit(e: Event, tail: str) -> tuple[str, str]:
    p = e.payload
    d = _details(p)
    shape = []
    if d.get("laps") is not None:
        shape.append(f"{d['laps']:g} laps")
    if d.get("leg_km"):
        shape.append(f"legs of about {d['leg_km']:.0f} km")
    if d.get("radius_km"):
        shape.append(f"within {d['radius_km']:.0f} km")
    sentence = f"{who(e)} is flying an orbit centred at {_position(p.get('lat'), p.get('lon'))}"
    if shape:
        sentence += f" ({', '.join(shape)})"
    return f"{tail}: orbit {p.get('n') or ''}".rstrip(), sentence + _altitude(p.get("alt_baro_ft"))


def _emergency(e: Event, tail: str) -> tuple[str, str]:
    p = e.payload
    d = _details(p)
    squawk, word = d.get("squawk"), d.get("emergency")
    if squawk:
        what = f"squawks {squawk}" + (f" ({_EMERGENCY_SQUAWKS[squawk]})" if squawk in _EMERGENCY_SQUAWKS else "")
    else:
        what = "declares an emergency" + (f" ({word})" if word and word != "none" else "")
    alt = d.get("alt_baro_ft", p.get("alt_baro_ft"))
    sentence = f"{who(e)} {what} at {_position(p.get('lat'), p.get('lon'))}{_altitude(alt)}"
    return f"{tail}: EMERGENCY {squawk or word or ''}".rstrip(), sentence


def _details(payload: dict[str, Any]) -> dict[str, Any]:
    d = payload.get("details")
    return d if isinstance(d, dict) else {}


def _altitude(alt: Any) -> str:
    return f" at {alt:,.0f} ft" if isinstance(alt, int | float) and not isinstance(alt, bool) else ""


def _position(lat: Any, lon: Any) -> str:
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return "an unknown position"
    return f"{abs(lat):.2f}°{'N' if lat >= 0 else 'S'} {abs(lon):.2f}°{'E' if lon >= 0 else 'W'}"


def _place(value: Any) -> str | None:
    if not isinstance(value, dict) or not value.get("name"):
        return None
    code = value.get("code")
    return f"{value['name']} ({code})" if code and code != value["name"] else str(value["name"])


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _ago(earlier: Any, later: Any) -> str | None:
    """`2 days`, `5 hours`, `40 minutes`: how long before `later` `earlier` was."""
    start, end = _time(earlier), _time(later)
    if start is None or end is None or end < start:
        return None
    seconds = (end - start).total_seconds()
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600:.0f} hours"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _when(text: Any, tz: ZoneInfo | None) -> str | None:
    """`22:55 UTC on 20 Nov 2026`, and `(07:55 KST on 21 Nov)` in the channel's zone."""
    at = _time(text)
    if at is None:
        return None
    utc = f"{at:%H:%M} UTC on {at.day} {at:%b %Y}"
    if tz is None:
        return utc
    local = at.astimezone(tz)
    return f"{utc} ({local:%H:%M} {local.tzname() or ''} on {local.day} {local:%b})".replace("  ", " ")
