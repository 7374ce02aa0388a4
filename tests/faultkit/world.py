"""The scripted world: watched aircraft on known orbits inside the area, and the feed answers built from
them at request time, with a log of every answer served.

Time is the wall clock (`time.time()`), like the daemon's and its log lines. Every answer carries
`now` (ms) and, per aircraft, a `seen_pos` chosen so that the position time is `now_s - 0.5` (`now_s` the
whole second of `now`): the store keys a sighting by `int(position time)`, so each answer carries exactly
the position second `now_s - 1` for every aircraft it reports, far from any rounding edge. The position
itself is a function of that position time, so two answers within one second report the same fix.

Aircraft (tests/fixtures/watchlist_small.csv): three fly (ae01d2, ae01ce, 71f00d); the fourth watched
one, ae749d, only ever appears in poisoned records, so any sighting or sortie of it is a defect.
Unwatched traffic rides along in every answer and must be filtered out.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.conftest import aircraft

FLYERS: dict[str, str] = {"ae01d2": "TORA23", "ae01ce": "SNOOP01", "71f00d": "NAVY921"}
POISON_HEX = "ae749d"
NOISE_HEXES = tuple(f"{0x7C0000 + i * 977:06x}" for i in range(12))  # unwatched traffic
# Orbits well inside the Korean box (33-43.5 N, 124-132 E): centre lat, centre lon, radius deg, period s.
ORBITS: dict[str, tuple[float, float, float, float]] = {
    "ae01d2": (37.2, 125.2, 0.35, 900.0),
    "ae01ce": (36.0, 126.0, 0.25, 700.0),
    "71f00d": (35.2, 129.4, 0.30, 800.0),
}
OUTSIDE = (30.5, 125.0)  # south of the box (off Okinawa): reported, never stored

ABSENT, AIRBORNE, GROUND, OUTSIDE_AREA = "absent", "airborne", "ground", "outside"
LANDED, LEFT_AREA, SIGNAL_LOST = "landed", "left_area", "signal_lost"

GOOD = "good"  # a whole answer of well-formed records
POISON_RECORD = "poison-record"  # good records plus one poisoned record: the good ones must be kept
POISON_ENVELOPE = "poison-envelope"  # the envelope lies (`now`): none of its positions is required
FAULT = "fault"  # no usable answer


@dataclass(frozen=True, slots=True)
class Position:
    hex_icao: str
    second: int  # the stored key: int(position time)
    inside: bool
    on_ground: bool


@dataclass(slots=True)
class Served:
    """One answer the feed server gave (or tried to give)."""

    at: float  # wall-clock time the answer was built
    path: str
    kind: str  # GOOD, POISON_RECORD, POISON_ENVELOPE or FAULT
    fault: str = ""  # the fault or poison name, "" for a good answer
    positions: tuple[Position, ...] = ()
    delivered: bool = False  # the whole answer was written to the socket
    now_shift_s: float = 0.0  # how far the envelope's `now` lies (poisoned envelopes)

    @property
    def carried(self) -> tuple[Position, ...]:
        """Positions a daemon could have stored from this answer."""
        return self.positions if self.delivered and self.kind != FAULT else ()


@dataclass(slots=True)
class Flight:
    """What the world flew: one sortie the daemon must find, once, with this end reason."""

    hex_icao: str
    takeoff_at: float
    end_at: float | None = None
    end_reason: str | None = None


@dataclass(slots=True)
class _State:
    phase: str = ABSENT
    ground_at: tuple[float, float] = (0.0, 0.0)
    flight: Flight | None = None


def answer_clock(now: float) -> tuple[int, float, int]:
    """(now in ms, seen_pos, position second) for an answer built at `now`."""
    now_ms = int(now * 1000)
    seen_pos = round((now_ms % 1000) / 1000 + 0.5, 3)
    return now_ms, seen_pos, now_ms // 1000 - 1


def orbit_position(hex_icao: str, t: float) -> tuple[float, float]:
    lat0, lon0, radius, period = ORBITS[hex_icao]
    angle = 2 * math.pi * (t % period) / period
    return round(lat0 + radius * math.sin(angle), 5), round(lon0 + radius * math.cos(angle), 5)


def envelope_bytes(records: Iterable[dict[str, Any] | bytes], now_ms: int) -> bytes:
    """A readsb-v2 (jv2) answer; a record given as bytes is spliced in verbatim (poison)."""
    parts = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]
    head = json.dumps({"msg": "No error", "now": now_ms, "ctime": now_ms, "ptime": 0, "total": len(parts)})
    return head[:-1].encode() + b', "ac": [' + b", ".join(parts) + b"]}"


class World:
    """The sky the feed server reports. Thread-safe: the server's threads read it, the runner moves it."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.states: dict[str, _State] = {h: _State() for h in FLYERS}
        self.flights: list[Flight] = []
        self.served: list[Served] = []

    # -- the runner's side -------------------------------------------------------------------------

    def takeoff(self, hex_icao: str) -> None:
        with self.lock:
            state = self.states[hex_icao]
            assert state.flight is None or state.flight.end_at is not None, f"{hex_icao} is already flying"
            state.phase = AIRBORNE
            state.flight = Flight(hex_icao, time.time())
            self.flights.append(state.flight)

    def land(self, hex_icao: str) -> None:
        with self.lock:
            state = self.states[hex_icao]
            state.ground_at = orbit_position(hex_icao, time.time())
            self._end(state, LANDED, GROUND)

    def leave(self, hex_icao: str) -> None:
        """Fly out of the area: still reported (outside), so the sortie ends left_area after the gap."""
        with self.lock:
            self._end(self.states[hex_icao], LEFT_AREA, OUTSIDE_AREA)

    def vanish(self, hex_icao: str) -> None:
        """Stop reporting at all; ends an airborne flight signal_lost, and a landed or departed one quietly."""
        with self.lock:
            state = self.states[hex_icao]
            if state.phase == AIRBORNE:
                self._end(state, SIGNAL_LOST, ABSENT)
            state.phase = ABSENT

    def _end(self, state: _State, reason: str, phase: str) -> None:
        assert state.phase == AIRBORNE and state.flight is not None, "only an airborne aircraft can end a flight"
        state.flight.end_at = time.time()
        state.flight.end_reason = reason
        state.phase = phase

    def phase(self, hex_icao: str) -> str:
        with self.lock:
            return self.states[hex_icao].phase

    # -- the server's side -------------------------------------------------------------------------

    def records(self, pos_t: float, seen_pos: float) -> tuple[list[dict[str, Any]], tuple[Position, ...], int]:
        """The watched and unwatched records of an answer whose positions are at `pos_t`."""
        records: list[dict[str, Any]] = []
        positions: list[Position] = []
        second = int(pos_t)
        with self.lock:
            for hex_icao, state in self.states.items():
                callsign = f"{FLYERS[hex_icao]:<8}"
                if state.phase == AIRBORNE:
                    lat, lon = orbit_position(hex_icao, pos_t)
                    records.append(aircraft(hex_icao, lat, lon, alt=31000, flight=callsign, seen_pos=seen_pos))
                    positions.append(Position(hex_icao, second, True, False))
                elif state.phase == GROUND:
                    lat, lon = state.ground_at
                    records.append(aircraft(hex_icao, lat, lon, alt="ground", flight=callsign, seen_pos=seen_pos))
                    positions.append(Position(hex_icao, second, True, True))
                elif state.phase == OUTSIDE_AREA:
                    records.append(aircraft(hex_icao, *OUTSIDE, alt=30000, flight=callsign, seen_pos=seen_pos))
                    positions.append(Position(hex_icao, second, False, False))
        for i, hex_icao in enumerate(NOISE_HEXES):
            lat, lon = 34.0 + 0.6 * i, 124.5 + 0.5 * i
            records.append(aircraft(hex_icao, lat, lon, alt=20000 + 500 * i, flight=f"KAL{100 + i:<5}", seen_pos=1.0))
        return records, tuple(positions), second

    def record(self, served: Served) -> Served:
        with self.lock:
            self.served.append(served)
            self.lock.notify_all()
        return served

    def delivered(self, served: Served) -> None:
        with self.lock:
            served.delivered = True
            self.lock.notify_all()

    # -- waiting on what was served ----------------------------------------------------------------

    def answers(self, since: float = 0.0) -> list[Served]:
        with self.lock:
            return [s for s in self.served if s.at >= since]

    def wait_for(self, check: Callable[[list[Served]], bool], timeout_s: float) -> bool:
        """Wait until check(answers served so far) holds; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while not check(self.served):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.2))
            return True

    def wait_good(self, since: float, count: int = 1, timeout_s: float = 10.0, hex_icao: str | None = None,
                  phase: str | None = None) -> float | None:  # fmt: skip
        """The time of the `count`-th good answer served at or after `since` (carrying `hex_icao` in
        `phase` when given); None on timeout."""
        found: list[float] = []

        def check(served: list[Served]) -> bool:
            found.clear()
            for s in served:
                if s.at < since or s.kind != GOOD or not s.delivered or "/hex/" not in s.path:
                    continue
                if hex_icao is not None and not any(_in_phase(p, hex_icao, phase) for p in s.positions):
                    continue
                found.append(s.at)
            return len(found) >= count

        return found[count - 1] if self.wait_for(check, timeout_s) else None


def _in_phase(p: Position, hex_icao: str, phase: str | None) -> bool:
    if p.hex_icao != hex_icao:
        return False
    if phase == GROUND:
        return p.on_ground
    if phase == AIRBORNE:
        return p.inside and not p.on_ground
    if phase == OUTSIDE_AREA:
        return not p.inside
    return True
