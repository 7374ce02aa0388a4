"""The area of interest and the projection into its CRS; the only pyproj importer.

One Transformer is built per Projector and reused: building one costs ~4.5 ms, a reused call on a numpy
array ~0.15 µs a point (reliability-and-performance.md §5.1-5.2). `always_xy=True` keeps (lon, lat)
order: EPSG:4326 and EPSG:5179 are both northing-first and would silently return inf otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Area:
    """A latitude/longitude box, edges included."""

    name: str
    south_deg: float
    west_deg: float
    north_deg: float
    east_deg: float

    def contains(self, lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.bool_]:
        """Which of the positions lie inside the box."""
        return (lats >= self.south_deg) & (lats <= self.north_deg) & (lons >= self.west_deg) & (lons <= self.east_deg)


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
