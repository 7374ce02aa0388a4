"""The bundled synthetic demo (config/demo/README.md) through OrbitDetector: TORA23's three racetrack laps
over the Yellow Sea are exactly one orbit, and so are the ROK Navy P-8's laps over the East Sea."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import numpy as np
import pytest

from ingest.config import load
from ingest.detect.base import Happening, TrackPoint
from ingest.detect.orbits import OrbitDetector
from ingest.feeds.readsb import parse_readsb
from ingest.geo import Area, Projector
from ingest.models import Observation
from tests.conftest import REPO

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA23 = "ae01d2"
ROKN621 = "71f00d"


@pytest.fixture(scope="module")
def tracks() -> dict[str, list[TrackPoint]]:
    """Each aircraft's airborne positions inside the default area, one per position second, oldest first,
    projected into the area's CRS: what the Tracker feeds an open sortie's detectors."""
    settings = load(REPO / "config" / "ingest.toml", environ={})
    box = settings.area
    area = Area(box.name, box.south, box.west, box.north, box.east)
    projector = Projector(box.crs)
    seen: dict[str, dict[int, Observation]] = {}
    with gzip.open(DEMO) as replay:
        for line in replay:
            parsed = parse_readsb(line, feed="demo", received_at=datetime.now(UTC), source="demo")
            for obs in parsed.observations:
                inside = area.contains(np.array([obs.lat_deg]), np.array([obs.lon_deg]))[0]
                if inside and not obs.on_ground:
                    seen.setdefault(obs.hex_icao, {}).setdefault(int(obs.position_at.timestamp()), obs)
    out: dict[str, list[TrackPoint]] = {}
    for hex_icao, by_second in seen.items():
        observations = [by_second[s] for s in sorted(by_second)]
        xs, ys = projector.project(
            np.array([o.lon_deg for o in observations]), np.array([o.lat_deg for o in observations])
        )
        out[hex_icao] = [
            TrackPoint(o.position_at, o.lat_deg, o.lon_deg, float(x), float(y), o.alt_baro_ft, o.gs_kt,
                       o.track_deg, o.squawk, o.emergency, o.feed)
            for o, x, y in zip(observations, xs, ys, strict=True)
        ]  # fmt: skip
    return out


def orbits(points: list[TrackPoint], sortie_id: str) -> list[Happening]:
    detector = OrbitDetector()
    found = [h for p in points for h in detector.observe(sortie_id, p)]
    return found + detector.finish(sortie_id)


def test_tora23_flies_exactly_one_orbit_of_three_laps(tracks: dict[str, list[TrackPoint]]) -> None:
    points = tracks[TORA23]
    assert len(points) == 170  # the sortie's sightings (tests/integration/test_cli.py counts them too)
    found = orbits(points, "ae01d2-20261120T225558Z")
    assert {h.n for h in found} == {1}
    orbit = found[-1]
    assert orbit.event_id == "ae01d2-20261120T225558Z/orbit/1"
    assert orbit.details["laps"] == pytest.approx(3.0, abs=0.15)
    assert 100.0 <= float(orbit.details["leg_km"]) <= 120.0
    assert 5.0 <= float(orbit.details["orientation_deg"]) <= 15.0  # the legs run a little east of north
    assert orbit.details["direction"] == "left"
    assert orbit.lat_deg == pytest.approx(36.9, abs=0.1) and orbit.lon_deg == pytest.approx(124.6, abs=0.1)
    assert orbit.detected_at.strftime("%H:%M") == "00:10"  # two laps after it began at 23:32
    assert orbit.started_at.strftime("%H:%M") == "23:32"


def test_the_rok_navy_p8_patrol_is_one_orbit_too(tracks: dict[str, list[TrackPoint]]) -> None:
    found = orbits(tracks[ROKN621], "71f00d-20261120T234056Z")
    assert {h.n for h in found} == {1}
    assert 110.0 <= float(found[-1].details["leg_km"]) <= 130.0
    assert float(found[-1].details["laps"]) >= 4.0


def test_no_other_aircraft_orbits_inside_the_area(tracks: dict[str, list[TrackPoint]]) -> None:
    for hex_icao, points in tracks.items():
        if hex_icao not in (TORA23, ROKN621):
            assert orbits(points, hex_icao) == [], hex_icao
