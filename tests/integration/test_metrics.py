"""`/metrics` of the real daemon (`ingest run` with the HTTP API on) after a scripted run against the
loopback feed server (one good feed, one failing), a real mosquitto and a real database (SQLite file, and
a PostgreSQL database): the counters moved as the scenario says. Then `ingest serve` alone, on the same
database: the database's gauges, and none of the daemon's counters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ingest.api import ApiServer
from ingest.config import load
from tests.conftest import ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply, free_port
from tests.mqtt_broker import Broker

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def wait_for(check: Any, daemon: Daemon, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if daemon.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"condition not met; daemon log:\n{daemon.output()}")
        time.sleep(0.2)


def test_metrics_count_a_scripted_run(
    feed_server: FeedServer, write_config: ConfigWriter, database: str, mqtt_broker: Broker, daemons: list[Daemon]
) -> None:
    # One aircraft, always at the same position (so one sighting, one sortie), beside a record with a bad
    # hex; the other feed answers 500, always.
    seen_at = datetime.now(UTC) - timedelta(seconds=5)
    body = envelope([aircraft("ae01d2"), aircraft("zzzzzz")], now=seen_at)
    feed_server.reply("/good/v2/", Reply(body=body))
    feed_server.reply("/down/v2/", Reply(status=500, body=b"oops"))
    port = free_port()
    db = {"url": database} if database.startswith("postgresql") else {"path": database}
    config = write_config(
        [
            {"name": "good", "kind": "readsb-v2", "base_url": f"{feed_server.url}/good", "interval_s": 0.5},
            {"name": "down", "kind": "readsb-v2", "base_url": f"{feed_server.url}/down", "interval_s": 0.5},
        ],
        database=db,
        http={"enabled": True, "port": port},
        mqtt={"enabled": True, "port": mqtt_broker.plain_port},
    )
    daemon = Daemon(config)
    daemons.append(daemon)
    url = f"http://127.0.0.1:{port}"
    found: Samples = {}

    def moved() -> bool:
        nonlocal found
        try:
            found = scrape(url)
        except requests.ConnectionError:
            return False  # not listening yet
        return (
            (value(found, "ingest_feed_polls_total", feed="good", outcome="ok") or 0) >= 3
            and (value(found, "ingest_feed_polls_total", feed="down", outcome="http_5xx") or 0) >= 2
            and (value(found, "ingest_alerts_delivered_total", channel="mqtt") or 0) >= 1
        )

    wait_for(moved, daemon)
    good_polls = value(found, "ingest_feed_polls_total", feed="good", outcome="ok")
    assert good_polls is not None
    # Each good poll asks /v2/hex/ and /v2/reg/: two 2xx answers; the failing feed's first request fails.
    assert value(found, "ingest_feed_http_responses_total", feed="good", code="2xx") >= 2 * good_polls
    assert value(found, "ingest_feed_http_responses_total", feed="down", code="5xx") >= 2
    assert value(found, "ingest_feed_http_responses_total", feed="down", code="2xx") == 0
    for outcome in ("timeout", "connection", "http_4xx", "invalid_body", "malformed_records"):
        assert value(found, "ingest_feed_polls_total", feed="good", outcome=outcome) == 0
    assert value(found, "ingest_feed_polls_total", feed="down", outcome="ok") == 0
    assert value(found, "ingest_feed_poll_duration_seconds_count", feed="good") >= good_polls
    # Two records an answer, two answers a poll; one of them (the bad hex) refused each time.
    assert value(found, "ingest_feed_aircraft_total", feed="good") >= 4 * good_polls
    assert value(found, "ingest_feed_rejected_records_total", feed="good", reason="identity") >= 2 * good_polls
    assert value(found, "ingest_feed_aircraft_kept_total", feed="good") >= good_polls
    assert value(found, "ingest_feed_aircraft_total", feed="down") == 0
    # The same position every poll: stored once; one sortie started, its start alert acknowledged.
    assert value(found, "ingest_sightings_stored_total", feed="good") == 1
    assert value(found, "ingest_sightings_stored_total", feed="down") == 0
    assert value(found, "ingest_sorties_started_total") == 1
    assert value(found, "ingest_events_total", kind="start") == 1
    assert value(found, "ingest_events_total", kind="end") == 0
    assert value(found, "ingest_sorties_ended_total", reason="landed") == 0
    assert value(found, "ingest_alerts_delivered_total", channel="mqtt") == 1
    assert value(found, "ingest_alerts_failed_total", channel="mqtt") == 0
    assert value(found, "ingest_alert_channel_connected", channel="mqtt") == 1
    # The database's gauges, read at the scrape.
    backend = "postgresql" if database.startswith("postgresql") else "sqlite"
    assert value(found, "ingest_database_readable") == 1
    assert value(found, "ingest_database_size_bytes", backend=backend) > 0
    assert (value(found, "ingest_database_wal_size_bytes") is not None) == (backend == "sqlite")
    assert value(found, "ingest_sorties_open") == 1
    assert value(found, "ingest_outbox_pending_alerts", channel="mqtt") == 0
    last = value(found, "ingest_feed_last_success_timestamp_seconds", feed="good")
    assert last is not None and abs(last - time.time()) < 30
    assert value(found, "ingest_feed_last_success_timestamp_seconds", feed="down") is None
    assert value(found, "ingest_feed_failures_in_a_row", feed="down") >= 2
    assert value(found, "ingest_feed_failures_in_a_row", feed="good") == 0
    assert value(found, "ingest_feed_parked", feed="down") == 0
    assert value(found, "ingest_daemon_heartbeat_timestamp_seconds") > time.time() - 30
    assert value(found, "process_resident_memory_bytes") > 0
    # Never a hex, a registration or a callsign in a label.
    labels = {v for (_, pairs) in found for _, v in pairs}
    assert not labels & {"ae01d2", "zzzzzz", "62-4125", "TORA23"}

    assert daemon.stop()[0] == 0
    # `ingest serve` alone: no daemon in its process, so no counters; the database's gauges only.
    with ApiServer(load(config, environ={}), port=0) as api:
        alone = scrape(api.url)
    assert value(alone, "ingest_sorties_open") == 1
    assert value(alone, "ingest_database_size_bytes", backend=backend) > 0
    assert value(alone, "ingest_feed_failures_in_a_row", feed="down") >= 2
    assert value(alone, "ingest_daemon_heartbeat_timestamp_seconds") is None  # it stopped cleanly
    assert not [name for name, _ in alone if name.startswith(("ingest_feed_polls", "ingest_sightings_stored"))]


def test_serve_says_when_the_database_cannot_be_read(write_config: ConfigWriter, tmp_path: Any) -> None:
    config = write_config([], database={"path": str(tmp_path / "nowhere" / "ingest.db")})
    with ApiServer(load(config, environ={}), port=0) as api:
        found = scrape(api.url)
    assert value(found, "ingest_database_readable") == 0
    assert value(found, "ingest_database_size_bytes", backend="sqlite") is None
