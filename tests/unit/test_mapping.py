"""ingest.mapping on hand-built tracks: PNG size and pixels (land, sea, the track's altitude colours, the
start and end marks), SVG text, the title, the bundled coastline and its attribution."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.path import Path as MplPath
from PIL import Image

from ingest import mapping
from ingest.detect.base import Happening
from ingest.geo import Area, Projector
from ingest.models import Fix, Sortie
from ingest.timeutil import iso_z

DATA = Path(mapping.__file__).parent / "data"
T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
AREA = Area("Korean Peninsula", 33.0, 124.0, 43.5, 132.0)
PROJECTOR = Projector("EPSG:5179")
LOW_FT, HIGH_FT = 5_000, 30_000  # the colour scale runs 0 to 30,000 ft
SVG = "{http://www.w3.org/2000/svg}"


def row(i: int, lat: float, lon: float, alt: int | None, on_ground: bool = False) -> dict[str, Any]:
    return {
        "hex": "ae01d2", "registration": "62-4125", "type": "R135", "callsign": "TORA23",
        "time": iso_z(T0 + timedelta(minutes=i)), "lat": lat, "lon": lon, "alt_baro_ft": alt, "on_ground": on_ground,
    }  # fmt: skip


def sortie(rows: list[dict[str, Any]], end_reason: str | None = "left_area", **fields: Any) -> Sortie:
    first, last = rows[0], rows[-1]
    start, end = datetime.fromisoformat(first["time"]), datetime.fromisoformat(last["time"])
    values: dict[str, Any] = dict(
        sortie_id=f"{first['hex']}-{start:%Y%m%dT%H%M%SZ}", key="62-4125", hex_icao=first["hex"],
        registration="62-4125", type_icao="R135",
        first=Fix(start, first["lat"], first["lon"], first["alt_baro_ft"], "TORA23", "adsb.lol"),
        last=Fix(end, last["lat"], last["lon"], last["alt_baro_ft"], "TORA23", "adsb.lol"),
        last_seen_at=end, callsigns=("TORA23",), max_alt_baro_ft=HIGH_FT, sightings=len(rows),
        previous_sortie_end=None, end_reason=end_reason,
    )  # fmt: skip
    values.update(fields)
    return Sortie(**values)


def leg(start_i: int, lat0: float, lon0: float, lat1: float, lon1: float, alt: int | None, n: int = 12) -> list:
    return [
        row(start_i + k, lat0 + (lat1 - lat0) * k / (n - 1), lon0 + (lon1 - lon0) * k / (n - 1), alt) for k in range(n)
    ]


# Low up the Yellow Sea, then high east across the peninsula and down the East Sea.
TRACK = leg(0, 34.0, 124.8, 37.2, 125.2, LOW_FT) + leg(12, 37.3, 125.6, 37.3, 129.6, HIGH_FT, 16)
TRACK += leg(28, 37.0, 130.0, 34.5, 130.3, HIGH_FT)
SORTIE = sortie(TRACK)


def turbo(feet: float) -> np.ndarray:
    return np.array(matplotlib.colormaps[mapping.CMAP](feet / HIGH_FT)[:3]) * 255


def pixels_near(rgb: np.ndarray, colour: Any, tolerance: float = 6.0) -> int:
    target = np.asarray(to_rgb(colour) if isinstance(colour, str) else np.asarray(colour) / 255) * 255
    return int((np.abs(rgb - target).max(axis=-1) <= tolerance).sum())


def map_frame(rgb: np.ndarray) -> np.ndarray:
    """The pixels inside the map's frame (no title, colorbar or legend outside it)."""
    height, width = rgb.shape[:2]
    left, bottom, w, h = mapping.MAP_BOX
    return rgb[int(height * (1 - bottom - h)) + 3 : int(height * (1 - bottom)) - 3, int(width * left) + 3 :][
        :, : int(width * w) - 6
    ]


@pytest.fixture(scope="module")
def png() -> np.ndarray:
    data = mapping.render_map([(SORTIE, TRACK)], AREA, PROJECTOR, "png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.size == (1600, 1200)
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_png_is_1600_by_1200_and_not_blank(png: np.ndarray) -> None:
    colours = np.unique(png.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # land, sea, coast, graticule, the track, text antialiased
    white = (png == 255).all(axis=-1).mean()
    assert white < 0.35, f"{white:.0%} of the picture is white"
    frame = map_frame(png)
    total = frame.shape[0] * frame.shape[1]
    assert pixels_near(frame, mapping.SEA, 2) > 0.2 * total
    assert pixels_near(frame, mapping.LAND, 2) > 0.1 * total  # the coastline is there


def test_png_track_has_its_altitude_colours_and_marks(png: np.ndarray) -> None:
    frame = map_frame(png)
    assert pixels_near(frame, turbo(LOW_FT)) > 300
    assert pixels_near(frame, turbo(HIGH_FT)) > 1000
    assert pixels_near(frame, turbo(0.8 * HIGH_FT)) < 20  # no sighting flew at 24,000 ft
    assert pixels_near(frame, mapping.START, 3) > 50
    assert pixels_near(frame, mapping.END, 3) > 50


def test_track_outside_the_area_widens_the_view() -> None:
    far = leg(0, 44.0, 133.0, 46.0, 138.0, HIGH_FT)  # north-east of the box, over the Russian Far East
    image = Image.open(io.BytesIO(mapping.render_map([(sortie(far), far)], AREA, PROJECTOR, "png")))
    frame = map_frame(np.asarray(image.convert("RGB"), dtype=np.float64))
    assert pixels_near(frame, turbo(HIGH_FT)) > 300
    assert pixels_near(frame, mapping.START, 3) > 50 and pixels_near(frame, mapping.END, 3) > 50


def test_svg_is_xml_with_its_text() -> None:
    before = dict(matplotlib.rcParams)
    data = mapping.render_map([(SORTIE, TRACK)], AREA, PROJECTOR, "svg")
    assert dict(matplotlib.rcParams) == before  # no global state left changed
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    text = " ".join(" ".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "62-4125 · R135 · TORA23" in text
    assert "2026-11-20 23:00:00 \N{EN DASH} 23:39:00 UTC" in text
    assert "barometric altitude (ft)" in text and "start 23:00Z" in text and "end 23:39Z" in text
    assert "Korean Peninsula" in text and "Natural Earth" in text and "126°E" in text and "38°N" in text


def test_sighting_without_altitude_is_grey_and_in_the_legend() -> None:
    track = leg(0, 35.0, 125.0, 37.0, 125.0, None) + leg(12, 37.0, 125.5, 37.0, 128.0, HIGH_FT)
    data = mapping.render_map([(sortie(track), track)], AREA, PROJECTOR, "svg")
    assert "no altitude" in " ".join(ET.fromstring(data).itertext())
    png = mapping.render_map([(sortie(track), track)], AREA, PROJECTOR, "png")
    frame = map_frame(np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64))
    assert pixels_near(frame, mapping.NO_ALTITUDE, 3) > 300


def test_several_sorties_and_none() -> None:
    later = [dict(r, time=iso_z(datetime.fromisoformat(r["time"]) + timedelta(days=1))) for r in TRACK]
    second = sortie(later, end_reason=None, callsigns=("TORA24",))
    who, when, which = mapping.title_lines([(SORTIE, TRACK), (second, later)])
    assert who == "62-4125 · R135 · TORA23, TORA24"
    assert when == "2026-11-20 23:00:00 \N{EN DASH} 2026-11-21 23:39:00 UTC · 24 h 39 min"
    assert which.startswith(f"2 sorties ({SORTIE.sortie_id}, {second.sortie_id}) · {2 * len(TRACK)} sightings")
    assert mapping.title_lines([(second, later)])[1].endswith("· in progress")
    assert mapping.title_lines([], "62-4125 since 2026-11-01T00:00:00Z") == (
        "62-4125 since 2026-11-01T00:00:00Z", "no sorties to draw", "",
    )  # fmt: skip
    data = mapping.render_map([], AREA, PROJECTOR, "svg", subject="62-4125 since 2026-11-01T00:00:00Z")
    assert "no sorties to draw" in " ".join(ET.fromstring(data).itertext())
    one = [row(0, 36.0, 126.0, HIGH_FT)]
    assert mapping.render_map([(sortie(one), one)], AREA, PROJECTOR, "png").startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.png", "png"), ("b.PNG", "png"), ("c.svg", "svg"), ("d.jpg", None), ("e", None)]
)
def test_format_from_suffix(name: str, fmt: str | None) -> None:
    assert mapping.map_format(Path(name)) == fmt


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown map format"):
        mapping.render_map([], AREA, PROJECTOR, "jpg")


def test_bundled_coastline_covers_korea_and_says_where_it_is_from() -> None:
    polygons, box = mapping.land()
    west, south, east, north = box
    assert west <= 115.0 and south <= 28.0 and east >= 140.0 and north >= 47.0  # Korea, its seas, Japan's west
    rings = [ring for polygon in polygons for ring in polygon]
    for ring in rings:
        assert (ring[0] == ring[-1]).all()
        assert (ring[:, 0] >= west).all() and (ring[:, 0] <= east).all()
        assert (ring[:, 1] >= south).all() and (ring[:, 1] <= north).all()

    def on_land(lat: float, lon: float) -> bool:
        return any(MplPath(polygon[0]).contains_point((lon, lat)) for polygon in polygons)

    assert on_land(37.57, 126.98) and on_land(39.02, 125.75) and on_land(35.18, 129.08)  # Seoul, Pyongyang, Busan
    assert on_land(33.38, 126.55) and on_land(34.69, 135.50)  # Jeju, Osaka
    assert not on_land(36.0, 124.0) and not on_land(38.0, 131.0)  # the Yellow Sea, the East Sea
    size = (DATA / mapping.COASTLINE).stat().st_size
    assert size < 300_000
    doc = json.loads((DATA / mapping.COASTLINE).read_text())
    assert "Natural Earth" in doc["features"][0]["properties"]["source"]
    readme = (DATA / "README.md").read_text()
    for needed in ("Natural Earth", "public domain", "world-atlas", "2.0.2", "ISC", "scripts/build_coastline.py"):
        assert needed in readme


def test_many_sorties_keep_the_title_and_marks_short() -> None:
    tracks = []
    for n in range(mapping.LABELLED_SORTIES + 2):
        rows = [dict(r, time=iso_z(datetime.fromisoformat(r["time"]) + timedelta(hours=n))) for r in TRACK]
        tracks.append((sortie(rows, callsigns=(f"TORA{n:02d}",)), rows))
    who = mapping.title_lines(tracks)[0]
    assert who.endswith(f"TORA{mapping.TITLE_ITEMS - 1:02d}, …") and f"TORA{mapping.TITLE_ITEMS:02d}" not in who
    text = " ".join(ET.fromstring(mapping.render_map(tracks, AREA, PROJECTOR, "svg")).itertext())
    assert "start (UTC)" in text and "start 23:00Z" not in text and "end 23:39Z" not in text


def test_an_orbit_is_marked_at_its_centre_and_an_emergency_where_it_was() -> None:
    orbit = Happening("orbit", SORTIE.sortie_id, 1, SORTIE.start_at, SORTIE.start_at, 37.0, 124.6,
                      {"laps": 3.0, "radius_km": 60.0})  # fmt: skip
    emergency = Happening("emergency", SORTIE.sortie_id, 1, SORTIE.start_at, SORTIE.start_at, 36.0, 125.0,
                          {"squawk": "7700"})  # fmt: skip
    other = Happening("orbit", "ae01ce-20261120T000000Z", 1, SORTIE.start_at, SORTIE.start_at, 37.0, 124.6, {})
    data = mapping.render_map([(SORTIE, TRACK)], AREA, PROJECTOR, "svg", happenings=[orbit, emergency, other])
    texts = [t.text or "" for t in ET.fromstring(data).iter(f"{SVG}text")]
    assert any(t.startswith("orbit 1, 3 laps") for t in texts)
    assert any(t.startswith("emergency 7700") for t in texts)
    assert "orbit centre" in texts and "emergency" in texts  # the legend
    assert sum(t.startswith("orbit 1") for t in texts) == 1  # another sortie's orbit is not drawn


def test_title_names_the_operator_and_the_full_type_when_known() -> None:
    full = sortie(TRACK, operator="USAF", type_name="Boeing RC-135W")
    assert mapping.title_lines([(full, TRACK)])[0] == "62-4125 · USAF · Boeing RC-135W · TORA23"
    assert mapping.title_lines([(sortie(TRACK, operator="USAF"), TRACK)])[0] == "62-4125 · USAF · R135 · TORA23"
    assert mapping.title_lines([(SORTIE, TRACK)])[0] == "62-4125 · R135 · TORA23"  # the ICAO code, as before
    p8 = sortie(TRACK, registration="230921", operator="Republic of Korea Navy", type_name="Boeing P-8A Poseidon",
                callsigns=("ROKN621",))  # fmt: skip
    assert mapping.title_lines([(full, TRACK), (p8, TRACK)])[0] == (
        "62-4125, 230921 · USAF, Republic of Korea Navy · Boeing RC-135W, Boeing P-8A Poseidon · TORA23, ROKN621"
    )
    text = " ".join(ET.fromstring(mapping.render_map([(full, TRACK)], AREA, PROJECTOR, "svg")).itertext())
    assert "62-4125 · USAF · Boeing RC-135W · TORA23" in text


def test_title_says_synthetic_demo_data_in_red() -> None:
    fake = sortie(TRACK, synthetic=True)
    which = mapping.title_lines([(fake, TRACK)])[2]
    assert which == f"SYNTHETIC demo data · sortie {fake.sortie_id} · {len(TRACK)} sightings · max 30,000 ft"
    later = [dict(r, time=iso_z(datetime.fromisoformat(r["time"]) + timedelta(days=1))) for r in TRACK]
    both = mapping.title_lines([(fake, TRACK), (sortie(later), later)])[2]
    assert both.startswith("SYNTHETIC demo data (1 of 2) · 2 sorties (")
    assert not mapping.title_lines([(SORTIE, TRACK)])[2].startswith("SYNTHETIC")
    root = ET.fromstring(mapping.render_map([(fake, TRACK)], AREA, PROJECTOR, "svg"))
    (line,) = [t for t in root.iter(f"{SVG}text") if "SYNTHETIC" in "".join(t.itertext())]
    style = line.get("style", "")
    assert f"fill: {mapping.SYNTHETIC_COLOUR}" in style and "font-weight: 700" in style, style
    image = Image.open(io.BytesIO(mapping.render_map([(fake, TRACK)], AREA, PROJECTOR, "png")))
    title = np.asarray(image.convert("RGB"), dtype=np.float64)[:150]  # above the map's frame
    assert pixels_near(title, mapping.SYNTHETIC_COLOUR, 8) > 200


def test_the_pages_altitude_colours_are_the_maps() -> None:
    """ingest/static/page.js carries the colormap sampled at PAGE_COLOUR_STOPS stops, the grey and the scale's
    rule, exactly as page_colour_table() writes them (scripts/build_page_colours.py): they cannot drift."""
    page = (Path(mapping.__file__).parent / "static" / "page.js").read_text(encoding="utf-8")
    assert mapping.page_colour_table() in page, "page.js is out of date: run scripts/build_page_colours.py"
    stops = mapping.colour_stops()
    assert len(stops) == mapping.PAGE_COLOUR_STOPS and all(f'"{c}"' in page for c in stops)
    cmap = matplotlib.colormaps[mapping.CMAP]
    at = np.linspace(0.0, 1.0, len(stops))
    assert [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in stops] == [
        tuple(round(v * 255) for v in cmap(t)[:3]) for t in at
    ]
    # Between the stops the page interpolates linearly: within 7/255 of the colormap everywhere.
    table = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in stops], dtype=np.float64)
    t = np.linspace(0.0, 1.0, 4001)
    page_rgb = np.round(np.column_stack([np.interp(t, at, table[:, k]) for k in range(3)]))
    assert np.abs(page_rgb - cmap(t)[:, :3] * 255).max() <= 7.0
    assert f'const NO_ALTITUDE = "{mapping.NO_ALTITUDE}";' in page
    assert f"const TOP_MIN_FT = {mapping.TOP_MIN_FT};" in page and f"const TOP_STEP_FT = {mapping.TOP_STEP_FT};" in page


def test_a_long_title_is_set_smaller_to_fit() -> None:
    p8 = sortie(TRACK, registration="230921", operator="Republic of Korea Navy", type_name="Boeing P-8A Poseidon",
                callsigns=("ROKN621",))  # fmt: skip
    root = ET.fromstring(mapping.render_map([(p8, TRACK)], AREA, PROJECTOR, "svg"))
    (who,) = [t for t in root.iter(f"{SVG}text") if "ROKN621" in "".join(t.itertext())]
    size = re.search(r"font-size: ([0-9.]+)px", who.get("style", ""))
    assert size and 10 < float(size[1]) < 14
    image = Image.open(io.BytesIO(mapping.render_map([(p8, TRACK)], AREA, PROJECTOR, "png")))
    title = np.asarray(image.convert("RGB"))[:100]
    assert (title[:, -16:] == 255).all()  # nothing runs off the picture's right edge
    short = ET.fromstring(mapping.render_map([(SORTIE, TRACK)], AREA, PROJECTOR, "svg"))
    (who,) = [t for t in short.iter(f"{SVG}text") if "TORA23" in "".join(t.itertext()) and "62-4125" in (t.text or "")]
    assert "font-size: 14px" in who.get("style", "")
