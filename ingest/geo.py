"""The area of interest, the projection into its CRS and the circles that cover it; the only pyproj
importer.

One Transformer is built per Projector and reused: building one costs ~4.5 ms, a reused call on a numpy
array ~0.15 µs a point. `always_xy=True` keeps (lon, lat)
order: EPSG:4326 and EPSG:5179 are both northing-first and would silently return inf otherwise.

A box whose west edge is east of its east edge (west 170, east -170) crosses the antimeridian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError

FloatArray = npt.NDArray[np.float64]

NM_M = 1852.0
_GEOD = Geod(ellps="WGS84")
# readsb and dump1090 measure a circle query's distances on a sphere of this radius (greatcircle()): a
# circle must reach the box's corners by that measure too, or the server drops what flies there.
_SPHERE_M = 6_371_000.0
_CENTRE_DECIMALS = 4  # the precision of the centres in the request URLs
_EDGE_POINTS = 9  # points checked along each edge of a cell, corners included
_CENTRE_SAMPLES = 33  # latitudes tried per pass when placing a cell's centre
_CENTRE_PASSES = 5  # each narrows the bracket 16-fold: ~1e-6 of the row's height
_MAX_COLUMNS = 1 << 16
_SEARCH_MAX_CIRCLES = 24  # larger covers keep their equal rows
_SEARCH_BRANCHES = 2  # column counts tried per row
_SEARCH_STEPS = 20  # bisection steps for a row's north edge (~1e-6 of the box's height)


@dataclass(frozen=True, slots=True)
class Area:
    """A latitude/longitude box, edges included."""

    name: str
    south_deg: float
    west_deg: float
    north_deg: float
    east_deg: float

    def contains(self, lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.bool_]:
        """Which of the positions lie inside the box (across the antimeridian when west > east)."""
        in_lat = (lats >= self.south_deg) & (lats <= self.north_deg)
        if self.west_deg > self.east_deg:
            return in_lat & ((lons >= self.west_deg) | (lons <= self.east_deg))
        return in_lat & (lons >= self.west_deg) & (lons <= self.east_deg)

    @property
    def width_deg(self) -> float:
        """Degrees of longitude from the west edge eastwards to the east edge."""
        span = self.east_deg - self.west_deg
        return span if span >= 0 else span + 360.0


def crs_problem(text: str) -> str | None:
    """Why `text` is not a usable projected CRS, or None when it is."""
    try:
        crs = CRS.from_user_input(text)
    except CRSError as exc:
        return f"unknown CRS {text!r} ({exc})"
    if not crs.is_projected:
        return f"{text!r} is not a projected CRS (x_m/y_m must be metres)"
    return None


class Projector:
    """WGS84 longitude/latitude to metres in one projected CRS."""

    def __init__(self, crs: str) -> None:
        self.crs = crs
        self._transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def project(self, lons: FloatArray, lats: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project arrays of positions at once; a point PROJ cannot place comes back as inf."""
        xs, ys = self._transformer.transform(lons, lats)
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


# -- circles that cover the box --------------------------------------------------------------------

Circle = tuple[float, float, int]  # centre latitude, centre longitude (4 decimals), radius in whole nm


def circle_cover(area: Area, max_radius_nm: int = 250) -> list[Circle]:
    """Few circles of at most `max_radius_nm` that together cover the whole box, edges included.

    The box is cut into rows along parallels, each row into equal cells, one circle around each cell:
    centred on the cell's middle meridian at the latitude nearest its farthest corner, with the radius
    that reaches every point of the cell (its corners) from that centre rounded to 4 decimals, rounded up
    to whole nautical miles. Distances are WGS84 geodesics, or readsb's spherical distance where that is
    longer, so the server finds what flies in the corners too. Rows of equal height are tried first (the
    row count with the fewest circles, then the smallest radius); for small covers a search over row
    heights then looks for fewer circles (the Korean box: two rows of unequal height, one circle each).
    """
    if max_radius_nm < 1:
        raise ValueError(f"max_radius_nm must be at least 1, not {max_radius_nm}")
    south, north, width = area.south_deg, area.north_deg, area.width_deg
    height_m = float(_distance_m(np.array([south]), np.array([0.0]), north, 0.0)[0])
    min_rows = max(1, math.ceil(height_m / (2 * max_radius_nm * NM_M)))
    best: list[Circle] | None = None
    rows = min_rows
    while best is None or (rows <= len(best) and rows <= 2 * min_rows + 2):
        cover = _cover_with_rows(south, north, area.west_deg, width, rows, max_radius_nm)
        if cover is not None and (best is None or _better(cover, best)):
            best = cover
        rows += 1
    assert best is not None  # the loop ends only once a row count fits
    if 1 < len(best) <= _SEARCH_MAX_CIRCLES:
        fewer = _RowSearch(south, north, area.west_deg, width, max_radius_nm).cover(south, len(best) - 1)
        if fewer is not None:
            best = fewer
    return best


def _better(a: list[Circle], b: list[Circle]) -> bool:
    return (len(a), max(c[2] for c in a)) < (len(b), max(c[2] for c in b))


def _cover_with_rows(
    south: float, north: float, west: float, width: float, rows: int, max_nm: int
) -> list[Circle] | None:
    """Each row with its fewest cells; None when some row cannot fit at any column count."""
    circles: list[Circle] = []
    for i in range(rows):
        row_s = south + (north - south) * i / rows
        row_n = south + (north - south) * (i + 1) / rows
        row = _row_cover(row_s, row_n, west, width, max_nm)
        if row is None:
            return None
        circles += row
    return circles


def _row_cells(south: float, north: float, west: float, width: float, columns: int, max_nm: int) -> list[Circle] | None:
    """The row cut into `columns` equal cells, or None when some cell's circle is over `max_nm`. Every
    cell of a row has the same shape, so one centre latitude serves them all."""
    step = width / columns
    lat = _centre_lat(south, north, step)
    if _cell_circles(south, north, west, step, 1, lat)[0][2] > max_nm:  # the others differ only by the
        return None  # rounding of their centres
    out = _cell_circles(south, north, west, step, columns, lat)
    return out if all(c[2] <= max_nm for c in out) else None


def _row_cover(south: float, north: float, west: float, width: float, max_nm: int) -> list[Circle] | None:
    """The fewest equal cells of one row whose circles fit; None when the row is too high for any.

    The count is searched from a flat-earth guess: the guess and one less first (it is usually right or
    one short), then by doubling and bisecting."""
    limit_m = max_nm * NM_M
    half_height_m = float(_distance_m(np.array([south]), np.array([0.0]), north, 0.0)[0]) / 2
    if half_height_m >= limit_m:
        return None

    def cells(columns: int) -> list[Circle] | None:
        return _row_cells(south, north, west, width, columns, max_nm)

    widest_m = _SPHERE_M * max(math.cos(math.radians(south)), math.cos(math.radians(north))) * math.radians(width)
    guess = min(_MAX_COLUMNS, max(1, math.ceil(widest_m / (2 * math.sqrt(limit_m**2 - half_height_m**2)))))
    fit = cells(guess)
    if fit is not None:
        fewer = cells(guess - 1) if guess > 1 else None
        if fewer is None:
            return fit
        low, high, fit = 1, guess - 1, fewer
    else:
        low, step = guess + 1, 1
        while (fit := cells(min(guess + step, _MAX_COLUMNS))) is None:
            if guess + step >= _MAX_COLUMNS:
                return None
            low, step = guess + step + 1, step * 2
        high = min(guess + step, _MAX_COLUMNS)
    while low < high:  # the smallest count in [low, high] that fits; `fit` holds high's cells
        middle = (low + high) // 2
        trial = cells(middle)
        if trial is None:
            low = middle + 1
        else:
            high, fit = middle, trial
    return fit


class _RowSearch:
    """Rows of free height, from the south edge up: each row as high as its column count allows, the
    two smallest workable column counts tried for each row, branches cut by the best cover so far."""

    def __init__(self, south: float, north: float, west: float, width: float, max_nm: int) -> None:
        self.north, self.west, self.width, self.max_nm = north, west, width, max_nm
        self.thin = (north - south) * 1e-6

    def cover(self, south: float, budget: int) -> list[Circle] | None:
        """The fewest circles (at most `budget`) that cover the box from `south` up; None if none."""
        best: list[Circle] | None = None
        branches = 0
        for columns in range(1, budget + 1):
            if best is not None and columns >= len(best):
                break
            row = self._cells(south, self.north, columns)
            if row is not None:  # the rest of the box in one row
                return row if best is None or len(row) < len(best) else best
            top = self._top(south, columns)
            if top is None:
                continue
            rest = self.cover(top, (len(best) - 1 if best else budget) - columns)
            if rest is not None:
                row = self._cells(south, top, columns)
                assert row is not None
                best = row + rest
            branches += 1
            if branches == _SEARCH_BRANCHES:
                break
        return best

    def _cells(self, south: float, north: float, columns: int) -> list[Circle] | None:
        return _row_cells(south, north, self.west, self.width, columns, self.max_nm)

    def _top(self, south: float, columns: int) -> float | None:
        """The highest north edge (below the box's) at which a row of `columns` cells still fits."""
        if self._cells(south, south + self.thin, columns) is None:
            return None
        low, high = south + self.thin, self.north
        for _ in range(_SEARCH_STEPS):
            middle = (low + high) / 2
            if self._cells(south, middle, columns) is None:
                high = middle
            else:
                low = middle
        return low


def _centre_lat(south: float, north: float, width: float) -> float:
    """The latitude on a cell's middle meridian nearest to its farthest corner (the corners are the
    farthest points of a latitude/longitude cell from any point of that meridian). The reach is unimodal
    in the latitude: each pass samples the bracket and narrows it to the best sample's neighbours."""
    low, high = south, north
    for _ in range(_CENTRE_PASSES):
        candidates = np.linspace(low, high, _CENTRE_SAMPLES)
        lats = np.repeat(candidates, 2)
        corner_lats = np.tile([south, north], _CENTRE_SAMPLES).astype(np.float64)
        reach = _distance_m(corner_lats, np.full(lats.size, width / 2), lats, 0.0).reshape(-1, 2).max(axis=1)
        best = int(np.argmin(reach))
        low, high = float(candidates[max(best - 1, 0)]), float(candidates[min(best + 1, _CENTRE_SAMPLES - 1)])
    return (low + high) / 2


def _cell_circles(south: float, north: float, west: float, width: float, columns: int, lat: float) -> list[Circle]:
    """The circles of `columns` cells side by side, each from its rounded centre to its farthest edge point."""
    centre_lats = np.full(columns, round(lat, _CENTRE_DECIMALS))
    centre_lons = _normal_lons(west + width * (np.arange(columns, dtype=np.float64) + 0.5)).round(_CENTRE_DECIMALS)
    centre_lons[centre_lons >= 180.0] -= 360.0
    edge = np.linspace(0.0, 1.0, _EDGE_POINTS)
    along_lat = south + (north - south) * edge
    cell_lats = np.concatenate([along_lat, along_lat, np.full(_EDGE_POINTS, south), np.full(_EDGE_POINTS, north)])
    cell_lons = np.concatenate([np.zeros(_EDGE_POINTS), np.full(_EDGE_POINTS, width), width * edge, width * edge])
    points = cell_lats.size
    lefts = west + width * np.arange(columns)
    lats = np.tile(cell_lats, columns)
    lons = (lefts[:, None] + cell_lons[None, :]).ravel()
    reach_m = _distance_m(lats, lons, np.repeat(centre_lats, points), np.repeat(centre_lons, points))
    radii = np.ceil(reach_m.reshape(columns, points).max(axis=1) / NM_M).astype(int)
    return [(float(a), float(o), int(r)) for a, o, r in zip(centre_lats, centre_lons, radii, strict=True)]


def _distance_m(lats: FloatArray, lons: FloatArray, lat: float | FloatArray, lon: float | FloatArray) -> FloatArray:
    """From (lat, lon) to each point: the larger of the WGS84 geodesic and readsb's spherical distance."""
    lons = _normal_lons(lons)
    lat_from = np.broadcast_to(np.asarray(lat, dtype=np.float64), lats.shape)
    lon_from = _normal_lons(np.broadcast_to(np.asarray(lon, dtype=np.float64), lons.shape))
    _, _, geodesic = _GEOD.inv(lon_from, lat_from, lons, lats)
    phi1, phi2 = np.radians(lat_from), np.radians(lats)
    half = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lons - lon_from) / 2) ** 2
    sphere = 2 * _SPHERE_M * np.arcsin(np.sqrt(np.clip(half, 0.0, 1.0)))
    return np.asarray(np.maximum(np.asarray(geodesic, dtype=np.float64), sphere), dtype=np.float64)


def _normal_lon(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def _normal_lons(lons: npt.ArrayLike) -> FloatArray:
    return np.asarray((np.asarray(lons, dtype=np.float64) + 180.0) % 360.0 - 180.0, dtype=np.float64)
