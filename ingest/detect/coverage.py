"""Covered time: when our feeds were actually looking, so that our own blindness is never read as an
aircraft's silence.

A feed *covers* an aircraft when a successful poll of it would have reported that aircraft:
- `watched`: hex and registration queries ask for every watchlisted aircraft, wherever it flies;
- `military`: a `mil` query returns every aircraft the feed marks military, wherever it flies;
- `all`: an area query (circles or a box over the area) and a receiver (SBS, aircraft.json) report every
  aircraft they can hear: all a sortie needs, since a sortie is about the area.

Two consecutive successful, stored polls of one feed, at most `bound_s` apart (twice its interval), cover
the time between them. A failed poll, a parked feed, a poll whose result could not be written (a full
disk) and the time the daemon was not running cover nothing, so the gap that ends a sortie stops counting
(detect/sorties.py). Polls are the record: the store rebuilds coverage from its `feed_polls` rows after a
restart, and a daemon down for 20 minutes has no pair of polls spanning its downtime.

Pure: times come in as arguments; intervals are kept merged per scope, in Unix seconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime

ALL = "all"
WATCHED = "watched"
MILITARY = "military"
SCOPES = (ALL, WATCHED, MILITARY)

_QUERY_SCOPES = {"hex": WATCHED, "area": ALL, "mil": MILITARY}


def feed_scopes(kind: str, queries: Iterable[str]) -> frozenset[str]:
    """What a feed of this kind with these `queries` covers: receivers and files cover all they hear; the
    HTTP APIs cover what their queries ask for."""
    if kind in ("sbs", "aircraft-json"):
        return frozenset({ALL})
    return frozenset(_QUERY_SCOPES[q] for q in queries if q in _QUERY_SCOPES)


def aircraft_scopes(watched: bool, military: bool) -> frozenset[str]:
    """The scopes that include an aircraft: `all` always; `watched` if the watchlist lists it; `military`
    if the feeds mark it so."""
    return frozenset({ALL} | ({WATCHED} if watched else set()) | ({MILITARY} if military else set()))


class Coverage:
    """Merged covered intervals per scope, and each feed's last successful poll (to pair with the next)."""

    def __init__(self) -> None:
        self._starts: dict[str, list[float]] = {s: [] for s in SCOPES}
        self._ends: dict[str, list[float]] = {s: [] for s in SCOPES}
        # feed -> (start of its last success, how long it may be live after it, scopes)
        self._last_success: dict[str, tuple[float, float, frozenset[str]]] = {}

    def poll_succeeded(
        self, feed: str, scopes: frozenset[str], at: datetime, bound_s: float, took_s: float = 0.0
    ) -> None:
        """A poll of `feed` that started at `at`, took `took_s` and succeeded, was stored: it covers the time
        back to the feed's previous success when that started at most `bound_s` earlier. Until its next
        success is due (`bound_s` + `took_s` after `at`: the next poll's start and its own answer), the feed
        counts as looking now (`covered_s(live_until=...)`)."""
        t = at.timestamp()
        previous = self._last_success.get(feed)
        if previous is not None and 0 <= t - previous[0] <= bound_s:
            for scope in scopes:
                self._add(scope, previous[0], t)
        if previous is None or t >= previous[0]:
            self._last_success[feed] = (t, bound_s + took_s, scopes)

    def _add(self, scope: str, start: float, end: float) -> None:
        starts, ends = self._starts[scope], self._ends[scope]
        i = bisect.bisect_left(ends, start)  # the first interval that ends at or after `start`
        j = bisect.bisect_right(starts, end)  # intervals from i to j-1 touch [start, end]
        if i < j:
            start = min(start, starts[i])
            end = max(end, ends[j - 1])
        starts[i:j] = [start]
        ends[i:j] = [end]

    def covered_s(
        self, scopes: Iterable[str], since: datetime, until: datetime, live_until: datetime | None = None
    ) -> float:
        """Seconds of [since, until] covered by any of `scopes`. With `live_until`, a feed whose last
        success started recently enough (see poll_succeeded) also covers from that start to `live_until`:
        it is looking right now, and its next answer is due."""
        lo, hi = since.timestamp(), until.timestamp()
        if hi <= lo:
            return 0.0
        wanted = frozenset(scopes)
        pieces: list[tuple[float, float]] = []
        for scope in wanted:
            starts, ends = self._starts[scope], self._ends[scope]
            i = bisect.bisect_right(ends, lo)
            while i < len(starts) and starts[i] < hi:
                pieces.append((max(starts[i], lo), min(ends[i], hi)))
                i += 1
        if live_until is not None:
            now = live_until.timestamp()
            for at, bound_s, feed_scopes_ in self._last_success.values():
                if feed_scopes_ & wanted and 0 <= now - at <= bound_s:
                    start, end = max(at, lo), min(now, hi)
                    if end > start:
                        pieces.append((start, end))
        return _union_length(pieces)

    def prune(self, before: datetime) -> None:
        """Forget intervals that ended before `before` (no open sortie looks back that far)."""
        cut = before.timestamp()
        for scope in SCOPES:
            i = bisect.bisect_left(self._ends[scope], cut)
            del self._starts[scope][:i]
            del self._ends[scope][:i]

    def intervals(self, scope: str) -> list[tuple[float, float]]:
        """The merged intervals of a scope, oldest first (Unix seconds): for tests and diagnostics."""
        return list(zip(self._starts[scope], self._ends[scope], strict=True))

    def last_successes(self) -> Mapping[str, float]:
        return {feed: v[0] for feed, v in self._last_success.items()}


def _union_length(pieces: list[tuple[float, float]]) -> float:
    total = 0.0
    end = float("-inf")
    for lo, hi in sorted(pieces):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total
