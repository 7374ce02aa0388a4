"""Fixtures of the unit tests: large watchlists built from plane-alert-db's whole military list.

tests/fixtures/plane-alert-mil__...FULL_at_bf1e2ba.csv (9,851 rows; ODbL 1.0, see
tests/fixtures/PLANE-ALERT-DB.md) is repeated with shifted hexes and suffixed registrations until the list
has the rows asked for; the lists are written under tmp_path only, never shipped.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"
PLANE_ALERT_MIL = FIXTURES / "plane-alert-mil__sdr-enthusiasts_plane-alert-db__FULL_at_bf1e2ba.csv"

BigWatchlist = Callable[[int], Path]


def write_big_watchlist(path: Path, rows: int) -> Path:
    """A plane-alert-db CSV of `rows` rows with unique hexes, built from the real military list."""
    with PLANE_ALERT_MIL.open(encoding="utf-8", newline="") as fh:
        header, *data = list(csv.reader(fh))
    out: list[list[str]] = []
    used: set[str] = set()
    i = 0
    while len(out) < rows:
        row = list(data[i % len(data)])
        copy = i // len(data)
        row[0] = f"{(int(row[0], 16) + 0x10000 * copy) % 0xFFFFFF:06X}"
        if copy and row[1]:
            row[1] = f"{row[1]}-{copy}"
        i += 1
        if row[0] not in used:
            used.add(row[0])
            out.append(row)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *out])
    return path


@pytest.fixture
def big_watchlist(tmp_path: Path) -> BigWatchlist:
    return lambda rows: write_big_watchlist(tmp_path / f"watchlist-{rows}.csv", rows)
