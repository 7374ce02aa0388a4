"""`ingest map`: sorties drawn over the coastline as a PNG or SVG picture. The only matplotlib importer.

The picture is drawn in the area's projected CRS (`[area] crs`, EPSG:5179 by default) through
`ingest.geo.Projector`, so distances and shapes are true to scale; a graticule every 1, 2 or 5 degrees
gives the longitudes and latitudes, labelled where it meets the map's bottom and left edges.

- Land: `ingest/data/coastline-korea-50m.geojson` (Natural Earth 1:50m, public domain; see the README
  beside it), filled, its coast stroked. It covers lon 100-150, lat 15-55: the rings are cut along that
  box and the cut edges are not stroked; a map reaching beyond it is greyed there (no data, not sea).
- The view: the area's box plus a margin, grown to hold every sighting, then widened or heightened to the
  map's shape. The box is drawn dashed.
- Each track: a line coloured by barometric altitude (0 ft on the ground; grey where a sighting has
  none), with a colorbar in feet; the start (circle) and the end (square) of each sortie are marked,
  with their UTC times when there are at most LABELLED_SORTIES sorties.
- The title: registrations, operators, types (the watchlist's full name, else the ICAO code) and
  callsigns; the UTC period; the sortie id(s) and counts, after "SYNTHETIC demo data" (in red) when the
  sorties come from a synthetic recording.
- The web page (ingest/static/page.js) colours its tracks from a table of this colormap sampled at
  PAGE_COLOUR_STOPS stops, with the same 0..top scale: `page_colour_table()` is that table as script,
  written into page.js by scripts/build_page_colours.py and checked against it by tests/unit/test_mapping.py.

No pyplot: one `Figure` with its own Agg canvas per picture, nothing registered globally; rcParams are
changed only by an `rc_context` around the SVG write (text as <text>, not paths; stable ids).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter

from ingest import __version__
from ingest.detect.base import Happening
from ingest.geo import Area, FloatArray, Projector
from ingest.models import Fix, Sortie

MAP_FORMATS = ("png", "svg")
COASTLINE = "coastline-korea-50m.geojson"
SIZE_IN = (8.0, 6.0)
DPI = 200  # PNG: 1600 x 1200 pixels
# The map's frame and the colorbar's, as fractions of the figure (left, bottom, width, height).
MAP_BOX = (0.075, 0.065, 0.80, 0.795)
BAR_BOX = (0.895, 0.065, 0.022, 0.795)
MARGIN = 0.06  # around the area's box (and the track), as a share of its larger side
EDGE_POINTS = 64  # per edge of the box and per graticule line degree span, for curved edges
SEA = "#dbe8f2"
LAND = "#f1ece0"
COAST = "#6b7f8e"
GRID = "#9aa9b5"
BOX = "#263238"
OUTLINE = "#1b1b1b"
NO_ALTITUDE = "#8c8c8c"
NO_DATA = "#e2e2e2"  # beyond the bundled coastline
START = "#2e9e44"
END = "#c62828"
ORBIT = "#6a1b9a"  # an orbit's centre and radius
EMERGENCY = "#ff6f00"
CMAP = "turbo"
TOP_MIN_FT = 10_000  # the colour scale's top: the highest altitude rounded up to TOP_STEP_FT, at least this
TOP_STEP_FT = 5_000
PAGE_COLOUR_STOPS = 33  # every 1/32 of the scale: linear between them, within 7/255 of the colormap
SYNTHETIC = "SYNTHETIC demo data"
SYNTHETIC_COLOUR = "#b71c1c"
LABELLED_SORTIES = 6  # more sorties than this: their start and end marks go without times
TITLE_RIGHT = 0.985  # the title's lines end before this share of the figure's width
TITLE_ITEMS = 6  # registrations, types or callsigns named in the title; more end in "…"
# Behind labels on the map: a halo would turn SVG text into paths, a box keeps it text.
LABEL_BOX = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
ATTRIBUTION = "Coastline: Natural Earth 1:50m (public domain)"

Row = Mapping[str, Any]
Track = tuple[Sortie, Sequence[Row]]
Ring = FloatArray  # (n, 2) longitude, latitude


def map_format(path: Path) -> str | None:
    """The picture format named by a file's suffix (.png, .svg, any case), or None."""
    fmt = path.suffix.lower().lstrip(".")
    return fmt if fmt in MAP_FORMATS else None


@lru_cache(maxsize=1)
def land() -> tuple[tuple[tuple[Ring, ...], ...], tuple[float, float, float, float]]:
    """The bundled land polygons (outer ring, then holes) in degrees, and the box they were cut to."""
    text = resources.files("ingest").joinpath("data", COASTLINE).read_text(encoding="utf-8")
    doc = json.loads(text)
    west, south, east, north = (float(v) for v in doc["bbox"])
    polygons: list[tuple[Ring, ...]] = []
    for feature in doc["features"]:
        geometry = feature["geometry"]
        parts = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        polygons.extend(tuple(np.asarray(ring, dtype=np.float64) for ring in part) for part in parts)
    return tuple(polygons), (west, south, east, north)


def render_map(
    tracks: Sequence[Track],
    area: Area,
    projector: Projector,
    fmt: str,
    *,
    subject: str | None = None,
    happenings: Sequence[Happening] = (),
) -> bytes:
    """The picture as PNG or SVG bytes. `subject` names what was asked for, shown when there is no track;
    `happenings` (orbits, emergencies) are marked where they were: an orbit at its centre."""
    if fmt not in MAP_FORMATS:
        raise ValueError(f"unknown map format {fmt!r}; known: {', '.join(MAP_FORMATS)}")
    fig = Figure(figsize=SIZE_IN, dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes(MAP_BOX)
    bar = fig.add_axes(BAR_BOX)

    box_x, box_y = _box_outline(area, projector)
    tracks_xy = [_project_track(rows, projector) for _, rows in tracks]
    xs = np.concatenate([box_x, *(t[0] for t in tracks_xy)])
    ys = np.concatenate([box_y, *(t[1] for t in tracks_xy)])
    xlim, ylim = _view(xs[np.isfinite(xs)], ys[np.isfinite(ys)], fig, ax)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_facecolor(SEA)

    _draw_land(ax, projector, xlim, ylim)
    _draw_graticule(ax, projector, area, tracks, xlim, ylim)
    ax.plot(box_x, box_y, color=BOX, linewidth=1.3, linestyle=(0, (6, 3)), zorder=4)
    ax.annotate(
        area.name, (box_x[0], box_y[0]), xytext=(5, -5), textcoords="offset points", ha="left", va="top",
        fontsize=8, color=BOX, style="italic", zorder=4, annotation_clip=True, bbox=LABEL_BOX,
    )  # fmt: skip

    cmap = matplotlib.colormaps[CMAP].with_extremes(bad=NO_ALTITUDE)
    norm = Normalize(0.0, _top_ft(tracks))
    labelled = len(tracks) <= LABELLED_SORTIES
    for (sortie, _), (x, y, alt) in zip(tracks, tracks_xy, strict=True):
        _draw_track(ax, x, y, alt, cmap, norm)
        _mark(ax, projector, sortie.first, "start", START, "o", labelled)
        _mark(ax, projector, sortie.last, "end" if sortie.end_reason else "last", END, "s", labelled)
    shown = {s.sortie_id for s, _ in tracks}
    marked = [h for h in happenings if h.sortie_id in shown]
    for h in marked:
        _mark_happening(ax, projector, h, labelled)

    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar)
    colorbar.set_label("barometric altitude (ft)", fontsize=9)
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    colorbar.ax.tick_params(labelsize=8)

    handles = [
        Line2D([], [], color=BOX, linewidth=1.3, linestyle=(0, (6, 3)), label=f"area: {area.name}"),
        Line2D([], [], color="white", marker="o", markerfacecolor=START, markeredgecolor="white",
               markersize=10, linestyle="none", label="start (UTC)"),
        Line2D([], [], color="white", marker="s", markerfacecolor=END, markeredgecolor="white",
               markersize=6.5, linestyle="none", label="end or last seen (UTC)"),
    ]  # fmt: skip
    if any(np.isnan(alt).any() for _, _, alt in tracks_xy):
        handles.append(Line2D([], [], color=NO_ALTITUDE, linewidth=2.5, label="no altitude"))
    if any(h.kind == "orbit" for h in marked):
        handles.append(Line2D([], [], color=ORBIT, marker="P", markersize=10, markeredgecolor="white",
                              linestyle="none", label="orbit centre"))  # fmt: skip
    if any(h.kind == "emergency" for h in marked):
        handles.append(Line2D([], [], color=EMERGENCY, marker="^", markersize=10, markeredgecolor="white",
                              linestyle="none", label="emergency"))  # fmt: skip
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9, facecolor="white", edgecolor="#b0b0b0")

    _title(fig, tracks, subject)
    fig.text(
        MAP_BOX[0] + MAP_BOX[2], 0.012, f"{ATTRIBUTION} · projection {projector.crs} · ingest {__version__}",
        ha="right", va="bottom", fontsize=6.5, color="#707070",
    )  # fmt: skip

    out = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ingest-map"}):
            fig.savefig(out, format="svg", metadata={"Date": None, "Creator": f"ingest {__version__}"})
    else:
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": f"ingest {__version__}"})
    return out.getvalue()


# -- geometry -------------------------------------------------------------------------------------


def _box_outline(area: Area, projector: Projector) -> tuple[FloatArray, FloatArray]:
    """The area's edges, densified (a parallel is curved in most projections), from the north-west corner."""
    w, s, n = area.west_deg, area.south_deg, area.north_deg
    e = w + area.width_deg
    t = np.linspace(0.0, 1.0, EDGE_POINTS)
    lons = np.concatenate([w + (e - w) * t, np.full(EDGE_POINTS, e), e - (e - w) * t, np.full(EDGE_POINTS, w)])
    lats = np.concatenate([np.full(EDGE_POINTS, n), n - (n - s) * t, np.full(EDGE_POINTS, s), s + (n - s) * t])
    return projector.project(lons, lats)


def _project_track(rows: Sequence[Row], projector: Projector) -> tuple[FloatArray, FloatArray, FloatArray]:
    """x, y and the altitude in feet (0 on the ground, NaN when unknown) of each sighting."""
    lons = np.array([r["lon"] for r in rows], dtype=np.float64)
    lats = np.array([r["lat"] for r in rows], dtype=np.float64)
    alt = np.array(
        [0.0 if r["on_ground"] else (math.nan if r["alt_baro_ft"] is None else r["alt_baro_ft"]) for r in rows],
        dtype=np.float64,
    )
    x, y = projector.project(lons, lats)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], alt[keep]


def _view(xs: FloatArray, ys: FloatArray, fig: Figure, ax: Axes) -> tuple[tuple[float, float], tuple[float, float]]:
    """Limits that hold every point with a margin, in the shape of the map's frame (1 m = 1 m both ways)."""
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    pad = MARGIN * max(x1 - x0, y1 - y0, 1.0)
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    width_in, height_in = fig.get_size_inches() * np.array(ax.get_position().size)
    shape = height_in / width_in
    if (y1 - y0) / (x1 - x0) < shape:
        grow = ((x1 - x0) * shape - (y1 - y0)) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = ((y1 - y0) / shape - (x1 - x0)) / 2
        x0, x1 = x0 - grow, x1 + grow
    return (x0, x1), (y0, y1)


def _draw_land(ax: Axes, projector: Projector, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """Land filled, coasts stroked; ring edges along the data's cut box are filled but not stroked, and
    what the view shows beyond that box is greyed."""
    polygons, (west, south, east, north) = land()
    beyond_x, beyond_y = _box_outline(Area("data", south, west, north, east), projector)
    if np.isfinite(beyond_x).all() and np.isfinite(beyond_y).all():
        (x0, x1), (y0, y1) = xlim, ylim
        pad = max(x1 - x0, y1 - y0)
        frame = np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])
        inner = np.column_stack([beyond_x, beyond_y])
        if _signed_area(inner) > 0:  # the hole runs against the frame, whatever the projection did
            inner = inner[::-1]
        frame_codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(frame) - 1)
        hole_codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(inner) - 1)
        beyond = MplPath(np.concatenate([frame, inner]), frame_codes + hole_codes)
        ax.add_patch(PathPatch(beyond, facecolor=NO_DATA, edgecolor="none", zorder=1.5))
    vertices: list[FloatArray] = []
    codes: list[Any] = []
    coasts: list[FloatArray] = []
    for rings in polygons:
        for ring in rings:
            x, y = projector.project(ring[:, 0], ring[:, 1])
            xy = np.column_stack([x, y])
            if not np.isfinite(xy).all():
                continue
            vertices.append(xy)
            ring_codes = np.full(len(xy), MplPath.LINETO, dtype=MplPath.code_type)
            ring_codes[0], ring_codes[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            codes.append(ring_codes)
            lon, lat = ring[:, 0], ring[:, 1]
            on_cut = (
                ((lon[:-1] == west) & (lon[1:] == west)) | ((lon[:-1] == east) & (lon[1:] == east))
                | ((lat[:-1] == south) & (lat[1:] == south)) | ((lat[:-1] == north) & (lat[1:] == north))
            )  # fmt: skip
            start = 0
            for i in [*np.flatnonzero(on_cut).tolist(), len(xy) - 1]:
                if i > start:
                    coasts.append(xy[start : i + 1])
                start = i + 1
    if vertices:
        path = MplPath(np.concatenate(vertices), np.concatenate(codes))
        ax.add_patch(PathPatch(path, facecolor=LAND, edgecolor="none", zorder=1))
    ax.add_collection(LineCollection(coasts, colors=COAST, linewidths=0.7, zorder=2), autolim=False)


def _signed_area(xy: FloatArray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) / 2)


def _graticule_step(xlim: tuple[float, float]) -> int:
    degrees = (xlim[1] - xlim[0]) / 111_000.0 / 0.8  # roughly, at these latitudes
    return 1 if degrees <= 8 else 2 if degrees <= 24 else 5 if degrees <= 60 else 10


def _draw_graticule(
    ax: Axes,
    projector: Projector,
    area: Area,
    tracks: Sequence[Track],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
) -> None:
    """Meridians and parallels, labelled where they cross the bottom and left edges of the map."""
    step = _graticule_step(xlim)
    lons = [area.west_deg, area.west_deg + area.width_deg, *(r["lon"] for _, rows in tracks for r in rows)]
    lats = [area.south_deg, area.north_deg, *(r["lat"] for _, rows in tracks for r in rows)]
    reach = 25.0  # degrees beyond what is drawn: the view's margin and its widening stay well inside
    lon0, lon1 = math.floor((min(lons) - reach) / step) * step, math.ceil((max(lons) + reach) / step) * step
    lat0 = max(-80, math.floor((min(lats) - reach) / step) * step)
    lat1 = min(84, math.ceil((max(lats) + reach) / step) * step)
    lines: list[FloatArray] = []
    x_ticks: list[tuple[float, str]] = []
    y_ticks: list[tuple[float, str]] = []
    dense_lat = np.linspace(lat0, lat1, EDGE_POINTS * 4)
    dense_lon = np.linspace(lon0, lon1, EDGE_POINTS * 4)
    for lon in range(lon0, lon1 + 1, step):
        x, y = projector.project(np.full(dense_lat.size, float(lon)), dense_lat)
        lines.append(np.column_stack([x, y]))
        crossing = _crossing(x, y, ylim[0])
        if crossing is not None and xlim[0] < crossing < xlim[1]:
            x_ticks.append((crossing, _degrees(lon, "E", "W")))
    for lat in range(lat0, lat1 + 1, step):
        x, y = projector.project(dense_lon, np.full(dense_lon.size, float(lat)))
        lines.append(np.column_stack([x, y]))
        crossing = _crossing(y, x, xlim[0])
        if crossing is not None and ylim[0] < crossing < ylim[1]:
            y_ticks.append((crossing, _degrees(lat, "N", "S")))
    lines = [line[np.isfinite(line).all(axis=1)] for line in lines]
    ax.add_collection(LineCollection(lines, colors=GRID, linewidths=0.5, alpha=0.8, zorder=3), autolim=False)
    ax.set_xticks([t for t, _ in x_ticks], [s for _, s in x_ticks])
    ax.set_yticks([t for t, _ in y_ticks], [s for _, s in y_ticks])
    ax.tick_params(labelsize=8, length=3, color=GRID)
    for spine in ax.spines.values():
        spine.set_edgecolor("#7a8a96")


def _crossing(along: FloatArray, across: FloatArray, level: float) -> float | None:
    """Where a polyline (`along`, `across`) crosses `across == level`, interpolated; the first, or None."""
    d = across - level
    ok = np.isfinite(d) & np.isfinite(along)
    hits = np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(d[:-1]) != np.sign(d[1:])))
    if not hits.size:
        return None
    i = int(hits[0])
    t = d[i] / (d[i] - d[i + 1])
    return float(along[i] + t * (along[i + 1] - along[i]))


def _degrees(value: int, positive: str, negative: str) -> str:
    return f"{abs(value)}°{positive if value >= 0 else negative}" if value else "0°"


# -- tracks ---------------------------------------------------------------------------------------


def _top_ft(tracks: Sequence[Track]) -> float:
    """The colour scale's top: the highest altitude rounded up to 5,000 ft, at least 10,000 ft."""
    highest = max(
        [r["alt_baro_ft"] for _, rows in tracks for r in rows if r["alt_baro_ft"] is not None and not r["on_ground"]],
        default=0,
    )
    return float(max(TOP_MIN_FT, math.ceil(highest / TOP_STEP_FT) * TOP_STEP_FT))


def colour_stops(n: int = PAGE_COLOUR_STOPS) -> list[str]:
    """The altitude colormap at n evenly spaced stops from 0 to 1 (0 ft to the scale's top), as #rrggbb."""
    rgba = matplotlib.colormaps[CMAP](np.linspace(0.0, 1.0, n))
    return [f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}" for r, g, b, _ in rgba]


PAGE_TABLE_BEGIN = "// -- altitude colours: from ingest/mapping.py by scripts/build_page_colours.py; do not edit"
PAGE_TABLE_END = "// -- end of the altitude colours"


def page_colour_table() -> str:
    """The block of ingest/static/page.js that holds the altitude colours, markers included."""
    stops = colour_stops()
    rows = [", ".join(f'"{c}"' for c in stops[i : i + 8]) for i in range(0, len(stops), 8)]
    body = ",\n".join(f"    {row}" for row in rows)
    return "\n".join([
        f"  {PAGE_TABLE_BEGIN}",
        f"  // matplotlib's {CMAP!r} at {len(stops)} even stops from 0 ft to the top; linear between stops.",
        f"  const ALTITUDE_COLOURS = [\n{body},\n  ];",
        f'  const NO_ALTITUDE = "{NO_ALTITUDE}";',
        f"  const TOP_MIN_FT = {TOP_MIN_FT}; // the top: the highest altitude rounded up to TOP_STEP_FT, at least this",
        f"  const TOP_STEP_FT = {TOP_STEP_FT};",
        f"  {PAGE_TABLE_END}",
    ])  # fmt: skip


def _draw_track(ax: Axes, x: FloatArray, y: FloatArray, alt: FloatArray, cmap: Colormap, norm: Normalize) -> None:
    """A dark casing under a line whose segments take the colour of their mean altitude."""
    if x.size == 0:
        return
    if x.size == 1:
        ax.scatter(x, y, c=np.ma.masked_invalid(alt), cmap=cmap, norm=norm, s=30, edgecolors=OUTLINE, zorder=5)
        return
    ax.plot(x, y, color=OUTLINE, linewidth=4.2, solid_capstyle="round", solid_joinstyle="round", zorder=5)
    points = np.column_stack([x, y])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    colour = np.ma.masked_invalid((alt[:-1] + alt[1:]) / 2)
    lines = LineCollection(list(segments), cmap=cmap, norm=norm, linewidths=2.6, capstyle="round", zorder=6)
    lines.set_array(colour)
    ax.add_collection(lines, autolim=False)


def _mark(ax: Axes, projector: Projector, fix: Fix, kind: str, colour: str, marker: str, labelled: bool) -> None:
    x, y = projector.project(np.array([fix.lon_deg]), np.array([fix.lat_deg]))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return
    # The start's circle is larger than the end's square: where a sortie ends where it began, both show.
    ax.scatter(
        x, y, s=130 if kind == "start" else 50, marker=marker, c=colour, edgecolors="white", linewidths=1.4,
        zorder=8 if kind == "start" else 8.5,
    )  # fmt: skip
    if not labelled:
        return
    ax.annotate(
        f"{kind} {fix.at.astimezone(UTC):%H:%M}Z", (float(x[0]), float(y[0])), xytext=(8, 6 if kind == "start" else -6),
        textcoords="offset points", ha="left", va="bottom" if kind == "start" else "top", fontsize=8,
        fontweight="bold", color=colour, zorder=9, bbox=LABEL_BOX,
    )  # fmt: skip


def _mark_happening(ax: Axes, projector: Projector, h: Happening, labelled: bool) -> None:
    """An orbit: a cross at its centre and a dashed circle of its radius; an emergency: a triangle."""
    x, y = projector.project(np.array([h.lon_deg]), np.array([h.lat_deg]))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return
    cx, cy = float(x[0]), float(y[0])
    if h.kind == "orbit":
        radius_km = h.details.get("radius_km")
        if isinstance(radius_km, int | float) and radius_km > 0:
            ring = Circle((cx, cy), radius_km * 1000.0, fill=False, edgecolor=ORBIT, linewidth=1.2,
                          linestyle=(0, (4, 3)), zorder=7)  # fmt: skip
            ax.add_patch(ring)
        ax.scatter([cx], [cy], s=140, marker="P", c=ORBIT, edgecolors="white", linewidths=1.2, zorder=9)
        laps = h.details.get("laps")
        text = f"orbit {h.n}" + (f", {laps:g} laps" if isinstance(laps, int | float) else "")
    else:
        ax.scatter([cx], [cy], s=140, marker="^", c=EMERGENCY, edgecolors="white", linewidths=1.2, zorder=9)
        text = f"emergency {h.details.get('squawk') or h.details.get('emergency') or ''}".strip()
    if labelled:
        ax.annotate(
            f"{text} {h.detected_at.astimezone(UTC):%H:%M}Z", (cx, cy), xytext=(9, -9), textcoords="offset points",
            ha="left", va="top", fontsize=8, color=ORBIT if h.kind == "orbit" else EMERGENCY, zorder=9, bbox=LABEL_BOX,
        )  # fmt: skip


# -- title ----------------------------------------------------------------------------------------


def _names(values: Sequence[str | None]) -> str:
    """The distinct values in order, comma-separated, at most TITLE_ITEMS of them."""
    unique = list(dict.fromkeys(v for v in values if v))
    return ", ".join(unique[:TITLE_ITEMS]) + (", …" if len(unique) > TITLE_ITEMS else "")


def _period(start: datetime, end: datetime) -> str:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M:%S} \N{EN DASH} {end:%H:%M:%S} UTC"
    return f"{start:%Y-%m-%d %H:%M:%S} \N{EN DASH} {end:%Y-%m-%d %H:%M:%S} UTC"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def title_lines(tracks: Sequence[Track], subject: str | None = None) -> tuple[str, str, str]:
    """The three title lines: who (registration, operator, type, callsigns), when, which sorties (first
    saying "SYNTHETIC demo data" when they come from a synthetic recording)."""
    if not tracks:
        return (subject or "ingest map", "no sorties to draw", "")
    sorties = [s for s, _ in tracks]
    who = [
        _names([s.registration or s.key for s in sorties]),
        _names([s.operator for s in sorties]),
        _names([s.type_name or s.type_icao for s in sorties]) or "type unknown",
        _names([c for s in sorties for c in s.callsigns]) or "no callsign",
    ]
    start = min(s.start_at for s in sorties)
    end = max(s.last.at for s in sorties)
    when = f"{_period(start, end)} · {_duration((end - start).total_seconds())}"
    sightings = sum(len(rows) for _, rows in tracks)
    top = max((s.max_alt_baro_ft for s in sorties if s.max_alt_baro_ft is not None), default=None)
    highest = f" · max {top:,} ft" if top is not None else ""
    if len(sorties) == 1:
        s = sorties[0]
        ended = f"ended: {s.end_reason.replace('_', ' ')}" if s.end_reason else "in progress"
        which = f"sortie {s.sortie_id} · {sightings} sightings{highest}"
        when += f" · {ended}"
    else:
        ids = ", ".join(s.sortie_id for s in sorties) if len(sorties) <= 3 else f"{sorties[0].sortie_id} …"
        which = f"{len(sorties)} sorties ({ids}) · {sightings} sightings{highest}"
    synthetic = sum(s.synthetic for s in sorties)
    if synthetic:
        which = f"{SYNTHETIC}{'' if synthetic == len(sorties) else f' ({synthetic} of {len(sorties)})'} · {which}"
    return (" · ".join(w for w in who if w), when, which)


def _title(fig: Figure, tracks: Sequence[Track], subject: str | None) -> None:
    who, when, which = title_lines(tracks, subject)
    left = MAP_BOX[0]
    lines = [
        fig.text(left, 0.975, who, ha="left", va="top", fontsize=14, fontweight="bold", color="#111111"),
        fig.text(left, 0.930, when, ha="left", va="top", fontsize=10, color="#222222"),
    ]
    if which.startswith(SYNTHETIC):  # said where it cannot be missed: the data is made up
        lines.append(fig.text(left, 0.897, which, ha="left", va="top", fontsize=8.5, fontweight="bold",
                              color=SYNTHETIC_COLOUR))  # fmt: skip
    else:
        lines.append(fig.text(left, 0.897, which, ha="left", va="top", fontsize=8.5, color="#555555"))
    # A long line ("230921 · Republic of Korea Navy · Boeing P-8A Poseidon · ROKN621" at 14 pt) would run
    # off the picture: it is set smaller until it fits.
    room_px = (TITLE_RIGHT - left) * fig.bbox.width
    for line in lines:
        width_px = line.get_window_extent().width  # measured with the Agg canvas made in render_map
        if width_px > room_px:
            line.set_fontsize(float(line.get_fontsize()) * room_px / width_px)
