"""Several daemons, one PostgreSQL database (README: "Several daemons, one database"): real `ingest run`
processes polling one loopback feed server, writing into one database on the test server, alerting through
one real mosquitto that a paho client listens to.

- two daemons polling the same feed store each sighting once and raise each sortie event once;
- `kill -9` of the leader mid-sortie: the other takes over within 15 s, and the sortie's end reaches the
  listener once (an `event_id` twice only inside the PUBACK window: published, not yet acknowledged, when
  the leader died);
- a clean stop of the leader hands over at once;
- the database server stopped for longer than gap_s and started again under a running daemon (a throwaway
  server of the test's own): the polls of the outage are kept in memory and written afterwards, said once in
  the log, and the sortie goes on.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_WATCHLIST, render_config
from tests.integration.conftest import Daemon, FeedServer, Sky, free_port
from tests.integration.test_sorties_mqtt import END, PREFIX, START, YELLOW_SEA, alerts, wait_alerts
from tests.mqtt_broker import Broker, Subscriber
from tests.pg import Cluster, fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GAP_S = 3.0
TAKEOVER_S = 15.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", persistence=True)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def listener(broker: Broker) -> Iterator[Subscriber]:
    with Subscriber(broker.plain_port, f"{PREFIX}/#", client_id="auditor", session_expiry_s=300) as sub:
        yield sub


def daemon_config(folder: Path, name: str, url: str, server: FeedServer, broker: Broker, **more: Any) -> Path:
    """One daemon's config in a folder of its own: its own feed name and MQTT client id, the shared database."""
    folder.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": url},
        "watchlist": {"path": str(SMALL_WATCHLIST)},
        "replay": {"on_start": []},
        "daemon": {"log_level": "INFO"},
        "sorties": {"gap_s": GAP_S, "check_interval_s": 0.25},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.plain_port, "topic_prefix": PREFIX,
                 "client_id": f"ingest-{name}", "keepalive_s": 5},
    }  # fmt: skip
    for section, values in more.items():
        sections.setdefault(section, {}).update(values)
    feeds = [{"name": f"loopback-{name}", "kind": "readsb-v2", "base_url": server.url, "interval_s": 0.3}]
    path = folder / "ingest.toml"
    path.write_text(render_config(sections, feeds))
    return path


def leader_and_follower(
    tmp_path: Path, url: str, server: FeedServer, broker: Broker, daemons: list[Daemon]
) -> tuple[Daemon, Daemon]:
    """Daemon a, once it leads, then daemon b, once it says it follows: each its own feed name and client id."""
    a = Daemon(daemon_config(tmp_path / "a", "a", url, server, broker))
    daemons.append(a)
    a.wait_for(lambda: "leading: detecting sorties" in a.output())
    b = Daemon(daemon_config(tmp_path / "b", "b", url, server, broker))
    daemons.append(b)
    b.wait_for(lambda: "not the leader" in b.output())
    return a, b


def _leads(log: str) -> bool:
    last_lead = log.rfind("leading: detecting sorties")
    return last_lead >= 0 and last_lead > log.rfind("no longer the leader")


def event_ids(listener: Subscriber) -> list[str]:
    return [json.loads(p)["event_id"] for t, p, _ in listener.messages if "/sortie/" in t]


def test_two_daemons_on_one_feed_store_each_sighting_once_and_alert_once(
    tmp_path: Path, pg_url: str, sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    a, _ = leader_and_follower(tmp_path, pg_url, feed_server, broker, daemons)
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    # Both daemons store the aircraft's positions; each (hex, second) is one row, from whichever came first.
    a.wait_for(lambda: (a.query("SELECT count(DISTINCT feed) FROM feed_polls WHERE kept > 0") or 0) == 2)
    time.sleep(2.0)  # a few more position seconds, each reported by both daemons' polls
    sky.clear()
    (end,) = wait_alerts(listener, END, 1)
    assert end["sortie_id"] == start["sortie_id"] and end["end_reason"] == "signal_lost"
    time.sleep(1.0)  # a repeat would have come by now
    ids = event_ids(listener)
    assert sorted(ids) == sorted({f"{start['sortie_id']}/start", f"{start['sortie_id']}/end"}), ids
    assert a.query("SELECT count(*) FROM sorties") == 1
    # Every position second once, though both daemons kept it (their polls' `kept` add up to more).
    rows = a.query("SELECT count(*) FROM sightings")
    kept = a.query("SELECT sum(kept) FROM feed_polls")
    assert rows == a.query("SELECT count(*) FROM (SELECT DISTINCT hex, ts FROM sightings) s") and rows >= 3
    assert kept > rows, (kept, rows)
    assert a.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0
    for d in daemons:
        assert "Traceback" not in d.output(), d.output()


def test_kill_9_of_the_leader_mid_sortie_hands_its_work_over(
    tmp_path: Path, pg_url: str, sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    first, second = leader_and_follower(tmp_path, pg_url, feed_server, broker, daemons)
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    # Acknowledged and marked sent: outside the PUBACK window, so it must never come again.
    first.wait_for(lambda: first.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0)
    time.sleep(1.0)  # mid-sortie
    killed_at = time.monotonic()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    second.wait_for(lambda: _leads(second.output()), TAKEOVER_S)
    took_over_s = time.monotonic() - killed_at
    print(f"the follower led {took_over_s:.1f} s after the kill")
    assert took_over_s < TAKEOVER_S
    # The sortie goes on under the new leader: no second start; then it ends, once.
    time.sleep(GAP_S + 1)
    assert len(alerts(listener.messages, START)) == 1, listener.messages
    sky.clear()
    (end,) = wait_alerts(listener, END, 1, timeout_s=20)
    assert end["sortie_id"] == start["sortie_id"]
    time.sleep(1.0)
    ids = event_ids(listener)
    assert set(ids) == {f"{start['sortie_id']}/start", f"{start['sortie_id']}/end"}, ids
    assert len(ids) == 2, ids
    assert second.query("SELECT count(*) FROM sorties") == 1
    assert second.query("SELECT daemon FROM leader") == second_id(second)
    assert "Traceback" not in second.output(), second.output()


def test_a_clean_stop_of_the_leader_hands_over_at_once(
    tmp_path: Path, pg_url: str, sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    first, second = leader_and_follower(tmp_path, pg_url, feed_server, broker, daemons)
    assert first.stop()[0] == 0
    t0 = time.monotonic()
    second.wait_for(lambda: _leads(second.output()), 5)
    assert time.monotonic() - t0 < 5
    sky.put("ae01d2", YELLOW_SEA)
    wait_alerts(listener, START, 1)


def second_id(daemon: Daemon) -> str:
    return f"{socket.gethostname()}:{daemon.proc.pid}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(free_port())
    try:
        c.start()
        yield c
    finally:
        c.destroy()


def test_the_database_server_stopped_and_restarted_under_a_running_daemon(
    tmp_path: Path, cluster: Cluster, sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    url = f"{cluster.url}/ingest"  # made by the daemon on the new server (run creates its database)
    daemons.append(daemon := Daemon(daemon_config(tmp_path / "a", "a", url, feed_server, broker)))
    daemon.wait_for(lambda: "leading: detecting sorties" in daemon.output(), 30)
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    cluster.stop()
    down_from = time.time()
    time.sleep(GAP_S + 3)  # longer than gap_s: the aircraft flies on while we cannot write
    down_until = time.time()
    cluster.start()
    daemon.wait_for(lambda: "database writes work again" in daemon.output(), 30)
    # The positions the feed gave while the server was down were kept and written afterwards.
    daemon.wait_for(lambda: (daemon.query(f"SELECT count(*) FROM sightings WHERE ts BETWEEN {int(down_from) + 1} AND "
                                          f"{int(down_until) - 1}") or 0) >= GAP_S, 15)  # fmt: skip
    # One sortie all along: our outage is not the aircraft's silence.
    time.sleep(2.0)
    assert len(alerts(listener.messages, START)) == 1, listener.messages
    assert daemon.query("SELECT count(*) FROM sorties") == 1
    log = daemon.output()
    assert log.count("database writes failing") == 1, log
    assert "polls kept meanwhile written" in log
    assert "Traceback" not in log, log
    sky.clear()
    (end,) = wait_alerts(listener, END, 1, timeout_s=20)
    assert end["sortie_id"] == start["sortie_id"] and end["end_reason"] == "signal_lost"
