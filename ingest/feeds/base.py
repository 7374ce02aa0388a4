"""The common feed interface: what a source asks for (FeedRequest) and how it reads the answer.

A feed adapter is pure: `requests()` builds the tick's requests from the watchlist and settings,
`parse()` turns one body into a ParseResult. The I/O lives in `transport.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ingest.config import FeedSettings
from ingest.geo import Area
from ingest.models import ParseResult
from ingest.watchlist import Watchlist


@dataclass(frozen=True, slots=True)
class FeedContext:
    """What an adapter may need besides its own settings, handed to it when it is built."""

    watchlist: Watchlist
    area: Area
    include_military: bool = False  # keep every dbFlags&1 aircraft a `mil` query finds in the area


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """One request of a tick. `url` may hold a file path; `safe_url` is what logs may show."""

    feed: str
    url: str
    safe_url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry an API key
    bearer_token_url: str = ""  # OAuth2: the fetcher adds `Authorization: Bearer <token>` from this endpoint

    @property
    def is_file(self) -> bool:
        return not self.url.startswith(("http://", "https://"))


class FeedSource(Protocol):
    """What every adapter provides."""

    name: str
    settings: FeedSettings

    @property
    def min_request_spacing_s(self) -> float:
        """Seconds to leave between two requests to this feed's host (0: no limit)."""
        ...

    def requests(self) -> list[FeedRequest]:
        """The requests one tick makes, in order."""
        ...

    def parse(self, body: bytes, received_at: datetime, source: str) -> ParseResult:
        """Read one response body; FeedFormatError when it is not the promised format."""
        ...


@runtime_checkable
class StreamFeed(Protocol):
    """A source that pushes (an SBS-1 TCP stream): read continuously, taken from at each tick."""

    name: str
    settings: FeedSettings

    def start(self) -> None:
        """Connect and read in a background thread; reconnects with backoff by itself. Never raises
        because the receiver is unreachable."""
        ...

    def stop(self) -> None:
        """Close the connection and end the thread."""
        ...

    def take(self, now: datetime) -> ParseResult:
        """The observations assembled since the last take (one per hex and position), and the lines
        rejected since then. FeedUnavailable when the stream is down (its reason says why)."""
        ...
