"""ingest.export on hand-built sorties and tracks: structure, units, coordinate order, XML escaping."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest import export
from ingest.models import Fix, Sortie
from ingest.timeutil import iso_z

FIELDS = (
    "hex", "registration", "type", "callsign", "time", "lat", "lon", "x_m", "y_m", "alt_baro_ft", "on_ground",
    "alt_geom_ft", "gs_kt", "track_deg", "squawk", "source_type", "feed",
)  # fmt: skip
KML = "{http://www.opengis.net/kml/2.2}"
GPX = "{http://www.topografix.com/GPX/1/1}"
T0 = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
NASTY_REG = "A&B<1>\"'2"
NASTY_CALLSIGN = "<X&Y>\x01"


# -- an RFC 7946 checker ----------------------------------------------------------------------------

GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def _check_position(p: Any, where: str) -> None:
    assert isinstance(p, list) and 2 <= len(p) <= 3, f"{where}: a position is 2 or 3 numbers: {p!r}"
    for n in p:
        assert isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n), f"{where}: {p!r}"
    lon, lat = p[0], p[1]
    assert -180 <= lon <= 180 and -90 <= lat <= 90, f"{where}: [lon, lat] out of range: {p!r}"


def _check_geometry(g: Any, where: str) -> None:
    if g is None:
        return
    assert isinstance(g, dict) and g.get("type") in GEOMETRIES | {"GeometryCollection"}, f"{where}: {g!r:.80}"
    assert "crs" not in g
    if g["type"] == "GeometryCollection":
        for i, child in enumerate(g["geometries"]):
            _check_geometry(child, f"{where}.geometries[{i}]")
        return
    c = g["coordinates"]
    if g["type"] == "Point":
        _check_position(c, where)
    elif g["type"] in ("MultiPoint", "LineString"):
        assert isinstance(c, list)
        if g["type"] == "LineString":
            assert len(c) >= 2, f"{where}: a LineString has two or more positions"
        for p in c:
            _check_position(p, where)
    else:  # lines and rings of the Multi*/Polygon types: every position is checked
        stack: list[Any] = [c]
        while stack:
            item = stack.pop()
            if item and isinstance(item[0], list):
                stack.extend(item)
            else:
                _check_position(item, where)


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"{where}: {value!r}"
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def validate_geojson(text: str) -> dict[str, Any]:
    """Parse `text` strictly (no NaN/Infinity) and check it is an RFC 7946 FeatureCollection; return it."""

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-finite number {name} in GeoJSON")

    doc = json.loads(text, parse_constant=no_constants)
    assert isinstance(doc, dict) and doc["type"] == "FeatureCollection"
    assert "crs" not in doc, "RFC 7946 §4: no crs member"
    assert isinstance(doc["features"], list)
    for i, f in enumerate(doc["features"]):
        where = f"features[{i}]"
        assert isinstance(f, dict) and f.get("type") == "Feature", where
        assert "geometry" in f and "properties" in f, f"{where}: a Feature has geometry and properties"
        assert f["properties"] is None or isinstance(f["properties"], dict), where
        assert "id" not in f or isinstance(f["id"], str | int), where
        assert "crs" not in f
        _check_geometry(f["geometry"], where)
    _check_finite(doc, "doc")
    return doc


# -- hand-built sorties --------------------------------------------------------------------------------


def row(i: int, lat: float, lon: float, alt: int | None, on_ground: bool = False, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "hex": "ae01d2", "registration": "62-4125", "type": "R135", "callsign": "TORA23",
        "time": iso_z(T0 + timedelta(minutes=i)), "lat": lat, "lon": lon, "x_m": 1000.0 * i, "y_m": 2000.0 * i,
        "alt_baro_ft": alt, "on_ground": on_ground, "alt_geom_ft": None if alt is None else alt + 400,
        "gs_kt": 410.5, "track_deg": 90.0, "squawk": "4651", "source_type": "adsb_icao", "feed": "adsb.lol",
    }  # fmt: skip
    values.update(extra)
    return values


def sortie(rows: list[dict[str, Any]], end_reason: str | None = "left_area", **fields: Any) -> Sortie:
    first, last = rows[0], rows[-1]
    start = datetime.fromisoformat(first["time"])
    end = datetime.fromisoformat(last["time"])
    values: dict[str, Any] = dict(
        sortie_id=f"{first['hex']}-{start:%Y%m%dT%H%M%SZ}", key="62-4125", hex_icao=first["hex"],
        registration="62-4125", type_icao="R135",
        first=Fix(start, first["lat"], first["lon"], first["alt_baro_ft"], first["callsign"], first["feed"]),
        last=Fix(end, last["lat"], last["lon"], last["alt_baro_ft"], last["callsign"], last["feed"]),
        last_seen_at=end, callsigns=("TORA23",), max_alt_baro_ft=31000, sightings=len(rows),
        previous_sortie_end=None, end_reason=end_reason,
    )  # fmt: skip
    values.update(fields)
    return Sortie(**values)


# Over the Yellow Sea: lat 33-37 N, lon 124-126 E, so a swapped pair is out of range or obviously wrong.
TRACK = [
    row(0, 33.07518, 124.88988, 31000),
    row(1, 33.5, 125.0, 30000, gs_kt=float("nan")),
    row(2, 34.0, 125.5, None),  # airborne, no barometric altitude
    row(3, 37.09, 126.97, None, on_ground=True),
]
SORTIE = sortie(TRACK)


def test_feet_to_metres() -> None:
    assert export.metres(31000) == 9448.8 and export.metres(1) == 0.3 and export.metres(None) is None
    assert export.altitude_m(TRACK[3]) == 0.0 and export.altitude_m(TRACK[2]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ae01d2-20261120T225558Z", "ae01d2-20261120T225558Z"),
        (" AE01D2-20261120t225558z ", "ae01d2-20261120T225558Z"),
        ("62-4125", None),
        ("ae01d2", None),
        ("ae01d2-20261120T2255Z", None),
        ("xx01d2-20261120T225558Z", None),
    ],
)
def test_sortie_id_shape(text: str, expected: str | None) -> None:
    assert export.sortie_id(text) == expected


def test_geojson_structure_units_and_order() -> None:
    doc = validate_geojson(export.render("geojson", [(SORTIE, TRACK)], FIELDS))
    line, *points = doc["features"]
    assert line["id"] == SORTIE.sortie_id
    assert line["geometry"] == {
        "type": "LineString",
        "coordinates": [[124.88988, 33.07518, 9448.8], [125.0, 33.5, 9144.0], [125.5, 34.0], [126.97, 37.09, 0.0]],
    }
    assert line["properties"] == {
        "kind": "sortie", "sortie_id": SORTIE.sortie_id, "hex": "ae01d2", "registration": "62-4125",
        "type": "R135", "callsigns": ["TORA23"], "start": "2026-11-20T23:00:00Z", "end": "2026-11-20T23:03:00Z",
        "end_reason": "left_area", "max_alt_baro_ft": 31000, "max_alt_m": 9448.8, "sightings": 4, "synthetic": False,
    }  # fmt: skip
    assert [p["geometry"]["coordinates"] for p in points] == line["geometry"]["coordinates"]
    assert {p["geometry"]["type"] for p in points} == {"Point"}
    assert points[0]["properties"] == {
        "kind": "sighting", "sortie_id": SORTIE.sortie_id, "time": "2026-11-20T23:00:00Z", "callsign": "TORA23",
        "alt_baro_ft": 31000, "alt_m": 9448.8, "on_ground": False, "gs_kt": 410.5, "track_deg": 90.0,
        "squawk": "4651", "source_type": "adsb_icao", "feed": "adsb.lol",
    }  # fmt: skip
    assert points[1]["properties"]["gs_kt"] is None  # NaN never reaches the JSON
    assert points[3]["properties"]["alt_m"] == 0.0 and points[3]["properties"]["on_ground"] is True


def test_geojson_one_sighting_has_no_line_and_empty_is_valid() -> None:
    one = [TRACK[0]]
    doc = validate_geojson(export.to_geojson([(sortie(one, end_reason=None), one)]))
    assert doc["features"][0]["geometry"] is None and doc["features"][0]["properties"]["end"] is None
    assert doc["features"][1]["geometry"] == {"type": "Point", "coordinates": [124.88988, 33.07518, 9448.8]}
    assert validate_geojson(export.to_geojson([])) == {"type": "FeatureCollection", "features": []}


def test_validator_rejects_bad_geojson() -> None:
    good = export.to_geojson([(SORTIE, TRACK)])
    doc = json.loads(good)
    spoils: list[Callable[[dict[str, Any]], Any]] = [
        lambda d: d.update(crs={"type": "name"}),
        lambda d: d["features"][0]["geometry"]["coordinates"].__setitem__(0, [33.0, 190.0]),  # lat, lon swapped
        lambda d: d["features"][0]["geometry"].update(coordinates=[[124.0, 33.0]]),
        lambda d: d["features"][1].update(type="feature"),
    ]
    for spoil in spoils:
        bad = json.loads(good)
        spoil(bad)
        with pytest.raises(AssertionError):
            validate_geojson(json.dumps(bad))
    with pytest.raises(AssertionError):
        validate_geojson(good.replace("9448.8", "NaN", 1))
    assert validate_geojson(good) == doc


def _kml_folder(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{KML}kml"
    folders = root.findall(f"{KML}Document/{KML}Folder")
    assert len(folders) == 1
    return folders[0]


def test_kml_document_folder_line_and_fixes() -> None:
    text = export.render("kml", [(SORTIE, TRACK)], FIELDS)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2">')
    folder = _kml_folder(text)
    assert folder.findtext(f"{KML}name") == SORTIE.sortie_id
    line_mark, start, end = folder.findall(f"{KML}Placemark")
    line = line_mark.find(f"{KML}LineString")
    assert line is not None
    assert line.findtext(f"{KML}extrude") == "1" and line.findtext(f"{KML}altitudeMode") == "absolute"
    coordinates = (line.findtext(f"{KML}coordinates") or "").split()
    # lon,lat,alt_m; the airborne sighting without altitude is left out, the one on the ground is at 0 m
    assert coordinates == ["124.88988,33.07518,9448.8", "125.0,33.5,9144.0", "126.97,37.09,0.0"]
    assert line_mark.findtext(f"{KML}TimeSpan/{KML}begin") == "2026-11-20T23:00:00Z"
    assert start.findtext(f"{KML}name") == "start" and end.findtext(f"{KML}name") == "end (left_area)"
    assert start.findtext(f"{KML}Point/{KML}coordinates") == "124.88988,33.07518,9448.8"
    assert start.findtext(f"{KML}Point/{KML}altitudeMode") == "absolute"
    assert start.findtext(f"{KML}TimeStamp/{KML}when") == "2026-11-20T23:00:00Z"
    # the end fix has no altitude (it is the ground row's Fix): clamped, 2-D
    assert end.findtext(f"{KML}Point/{KML}altitudeMode") == "clampToGround"
    assert end.findtext(f"{KML}Point/{KML}coordinates") == "126.97,37.09"


def test_kml_open_sortie_and_short_track() -> None:
    one = [TRACK[0]]
    folder = _kml_folder(export.to_kml([(sortie(one, end_reason=None), one)]))
    assert [p.findtext(f"{KML}name") for p in folder.findall(f"{KML}Placemark")] == ["start", "end (open)"]


def test_xml_special_characters_are_escaped() -> None:
    s = sortie(TRACK, registration=NASTY_REG, callsigns=(NASTY_CALLSIGN, "B&B"))
    rows = [{**r, "registration": NASTY_REG, "callsign": NASTY_CALLSIGN} for r in TRACK]
    for fmt in ("kml", "gpx"):
        text = export.render(fmt, [(s, rows)], FIELDS)
        assert "&amp;" in text and "&lt;X&amp;Y&gt;" in text and "\x01" not in text
        root = ET.fromstring(text)  # well-formed
        texts = [t for t in root.itertext() if t.strip()]
        assert f"{NASTY_REG} / R135 / <X&Y>, B&B" in texts
    gpx = ET.fromstring(export.to_gpx([(s, rows)]))
    assert gpx.findtext(f"{GPX}trk/{GPX}desc") == f"{NASTY_REG} / R135 / <X&Y>, B&B"
    kml = _kml_folder(export.to_kml([(s, rows)]))
    assert (kml.findtext(f"{KML}description") or "").startswith(f"{NASTY_REG} / R135 / <X&Y>, B&B;")
    # and in the other formats the values pass through unchanged
    doc = validate_geojson(export.to_geojson([(s, rows)]))
    assert doc["features"][0]["properties"]["registration"] == NASTY_REG
    assert doc["features"][1]["properties"]["callsign"] == NASTY_CALLSIGN


def test_gpx_tracks_points_elevation_time() -> None:
    other = [row(10, 35.0, 126.0, 1000), row(11, 35.1, 126.1, 2000)]
    text = export.render("gpx", [(SORTIE, TRACK), (sortie(other, type_icao=None, callsigns=()), other)], FIELDS)
    root = ET.fromstring(text)
    assert root.tag == f"{GPX}gpx" and root.get("version") == "1.1" and root.get("creator", "").startswith("ingest")
    trks = root.findall(f"{GPX}trk")
    assert [t.findtext(f"{GPX}name") for t in trks] == [SORTIE.sortie_id, "ae01d2-20261120T231000Z"]
    assert [t.findtext(f"{GPX}desc") for t in trks] == ["62-4125 / R135 / TORA23", "62-4125 / - / -"]
    # GPX 1.1 order inside <trk>: name, desc, then trkseg
    assert [c.tag for c in trks[0]] == [f"{GPX}name", f"{GPX}desc", f"{GPX}trkseg"]
    points = trks[0].findall(f"{GPX}trkseg/{GPX}trkpt")
    assert [(p.get("lat"), p.get("lon")) for p in points] == [
        ("33.07518", "124.88988"), ("33.5", "125.0"), ("34.0", "125.5"), ("37.09", "126.97"),
    ]  # fmt: skip
    assert [p.findtext(f"{GPX}ele") for p in points] == ["9448.8", "9144.0", None, "0.0"]
    assert [p.findtext(f"{GPX}time") for p in points] == [r["time"] for r in TRACK]
    assert [c.tag for c in points[0]] == [f"{GPX}ele", f"{GPX}time"]  # ele before time, as the schema says


def test_csv_rows_with_sortie_id_first() -> None:
    rows = [{**TRACK[0], "callsign": 'A,"B"'}, *TRACK[1:]]
    text = export.render("csv", [(SORTIE, rows)], FIELDS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == ["sortie_id", *FIELDS]
    assert len(parsed) == 4 and {r["sortie_id"] for r in parsed} == {SORTIE.sortie_id}
    assert parsed[0]["callsign"] == 'A,"B"' and parsed[0]["lat"] == "33.07518" and parsed[0]["lon"] == "124.88988"
    assert parsed[0]["alt_baro_ft"] == "31000"  # the stored fields, unconverted
    assert export.to_csv([], FIELDS) == ",".join(["sortie_id", *FIELDS]) + "\n"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export.render("shp", [], FIELDS)
