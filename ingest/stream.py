"""The poll stream: how a daemon that polls hands its polls to the daemon that detects sorties, when several
share one PostgreSQL database (README: "Several daemons, one database").

Every daemon stores its polls' sightings itself, and in the same transaction appends one *entry* to the
database's `reports` table: the poll's record, its sightings and every watched report (inside the area or
not), and what the feed covers. The leader reads the entries in the order they committed and runs the
sortie detector on them exactly as a lone daemon runs it on its own polls (tracker.py).

Pure: `encode()` and `decode()` turn a poll into JSON text and back, value for value (times to the
microsecond); nothing here touches the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.models import Observation, PollRecord, Report, Sighting

VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored poll, as the leader reads it from the stream."""

    id: int  # its place in the stream: entries are read in this order
    daemon: str  # the daemon that polled and stored it
    now: datetime  # the polling daemon's clock when it stored the poll (a replay: the recorded time)
    replay: bool  # from a recording: sorties are checked at its own time right after it
    synthetic: bool  # from a synthetic recording (the demo): its own lane, never alerted
    quiet: bool  # alerts nobody (a replay without --alerts): its sorties are recorded, not announced
    ok: bool  # the poll succeeded: it counts as coverage
    record: PollRecord
    sightings: tuple[Sighting, ...]
    reports: tuple[Report, ...]
    scopes: frozenset[str]  # what the feed covers (detect/coverage.py) and for how long after a success
    bound_s: float


def _us(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + us * _US


def _obs(o: Observation) -> list[Any]:
    return [
        o.hex_icao, o.non_icao, _us(o.position_at), o.lat_deg, o.lon_deg, o.alt_baro_ft, o.on_ground, o.alt_geom_ft,
        o.gs_kt, o.track_deg, o.squawk, o.callsign, o.registration, o.type_icao, o.source_type, o.military,
        o.messages, o.feed, o.age_s, o.emergency,
    ]  # fmt: skip


def _observation(v: Sequence[Any]) -> Observation:
    return Observation(
        hex_icao=v[0], non_icao=v[1], position_at=_at(v[2]), lat_deg=v[3], lon_deg=v[4], alt_baro_ft=v[5],
        on_ground=v[6], alt_geom_ft=v[7], gs_kt=v[8], track_deg=v[9], squawk=v[10], callsign=v[11],
        registration=v[12], type_icao=v[13], source_type=v[14], military=v[15], messages=v[16], feed=v[17],
        age_s=v[18], emergency=v[19],
    )  # fmt: skip


def encode(
    record: PollRecord,
    sightings: Sequence[Sighting],
    reports: Sequence[Report],
    *,
    now: datetime,
    ok: bool,
    replay: bool = False,
    synthetic: bool = False,
    quiet: bool = False,
) -> str:
    """A poll as the JSON text of its stream entry. An observation that is both a report and a sighting (most
    are) is written once."""
    observations: list[list[Any]] = []
    index: dict[int, int] = {}

    def ref(o: Observation) -> int:
        i = index.get(id(o))
        if i is None:
            i = index[id(o)] = len(observations)
            observations.append(_obs(o))
        return i

    r = record
    record_row = [
        r.feed, _us(r.started_at), r.duration_ms, r.requests, r.http_status, r.aircraft, r.matched, r.kept,
        r.stored, r.rejected, r.error,
    ]  # fmt: skip
    doc = {
        "v": VERSION,
        "now": _us(now),
        "replay": replay,
        "synthetic": synthetic,
        "quiet": quiet,
        "ok": ok,
        "record": record_row,
        "reports": [[p.key, p.registration, p.type_icao, ref(p.obs), p.inside] for p in reports],
        "sightings": [[ref(s.obs), s.registration, s.type_icao, s.x_m, s.y_m, s.key] for s in sightings],
    }
    doc["obs"] = observations
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def decode(entry_id: int, daemon: str, scopes: str, bound_s: float, body: str) -> Entry:
    """A stream row back into its poll; raises ValueError for a body this version cannot read."""
    doc = json.loads(body)
    if doc.get("v") != VERSION:
        raise ValueError(f"stream entry {entry_id}: version {doc.get('v')!r}, this ingest reads {VERSION}")
    observations = [_observation(v) for v in doc["obs"]]
    rec = doc["record"]
    record = PollRecord(rec[0], _at(rec[1]), *rec[2:])
    return Entry(
        id=entry_id,
        daemon=daemon,
        now=_at(doc["now"]),
        replay=bool(doc["replay"]),
        synthetic=bool(doc["synthetic"]),
        quiet=bool(doc.get("quiet", False)),
        ok=bool(doc["ok"]),
        record=record,
        sightings=tuple(Sighting(observations[i], reg, typ, x, y, key) for i, reg, typ, x, y, key in doc["sightings"]),
        reports=tuple(Report(key, reg, typ, observations[i], inside) for key, reg, typ, i, inside in doc["reports"]),
        scopes=frozenset(s for s in scopes.split(",") if s),
        bound_s=bound_s,
    )
