"""`ingest.detect.sorties`: when a sortie starts and ends, what it records, junk it ignores, and restarts.

Times are seconds after a fixed T0; `gap_s` is the default 1800 s. Nothing sleeps or reads the clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ingest.detect.coverage import ALL, Coverage
from ingest.detect.sorties import FRESH_POSITION_S, SortieDetector, Update, sortie_id
from ingest.models import Fix, Place, Report, Sortie, SortieEvent
from tests.conftest import INSIDE, OUTSIDE, T0, observation

GAP_S = 1800.0
RC135 = "62-4125"  # RC-135W, hex ae01d2
OTHER = "62-4134"  # RC-135W, hex ae01ce
HEX = {RC135: "ae01d2", OTHER: "ae01ce"}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def report(
    s: float,
    *,
    inside: bool = True,
    ground: bool = False,
    key: str = RC135,
    alt: int | None = 31000,
    callsign: str | None = "TORA23",
    feed: str = "adsb.lol",
    **fields: Any,
) -> Report:
    """A report of a watched RC-135 `s` seconds after T0, airborne at FL310 inside the area by default."""
    lat, lon = INSIDE if inside else OUTSIDE
    lat = fields.pop("lat_deg", lat)
    obs = observation(
        HEX[key], position_at=at(s), lat_deg=lat, lon_deg=lon, on_ground=ground,
        alt_baro_ft=None if ground else alt, callsign=callsign, feed=feed, **fields,
    )  # fmt: skip
    return Report(key=key, registration=key, type_icao="R135", obs=obs, inside=inside)


def fix(s: float, alt: int | None = 31000, callsign: str | None = "TORA23", feed: str = "adsb.lol") -> Fix:
    return Fix(at(s), INSIDE[0], INSIDE[1], alt, callsign, feed)


def kinds(update: Update) -> list[tuple[str, str]]:
    return [(e.kind, e.sortie.sortie_id) for e in update.events]


def feed_one_by_one(detector: SortieDetector, *reports: Report) -> list[Update]:
    """One update per report, as successive polls deliver them."""
    return [detector.update([r], r.obs.position_at) for r in reports]


def started(detector: SortieDetector, *seconds: float) -> Sortie:
    """The open sortie after airborne inside reports at these times."""
    feed_one_by_one(detector, *(report(s) for s in seconds))
    (sortie,) = detector.open_sorties()
    return sortie


# --- start ---------------------------------------------------------------------------------------


def test_first_airborne_report_inside_starts_a_sortie_even_at_altitude() -> None:
    detector = SortieDetector(GAP_S)
    update = detector.update([report(0, alt=31000)], at(0))
    expected = Sortie(
        sortie_id="ae01d2-20261120T230000Z", key=RC135, hex_icao="ae01d2", registration=RC135,
        type_icao="R135", first=fix(0), last=fix(0), last_seen_at=at(0), callsigns=("TORA23",),
        max_alt_baro_ft=31000, sightings=1, previous_sortie_end=None,
    )  # fmt: skip
    assert update == Update((SortieEvent("start", expected),), (expected,), {RC135: at(0)})
    assert update.events[0].event_id == "ae01d2-20261120T230000Z/start"
    assert detector.open_sorties() == [expected]


def test_on_ground_inside_does_not_start_and_takeoff_does() -> None:
    detector = SortieDetector(GAP_S)
    taxi = detector.update([report(0, ground=True), report(10, ground=True)], at(10))
    assert taxi == Update((), (), {RC135: at(10)})
    assert detector.open_sorties() == []
    takeoff = detector.update([report(40, alt=1200)], at(40))
    assert kinds(takeoff) == [("start", "ae01d2-20261120T230040Z")]
    assert takeoff.events[0].sortie.first == fix(40, alt=1200)
    assert takeoff.events[0].sortie.sightings == 1


def test_watched_aircraft_that_stays_outside_never_starts_one() -> None:
    detector = SortieDetector(GAP_S)
    updates = feed_one_by_one(detector, *(report(s, inside=False) for s in range(0, 7200, 600)))
    assert [u.events for u in updates] == [()] * 12
    assert [u.changed for u in updates] == [()] * 12
    assert updates[-1].last_report_at == {RC135: at(6600)}
    assert detector.open_sorties() == []
    assert detector.check(at(7200 + GAP_S)) == Update()


# --- within the gap: one sortie ------------------------------------------------------------------


def test_callsign_change_does_not_split_and_every_callsign_is_kept_in_order() -> None:
    detector = SortieDetector(GAP_S)
    updates = feed_one_by_one(
        detector, report(0, callsign="TORA23"), report(60, callsign=None),
        report(120, callsign="COBRA11"), report(180, callsign="TORA23"),
    )  # fmt: skip
    assert [kinds(u) for u in updates] == [[("start", "ae01d2-20261120T230000Z")], [], [], []]
    (sortie,) = detector.open_sorties()
    assert sortie.callsigns == ("TORA23", "COBRA11")
    assert (sortie.sightings, sortie.first.callsign, sortie.last.callsign) == (4, "TORA23", "TORA23")


def test_crossing_the_edge_and_back_within_the_gap_is_one_sortie() -> None:
    detector = SortieDetector(GAP_S)
    updates = feed_one_by_one(
        detector, report(0), report(300, inside=False, alt=33000), report(900, inside=False), report(1500)
    )
    assert [len(u.events) for u in updates] == [1, 0, 0, 0]
    outside = updates[2].changed[0]
    assert (outside.last.at, outside.last_seen_at, outside.sightings) == (at(0), at(900), 1)
    (sortie,) = detector.open_sorties()
    assert sortie.sortie_id == "ae01d2-20261120T230000Z"
    assert (sortie.last, sortie.last_seen_at, sortie.sightings) == (fix(1500), at(1500), 2)
    assert sortie.max_alt_baro_ft == 31000  # the FL330 outside does not count


def test_on_ground_outside_does_not_end_the_sortie() -> None:
    detector = SortieDetector(GAP_S)
    sortie = started(detector, 0)
    update = detector.update([report(60, inside=False, ground=True)], at(60))
    assert update == Update((), (replace(sortie, last_seen_at=at(60)),), {RC135: at(60)})
    again = detector.update([report(600)], at(600))
    assert again.events == ()
    assert again.changed[0].sortie_id == sortie.sortie_id
    assert again.changed[0].sightings == 2


def test_max_altitude_and_sightings_count_airborne_reports_inside_only() -> None:
    detector = SortieDetector(GAP_S)
    feed_one_by_one(
        detector, report(0, alt=24000), report(60, alt=31000), report(120, alt=None),
        report(180, inside=False, alt=41000), report(240, alt=29000),
    )  # fmt: skip
    (sortie,) = detector.open_sorties()
    assert (sortie.sightings, sortie.max_alt_baro_ft) == (4, 31000)
    assert (sortie.first.alt_baro_ft, sortie.last.alt_baro_ft) == (24000, 29000)


def test_max_altitude_stays_none_until_one_is_known() -> None:
    detector = SortieDetector(GAP_S)
    detector.update([report(0, alt=None)], at(0))
    assert detector.open_sorties()[0].max_alt_baro_ft is None
    detector.update([report(60, alt=27000)], at(60))
    assert detector.open_sorties()[0].max_alt_baro_ft == 27000


# --- ends ----------------------------------------------------------------------------------------


def test_landing_inside_ends_landed_at_the_last_airborne_sighting() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0, 600)
    update = detector.update([report(660, ground=True)], at(660))
    (event,) = update.events
    assert (event.kind, event.event_id) == ("end", "ae01d2-20261120T230000Z/end")
    ended = event.sortie
    assert (ended.end_reason, ended.end_at, ended.last_seen_at, ended.duration_s) == ("landed", at(600), at(660), 600)
    assert (ended.sightings, event.fix) == (2, fix(600))
    assert update.changed == (ended,)
    assert detector.open_sorties() == []
    assert detector.check(at(600 + GAP_S)) == Update()


def test_a_gap_longer_than_gap_s_gives_two_sorties_and_links_them() -> None:
    detector = SortieDetector(GAP_S)
    first = started(detector, 0)
    update = detector.update([report(GAP_S + 60, callsign="TORA24")], at(GAP_S + 60))
    assert kinds(update) == [("end", "ae01d2-20261120T230000Z"), ("start", "ae01d2-20261120T233100Z")]
    end, start = (e.sortie for e in update.events)
    assert end == replace(first, end_reason="signal_lost")
    assert (start.previous_sortie_end, start.first, start.callsigns) == (
        at(0),
        fix(GAP_S + 60, callsign="TORA24"),
        ("TORA24",),
    )
    assert update.changed == (end, start)
    assert update.last_report_at == {RC135: at(GAP_S + 60)}


def test_a_gap_with_outside_reports_ends_left_area_when_the_aircraft_returns() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0)
    update = detector.update([report(1700, inside=False), report(GAP_S + 1)], at(GAP_S + 1))
    end, start = update.events
    assert (end.kind, end.sortie.end_reason, end.sortie.end_at, end.sortie.last_seen_at) == (
        "end",
        "left_area",
        at(0),
        at(1700),
    )
    assert (start.kind, start.sortie.first.at, start.sortie.previous_sortie_end) == ("start", at(GAP_S + 1), at(0))


@pytest.mark.parametrize(("later_s", "sorties"), [(GAP_S - 1, 1), (GAP_S, 2)])
def test_reports_less_than_gap_s_apart_belong_to_one_sortie(later_s: float, sorties: int) -> None:
    detector = SortieDetector(GAP_S)
    updates = feed_one_by_one(detector, report(0), report(later_s))
    starts = [e for u in updates for e in u.events if e.kind == "start"]
    assert len(starts) == sorties


def test_an_outside_report_after_the_gap_ends_signal_lost_and_starts_nothing() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0)
    update = detector.update([report(GAP_S + 30, inside=False)], at(GAP_S + 30))
    assert [(e.kind, e.sortie.end_reason, e.sortie.end_at) for e in update.events] == [("end", "signal_lost", at(0))]
    assert update.changed[0].last_seen_at == at(0)  # the late report is not part of the ended sortie
    assert detector.open_sorties() == []


def test_staying_outside_for_gap_s_while_reported_ends_left_area_at_check() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0, 120)
    feed_one_by_one(detector, *(report(s, inside=False) for s in range(180, 1800, 300)))
    assert detector.check(at(120 + GAP_S - 1)) == Update()
    update = detector.check(at(120 + GAP_S))
    (event,) = update.events
    assert (event.kind, event.sortie.end_reason, event.sortie.end_at) == ("end", "left_area", at(120))
    assert event.sortie.last_seen_at == at(1680)
    assert update.changed == (event.sortie,)
    assert update.last_report_at == {}
    assert detector.open_sorties() == []


def test_silence_ends_signal_lost_at_check_exactly_after_gap_s() -> None:
    detector = SortieDetector(GAP_S)
    sortie = started(detector, 0, 100)
    assert detector.check(at(100 + GAP_S - 1)) == Update()
    assert detector.open_sorties() == [sortie]
    update = detector.check(at(100 + GAP_S))
    ended = replace(sortie, end_reason="signal_lost")
    assert update == Update((SortieEvent("end", ended),), (ended,), {})
    assert ended.end_at == at(100)
    assert detector.check(at(100 + 2 * GAP_S)) == Update()  # ends once


def test_check_ends_several_sorties_in_order_of_their_end() -> None:
    detector = SortieDetector(GAP_S)
    detector.update([report(300, key=OTHER), report(0), report(200)], at(300))
    update = detector.check(at(300 + GAP_S))
    assert [(e.sortie.key, e.sortie.end_at) for e in update.events] == [(RC135, at(200)), (OTHER, at(300))]


def test_a_new_sortie_after_an_end_at_check_links_to_it() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0)
    detector.check(at(GAP_S))
    update = detector.update([report(5000)], at(5000))
    assert [(e.kind, e.sortie.previous_sortie_end) for e in update.events] == [("start", at(0))]


# --- junk ----------------------------------------------------------------------------------------


JUNK = {
    "one message": {"messages": 1},
    "stale position": {"age_s": FRESH_POSITION_S + 1},
}


@pytest.mark.parametrize("fields", JUNK.values(), ids=JUNK.keys())
def test_junk_starts_nothing(fields: dict[str, Any]) -> None:
    detector = SortieDetector(GAP_S)
    assert detector.update([report(0, **fields)], at(0)) == Update()
    assert detector.open_sorties() == []


@pytest.mark.parametrize(
    "junk",
    [
        report(60, ground=True, messages=1),
        report(60, ground=True, age_s=61.0),
        report(0, ground=True),  # the position already processed, from a second feed
        report(-30, ground=True, feed="airplanes.live"),  # older: a lagging feed or a replay
    ],
    ids=["one message", "61 s old", "same position", "older position"],
)
def test_junk_changes_nothing_not_even_last_seen(junk: Report) -> None:
    detector = SortieDetector(GAP_S)
    sortie = started(detector, 0)
    assert detector.update([junk], at(60)) == Update()
    assert detector.open_sorties() == [sortie]


def test_edge_values_are_not_junk() -> None:
    detector = SortieDetector(GAP_S)
    updates = feed_one_by_one(detector, report(0, messages=2), report(10, messages=None), report(20, age_s=60.0))
    assert [len(u.changed) for u in updates] == [1, 1, 1]
    assert detector.open_sorties()[0].sightings == 3


def test_the_same_position_from_two_feeds_in_one_poll_counts_once() -> None:
    detector = SortieDetector(GAP_S)
    update = detector.update([report(0, feed="adsb.fi"), report(0, feed="adsb.lol")], at(0))
    (event,) = update.events
    assert (event.sortie.sightings, event.sortie.first.feed) == (1, "adsb.fi")


# --- ordering and several aircraft ---------------------------------------------------------------


def test_unordered_reports_are_processed_in_time_order() -> None:
    detector = SortieDetector(GAP_S)
    update = detector.update([report(120, alt=30000), report(0, alt=25000), report(60, ground=True)], at(120))
    assert [(e.kind, e.sortie.first.at, e.sortie.end_reason, e.sortie.previous_sortie_end) for e in update.events] == [
        ("start", at(0), None, None),
        ("end", at(0), "landed", None),
        ("start", at(120), None, at(0)),
    ]
    assert update.last_report_at == {RC135: at(120)}


def test_two_aircraft_at_once_get_their_own_sorties_and_events_in_time_order() -> None:
    detector = SortieDetector(GAP_S)
    update = detector.update(
        [report(90, key=OTHER, callsign="COBRA11"), report(0), report(30, ground=True), report(60, key=OTHER)], at(90)
    )
    assert [(e.kind, e.sortie.sortie_id, e.sortie.end_reason) for e in update.events] == [
        ("start", "ae01d2-20261120T230000Z", None),
        ("end", "ae01d2-20261120T230000Z", "landed"),
        ("start", "ae01ce-20261120T230100Z", None),
    ]
    assert [s.sortie_id for s in update.changed] == ["ae01d2-20261120T230000Z", "ae01ce-20261120T230100Z"]
    assert update.changed[1].callsigns == ("TORA23", "COBRA11")
    assert update.last_report_at == {RC135: at(30), OTHER: at(90)}
    assert [s.key for s in detector.open_sorties()] == [OTHER]


def test_update_changed_holds_the_latest_snapshot_once() -> None:
    detector = SortieDetector(GAP_S)
    started(detector, 0)
    update = detector.update([report(60), report(120, inside=False), report(180)], at(180))
    (sortie,) = update.changed
    assert (sortie.sightings, sortie.last.at, sortie.last_seen_at) == (3, at(180), at(180))
    assert update.events == ()
    assert update.last_report_at == {RC135: at(180)}


def test_sortie_id_is_the_first_hex_and_the_start_second_in_utc() -> None:
    kst = timezone(timedelta(hours=9))
    start = datetime(2026, 11, 21, 8, 0, 5, 700000, tzinfo=kst)
    assert sortie_id("ae01d2", start) == "ae01d2-20261120T230005Z"
    detector = SortieDetector(GAP_S)
    update = detector.update([report(5.7)], at(5.7))
    assert update.events[0].sortie.sortie_id == "ae01d2-20261120T230005Z"


# --- restart -------------------------------------------------------------------------------------


def saved_state(detector: SortieDetector, updates: list[Update]) -> tuple[list[Sortie], dict[str, datetime]]:
    """What the store holds after these updates: the open sorties and the merged last_report_at."""
    last_report_at: dict[str, datetime] = {}
    for update in updates:
        last_report_at.update(update.last_report_at)
    return detector.open_sorties(), last_report_at


def test_restart_within_the_gap_continues_the_same_sortie() -> None:
    before = SortieDetector(GAP_S)
    updates = feed_one_by_one(before, report(0), report(60), report(120, inside=False))
    open_sorties, last_report_at = saved_state(before, updates)
    after = SortieDetector(GAP_S, open_sorties, last_report_at)
    assert after.update([report(60)], at(200)) == Update()  # replayed from the store on start-up
    update = after.update([report(300, callsign="TORA24")], at(300))
    assert update.events == ()
    (sortie,) = update.changed
    assert (sortie.sortie_id, sortie.sightings, sortie.callsigns) == (
        "ae01d2-20261120T230000Z",
        3,
        ("TORA23", "TORA24"),
    )
    assert after.check(at(300 + GAP_S - 1)) == Update()


def test_restart_after_the_gap_ends_the_sortie_signal_lost_at_the_old_last_sighting() -> None:
    before = SortieDetector(GAP_S)
    updates = feed_one_by_one(before, report(0), report(60))
    after = SortieDetector(GAP_S, *saved_state(before, updates))
    update = after.check(at(60 + GAP_S + 300))
    assert [(e.kind, e.sortie.sortie_id, e.sortie.end_reason, e.sortie.end_at) for e in update.events] == [
        ("end", "ae01d2-20261120T230000Z", "signal_lost", at(60))
    ]
    restarted = after.update([report(60 + GAP_S + 400)], at(60 + GAP_S + 400))
    assert [(e.kind, e.sortie.previous_sortie_end) for e in restarted.events] == [("start", at(60))]


def test_restored_last_end_links_the_next_sortie() -> None:
    ended_at = at(-7200)
    detector = SortieDetector(GAP_S, last_end_at={RC135: ended_at})
    update = detector.update([report(0)], at(0))
    assert update.events[0].sortie.previous_sortie_end == ended_at


def test_a_restored_sortie_counts_its_last_seen_as_processed() -> None:
    before = SortieDetector(GAP_S)
    feed_one_by_one(before, report(0), report(120, inside=False))
    after = SortieDetector(GAP_S, before.open_sorties())  # last_report_at lost: last_seen_at stands in
    assert after.update([report(90, ground=True)], at(150)) == Update()
    assert after.open_sorties() == before.open_sorties()


def test_the_detector_refuses_an_impossible_start_state() -> None:
    detector = SortieDetector(GAP_S)
    sortie = started(detector, 0)
    with pytest.raises(ValueError, match="has ended"):
        SortieDetector(GAP_S, [replace(sortie, end_reason="landed")])
    with pytest.raises(ValueError, match="two open sorties"):
        SortieDetector(GAP_S, [sortie, replace(sortie, sortie_id="ae01d2-20261120T230100Z")])
    with pytest.raises(ValueError, match="gap_s"):
        SortieDetector(0)


# --- covered time: our outages are not the aircraft's silence ----------------------------------------


class Covered:
    """Coverage by one feed that polls every `every_s` except during `outages` ((start, end) seconds)."""

    def __init__(self, until_s: float, every_s: float = 10.0, outages: tuple[tuple[float, float], ...] = ()) -> None:
        self.coverage = Coverage()
        s = -every_s
        while s <= until_s:
            if not any(lo <= s < hi for lo, hi in outages):
                self.coverage.poll_succeeded("feed", frozenset({ALL}), at(s), 2 * every_s)
            s += every_s

    def covered_s(self, key: str, since: datetime, until: datetime) -> float:
        return self.coverage.covered_s([ALL], since, until)


def test_an_outage_longer_than_gap_s_with_the_aircraft_flying_on_is_one_sortie() -> None:
    detector = SortieDetector(GAP_S)
    cov = Covered(4000, outages=((600, 600 + GAP_S + 300),))  # every feed down for 35 min
    updates = [detector.update([report(s)], at(s), cov) for s in (0, 300, 590)]
    assert detector.check(at(2700), cov) == Update()  # mid-outage: 29 min of wall time, 0 of coverage
    after = detector.update([report(2710)], at(2710), cov)
    assert [kinds(u) for u in updates] == [[("start", "ae01d2-20261120T230000Z")], [], []]
    assert after.events == ()
    (sortie,) = detector.open_sorties()
    assert (sortie.sortie_id, sortie.sightings) == ("ae01d2-20261120T230000Z", 4)


def test_the_same_outage_with_the_aircraft_gone_ends_signal_lost_after_gap_s_of_covered_time() -> None:
    detector = SortieDetector(GAP_S)
    outage = (600, 2700)  # 35 min blind, right after the last sighting at 590
    cov = Covered(10_000, outages=(outage,))
    for s in (0, 300, 590):
        detector.update([report(s)], at(s), cov)
    # Covered since 590: 10 s before the outage, then from 2700 on; 1800 s are reached at 2700 + 1790.
    assert detector.check(at(2700 + 1780), cov) == Update()
    deadline = detector.next_deadline(at(2700 + 1780), cov)
    assert deadline is not None and abs((deadline - at(2700 + 1790)).total_seconds()) <= 10
    (event,) = detector.check(at(2700 + 1800), cov).events
    assert (event.kind, event.sortie.end_reason, event.sortie.end_at) == ("end", "signal_lost", at(590))


def test_an_outage_past_max_blind_s_ends_no_coverage_at_the_last_sighting() -> None:
    detector = SortieDetector(GAP_S, max_blind_s=3 * 3600)
    cov = Covered(20_000, outages=((600, 20_000),))
    for s in (0, 590):
        detector.update([report(s)], at(s), cov)
    assert detector.check(at(590 + 3 * 3600 - 60), cov) == Update()
    (event,) = detector.check(at(590 + 3 * 3600 + 20), cov).events
    assert (event.sortie.end_reason, event.sortie.end_at) == ("no_coverage", at(590))


def test_a_report_after_a_blind_spell_past_max_blind_s_starts_a_new_sortie() -> None:
    detector = SortieDetector(GAP_S, max_blind_s=3600)
    cov = Covered(10_000, outages=((600, 5000),))
    detector.update([report(0)], at(0), cov)
    update = detector.update([report(5010)], at(5010), cov)
    assert [e.kind for e in update.events] == ["end", "start"]
    assert update.events[0].sortie.end_reason == "no_coverage"


def test_a_restart_in_the_middle_of_an_outage_continues_the_sortie() -> None:
    detector = SortieDetector(GAP_S)
    cov = Covered(10_000, outages=((600, 3000),))  # the daemon was down from 600 to 3000
    sortie = started(detector, 0, 590)
    restarted = SortieDetector(GAP_S, [sortie], {RC135: at(590)})
    assert restarted.check(at(3000), cov) == Update()  # decided at once on start-up: nothing is due
    assert restarted.update([report(3010)], at(3010), cov).events == ()
    assert restarted.open_sorties()[0].sortie_id == sortie.sortie_id


def test_next_deadline_is_none_without_open_sorties_and_the_gap_with_full_coverage() -> None:
    detector = SortieDetector(GAP_S)
    assert detector.next_deadline(at(0)) is None
    started(detector, 0)
    assert detector.next_deadline(at(100)) == at(GAP_S)


def test_takeoff_and_landing_name_the_airports() -> None:
    osan, kunsan = Place("RKSO", "Osan Air Base"), Place("RKJK", "Kunsan Air Base")

    def locate(lat: float, lon: float) -> Place | None:
        return osan if lat < 36.0 else kunsan

    detector = SortieDetector(GAP_S, locate=locate)
    detector.update([report(0, ground=True, lat_deg=35.0)], at(0))
    start = detector.update([report(60, alt=1500)], at(60)).events[0].sortie
    assert start.took_off_from == osan
    detector.update([report(1700, alt=2000)], at(1700))
    (end,) = detector.update([report(1760, ground=True, lat_deg=36.5)], at(1760)).events
    assert (end.sortie.end_reason, end.sortie.took_off_from, end.sortie.landed_at) == ("landed", osan, kunsan)


def test_arriving_at_altitude_names_no_takeoff_airport() -> None:
    detector = SortieDetector(GAP_S, locate=lambda lat, lon: Place("RKSO", "Osan Air Base"))
    start = detector.update([report(0, alt=31000)], at(0)).events[0].sortie
    assert start.took_off_from is None
