"""Build ingest/data/airports-korea.csv, the aerodromes that `ingest.detect.airports` names, from OurAirports.

OurAirports publishes its data in the public domain; download the current file from
https://davidmegginson.github.io/ourairports-data/airports.csv and pass its path:

    .venv/bin/python scripts/build_airports.py airports.csv

Kept: aerodromes of type large_airport, medium_airport and small_airport whose ident is a four-character
location indicator (ICAO style: two letters, then two letters or digits, e.g. RKSO, RK52) inside the box
BOX (lat 26-46 N, lon 117-146 E): the Korean Peninsula, the Yellow Sea coast of China, Japan with Okinawa
(Kadena, Misawa, Yokota and Iwakuni are where watched aircraft come from) and Primorye.

Left out, and why:
- heliports, seaplane bases, balloonports and closed fields: a takeoff or landing of a watched aircraft
  near a hospital helipad would be named after it, and Korea alone has hundreds of military helipads;
- local idents (KR-0123, JP-0456, CN-0789): farm strips, ultralight fields and disused strips that no
  aircraft on the watchlist uses, with rough positions; they would triple the file.

Standard library only; the output is sorted by ident with coordinates rounded to 5 decimals (~1 m), so the
same input always gives the same bytes. ingest/data/README.md says which snapshot the bundled file came from.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "ingest/data/airports-korea.csv"

BOX = {"south_deg": 26.0, "north_deg": 46.0, "west_deg": 117.0, "east_deg": 146.0}
KINDS = ("large_airport", "medium_airport", "small_airport")
LOCATION_INDICATOR = re.compile(r"^[A-Z]{2}[A-Z0-9]{2}$")
COORD_DECIMALS = 5
OUTPUT_FIELDS = ("ident", "icao", "iata", "name", "lat_deg", "lon_deg", "kind", "country")


def keep(row: Mapping[str, str]) -> bool:
    """An aerodrome of a kept type with a location indicator, inside BOX."""
    if row.get("type") not in KINDS or not LOCATION_INDICATOR.match(row.get("ident", "")):
        return False
    try:
        lat, lon = float(row["latitude_deg"]), float(row["longitude_deg"])
    except (KeyError, ValueError):
        return False
    return BOX["south_deg"] <= lat <= BOX["north_deg"] and BOX["west_deg"] <= lon <= BOX["east_deg"]


def icao_of(row: Mapping[str, str]) -> str:
    """The ICAO code OurAirports gives, else its GPS code when that looks like one, else empty."""
    for key in ("icao_code", "gps_code"):
        code = (row.get(key) or "").strip()
        if LOCATION_INDICATOR.match(code):
            return code
    return ""


def output_row(row: Mapping[str, str]) -> dict[str, str]:
    return {
        "ident": row["ident"],
        "icao": icao_of(row),
        "iata": (row.get("iata_code") or "").strip(),
        "name": row["name"].strip(),
        "lat_deg": f"{float(row['latitude_deg']):.{COORD_DECIMALS}f}",
        "lon_deg": f"{float(row['longitude_deg']):.{COORD_DECIMALS}f}",
        "kind": row["type"].removesuffix("_airport"),
        "country": row.get("iso_country", ""),
    }


def select(rows: Iterable[Mapping[str, str]]) -> Iterator[dict[str, str]]:
    """The kept rows in output form, sorted by ident."""
    yield from sorted((output_row(row) for row in rows if keep(row)), key=lambda r: r["ident"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("airports_csv", type=Path, help="OurAirports airports.csv")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    with args.airports_csv.open(newline="", encoding="utf-8") as source:
        rows = list(select(csv.DictReader(source)))
    with args.output.open("w", newline="", encoding="utf-8") as target:
        writer = csv.DictWriter(target, fieldnames=OUTPUT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} aerodromes -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
