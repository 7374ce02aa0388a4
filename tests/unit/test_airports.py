"""The bundled aerodrome list and the nearest-airport lookup (ingest/detect/airports.py)."""

from __future__ import annotations

import pytest

from ingest.detect.airports import Airport, Airports, distance_km


@pytest.fixture(scope="module")
def airports() -> Airports:
    return Airports.bundled()


@pytest.mark.parametrize(
    ("lat", "lon", "ident"),
    [
        (37.0906, 127.0297, "RKSO"),  # Osan AB, the demo's C-17 ramp position
        (35.9038, 126.6160, "RKJK"),  # Kunsan AB
        (26.3556, 127.7675, "RODN"),  # Kadena AB, where the demo's TORA23 takes off
        (40.7032, 141.3680, "RJSM"),  # Misawa AB
        (35.7485, 139.3480, "RJTY"),  # Yokota AB
        (36.9624, 127.0311, "RKSG"),  # Camp Humphreys, 14 km south of Osan
    ],
)
def test_military_bases_by_coordinates(airports: Airports, lat: float, lon: float, ident: str) -> None:
    found = airports.nearest(lat, lon)
    assert found is not None and found.ident == ident


def test_a_takeoff_roll_a_few_km_from_the_reference_point_still_counts(airports: Airports) -> None:
    # 3 km east of Osan's reference point, along the runway heading: still Osan
    found = airports.nearest(37.0915, 127.0632)
    assert found is not None and found.ident == "RKSO"
    assert 2.5 < distance_km(37.0915, 127.0632, found.lat_deg, found.lon_deg) < 3.5


def test_far_from_any_airport_is_none(airports: Airports) -> None:
    # over the Yellow Sea, and 10 km north-west of Osan (between Osan, Suwon and Humphreys)
    assert airports.nearest(36.5, 125.5) is None
    lat, lon = 37.155, 126.955
    assert all(distance_km(lat, lon, a.lat_deg, a.lon_deg) > 5.0 for a in airports)
    assert airports.nearest(lat, lon) is None
    assert airports.nearest(lat, lon, within_km=15.0) is not None


def test_between_two_airports_the_nearer_wins(airports: Airports) -> None:
    osan, humphreys = airports.by_ident("RKSO"), airports.by_ident("RKSG")
    assert osan is not None and humphreys is not None
    # 40 % of the way from Osan to Humphreys: 5.7 km from Osan, 8.6 from Humphreys
    lat = osan.lat_deg + 0.4 * (humphreys.lat_deg - osan.lat_deg)
    lon = osan.lon_deg + 0.4 * (humphreys.lon_deg - osan.lon_deg)
    assert airports.nearest(lat, lon, within_km=10.0) == osan
    lat = osan.lat_deg + 0.6 * (humphreys.lat_deg - osan.lat_deg)
    lon = osan.lon_deg + 0.6 * (humphreys.lon_deg - osan.lon_deg)
    assert airports.nearest(lat, lon, within_km=10.0) == humphreys


def test_the_bundled_list_is_small_and_holds_only_kept_kinds(airports: Airports) -> None:
    assert 200 < len(airports) < 1000
    assert {a.kind for a in airports} <= {"large", "medium", "small"}
    assert all(26.0 <= a.lat_deg <= 46.0 and 117.0 <= a.lon_deg <= 146.0 for a in airports)
    assert airports.by_ident("rkso") == airports.by_ident("RKSO")
    assert airports.by_ident("NOPE") is None


def test_from_csv_and_ties() -> None:
    text = (
        "ident,icao,iata,name,lat_deg,lon_deg,kind,country\n"
        "BBBB,,,B,37.0,127.0,small,KR\n"
        "AAAA,AAAA,AAA,A,37.0,127.0,small,KR\n"
    )
    airports = Airports.from_csv(text)
    assert airports.nearest(37.0, 127.0) == Airport("AAAA", "AAAA", "AAA", "A", 37.0, 127.0, "small", "KR")
    assert Airports([]).nearest(37.0, 127.0) is None


def test_distance_km() -> None:
    assert distance_km(37.0, 127.0, 37.0, 127.0) == 0.0
    assert distance_km(37.0, 127.0, 38.0, 127.0) == pytest.approx(111.2, abs=0.1)
