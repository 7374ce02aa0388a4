"""Every error that ingest raises on purpose; imports nothing from ingest.

IngestError
 ├── ConfigError         a bad setting: names the key and where the value came from
 ├── WatchlistError      an unreadable or malformed watchlist file
 ├── FeedError           a feed could not be polled (the url never carries a secret)
 │    ├── FeedUnavailable   timeout, refused connection, HTTP error status, 429/503, oversized body
 │    └── FeedFormatError   the body is not what the feed's format promises
 ├── ReplayError         a replay file cannot be read
 ├── StoreError          the SQLite store cannot be opened or migrated
 └── AlertError          MQTT alerts cannot be set up (an unusable TLS file, a bad topic)
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error that ingest raises on purpose."""


class ConfigError(IngestError):
    """A setting is missing, unknown or invalid."""

    def __init__(self, key: str, source: str, reason: str) -> None:
        self.key = key
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}")


class WatchlistError(IngestError):
    """The watchlist CSV cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FeedError(IngestError):
    """A feed could not be polled."""

    def __init__(self, feed: str, url: str, reason: str) -> None:
        self.feed = feed
        self.url = url
        self.reason = reason
        super().__init__(f"feed {feed}: {reason} ({url})")


class FeedUnavailable(FeedError):
    """No usable answer: network error, timeout, error status or an oversized body."""

    def __init__(
        self,
        feed: str,
        url: str,
        reason: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(feed, url, reason)


class FeedFormatError(FeedError):
    """The body is not valid JSON or not the envelope the feed promises."""

    def __init__(self, feed: str, url: str, reason: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(feed, url, reason)


class ReplayError(IngestError):
    """A replay file cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class StoreError(IngestError):
    """The SQLite store cannot be opened or migrated."""


class AlertError(IngestError):
    """MQTT alerts cannot be set up or published as asked."""
