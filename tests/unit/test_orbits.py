"""OrbitDetector (ingest/detect/orbits.py) on crafted tracks: racetracks of 50-150 km legs, a tight circle,
transits that must not count, two orbits in one sortie, sparse points, headings from positions only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from ingest.detect.base import Detector, Happening, TrackPoint
from ingest.detect.orbits import OrbitDetector

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
LAT0, LON0 = 36.5, 124.0  # over the Yellow Sea
M_PER_DEG = math.radians(1.0) * 6_371_008.8
KT_MS = 1852.0 / 3600.0
SORTIE = "ae01d2-20261121T000000Z"


@dataclass(frozen=True)
class Leg:
    """A straight (`turn_deg` 0) of `length_m`, or a turn of `turn_deg` (right positive) at `radius_m`."""

    length_m: float = 0.0
    turn_deg: float = 0.0
    radius_m: float = 0.0

    @property
    def path_m(self) -> float:
        return self.length_m if self.turn_deg == 0 else math.radians(abs(self.turn_deg)) * self.radius_m


def straight(km: float) -> Leg:
    return Leg(length_m=km * 1000.0)


def turn(deg: float, radius_km: float) -> Leg:
    return Leg(turn_deg=deg, radius_m=radius_km * 1000.0)


def racetrack(leg_km: float, laps: int, radius_km: float = 8.0, direction: float = -1.0) -> list[Leg]:
    """Left-hand (direction -1) or right-hand laps starting at the end of an inbound leg."""
    lap = [straight(leg_km), turn(180 * direction, radius_km), straight(leg_km), turn(180 * direction, radius_km)]
    return lap * laps


def fly(
    legs: Sequence[Leg],
    speed_kt: float = 400.0,
    every_s: float = 10.0,
    heading_deg: float = 0.0,
    start_xy_m: tuple[float, float] = (0.0, 0.0),
    start: datetime = T0,
    with_track: bool = True,
) -> list[TrackPoint]:
    """Points every `every_s` along the legs at constant speed; lat/lon from x/y (east, north metres)."""
    starts = []  # (x, y, heading) at the start of each leg
    x, y, h = *start_xy_m, heading_deg
    for leg in legs:
        starts.append((x, y, h))
        x, y, h = _along(leg, x, y, h, leg.path_m)
    total_m = sum(leg.path_m for leg in legs)
    points, k, done_m = [], 0, 0.0
    index, leg_start_m = 0, 0.0
    while done_m <= total_m:
        while index < len(legs) - 1 and done_m > leg_start_m + legs[index].path_m:
            leg_start_m += legs[index].path_m
            index += 1
        px, py, ph = _along(legs[index], *starts[index], done_m - leg_start_m)
        points.append(_point(start + timedelta(seconds=k * every_s), px, py, ph if with_track else None, speed_kt))
        k += 1
        done_m = k * every_s * speed_kt * KT_MS
    return points


def _along(leg: Leg, x: float, y: float, h: float, s_m: float) -> tuple[float, float, float]:
    """Position and heading `s_m` metres into the leg."""
    rad = math.radians(h)
    if leg.turn_deg == 0:
        return x + s_m * math.sin(rad), y + s_m * math.cos(rad), h
    side = 1.0 if leg.turn_deg > 0 else -1.0
    r = leg.radius_m
    cx, cy = x + side * r * math.cos(rad), y - side * r * math.sin(rad)
    phi = side * s_m / r
    nh = rad + phi
    return cx - side * r * math.cos(nh), cy + side * r * math.sin(nh), math.degrees(nh) % 360.0


def _point(at: datetime, x: float, y: float, track: float | None, speed_kt: float) -> TrackPoint:
    lat = LAT0 + y / M_PER_DEG
    lon = LON0 + x / (M_PER_DEG * math.cos(math.radians(LAT0)))
    return TrackPoint(at, lat, lon, x, y, 31000, speed_kt, track, "4651", "none", "test")


def run(points: Iterable[TrackPoint], detector: Detector | None = None, sortie: str = SORTIE) -> list[Happening]:
    detector = detector or OrbitDetector()
    out: list[Happening] = []
    for p in points:
        out.extend(detector.observe(sortie, p))
    out.extend(detector.finish(sortie))
    return out


def latest(happenings: Sequence[Happening]) -> dict[int, Happening]:
    """The last snapshot of each episode, by n (what the store keeps)."""
    return {h.n: h for h in happenings}


def axis_diff(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def inbound(km: float = 150.0) -> list[Leg]:
    return [straight(km)]


@pytest.mark.parametrize(("leg_km", "speed_kt"), [(50.0, 380.0), (100.0, 400.0), (150.0, 350.0)])
def test_racetrack_of_three_laps_is_one_orbit(leg_km: float, speed_kt: float) -> None:
    legs = [*inbound(), *racetrack(leg_km, 3), straight(250)]
    happenings = run(fly(legs, speed_kt=speed_kt))
    episodes = latest(happenings)
    assert list(episodes) == [1]
    orbit = episodes[1]
    assert orbit.kind == "orbit" and orbit.sortie_id == SORTIE and orbit.event_id == f"{SORTIE}/orbit/1"
    assert orbit.details["laps"] == pytest.approx(3.0, abs=0.1)
    assert orbit.details["leg_km"] == pytest.approx(leg_km, rel=0.06)
    assert axis_diff(float(orbit.details["orientation_deg"]), 0.0) < 2.0
    assert leg_km / 2 < float(orbit.details["radius_km"]) < leg_km / 2 + 2 * 8.0 + 1.0
    assert orbit.details["direction"] == "left"
    # the centre lies on the racetrack's axis, half a leg north of its start and one turn radius west
    centre_y = (orbit.lat_deg - LAT0) * M_PER_DEG
    centre_x = (orbit.lon_deg - LON0) * M_PER_DEG * math.cos(math.radians(LAT0))
    assert centre_x == pytest.approx(-8000.0, abs=3000.0)
    assert centre_y == pytest.approx(150_000.0 + leg_km * 500.0, abs=leg_km * 100.0)
    # recognised after two laps, on the track, and every later snapshot keeps n and detected_at
    first = happenings[0]
    assert first.details["laps"] == pytest.approx(2.0, abs=0.05)
    assert {h.detected_at for h in happenings} == {first.detected_at}
    assert {h.started_at for h in happenings} == {first.started_at}
    assert first.started_at < first.detected_at


def test_racetrack_updates_on_whole_laps_and_on_finish() -> None:
    legs = [*inbound(), *racetrack(120.0, 4)]  # still orbiting when the sortie ends
    happenings = run(fly(legs))
    assert [h.n for h in happenings] == [1] * len(happenings)
    laps = [h.details["laps"] for h in happenings]
    assert laps[0] == pytest.approx(2.0, abs=0.05)
    assert [round(float(v)) for v in laps[1:-1]] == [3, 4][: len(laps) - 2]
    assert laps[-1] == pytest.approx(4.0, abs=0.1)  # finish() gives the final snapshot, same n
    assert laps == sorted(laps)


def test_rotated_right_hand_racetrack() -> None:
    legs = [*inbound(), *racetrack(100.0, 3, radius_km=10.0, direction=1.0), straight(200)]
    orbit = latest(run(fly(legs, heading_deg=30.0)))[1]
    assert axis_diff(float(orbit.details["orientation_deg"]), 30.0) < 2.0
    assert orbit.details["direction"] == "right"
    assert orbit.details["leg_km"] == pytest.approx(100.0, rel=0.06)


def test_tight_circle_of_three_turns() -> None:
    legs = [straight(60), turn(-3 * 360, 5.0), straight(80)]
    orbit = latest(run(fly(legs, speed_kt=250.0, every_s=5.0)))
    assert list(orbit) == [1]
    assert orbit[1].details["laps"] == pytest.approx(3.0, abs=0.1)
    assert float(orbit[1].details["radius_km"]) == pytest.approx(5.0, abs=0.5)
    assert float(orbit[1].details["leg_km"]) < 2.0


def test_transit_with_one_u_turn_is_no_orbit() -> None:
    legs = [straight(300), turn(180, 10.0), straight(300)]
    assert run(fly(legs)) == []


def test_zig_zag_transit_is_no_orbit() -> None:
    legs = [straight(20)]
    for _ in range(20):
        legs += [turn(60, 5.0), straight(20), turn(-60, 5.0), straight(20)]
    assert run(fly(legs)) == []


def test_circling_over_a_large_area_is_no_orbit() -> None:
    # two slow laps of a 150 km-radius circle turn 720 degrees but never stay within 110 km of a centre
    legs = [straight(10), turn(-2.2 * 360, 150.0)]
    assert run(fly(legs, speed_kt=480.0, every_s=30.0)) == []


def test_two_orbits_far_apart_are_n1_and_n2() -> None:
    legs = [straight(50), turn(-3 * 360, 8.0), straight(300), turn(-3 * 360, 8.0), straight(100)]
    episodes = latest(run(fly(legs, every_s=10.0)))
    assert sorted(episodes) == [1, 2]
    first, second = episodes[1], episodes[2]
    assert first.details["laps"] == pytest.approx(3.0, abs=0.1)
    assert second.details["laps"] == pytest.approx(3.0, abs=0.1)
    gap_km = math.hypot(
        (second.lat_deg - first.lat_deg) * M_PER_DEG / 1000.0,
        (second.lon_deg - first.lon_deg) * M_PER_DEG * math.cos(math.radians(LAT0)) / 1000.0,
    )
    assert gap_km == pytest.approx(300.0, rel=0.1)
    assert first.detected_at < second.started_at


def test_sparse_points_a_minute_apart_still_give_one_orbit() -> None:
    legs = [*inbound(), *racetrack(100.0, 3), straight(250)]
    episodes = latest(run(fly(legs, every_s=60.0)))
    assert list(episodes) == [1]
    assert episodes[1].details["laps"] == pytest.approx(3.0, abs=0.1)
    assert episodes[1].details["leg_km"] == pytest.approx(100.0, rel=0.1)


def test_headings_from_positions_when_track_is_absent() -> None:
    legs = [*inbound(), *racetrack(100.0, 3), straight(250)]
    episodes = latest(run(fly(legs, with_track=False)))
    assert list(episodes) == [1]
    assert episodes[1].details["laps"] == pytest.approx(3.0, abs=0.15)


def test_turning_across_long_silences_is_not_counted() -> None:
    # a circle every 2.4 minutes, seen every 100 s: each heading difference crosses a 90 s bound
    legs = [turn(-10 * 360, 5.0)]
    assert run(fly(legs, speed_kt=420.0, every_s=100.0)) == []


def test_identical_points_twice_through_fresh_detectors_give_identical_happenings() -> None:
    legs = [straight(50), *racetrack(80.0, 3), straight(300), turn(-3 * 360, 6.0), straight(60)]
    points = fly(legs, every_s=7.0)
    first, second = run(points, OrbitDetector()), run(points, OrbitDetector())
    assert first == second and len(latest(first)) == 2


def test_sorties_are_independent_and_finish_forgets() -> None:
    detector = OrbitDetector()
    circle = fly([straight(20), turn(-3 * 360, 6.0)])
    transit = fly([straight(400)])
    out: list[Happening] = []
    for a, b in zip(circle, transit, strict=False):
        out += detector.observe("a", a)
        out += detector.observe("b", replace(b, at=a.at))
    assert {h.sortie_id for h in out} == {"a"}
    assert [h.n for h in detector.finish("a")] == [1]
    assert detector.finish("a") == [] and detector.finish("b") == [] and detector.finish("never") == []


def test_follows_the_detector_protocol() -> None:
    detector = OrbitDetector()
    assert isinstance(detector, Detector) and detector.kind == "orbit"
