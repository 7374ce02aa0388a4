"""ingest: poll ADS-B feeds for a watchlist of aircraft, store what flies over an area, query it by tail."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ingest")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
