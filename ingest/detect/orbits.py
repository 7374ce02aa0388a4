"""Orbit detection: an aircraft flying circles or a racetrack in one place (an RC-135 over the Yellow Sea,
an RQ-4 or P-8 over the East Sea, a tanker track), as `Happening`s of kind "orbit" (see base.py).

Owns the rule that says when a sortie's track is orbiting, where, how big and for how many laps. The
Tracker (pipeline) feeds the points and stores what comes out; naming airports is airports.py's job.

The rule. Every point gives a heading: its `track_deg`, else the bearing from the previous position in
x_m/y_m. The signed difference between consecutive headings (wrapped to -180..180, right turns positive)
is summed into a cumulative, unwrapped turning. An orbit is **recognised** at the first point where
1. some earlier point at most `WINDOW_S` before it has a cumulative turning `MIN_TURN_DEG` (720) or more
   away from this point's: two full turns; the latest such point starts the detection window, and
2. every point of that window lies within `ORBIT_RADIUS_M` of the window's centroid.
A straight transit turns ~0 in total, a transit with a U-turn 180 degrees, a zig-zag turns left and right
and its sum stays near its net heading change: none reaches 720. Circles and racetracks add 360 a lap.

The **episode** then runs, its points growing from the window's first point, until a point
- lies farther than the orbit's size (its points' largest distance from their centre, when last emitted)
  plus `EXIT_MARGIN_M` from the centre: the aircraft left; or
- has turned less than `REARM_TURN_DEG` (360) over the trailing `WINDOW_S`: it stopped orbiting there
  (a search pattern of alternating turns inside a big racetrack's footprint, for instance).
Either way the episode is closed with a last snapshot, and the window restarts empty at that point:
turning from before the end never counts toward the next orbit, which gets the next `n`.

Parameters (and why):
- `WINDOW_S` 80 min: two laps of a racetrack with 150 km legs and ~8 km turn radius are ~700 km, which an
  RC-135 or RQ-4 flies at 300-450 kt in 50-75 min; the 720 degrees needed take only three legs and four
  turns (~550 km), so even a 300 kt RQ-4 is recognised on such a track. Longer windows only delay re-arming.
- `MIN_TURN_DEG` 720: plane-notify's threshold (two circles); one lap can be a procedure turn
  or a hold entry, two are a deliberate orbit.
- `ORBIT_RADIUS_M` 110 km: a 150 km-leg racetrack with 15 km turns reaches ~90 km from its centre; 20 %
  more for sloppy legs and a window that starts or ends off the track. plane-notify's 15 mi (24 km) only
  fits tight circles. A transit cannot pass this test with 720 degrees of turning anyway.
- `EXIT_MARGIN_M` 15 km: about one turn diameter of a large aircraft, so a wide turn in wind or an
  overshot leg does not end the episode, while a 5 km circle still ends ~20 km out.
- `MAX_HEADING_GAP_S` 90 s: across a longer silence the aircraft may have turned any amount; that
  difference is dropped, not guessed. 60 s polling keeps every difference (an RC-135 at 25 degrees of bank
  turns ~1.3 degrees/s, 80 degrees a minute, well under the 180 that would alias).
- `MIN_MOVE_M` 50 m: below it a heading from two positions is mostly position noise.

What an episode reports (details, units in the names): `leg_km` the straight-leg length, approximated as
the extent along the principal axis minus the extent across it (0 for a circle); `orientation_deg` the
true bearing of that axis, 0-180; `laps` the most turning reached since the episode's first point / 360,
one decimal (it never goes down when the aircraft turns away to leave); `radius_km` the largest distance
of the orbit's points from its centre; `direction` "left" or "right"; `first_at`, `last_at` ISO 8601.
The geometry is measured over all the episode's points when it is recognised and each time a lap is
completed, when the aircraft is known to be back on its track; the last snapshot (the aircraft left, or
the sortie ended) keeps that geometry and updates only `laps` and `last_at`, so the line of an aircraft
leaving does not stretch the legs. The centre (lat/lon) is the mean of the points' latitudes and
longitudes: the area's CRS cannot be inverted without pyproj, and at 150 km the mean of degrees is within
a few hundred metres of the true centroid. Geometry uses a local tangent plane from lat/lon (true
north); distances while streaming use x_m/y_m.

A Happening comes when the orbit is recognised, again (same n) each time `laps` passes a whole number,
when the episode ends, and from `finish()` for an episode still open. Pure and deterministic: the same
points give the same episodes, numbers and details.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.detect.base import Happening, TrackPoint
from ingest.timeutil import iso_z

KIND = "orbit"
WINDOW_S = 80 * 60.0
MIN_TURN_DEG = 720.0
REARM_TURN_DEG = 360.0
ORBIT_RADIUS_M = 110_000.0
EXIT_MARGIN_M = 15_000.0
MAX_HEADING_GAP_S = 90.0
MIN_MOVE_M = 50.0
EARTH_RADIUS_M = 6_371_008.8
_EPS_DEG = 1e-6  # a sum of wrapped differences lands a hair under 720 or 1080 where it should be exact


@dataclass(frozen=True, slots=True)
class _Point:
    at: datetime
    lat_deg: float
    lon_deg: float
    x_m: float
    y_m: float
    turn_deg: float  # cumulative signed turning of the sortie up to this point, right turns positive


@dataclass(frozen=True, slots=True)
class _Shape:
    """An orbit's geometry over its points."""

    lat_deg: float
    lon_deg: float
    x_m: float
    y_m: float
    size_m: float  # largest distance of a point from the centre (x/y)
    leg_km: float
    orientation_deg: float
    radius_km: float


@dataclass(slots=True)
class _Episode:
    n: int
    detected_at: datetime
    points: list[_Point]
    sign: float  # +1 right-hand, -1 left-hand
    best_turn_deg: float = 0.0  # the most turning reached since points[0], in the orbit's direction
    whole_laps: int = 0  # laps last reported as a whole number
    shape: _Shape | None = None  # as last emitted: its centre and size decide when the aircraft left

    def progress_deg(self, point: _Point) -> float:
        return self.sign * (point.turn_deg - self.points[0].turn_deg)


class _Window:
    """The points of the trailing WINDOW_S, with their lowest and highest cumulative turning kept by
    monotonic deques, so a point that cannot complete MIN_TURN_DEG costs O(1)."""

    def __init__(self, first: _Point | None = None) -> None:
        self.points: deque[_Point] = deque()
        self._lows: deque[_Point] = deque()
        self._highs: deque[_Point] = deque()
        if first is not None:
            self.push(first)

    def push(self, p: _Point) -> None:
        self.points.append(p)
        while self._lows and self._lows[-1].turn_deg >= p.turn_deg:
            self._lows.pop()
        self._lows.append(p)
        while self._highs and self._highs[-1].turn_deg <= p.turn_deg:
            self._highs.pop()
        self._highs.append(p)
        oldest = p.at - timedelta(seconds=WINDOW_S)
        while self.points[0].at < oldest:
            self.points.popleft()
        while self._lows[0].at < oldest:
            self._lows.popleft()
        while self._highs[0].at < oldest:
            self._highs.popleft()

    def turned_deg(self) -> float:
        """Net turning from the window's first point to its last."""
        return abs(self.points[-1].turn_deg - self.points[0].turn_deg)

    def may_complete(self) -> bool:
        """Whether some point of the window is MIN_TURN_DEG of turning away from the last one."""
        last = self.points[-1].turn_deg
        reach = MIN_TURN_DEG - _EPS_DEG
        return self._highs[0].turn_deg - last >= reach or last - self._lows[0].turn_deg >= reach


@dataclass(slots=True)
class _Track:
    """One open sortie: the trailing window of points since the last re-arm, and the open episode."""

    window: _Window = field(default_factory=_Window)
    turn_deg: float = 0.0
    heading_deg: float | None = None
    heading_at: datetime | None = None
    anchor: tuple[float, float] | None = None  # where the last position-derived heading was measured from
    episode: _Episode | None = None
    episodes: int = 0


class OrbitDetector:
    """Orbits of every open sortie (Detector Protocol, base.py); state is kept per sortie_id."""

    kind = KIND

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}

    def observe(self, sortie_id: str, point: TrackPoint) -> list[Happening]:
        track = self._tracks.setdefault(sortie_id, _Track())
        p = _advance(track, point)
        track.window.push(p)
        if track.episode is not None:
            return self._continue(sortie_id, track, p)
        return self._detect(sortie_id, track)

    def finish(self, sortie_id: str) -> list[Happening]:
        track = self._tracks.pop(sortie_id, None)
        if track is None or track.episode is None:
            return []
        return [_snapshot(sortie_id, track.episode, measure=False)]

    def _detect(self, sortie_id: str, track: _Track) -> list[Happening]:
        window = _detection_window(track.window)
        if window is None:
            return []
        track.episodes += 1
        last = window[-1]
        sign = 1.0 if last.turn_deg > window[0].turn_deg else -1.0
        episode = _Episode(n=track.episodes, detected_at=last.at, points=window, sign=sign)
        episode.best_turn_deg = episode.progress_deg(last)
        episode.whole_laps = _whole_laps(episode.best_turn_deg)
        track.episode = episode
        return [_snapshot(sortie_id, episode, measure=True)]

    def _continue(self, sortie_id: str, track: _Track, p: _Point) -> list[Happening]:
        episode = track.episode
        assert episode is not None and episode.shape is not None
        left = math.hypot(p.x_m - episode.shape.x_m, p.y_m - episode.shape.y_m) > episode.shape.size_m + EXIT_MARGIN_M
        if left or track.window.turned_deg() < REARM_TURN_DEG:
            track.episode = None
            track.window = _Window(p)  # re-arm: nothing before the end counts toward the next orbit
            return [_snapshot(sortie_id, episode, measure=False)]
        episode.points.append(p)
        progress = episode.progress_deg(p)
        if progress <= episode.best_turn_deg:
            return []
        episode.best_turn_deg = progress
        if _whole_laps(progress) <= episode.whole_laps:
            return []
        episode.whole_laps = _whole_laps(progress)
        return [_snapshot(sortie_id, episode, measure=True)]


def _advance(track: _Track, point: TrackPoint) -> _Point:
    """Add this point's heading change to the sortie's cumulative turning; return the point as stored."""
    heading = point.track_deg
    if heading is None and track.anchor is not None:
        dx, dy = point.x_m - track.anchor[0], point.y_m - track.anchor[1]
        if math.hypot(dx, dy) >= MIN_MOVE_M:
            heading = math.degrees(math.atan2(dx, dy)) % 360.0
    if heading is None:
        if track.anchor is None:
            track.anchor = (point.x_m, point.y_m)
    else:
        track.anchor = (point.x_m, point.y_m)
        previous, previous_at = track.heading_deg, track.heading_at
        if (
            previous is not None
            and previous_at is not None
            and (point.at - previous_at).total_seconds() <= MAX_HEADING_GAP_S
        ):
            track.turn_deg += _wrap(heading - previous)
        track.heading_deg, track.heading_at = heading, point.at
    return _Point(point.at, point.lat_deg, point.lon_deg, point.x_m, point.y_m, track.turn_deg)


def _whole_laps(turn_deg: float) -> int:
    return int((turn_deg + _EPS_DEG) // 360.0)


def _wrap(delta_deg: float) -> float:
    """A heading difference in (-180, 180]."""
    wrapped = (delta_deg + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def _detection_window(window: _Window) -> list[_Point] | None:
    """The shortest tail of the window that turned MIN_TURN_DEG, if it also stays within ORBIT_RADIUS_M."""
    if not window.may_complete():
        return None
    last = window.points[-1]
    tail: list[_Point] = []
    for q in reversed(window.points):
        tail.append(q)
        if abs(last.turn_deg - q.turn_deg) >= MIN_TURN_DEG - _EPS_DEG:
            break
    tail.reverse()
    cx = sum(q.x_m for q in tail) / len(tail)
    cy = sum(q.y_m for q in tail) / len(tail)
    if any(math.hypot(q.x_m - cx, q.y_m - cy) > ORBIT_RADIUS_M for q in tail):
        return None
    return tail


def _shape(points: list[_Point]) -> _Shape:
    """Centre, size and principal axis; the axis in a local tangent plane (metres east, north) from lat/lon."""
    count = len(points)
    lat0 = sum(q.lat_deg for q in points) / count
    lon0 = sum(q.lon_deg for q in points) / count
    x0 = sum(q.x_m for q in points) / count
    y0 = sum(q.y_m for q in points) / count
    k = math.radians(1.0) * EARTH_RADIUS_M
    cos_lat = math.cos(math.radians(lat0))
    east = [(q.lon_deg - lon0) * k * cos_lat for q in points]
    north = [(q.lat_deg - lat0) * k for q in points]
    see = sum(e * e for e in east) / count
    snn = sum(n * n for n in north) / count
    sen = sum(e * n for e, n in zip(east, north, strict=True)) / count
    theta = 0.5 * math.atan2(2.0 * sen, see - snn)  # axis angle from east, counter-clockwise
    ux, uy = math.cos(theta), math.sin(theta)
    along = [e * ux + n * uy for e, n in zip(east, north, strict=True)]
    across = [-e * uy + n * ux for e, n in zip(east, north, strict=True)]
    leg_m = max(0.0, (max(along) - min(along)) - (max(across) - min(across)))
    bearing = math.degrees(math.atan2(ux, uy)) % 180.0
    size_m = max(math.hypot(q.x_m - x0, q.y_m - y0) for q in points)
    radius_m = max(math.hypot(e, n) for e, n in zip(east, north, strict=True))
    return _Shape(lat0, lon0, x0, y0, size_m, leg_m / 1000.0, bearing, radius_m / 1000.0)


def _snapshot(sortie_id: str, episode: _Episode, measure: bool) -> Happening:
    """The episode as it stands. With `measure` (the aircraft has just completed a lap), its shape is
    measured over all its points and kept for the exit test; otherwise the last measured one is reported."""
    if measure or episode.shape is None:
        episode.shape = _shape(episode.points)
    shape = episode.shape
    orientation = round(shape.orientation_deg, 1)
    return Happening(
        kind=KIND,
        sortie_id=sortie_id,
        n=episode.n,
        started_at=episode.points[0].at,
        detected_at=episode.detected_at,
        lat_deg=round(shape.lat_deg, 5),
        lon_deg=round(shape.lon_deg, 5),
        details={
            "leg_km": round(shape.leg_km, 1),
            "orientation_deg": 0.0 if orientation == 180.0 else orientation,
            "laps": round(episode.best_turn_deg / 360.0, 1),
            "radius_km": round(shape.radius_km, 1),
            "direction": "right" if episode.sign > 0 else "left",
            "first_at": iso_z(episode.points[0].at),
            "last_at": iso_z(episode.points[-1].at),
        },
    )
