"""The web page at `/` in headless Chromium (Debian's `chromium`), over the synthetic demo replay and
recordings made for a test (a flight of the last hour, open or landed).

Chromium loads the page from an ApiServer on a free 127.0.0.1 port and dumps the DOM once the page's
script has run (--virtual-time-budget), or takes a screenshot. Tests that click, scroll or wait for the
page to refresh itself drive a live Chromium over the DevTools protocol on a pipe (`Browser`, the standard
library only). Without chromium these tests FAIL, never skip: install it with `apt-get install chromium`
(.ci/run does on CI).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import matplotlib
import numpy as np
import pytest
import requests
from matplotlib.path import Path as MplPath

from ingest import mapping
from ingest.api import ApiServer
from ingest.cli import main
from ingest.config import load
from ingest.timeutil import iso_z
from tests.conftest import REPO, ConfigWriter, aircraft, envelope

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA23 = "ae01d2-20261120T225558Z"
ROKN621 = "71f00d-20261120T234056Z"
STATIC = REPO / "ingest" / "static"
SYNTHETIC_BADGE = "SYNTHETIC (demo)"
SNOOP = "62-4134"  # the aircraft of the recordings made here (ae01ce, in the small watchlist)
# Required here: without the background-networking flags Chromium floods the closed network.
BASE_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
FLAGS = [*BASE_FLAGS, "--virtual-time-budget=10000"]


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


# -- a live Chromium over the DevTools protocol ---------------------------------------------------

# Run by `python -c` between this process and Chromium: it puts the pipe's ends on fds 3 and 4, where
# --remote-debugging-pipe expects them, then becomes Chromium (no preexec_fn in a process with threads).
TRAMPOLINE = """import fcntl, os, sys
commands, answers = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])
os.dup2(commands, 3)
os.dup2(answers, 4)
os.execv(sys.argv[3], sys.argv[3:])
"""


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on
    its fd 3, answers on its fd 4, each a JSON message ended by NUL), to click, scroll and read the page
    while it runs:

        browser.open(url)                            # waits for the page's first answer (data-state)
        browser.js("document.title")                 # Runtime.evaluate, by value
        browser.wait("document.body.dataset.live === 'idle'")
    """

    def __init__(self, tmp_path: Path, width: int = 1280, height: int = 900) -> None:
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()
        self._log = tmp_path / "chromium.log"
        command = [
            sys.executable, "-c", TRAMPOLINE, str(commands_r), str(answers_w), chromium_binary(), *BASE_FLAGS,
            "--remote-debugging-pipe", f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}",
            "about:blank",
        ]  # fmt: skip
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(
                command, pass_fds=(commands_r, answers_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "HOME": str(tmp_path)},
            )  # fmt: skip
        os.close(commands_r)
        os.close(answers_w)
        self._buffer = b""
        self._id = 0
        self._session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, *, page: bool = True) -> dict[str, Any]:
        """One command (to the page's session unless page=False) and its answer; events are dropped."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if page and self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    assert "error" not in answer, f"{method}: {answer['error']}"
                    result: dict[str, Any] = answer["result"]
                    return result
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                pytest.fail(f"chromium did not answer {method} in 30 s")
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                pytest.fail(f"chromium exited:\n{self._log.read_text(errors='replace')[-3000:]}")
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": url}, page=False)["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, page=False)
        self._session = attached["sessionId"]
        self.wait("document.body && ['ready', 'error'].includes(document.body.dataset.state)")

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        done = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in done, f"{expression}: {done['exceptionDetails']}"
        return done["result"].get("value")

    def wait(self, expression: str, timeout_s: float = 30.0) -> Any:
        """Poll the expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.js(expression)):
            if time.monotonic() > deadline:
                pytest.fail(f"still false after {timeout_s:g} s: {expression}")
            time.sleep(0.1)
        return value

    def close(self) -> None:
        try:
            os.write(self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._commands)
            os.close(self._answers)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    live = Browser(tmp_path)
    try:
        yield live
    finally:
        live.close()


# -- fixtures -----------------------------------------------------------------------------------------


@dataclass
class Site:
    """An ApiServer over a database file, and its config."""

    api: ApiServer
    config: Path
    database: Path

    @property
    def url(self) -> str:
        return self.api.url

    def sql(self, statement: str, *params: Any) -> None:
        """Change the database behind the page, as the daemon would (a short write of its own)."""
        db = sqlite3.connect(self.database)
        try:
            with db:
                db.execute(statement, params)
        finally:
            db.close()

    def replay(self, recording: Path) -> None:
        assert main(["replay", "--config", str(self.config), str(recording)]) == 0


MakeSite = Callable[..., Site]


@pytest.fixture
def make_site(write_config: ConfigWriter, tmp_path: Path) -> Iterator[MakeSite]:
    """make_site(*recordings, feeds=[...]): the API on a free port over a database holding the replayed
    recordings (the demo when none is given)."""
    with ExitStack() as stack:

        def make(*recordings: Path, feeds: list[dict[str, Any]] | None = None) -> Site:
            config = write_config(feeds or [])
            for recording in recordings or (DEMO,):
                assert main(["replay", "--config", str(config), str(recording)]) == 0
            api = stack.enter_context(ApiServer(load(config, environ={}), port=0))
            return Site(api, config, tmp_path / "ingest.db")

        yield make


@pytest.fixture
def server(make_site: MakeSite) -> ApiServer:
    """The API on a free port over a database holding the demo replay (TORA23 and ROKN621)."""
    return make_site().api


def flight(path: Path, start: datetime, minutes: int, *, first: int = 0, land: bool = False) -> Path:
    """A recording of 62-4134 (ae01ce, SNOOP01) at FL280 over the Yellow Sea: one response a minute from
    `start`, minute `first` to `first + minutes - 1` of one straight flight north-east; on the ground in the
    last response when `land`."""
    lines = []
    for i in range(first, first + minutes):
        alt: int | str = "ground" if land and i == first + minutes - 1 else 28_000
        record = aircraft("ae01ce", 35.0 + 0.03 * i, 124.6 + 0.02 * i, alt=alt, flight="SNOOP01")
        lines.append(envelope([record], now=start + timedelta(minutes=i)))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def hops(path: Path, count: int) -> Path:
    """A recording of `count` short sorties of 170478 (ae749d) on 2026-11-19: two airborne minutes, then
    a landing, every ten minutes; enough rows for the list to scroll."""
    start = datetime(2026, 11, 19, 1, 0, tzinfo=UTC)
    lines = [
        envelope([aircraft("ae749d", 36.0, 127.0 + 0.01 * i, alt=alt, flight="PEGASUS")],
                 now=start + timedelta(minutes=10 * k + i))
        for k in range(count)
        for i, alt in enumerate((3_000, 4_000, "ground"))
    ]  # fmt: skip
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def recent_start() -> datetime:
    """58 minutes ago, to the second: a flight from then is in `GET /api/now` (the last hour) from its
    second minute on."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=58)


def snoop_id(start: datetime) -> str:
    return f"ae01ce-{start + timedelta(seconds=-1.5):%Y%m%dT%H%M%SZ}"  # position time: `now` minus seen_pos


def facts_of(dom: Node) -> dict[str, str]:
    return {div.one("dt").text: div.one("dd").text for div in dom.one(id="facts").all("div")}


def page_colour(ft: float | None, top: float) -> str:
    """The stroke page.js gives a segment whose mean altitude is `ft` on a scale to `top`: the stops of
    ingest.mapping.colour_stops() (the table in page.js, tests/unit/test_mapping.py), interpolated."""
    if ft is None:
        return mapping.NO_ALTITUDE
    stops = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in mapping.colour_stops()]
    at = min(max(ft / top, 0.0), 1.0) * (len(stops) - 1)
    i = min(math.floor(at), len(stops) - 2)
    f = at - i
    r, g, b = (math.floor(lo + (hi - lo) * f + 0.5) for lo, hi in zip(stops[i], stops[i + 1], strict=True))
    return f"rgb({r}, {g}, {b})"


def rgb(stroke: str) -> tuple[int, ...]:
    match = re.fullmatch(r"rgb\((\d+), (\d+), (\d+)\)", stroke)
    assert match, stroke
    return tuple(int(v) for v in match.groups())


def track_points(svg: Node) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in svg.one("polyline", id="track-line").attrs["points"].split()]


def sightings_of(url: str, sortie: str) -> list[dict[str, Any]]:
    features = requests.get(f"{url}/api/sorties/{sortie}/track.geojson", timeout=10).json()["features"]
    return [f for f in features if f["properties"]["kind"] == "sighting"]


# -- tests --------------------------------------------------------------------------------------------


def test_page_shows_the_sorties_and_the_selected_track(server: ApiServer, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, f"{server.url}/#{TORA23}")
    body = dom.one("body")
    assert body.attrs["data-state"] == "ready", dom.one(id="error").text
    assert "hidden" in dom.one(id="error").attrs

    # Both sorties, newest first, with the watchlist's operator and type; the one in the URL selected.
    sorties = dom.one("table", id="sorties")
    assert [tr.attrs["data-id"] for tr in sorties.one("tbody").all("tr")] == [ROKN621, TORA23]
    assert [[row[0].removesuffix(SYNTHETIC_BADGE), *row[1:]] for row in sorties.rows()] == [
        ["230921", "Republic of Korea Navy · Boeing P-8A Poseidon", "ROKN621", "2026-11-20 23:40:56",
         "2026-11-21 02:24:52", "landed", "2 h 43 min", "24,000 ft"],
        ["62-4125", "USAF · Boeing RC-135W", "TORA23", "2026-11-20 22:55:58", "2026-11-21 01:54:56", "left_area",
         "2 h 58 min", "31,000 ft"],
    ]  # fmt: skip
    assert [td.attrs.get("title") for td in (tr.all("td")[1] for tr in sorties.one("tbody").all("tr"))] == [
        "ICAO type P8", "ICAO type R135",
    ]  # fmt: skip
    assert [tr.attrs["data-id"] for tr in sorties.all("tr", class_="selected")] == [TORA23]
    # A badge where the sortie is marked synthetic (test_synthetic_sorties_are_badged... marks one).
    marked = {
        s["sortie_id"]: s["synthetic"] for s in requests.get(f"{server.url}/api/sorties", timeout=10).json()["items"]
    }
    badged = {tr.attrs["data-id"]: bool(tr.all(class_="badge")) for tr in sorties.one("tbody").all("tr")}
    assert badged == marked

    # Its registration, operator, type and callsigns.
    assert dom.one(id="title").text.removesuffix(SYNTHETIC_BADGE) == "62-4125 · USAF · Boeing RC-135W · TORA23"
    facts = facts_of(dom)
    assert (facts["Sortie"], facts["Registration"], facts["Callsigns"], facts["Sightings"]) == (
        TORA23, "62-4125", "TORA23", "170",
    )  # fmt: skip
    assert (facts["Operator"], facts["Type"], facts["Duration"]) == ("USAF", "Boeing RC-135W (R135)", "2 h 58 min")

    # The track: one polyline of 170 points inside the view box, 169 segments coloured by altitude,
    # start and end marked, the area's box drawn.
    svg = dom.one("svg", id="track")
    assert svg.attrs["viewbox"] == "0 0 640 520"
    points = track_points(svg)
    assert len(points) == 170
    assert all(0 <= x <= 640 and 0 <= y <= 520 for x, y in points)
    segments = svg.one("g", class_="track").all("line")
    assert len(segments) == 169 and all(s.attrs["stroke"].startswith("rgb(") for s in segments)
    start, end = svg.one("circle", class_="start"), svg.one("rect", class_="end")
    assert (float(start.attrs["cx"]), float(start.attrs["cy"])) == points[0]
    assert (float(end.attrs["x"]) + 8, float(end.attrs["y"]) + 8) == pytest.approx(points[-1], abs=0.11)
    assert svg.one("rect", class_="area").one("title").text == "Area: Korean Peninsula"

    # What it did: one orbit over the Yellow Sea, its centre marked on the map, counted in the facts and
    # told in the list under them.
    assert facts["Reason"] == "left area" and facts["Took off from"] == "\N{EN DASH}"
    assert facts["Events"] == "1 orbit"
    events = dom.one("ol", id="events")
    assert "hidden" not in events.attrs
    (item,) = events.all("li")
    assert item.attrs["data-event"] == f"{TORA23}/orbit/1" and item.has("class_", "orbit")
    assert item.text.startswith("orbit 1 from 2026-11-20 23:32:58 UTC, 3 laps, legs ~110 km, radius ")
    (orbit,) = svg.all("g", class_="orbit")
    assert orbit.attrs["data-event"] == f"{TORA23}/orbit/1" and orbit.one("circle", class_="ring")

    # The sightings, as the API has them.
    sightings = sightings_of(server.url, TORA23)
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
    title = dom.one(id="title").text.removesuffix(SYNTHETIC_BADGE)
    assert title == "230921 · Republic of Korea Navy · Boeing P-8A Poseidon · ROKN621"
    facts = facts_of(dom)
    assert facts["Took off from"] == facts["Landed at"] == "Pohang Airport (G-815/K-3) (RKTH)"
    rows = dom.one("table", id="sightings").rows()
    assert len(rows) == 165
    assert rows[0] == ["2026-11-20 23:40:56", "36.0112", "129.4561", "300 ft", "153 kt", "51°"]
    assert rows[-1][0] == "2026-11-21 02:24:52"
    assert len(dom.one("polyline", id="track-line").attrs["points"].split()) == 165


def test_page_draws_the_coastline_under_the_track(server: ApiServer, tmp_path: Path) -> None:
    """Land from GET /api/coastline.geojson, filled under the grid and the track, in the page's own
    projection: Seoul, Pyongyang and Busan fall on it, the Yellow Sea and the East Sea do not."""
    dom = dump_dom(tmp_path, f"{server.url}/#{TORA23}")
    svg = dom.one("svg", id="track")
    order = [child for child in svg.children if isinstance(child, Node)]
    land, coast, line = svg.one("path", class_="land"), svg.one("path", class_="coast"), svg.one(id="track-line")
    sea = svg.one("rect", class_="sea")
    assert order.index(sea) < order.index(land) < order.index(coast) < order.index(svg.one("g", class_="grid"))
    assert order.index(coast) < order.index(svg.one("rect", class_="area")) < order.index(line)
    assert svg.all("path", class_="nodata") == []  # the view stays inside the bundled data's box

    # The page's projection, recovered from the track (least squares): x is linear in longitude, y in latitude.
    lonlat = np.array([f["geometry"]["coordinates"][:2] for f in sightings_of(server.url, TORA23)])
    points = track_points(svg)
    ax, bx = np.polyfit(lonlat[:, 0], [x for x, _ in points], 1)
    ay, by = np.polyfit(lonlat[:, 1], [y for _, y in points], 1)

    def at(lat: float, lon: float) -> tuple[float, float]:
        return (ax * lon + bx, ay * lat + by)

    assert all(at(lat, lon) == pytest.approx(p, abs=0.25) for (lon, lat), p in zip(lonlat, points, strict=True))
    rings = [
        MplPath([tuple(map(float, xy.split(","))) for xy in part.rstrip("Z").split("L")])
        for part in land.attrs["d"].split("M")[1:]
    ]
    assert len(rings) > 10 and sum(len(r.vertices) for r in rings) > 1000

    def on_land(lat: float, lon: float) -> bool:  # even-odd, as the page fills it
        return sum(ring.contains_point(at(lat, lon)) for ring in rings) % 2 == 1

    assert on_land(37.57, 126.98) and on_land(39.02, 125.75) and on_land(35.18, 129.08)
    assert not on_land(36.0, 124.0) and not on_land(38.0, 131.0)
    assert coast.attrs["d"].count("M") >= len(rings) // 2
    assert dom.one(id="attribution").text == mapping.ATTRIBUTION  # credited as the PNG does


def test_page_colours_altitudes_as_ingest_map_does(server: ApiServer, tmp_path: Path) -> None:
    """Each segment's stroke is the colormap table's at its mean altitude, on the scale ingest map uses
    (0 ft to the highest rounded up to 5,000 ft): for the P-8, which climbs from 300 ft to 24,000 ft,
    0..25,000 ft; within 7/255 of matplotlib's own colour."""
    dom = dump_dom(tmp_path, f"{server.url}/#{ROKN621}")
    sightings = sightings_of(server.url, ROKN621)
    feet = [0 if f["properties"]["on_ground"] else f["properties"]["alt_baro_ft"] for f in sightings]
    assert min(feet) < 500 and max(feet) == 24_000
    strokes = [s.attrs["stroke"] for s in dom.one("g", class_="track").all("line")]
    means = [(a + b) / 2 for a, b in itertools.pairwise(feet)]
    assert strokes == [page_colour(ft, 25_000) for ft in means]
    assert len(set(strokes)) > 10  # many altitudes, many colours
    cmap = matplotlib.colormaps[mapping.CMAP]
    for ft, stroke in zip(means, strokes, strict=True):
        expected = [round(v * 255) for v in cmap(ft / 25_000)[:3]]
        assert max(abs(a - b) for a, b in zip(rgb(stroke), expected, strict=True)) <= 7, (ft, stroke, expected)
    legend = dom.one(id="legend")
    assert "25,000 ft" in legend.text and "no altitude" in legend.text
    bar = legend.one("g", class_="scale").all("rect")
    assert bar[0].attrs["fill"] == page_colour(25_000 / 128, 25_000) and len(bar) == 64
    assert legend.all("rect", fill=mapping.NO_ALTITUDE)

    # TORA23 flies at 31,000 ft throughout: one colour, on a scale to 35,000 ft.
    dom = dump_dom(tmp_path, f"{server.url}/#{TORA23}")
    assert {s.attrs["stroke"] for s in dom.one("g", class_="track").all("line")} == {page_colour(31_000, 35_000)}
    assert "35,000 ft" in dom.one(id="legend").text


def test_page_durations_are_the_clis(make_site: MakeSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whole minutes, truncated, as `ingest sorties` prints them: 10,737 s is 2h58m there and 2 h 58 min here."""
    site = make_site()
    capsys.readouterr()
    assert main(["sorties", "--config", str(site.config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cli = {line.split()[0]: re.search(r"\b(\d+)h(\d\d)m\b", line) for line in lines[1:]}
    dom = dump_dom(tmp_path, f"{site.url}/")
    page = {tr.attrs["data-id"]: tr.all("td")[6].text for tr in dom.one(id="sorties").one("tbody").all("tr")}
    assert set(cli) == set(page) == {TORA23, ROKN621}
    for sortie, found in cli.items():
        assert found, lines
        assert page[sortie] == f"{int(found[1])} h {found[2]} min"
    assert page == {TORA23: "2 h 58 min", ROKN621: "2 h 43 min"}
    durations = {
        s["sortie_id"]: s["duration_s"] for s in requests.get(f"{site.url}/api/sorties", timeout=10).json()["items"]
    }
    assert durations[TORA23] // 60 == 178 and durations[TORA23] % 60 >= 30  # 2 h 58 min 57 s: rounding would say 59


FEEDS = [
    {"name": "receiver", "kind": "aircraft-json", "source": "http://127.0.0.1:9/data/aircraft.json"},
    {"name": "spare", "kind": "aircraft-json", "source": "http://127.0.0.1:9/spare.json", "enabled": False},
]


def daemon_row(site: Site, pid: int, started: datetime, beat: datetime, stopped: datetime | None = None) -> None:
    """A heartbeat row as `ingest run` on host "box" writes it (store.py's daemons table)."""
    site.sql(
        "INSERT INTO daemons (daemon, host, pid, version, started_at, beat_at, stopped_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        f"box:{pid}", "box", pid, "0.1.0", iso_z(started), iso_z(beat), iso_z(stopped) if stopped else None,
    )  # fmt: skip


def test_status_says_whether_the_daemon_runs_and_how_the_feeds_do(make_site: MakeSite, tmp_path: Path) -> None:
    site = make_site(feeds=FEEDS)

    def status() -> tuple[Node, dict[str, Any]]:
        dom = dump_dom(tmp_path, f"{site.url}/")
        return dom, requests.get(f"{site.url}/api/feeds", timeout=10).json()

    # Never run on this database; one feed never polled, one disabled.
    dom, api = status()
    daemon = dom.one(id="daemon")
    assert daemon.text == api["daemon"]["text"] == "no daemon has run on this database"
    assert daemon.attrs["data-running"] == "false"
    feeds = dom.one("ul", id="feeds").all("li")
    assert [(li.attrs["data-feed"], li.attrs["data-state"], li.text) for li in feeds] == [
        ("receiver", "never polled", "receiver never polled, no success yet"),
        ("spare", "disabled", "spare disabled"),
    ]

    # A daemon that stopped cleanly, and a feed that was fine before it failed three times.
    now = datetime.now(UTC).replace(microsecond=0)
    daemon_row(site, 41, now - timedelta(hours=2), beat=now - timedelta(hours=1), stopped=now - timedelta(hours=1))
    site.sql(
        "INSERT INTO feed_state (feed, state, at, failures, degraded_since, next_try_at, reason, last_success_at, "
        "last_error_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "receiver", "degraded", iso_z(now - timedelta(minutes=61)), 3, iso_z(now - timedelta(minutes=63)),
        iso_z(now - timedelta(minutes=60)), "connection refused", "2026-12-01T20:00:00Z",
        iso_z(now - timedelta(minutes=61)),
    )  # fmt: skip
    dom, api = status()
    daemon = dom.one(id="daemon")
    assert daemon.text == api["daemon"]["text"]
    assert daemon.text == f"no daemon is running: box:41 stopped at {iso_z(now - timedelta(hours=1))}"
    assert daemon.attrs["data-running"] == "false"
    receiver = dom.one("li", **{"data-feed": "receiver"})
    assert receiver.attrs["data-state"] == "degraded"
    assert receiver.text == "receiver degraded, last success 2026-12-01 20:00:00 UTC"
    assert receiver.attrs["title"] == "connection refused (3 failures in a row)"

    # A daemon beating now, and the feed fine again.
    daemon_row(site, 42, now - timedelta(minutes=5), beat=now)
    site.sql(
        "UPDATE feed_state SET state = 'ok', failures = 0, at = ?, last_success_at = ? WHERE feed = 'receiver'",
        iso_z(now), iso_z(now),
    )  # fmt: skip
    dom, api = status()
    daemon = dom.one(id="daemon")
    assert api["daemon"]["running"] is True and daemon.attrs["data-running"] == "true"
    assert daemon.text.startswith(f"daemon box:42 running since {iso_z(now - timedelta(minutes=5))} (heartbeat ")
    assert daemon.attrs["title"] == f"last heartbeat {now:%Y-%m-%d %H:%M:%S} UTC"
    receiver = dom.one("li", **{"data-feed": "receiver"})
    assert (receiver.attrs["data-state"], receiver.text) == (
        "ok",
        f"receiver ok, last success {now:%Y-%m-%d %H:%M:%S} UTC",
    )
    assert "title" not in receiver.attrs


def test_synthetic_sorties_are_badged_and_the_type_falls_back_to_its_code(make_site: MakeSite, tmp_path: Path) -> None:
    """A sortie marked synthetic (as the demo's will be) says so in its list row, its title and its facts;
    an aircraft the watchlist names no operator or type for shows its ICAO type code."""
    site = make_site()
    site.sql("UPDATE sorties SET synthetic = (sortie_id = ?)", TORA23)  # TORA23 only, however the demo came in
    site.sql("UPDATE aircraft SET operator = NULL, type_name = NULL WHERE key = '230921'")
    dom = dump_dom(tmp_path, f"{site.url}/#{TORA23}")
    rows = {tr.attrs["data-id"]: tr for tr in dom.one(id="sorties").one("tbody").all("tr")}
    badge = rows[TORA23].all("td")[0].one("span", class_="badge")
    assert badge.has("class_", "synthetic") and badge.text == "SYNTHETIC (demo)"
    assert rows[ROKN621].all(class_="badge") == [] and rows[ROKN621].all("td")[1].text == "P8"
    title = dom.one(id="title")
    assert title.text == "62-4125 · USAF · Boeing RC-135W · TORA23SYNTHETIC (demo)"
    assert title.one("span", class_="badge").text == "SYNTHETIC (demo)"
    assert facts_of(dom)["Data"] == "SYNTHETIC (demo)"
    assert dom.one(id="facts").one("span", class_="synthetic")

    dom = dump_dom(tmp_path, f"{site.url}/#{ROKN621}")
    assert dom.one(id="title").text == "230921 · P8 · ROKN621" and dom.one(id="title").all("span") == []
    facts = facts_of(dom)
    assert "Data" not in facts and (facts["Operator"], facts["Type"]) == ("\N{EN DASH}", "P8")


def test_now_lists_the_last_hour_and_a_click_selects_the_sortie(
    make_site: MakeSite, browser: Browser, tmp_path: Path
) -> None:
    """GET /api/now as a panel: 62-4134 on its open sortie (the demo is older than an hour, so absent);
    clicking its row selects that sortie, from another one."""
    start = recent_start()
    site = make_site(DEMO, flight(tmp_path / "snoop.ndjson", start, 20))
    snoop = snoop_id(start)
    browser.open(f"{site.url}/#{TORA23}")
    rows = browser.js(
        "[...document.querySelectorAll('#positions tbody tr')].map(tr => "
        "({id: tr.dataset.id || null, cls: tr.className, cells: [...tr.cells].map(td => td.textContent)}))"
    )
    assert len(rows) == 1 and rows[0]["id"] == snoop and rows[0]["cls"] == "has-sortie"
    reg, callsign, at, age, alt, speed, sortie = rows[0]["cells"]
    assert (reg, callsign, alt, speed, sortie) == (SNOOP, "SNOOP01", "28,000 ft", "412 kt", "open sortie")
    assert at == f"{start + timedelta(minutes=19, seconds=-1.5):%Y-%m-%d %H:%M:%S}"
    assert re.fullmatch(r"(39|40) min \d\d s", age), age  # 58 minutes ago, then 19 minutes of flight
    assert browser.js("document.getElementById('now-empty').hidden") is True
    assert browser.js("document.querySelector('#sorties tr.selected').dataset.id") == TORA23

    browser.js("document.querySelector('#positions tbody tr').click()")
    browser.wait(f"document.getElementById('title').textContent.endsWith('SNOOP01') && location.hash === '#{snoop}'")
    assert browser.js("document.body.dataset.state") == "ready"
    assert browser.js("document.querySelector('#sorties tr.selected').dataset.id") == snoop
    assert browser.js("document.querySelector('#positions tr.selected').dataset.id") == snoop
    assert browser.js("document.querySelector('#sightings caption').textContent") == "Sightings (20)"


def test_page_refreshes_itself_while_a_sortie_is_open(make_site: MakeSite, browser: Browser, tmp_path: Path) -> None:
    """With a sortie open the page reads the list and the selected sortie again every period (shortened
    to 1 s by `?refresh_s=1`, a knob for this test): new sightings appear, and the selection, the picked
    sighting and the scroll positions stay; once the sortie has ended, it stops."""
    start = recent_start()
    site = make_site(hops(tmp_path / "hops.ndjson", 14), flight(tmp_path / "first.ndjson", start, 30))
    snoop = snoop_id(start)
    browser.open(f"{site.url}/?refresh_s=1#{snoop}")
    assert browser.js("document.body.dataset.live") == "open"
    assert browser.js("document.querySelectorAll('#sorties tbody tr').length") == 15
    assert browser.js("document.querySelector('#sorties tbody tr').dataset.id") == snoop  # the newest, on top
    assert browser.js("document.querySelector('#sightings caption').textContent") == "Sightings (30)"
    # The reader scrolls the sightings and the page, and picks the sixth sighting.
    browser.js("document.querySelector('#sightings tbody tr:nth-child(6)').click()")
    # The reader also scrolls the list to its oldest sorties, away from the selected one.
    browser.js("document.getElementById('points').scrollTop = 120; window.scrollTo(0, 60)")
    browser.js("document.getElementById('list').scrollTop = 1e6")  # to its end
    scroll = "[document.getElementById('points').scrollTop, window.scrollY, document.getElementById('list').scrollTop]"
    scrolled = browser.js(scroll)
    assert scrolled[:2] == [120, 60] and scrolled[2] > 100

    site.replay(flight(tmp_path / "second.ndjson", start, 15, first=30))  # 15 more minutes, still flying
    browser.wait("document.querySelector('#sightings caption').textContent === 'Sightings (45)'")
    assert browser.js("document.querySelector('#sorties tr.selected').dataset.id") == snoop
    assert browser.js("location.hash") == f"#{snoop}"
    assert browser.js("document.querySelector('#sightings tr.selected').dataset.index") == "5"
    assert browser.js(scroll) == scrolled
    assert browser.js("document.getElementById('track-line').getAttribute('points').split(' ').length") == 45
    assert browser.js("document.body.dataset.state") == "ready"

    site.replay(flight(tmp_path / "third.ndjson", start, 5, first=45, land=True))  # it lands
    browser.wait("document.body.dataset.live === 'idle'")
    assert browser.js("document.querySelector('#sorties tr.selected').cells[5].textContent") == "landed"
    assert browser.js("document.querySelector('#positions tbody tr').dataset.id") is None  # no open sortie
    refreshes = browser.js("document.body.dataset.refreshes")
    time.sleep(3)  # three periods: nothing is open, so nothing is read again
    assert browser.js("document.body.dataset.refreshes") == refreshes
    assert browser.js(scroll) == scrolled


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
