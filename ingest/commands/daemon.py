"""What polls and serves: `ingest run`, `serve`, `poll`, and `check-config` (which checks what `run` would
start with)."""

from __future__ import annotations

import argparse
import sys
import time

from ingest.app import build_app
from ingest.commands import finish, open_store, plural, settings, stop_on_signals
from ingest.config import describe
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.lead import one_shot
from ingest.pipeline import FeedJob
from ingest.scheduler import run_daemon, utc_now


def cmd_run(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    http = app.settings.http
    with stop_on_signals() as stop:
        if not http.enabled:
            return run_daemon(app, stop)
        from ingest.api import ApiServer
        from ingest.metrics_prometheus import daemon_metrics

        # The daemon's counters live in this process: the API it serves shows them at /metrics.
        metrics = daemon_metrics(app.settings)
        # The API binds first: a port in use stops start-up before any poll.
        with ApiServer(
            app.settings, http.host, http.port, stale_after_s=http.stale_after_s, watchlist=app.watchlist,
            metrics=metrics.render,
        ):  # fmt: skip
            return run_daemon(app, stop, metrics=metrics)


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
        sorter = one_shot(app.settings, store, app.watchlist)
        recorded = store.feed_health(utc_now())  # a failing episode goes on across runs (cron)
        for feed in app.feeds:
            fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
            if isinstance(feed, StreamFeed):  # listen for one interval, then take what came
                feed.start()
                time.sleep(feed.settings.interval_s)
            job = FeedJob(feed, fetcher, app.selector, utc_now, time.sleep, one_shot=True)
            job.resume(recorded.get(feed.name, {}))
            try:
                outcome = job.run(force=True)
            finally:
                fetcher.close()
                if isinstance(feed, StreamFeed):
                    feed.stop()
            assert outcome is not None
            stored = sorter.save(store, outcome, utc_now())
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
        finish(app.settings, store, sorter, end=True)
    finally:
        store.close()
    if not app.feeds:
        print("no enabled feeds", file=sys.stderr)
    return 1 if failed else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    print(describe(app.settings), end="")
    from ingest.watchlist_files import load, sources

    print(f"\n# watchlist: {load(sources(app.settings)).describe()}; {len(app.watchlist.hexes()):,} hexes")
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
