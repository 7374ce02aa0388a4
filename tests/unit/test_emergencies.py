"""EmergencyDetector (ingest/detect/emergencies.py): squawks 7500/7600/7700 and readsb `emergency`, held
on two polls; episodes end on two clear polls; a later one is the next n."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from ingest.detect.base import Detector, Happening, TrackPoint
from ingest.detect.emergencies import CLEAR, EMERGENCY, UNKNOWN, EmergencyDetector, describe, state

T0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
SORTIE = "71f00d-20261120T233500Z"


def point(s: float, squawk: str | None = "0721", emergency: str | None = "none", alt: int | None = 24000) -> TrackPoint:
    """A point `s` seconds after T0, moving east a little each second."""
    return TrackPoint(T0 + timedelta(seconds=s), 37.5, 130.6 + s * 1e-4, s * 10.0, 0.0, alt, 360.0, 90.0,
                      squawk, emergency, "test")  # fmt: skip


def run(points: Iterable[TrackPoint], detector: EmergencyDetector | None = None) -> list[Happening]:
    detector = detector or EmergencyDetector()
    out: list[Happening] = []
    for p in points:
        out.extend(detector.observe(SORTIE, p))
    return out + detector.finish(SORTIE)


def every(step_s: float, until_s: float, start_s: float = 0.0, **fields: str | int | None) -> list[TrackPoint]:
    count = int((until_s - start_s) // step_s) + 1
    return [point(start_s + i * step_s, **fields) for i in range(count)]  # type: ignore[arg-type]


def test_point_states() -> None:
    assert state(point(0, squawk="7700")) == EMERGENCY
    assert state(point(0, squawk="4651", emergency="minfuel")) == EMERGENCY
    assert state(point(0, squawk=None, emergency="general")) == EMERGENCY
    assert state(point(0, squawk="4651", emergency="none")) == CLEAR
    assert state(point(0, squawk="4651", emergency=None)) == CLEAR
    assert state(point(0, squawk=None, emergency="none")) == CLEAR
    assert state(point(0, squawk=None, emergency=None)) == UNKNOWN  # MLAT: no transponder status
    assert describe(point(0, squawk="7500")) == ("7500", "unlawful")
    assert describe(point(0, squawk="7600")) == ("7600", "nordo")
    assert describe(point(0, squawk="7700", emergency="none")) == ("7700", "general")
    assert describe(point(0, squawk="7700", emergency="downed")) == ("7700", "downed")


def test_7700_held_90_s_is_one_emergency() -> None:
    points = every(10, 40) + every(10, 130, start_s=50, squawk="7700") + every(10, 200, start_s=140)
    happenings = run(points)
    assert [h.n for h in happenings] == [1, 1]  # recognised, then the last snapshot when it cleared
    first, last = happenings
    assert (first.kind, first.sortie_id, first.event_id) == ("emergency", SORTIE, f"{SORTIE}/emergency/1")
    assert first.started_at == T0 + timedelta(seconds=50)
    assert first.detected_at == T0 + timedelta(seconds=60)  # the second poll
    assert (first.lat_deg, first.lon_deg) == (37.5, pytest.approx(130.606))
    assert dict(first.details) == {
        "squawk": "7700",
        "emergency": "general",
        "alt_baro_ft": 24000,
        "first_at": "2026-11-21T01:00:50Z",
        "last_at": "2026-11-21T01:01:00Z",
    }
    assert last.details["last_at"] == "2026-11-21T01:02:10Z" and last.detected_at == first.detected_at


def test_one_single_point_with_7700_is_none() -> None:
    points = [*every(10, 40), point(50, squawk="7700"), *every(10, 200, start_s=60)]
    assert run(points) == []


def test_a_code_dialled_through_on_a_1_hz_feed_is_none() -> None:
    points = [*every(1, 10), point(11, squawk="7700"), point(12, squawk="7700"), *every(1, 30, start_s=13)]
    assert run(points) == []


def test_7600_then_clear_then_7700_are_two() -> None:
    points = every(60, 120, squawk="7600") + every(60, 360, start_s=180) + every(60, 600, start_s=420, squawk="7700")
    episodes = {h.n: h for h in run(points)}
    assert sorted(episodes) == [1, 2]
    assert (episodes[1].details["squawk"], episodes[1].details["emergency"]) == ("7600", "nordo")
    assert (episodes[2].details["squawk"], episodes[2].details["emergency"]) == ("7700", "general")
    assert episodes[2].started_at == T0 + timedelta(seconds=420)


def test_emergency_field_minfuel_is_one() -> None:
    points = every(30, 60) + every(30, 300, start_s=90, squawk="4651", emergency="minfuel")
    happenings = run(points)
    assert [h.n for h in happenings] == [1, 1]  # recognised, and finish()'s final snapshot
    assert happenings[0].details["emergency"] == "minfuel" and happenings[0].details["squawk"] == "4651"
    assert happenings[-1].details["last_at"] == "2026-11-21T01:05:00Z"


def test_one_clear_point_does_not_end_it_and_a_code_change_updates_the_same_n() -> None:
    points = [
        *every(60, 120, squawk="7600"),
        point(180),  # one stale squawk, from a lagging feed
        *every(60, 360, start_s=240, squawk="7600"),
        *every(60, 540, start_s=420, squawk="7700"),
    ]
    happenings = run(points)
    assert {h.n for h in happenings} == {1}
    assert [h.details["squawk"] for h in happenings] == ["7600", "7700", "7700"]
    assert happenings[1].detected_at == happenings[0].detected_at


def test_points_without_transponder_status_neither_confirm_nor_break() -> None:
    mlat = {"squawk": None, "emergency": None}
    lone = [point(0, squawk="7700"), *every(60, 600, start_s=60, **mlat)]
    assert run(lone) == []
    held = [point(0, squawk="7700"), *every(60, 300, start_s=60, **mlat), point(360, squawk="7700")]
    happenings = run(held)
    assert len(happenings) == 2 and happenings[0].detected_at == T0 + timedelta(seconds=360)


def test_identical_points_through_fresh_detectors_give_identical_happenings() -> None:
    points = every(60, 120, squawk="7600") + every(60, 360, start_s=180) + every(60, 600, start_s=420, squawk="7700")
    assert run(points, EmergencyDetector()) == run(points, EmergencyDetector())


def test_sorties_are_independent_and_finish_forgets() -> None:
    detector = EmergencyDetector()
    assert detector.observe("a", point(0, squawk="7700")) == []
    assert detector.observe("b", point(1)) == []
    assert [h.sortie_id for h in detector.observe("a", point(60, squawk="7700"))] == ["a"]
    assert [h.n for h in detector.finish("a")] == [1]
    assert detector.finish("a") == [] and detector.finish("b") == []
    assert isinstance(detector, Detector) and detector.kind == "emergency"
