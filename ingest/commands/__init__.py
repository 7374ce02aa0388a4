"""The CLI's commands, one module per theme, each imported only when one of its commands runs:

- `daemon.py`: run, serve, poll, check-config (what polls and serves);
- `data.py`: replay, record (recordings in and out);
- `query.py`: sightings, sorties, now, feeds (reading the database; never creates one);
- `output.py`: export, map (files of sorties);
- `alerts.py`: alerts status, alerts test (the alert channels).

This module holds what they share: loading the settings, logging, opening the store, progress bars,
signals, writing files atomically. Commands print; the answers come from `ingest.services` and the store.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ingest.config import Settings, load
from ingest.errors import ConfigError

if TYPE_CHECKING:
    from ingest.store import Store
    from ingest.watchlist import Watchlist

T = TypeVar("T")


def settings(args: argparse.Namespace, *, log: bool = True, **more: str) -> Settings:
    """The configuration: the file, the environment, then --set, --database and --log-level (and `more`,
    a command's own flags such as serve's --host). `log=False` (the quick read commands, which log nothing
    of their own) leaves the logging module unloaded: it costs a read command a tenth of its time."""
    overrides: dict[str, str] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # Not repeated: a mistyped secret would otherwise be printed.
            raise ConfigError("--set", "the command line", "each --set must look like section.key=value")
        overrides[key.strip()] = value
    if args.database is not None:
        # A URL names a PostgreSQL database, anything else a SQLite file.
        key = "database.url" if "://" in args.database and not args.database.startswith("sqlite:") else "database.path"
        overrides[key] = args.database.removeprefix("sqlite:///") if key == "database.path" else args.database
    if args.log_level:
        overrides["daemon.log_level"] = args.log_level
    overrides.update(more)
    loaded = load(args.config, overrides=overrides)
    if log or args.debug or args.log_level:
        setup_logging(loaded.daemon.log_level)
    return loaded


def setup_logging(level: str) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime  # UTC everywhere
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ingest", False):
            root.removeHandler(old)
    handler._ingest = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler warns on every tick a slow poll makes it skip, and on missed runs; the daemon's own job
    # listener reports those (scheduler.py), and the feed's failure is what the user needs to see.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))


def open_store(s: Settings, *, create: bool) -> Store:
    """The database; read commands pass create=False, so a mistyped path is an error, not an empty file."""
    from ingest.store import open_configured

    return open_configured(s.database, create=create)


def watchlist_loader(s: Settings) -> Callable[[], Watchlist]:
    """Loads the watchlist once, when first asked: read commands need it only for an aircraft never seen."""
    cache: list[Watchlist] = []

    def load_once() -> Watchlist:
        if not cache:
            from ingest.errors import WatchlistError
            from ingest.watchlist import load_watchlist

            try:
                cache.append(load_watchlist(s.watchlist.path))
            except WatchlistError as exc:
                raise ConfigError("watchlist.path", s.source_of("watchlist.path"), str(exc)) from exc
        return cache[0]

    return load_once


def progress(items: Iterable[T], desc: str, unit: str) -> Iterable[T]:
    """A progress bar on stderr when it is a terminal; silent (the plain iterable's speed) otherwise."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, file=sys.stderr)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT while the block runs; the old handlers come back after it."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path` (mode from the umask), flush it to disk, rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def plural(n: int, word: str) -> str:
    """`1 sortie`, `2 sorties`, `0 sightings`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fail(message: str, code: int = 1) -> int:
    """One line on stderr, and the exit code to return."""
    print(f"ingest: error: {message}", file=sys.stderr)
    return code
