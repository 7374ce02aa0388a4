"""Builds what every command needs from Settings, validating everything before anything starts."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.config import Settings, check_channel_urls
from ingest.errors import ConfigError, WatchlistError
from ingest.feeds import Feed, build_feeds
from ingest.geo import Area, Projector
from ingest.pipeline import Selector
from ingest.watchlist import Watchlist, load_watchlist


@dataclass(frozen=True)
class App:
    """The validated, wired core: watchlist, area, projection and feeds."""

    settings: Settings
    watchlist: Watchlist
    area: Area
    projector: Projector
    selector: Selector
    feeds: tuple[Feed, ...]


def build_app(settings: Settings) -> App:
    """Load the watchlist and build the feeds; ConfigError names the key and its source on failure."""
    try:
        watchlist = load_watchlist(settings.watchlist.path)
    except WatchlistError as exc:
        raise ConfigError("watchlist.path", settings.source_of("watchlist.path"), str(exc)) from exc
    if not len(watchlist):
        raise ConfigError("watchlist.path", settings.source_of("watchlist.path"), "the watchlist has no aircraft")
    a = settings.area
    area = Area(a.name, a.south, a.west, a.north, a.east)
    projector = Projector(a.crs)
    feeds = tuple(build_feeds(settings, watchlist, area))
    check_channel_urls(settings)
    if any(c.kind == "apprise" for c in settings.channels()):
        from ingest.alerts.channels.apprise import check_urls  # Apprise loads only for an apprise channel

        for channel in settings.channels():
            if channel.kind == "apprise":
                check_urls(channel)
    selector = Selector(watchlist, projector, area, settings.watchlist.include_military)
    return App(settings, watchlist, area, projector, selector, feeds)
