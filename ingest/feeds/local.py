"""A local readsb / dump1090-fa `aircraft.json`, read from a file or fetched from a URL (feeds.md §6)."""

from __future__ import annotations

from datetime import datetime

from ingest.config import FeedSettings
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.readsb import parse_readsb
from ingest.models import ParseResult


class AircraftJsonFeed:
    """The whole `aircraft.json` of one receiver each tick; the watchlist filters it afterwards."""

    def __init__(self, settings: FeedSettings, context: FeedContext) -> None:
        watchlist = context.watchlist
        self.name = settings.name
        self.settings = settings
        self._request = FeedRequest(self.name, settings.source, settings.source)
        self._wanted = watchlist.wants  # a receiver's file holds everything it hears: build only the watched
        self._keep_military = context.include_military  # ... and, if asked, every military aircraft

    @property
    def min_request_spacing_s(self) -> float:
        return 0.0

    def requests(self) -> list[FeedRequest]:
        return [self._request]

    def parse(self, body: bytes, received_at: datetime, source: str) -> ParseResult:
        return parse_readsb(
            body, feed=self.name, received_at=received_at, source=source, wanted=self._wanted,
            keep_military=self._keep_military,
        )  # fmt: skip
