"""`ingest.geo` (Projector into EPSG:5179, Area.contains, crs_problem) and `ingest.pipeline.Selector`
(watchlist match, area filter, projection, de-duplication within a poll, the `oldest` cut-off).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from ingest.geo import Area, Projector, crs_problem
from ingest.models import Observation
from ingest.pipeline import Selector
from ingest.watchlist import Watchlist, parse_watchlist
from tests.conftest import observation

# Seoul City Hall, always_xy (lon, lat) -> EPSG:5179 (reliability-and-performance.md §5.1).
SEOUL_LON, SEOUL_LAT = 126.978, 37.5665
SEOUL_X, SEOUL_Y = 953901.17, 1952032.08
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
KOREA = Area("korea", south_deg=33.0, west_deg=124.0, north_deg=39.0, east_deg=132.0)


def make_obs(hex_icao: str = "ae01d2", **fields: Any) -> Observation:
    return observation(hex_icao, **{"position_at": T0, **fields})


@pytest.fixture(scope="module")
def projector() -> Projector:
    return Projector("EPSG:5179")


@pytest.fixture(scope="module")
def watchlist() -> Watchlist:
    return parse_watchlist(
        "ICAO,Registration,Operator,Type,ICAO Type\n"
        "ae01d2,62-4125,USAF,Boeing RC-135W,R135\n"
        "ae6785,????,United States Navy,Boeing P-8A Poseidon,P8\n"
        "71f00d,230921,Republic of Korea Navy,Boeing P-8A Poseidon,\n"
    )


@pytest.fixture
def selector(watchlist: Watchlist, projector: Projector) -> Selector:
    return Selector(watchlist, projector, KOREA)


# -- Projector --------------------------------------------------------------------------------------


def test_projector_reference_point(projector: Projector) -> None:
    xs, ys = projector.project(np.array([SEOUL_LON]), np.array([SEOUL_LAT]))
    assert xs.dtype == np.float64
    assert ys.dtype == np.float64
    assert xs.shape == ys.shape == (1,)
    assert xs[0] == pytest.approx(SEOUL_X, abs=0.01)
    assert ys[0] == pytest.approx(SEOUL_Y, abs=0.01)


def test_projector_vectorised_matches_point_by_point(projector: Projector) -> None:
    rng = np.random.default_rng(5179)
    lons = rng.uniform(124.0, 132.0, 1000)
    lats = rng.uniform(33.0, 39.0, 1000)
    xs, ys = projector.project(lons, lats)
    assert xs.shape == ys.shape == (1000,)
    one_by_one = [projector.project(lons[i : i + 1], lats[i : i + 1]) for i in range(1000)]
    np.testing.assert_allclose(xs, [x[0] for x, _ in one_by_one], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ys, [y[0] for _, y in one_by_one], rtol=0, atol=1e-6)
    assert np.isfinite(xs).all()
    assert np.isfinite(ys).all()


def test_projector_empty_input(projector: Projector) -> None:
    xs, ys = projector.project(np.array([], dtype=np.float64), np.array([], dtype=np.float64))
    assert xs.shape == ys.shape == (0,)


# -- Area -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [
        (36.0, 128.0, True),
        (33.0, 124.0, True),  # south-west corner
        (39.0, 132.0, True),  # north-east corner
        (33.0, 128.0, True),  # south edge
        (39.0, 128.0, True),  # north edge
        (36.0, 124.0, True),  # west edge
        (36.0, 132.0, True),  # east edge
        (32.999, 128.0, False),
        (39.001, 128.0, False),
        (36.0, 123.999, False),
        (36.0, 132.001, False),
        (-36.0, -128.0, False),
    ],
)
def test_area_contains(lat: float, lon: float, inside: bool) -> None:
    assert KOREA.contains(np.array([lat]), np.array([lon])).tolist() == [inside]


def test_area_contains_vectorised() -> None:
    lats = np.array([33.0, 40.0, 36.0, 36.0])
    lons = np.array([132.0, 128.0, 120.0, 127.5])
    assert KOREA.contains(lats, lons).tolist() == [True, False, False, True]


# -- crs_problem ------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["EPSG:5179", "EPSG:32652", "epsg:5179"])
def test_crs_problem_none_for_projected(crs: str) -> None:
    assert crs_problem(crs) is None


def test_crs_problem_unknown_code() -> None:
    problem = crs_problem("EPSG:999999")
    assert problem is not None
    assert problem.startswith("unknown CRS 'EPSG:999999'")


def test_crs_problem_geographic() -> None:
    problem = crs_problem("EPSG:4326")
    assert problem is not None
    assert "'EPSG:4326' is not a projected CRS" in problem


# -- Selector ---------------------------------------------------------------------------------------


def test_watched_inside_is_kept_projected_with_watchlist_identity(selector: Selector) -> None:
    obs = make_obs("ae01d2", registration="FEED-REG", type_icao="B752")
    selection = selector.select([obs])
    assert selection.matched == 1
    (sighting,) = selection.sightings
    assert sighting.obs is obs
    assert sighting.registration == "62-4125"
    assert sighting.type_icao == "R135"
    assert sighting.x_m == pytest.approx(SEOUL_X, abs=0.01)
    assert sighting.y_m == pytest.approx(SEOUL_Y, abs=0.01)
    assert isinstance(sighting.x_m, float)


def test_watchlist_placeholder_and_missing_type_fall_back_to_feed(selector: Selector) -> None:
    placeholder = make_obs("ae6785", registration="169999", type_icao="P8")
    no_type = make_obs("71f00d", registration="X", type_icao="P8", lat_deg=35.0)
    selection = selector.select([placeholder, no_type])
    by_hex = {s.obs.hex_icao: s for s in selection.sightings}
    assert by_hex["ae6785"].registration == "169999"  # the list only has "????"
    assert by_hex["ae6785"].type_icao == "P8"
    assert by_hex["71f00d"].registration == "230921"
    assert by_hex["71f00d"].type_icao == "P8"  # the list's ICAO type is empty


def test_watched_outside_area_is_dropped_but_counted(selector: Selector) -> None:
    outside = make_obs("ae01d2", lat_deg=39.5, lon_deg=-78.3)
    selection = selector.select([outside])
    assert selection.matched == 1
    assert selection.sightings == ()


def test_unwatched_is_dropped(selector: Selector) -> None:
    selection = selector.select([make_obs("abcdef"), make_obs("ae01d2", non_icao=True)])
    assert selection.matched == 0
    assert selection.sightings == ()


def test_empty_poll(selector: Selector) -> None:
    selection = selector.select([])
    assert (selection.matched, selection.sightings) == (0, ())


def test_match_by_feed_registration_only(selector: Selector) -> None:
    rehexed = make_obs("ae0fff", registration="62-4125", type_icao="K35R")
    (sighting,) = selector.select([rehexed]).sightings
    assert sighting.obs.hex_icao == "ae0fff"
    assert sighting.registration == "62-4125"
    assert sighting.type_icao == "R135"


def test_registration_match_uses_watchlist_spelling(projector: Projector) -> None:
    wl = parse_watchlist("ICAO,Registration,ICAO Type\nc0ffee,N123AB,C172\n")
    (sighting,) = Selector(wl, projector, KOREA).select([make_obs("aaaaaa", registration="n123ab")]).sightings
    assert sighting.registration == "N123AB"


def test_one_aircraft_in_one_poll_is_merged_to_its_freshest_position(selector: Selector) -> None:
    # The hex, registration and area queries of one tick (or feeds polled together) all return it.
    first = make_obs("ae01d2", position_at=T0 + timedelta(milliseconds=200))
    again = make_obs("ae01d2", position_at=T0 + timedelta(milliseconds=700), registration="62-4125")
    later = make_obs("ae01d2", position_at=T0 + timedelta(seconds=5), lat_deg=37.6, feed="other")
    selection = selector.select([first, again, later])
    assert selection.matched == 1
    assert [s.obs for s in selection.sightings] == [later]
    assert selection.reports[0].key == "62-4125"


def test_include_military_keeps_unlisted_military_aircraft(watchlist: Watchlist, projector: Projector) -> None:
    mil = make_obs("ae1234", military=True, registration="12-3456", type_icao="C17")
    civil = make_obs("71c011", military=False, registration="HL8001")
    assert Selector(watchlist, projector, KOREA).select([mil, civil]).matched == 0
    with_mil = Selector(watchlist, projector, KOREA, include_military=True)
    selection = with_mil.select([mil, civil])
    assert [(r.key, r.registration, r.type_icao) for r in selection.reports] == [("12-3456", "12-3456", "C17")]
    assert [s.key for s in selection.sightings] == ["12-3456"]


def test_same_second_different_hex_both_kept(selector: Selector) -> None:
    selection = selector.select([make_obs("ae01d2"), make_obs("71f00d")])
    assert selection.matched == 2
    assert sorted(s.obs.hex_icao for s in selection.sightings) == ["71f00d", "ae01d2"]


def test_oldest_drops_older_positions(selector: Selector) -> None:
    old = make_obs("ae01d2", position_at=T0 - timedelta(seconds=61))
    edge = make_obs("71f00d", position_at=T0 - timedelta(seconds=60))
    fresh = make_obs("ae6785", position_at=T0)
    selection = selector.select([old, edge, fresh], oldest=T0 - timedelta(seconds=60))
    assert selection.matched == 2
    assert [s.obs for s in selection.sightings] == [edge, fresh]


def test_without_oldest_old_positions_are_kept(selector: Selector) -> None:
    old = make_obs("ae01d2", position_at=T0 - timedelta(hours=11))
    assert [s.obs for s in selector.select([old]).sightings] == [old]


def test_mixed_poll_order_and_counts(selector: Selector, projector: Projector) -> None:
    busan = make_obs("71f00d", lat_deg=35.1796, lon_deg=129.0756)
    observations = [
        make_obs("abcdef"),
        busan,
        make_obs("ae6785", lat_deg=10.0, lon_deg=10.0),
        make_obs("ae01d2"),
    ]
    selection = selector.select(observations)
    assert selection.matched == 3
    assert [s.obs.hex_icao for s in selection.sightings] == ["71f00d", "ae01d2"]
    xs, ys = projector.project(np.array([129.0756]), np.array([35.1796]))
    assert selection.sightings[0].x_m == pytest.approx(float(xs[0]), abs=1e-6)
    assert selection.sightings[0].y_m == pytest.approx(float(ys[0]), abs=1e-6)
