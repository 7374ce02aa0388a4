"""The common feed interface: what a source asks for (FeedRequest) and how it reads the answer.

A feed adapter is pure: `requests()` builds the tick's requests from the watchlist and settings,
`parse()` turns one body into a ParseResult. The I/O lives in `transport.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ingest.config import FeedSettings
from ingest.models import ParseResult


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """One request of a tick. `url` may hold a file path; `safe_url` is what logs may show."""

    feed: str
    url: str
    safe_url: str
    headers: dict[str, str] = field(default_factory=dict)

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
