"""Feed adapters, registered by `kind`, and `build_feeds()` which checks them against the config.

A new feed is one module with a class that satisfies `FeedSource` (base.py), registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from ingest.config import FeedSettings, Settings
from ingest.errors import ConfigError
from ingest.feeds.adsbx import AdsbxFeed
from ingest.feeds.airplaneslive import AirplanesLiveFeed
from ingest.feeds.base import FeedContext, FeedRequest, FeedSource, StreamFeed
from ingest.feeds.local import AircraftJsonFeed
from ingest.feeds.opensky import OpenSkyFeed, check_opensky
from ingest.feeds.readsb import FeedSettingError, ReadsbV2Feed
from ingest.feeds.sbs_stream import SbsFeed
from ingest.geo import Area
from ingest.watchlist import Watchlist

__all__ = ["FEEDS", "Feed", "FeedContext", "FeedRequest", "FeedSource", "StreamFeed", "build_feeds"]

Feed = FeedSource | StreamFeed

FEEDS: dict[str, Callable[[FeedSettings, FeedContext], Feed]] = {
    "readsb-v2": ReadsbV2Feed,
    "adsbx": AdsbxFeed,
    "airplanes-live": AirplanesLiveFeed,
    "aircraft-json": AircraftJsonFeed,
    "opensky": OpenSkyFeed,
    "sbs": SbsFeed,
}


def build_feeds(settings: Settings, watchlist: Watchlist, area: Area) -> list[Feed]:
    """The enabled feeds; ConfigError for an unknown kind, a missing URL or a too-short interval."""
    context = FeedContext(watchlist, area, settings.watchlist.include_military)
    feeds = []
    for fs in settings.feeds:
        _check_target(settings, fs)
        if not fs.enabled:
            continue
        try:
            feed = FEEDS[fs.kind](fs, context)
        except ConfigError as exc:  # the adapter knows the key, the settings know where its value came from
            raise ConfigError(exc.key, settings.source_of(exc.key), exc.reason) from None
        except FeedSettingError as exc:
            dotted = settings.feed_key(fs, exc.key)
            raise ConfigError(dotted, settings.source_of(dotted), exc.reason) from None
        _check_rate(settings, fs, feed)
        check_opensky(settings, fs, feed)  # OpenSky: queries, URLs, client id/secret, daily credits
        feeds.append(feed)
    return feeds


def _check_target(settings: Settings, fs: FeedSettings) -> None:
    def fail(key: str, reason: str) -> ConfigError:
        dotted = settings.feed_key(fs, key)
        return ConfigError(dotted, settings.source_of(dotted), reason)

    if fs.kind not in FEEDS:
        raise fail("kind", f"unknown feed kind {fs.kind!r}; known: {', '.join(sorted(FEEDS))}")
    if fs.kind == "readsb-v2":
        parts = urlsplit(fs.base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise fail("base_url", f"must be an http(s) URL (everything before /v2/), not {fs.base_url!r}")
        if "/v2/" in parts.path.rstrip("/") + "/":
            raise fail("base_url", "must stop before /v2/ (e.g. https://api.adsb.lol)")
    if fs.kind == "aircraft-json" and not fs.source:
        raise fail("source", "aircraft-json needs a file path or an http(s) URL")


def _check_rate(settings: Settings, fs: FeedSettings, feed: Feed) -> None:
    """Refuse an interval that would break the host's published limit with this watchlist's requests."""
    if isinstance(feed, StreamFeed):
        return
    spacing_s = feed.min_request_spacing_s
    needed_s = spacing_s * len(feed.requests())
    if spacing_s and fs.interval_s < needed_s:
        dotted = settings.feed_key(fs, "interval_s")
        raise ConfigError(
            dotted,
            settings.source_of(dotted),
            f"{fs.interval_s:g} s is too short: {len(feed.requests())} requests per tick at "
            f"{spacing_s:g} s apart need at least {needed_s:g} s for this host",
        )
