"""The web page at `/` in headless Chromium (Debian's `chromium`), over the synthetic demo replay.

Chromium loads the page from an ApiServer on a free 127.0.0.1 port and dumps the DOM once the page's
script has run (--virtual-time-budget), or takes a screenshot. Without chromium these tests FAIL, never
skip: install it with `apt-get install chromium` (.ci/run does on CI).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from ingest.api import ApiServer
from ingest.cli import main
from ingest.config import load
from tests.conftest import REPO, ConfigWriter

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA23 = "ae01d2-20261120T225558Z"
ROKN621 = "71f00d-20261120T234056Z"
STATIC = REPO / "ingest" / "static"
# Required here: without the background-networking flags Chromium floods the closed network.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=10000",
]  # fmt: skip


def chromium_binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.fail("chromium is missing: apt-get install chromium (Debian's package; CI installs it through .ci/run)")
    return found


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on url with a throwaway profile; fail with its stderr when it fails."""
    command = [chromium_binary(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, url]
    env = {**os.environ, "HOME": str(tmp_path)}  # nothing written to the real home
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish in 60 s: {' '.join(command)}")
    if done.returncode != 0:
        pytest.fail(f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


# -- a small DOM from the dumped HTML ---------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def has(self, name: str, value: str) -> bool:
        """This attribute value; for class_, this among its classes."""
        if name == "class_":
            return value in self.attrs.get("class", "").split()
        return self.attrs.get(name) == value

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Every descendant with this tag (any when None) and these attributes (class_: one of its classes)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(child.has(k, v) for k, v in attrs.items()):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag or '*'} {attrs}> found, expected one"
        return found[0]

    def rows(self) -> list[list[str]]:
        """The cell texts of this table's tbody rows."""
        return [[td.text for td in tr.all("td")] for tr in self.one("tbody").all("tr")]


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def dump_dom(tmp_path: Path, url: str) -> Node:
    return parse(chromium(tmp_path, url, "--dump-dom").stdout)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def server(write_config: ConfigWriter) -> Iterator[ApiServer]:
    """The API on a free port over a database holding the demo replay (TORA23 and ROKN621)."""
    config = write_config([])
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    with ApiServer(load(config, environ={}), port=0) as api:
        yield api


# -- tests --------------------------------------------------------------------------------------------


def test_page_shows_the_sorties_and_the_selected_track(server: ApiServer, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, f"{server.url}/#{TORA23}")
    body = dom.one("body")
    assert body.attrs["data-state"] == "ready", dom.one(id="error").text
    assert "hidden" in dom.one(id="error").attrs

    # Both sorties, newest first; the one in the URL selected.
    sorties = dom.one("table", id="sorties")
    assert [tr.attrs["data-id"] for tr in sorties.one("tbody").all("tr")] == [ROKN621, TORA23]
    assert sorties.rows() == [
        ["230921", "P8", "ROKN621", "2026-11-20 23:40:56", "2026-11-21 02:24:52", "landed", "2 h 44 min", "24,000 ft"],
        ["62-4125", "R135", "TORA23", "2026-11-20 22:55:58", "2026-11-21 01:54:56", "left_area", "2 h 59 min",
         "31,000 ft"],
    ]  # fmt: skip
    assert [tr.attrs["data-id"] for tr in sorties.all("tr", class_="selected")] == [TORA23]

    # Its registration and callsigns.
    assert "62-4125" in dom.one(id="title").text and "TORA23" in dom.one(id="title").text
    facts = {div.one("dt").text: div.one("dd").text for div in dom.one(id="facts").all("div")}
    assert (facts["Sortie"], facts["Registration"], facts["Callsigns"], facts["Sightings"]) == (
        TORA23, "62-4125", "TORA23", "170",
    )  # fmt: skip

    # The track: one polyline of 170 points inside the view box, 169 segments coloured by altitude,
    # start and end marked, the area's box drawn.
    svg = dom.one("svg", id="track")
    assert svg.attrs["viewbox"] == "0 0 640 520"
    points = [tuple(map(float, p.split(","))) for p in svg.one("polyline", id="track-line").attrs["points"].split()]
    assert len(points) == 170
    assert all(0 <= x <= 640 and 0 <= y <= 520 for x, y in points)
    segments = svg.one("g", class_="track").all("line")
    assert len(segments) == 169 and all(s.attrs["stroke"].startswith("hsl(") for s in segments)
    start, end = svg.one("circle", class_="start"), svg.one("rect", class_="end")
    assert (float(start.attrs["cx"]), float(start.attrs["cy"])) == points[0]
    assert (float(end.attrs["x"]) + 8, float(end.attrs["y"]) + 8) == pytest.approx(points[-1], abs=0.11)
    assert svg.one("rect", class_="area").one("title").text == "Area: Korean Peninsula"

    # What it did: one orbit over the Yellow Sea, its centre marked on the map and named in the facts.
    assert facts["Reason"] == "left area" and facts["Took off from"] == "\N{EN DASH}"
    assert facts["Events"].startswith("orbit 1 from 2026-11-20 23:32:58 UTC, 3 laps, legs ~110 km")
    (orbit,) = svg.all("g", class_="orbit")
    assert orbit.attrs["data-event"] == f"{TORA23}/orbit/1" and orbit.one("circle", class_="ring")

    # The sightings, as the API has them.
    features = requests.get(f"{server.url}/api/sorties/{TORA23}/track.geojson", timeout=10).json()["features"]
    sightings = [f for f in features if f["properties"]["kind"] == "sighting"]
    rows = dom.one("table", id="sightings").rows()
    assert len(rows) == 170 == len(sightings)
    assert [r[0] for r in rows] == [f["properties"]["time"].replace("T", " ").rstrip("Z") for f in sightings]
    assert rows[0] == ["2026-11-20 22:55:58", "33.0752", "124.8899", "31,000 ft", "405 kt", "354°"]
    lon, lat = sightings[-1]["geometry"]["coordinates"][:2]
    assert rows[-1][1:3] == [f"{lat:.4f}", f"{lon:.4f}"]


def test_page_selects_the_latest_sortie_by_default(server: ApiServer, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, f"{server.url}/")
    assert dom.one("body").attrs["data-state"] == "ready"
    assert [tr.attrs["data-id"] for tr in dom.one(id="sorties").all("tr", class_="selected")] == [ROKN621]
    assert "ROKN621" in dom.one(id="title").text
    facts = {div.one("dt").text: div.one("dd").text for div in dom.one(id="facts").all("div")}
    assert facts["Took off from"] == facts["Landed at"] == "Pohang Airport (G-815/K-3) (RKTH)"
    rows = dom.one("table", id="sightings").rows()
    assert len(rows) == 165
    assert rows[0] == ["2026-11-20 23:40:56", "36.0112", "129.4561", "300 ft", "153 kt", "51°"]
    assert rows[-1][0] == "2026-11-21 02:24:52"
    assert len(dom.one("polyline", id="track-line").attrs["points"].split()) == 165


def test_page_inserts_text_as_text(server: ApiServer, tmp_path: Path) -> None:
    """An id from the URL is shown in the error, as text: no element made from it."""
    injected = '<img src="x" id="injected"><b>bold</b>'
    dom = dump_dom(tmp_path, f"{server.url}/#{quote(injected)}")
    assert dom.one("body").attrs["data-state"] == "error"
    assert dom.one(id="error").text.startswith(f"Sortie {injected}: ") and "404" in dom.one(id="error").text
    assert dom.all(id="injected") == [] and dom.all("b") == []
    assert len(dom.one(id="sorties").one("tbody").all("tr")) == 2  # the list is still there


def test_page_screenshot_is_not_blank(server: ApiServer, tmp_path: Path) -> None:
    png = tmp_path / "page.png"
    chromium(tmp_path, f"{server.url}/#{TORA23}", f"--screenshot={png}", "--window-size=1280,900")
    assert png.is_file(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    assert len(data) > 10_000, f"{len(data)} bytes: a blank page?"


def test_page_is_served_self_contained(server: ApiServer) -> None:
    """HTML with a strict CSP and the area; its script and style sheet served beside it; nothing else
    is loaded from anywhere (the page works offline); `/` is in the OpenAPI document, as HTML."""
    r = requests.get(f"{server.url}/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    meta = parse(r.text).one("meta", name="ingest-area")
    assert meta.attrs["content"] == (
        '{"name": "Korean Peninsula", "south": 33.0, "west": 124.0, "north": 43.5, "east": 132.0}'
    )
    for name, media in (("page.js", "text/javascript"), ("page.css", "text/css"), ("icon.svg", "image/svg+xml")):
        got = requests.get(f"{server.url}/static/{name}", timeout=10)
        assert got.status_code == 200 and got.headers["content-type"].startswith(media)
        assert got.text == (STATIC / name).read_text(encoding="utf-8")
    for path in ("/static/missing.js", "/static/../api.py", "/static/%2e%2e/api.py"):
        missing = requests.get(f"{server.url}{path}", timeout=10)
        assert missing.status_code == 404 and "error" in missing.json(), path
    # No other origin: the only absolute URL in the page's files is the SVG namespace.
    for file in STATIC.iterdir():
        text = file.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert "://" not in text and "url(" not in text and "@import" not in text, file.name
    page = parse(r.text)
    assert [n.attrs["href"] for n in page.all("link")] == ["static/icon.svg", "static/page.css"]
    assert [n.attrs["src"] for n in page.all("script")] == ["static/page.js"]
    paths = requests.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    assert list(paths["/"]["get"]["responses"]["200"]["content"]) == ["text/html"]


def test_coastline_is_served_from_the_bundle_and_cached(server: ApiServer) -> None:
    """GET /api/coastline.geojson: the file `ingest map` draws, byte for byte, cacheable with an ETag."""
    r = requests.get(f"{server.url}/api/coastline.geojson", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    assert r.content == (REPO / "ingest" / "data" / "coastline-korea-50m.geojson").read_bytes()
    assert r.json()["bbox"] == [100.0, 15.0, 150.0, 55.0]
    assert "max-age=" in r.headers["cache-control"] and r.headers["etag"].startswith('"')
    again = requests.get(
        f"{server.url}/api/coastline.geojson", headers={"If-None-Match": r.headers["etag"]}, timeout=10
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == r.headers["etag"]
    other = requests.get(f"{server.url}/api/coastline.geojson", headers={"If-None-Match": '"other"'}, timeout=10)
    assert other.status_code == 200 and other.content == r.content
    bad = requests.get(f"{server.url}/api/coastline.geojson?x=1", timeout=10)
    assert bad.status_code == 400 and "unknown parameter" in bad.json()["error"]
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert "application/geo+json" in doc["paths"]["/api/coastline.geojson"]["get"]["responses"]["200"]["content"]
