"""`ingest export` through `main()` on a SQLite file holding the demo replay, read back and compared."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from ingest.store import SqliteStore
from tests.conftest import SMALL_WATCHLIST, ConfigWriter, render_config, two_sorties_recording
from tests.unit.test_export import validate_geojson

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA = "ae01d2-20261120T225558Z"
P8 = "71f00d-20261120T234056Z"
KML = "{http://www.opengis.net/kml/2.2}"
GPX = "{http://www.topografix.com/GPX/1/1}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """A config whose database holds the demo replay (built once: export only reads), and TORA23's track."""
    base = tmp_path_factory.mktemp("export")
    config = base / "ingest.toml"
    config.write_text(
        render_config(
            {"database": {"path": str(base / "ingest.db")}, "watchlist": {"path": str(SMALL_WATCHLIST)},
             "replay": {"on_start": []}, "daemon": {"log_level": "WARNING"}},
            [],
        )
    )  # fmt: skip
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    store = SqliteStore(base / "ingest.db")
    try:
        found = store.sortie(TORA)
        assert found is not None
        track = store.track(found)
    finally:
        store.close()
    assert len(track) == 170
    yield config, track


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_geojson_is_rfc7946_and_matches_the_database(
    demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, track = demo
    code, out, err = run(capsys, "export", TORA, "--config", str(config), "--format", "geojson")
    assert code == 0 and err == ""
    doc = validate_geojson(out)
    line, *points = doc["features"]
    assert line["geometry"]["type"] == "LineString" and len(line["geometry"]["coordinates"]) == 170
    props = line["properties"]
    assert (props["sortie_id"], props["registration"], props["type"], props["callsigns"]) == (
        TORA, "62-4125", "R135", ["TORA23"],
    )  # fmt: skip
    assert (props["start"], props["end"], props["end_reason"]) == (
        "2026-11-20T22:55:58.702Z", "2026-11-21T01:54:56.345Z", "left_area",
    )  # fmt: skip
    assert props["max_alt_baro_ft"] == 31000 and props["max_alt_m"] == 9448.8
    assert len(points) == 170
    assert [(p["properties"]["time"], p["geometry"]["coordinates"][:2]) for p in points] == [
        (r["time"], [r["lon"], r["lat"]]) for r in track
    ]
    assert [p["geometry"]["coordinates"] for p in points] == line["geometry"]["coordinates"]
    assert [p["geometry"]["coordinates"][2] for p in points] == [round(r["alt_baro_ft"] * 0.3048, 2) for r in track]
    assert [p["properties"]["gs_kt"] for p in points] == [r["gs_kt"] for r in track]
    # the default format is GeoJSON, and the id's hex may be given in capitals
    code, again, _ = run(capsys, "export", TORA.upper(), "--config", str(config))
    assert code == 0 and again == out


def test_kml_and_gpx_read_back(demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, track = demo
    first, last = track[0], track[-1]
    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "--format", "kml")
    assert code == 0
    folder = ET.fromstring(out).find(f"{KML}Document/{KML}Folder")
    assert folder is not None and folder.findtext(f"{KML}name") == f"SYNTHETIC {TORA}"  # the demo says so
    marks = folder.findall(f"{KML}Placemark")
    assert [m.findtext(f"{KML}name") for m in marks] == [f"SYNTHETIC {TORA}", "start", "end (left_area)"]
    coordinates = (marks[0].findtext(f"{KML}LineString/{KML}coordinates") or "").split()
    assert len(coordinates) == 170
    assert coordinates[0] == f"{first['lon']},{first['lat']},9448.8"
    assert coordinates[-1] == f"{last['lon']},{last['lat']},9448.8"
    assert marks[0].findtext(f"{KML}LineString/{KML}extrude") == "1"
    assert marks[1].findtext(f"{KML}TimeStamp/{KML}when") == "2026-11-20T22:55:58.702Z"
    assert marks[2].findtext(f"{KML}TimeStamp/{KML}when") == "2026-11-21T01:54:56.345Z"
    assert marks[2].findtext(f"{KML}Point/{KML}coordinates") == f"{last['lon']},{last['lat']},9448.8"

    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "--format", "gpx")
    assert code == 0
    trks = ET.fromstring(out).findall(f"{GPX}trk")
    assert len(trks) == 1 and trks[0].findtext(f"{GPX}name") == f"SYNTHETIC {TORA}"
    assert trks[0].findtext(f"{GPX}desc") == "SYNTHETIC demo data: 62-4125 / R135 / TORA23"
    points = trks[0].findall(f"{GPX}trkseg/{GPX}trkpt")
    assert len(points) == 170
    for point, r in ((points[0], first), (points[-1], last)):
        assert (float(point.get("lat", "nan")), float(point.get("lon", "nan"))) == (r["lat"], r["lon"])
        assert point.findtext(f"{GPX}time") == r["time"] and point.findtext(f"{GPX}ele") == "9448.8"
    assert [p.findtext(f"{GPX}time") for p in points] == [r["time"] for r in track]


def test_csv_and_output_file(
    demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, track = demo
    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 170
    assert list(rows[0]) == ["sortie_id", *track[0]]
    assert {r["sortie_id"] for r in rows} == {TORA}
    assert [(r["time"], float(r["lat"]), float(r["lon"])) for r in rows] == [
        (t["time"], t["lat"], t["lon"]) for t in track
    ]

    target = tmp_path / "tora.gpx"
    target.write_text("old")
    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "--format", "gpx", "-o", str(target))
    assert code == 0 and out == f"{target}: gpx, 1 sortie, 170 sightings\n"
    assert len(ET.parse(target).getroot().findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")) == 170
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tora.gpx"]  # no temporary file left behind
    code, _, err = run(capsys, "export", TORA, "--config", str(config), "-o", str(tmp_path / "no" / "x.json"))
    assert code == 1 and "cannot write" in err


def test_tail_since_selects_sorties(
    demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = demo
    code, out, _ = run(capsys, "export", "230921", "--since", "2026-11-20T00:00:00Z", "--config", str(config))
    doc = validate_geojson(out)
    lines = [f for f in doc["features"] if f["properties"]["kind"] == "sortie"]
    assert code == 0 and [f["properties"]["sortie_id"] for f in lines] == [P8]
    assert lines[0]["properties"]["end_reason"] == "landed" and len(doc["features"]) == 1 + 165
    # started before --since: nothing, and that is not an error
    code, out, err = run(capsys, "export", "62-4125", "--since", "2026-11-20T23:00:00Z", "--config", str(config))
    assert code == 0 and json.loads(out)["features"] == [] and "no sorties of 62-4125" in err


def test_tail_with_two_sorties(write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = two_sorties_recording(tmp_path)
    config = write_config([])
    assert main(["replay", "--config", str(config), str(recording)]) == 0
    code, out, _ = run(capsys, "export", "62-4134", "--since", "2026-11-01", "--config", str(config), "--format", "gpx")
    trks = ET.fromstring(out).findall(f"{GPX}trk")
    assert code == 0 and len(trks) == 2
    assert [len(t.findall(f"{GPX}trkseg/{GPX}trkpt")) for t in trks] == [2, 3]
    assert [t.findtext(f"{GPX}name") for t in trks] == ["ae01ce-20261120T225958Z", "ae01ce-20261120T230258Z"]
    code, out, _ = run(capsys, "export", "AE01CE", "--since", "2026-11-01", "--config", str(config))
    doc = validate_geojson(out)
    assert [f["properties"]["sortie_id"] for f in doc["features"] if f["properties"]["kind"] == "sortie"] == [
        t.findtext(f"{GPX}name") for t in trks
    ]


def test_unknown_and_misused(demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = demo
    code, out, err = run(capsys, "export", "ae01d2-20991231T000000Z", "--config", str(config))
    assert (code, out) == (1, "") and "no sortie 'ae01d2-20991231T000000Z'" in err
    code, out, err = run(capsys, "export", "N12345", "--since", "7d", "--config", str(config))
    assert (code, out) == (1, "") and "unknown tail 'N12345'" in err
    code, _, err = run(capsys, "export", "62-4125", "--config", str(config))
    assert code == 2 and "needs --since" in err
    code, _, err = run(capsys, "export", TORA, "--since", "7d", "--config", str(config))
    assert code == 2 and "--since goes with a TAIL" in err
    code, _, err = run(capsys, "export", TORA, "--format", "shp", "--config", str(config))
    assert code == 2 and "invalid choice" in err
    code, out, err = run(capsys, "export", TORA[:-1], "--config", str(config))  # its final Z is missing
    assert (code, out) == (2, "") and "is not a sortie id" in err and "ending in Z" in err


def test_the_format_comes_from_the_file_name_and_dash_is_stdout(
    demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = demo
    kml = tmp_path / "track.kml"
    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "-o", str(kml))
    assert code == 0 and out.startswith(f"{kml}: kml, 1 sortie, ")
    assert kml.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>') and "<kml" in kml.read_text()
    code, _, err = run(capsys, "export", TORA, "--config", str(config), "-o", str(kml), "--format", "gpx")
    assert code == 2 and "contradicts" in err
    code, _, err = run(capsys, "export", TORA, "--config", str(config), "-o", str(tmp_path / "track.txt"))
    assert code == 2 and "give --format" in err and not (tmp_path / "track.txt").exists()
    code, out, _ = run(capsys, "export", TORA, "--config", str(config), "-o", "-", "--format", "gpx")
    assert code == 0 and out.startswith('<?xml version="1.0" encoding="UTF-8"?>') and "<gpx" in out
