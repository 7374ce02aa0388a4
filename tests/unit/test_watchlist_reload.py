"""The daemon's watcher of the watchlist's files (ingest/watchlist_reload.py), one look at a time, on real
files; `apply` is a recorder here (tests/integration/test_watchlist_daemon.py runs the real daemon)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from ingest.errors import ConfigError, StoreError
from ingest.watchlist import Watchlist
from ingest.watchlist_edits import Edits, format_edits
from ingest.watchlist_files import Sources, load, write_atomic
from ingest.watchlist_reload import WatchlistWatcher
from tests.conftest import SMALL_WATCHLIST

EDITS = "Action,$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link\n"
NEW = "add,ABC123,NEW-1,Test,Test Type,T1,,,,,,\n"


class Recorder:
    def __init__(self) -> None:
        self.applied: list[Watchlist] = []
        self.fail_with: Exception | None = None

    def __call__(self, watchlist: Watchlist) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.applied.append(watchlist)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Sources, WatchlistWatcher, Recorder]:
    where = Sources(SMALL_WATCHLIST, tmp_path, "test")
    recorder = Recorder()
    watcher = WatchlistWatcher(where, 1.0, load(where).watchlist, recorder)
    return where, watcher, recorder


def settle(watcher: WatchlistWatcher) -> list[bool]:
    """Two looks: the first sees the change, the second reads it once it stayed the same."""
    return [watcher.check(), watcher.check()]


def test_nothing_changed_nothing_applied(world: tuple[Sources, WatchlistWatcher, Recorder]) -> None:
    _, watcher, recorder = world
    assert settle(watcher) == [False, False]  # the first look reads the files once, finds the same aircraft
    assert recorder.applied == []


def test_a_change_is_applied_once_it_stayed_the_same_for_one_look(
    world: tuple[Sources, WatchlistWatcher, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    where, watcher, recorder = world
    settle(watcher)
    assert where.edits is not None
    where.edits.write_text(EDITS + NEW)
    with caplog.at_level(logging.INFO, logger="ingest.watchlist_reload"):
        assert settle(watcher) == [False, True]
        assert settle(watcher) == [False, False]
    assert len(recorder.applied) == 1 and recorder.applied[0].by_hex("abc123") is not None
    assert "watchlist reloaded: 5 aircraft (1 added, 0 removed, 0 changed, 4 unchanged)" in caplog.text
    assert watcher.current is recorder.applied[0] and watcher.reloads == 1


def test_a_file_still_changing_is_not_read_until_it_stops(world: tuple[Sources, WatchlistWatcher, Recorder]) -> None:
    where, watcher, recorder = world
    settle(watcher)
    assert where.edits is not None
    for i in range(3):
        where.edits.write_text(EDITS + NEW + "add,ABC12" + str(i))  # half-written: not CSV the watcher may read
        assert watcher.check() is False
    write_atomic(where.edits, format_edits(Edits()).encode() + NEW.encode())
    assert settle(watcher) == [False, True]
    assert len(recorder.applied) == 1


def test_a_change_made_before_the_first_look_is_not_missed(tmp_path: Path) -> None:
    where = Sources(SMALL_WATCHLIST, tmp_path, "test")
    started_with = load(where).watchlist
    (tmp_path / "watchlist-edits.csv").write_text(EDITS + NEW)  # while the daemon was starting
    recorder = Recorder()
    watcher = WatchlistWatcher(where, 1.0, started_with, recorder)
    assert watcher.check() is True
    assert len(recorder.applied[0]) == 5


def test_a_broken_list_is_logged_once_and_the_old_one_kept_until_it_is_fixed(
    world: tuple[Sources, WatchlistWatcher, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    where, watcher, recorder = world
    settle(watcher)
    assert where.edits is not None
    where.edits.write_text(EDITS + "add,4.41E+11,NEW-1,,,,,,,,,\n")
    with caplog.at_level(logging.INFO, logger="ingest.watchlist_reload"):
        settle(watcher)
        settle(watcher)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "watchlist not reloaded:" in errors[0].getMessage()
    assert "line 2: ICAO '4.41E+11'" in errors[0].getMessage()
    assert "still watching the 4 aircraft it had" in errors[0].getMessage()
    assert recorder.applied == []
    where.edits.write_text(EDITS + NEW)
    assert settle(watcher) == [False, True]


def test_a_list_the_daemon_refuses_is_not_tried_again(
    world: tuple[Sources, WatchlistWatcher, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    where, watcher, recorder = world
    settle(watcher)
    recorder.fail_with = ConfigError("feeds[0].interval_s", "ingest.toml", "10 s is too short")
    assert where.edits is not None
    where.edits.write_text(EDITS + NEW)
    with caplog.at_level(logging.ERROR, logger="ingest.watchlist_reload"):
        settle(watcher)
        settle(watcher)
    assert caplog.text.count("watchlist not reloaded: ingest.toml: feeds[0].interval_s: 10 s is too short") == 1
    assert recorder.applied == [] and len(watcher.current) == 4


def test_a_database_error_is_tried_again_at_the_next_look(
    world: tuple[Sources, WatchlistWatcher, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    where, watcher, recorder = world
    settle(watcher)
    recorder.fail_with = StoreError("cannot store the watchlist: database or disk is full")
    assert where.edits is not None
    where.edits.write_text(EDITS + NEW)
    with caplog.at_level(logging.WARNING, logger="ingest.watchlist_reload"):
        assert settle(watcher) == [False, False]
        assert watcher.check() is False
    assert caplog.text.count("watchlist not reloaded yet: cannot store the watchlist") == 1
    recorder.fail_with = None
    assert watcher.check() is True
    assert len(recorder.applied) == 1


def test_the_thread_stops_promptly(world: tuple[Sources, WatchlistWatcher, Recorder]) -> None:
    _, watcher, _ = world
    watcher.start()
    watcher.stop()
    assert not watcher.is_alive()


def test_asked_reads_a_change_at_once_and_retries_a_refused_list(
    world: tuple[Sources, WatchlistWatcher, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    where, watcher, recorder = world
    settle(watcher)
    assert where.edits is not None
    where.edits.write_text(EDITS + NEW)
    recorder.fail_with = ConfigError("feeds[0].interval_s", "ingest.toml", "10 s is too short")
    with caplog.at_level(logging.INFO, logger="ingest.watchlist_reload"):
        assert watcher.check(asked=True) is False  # read at once (no second look), and refused
        assert watcher.check() is False  # the same files: not tried again by itself
        recorder.fail_with = None  # the user fixed the config... and asks (SIGHUP): tried again
        assert watcher.check(asked=True) is True
        assert watcher.check(asked=True) is False
    assert len(recorder.applied) == 1 and len(watcher.current) == 5
    assert caplog.text.count("watchlist not reloaded:") == 1
    assert "watchlist reload asked: no change, 5 aircraft" in caplog.text


def test_with_no_looks_of_its_own_the_thread_reads_when_asked(tmp_path: Path) -> None:
    where = Sources(SMALL_WATCHLIST, tmp_path, "test")
    recorder = Recorder()
    watcher = WatchlistWatcher(where, 0, load(where).watchlist, recorder)  # check_interval_s = 0
    watcher.start()
    try:
        (tmp_path / "watchlist-edits.csv").write_text(EDITS + NEW)
        time.sleep(0.3)
        assert recorder.applied == []  # it does not look by itself
        watcher.ask()
        deadline = time.monotonic() + 5
        while not recorder.applied and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(recorder.applied) == 1 and len(recorder.applied[0]) == 5
    finally:
        watcher.stop()
    assert not watcher.is_alive()
