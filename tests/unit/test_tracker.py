"""`ingest.tracker`: covered time comes from stored successful polls, survives a restart, and a poll that
failed (or could not be written) never counts as the aircraft's silence. A real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.app import App, build_app
from ingest.config import load
from ingest.errors import FeedUnavailable, StoreError
from ingest.models import PollRecord
from ingest.pipeline import PollOutcome
from ingest.store import SqliteStore, Store
from ingest.tracker import Tracker
from tests.conftest import INSIDE, T0, ConfigWriter, observation

GAP_S = 60.0  # one minute of covered silence ends a sortie
EVERY_S = 5.0


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.fixture
def app(write_config: ConfigWriter) -> App:
    feeds = [{"name": "loop", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "interval_s": EVERY_S}]
    return build_app(load(write_config(feeds, sorties={"gap_s": GAP_S, "max_blind_s": 600.0}), environ={}))


def outcome(app: App, s: float, *, seen: bool = True, failed: bool = False) -> PollOutcome:
    """A poll of feed `loop` at `s`: RC-135 62-4125 airborne inside the area (or not reported), or a failure."""
    obs = [observation("ae01d2", position_at=at(s), lat_deg=INSIDE[0], lon_deg=INSIDE[1], feed="loop")] if seen else []
    selection = app.selector.select([] if failed else obs)
    failure = FeedUnavailable("loop", "http://127.0.0.1:9/v2/hex/<4 items>", "HTTP 500") if failed else None
    record = PollRecord("loop", at(s), 5, 1, 500 if failed else 200, len(obs), selection.matched,
                        len(selection.sightings), 0, 0, failure.reason if failure else None)  # fmt: skip
    return PollOutcome(record, selection.sightings, (), failure, selection.reports)


def run(tracker: Tracker, store: Store, app: App, seconds: Any, **kw: Any) -> list[str]:
    """Poll at each second (and check after it); the events, as `kind reason`."""
    events: list[str] = []
    for s in seconds:
        out = outcome(app, s, **kw)
        tracker.save_poll(store, out, at(s))
        for e in tracker.check(store, at(s) + timedelta(seconds=1)):
            events.append(f"{e.kind} {e.sortie.end_reason or ''}".strip())
    return events


def steps(lo: float, hi: float) -> list[float]:
    return [lo + i * EVERY_S for i in range(int((hi - lo) / EVERY_S))]


def test_a_feed_outage_longer_than_gap_s_does_not_split_the_flight(app: App, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    assert run(tracker, store, app, steps(0, 100)) == []
    assert tracker.detector.open_sorties()[0].sortie_id == "ae01d2-20261120T230000Z"
    assert run(tracker, store, app, steps(100, 400), failed=True) == []  # 5 min of HTTP 500
    assert run(tracker, store, app, steps(400, 500)) == []
    (sortie,) = store.sorties()
    assert (sortie.sortie_id, sortie.is_open) == ("ae01d2-20261120T230000Z", True)


def test_with_the_aircraft_gone_the_end_comes_after_gap_s_of_covered_time(app: App, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    run(tracker, store, app, steps(0, 100))  # last sighting at 95
    assert run(tracker, store, app, steps(100, 400), failed=True) == []
    events = []
    for s in steps(400, 500):  # looking again, and it is gone: the poll at 460, checked at 461, makes 61 s
        events += [f"{s:.0f} {e}" for e in run(tracker, store, app, [s], seen=False)]
    assert events == ["460 end signal_lost"]
    assert store.sorties()[0].end_at == at(95)


def test_a_restart_in_the_middle_of_an_outage_rebuilds_covered_time_from_the_store(app: App, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    run(tracker, store, app, steps(0, 100))
    run(tracker, store, app, steps(100, 200), failed=True)
    store.close()
    # The daemon stopped at 200 and came back at 500: 5 minutes that nobody covered (max_blind_s is 10).
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    assert tracker.check(store, at(500)) == ()  # decided at once on start-up: nothing is due
    assert run(tracker, store, app, steps(500, 550)) == []
    assert len(store.sorties()) == 1


def test_a_write_that_failed_does_not_count_as_coverage(app: App, tmp_path: Path) -> None:
    class FullDisk(SqliteStore):
        full = False

        def save_poll(self, *args: Any, **kwargs: Any) -> int:
            if self.full:
                raise StoreError("cannot store a poll: database or disk is full")
            return super().save_poll(*args, **kwargs)

    store = FullDisk(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    run(tracker, store, app, steps(0, 100))
    store.full = True
    for s in steps(100, 400):  # the feed answers, the aircraft is gone, nothing can be written
        with pytest.raises(StoreError):
            tracker.save_poll(store, outcome(app, s, seen=False), at(s))
    store.full = False
    assert tracker.check(store, at(400)) == ()
    assert store.sorties()[0].is_open


def test_blind_for_max_blind_s_ends_no_coverage(app: App, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    run(tracker, store, app, steps(0, 100))
    assert tracker.check(store, at(95 + 590)) == ()
    (event,) = tracker.check(store, at(95 + 601))
    assert (event.kind, event.sortie.end_reason, event.sortie.end_at) == ("end", "no_coverage", at(95))


DEMO = Path(__file__).parents[2] / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"


@pytest.mark.parametrize("split", ["00:00:00", "00:20:00"], ids=["before the orbit is recognised", "after"])
def test_a_restart_in_the_middle_of_an_orbit_neither_loses_nor_repeats_it(
    split: str, write_config: ConfigWriter, tmp_path: Path
) -> None:
    from ingest.pipeline import replay_file

    config = write_config([], mqtt={"enabled": True})
    app = build_app(load(config, environ={}))
    cut = datetime.fromisoformat(f"2026-11-21T{split}Z")
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    restarted = False
    for out in replay_file(DEMO, "replay", app.selector, lambda: datetime.now(UTC)):
        out.synthetic = False  # the demo's flights, as if they were real: real data alerts
        if out.record.started_at >= cut and not restarted:
            store.close()  # the daemon stops here and starts again
            store = SqliteStore(tmp_path / "t.db")
            tracker = Tracker(app.settings, store, watchlist=app.watchlist)
            restarted = True
        tracker.save_poll(store, out, out.record.started_at)
        tracker.check(store, out.record.started_at)
    orbits = [h.event_id for h in store.happenings([s.sortie_id for s in store.sorties()]) if h.kind == "orbit"]
    assert orbits == ["ae01d2-20261120T225558Z/orbit/1", "71f00d-20261120T234056Z/orbit/1"]
    queued = [r[0] for r in store.conn.execute("SELECT event_id FROM outbox ORDER BY id").fetchall()]
    assert sorted(queued) == sorted(
        ["ae01d2-20261120T225558Z/start", "ae01d2-20261120T225558Z/orbit/1", "ae01d2-20261120T225558Z/end",
         "71f00d-20261120T234056Z/start", "71f00d-20261120T234056Z/orbit/1", "71f00d-20261120T234056Z/end"]
    )  # fmt: skip
    (tora,) = store.happenings(["ae01d2-20261120T225558Z"])
    assert tora.details["laps"] == 3.0  # the last snapshot, kept across the restart


def test_the_synthetic_demo_is_stored_as_such_and_never_alerts_nor_touches_real_sorties(
    write_config: ConfigWriter, tmp_path: Path
) -> None:
    from ingest.pipeline import replay_file

    app = build_app(load(write_config([], mqtt={"enabled": True}), environ={}))
    store = SqliteStore(tmp_path / "t.db")
    tracker = Tracker(app.settings, store, watchlist=app.watchlist)
    for out in replay_file(DEMO, "replay", app.selector, lambda: datetime.now(UTC)):
        assert out.synthetic
        tracker.save_poll(store, out, out.record.started_at)
        tracker.check(store, out.record.started_at)
    demo = store.sorties()
    assert [(s.sortie_id, s.synthetic) for s in demo] == [
        ("ae01d2-20261120T225558Z", True), ("71f00d-20261120T234056Z", True)
    ]  # fmt: skip
    assert store.outbox_counts() == (0, 0)  # nobody is told about made-up flights
    assert store.synthetic_counts() == (344, 2)
    # A real flight of the same aircraft afterwards: a sortie of its own, not linked to the demo's.
    later = outcome(app, 10 * 86_400)
    tracker.save_poll(store, later, at(10 * 86_400))
    real = [s for s in store.sorties() if not s.synthetic]
    assert len(real) == 1 and real[0].previous_sortie_end is None
    assert store.outbox_counts()[0] == 1  # its start alert
    assert store.remove_synthetic() == (344, 2)
    assert [s.sortie_id for s in store.sorties()] == [real[0].sortie_id] and store.demo_removed()
