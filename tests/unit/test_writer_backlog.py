"""`ingest.scheduler.Writer` while writes fail and after: polls are kept in memory, written first (oldest
first) by whichever job is next once the database works again, even one that is not a poll (the sortie
clock), and the recovery line counts them. A real SQLite file; its save_poll is made to fail for a while."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import datetime

import pytest

from ingest import scheduler
from ingest.app import App, build_app
from ingest.config import load
from ingest.errors import StoreError
from ingest.store import SqliteStore
from tests.conftest import ConfigWriter
from tests.unit.test_tracker import EVERY_S, at, outcome


@pytest.fixture
def app(write_config: ConfigWriter) -> App:
    """One feed, `loop`, as tests/unit/test_tracker.py's outcome() reports it."""
    feeds = [{"name": "loop", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "interval_s": EVERY_S}]
    return build_app(load(write_config(feeds), environ={}))


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While `failing["on"]`, every SQLite save_poll raises StoreError (as a full disk makes it)."""
    state = {"on": False}
    real = SqliteStore.save_poll

    def save_poll(self: SqliteStore, *args: object, **kwargs: object) -> int:
        if state["on"]:
            raise StoreError("cannot write the poll: database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqliteStore, "save_poll", save_poll)
    return state


def test_polls_kept_while_writes_fail_go_in_before_the_next_job_of_any_kind(
    app: App, failing: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    writer = scheduler.Writer(app, lambda: at(100))
    writer.open()
    try:
        failing["on"] = True
        kept = [writer.save(outcome(app, s)) for s in (0, 5, 10)]
        for future in kept:
            with pytest.raises(StoreError):
                future.result(10)
        failing["on"] = False
        time.sleep(scheduler._RETRY_MIN_S + 0.2)  # the back-off after the first failure
        with caplog.at_level(logging.INFO, logger="ingest.scheduler"):
            # Not a poll: a job of the sortie clock's kind, which writes.
            now: datetime = at(100)
            writer.submit(lambda store: store.heartbeat("t", "h", 1, "0", now)).result(10)
        with sqlite3.connect(app.settings.database.path) as db:
            stamps = [row[0] for row in db.execute("SELECT ts FROM sightings ORDER BY ts")]
            polls = [row[0] for row in db.execute("SELECT started_at FROM feed_polls ORDER BY id")]
        assert stamps == [int(at(s).timestamp()) for s in (0, 5, 10)]
        assert polls == sorted(polls) and len(polls) == 3  # all three, oldest first
        recovered = [r.getMessage() for r in caplog.records if "work again" in r.getMessage()]
        assert len(recovered) == 1 and "3 polls kept meanwhile written" in recovered[0], recovered
    finally:
        writer.close()


def test_a_failure_while_writing_the_kept_polls_keeps_them_and_the_new_one(app: App, failing: dict[str, bool]) -> None:
    writer = scheduler.Writer(app, lambda: at(100))
    writer.open()
    try:
        failing["on"] = True
        with pytest.raises(StoreError):
            writer.save(outcome(app, 0)).result(10)
        time.sleep(scheduler._RETRY_MIN_S + 0.2)
        with pytest.raises(StoreError):  # still failing: this poll is kept behind the first
            writer.save(outcome(app, 5)).result(10)
        failing["on"] = False
        time.sleep(2 * scheduler._RETRY_MIN_S + 0.2)  # the back-off doubled
        assert writer.save(outcome(app, 10)).result(10) == 1
        with sqlite3.connect(app.settings.database.path) as db:
            stamps = [row[0] for row in db.execute("SELECT ts FROM sightings ORDER BY ts")]
            polls = [row[0] for row in db.execute("SELECT started_at FROM feed_polls ORDER BY id")]
        assert stamps == [int(at(s).timestamp()) for s in (0, 5, 10)]
        assert polls == sorted(polls) and len(polls) == 3
    finally:
        writer.close()
