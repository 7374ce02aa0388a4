"""The OpenAPI 3.1 document of the read-only HTTP API (api.py serves it at /openapi.json); pure data."""

from __future__ import annotations

from typing import Any

from ingest import __version__
from ingest.detect.sorties import END_REASONS

SIGHTINGS_LIMIT = 1000  # default page size
SORTIES_LIMIT = 100  # as `ingest sorties`
MAX_LIMIT = 10_000


def _param(name: str, where: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema}  # fmt: skip


def _json(description: str, ref: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_WHEN = {"type": "string", "examples": ["2026-11-21T00:00:00Z", "24h", "7d"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
_NUM_OR_NULL = {"type": ["number", "null"]}
_BAD = _json("A bad parameter", "Error")
_PLACE = {
    "type": ["object", "null"],
    "required": ["code", "name"],
    "properties": {"code": {"type": "string", "description": "ICAO code"}, "name": {"type": "string"}},
}
_NOT_FOUND = _json("Unknown tail or sortie (the message suggests the closest known names)", "Error")
_AMBIGUOUS = {
    "description": "A callsign several aircraft flew in the period: the message names them",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "candidates"],
                "properties": {
                    "error": {"type": "string"},
                    "candidates": {"type": "array", "items": {"type": "string"}},
                },
            }
        }
    },
}
_UNAVAILABLE = _json("The database cannot be opened", "Error")
_CURSOR_PARAM = _param("cursor", "query", "The `next` value of the previous page (same other parameters)",
                       {"type": "string"})  # fmt: skip


def _limit_param(default: int) -> dict[str, Any]:
    return _param("limit", "query", f"Page size (default {default})",
                  {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default})  # fmt: skip


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next": {"type": ["string", "null"], "description": "cursor of the next page; null on the last"},
        },
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every endpoint."""
    tail = _param("tail", "path", "Registration (any case or spacing, 62-4125), ICAO hex (ae01d2) or callsign (TORA23)",
                  {"type": "string"})  # fmt: skip
    sortie_param = _param("sortie_id", "path", "<hex>-<start %Y%m%dT%H%M%SZ>, e.g. ae01d2-20261120T225558Z",
                       {"type": "string"})  # fmt: skip
    since = _param("since", "query", "ISO 8601 (naive is UTC) or a duration before now: 90m, 24h, 7d", _WHEN)
    sighting = _object({
        "hex": {"type": "string"}, "registration": _STR_OR_NULL, "type": _STR_OR_NULL, "callsign": _STR_OR_NULL,
        "time": _TIME, "lat": {"type": "number"}, "lon": {"type": "number"}, "x_m": {"type": "number"},
        "y_m": {"type": "number"}, "alt_baro_ft": _INT_OR_NULL, "on_ground": {"type": "boolean"},
        "alt_geom_ft": _INT_OR_NULL, "gs_kt": _NUM_OR_NULL, "track_deg": _NUM_OR_NULL, "squawk": _STR_OR_NULL,
        "source_type": {"type": "string"}, "feed": {"type": "string"},
        "emergency": {**_STR_OR_NULL, "description": "readsb's emergency field (none, general, lifeguard, ...)"},
        "synthetic": {"type": "boolean", "description": "from a synthetic recording (the bundled demo)"},
    })  # fmt: skip
    sortie = _object({
        "sortie_id": {"type": "string"}, "hex": {"type": "string"}, "registration": _STR_OR_NULL,
        "type": _STR_OR_NULL, "callsigns": {"type": "array", "items": {"type": "string"}}, "start": _TIME,
        "end": {**_TIME_OR_NULL, "description": "null while the sortie is open"},
        "end_reason": {"type": ["string", "null"], "enum": [*END_REASONS, None]},
        "duration_s": {"type": "integer"}, "max_alt_baro_ft": _INT_OR_NULL, "sightings": {"type": "integer"},
        "previous_sortie_end": _TIME_OR_NULL, "last_seen": _TIME,
        "took_off_from": {**_PLACE, "description": "the airport within 5 km of the takeoff, if it took off so"},
        "landed_at": {**_PLACE, "description": "the airport within 5 km of the landing, if it landed so"},
        "events": {"type": "array", "description": "what the aircraft did: orbits, emergencies", "items": _object({
            "event_id": {"type": "string", "description": "<sortie_id>/<kind>/<n>"},
            "kind": {"type": "string", "enum": ["orbit", "emergency"]}, "n": {"type": "integer"},
            "started": _TIME, "detected": _TIME, "lat": {"type": "number"}, "lon": {"type": "number"},
            "details": {"type": "object", "description": "orbit: leg_km, orientation_deg, laps, radius_km; "
                        "emergency: squawk, emergency, alt_baro_ft"},
        })},
        "operator": {**_STR_OR_NULL, "description": "the watchlist's operator, e.g. United States Air Force"},
        "type_name": {**_STR_OR_NULL, "description": "the watchlist's full type, e.g. Boeing RC-135W"},
        "synthetic": {"type": "boolean", "description": "from a synthetic recording (the bundled demo)"},
    })  # fmt: skip
    feed = _object({
        "feed": {"type": "string"}, "kind": {"type": "string"},
        "state": {"type": "string",
                  "enum": ["disabled", "never polled", "ok", "never succeeded", "degraded", "parked"]},
        "last_poll": _TIME_OR_NULL, "last_success": _TIME_OR_NULL, "last_error": _TIME_OR_NULL,
        "error": _STR_OR_NULL, "failures": {"type": "integer", "description": "failed polls in a row, across restarts"},
        "next_try": {**_TIME_OR_NULL, "description": "the retry to come while a daemon runs; null once due"},
        "polls_1h": {"type": "integer"}, "failed_1h": {"type": "integer"}, "requests_1h": {"type": "integer"},
        "aircraft_1h": {"type": "integer"}, "kept_1h": {"type": "integer"}, "rejected_1h": {"type": "integer"},
    })  # fmt: skip
    health = {
        "type": "object",
        "required": ["status", "stale_after_s"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "reason": {"type": "string", "description": "why it is unavailable"},
            "last_success": _TIME_OR_NULL, "age_s": _NUM_OR_NULL, "stale_after_s": {"type": "number"},
            "feeds": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }  # fmt: skip
    track = {
        "type": "object",
        "description": "RFC 7946 FeatureCollection (as `ingest export --format geojson`): the sortie as a "
        "LineString Feature of [lon, lat, alt_m] positions (geometry null below two sightings), then a Point "
        "Feature per sighting; alt_m is the barometric altitude in metres, 0 on the ground",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"const": "Feature"},
                    "id": {"type": "string", "description": "the sortie id, on the sortie's Feature"},
                    "geometry": {"type": ["object", "null"]},
                    "properties": {"type": "object", "required": ["kind", "sortie_id"], "properties": {
                        "kind": {"enum": ["sortie", "sighting"]}, "sortie_id": {"type": "string"},
                    }},
                },
            }},
        },
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ingest",
            "version": __version__,
            "description": "Read-only access to the sightings, sorties and feed health stored by ingest. "
            "Lists are paged oldest first: pass `next` back as `cursor` with the same other parameters.",
        },
        "paths": {
            "/api/sightings/{tail}": {"get": {
                "summary": "Sightings of one aircraft, oldest first (as `ingest sightings --format json`)",
                "operationId": "sightings",
                "parameters": [
                    tail, since, _param("until", "query", "ISO 8601 or a duration before now", _WHEN),
                    _limit_param(SIGHTINGS_LIMIT), _CURSOR_PARAM,
                ],
                "responses": {"200": _json("A page of sightings", "SightingPage"), "400": _BAD,
                              "404": _NOT_FOUND, "409": _AMBIGUOUS, "503": _UNAVAILABLE},
            }},
            "/api/sorties": {"get": {
                "summary": "Sorties, oldest first (as `ingest sorties --format json`)",
                "operationId": "sorties",
                "parameters": [
                    _param("tail", "query", "Only this aircraft: registration, ICAO hex or callsign",
                           {"type": "string"}),
                    _param("since", "query", "Sorties that started since: ISO 8601 or a duration", _WHEN),
                    _param("open", "query", "Only sorties still in progress", {"type": "boolean", "default": False}),
                    _limit_param(SORTIES_LIMIT), _CURSOR_PARAM,
                ],
                "responses": {"200": _json("A page of sorties", "SortiePage"), "400": _BAD, "404": _NOT_FOUND,
                              "409": _AMBIGUOUS, "503": _UNAVAILABLE},
            }},
            "/api/sorties/{sortie_id}": {"get": {
                "summary": "One sortie", "operationId": "sortie", "parameters": [sortie_param],
                "responses": {"200": _json("The sortie", "Sortie"), "404": _NOT_FOUND, "503": _UNAVAILABLE},
            }},
            "/api/sorties/{sortie_id}/track.geojson": {"get": {
                "summary": "A sortie's track as GeoJSON", "operationId": "sortieTrack", "parameters": [sortie_param],
                "responses": {"200": _json("The track", "TrackGeoJSON", "application/geo+json"), "404": _NOT_FOUND,
                              "503": _UNAVAILABLE},
            }},
            "/api/feeds": {"get": {
                "summary": "Each configured feed's health (as `ingest feeds --format json`)", "operationId": "feeds",
                "responses": {"200": {"description": "The feeds", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items", "daemon"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Feed"}},
                                   "daemon": {"$ref": "#/components/schemas/Daemon"}},
                }}}}, "503": _UNAVAILABLE},
            }},
            "/api/now": {"get": {
                "summary": "The latest position of every watched aircraft seen in the last hour, open sorties first",
                "operationId": "now",
                "responses": {"200": {"description": "Latest positions", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Position"}}},
                }}}}, "503": _UNAVAILABLE},
            }},
            "/api/coastline.geojson": {"get": {
                "summary": "The land the page draws: Natural Earth 1:50m land (public domain) around the area, "
                "as `ingest map` draws it; cached a day, with an ETag",
                "operationId": "coastline",
                "responses": {"200": {"description": "RFC 7946 FeatureCollection of one land MultiPolygon, cut to "
                                      "its `bbox` (ring edges along the bbox are cuts, not coast)",
                                      "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                              "304": {"description": "Not modified (If-None-Match)"}},
            }},
            "/healthz": {"get": {
                "summary": "200 while some enabled feed succeeded within stale_after_s; 503 with a reason otherwise",
                "operationId": "health",
                "responses": {"200": _json("Polling works", "Health"), "503": _json("Polling is stale", "Health")},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics, text format: the daemon's counters when `ingest run` serves the API, "
                "and gauges read from the database (its size, the outbox, open sorties, each feed's last success)",
                "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text exposition format 0.0.4",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
            "/": {"get": {
                "summary": "The web page: the daemon and feeds, what flies now, the latest sorties, and the chosen "
                "one's track over the coastline (reads this API)",
                "operationId": "page",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            }},
        },
        "components": {
            "schemas": {
                "Error": _object({"error": {"type": "string"}}),
                "Sighting": sighting,
                "Position": {**sighting, "required": [*sighting["required"], "sortie_id", "age_s"], "properties": {
                    **sighting["properties"], "sortie_id": {**_STR_OR_NULL, "description": "its open sortie"},
                    "age_s": {"type": "number", "description": "seconds since this position"},
                }},
                "Daemon": _object({
                    "running": {"type": "boolean", "description": "a daemon's heartbeat is under 30 s old"},
                    "daemon": {**_STR_OR_NULL, "description": "host:pid"}, "started_at": _TIME_OR_NULL,
                    "last_beat_at": _TIME_OR_NULL, "stopped_at": _TIME_OR_NULL, "beat_age_s": _NUM_OR_NULL,
                    "text": {"type": "string"},
                }),
                "SightingPage": _page("Sighting"),
                "Sortie": sortie,
                "SortiePage": _page("Sortie"),
                "Feed": feed,
                "Health": health,
                "TrackGeoJSON": track,
            },
        },
    }  # fmt: skip
