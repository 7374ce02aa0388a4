"""`ingest.detect.coverage`: which time our feeds covered, from pairs of successful polls."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ingest.detect.coverage import ALL, MILITARY, WATCHED, Coverage, aircraft_scopes, feed_scopes
from tests.conftest import T0


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def polled(
    coverage: Coverage, feed: str, *seconds: float, scopes: frozenset[str] = frozenset({ALL}), bound_s: float = 20
):
    for s in seconds:
        coverage.poll_succeeded(feed, scopes, at(s), bound_s)


def test_two_polls_within_the_bound_cover_the_time_between() -> None:
    c = Coverage()
    polled(c, "a", 0, 10, 20, 30)
    assert c.covered_s([ALL], at(0), at(30)) == 30
    assert c.covered_s([ALL], at(5), at(25)) == 20
    assert c.intervals(ALL) == [(at(0).timestamp(), at(30).timestamp())]


def test_a_hole_longer_than_the_bound_is_not_covered() -> None:
    c = Coverage()
    polled(c, "a", 0, 10, 100, 110)  # the feed failed between 10 and 100
    assert c.covered_s([ALL], at(0), at(110)) == 20
    assert len(c.intervals(ALL)) == 2


def test_a_single_poll_covers_nothing_and_the_first_after_a_restart_pairs_with_nothing() -> None:
    c = Coverage()
    polled(c, "a", 0)
    assert c.covered_s([ALL], at(-100), at(100)) == 0
    fresh = Coverage()  # a restart: the daemon was down from 0 to 1200
    polled(fresh, "a", 0)
    polled(fresh, "a", 1200, 1210)
    assert fresh.covered_s([ALL], at(0), at(1210)) == 10


def test_feeds_and_scopes_add_up_without_counting_twice() -> None:
    c = Coverage()
    polled(c, "area", 0, 10, 20)
    polled(c, "hex", 15, 25, 35, scopes=frozenset({WATCHED}))
    assert c.covered_s([ALL], at(0), at(40)) == 20
    assert c.covered_s([WATCHED], at(0), at(40)) == 20
    assert c.covered_s([ALL, WATCHED], at(0), at(40)) == 35  # [0, 35]: the overlap 15-20 counts once
    assert c.covered_s([MILITARY], at(0), at(40)) == 0


def test_out_of_order_and_overlapping_intervals_merge() -> None:
    c = Coverage()
    polled(c, "a", 0, 10)
    polled(c, "b", 30, 40)
    polled(c, "c", 5, 15, 25, 35)
    assert c.intervals(ALL) == [(at(0).timestamp(), at(40).timestamp())]


def test_live_coverage_runs_from_a_recent_success_to_now_only_within_the_bound() -> None:
    c = Coverage()
    polled(c, "a", 0, 10)
    assert c.covered_s([ALL], at(0), at(25), live_until=at(25)) == 25  # 15 s after its last success: looking
    assert c.covered_s([ALL], at(0), at(40), live_until=at(40)) == 10  # 30 s: past the 20 s bound
    assert c.covered_s([WATCHED], at(0), at(25), live_until=at(25)) == 0  # feed a covers `all` only


def test_prune_forgets_old_intervals_only() -> None:
    c = Coverage()
    polled(c, "a", 0, 10)
    polled(c, "a", 100, 110)
    c.prune(at(50))
    assert c.intervals(ALL) == [(at(100).timestamp(), at(110).timestamp())]


@pytest.mark.parametrize(
    ("kind", "queries", "scopes"),
    [
        ("readsb-v2", ("hex",), {WATCHED}),
        ("readsb-v2", ("hex", "area", "mil"), {WATCHED, ALL, MILITARY}),
        ("opensky", ("area",), {ALL}),
        ("sbs", ("hex",), {ALL}),
        ("aircraft-json", ("hex",), {ALL}),
    ],
)
def test_feed_scopes(kind: str, queries: tuple[str, ...], scopes: set[str]) -> None:
    assert feed_scopes(kind, queries) == scopes


def test_aircraft_scopes() -> None:
    assert aircraft_scopes(watched=True, military=False) == {ALL, WATCHED}
    assert aircraft_scopes(watched=False, military=True) == {ALL, MILITARY}
