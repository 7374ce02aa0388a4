"""UTC time helpers: epoch conversion, ISO 8601 with `Z`, and the `--since`/`--until` WHEN syntax."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The Unix times a datetime can hold: 0001-01-01T00:00:00Z up to (not including) year 10000.
EPOCH_MIN_S = -62_135_596_800.0
EPOCH_END_S = 253_402_300_800.0


def from_epoch(ts_s: float) -> datetime:
    """A UTC datetime from Unix seconds.

    ValueError, and only ValueError, for a value no datetime can hold: NaN, an infinity, or a time before
    year 1 or from year 10000 on. `datetime.fromtimestamp` alone raises ValueError, OverflowError or OSError
    depending on the value and the platform's time_t, so callers could not catch one type.
    """
    if not (math.isfinite(ts_s) and EPOCH_MIN_S <= ts_s < EPOCH_END_S):
        raise ValueError(f"{ts_s!r} s is not a Unix time between year 1 and 9999")
    try:
        return datetime.fromtimestamp(ts_s, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:  # rounding up into year 10000; a narrow time_t
        raise ValueError(f"{ts_s!r} s is not a Unix time this platform can convert: {exc}") from None


def iso_z(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second unless there is a fraction."""
    when = when.astimezone(UTC)
    text = when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (a naive value is taken as UTC) or a duration before `now` such as `90m`, `24h`, `7d`.
    ValueError for anything else; "... is out of range" for a duration or offset that leaves years 1-9999
    (api.py and cli.py show the message as it is)."""
    match = _DURATION.match(text)
    if match:
        try:
            return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
        except OverflowError:
            raise ValueError(f"{text[:40]!r} is out of range") from None  # before year 1
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither ISO 8601 nor a duration like 24h or 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text[:40]!r} is out of range") from None


RETRY_AFTER_MAX_S = 6 * 3600.0  # a Retry-After beyond this is taken as this


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds (feeds and webhooks): delta-seconds or an HTTP date, at most
    RETRY_AFTER_MAX_S; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for a date: every command imports this module

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)
