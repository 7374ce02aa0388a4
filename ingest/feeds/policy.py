"""Per-feed pacing, pure: when a feed may be polled again after a success or a failure.

- A failure is retried on the next tick; repeated failures back off exponentially up to a cap.
- A Retry-After (429/503) is honoured in full (feeds.md §0; adsb.fi sends 429 without one, §1.2).
- 401/403 mean access was refused: the feed is parked for an hour (airplanes.live since 2026, §3.2).
The caller owns the clock: every method takes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_BACKOFF_S = 300.0
FORBIDDEN_PARK_S = 3600.0
_MAX_DOUBLINGS = 30
PARKED_AFTER_S = 120.0  # a feed told to wait longer than this (or 4 ticks) is shown as parked


@dataclass(slots=True)
class Pacing:
    """The state of one feed: healthy, or degraded since a time for a reason."""

    interval_s: float
    failures: int = 0
    next_allowed_at: datetime | None = None
    degraded_since: datetime | None = None
    last_reason: str | None = None

    def resume(self, failures: int, degraded_since: datetime | None, reason: str | None) -> None:
        """Take up an episode a previous run recorded (the feed failed `failures` times in a row since
        `degraded_since`): a restart does not start the count of failures in a row again. The next poll
        is not delayed: a restart (a fixed key, say) deserves a try at once."""
        if failures > 0 and self.failures == 0:
            self.failures = failures
            self.degraded_since = degraded_since
            self.last_reason = reason

    def ready(self, now: datetime) -> bool:
        return self.next_allowed_at is None or now >= self.next_allowed_at

    def on_success(self) -> int:
        """Back to healthy; returns how many polls had failed in a row."""
        failed = self.failures
        self.failures = 0
        self.next_allowed_at = None
        self.degraded_since = None
        self.last_reason = None
        return failed

    def on_failure(self, now: datetime, reason: str, status: int | None, retry_after_s: float | None) -> float:
        """Record a failed poll; returns the seconds until the feed may be polled again."""
        self.failures += 1
        if self.degraded_since is None:
            self.degraded_since = now
        self.last_reason = reason
        # The first failure waits one tick; then 2, 4, 8 ... ticks, capped (the exponent too: 2.0 ** 1024
        # overflows after a few days of outage).
        backoff_s = min(
            self.interval_s * 2.0 ** min(self.failures - 1, _MAX_DOUBLINGS), max(MAX_BACKOFF_S, self.interval_s)
        )
        # A tick that fires a little early (jitter) must still find the feed ready: 10 % of slack. A wait
        # the server asked for, or a 403 park, is kept in full.
        wait_s = backoff_s - 0.1 * self.interval_s
        if status in (401, 403):
            wait_s = max(wait_s, FORBIDDEN_PARK_S)
        if retry_after_s is not None:
            wait_s = max(wait_s, retry_after_s)
        self.next_allowed_at = now + timedelta(seconds=wait_s)
        return max(wait_s, backoff_s)

    def state(self, now: datetime) -> str:
        """ok; degraded (failing, retried within a few ticks); parked (a 403, a long Retry-After)."""
        if self.failures == 0:
            return "ok"
        waiting_s = (self.next_allowed_at - now).total_seconds() if self.next_allowed_at else 0.0
        return "parked" if waiting_s > max(PARKED_AFTER_S, 4 * self.interval_s) else "degraded"

    @property
    def new_episode(self) -> bool:
        """True right after the first failure of a degraded episode: the one to log loudly."""
        return self.failures == 1
