"""What polls and serves: `ingest run`, `serve`, `poll`, and `check-config` (which checks what `run` would
start with)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ingest.app import build_app
from ingest.commands import open_store, plural, settings, stop_on_signals
from ingest.config import Settings, describe
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.pipeline import FeedJob
from ingest.scheduler import run_daemon, utc_now
from ingest.store import Store
from ingest.tracker import Tracker

DELIVER_TIMEOUT_S = 10.0
T = TypeVar("T")


def cmd_run(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    http = app.settings.http
    with stop_on_signals() as stop:
        if not http.enabled:
            return run_daemon(app, stop)
        from ingest.api import ApiServer

        # The API binds first: a port in use stops start-up before any poll.
        with ApiServer(app.settings, http.host, http.port, stale_after_s=http.stale_after_s, watchlist=app.watchlist):
            return run_daemon(app, stop)


def cmd_serve(args: argparse.Namespace) -> int:
    more = {"http.host": args.host} if args.host else {}
    if args.port:
        more["http.port"] = str(args.port)
    s = settings(args, **more)
    open_store(s, create=False).close()  # a mistyped --database is said at once, not on the first request
    from ingest.api import serve

    http = s.http
    with stop_on_signals() as stop:
        serve(s, http.host, http.port, stop, http.stale_after_s)
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    store = open_store(app.settings, create=True)
    failed = 0
    try:
        store.sync_watchlist(app.watchlist)
        tracker = Tracker(app.settings, store, watchlist=app.watchlist)
        for feed in app.feeds:
            fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
            if isinstance(feed, StreamFeed):  # listen for one interval, then take what came
                feed.start()
                time.sleep(feed.settings.interval_s)
            try:
                outcome = FeedJob(feed, fetcher, app.selector, utc_now, time.sleep, one_shot=True).run(force=True)
            finally:
                fetcher.close()
                if isinstance(feed, StreamFeed):
                    feed.stop()
            assert outcome is not None
            stored = tracker.save_poll(store, outcome, utc_now())
            r = outcome.record
            parts = [
                "FAILED" if outcome.failure else "ok", plural(r.requests, "request"), f"{r.aircraft} aircraft",
                f"{r.matched} watched", f"{r.kept} in area", f"{stored} new", f"{r.rejected} malformed",
            ]  # fmt: skip
            if r.http_status:
                parts.append(f"HTTP {r.http_status}")
            parts.append(f"{r.duration_ms} ms")
            line = f"{r.feed}: {', '.join(parts)}"
            if outcome.failure:
                failed += 1
                line += f": {outcome.failure.reason}"
            print(line)
        tracker.check(store, utc_now())
        deliver_alerts(app.settings, store)
    finally:
        store.close()
    if not app.feeds:
        print("no enabled feeds", file=sys.stderr)
    return 1 if failed else 0


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


def cmd_check_config(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    print(describe(app.settings), end="")
    print(f"\n# watchlist: {len(app.watchlist)} aircraft, {len(app.watchlist.hexes())} hexes")
    for feed in app.feeds:
        if isinstance(feed, StreamFeed):
            fs = feed.settings
            print(f"# feed {feed.name}: a stream from {fs.host}:{fs.port}, stored every {fs.interval_s:g} s")
            continue
        n = len(feed.requests())
        spacing = f", {feed.min_request_spacing_s:g} s apart" if feed.min_request_spacing_s else ""
        print(f"# feed {feed.name}: {plural(n, 'request')} every {feed.settings.interval_s:g} s{spacing}")
    print("# configuration ok")
    return 0
