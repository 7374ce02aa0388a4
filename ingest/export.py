"""`ingest export`: sorties and their sightings as GeoJSON, KML, CSV or GPX text. Pure: formats only.

A track is a sortie with its stored sightings, oldest first (`Store.track`: dicts with the keys of
`store.SIGHTING_FIELDS`). Coordinates are WGS84 degrees. Altitudes are metres, from the barometric
altitude in feet * 0.3048 (pressure altitude, taken as height above sea level), rounded to the centimetre:

- GeoJSON (RFC 7946): positions are [lon, lat, alt_m]; one LineString Feature per sortie, then one Point
  Feature per sighting. A sortie with fewer than two sightings has `"geometry": null` (a LineString needs two
  positions). No `crs` member: RFC 7946 is WGS84 only.
- KML 2.2: a Document, one Folder per sortie, a LineString placemark (altitudeMode absolute, extrude 1)
  and "start" / "end (reason)" Point placemarks ("end (open)" while the sortie is in progress).
- GPX 1.1: one <trk> per sortie (name: the sortie id; desc: registration / type / callsigns), a <trkseg>
  of <trkpt> with <ele> in metres and <time>.
- CSV: one row per sighting, `sortie_id` first, then the sightings fields as stored (altitudes in feet).

On the ground a position's altitude is 0 m, in every format. An airborne sighting without a barometric
altitude has none: a 2-element GeoJSON position, a <trkpt> without <ele>, and it is left out of the KML line
(an absolute KML coordinate without altitude would be drawn at sea level).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from ingest import __version__
from ingest.models import Fix, Sortie
from ingest.timeutil import iso_z

FORMATS = ("geojson", "kml", "csv", "gpx")
FT_TO_M = 0.3048
KML_NS = "http://www.opengis.net/kml/2.2"
GPX_NS = "http://www.topografix.com/GPX/1/1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
GPX_SCHEMA = "http://www.topografix.com/GPX/1/1/gpx.xsd"

Row = Mapping[str, Any]
Track = tuple[Sortie, Sequence[Row]]

_SORTIE_ID = re.compile(r"^([0-9a-f]{6})-(\d{8}T\d{6}Z)$", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def sortie_id(text: str) -> str | None:
    """`text` as a sortie id (`<hex>-<YYYYmmddTHHMMSSZ>`, any case) in its stored form, or None."""
    match = _SORTIE_ID.match(text.strip())
    return None if match is None else f"{match.group(1).lower()}-{match.group(2).upper()}"


def metres(feet: float | None) -> float | None:
    return None if feet is None else round(feet * FT_TO_M, 2)


def altitude_m(row: Row) -> float | None:
    """A sighting's altitude in metres: 0 on the ground, None when the air position has no altitude."""
    if row["on_ground"]:
        return 0.0
    return metres(row["alt_baro_ft"])


def render(fmt: str, tracks: Sequence[Track], sighting_fields: Sequence[str]) -> str:
    """The export as text; `sighting_fields` are the CSV columns after `sortie_id`."""
    if fmt == "geojson":
        return to_geojson(tracks)
    if fmt == "kml":
        return to_kml(tracks)
    if fmt == "gpx":
        return to_gpx(tracks)
    if fmt == "csv":
        return to_csv(tracks, sighting_fields)
    raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")


# -- GeoJSON --------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _position(row: Row) -> list[float]:
    alt = altitude_m(row)
    return [row["lon"], row["lat"]] if alt is None else [row["lon"], row["lat"], alt]


def sortie_properties(s: Sortie) -> dict[str, Any]:
    return {
        "kind": "sortie", "sortie_id": s.sortie_id, "hex": s.hex_icao, "registration": s.registration,
        "type": s.type_icao, "callsigns": list(s.callsigns), "start": iso_z(s.start_at),
        "end": iso_z(s.end_at) if s.end_at else None, "end_reason": s.end_reason,
        "max_alt_baro_ft": s.max_alt_baro_ft, "max_alt_m": metres(s.max_alt_baro_ft), "sightings": s.sightings,
        "synthetic": s.synthetic,
    }  # fmt: skip


def geojson(tracks: Sequence[Track]) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection: per sortie a LineString Feature, then a Point Feature per sighting."""
    features: list[dict[str, Any]] = []
    for sortie, rows in tracks:
        line = [_position(r) for r in rows]
        geometry = {"type": "LineString", "coordinates": line} if len(line) >= 2 else None
        features.append(
            {"type": "Feature", "id": sortie.sortie_id, "geometry": geometry, "properties": sortie_properties(sortie)}
        )
        for r, position in zip(rows, line, strict=True):
            properties = {
                "kind": "sighting", "sortie_id": sortie.sortie_id, "time": r["time"], "callsign": r["callsign"],
                "alt_baro_ft": r["alt_baro_ft"], "alt_m": altitude_m(r), "on_ground": r["on_ground"],
                "gs_kt": _finite(r["gs_kt"]), "track_deg": _finite(r["track_deg"]), "squawk": r["squawk"],
                "source_type": r["source_type"], "feed": r["feed"],
            }  # fmt: skip
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": position},
                             "properties": properties})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def to_geojson(tracks: Sequence[Track]) -> str:
    return json.dumps(geojson(tracks), ensure_ascii=False, allow_nan=False) + "\n"


# -- XML helpers ----------------------------------------------------------------------------------


def _text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = _text(text)
    return element


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def _describe(s: Sortie) -> str:
    """registration / type / callsigns, "-" for what is unknown; synthetic data says so first."""
    marker = "SYNTHETIC demo data: " if s.synthetic else ""
    return f"{marker}{s.registration or '-'} / {s.type_icao or '-'} / {', '.join(s.callsigns) or '-'}"


def _name(s: Sortie) -> str:
    return f"SYNTHETIC {s.sortie_id}" if s.synthetic else s.sortie_id


def _end_name(s: Sortie) -> str:
    return f"end ({s.end_reason or 'open'})"


# -- KML ------------------------------------------------------------------------------------------


def _kml_coordinate(lon: float, lat: float, alt: float) -> str:
    return f"{lon!r},{lat!r},{alt!r}"


def _kml_fix(folder: ET.Element, name: str, fix: Fix) -> None:
    placemark = _sub(folder, "Placemark")
    _sub(placemark, "name", name)
    alt = metres(fix.alt_baro_ft)
    details = f"{iso_z(fix.at)}, {fix.callsign or 'no callsign'}, "
    _sub(placemark, "description", details + (f"{fix.alt_baro_ft} ft" if alt is not None else "altitude unknown"))
    _sub(_sub(placemark, "TimeStamp"), "when", iso_z(fix.at))
    point = _sub(placemark, "Point")
    if alt is None:
        _sub(point, "altitudeMode", "clampToGround")
        _sub(point, "coordinates", f"{fix.lon_deg!r},{fix.lat_deg!r}")
    else:
        _sub(point, "altitudeMode", "absolute")
        _sub(point, "coordinates", _kml_coordinate(fix.lon_deg, fix.lat_deg, alt))


def to_kml(tracks: Sequence[Track]) -> str:
    root = ET.Element("kml", xmlns=KML_NS)
    document = _sub(root, "Document")
    _sub(document, "name", "ingest export")
    style = _sub(document, "Style", id="track")
    line_style = _sub(style, "LineStyle")
    _sub(line_style, "color", "ff00a5ff")  # aabbggrr: orange
    _sub(line_style, "width", "2")
    _sub(_sub(style, "PolyStyle"), "color", "5000a5ff")  # the extruded curtain, translucent
    for sortie, rows in tracks:
        folder = _sub(document, "Folder")
        _sub(folder, "name", _name(sortie))
        end = iso_z(sortie.end_at) if sortie.end_at else "(open)"
        max_ft = "-" if sortie.max_alt_baro_ft is None else f"{sortie.max_alt_baro_ft} ft"
        _sub(folder, "description", f"{_describe(sortie)}; {iso_z(sortie.start_at)} to {end}; max {max_ft}")
        coordinates = [_kml_coordinate(r["lon"], r["lat"], alt) for r in rows if (alt := altitude_m(r)) is not None]
        if len(coordinates) >= 2:
            placemark = _sub(folder, "Placemark")
            _sub(placemark, "name", _name(sortie))
            _sub(placemark, "description", _describe(sortie))
            span = _sub(placemark, "TimeSpan")
            _sub(span, "begin", iso_z(sortie.start_at))
            _sub(span, "end", iso_z(sortie.last.at))
            _sub(placemark, "styleUrl", "#track")
            line = _sub(placemark, "LineString")
            _sub(line, "extrude", "1")
            _sub(line, "altitudeMode", "absolute")
            _sub(line, "coordinates", " ".join(coordinates))
        _kml_fix(folder, "start", sortie.first)
        _kml_fix(folder, _end_name(sortie), sortie.last)
    return _xml(root)


# -- GPX ------------------------------------------------------------------------------------------


def to_gpx(tracks: Sequence[Track]) -> str:
    root = ET.Element(
        "gpx",
        {"xmlns": GPX_NS, "xmlns:xsi": XSI_NS, "xsi:schemaLocation": f"{GPX_NS} {GPX_SCHEMA}", "version": "1.1",
         "creator": f"ingest {__version__}"},
    )  # fmt: skip
    for sortie, rows in tracks:
        trk = _sub(root, "trk")
        _sub(trk, "name", _name(sortie))
        _sub(trk, "desc", _describe(sortie))
        segment = _sub(trk, "trkseg")
        for r in rows:
            point = _sub(segment, "trkpt", lat=repr(r["lat"]), lon=repr(r["lon"]))
            alt = altitude_m(r)
            if alt is not None:
                _sub(point, "ele", repr(alt))
            _sub(point, "time", r["time"])
    return _xml(root)


# -- CSV ------------------------------------------------------------------------------------------


def to_csv(tracks: Sequence[Track], sighting_fields: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["sortie_id", *sighting_fields], lineterminator="\n")
    writer.writeheader()
    for sortie, rows in tracks:
        writer.writerows({"sortie_id": sortie.sortie_id, **{k: r[k] for k in sighting_fields}} for r in rows)
    return out.getvalue()
