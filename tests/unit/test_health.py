"""services.health, the one rule behind `GET /healthz` and `ingest health`, on both backends (the `database`
fixture): a feed succeeded within stale_after_s and, once a daemon has run on the database, one runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from ingest.models import FeedHealth
from ingest.services import HEARTBEAT_STALE_S, health
from ingest.store import Store, open_store
from tests.conftest import T0

NOW = T0 + timedelta(hours=1)


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    s = open_store(database)
    try:
        yield s
    finally:
        s.close()


def succeeded(store: Store, feed: str, ago_s: float) -> None:
    at = NOW - timedelta(seconds=ago_s)
    with store.atomic():
        store._save_health(FeedHealth(feed, "ok", at, 0, None, None, None))  # type: ignore[attr-defined]


def failed(store: Store, feed: str, ago_s: float) -> None:
    at = NOW - timedelta(seconds=ago_s)
    health_row = FeedHealth(feed, "degraded", at, 3, at, at + timedelta(seconds=60), "HTTP 503")
    with store.atomic():
        store._save_health(health_row)  # type: ignore[attr-defined]


def beat(store: Store, daemon: str, ago_s: float, stopped: bool = False) -> None:
    store.heartbeat(daemon, "box", 42, "0.1.0", NOW - timedelta(seconds=ago_s), stopped)


def test_no_enabled_feed_is_unhealthy(store: Store) -> None:
    succeeded(store, "lol", 5)
    answer = health(store, [], NOW, 300)
    assert not answer.healthy and answer.reason == "no feed is enabled"


def test_a_feed_that_never_succeeded_is_unhealthy(store: Store) -> None:
    failed(store, "lol", 5)
    answer = health(store, ["lol"], NOW, 300)
    assert answer.reason == "no feed has succeeded yet"
    assert answer.feeds == {"lol": "never succeeded"}
    assert health(store, ["fi"], NOW, 300).feeds == {"fi": "never polled"}


def test_without_a_daemon_the_feeds_decide_as_under_cron(store: Store) -> None:
    """`ingest poll` from cron writes no heartbeat: a database no daemon ever ran on is judged by its feeds."""
    succeeded(store, "lol", 12)
    answer = health(store, ["lol"], NOW, 300)
    assert answer.healthy and answer.reason is None
    assert answer.age_s == 12.0 and answer.last_success == NOW - timedelta(seconds=12)
    assert answer.describe().startswith("healthy: a feed succeeded 12 s ago (")


def test_the_latest_success_of_an_enabled_feed_counts(store: Store) -> None:
    succeeded(store, "lol", 400)
    succeeded(store, "fi", 10)
    failed(store, "fi", 1)  # failing now, but it succeeded 10 s ago: the daemon works
    assert health(store, ["lol", "fi"], NOW, 300).healthy
    answer = health(store, ["lol"], NOW, 300)  # fi disabled: its success is not ours
    assert answer.reason == "no feed has succeeded for 400 s (more than 300 s)"


def test_a_running_daemon_and_a_fresh_feed_are_healthy(store: Store) -> None:
    beat(store, "box:42", 3)
    succeeded(store, "lol", 5)
    answer = health(store, ["lol"], NOW, 300)
    assert answer.healthy
    assert answer.daemon.running and answer.daemon.daemon == "box:42"
    assert "daemon box:42 running since" in answer.describe()


def test_a_daemon_without_heartbeat_is_unhealthy_before_its_feeds_go_stale(store: Store) -> None:
    beat(store, "box:42", HEARTBEAT_STALE_S + 10)
    succeeded(store, "lol", 20)  # fresh enough: the daemon's death is what is wrong
    answer = health(store, ["lol"], NOW, 300)
    assert not answer.healthy
    assert answer.reason is not None and "box:42 last beat at" in answer.reason
    assert "did not stop cleanly" in answer.reason


def test_a_cleanly_stopped_daemon_is_unhealthy(store: Store) -> None:
    beat(store, "box:42", 5, stopped=True)
    succeeded(store, "lol", 6)
    answer = health(store, ["lol"], NOW, 300)
    assert answer.reason is not None and answer.reason.startswith("no daemon is running: box:42 stopped at ")


def test_a_restarted_daemon_is_healthy_beside_the_dead_one(store: Store) -> None:
    beat(store, "box:41", 600)  # killed with -9 ten minutes ago
    beat(store, "box:42", 2)
    succeeded(store, "lol", 4)
    assert health(store, ["lol"], NOW, 300).healthy


def test_as_dict_is_the_healthz_body(store: Store) -> None:
    beat(store, "box:42", 3)
    succeeded(store, "lol", 5)
    body = health(store, ["lol"], NOW, 300).as_dict()
    assert body["status"] == "ok" and "reason" not in body
    assert body["feeds"] == {"lol": "ok"} and body["age_s"] == 5.0 and body["stale_after_s"] == 300
    assert body["last_success"] == "2026-11-20T23:59:55Z"
    assert body["daemon"]["running"] is True and body["daemon"]["daemon"] == "box:42"
    stale = health(store, ["lol"], NOW + timedelta(seconds=600), 300).as_dict()
    assert stale["status"] == "unavailable" and "reason" in stale
