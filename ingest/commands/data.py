"""Recordings in and out: `ingest replay` pushes recorded responses through the pipeline; `ingest record`
saves a feed's raw responses."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ingest.app import App, build_app
from ingest.commands import fail, finish, open_store, plural, progress, settings
from ingest.errors import FeedError, IngestError
from ingest.feeds.base import StreamFeed
from ingest.lead import Shared, Solo, one_shot
from ingest.pipeline import Parse, log_rejections, replay_file
from ingest.store import Store


def cmd_replay(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    feed_name = args.feed or app.settings.replay.feed
    # A recording of a configured feed is read with that feed's own parser (ingest record names its files).
    feed = next((f for f in app.feeds if f.name == feed_name), None)
    parse = None if feed is None or isinstance(feed, StreamFeed) else feed.parse
    store = open_store(app.settings, create=True)
    errors = 0
    try:
        store.sync_watchlist(app.watchlist)
        # A replay alerts nobody unless asked (--alerts): a recording is history, not news.
        sorter = one_shot(app.settings, store, app.watchlist, alerts=args.alerts)
        for path in args.files:
            errors += _replay_one(app, store, sorter, path, feed_name, parse)
        # A recording runs on its own clock: nothing ends now.
        finish(app.settings, store, sorter, end=False, deliver=args.alerts)
    finally:
        store.close()
    return 1 if errors else 0


def _replay_one(app: App, store: Store, sorter: Solo | Shared, path: Path, feed_name: str, parse: Parse | None) -> int:
    """Replay one file and print its summary; returns 1 when it could not be read or had unreadable
    responses. Malformed records are counted and each kind logged once, as `ingest poll` does."""
    responses = aircraft = kept = stored = bad = malformed = 0
    logged: set[str] = set()
    try:
        for outcome in progress(replay_file(path, feed_name, app.selector, _utc_now, parse), path.name, "response"):
            responses += 1
            if outcome.failure is not None:
                bad += 1
                print(f"{path}: response {responses} skipped: {outcome.failure.reason}", file=sys.stderr)
                continue
            log_rejections(feed_name, outcome.rejected, logged)
            malformed += len(outcome.rejected)
            aircraft += outcome.record.aircraft
            kept += outcome.record.kept
            # A recording runs on its own clock: sorties start and end at the recorded times.
            stored += sorter.save_replayed(store, outcome)
    except IngestError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{path}: {plural(responses, 'response')}, {aircraft} aircraft, {kept} watched in area, {stored} new, "
        f"{plural(malformed, 'malformed record')}, {bad} unreadable"
    )
    return 1 if bad else 0


def cmd_record(args: argparse.Namespace) -> int:
    app = build_app(settings(args))
    feed = next((f for f in app.feeds if f.name == args.feed), None)
    if feed is None or isinstance(feed, StreamFeed):
        known = ", ".join(f.name for f in app.feeds if not isinstance(f, StreamFeed)) or "none"
        return fail(f"no enabled polled feed {args.feed!r} (known: {known})", 2)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot make the folder {args.out}: {exc.strerror or exc}")
    from ingest.feeds.transport import Fetcher

    fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
    saved = failed = 0
    try:
        for tick in range(args.count):
            if tick:
                time.sleep(feed.settings.interval_s)
            for i, req in enumerate(feed.requests()):
                if i and feed.min_request_spacing_s:
                    time.sleep(feed.min_request_spacing_s)
                name = f"{_safe_name(feed.name)}-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{tick:04d}-{i:02d}.json"
                try:
                    body = fetcher(req).body  # the body as it arrived (gzip already undone)
                except FeedError as exc:
                    failed += 1
                    print(f"{feed.name}: {req.safe_url}: {exc.reason}", file=sys.stderr)
                    continue
                try:
                    (args.out / name).write_bytes(body)
                except OSError as exc:
                    return fail(f"cannot write {args.out / name}: {exc.strerror or exc}")
                saved += 1
    finally:
        fetcher.close()
    print(f"{feed.name}: {plural(saved, 'response')} saved in {args.out}, {failed} failed; replay them with: "
          f"ingest replay --feed {feed.name} {args.out}/*.json")  # fmt: skip
    return 1 if failed else 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def cmd_demo(args: argparse.Namespace) -> int:
    """`ingest demo remove`: delete the bundled synthetic demo's data and keep `ingest run` from loading it
    again; `ingest demo status`: what of it the database holds."""
    s = settings(args)
    store = open_store(s, create=False)
    try:
        if args.action == "remove":
            sightings, sorties = store.remove_synthetic()
            print(f"removed the synthetic demo data: {plural(sorties, 'sortie')}, {plural(sightings, 'sighting')}; "
                  "ingest run will not load it again")  # fmt: skip
            return 0
        sightings, sorties = store.synthetic_counts()
        state = "removed" if store.demo_removed() else "loaded by ingest run ([replay] on_start)"
        print(f"synthetic demo data: {plural(sorties, 'sortie')}, {plural(sightings, 'sighting')}; {state}")
        return 0
    finally:
        store.close()
