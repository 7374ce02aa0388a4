"""The CLI's commands, one module per theme, each imported only when one of its commands runs:

- `daemon.py`: run, serve, poll, check-config (what polls and serves);
- `data.py`: replay, record (recordings in and out);
- `query.py`: sightings, sorties, now, feeds (reading the database; never creates one);
- `output.py`: export, map (files of sorties);
- `health.py`: health (the Docker HEALTHCHECK).
- `alerts.py`: alerts status, alerts test (the alert channels).

This module holds what they share: loading the settings, logging, opening the store, progress bars,
signals, writing files atomically. Commands print; the answers come from `ingest.services` and the store.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from ingest.config import Settings, load
from ingest.errors import ConfigError
from ingest.fileio import write_atomic as write_atomic  # output.py writes exports and maps with it

if TYPE_CHECKING:
    from ingest.lead import Shared, Solo
    from ingest.store import Store
    from ingest.watchlist import Watchlist

T = TypeVar("T")


def settings(args: argparse.Namespace, *, log: bool = True, **more: str) -> Settings:
    """The configuration: the file, the environment, then --set, --database, --log-level and --log-format (and `more`,
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
        # A URL (postgresql://..., sqlite:///path) is checked as [database] url is; anything else is a file.
        overrides["database.url" if "://" in args.database else "database.path"] = args.database
    if args.log_level:
        overrides["daemon.log_level"] = args.log_level
    if args.log_format:
        overrides["daemon.log_format"] = args.log_format
    overrides.update(more)
    loaded = load(args.config, overrides=overrides)
    if log or args.debug or args.log_level or args.log_format:
        setup_logging(loaded.daemon.log_level, loaded.daemon.log_format)
    return loaded


def setup_logging(level: str, log_format: str = "text") -> None:
    from ingest.logs import setup  # the logging module: only commands that log pay for it

    setup(level, log_format)


def open_store(s: Settings, *, create: bool) -> Store:
    """The database; read commands pass create=False, so a mistyped path is an error, not an empty file."""
    from ingest.store import open_configured

    return open_configured(s.database, create=create)


def watchlist_loader(s: Settings) -> Callable[[], Watchlist]:
    """Loads the watchlist once, when first asked: read commands need it only for an aircraft never seen."""
    cache: list[Watchlist] = []

    def load_once() -> Watchlist:
        if not cache:
            from ingest.watchlist_files import load_effective

            cache.append(load_effective(s))
        return cache[0]

    return load_once


def progress(items: Iterable[T], desc: str, unit: str) -> Iterable[T]:
    """A progress bar on stderr when it is a terminal; silent (the plain iterable's speed) otherwise."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, file=sys.stderr)


class Bar(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> None: ...


class _NoBar:
    def update(self, n: int) -> None:
        """No bar: standard error is not a terminal."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(total: int, desc: str, unit: str) -> Bar:
    """A progress bar of `total` units on stderr when it is a terminal (for work that is no iterable)."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    bar: Bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=sys.stderr)
    return bar


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT while the block runs; the old handlers come back after it."""
    stop = threading.Event()
    import signal  # only the commands that run until stopped need it

    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def plural(n: int, word: str) -> str:
    """`1 sortie`, `2 sorties`, `0 sightings`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fail(message: str, code: int = 1) -> int:
    """One line on stderr, and the exit code to return."""
    print(f"ingest: error: {message}", file=sys.stderr)
    return code


DELIVER_TIMEOUT_S = 10.0  # how long a one-shot command waits for the broker to take its alerts


def finish(s: Settings, store: Store, sorter: Solo | Shared, *, end: bool, deliver: bool = True) -> None:
    """After a one-shot command's polls: detect their sorties (ending those due now, with `end`) and, with
    `deliver`, deliver the alerts. On a database that daemons share, the leading daemon does both when one
    runs."""
    sorter.check(store, datetime.now(UTC), end=end)
    if not sorter.leading:
        print("sorties: the leading daemon on this database detects them and delivers the alerts")
    elif deliver:
        deliver_alerts(s, store)
    sorter.close(store)


def deliver_alerts(s: Settings, store: Store) -> None:
    """One-shot commands deliver what the outbox holds, every channel at once, for at most a few seconds
    before they exit; what is left waits in the outbox for the daemon or the next command."""
    if not s.channels():
        return
    waiting, _ = store.outbox_counts()
    if not waiting:
        return
    from ingest.alerts.delivery import deliver
    from ingest.store import open_configured

    shared = open_configured(s.database, create=True, shared=True)  # the channels' own connection
    try:
        summary = deliver(s, locked_access(shared), DELIVER_TIMEOUT_S)
    finally:
        shared.close()
    waiting = store.outbox_counts()[0]
    done = ", ".join(f"{name} {n}" for name, n in summary.delivered.items() if n) or "none"
    line = f"alerts delivered: {done}"
    if waiting:
        why = "; ".join(f"{name}: {reason}" for name, reason in summary.failures.items())
        line += f"; {waiting} wait in the outbox" + (f" ({why})" if why else "")
    print(line)


def locked_access(store: Store) -> Callable[[Callable[[Store], T]], T]:
    """The alert channels' way to the store in a one-shot command (alerts/outbox.py StoreAccess): one thread at
    a time, on a store opened `shared`."""
    lock = threading.Lock()

    def access(fn: Callable[[Store], T]) -> T:
        with lock:
            return fn(store)

    return access
