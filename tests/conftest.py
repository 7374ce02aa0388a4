"""Shared test helpers: generated readsb-v2 responses, a small watchlist and a config writer.

The watchlist (fixtures/watchlist_small.csv) holds four plane-alert-db rows (ODbL 1.0, see
config/WATCHLIST-LICENSE.md): RC-135W 62-4125 (ae01d2), RC-135W 62-4134 (ae01ce), ROK Navy P-8 230921
(71f00d) and US Navy P-8 170478 (ae749d).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.models import Observation

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "samples"
REPO = Path(__file__).parents[1]
SMALL_WATCHLIST = FIXTURES / "watchlist_small.csv"
T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)

# Over the Yellow Sea, inside the Korean box; and one south of it, off Okinawa.
INSIDE = (37.0, 124.8)
OUTSIDE = (30.0, 125.0)


def aircraft(
    hex_icao: str = "ae01d2",
    lat: float | None = INSIDE[0],
    lon: float | None = INSIDE[1],
    alt: int | str | None = 31000,
    flight: str | None = "TORA23  ",
    seen_pos: float = 1.5,
    **extra: Any,
) -> dict[str, Any]:
    """One readsb aircraft object with the fields a real one carries (feeds.md §6.3)."""
    record: dict[str, Any] = {"hex": hex_icao, "type": "adsb_icao", "messages": 1200, "seen": 0.4, "rssi": -12.3}
    if flight is not None:
        record["flight"] = flight
    if alt is not None:
        record["alt_baro"] = alt
    if lat is not None and lon is not None:
        record.update(lat=lat, lon=lon, seen_pos=seen_pos, gs=412.3, track=45.5, squawk="4651")
    record.update(extra)
    return record


def envelope(records: Iterable[dict[str, Any]], now: datetime = T0, jv2: bool = True) -> bytes:
    """A response as adsb.lol (jv2: `ac`, `now` in ms) or readsb's aircraft.json (`aircraft`, s) sends it."""
    ac = list(records)
    if jv2:
        now_ms = int(now.timestamp() * 1000)
        doc: dict[str, Any] = {
            "ac": ac,
            "msg": "No error",
            "now": now_ms,
            "total": len(ac),
            "ctime": now_ms,
            "ptime": 0,
        }
    else:
        doc = {"now": round(now.timestamp(), 3), "messages": 123456, "aircraft": ac}
    return json.dumps(doc).encode()


def two_sorties_recording(tmp_path: Path) -> Path:
    """A replay file in which 62-4134 (ae01ce) flies, lands, takes off again and lands: two sorties."""
    alts: list[int | str] = [20000, 21000, "ground", 3000, 4000, 5000, "ground"]
    lines = [
        envelope([aircraft("ae01ce", 37.0 + 0.05 * i, 124.8 + 0.1 * i, alt=alt, flight="SNOOP01")],
                 now=T0 + timedelta(minutes=i))
        for i, alt in enumerate(alts)
    ]  # fmt: skip
    recording = tmp_path / "two.ndjson"
    recording.write_bytes(b"\n".join(lines) + b"\n")
    return recording


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def render_config(sections: dict[str, dict[str, Any]], feeds: list[dict[str, Any]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    for feed in feeds:
        lines.append("[[feeds]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in feed.items()]
    return "\n".join(lines) + "\n"


def observation(hex_icao: str = "ae01d2", **fields: Any) -> Observation:
    """An Observation of an RC-135 at FL300 over Seoul at T0; any field can be given."""
    values: dict[str, Any] = dict(
        hex_icao=hex_icao, non_icao=False, position_at=T0, lat_deg=37.5665, lon_deg=126.978, alt_baro_ft=30000,
        on_ground=False, alt_geom_ft=30500, gs_kt=420.0, track_deg=90.0, squawk="1234", callsign="TEST01",
        registration=None, type_icao=None, source_type="adsb_icao", military=True, messages=100, feed="test",
    )  # fmt: skip
    values.update(fields)
    return Observation(**values)


ConfigWriter = Callable[..., Path]


def config_sections(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A test config's sections: a SQLite file in tmp_path, the small watchlist, no replay, INFO logs; then
    `sections` on top."""
    base: dict[str, dict[str, Any]] = {
        "database": {"path": str(tmp_path / "ingest.db")},
        "watchlist": {"path": str(SMALL_WATCHLIST)},
        "replay": {"on_start": []},
        "daemon": {"log_level": "INFO"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    """Write a config into tmp_path: a SQLite file there, the small watchlist, no replay, the given feeds."""

    def write(feeds: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Path:
        path = tmp_path / "ingest.toml"
        path.write_text(render_config(config_sections(tmp_path, **sections), feeds or []))
        return path

    return write


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's database lives, once per backend: a new SQLite file's path, or the URL of a new
    PostgreSQL database (tests/pg.py: skipped with a line saying how to run it when no server answers, and
    failed under CI=true). The same test then checks the same behaviour on both."""
    if request.param == "sqlite":
        yield str(tmp_path / "sub" / "ingest.db")
        return
    from tests.pg import fresh_database

    with fresh_database() as url:
        yield url
