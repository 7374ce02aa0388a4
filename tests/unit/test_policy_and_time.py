"""Pure timing helpers: per-feed pacing and backoff (`ingest.feeds.policy.Pacing`), Retry-After parsing
(`ingest.feeds.transport.retry_after_s`), the WHEN syntax and ISO output (`ingest.timeutil`), and the
published host limits (`ingest.feeds.hosts.host_limit`). Every clock is passed in; nothing sleeps.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ingest.feeds.hosts import host_limit
from ingest.feeds.policy import FORBIDDEN_PARK_S, MAX_BACKOFF_S, Pacing
from ingest.feeds.transport import retry_after_s
from ingest.timeutil import from_epoch, iso_z, parse_when

NOW = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
INTERVAL_S = 10.0


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def fail(pacing: Pacing, status: int | None = None, retry_after: float | None = None, at: datetime = NOW) -> float:
    return pacing.on_failure(at, "boom", status, retry_after)


# -- Pacing -----------------------------------------------------------------------------------------


def test_new_pacing_is_ready_and_healthy() -> None:
    pacing = Pacing(INTERVAL_S)
    assert pacing.ready(NOW)
    assert pacing.failures == 0
    assert pacing.degraded_since is None
    assert pacing.new_episode is False


def test_one_failure_waits_about_one_interval() -> None:
    pacing = Pacing(INTERVAL_S)
    assert fail(pacing) == INTERVAL_S
    assert not pacing.ready(NOW)
    assert not pacing.ready(after(0.5 * INTERVAL_S))
    assert not pacing.ready(after(0.85 * INTERVAL_S))
    assert pacing.ready(after(0.95 * INTERVAL_S))  # 10 % slack for a tick that fires early
    assert pacing.ready(after(INTERVAL_S))
    assert pacing.failures == 1
    assert pacing.degraded_since == NOW
    assert pacing.last_reason == "boom"


def test_backoff_doubles_and_is_capped() -> None:
    pacing = Pacing(INTERVAL_S)
    waits = [fail(pacing) for _ in range(8)]
    assert waits == [10.0, 20.0, 40.0, 80.0, 160.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert not pacing.ready(after(MAX_BACKOFF_S - INTERVAL_S))
    assert pacing.ready(after(MAX_BACKOFF_S))


def test_backoff_stays_capped_after_many_failures() -> None:
    # A feed that stays down for days (a 403 parks it for an hour each time) keeps failing; the backoff
    # must stay at the cap instead of overflowing 2.0 ** failures.
    pacing = Pacing(INTERVAL_S)
    for _ in range(1100):
        wait = fail(pacing)
    assert pacing.failures == 1100
    assert wait == MAX_BACKOFF_S


def test_backoff_cap_is_the_interval_when_longer() -> None:
    pacing = Pacing(600.0)
    assert [fail(pacing) for _ in range(3)] == [600.0, 600.0, 600.0]


def test_degraded_since_is_the_first_failure() -> None:
    pacing = Pacing(INTERVAL_S)
    fail(pacing, at=NOW)
    fail(pacing, at=after(30))
    assert pacing.degraded_since == NOW


def test_retry_after_longer_than_backoff_is_honoured() -> None:
    pacing = Pacing(INTERVAL_S)
    assert fail(pacing, status=429, retry_after=120.0) == 120.0
    assert not pacing.ready(after(100))
    assert not pacing.ready(after(119.5))  # the full Retry-After, no slack
    assert pacing.ready(after(120))


def test_retry_after_shorter_than_backoff_keeps_backoff() -> None:
    pacing = Pacing(INTERVAL_S)
    fail(pacing)
    fail(pacing)
    assert fail(pacing, status=503, retry_after=1.0) == 40.0


def test_429_without_retry_after_uses_backoff() -> None:
    pacing = Pacing(INTERVAL_S)
    assert fail(pacing, status=429) == INTERVAL_S


@pytest.mark.parametrize("status", [401, 403])
def test_access_refused_parks_the_feed(status: int) -> None:
    pacing = Pacing(INTERVAL_S)
    wait = fail(pacing, status=status)
    assert wait >= FORBIDDEN_PARK_S
    assert FORBIDDEN_PARK_S == 3600.0
    assert not pacing.ready(after(FORBIDDEN_PARK_S / 2))
    assert not pacing.ready(after(FORBIDDEN_PARK_S - INTERVAL_S))
    assert pacing.ready(after(FORBIDDEN_PARK_S))


def test_retry_after_longer_than_park_wins() -> None:
    pacing = Pacing(INTERVAL_S)
    assert fail(pacing, status=403, retry_after=5000.0) == 5000.0


def test_on_success_resets_and_returns_failure_count() -> None:
    pacing = Pacing(INTERVAL_S)
    for _ in range(3):
        fail(pacing)
    assert pacing.on_success() == 3
    assert pacing.failures == 0
    assert pacing.ready(NOW)
    assert pacing.next_allowed_at is None
    assert pacing.degraded_since is None
    assert pacing.last_reason is None
    assert pacing.on_success() == 0


def test_backoff_restarts_after_success() -> None:
    pacing = Pacing(INTERVAL_S)
    for _ in range(4):
        fail(pacing)
    pacing.on_success()
    assert fail(pacing) == INTERVAL_S


def test_new_episode_only_on_first_failure() -> None:
    pacing = Pacing(INTERVAL_S)
    assert pacing.new_episode is False
    fail(pacing)
    assert pacing.new_episode is True
    fail(pacing)
    assert pacing.new_episode is False
    fail(pacing)
    assert pacing.new_episode is False
    pacing.on_success()
    assert pacing.new_episode is False
    fail(pacing)
    assert pacing.new_episode is True


# -- retry_after_s ----------------------------------------------------------------------------------


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (http_date(NOW + timedelta(seconds=30)), 30.0),
        ("Tue, 01 Sep 2026 12:00:30 GMT", 30.0),
        (http_date(NOW - timedelta(seconds=30)), 0.0),  # a date in the past: retry now
        ("-5", 0.0),
        ("99999999", 6 * 3600.0),
        (http_date(NOW + timedelta(days=3)), 6 * 3600.0),
        ("garbage", None),
        ("soon, please", None),
        ("inf", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_s(value: str | None, expected: float | None) -> None:
    assert retry_after_s(value, NOW) == expected


# -- timeutil ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("90m", NOW - timedelta(minutes=90)),  # m is minutes
        ("45s", NOW - timedelta(seconds=45)),
        ("2w", NOW - timedelta(weeks=2)),
        ("1.5h", NOW - timedelta(minutes=90)),
        (" 24h ", NOW - timedelta(hours=24)),
        ("2026-08-31T10:20:30Z", datetime(2026, 8, 31, 10, 20, 30, tzinfo=UTC)),
        ("2026-08-31T10:20:30.250Z", datetime(2026, 8, 31, 10, 20, 30, 250_000, tzinfo=UTC)),
        ("2026-08-31T10:20:30+09:00", datetime(2026, 8, 31, 1, 20, 30, tzinfo=UTC)),
        ("2026-08-31T01:20:30-05:00", datetime(2026, 8, 31, 6, 20, 30, tzinfo=UTC)),
        ("2026-08-31T10:20:30", datetime(2026, 8, 31, 10, 20, 30, tzinfo=UTC)),  # naive = UTC
        ("2026-08-31", datetime(2026, 8, 31, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    result = parse_when(text, NOW)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_parse_when_offset_result_is_in_utc() -> None:
    result = parse_when("2026-08-31T10:20:30+09:00", NOW)
    assert result.tzinfo is UTC
    assert (result.hour, result.day) == (1, 31)


@pytest.mark.parametrize("text", ["garbage", "", "24", "h24", "-5h", "5y", "2026-13-01T00:00:00Z", "yesterday"])
def test_parse_when_garbage_raises(text: str) -> None:
    with pytest.raises(ValueError, match="neither ISO 8601 nor a duration"):
        parse_when(text, NOW)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC), "2026-09-01T12:00:00Z"),
        (datetime(2026, 9, 1, 12, 0, 0, 123_456, tzinfo=UTC), "2026-09-01T12:00:00.123Z"),
        (datetime(2026, 9, 1, 12, 0, 0, 500_000, tzinfo=UTC), "2026-09-01T12:00:00.500Z"),
        (datetime(2026, 9, 1, 21, 0, 0, tzinfo=timezone(timedelta(hours=9))), "2026-09-01T12:00:00Z"),
    ],
)
def test_iso_z(when: datetime, expected: str) -> None:
    assert iso_z(when) == expected


def test_from_epoch_is_utc() -> None:
    assert from_epoch(1785336058.5) == datetime(2026, 7, 29, 14, 40, 58, 500_000, tzinfo=UTC)
    assert from_epoch(0).tzinfo is UTC


@pytest.mark.parametrize(
    "ts_s",
    [float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 2**80, 1e20, 253_402_300_800, 253_402_300_799.9999999,
     -62_135_596_801],
)  # fmt: skip
def test_from_epoch_raises_only_value_error(ts_s: float) -> None:
    """fromtimestamp alone raises ValueError, OverflowError or OSError by value and platform."""
    with pytest.raises(ValueError, match="Unix time"):
        from_epoch(ts_s)


def test_from_epoch_edges_of_the_datetime_range() -> None:
    assert from_epoch(253_402_300_799) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert from_epoch(-62_135_596_800) == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["9" * 400 + "w", "99999999999999d", "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"]
)
def test_parse_when_out_of_range_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_when(text, NOW)


def test_iso_z_parse_when_round_trip() -> None:
    when = datetime(2026, 9, 1, 12, 34, 56, 789_000, tzinfo=UTC)
    assert parse_when(iso_z(when), NOW) == when


# -- host_limit -------------------------------------------------------------------------------------


def test_host_limit_adsb_fi() -> None:
    limit = host_limit("https://opendata.adsb.fi/api")
    assert limit is not None
    assert limit.min_request_spacing_s == 1.0
    assert limit.reg_route == "registration"


@pytest.mark.parametrize("url", ["https://api.adsb.lol", "https://api.adsb.lol/v2/hex/ae01d2", "https://API.ADSB.LOL/"])
def test_host_limit_adsb_lol(url: str) -> None:
    limit = host_limit(url)
    assert limit is not None
    assert limit.min_request_spacing_s == 1.0
    assert limit.reg_route == "reg"


def test_host_limit_airplanes_live() -> None:
    limit = host_limit("https://api.airplanes.live/v2")
    assert limit is not None
    assert limit.min_request_spacing_s == 1.0


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost/tar1090/data/aircraft.json", "https://adsb.fi", "not a url"]
)
def test_host_limit_unknown_hosts(url: str) -> None:
    assert host_limit(url) is None
