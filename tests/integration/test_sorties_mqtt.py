"""Sorties and their MQTT alerts end to end: `ingest run` polls a scripted sky over loopback HTTP, stores
into a real SQLite file or PostgreSQL database (each test runs on both) and publishes to a real mosquitto;
a real paho client listens.

The sky is built at request time with `now` = the wall clock, so the daemon's periodic check (also on the
wall clock) ends sorties on time. gap_s is 3 s, polls every 0.3 s, checks every 0.25 s.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from tests.conftest import ConfigWriter
from tests.integration.conftest import Daemon, FeedServer, Reply, Sky
from tests.mqtt_broker import Broker, Message, Subscriber

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GAP_S = 3.0
OSAN = (37.0906, 127.0297)
KUNSAN = (35.9038, 126.6158)
YELLOW_SEA = (37.0, 124.8)
OFF_OKINAWA = (30.0, 125.0)
PREFIX = "test"
START = f"{PREFIX}/sortie/62-4125/start"
END = f"{PREFIX}/sortie/62-4125/end"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto with persistence, so that a subscriber's session survives a broker restart."""
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


@pytest.fixture
def write_config(write_config: ConfigWriter, database: str) -> ConfigWriter:
    """Every test here runs on both backends (the `database` fixture): a SQLite file, or PostgreSQL."""
    if not database.startswith("postgresql://"):
        return write_config

    def write(feeds: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Path:
        return write_config(feeds, **{**sections, "database": {**sections.get("database", {}), "url": database}})

    return write


def sortie_config(write_config: ConfigWriter, server: FeedServer, broker: Broker, **mqtt: Any) -> Path:
    return write_config(
        [{"name": "loopback", "kind": "readsb-v2", "base_url": server.url, "interval_s": 0.3}],
        sorties={"gap_s": GAP_S, "check_interval_s": 0.25},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.plain_port, "topic_prefix": PREFIX,
              "client_id": "ingest-under-test", "keepalive_s": 5, **mqtt},
    )  # fmt: skip


def alerts(messages: list[Message], topic: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in messages if t == topic]


def wait_alerts(sub: Subscriber, topic: str, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
    assert sub.wait_for(lambda m: len(alerts(m, topic)) >= count, timeout_s), f"{count} x {topic}: {sub.messages}"
    return alerts(sub.messages, topic)


def sorties_json(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["sorties", *args, "--config", str(config), "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_a_sortie_that_starts_at_altitude_and_loses_signal(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = sortie_config(write_config, feed_server, broker)
    daemons.append(daemon := Daemon(config))
    assert listener.wait_for(lambda m: (f"{PREFIX}/status", "online", True) in m, 10), listener.messages
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    assert start["event"] == "start" and start["event_id"] == f"{start['sortie_id']}/start"
    assert start["sortie_id"].startswith("ae01d2-") and start["hex"] == "ae01d2"
    assert (start["registration"], start["type"], start["callsign"]) == ("62-4125", "R135", "TORA23")
    assert (start["lat"], start["lon"], start["alt_baro_ft"]) == (*YELLOW_SEA, 31000)
    assert start["area"] == "Korean Peninsula" and start["feed"] == "loopback"
    assert start["previous_sortie_end"] is None and start["time"].endswith("Z")

    sky.clear()
    cleared_at = time.monotonic()
    (end,) = wait_alerts(listener, END, 1)
    assert GAP_S - 0.5 < time.monotonic() - cleared_at < GAP_S + 3  # on time, by the periodic check
    assert end["end_reason"] == "signal_lost" and end["sortie_id"] == start["sortie_id"]
    assert end["callsigns"] == ["TORA23"] and end["max_alt_baro_ft"] == 31000 and end["duration_s"] >= 0
    rows = sorties_json(config, capsys, "62-4125")
    assert [(r["sortie_id"], r["end_reason"]) for r in rows] == [(start["sortie_id"], "signal_lost")]
    assert daemon.stop()[0] == 0
    assert listener.wait_for(lambda m: (f"{PREFIX}/status", "offline", True) in m, 5)


def test_takeoff_at_osan_and_landing_at_kunsan(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = sortie_config(write_config, feed_server, broker)
    daemons.append(daemon := Daemon(config))
    sky.put("ae01d2", OSAN, alt="ground")
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM sightings") or 0) >= 2)
    assert alerts(listener.messages, START) == []  # standing on the ground is not a sortie
    sky.put("ae01d2", (37.12, 127.03), alt=1500)
    (start,) = wait_alerts(listener, START, 1)
    assert start["alt_baro_ft"] == 1500
    assert start["took_off_from"] == {"code": "RKSO", "name": "Osan Air Base"}
    sky.put("ae01d2", (36.5, 126.8), alt=12000)
    time.sleep(0.8)
    sky.put("ae01d2", KUNSAN, alt="ground")
    (end,) = wait_alerts(listener, END, 1, timeout_s=GAP_S - 0.5)  # at once, not after the gap
    assert end["end_reason"] == "landed" and (end["lat"], end["lon"]) == (36.5, 126.8)  # last airborne fix
    assert end["max_alt_baro_ft"] == 12000
    assert end["landed_at"] == {"code": "RKJK", "name": "Gunsan Airport / Gunsan Air Base"}  # Kunsan AB
    (row,) = sorties_json(config, capsys, "62-4125")
    assert row["end_reason"] == "landed" and row["end"] == end["time"]
    assert (row["took_off_from"]["code"], row["landed_at"]["code"]) == ("RKSO", "RKJK")


def test_a_long_gap_makes_two_sorties_and_a_callsign_change_does_not(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    daemons.append(Daemon(sortie_config(write_config, feed_server, broker)))
    sky.put("ae01d2", YELLOW_SEA, flight="TORA23")
    wait_alerts(listener, START, 1)
    time.sleep(0.8)
    sky.put("ae01d2", (37.2, 124.9), flight="TORA24")  # same sortie, new callsign
    time.sleep(0.8)
    sky.clear()
    (first_end,) = wait_alerts(listener, END, 1)
    assert first_end["callsigns"] == ["TORA23", "TORA24"]
    assert len(alerts(listener.messages, START)) == 1
    sky.put("ae01d2", YELLOW_SEA, flight="TORA25")
    starts = wait_alerts(listener, START, 2)
    assert starts[1]["sortie_id"] != starts[0]["sortie_id"]
    assert starts[1]["previous_sortie_end"] == first_end["time"]


def test_a_watched_aircraft_outside_the_area_gives_nothing(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = sortie_config(write_config, feed_server, broker)
    daemons.append(daemon := Daemon(config))
    sky.put("ae749d", OFF_OKINAWA, flight="PEDRO11")
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE matched > 0") or 0) >= 5)
    assert daemon.query("SELECT count(*) FROM sightings") == 0
    assert daemon.query("SELECT count(*) FROM sorties") == 0
    assert [t for t, _, _ in listener.messages if "/sortie/" in t] == []
    assert sorties_json(config, capsys) == []


def test_a_broker_outage_loses_no_alert_and_repeats_none(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    daemons.append(daemon := Daemon(sortie_config(write_config, feed_server, broker)))
    sky.put("ae01d2", YELLOW_SEA)
    wait_alerts(listener, START, 1)
    # A broker stopped before the auditor's PUBACK of the start reached it sends the start again after the
    # restart, marked DUP: a repeat on the subscriber's side, which Subscriber drops (this test is about the
    # daemon's repeats). Seen in 4 of 18 runs before it did.
    broker.stop()
    sky.clear()  # the first sortie ends and a second one starts while the broker is away
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM sorties WHERE end_reason IS NOT NULL") == 1, 10)
    sky.put("ae01d2", YELLOW_SEA, flight="TORA24")
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM sorties") == 2, 10)
    assert daemon.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 2
    broker.restart()
    wait_alerts(listener, START, 2, timeout_s=20)
    wait_alerts(listener, END, 1)
    time.sleep(1.0)  # anything repeated would have arrived by now
    ids = [json.loads(p)["event_id"] for t, p, _ in listener.messages if "/sortie/" in t]
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert daemon.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0
    assert daemon.output().count("unreachable") == 1, daemon.output()


def test_kill_9_mid_sortie_and_a_restart_do_not_start_it_again(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = sortie_config(write_config, feed_server, broker)
    daemons.append(first := Daemon(config))
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    daemons.append(Daemon(config, log_name="daemon2.log"))  # restarted well within gap_s
    time.sleep(1.5)
    sky.clear()
    (end,) = wait_alerts(listener, END, 1)
    assert end["sortie_id"] == start["sortie_id"]
    time.sleep(0.5)
    # At most the one event in flight at the kill may come twice, and never under a new id.
    ids = {json.loads(p)["event_id"] for t, p, _ in listener.messages if "/sortie/" in t}
    assert ids == {start["event_id"], end["event_id"]}
    assert len(alerts(listener.messages, START)) <= 2
    assert [r["sortie_id"] for r in sorties_json(config, capsys)] == [start["sortie_id"]]


@pytest.mark.parametrize("fault", ["wrong password", "unknown CA"])
def test_a_broker_that_refuses_us_does_not_stop_polling(
    fault: str, sky: Sky, feed_server: FeedServer, broker: Broker, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    if fault == "wrong password":
        config = sortie_config(write_config, feed_server, broker, port=broker.password_port, username=broker.username)
        env = {"INGEST_MQTT_PASSWORD": "not-the-password"}
    else:
        config = sortie_config(write_config, feed_server, broker, port=broker.tls_port, tls=True,
                               ca_file=str(broker.certs.other_ca_file))  # fmt: skip
        env = {}
    daemons.append(daemon := Daemon(config, env=env))
    sky.put("ae01d2", YELLOW_SEA)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM sightings") or 0) >= 3)
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 1)
    time.sleep(1.0)
    assert daemon.proc.poll() is None
    out = daemon.output()
    expected = "Not authorized" if fault == "wrong password" else "certificate verify failed"
    assert expected in out, out
    assert "not-the-password" not in out
    assert daemon.stop()[0] == 0


def outage_config(write_config: ConfigWriter, server: FeedServer, broker: Broker) -> Path:
    """As sortie_config, but `check_interval_s` left at its default (30 s): ends must come on time anyway."""
    return write_config(
        [{"name": "loopback", "kind": "readsb-v2", "base_url": server.url, "interval_s": 0.3}],
        sorties={"gap_s": GAP_S},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.plain_port, "topic_prefix": PREFIX,
              "client_id": "ingest-under-test", "keepalive_s": 5},
    )  # fmt: skip


def test_a_feed_outage_longer_than_gap_s_does_not_split_the_flight_and_the_end_comes_on_time(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    down = threading.Event()
    feed_server.reply("/v2/", lambda: Reply(status=500, body=b"oops") if down.is_set() else sky.reply())
    config = outage_config(write_config, feed_server, broker)
    daemons.append(daemon := Daemon(config))
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    down.set()  # every feed answers HTTP 500 for 3 x gap_s while the aircraft flies on
    time.sleep(3 * GAP_S)
    assert alerts(listener.messages, END) == []
    down.clear()
    back = time.time()
    daemon.wait_for(lambda: (daemon.query("SELECT max(ts) FROM sightings") or 0) > back)  # seen again (backoff)
    sky.clear()  # now it is really gone: the end comes gap_s of covered time after its last sighting
    (end,) = wait_alerts(listener, END, 1, timeout_s=GAP_S + 10)
    arrived = datetime.now(UTC)
    deadline = datetime.fromisoformat(end["time"]) + timedelta(seconds=GAP_S)
    assert -0.5 < (arrived - deadline).total_seconds() < 3.0, (arrived, deadline)
    assert (end["sortie_id"], end["end_reason"]) == (start["sortie_id"], "signal_lost")
    assert len(alerts(listener.messages, START)) == 1
    rows = sorties_json(config, capsys, "62-4125")
    assert [(r["sortie_id"], r["end_reason"]) for r in rows] == [(start["sortie_id"], "signal_lost")]
    assert daemon.stop()[0] == 0
    assert daemon.output().count("failed: HTTP 500") == 1


def test_a_stop_inside_the_gap_publishes_no_end_and_the_restarted_daemon_continues_the_sortie(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = outage_config(write_config, feed_server, broker)
    daemons.append(first := Daemon(config))
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    sky.clear()
    time.sleep(GAP_S / 3)
    assert first.stop()[0] == 0  # SIGTERM a third into the gap: the end has not happened
    assert alerts(listener.messages, END) == []
    time.sleep(2 * GAP_S)  # down for longer than gap_s: our downtime is no silence of the aircraft
    sky.put("ae01d2", YELLOW_SEA)
    daemons.append(second := Daemon(config, log_name="daemon2.log"))
    second.wait_for(lambda: (second.query("SELECT sightings FROM sorties") or 0) >= 3)
    assert alerts(listener.messages, END) == [] and len(alerts(listener.messages, START)) == 1
    assert [r["sortie_id"] for r in sorties_json(config, capsys)] == [start["sortie_id"]]


def test_behind_slow_answers_the_end_still_comes_on_time(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    """Every answer takes four poll intervals (inside the read timeout): the polls pile up behind each other,
    yet they still cover the time, and the end is found at its deadline, not behind them."""
    feed_server.reply("/v2/", lambda: dataclasses.replace(sky.reply(), delay_s=1.2))
    daemons.append(Daemon(outage_config(write_config, feed_server, broker)))
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1, timeout_s=20)
    time.sleep(2.0)
    sky.clear()
    (end,) = wait_alerts(listener, END, 1, timeout_s=GAP_S + 15)
    deadline = datetime.fromisoformat(end["time"]) + timedelta(seconds=GAP_S)
    assert -0.5 < (datetime.now(UTC) - deadline).total_seconds() < 3.0 + 1.2  # plus one answer in flight
    assert (end["sortie_id"], end["end_reason"]) == (start["sortie_id"], "signal_lost")


def test_a_7700_held_for_two_polls_publishes_one_emergency_and_a_glitch_none(
    sky: Sky, feed_server: FeedServer, broker: Broker, listener: Subscriber, write_config: ConfigWriter,
    daemons: list[Daemon], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = sortie_config(write_config, feed_server, broker)
    daemons.append(Daemon(config))
    sky.put("ae01d2", YELLOW_SEA)
    (start,) = wait_alerts(listener, START, 1)
    emergency = f"{PREFIX}/sortie/62-4125/emergency"
    with sky.lock:  # one poll's worth of 7700: a garbled reply or a code dialled through
        sky.flying["ae01d2"]["squawk"] = "7700"
    time.sleep(0.3)
    with sky.lock:
        sky.flying["ae01d2"]["squawk"] = "4651"
    time.sleep(1.5)
    assert alerts(listener.messages, emergency) == []
    with sky.lock:  # now held
        sky.flying["ae01d2"]["squawk"] = "7700"
    (alert,) = wait_alerts(listener, emergency, 1)
    assert alert["event_id"] == f"{start['sortie_id']}/emergency/1" and alert["event"] == "emergency"
    assert alert["details"]["squawk"] == "7700" and alert["details"]["emergency"] == "general"
    time.sleep(1.5)  # still squawking: the same episode, no second alert
    assert len(alerts(listener.messages, emergency)) == 1
    (row,) = sorties_json(config, capsys, "62-4125")
    assert [e["kind"] for e in row["events"]] == ["emergency"]
