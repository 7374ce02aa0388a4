"""The metrics interface (ingest/metrics.py: pure classification into low-cardinality labels) and its
Prometheus implementation (ingest/metrics_prometheus.py), rendered and read back with prometheus_client's
own parser."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.config import load
from ingest.errors import FeedError, FeedFormatError, FeedUnavailable
from ingest.metrics import NO_METRICS, POLL_OUTCOMES, poll_outcome, reject_class, status_class
from ingest.metrics_prometheus import PrometheusMetrics
from ingest.models import Fix, PollRecord, Rejected, Sortie, SortieEvent
from ingest.store import SqliteStore
from tests.conftest import T0, ConfigWriter

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: PrometheusMetrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def unavailable(reason: str, status: int | None = None) -> FeedUnavailable:
    return FeedUnavailable("lol", "http://x/v2/hex/", reason, status)


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        (None, "ok"),
        (unavailable("timeout (no answer within the 10 s read timeout)"), "timeout"),
        (unavailable("timeout (no complete answer within 30 s)"), "timeout"),
        (unavailable("connection failed: connection refused"), "connection"),
        (unavailable("body cut short: the connection closed after 10 of 20 bytes"), "connection"),
        (unavailable("not an HTTP answer (unreadable status line or headers)"), "connection"),
        (unavailable("HTTP 503 Service Unavailable", 503), "http_5xx"),
        (unavailable("HTTP 429 Too Many Requests, Retry-After 30 s", 429), "http_4xx"),
        (unavailable("HTTP 403 Forbidden", 403), "http_4xx"),
        (unavailable("HTTP 301 Moved Permanently: redirects are not followed", 301), "http_3xx"),
        (unavailable("body over the 20971520 byte cap", 200), "too_large"),
        (unavailable("Content-Length 99999999999 is over the cap", 200), "too_large"),
        (unavailable("HTTP 200 with an empty body", 200), "invalid_body"),
        (unavailable("stopped"), "stopped"),
        (unavailable("stopped before the tick's last request"), "stopped"),
        (FeedFormatError("lol", "", "not JSON: unexpected character"), "invalid_body"),
        (FeedFormatError("lol", "", "all 3 records malformed (first: hex 'zz')"), "malformed_records"),
        (unavailable("something new"), "other"),
        (FeedError("lol", "", "whatever"), "other"),
    ],
)
def test_every_failure_falls_in_one_fixed_outcome(failure: FeedError | None, outcome: str) -> None:
    assert poll_outcome(failure) == outcome
    assert outcome in POLL_OUTCOMES


def test_labels_never_carry_feed_data() -> None:
    assert [status_class(s) for s in (200, 204, 304, 404, 429, 503, 99, 600)] == [
        "2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "other", "other",
    ]  # fmt: skip
    assert reject_class("lat") == reject_class("latitude") == "position"
    assert reject_class("alt_baro") == "altitude" and reject_class("hex") == "identity"
    assert reject_class("position_time") == "time" and reject_class("record") == "format"
    # msgspec names a path, which may hold an index or a key the feed made up: never a label of its own.
    assert reject_class("ac[3].lat") == reject_class("a-key-from-the-feed") == "other"


def record(feed: str = "lol", **fields: object) -> PollRecord:
    values: dict[str, object] = dict(
        feed=feed, started_at=T0, duration_ms=420, requests=2, http_status=200, aircraft=5, matched=2, kept=1,
        stored=0, rejected=0, error=None,
    )  # fmt: skip
    values.update(fields)
    return PollRecord(**values)  # type: ignore[arg-type]


def sortie(end_reason: str | None = None) -> Sortie:
    fix = Fix(T0, 37.0, 124.8, 31000, "TORA23", "lol")
    return Sortie(
        sortie_id="ae01d2-20261120T230000Z", key="62-4125", hex_icao="ae01d2", registration="62-4125",
        type_icao="R135", first=fix, last=fix, last_seen_at=T0, callsigns=("TORA23",), max_alt_baro_ft=31000,
        sightings=1, previous_sortie_end=None, end_reason=end_reason,
    )  # fmt: skip


def test_prometheus_metrics_count_what_the_daemon_reports() -> None:
    m = PrometheusMetrics(["lol", "fi"], ["mqtt"], process=False)
    before = samples(m)
    # Every configured feed, outcome, class and channel is there at 0 before anything happens.
    assert value(before, "ingest_feed_polls_total", feed="fi", outcome="http_5xx") == 0
    assert value(before, "ingest_feed_http_responses_total", feed="fi", code="4xx") == 0
    assert value(before, "ingest_sorties_ended_total", reason="no_coverage") == 0
    assert value(before, "ingest_alerts_failed_total", channel="mqtt") == 0
    assert not [k for k in before if k[0].endswith("_created")]

    m.poll(record(), None, [Rejected("bad", "{}", "lat"), Rejected("bad", "{}", "ac[0].x")])
    m.poll(record(duration_ms=12_000, aircraft=0, matched=0, kept=0), unavailable("HTTP 502 Bad Gateway", 502), [])
    m.response("lol", 200)
    m.response("lol", 502)
    m.stored("lol", 3)
    m.sortie_events([SortieEvent("start", sortie()), SortieEvent("end", sortie("landed"))])
    m.happening("orbit")
    m.delivered("mqtt", 2)
    m.failed("mqtt", 1)
    connected = [True]
    m.watch_connection("mqtt", lambda: connected[0])
    found = samples(m)
    assert value(found, "ingest_feed_polls_total", feed="lol", outcome="ok") == 1
    assert value(found, "ingest_feed_polls_total", feed="lol", outcome="http_5xx") == 1
    assert value(found, "ingest_feed_http_responses_total", feed="lol", code="2xx") == 1
    assert value(found, "ingest_feed_http_responses_total", feed="lol", code="5xx") == 1
    assert value(found, "ingest_feed_poll_duration_seconds_count", feed="lol") == 2
    assert value(found, "ingest_feed_poll_duration_seconds_sum", feed="lol") == pytest.approx(12.42)
    assert value(found, "ingest_feed_poll_duration_seconds_bucket", feed="lol", le="0.5") == 1
    assert value(found, "ingest_feed_aircraft_total", feed="lol") == 5
    assert value(found, "ingest_feed_aircraft_watched_total", feed="lol") == 2
    assert value(found, "ingest_feed_aircraft_kept_total", feed="lol") == 1
    assert value(found, "ingest_feed_rejected_records_total", feed="lol", reason="position") == 1
    assert value(found, "ingest_feed_rejected_records_total", feed="lol", reason="other") == 1
    assert value(found, "ingest_sightings_stored_total", feed="lol") == 3
    assert value(found, "ingest_sorties_started_total") == 1
    assert value(found, "ingest_sorties_ended_total", reason="landed") == 1
    assert value(found, "ingest_events_total", kind="start") == value(found, "ingest_events_total", kind="end") == 1
    assert value(found, "ingest_events_total", kind="orbit") == 1
    assert value(found, "ingest_alerts_delivered_total", channel="mqtt") == 2
    assert value(found, "ingest_alerts_failed_total", channel="mqtt") == 1
    assert value(found, "ingest_alert_channel_connected", channel="mqtt") == 1
    connected[0] = False  # read when scraped, not when set
    assert value(samples(m), "ingest_alert_channel_connected", channel="mqtt") == 0
    assert value(found, "ingest_feed_polls_total", feed="fi", outcome="ok") == 0


def test_no_metrics_takes_every_call() -> None:
    NO_METRICS.poll(record(), None, [])
    NO_METRICS.response("lol", 200)
    NO_METRICS.stored("lol", 1)
    NO_METRICS.sortie_events([SortieEvent("start", sortie())])
    NO_METRICS.happening("orbit")
    NO_METRICS.delivered("mqtt", 1)
    NO_METRICS.failed("mqtt", 1)
    NO_METRICS.watch_connection("mqtt", lambda: True)
    NO_METRICS.database_ready()


def test_a_feed_name_is_a_label_value_as_it_is() -> None:
    m = PrometheusMetrics(['we"ird\\name'], process=False)
    m.poll(replace(record('we"ird\\name')), None, [])
    assert value(samples(m), "ingest_feed_polls_total", feed='we"ird\\name', outcome="ok") == 1


def test_the_daemon_s_database_gauges_wait_until_it_opened_the_database(write_config: ConfigWriter) -> None:
    """`ingest run` serves /metrics before its writer has opened (and migrated) the database: a scrape in
    that moment must not open the file itself (it would race the migrations and fail the daemon's start)."""
    settings = load(write_config([]), environ={})
    SqliteStore(settings.database.path).close()
    m = PrometheusMetrics(process=False)
    m.add_database(settings, wait_for_daemon=True)
    assert value(samples(m), "ingest_database_readable") == 0
    m.database_ready()
    found = samples(m)
    assert value(found, "ingest_database_readable") == 1 and value(found, "ingest_sorties_open") == 0
