"""Emergency detection: a watched aircraft squawking 7500/7600/7700 or declaring an emergency over ADS-B,
as `Happening`s of kind "emergency" (see base.py).

Owns the rule that says when a sortie's points show an emergency, when it is over, and what it reports.
The Tracker (pipeline) feeds the points and stores what comes out; alert wording is the outbox's job.

Each point is one of
- **emergency**: squawk 7500, 7600 or 7700, or readsb `emergency` other than "none" (general, lifeguard,
  minfuel, nordo, unlawful, downed, reserved);
- **clear**: it carries a squawk or an `emergency` field, and neither says emergency;
- **unknown**: it carries neither (MLAT and TIS-B positions have no transponder status). Unknown points
  neither confirm, break nor end anything.

The rule. An emergency is **recognised** when it is held: seen on two consecutive known points (two polls)
at least `CONFIRM_SPAN_S` apart, with no clear point between them. A single point is never enough: a
garbled reply or a pilot dialling a new code through 7700 shows it for a second or two. At 60 s polling
this is the second poll (60 s of emergency); on a 1 Hz receiver feed, the point 5 s after the first.
The **episode** ends when the same test holds for clear points: two consecutive clear points at least
`CONFIRM_SPAN_S` apart with no emergency point between (one stale squawk from a lagging feed ends nothing).
A later emergency is a new episode with the next `n`.

Parameters:
- `CONFIRM_SPAN_S` 5 s: longer than a code dialled through (1-2 s), shorter than any feed's poll interval,
  so two polls always suffice.

What an episode reports: lat/lon where it was recognised; details `squawk` (the latest emergency point's,
None when only the `emergency` field said so), `emergency` (readsb's word, or derived from the squawk:
7500 unlawful, 7600 nordo, 7700 general), `alt_baro_ft` when recognised, `first_at`, `last_at` (ISO 8601,
the first and latest emergency points). A Happening comes when it is recognised, again (same n) when the
code or word changes, when the episode ends (its last snapshot), and from `finish()` for one still open.
Pure and deterministic: no clock, every time comes from the points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ingest.detect.base import Happening, TrackPoint
from ingest.timeutil import iso_z

KIND = "emergency"
CONFIRM_SPAN_S = 5.0
SQUAWK_WORDS = {"7500": "unlawful", "7600": "nordo", "7700": "general"}
NOT_AN_EMERGENCY = "none"

EMERGENCY, CLEAR, UNKNOWN = "emergency", "clear", "unknown"


def state(point: TrackPoint) -> str:
    """Whether the point says emergency, says there is none, or says nothing."""
    word = (point.emergency or "").strip().lower()
    if point.squawk in SQUAWK_WORDS or (word and word != NOT_AN_EMERGENCY):
        return EMERGENCY
    return CLEAR if point.squawk is not None or point.emergency is not None else UNKNOWN


def describe(point: TrackPoint) -> tuple[str | None, str]:
    """(squawk, word) of an emergency point: readsb's word when it gives one, else the squawk's meaning."""
    word = (point.emergency or "").strip().lower()
    if word and word != NOT_AN_EMERGENCY:
        return point.squawk, word
    return point.squawk, SQUAWK_WORDS[point.squawk or ""]


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive known points of one state: the first one, and the latest."""

    kind: str
    first: TrackPoint
    last: TrackPoint

    @property
    def held(self) -> bool:
        return (self.last.at - self.first.at).total_seconds() >= CONFIRM_SPAN_S


@dataclass(frozen=True, slots=True)
class _Episode:
    n: int
    first_at: datetime
    detected: TrackPoint
    last_at: datetime
    squawk: str | None
    word: str


@dataclass(slots=True)
class _Sortie:
    run: _Run | None = None
    episode: _Episode | None = None
    episodes: int = 0


class EmergencyDetector:
    """Emergencies of every open sortie (Detector Protocol, base.py); state is kept per sortie_id."""

    kind = KIND

    def __init__(self) -> None:
        self._sorties: dict[str, _Sortie] = {}

    def observe(self, sortie_id: str, point: TrackPoint) -> list[Happening]:
        sortie = self._sorties.setdefault(sortie_id, _Sortie())
        kind = state(point)
        if kind == UNKNOWN:
            return []
        run = sortie.run
        sortie.run = _Run(kind, point, point) if run is None or run.kind != kind else replace(run, last=point)
        if kind == EMERGENCY:
            return self._emergency(sortie_id, sortie, point)
        return self._clear(sortie_id, sortie)

    def finish(self, sortie_id: str) -> list[Happening]:
        sortie = self._sorties.pop(sortie_id, None)
        if sortie is None or sortie.episode is None:
            return []
        return [_happening(sortie_id, sortie.episode)]

    def _emergency(self, sortie_id: str, sortie: _Sortie, point: TrackPoint) -> list[Happening]:
        squawk, word = describe(point)
        episode = sortie.episode
        if episode is not None:
            changed = (squawk, word) != (episode.squawk, episode.word)
            sortie.episode = replace(episode, last_at=point.at, squawk=squawk, word=word)
            return [_happening(sortie_id, sortie.episode)] if changed else []
        run = sortie.run
        assert run is not None
        if not run.held:
            return []
        sortie.episodes += 1
        sortie.episode = _Episode(sortie.episodes, run.first.at, point, point.at, squawk, word)
        return [_happening(sortie_id, sortie.episode)]

    def _clear(self, sortie_id: str, sortie: _Sortie) -> list[Happening]:
        run, episode = sortie.run, sortie.episode
        if episode is None or run is None or not run.held:
            return []
        sortie.episode = None
        return [_happening(sortie_id, episode)]


def _happening(sortie_id: str, episode: _Episode) -> Happening:
    detected = episode.detected
    return Happening(
        kind=KIND,
        sortie_id=sortie_id,
        n=episode.n,
        started_at=episode.first_at,
        detected_at=detected.at,
        lat_deg=detected.lat_deg,
        lon_deg=detected.lon_deg,
        details={
            "squawk": episode.squawk,
            "emergency": episode.word,
            "alt_baro_ft": detected.alt_baro_ft,
            "first_at": iso_z(episode.first_at),
            "last_at": iso_z(episode.last_at),
        },
    )
