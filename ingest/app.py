"""Builds what every command needs from Settings, validating everything before anything starts."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.config import Settings, check_channel_urls
from ingest.feeds import Feed, build_feeds
from ingest.geo import Area, Projector
from ingest.pipeline import Selector
from ingest.watchlist import Watchlist
from ingest.watchlist_files import load_effective


@dataclass(frozen=True)
class App:
    """The validated, wired core: watchlist, area, projection and feeds."""

    settings: Settings
    watchlist: Watchlist
    area: Area
    projector: Projector
    selector: Selector
    feeds: tuple[Feed, ...]


def build_app(settings: Settings, watchlist: Watchlist | None = None) -> App:
    """Load the watchlist (the bundled list or yours, with your edits: watchlist_files.py) unless given, and
    build the feeds; ConfigError names the key and its source on failure."""
    if watchlist is None:
        watchlist = load_effective(settings)
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


def rewire(app: App, watchlist: Watchlist) -> App:
    """`app` watching another list: new feeds (their request plans come from the list) and selector, the
    same settings, area and projection. ConfigError when a feed's interval is too short for the new list."""
    feeds = tuple(build_feeds(app.settings, watchlist, app.area))
    selector = Selector(watchlist, app.projector, app.area, app.settings.watchlist.include_military)
    return App(app.settings, watchlist, app.area, app.projector, selector, feeds)
