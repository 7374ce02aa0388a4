"""The aerodrome nearest a position: what names a sortie's takeoff or landing ("took off from Osan AB").

Owns the lookup over the bundled list `ingest/data/airports-korea.csv` (OurAirports, public domain; how it
is built and what it holds: ingest/data/README.md and scripts/build_airports.py): large, medium and small
airports with a location indicator between 26-46 N and 117-146 E, from Kadena to Misawa and the Yellow Sea
coast. Heliports are not in it, so a helicopter landing at a helipad is named after no airport.

Pure: reading the bundled file is the only I/O (once, in `Airports.bundled()`); no network, no clock.
Deciding when to ask (a takeoff, a landing) is the caller's job.

Parameters:
- `within_km` 5.0 by default: a runway is up to ~4 km long and OurAirports gives one reference point per
  aerodrome, so a first or last position a few km from it still belongs to it; 5 km is less than the gap
  between any two aerodromes that matter here (Osan and Camp Humphreys are 14 km apart).
- Distances are great-circle on a sphere of EARTH_RADIUS_KM: at 5 km the error against the ellipsoid is
  under 0.5 %, far below the spread of the reference points themselves.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources

BUNDLED = "airports-korea.csv"
EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
KM_PER_DEG_LAT = math.pi * EARTH_RADIUS_KM / 180.0  # ~111.2 km: bounds the latitude band searched
DEFAULT_WITHIN_KM = 5.0


@dataclass(frozen=True, slots=True)
class Airport:
    """One aerodrome of the bundled list."""

    ident: str  # OurAirports ident: the location indicator (RKSO) or a pseudo one (RK52)
    icao: str | None  # the ICAO code when it has one
    iata: str | None
    name: str
    lat_deg: float
    lon_deg: float
    kind: str  # "large", "medium" or "small"
    country: str  # ISO 3166-1 alpha-2


def distance_km(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle distance (haversine) on a sphere of EARTH_RADIUS_KM."""
    phi1, phi2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dphi = phi2 - phi1
    dlam = math.radians(lon2_deg - lon1_deg)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class Airports:
    """A set of aerodromes sorted by latitude: `nearest()` looks only at a band of latitudes around the point."""

    def __init__(self, airports: Iterable[Airport]) -> None:
        self._airports: Sequence[Airport] = sorted(airports, key=lambda a: (a.lat_deg, a.ident))
        self._lats = [a.lat_deg for a in self._airports]

    @classmethod
    def bundled(cls) -> Airports:
        """The list shipped in ingest/data."""
        text = resources.files("ingest").joinpath("data", BUNDLED).read_text(encoding="utf-8")
        return cls.from_csv(text)

    @classmethod
    def from_csv(cls, text: str) -> Airports:
        """Rows of the bundled file's shape: ident, icao, iata, name, lat_deg, lon_deg, kind, country."""
        return cls(_airport(row) for row in csv.DictReader(io.StringIO(text)))

    def __len__(self) -> int:
        return len(self._airports)

    def __iter__(self) -> Iterator[Airport]:
        return iter(self._airports)

    def by_ident(self, ident: str) -> Airport | None:
        """The aerodrome with this ident (or ICAO code), upper case; None when not in the list."""
        key = ident.strip().upper()
        return next((a for a in self._airports if key in (a.ident, a.icao)), None)

    def nearest(self, lat_deg: float, lon_deg: float, within_km: float = DEFAULT_WITHIN_KM) -> Airport | None:
        """The aerodrome nearest the point if it is at most `within_km` away; ties go to the smaller ident."""
        band_deg = within_km / KM_PER_DEG_LAT
        lo = bisect.bisect_left(self._lats, lat_deg - band_deg)
        hi = bisect.bisect_right(self._lats, lat_deg + band_deg)
        best: tuple[float, str, Airport] | None = None
        for airport in self._airports[lo:hi]:
            d = distance_km(lat_deg, lon_deg, airport.lat_deg, airport.lon_deg)
            if d <= within_km and (best is None or (d, airport.ident) < best[:2]):
                best = (d, airport.ident, airport)
        return None if best is None else best[2]


def _airport(row: dict[str, str]) -> Airport:
    return Airport(
        ident=row["ident"],
        icao=row["icao"] or None,
        iata=row["iata"] or None,
        name=row["name"],
        lat_deg=float(row["lat_deg"]),
        lon_deg=float(row["lon_deg"]),
        kind=row["kind"],
        country=row["country"],
    )
