"""UTC time helpers: epoch conversion, ISO 8601 with `Z`, and the `--since`/`--until` WHEN syntax."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def from_epoch(ts_s: float) -> datetime:
    """A UTC datetime from Unix seconds."""
    return datetime.fromtimestamp(ts_s, tz=UTC)


def iso_z(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second unless there is a fraction."""
    when = when.astimezone(UTC)
    text = when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (a naive value is taken as UTC) or a duration before `now` such as `90m`, `24h`, `7d`."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither ISO 8601 nor a duration like 24h or 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
