"""Build ingest/data/coastline-korea-50m.geojson, the land that `ingest map` draws, from world-atlas.

world-atlas 2.0.2 (npm, ISC licence) holds Natural Earth's 1:50m land (public domain) as TopoJSON:
`land-50m.json`, one MultiPolygon whose rings are lists of shared arcs, each arc quantized and
delta-encoded. This script, with the standard library only:

1. decodes the arcs: positions are running sums of the integer deltas, then `q * scale + translate`;
2. stitches each ring from its arcs (`~i`, a negative index, is arc i reversed; each arc after the first
   repeats the previous one's last position, which is dropped);
3. clips every ring to a box around the Korean Peninsula (Sutherland-Hodgman against each edge: a ring
   cut by the box comes back closed along the box's edges, which `ingest.mapping` does not stroke);
4. rounds to 4 decimals (~11 m), drops repeated positions and rings left with no area, orients outer
   rings counter-clockwise and holes clockwise (RFC 7946), and writes one MultiPolygon Feature with the
   box as its `bbox`.

Usage (the npm registry is the only download):
    npm pack world-atlas@2.0.2
    python scripts/build_coastline.py world-atlas-2.0.2.tgz

SOURCE may be the npm tarball or the land-50m.json inside it. See ingest/data/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "ingest" / "data" / "coastline-korea-50m.geojson"
TARBALL_MEMBER = "package/land-50m.json"
# west, south, east, north: generous around the Korean Peninsula, so that a map widened to its frame's
# shape, or of another area nearby, still has its coasts: eastern China, Taiwan, Japan, Sakhalin, the
# Russian Far East, Luzon's north (about 60 KB).
BOX = (100.0, 15.0, 150.0, 55.0)
DECIMALS = 4

Point = tuple[float, float]
Ring = list[Point]


def load_topology(source: Path) -> dict[str, Any]:
    if source.suffix in (".tgz", ".gz"):
        with tarfile.open(source, "r:gz") as tar:
            member = tar.extractfile(TARBALL_MEMBER)
            if member is None:
                raise SystemExit(f"{source}: no {TARBALL_MEMBER}")
            data: dict[str, Any] = json.load(member)
            return data
    with source.open("rb") as f:
        data = json.load(f)
        return data


def decode_arcs(topology: dict[str, Any]) -> list[list[Point]]:
    """Every arc as absolute longitude/latitude positions."""
    transform = topology.get("transform")
    if transform is None:
        return [[(float(x), float(y)) for x, y, *_ in arc] for arc in topology["arcs"]]
    (kx, ky), (tx, ty) = transform["scale"], transform["translate"]
    arcs: list[list[Point]] = []
    for arc in topology["arcs"]:
        x = y = 0
        points: list[Point] = []
        for dx, dy, *_ in arc:
            x += dx
            y += dy
            points.append((x * kx + tx, y * ky + ty))
        arcs.append(points)
    return arcs


def stitch(indexes: Sequence[int], arcs: Sequence[Sequence[Point]]) -> Ring:
    """A ring from its arc indexes: ~i is arc i backwards; shared end positions appear once."""
    ring: Ring = []
    for i in indexes:
        arc = list(arcs[i]) if i >= 0 else list(reversed(arcs[~i]))
        ring.extend(arc[1:] if ring else arc)
    return ring


def polygons(topology: dict[str, Any], arcs: Sequence[Sequence[Point]]) -> list[list[Ring]]:
    """Every polygon of every geometry of every object: its outer ring, then its holes."""
    out: list[list[Ring]] = []

    def walk(geometry: dict[str, Any]) -> None:
        kind = geometry["type"]
        if kind == "GeometryCollection":
            for g in geometry["geometries"]:
                walk(g)
        elif kind == "Polygon":
            out.append([stitch(r, arcs) for r in geometry["arcs"]])
        elif kind == "MultiPolygon":
            out.extend([stitch(r, arcs) for r in p] for p in geometry["arcs"])

    for obj in topology["objects"].values():
        walk(obj)
    return out


def _clip_edge(ring: Ring, inside: Callable[[Point], bool], cross: Callable[[Point, Point], Point]) -> Ring:
    if not ring:
        return ring
    out: Ring = []
    previous = ring[-1]
    for point in ring:
        if inside(point):
            if not inside(previous):
                out.append(cross(previous, point))
            out.append(point)
        elif inside(previous):
            out.append(cross(previous, point))
        previous = point
    return out


def _at_x(x: float) -> Callable[[Point, Point], Point]:
    return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))


def _at_y(y: float) -> Callable[[Point, Point], Point]:
    return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)


def clip(ring: Ring, box: tuple[float, float, float, float]) -> Ring:
    """The ring clipped to the box (Sutherland-Hodgman), open (the first position is not repeated)."""
    west, south, east, north = box
    if ring and ring[0] == ring[-1]:
        ring = ring[:-1]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    if not ring or max(xs) < west or min(xs) > east or max(ys) < south or min(ys) > north:
        return []
    if min(xs) >= west and max(xs) <= east and min(ys) >= south and max(ys) <= north:
        return ring
    ring = _clip_edge(ring, lambda p: p[0] >= west, _at_x(west))
    ring = _clip_edge(ring, lambda p: p[0] <= east, _at_x(east))
    ring = _clip_edge(ring, lambda p: p[1] >= south, _at_y(south))
    return _clip_edge(ring, lambda p: p[1] <= north, _at_y(north))


def signed_area(ring: Ring) -> float:
    """Shoelace area in square degrees: positive when counter-clockwise."""
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1], strict=True)) / 2


def tidy(ring: Ring, outer: bool) -> list[list[float]] | None:
    """Rounded, without repeats, oriented, closed; None when nothing with an area is left."""
    rounded: Ring = []
    for x, y in ring:
        p = (round(x, DECIMALS), round(y, DECIMALS))
        if not rounded or p != rounded[-1]:
            rounded.append(p)
    while len(rounded) > 1 and rounded[0] == rounded[-1]:
        rounded.pop()
    if len(rounded) < 3:
        return None
    area = signed_area(rounded)
    if abs(area) < 10 ** (-2 * DECIMALS):
        return None
    if (area > 0) != outer:
        rounded.reverse()
    return [[x, y] for x, y in [*rounded, rounded[0]]]


def build(topology: dict[str, Any], box: tuple[float, float, float, float]) -> dict[str, Any]:
    arcs = decode_arcs(topology)
    coordinates: list[list[list[list[float]]]] = []
    for rings in polygons(topology, arcs):
        outer = tidy(clip(rings[0], box), outer=True)
        if outer is None:
            continue
        holes = [h for r in rings[1:] if (h := tidy(clip(r, box), outer=False)) is not None]
        coordinates.append([outer, *holes])
    return {
        "type": "FeatureCollection",
        "bbox": list(box),
        "features": [
            {
                "type": "Feature",
                "bbox": list(box),
                "geometry": {"type": "MultiPolygon", "coordinates": coordinates},
                "properties": {
                    "name": "land",
                    "source": "Natural Earth 1:50m land (public domain), via world-atlas 2.0.2 land-50m.json (ISC)",
                    "clipped_to": list(box),
                },
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="world-atlas-2.0.2.tgz (from npm pack) or its land-50m.json")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    args = parser.parse_args(argv)
    doc = build(load_topology(args.source), BOX)
    text = json.dumps(doc, separators=(",", ":")) + "\n"
    args.output.write_text(text)
    polys = doc["features"][0]["geometry"]["coordinates"]
    points = sum(len(r) for p in polys for r in p)
    print(f"{args.output}: {len(polys)} polygons, {points} positions, {len(text) // 1024} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
