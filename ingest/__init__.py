"""ingest: poll ADS-B feeds for a watchlist of aircraft, store what flies over an area, query it by tail.

`__version__` is read from the installed package's metadata on first use, not at import: importlib.metadata
costs every command a few tens of milliseconds (scripts/bench_cli.py).
"""


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ingest")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
