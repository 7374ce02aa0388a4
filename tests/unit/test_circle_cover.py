"""`ingest.geo.circle_cover`: every point of the box (a dense grid, its edges and corners) lies within some
circle by the WGS84 geodesic and by readsb's spherical distance; radii are whole nautical miles within
the limit; centres carry 4 decimals; boxes across the antimeridian and the equator work."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from ingest.geo import NM_M, Area, circle_cover

GEOD = Geod(ellps="WGS84")
KOREA = Area("Korean Peninsula", 33.0, 124.0, 43.5, 132.0)  # the default [area]
BERING = Area("Bering Sea", 50.0, 170.0, 60.0, -170.0)  # crosses the antimeridian
EQUATOR = Area("Gulf of Guinea", -6.0, -4.0, 6.0, 9.0)
SMALL = Area("Seoul", 37.4, 126.8, 37.7, 127.2)
POLAR = Area("Svalbard", 76.0, 5.0, 81.0, 35.0)


def grid(area: Area, n: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid over the box, its edges and corners included, longitudes in [-180, 180)."""
    lats = np.linspace(area.south_deg, area.north_deg, n)
    offsets = np.linspace(0.0, area.width_deg, n)
    lat_grid, off_grid = np.meshgrid(lats, offsets)
    lons = (area.west_deg + off_grid.ravel() + 180.0) % 360.0 - 180.0
    return lat_grid.ravel(), lons


def sphere_m(lat1: float, lon1: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """readsb's greatcircle(): a sphere of 6371 km."""
    p1, p2 = np.radians(lat1), np.radians(lats)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon1) / 2) ** 2
    return 2 * 6_371_000.0 * np.arcsin(np.sqrt(h))


def uncovered(area: Area, circles: list[tuple[float, float, int]], spherical: bool = False) -> int:
    lats, lons = grid(area)
    covered = np.zeros(lats.size, dtype=bool)
    for lat, lon, nm in circles:
        if spherical:
            dist = sphere_m(lat, lon, lats, lons)
        else:
            _, _, dist = GEOD.inv(np.full(lons.size, lon), np.full(lats.size, lat), lons, lats)
        covered |= np.asarray(dist) <= nm * NM_M
    return int((~covered).sum())


def test_the_korean_box_needs_two_circles() -> None:
    circles = circle_cover(KOREA)
    assert len(circles) == 2  # one circle would need a radius of ~370 nm
    assert all(nm <= 250 for _, _, nm in circles)
    assert uncovered(KOREA, circles) == 0
    # two rows of unequal height, each centred on the box's middle meridian
    assert [lon for _, lon, _ in circles] == [128.0, 128.0]


@pytest.mark.parametrize("radius", [250, 100])
@pytest.mark.parametrize("area", [KOREA, BERING, EQUATOR, SMALL, POLAR], ids=lambda a: a.name)
def test_every_point_of_the_box_is_inside_a_circle(area: Area, radius: int) -> None:
    circles = circle_cover(area, radius)
    assert circles
    for lat, lon, nm in circles:
        assert isinstance(nm, int) and 1 <= nm <= radius
        assert round(lat, 4) == lat and round(lon, 4) == lon
        assert area.south_deg <= lat <= area.north_deg
        assert -180.0 <= lon < 180.0
    assert uncovered(area, circles) == 0
    assert uncovered(area, circles, spherical=True) == 0  # what the server measures


def test_a_box_across_the_antimeridian_is_covered_on_both_sides() -> None:
    circles = circle_cover(BERING)
    lons = [lon for _, lon, _ in circles]
    assert any(lon > 170 for lon in lons) and any(lon < -170 for lon in lons)
    assert all(abs(lon) > 170 for lon in lons)  # never the long way round, over Greenwich
    assert uncovered(BERING, circles) == 0


def test_a_smaller_limit_needs_more_circles() -> None:
    assert len(circle_cover(KOREA, 100)) > len(circle_cover(KOREA, 150)) > len(circle_cover(KOREA))


def test_a_small_box_is_one_small_circle() -> None:
    [(lat, lon, nm)] = circle_cover(SMALL)
    assert (lat, lon) == pytest.approx((37.55, 127.0), abs=0.01)
    assert nm == 14  # half the diagonal of a ~18 x 19 nm box (13.1 nm), rounded up


def test_the_limit_must_be_at_least_one_mile() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        circle_cover(KOREA, 0)


def test_area_contains_across_the_antimeridian() -> None:
    lats = np.array([55.0, 55.0, 55.0, 55.0, 45.0])
    lons = np.array([175.0, -175.0, 180.0, 0.0, 175.0])
    assert BERING.contains(lats, lons).tolist() == [True, True, True, False, False]
    assert BERING.width_deg == 20.0 and KOREA.width_deg == 8.0
    assert KOREA.contains(np.array([37.0, 37.0]), np.array([125.0, 175.0])).tolist() == [True, False]
