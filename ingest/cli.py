"""The `ingest` command line: argparse over the library, one function per subcommand.

Exit codes: 0 ok; 1 runtime error (a feed failed in `poll`, an unknown tail, an unreadable replay);
2 usage or configuration error. An IngestError becomes one line on stderr; --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from ingest import __version__
from ingest.api import ApiServer, serve
from ingest.app import App, build_app
from ingest.config import Settings, describe, load
from ingest.detect.base import Happening
from ingest.errors import ConfigError, FeedError, IngestError
from ingest.export import FORMATS, render, sortie_id
from ingest.feeds.base import StreamFeed
from ingest.feeds.transport import Fetcher
from ingest.models import Sortie
from ingest.pipeline import FeedJob, Parse, replay_file
from ingest.scheduler import deliver_pending, run_daemon, utc_now
from ingest.services import daemon_status, latest_positions
from ingest.store import SIGHTING_FIELDS, Store
from ingest.timeutil import iso_z, parse_when
from ingest.tracker import Tracker
from ingest.views import SORTIE_FIELDS, feed_row, feeds_table, now_table, sightings_table, sortie_dict, sorties_table
from ingest.watchlist import normalise_registration

log = logging.getLogger("ingest")
T = TypeVar("T")

_DELIVER_TIMEOUT_S = 10.0

EPILOG = """\
configuration: --config PATH, else $INGEST_CONFIG, else config/ingest.toml (relative paths in it are
relative to the working directory). Any key can be overridden by INGEST_<SECTION>_<KEY> variables
(INGEST_FEEDS_<NAME>_<KEY> for a feed) and by --set section.key=value.

exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.
"""


def _when(text: str) -> datetime:
    """--since/--until: ISO 8601, or a duration before now."""
    try:
        return parse_when(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    """--limit: 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def progress(items: Iterable[T], desc: str, unit: str) -> Iterable[T]:
    """A progress bar on stderr when it is a terminal; silent (the plain iterable's speed) otherwise."""
    return tqdm(items, desc=desc, unit=unit, leave=False, file=sys.stderr, disable=not sys.stderr.isatty())


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file (default: $INGEST_CONFIG or config/ingest.toml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting, e.g. --set database.path=/tmp/x.db or --set feeds.adsb.lol.interval_s=30",
    )  # fmt: skip
    p.add_argument("--database", type=Path, help="SQLite file (same as --set database.path=...)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override daemon.log_level")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_sortie_choice(p: argparse.ArgumentParser) -> None:
    """`export` and `map` take a sortie id, or a TAIL with --since."""
    p.add_argument(
        "target", metavar="SORTIE_ID|TAIL",
        help="a sortie id (ae01d2-20261120T225558Z), or a registration or ICAO hex with --since",
    )  # fmt: skip
    p.add_argument("--since", type=_when, metavar="WHEN",
                   help="with TAIL: its sorties that started since: ISO 8601 or a duration (24h, 7d)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Poll ADS-B feeds for a watchlist of aircraft, keep what flies over the area, query it by tail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        _add_common(p)
        p.set_defaults(func=fn)
        return p

    command("run", "Run the daemon in the foreground until SIGTERM or SIGINT.", cmd_run)
    command("serve", "Serve the read-only HTTP API ([http] host and port) until SIGTERM or SIGINT.", cmd_serve)
    command("poll", "Poll every enabled feed once, store the result, print a line per feed and exit.", cmd_poll)
    p = command("replay", "Push recorded feed responses through the pipeline, in file order.", cmd_replay)
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE",
        help="readsb-v2 / aircraft.json responses: .json, or .ndjson/.jsonl with one per line; .gz ok",
    )  # fmt: skip
    p.add_argument(
        "--feed", help="feed name stored with the sightings (default: replay.feed); a configured feed's name "
        "also selects its parser, e.g. for an OpenSky recording",
    )  # fmt: skip
    p = command("sightings", "Print the stored sightings of one aircraft, oldest first.", cmd_sightings)
    p.add_argument("tail", metavar="TAIL", help="registration (any case, e.g. 62-4125) or ICAO hex (e.g. ae01d2)")
    p.add_argument("--since", type=_when, metavar="WHEN", help="ISO 8601 time or a duration before now: 90m, 24h, 7d")
    p.add_argument("--until", type=_when, metavar="WHEN", help="ISO 8601 time or a duration before now")
    p.add_argument("--limit", type=_count, default=1000, metavar="N",
                   help="at most the N latest sightings (default 1000; 0 for all)")  # fmt: skip
    p.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output format")
    p = command("sorties", "Print sorties, one row each, oldest first.", cmd_sorties)
    p.add_argument("tail", metavar="TAIL", nargs="?", help="registration or ICAO hex (default: every aircraft)")
    p.add_argument(
        "--since", type=_when, metavar="WHEN", help="sorties that started since: ISO 8601 or a duration (24h, 7d)"
    )
    p.add_argument("--open", action="store_true", help="only sorties still in progress")
    p.add_argument(
        "--limit", type=_count, default=100, metavar="N", help="at most the N latest (default 100; 0 for all)"
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output format")
    p = command("export", "Write sorties with their sightings as GeoJSON, KML, CSV or GPX.", cmd_export)
    _add_sortie_choice(p)
    p.add_argument("--format", choices=FORMATS, default="geojson",
                   help="geojson (default), kml, csv or gpx; altitudes in metres, 0 on the ground")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write FILE (atomically) instead of stdout")
    p = command("map", "Draw sorties over the coastline, coloured by altitude, as a PNG or SVG picture.", cmd_map)
    _add_sortie_choice(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="the picture, written atomically: FILE.png (1600x1200) or FILE.svg")  # fmt: skip
    p = command("record", "Save a feed's raw responses as received, for fixtures and replays.", cmd_record)
    p.add_argument("--feed", required=True, metavar="NAME", help="a configured feed (not an SBS stream)")
    p.add_argument("--count", type=_count, default=1, metavar="N", help="ticks to record, interval_s apart (default 1)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the files (created)")
    p = command("now", "Print the latest position of every watched aircraft seen in the last hour, open sorties first.",
                cmd_now)  # fmt: skip
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    p = command("feeds", "Show each feed's health: state, last success, last error, the last hour's polls.", cmd_feeds)
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    command("check-config", "Validate the configuration and print the effective settings (secrets masked).",
            cmd_check_config)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except IngestError as exc:
        code = 2 if isinstance(exc, ConfigError) else 1
        if args.debug:
            log.exception("error")
        print(f"ingest: error: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, str] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "--set", "must look like section.key=value")
        overrides[key.strip()] = value
    if args.database is not None:
        overrides["database.path"] = str(args.database)
    if args.log_level:
        overrides["daemon.log_level"] = args.log_level
    settings = load(args.config, overrides=overrides)
    _setup_logging(settings.daemon.log_level)
    return settings


def _setup_logging(level: str) -> None:
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
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT while the block runs; the old handlers come back after it."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_run(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    http = app.settings.http
    with _stop_on_signals() as stop:
        if not http.enabled:
            return run_daemon(app, stop)
        # The API binds first: a port in use stops start-up before any poll.
        with ApiServer(app.settings, http.host, http.port, stale_after_s=http.stale_after_s, watchlist=app.watchlist):
            return run_daemon(app, stop)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    http = settings.http
    with _stop_on_signals() as stop:
        serve(settings, http.host, http.port, stop, http.stale_after_s)
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    store = Store(app.settings.database.path)
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
                outcome = FeedJob(feed, fetcher, app.selector, utc_now, time.sleep).run(force=True)
            finally:
                fetcher.close()
                if isinstance(feed, StreamFeed):
                    feed.stop()
            assert outcome is not None
            stored = tracker.save_poll(store, outcome, utc_now())
            r = outcome.record
            status = f"HTTP {r.http_status}" if r.http_status else "no answer"
            line = (
                f"{r.feed}: {'FAILED' if outcome.failure else 'ok'}, {r.requests} requests, "
                f"{r.aircraft} aircraft, {r.matched} watched, {r.kept} in area, {stored} new, "
                f"{r.rejected} malformed, {status}, {r.duration_ms} ms"
            )
            if outcome.failure:
                failed += 1
                line += f": {outcome.failure.reason}"
            print(line)
        tracker.check(store, utc_now())
        _deliver_alerts(app.settings, store)
    finally:
        store.close()
    if not app.feeds:
        print("no enabled feeds", file=sys.stderr)
    return 1 if failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    feed_name = args.feed or app.settings.replay.feed
    # A recording of a configured feed is read with that feed's own parser (ingest record names its files).
    feed = next((f for f in app.feeds if f.name == feed_name), None)
    parse = None if feed is None or isinstance(feed, StreamFeed) else feed.parse
    store = Store(app.settings.database.path)
    errors = 0
    try:
        store.sync_watchlist(app.watchlist)
        tracker = Tracker(app.settings, store, watchlist=app.watchlist)
        for path in args.files:
            errors += _replay_one(app, store, tracker, path, feed_name, parse)
        _deliver_alerts(app.settings, store)
    finally:
        store.close()
    return 1 if errors else 0


def _replay_one(app: App, store: Store, tracker: Tracker, path: Path, feed_name: str, parse: Parse | None) -> int:
    """Replay one file and print its summary; returns 1 when it could not be read or had bad responses."""
    responses = aircraft = kept = stored = bad = 0
    try:
        for outcome in progress(replay_file(path, feed_name, app.selector, utc_now, parse), path.name, "response"):
            responses += 1
            if outcome.failure is not None:
                bad += 1
                print(f"{path}: response {responses} skipped: {outcome.failure.reason}", file=sys.stderr)
                continue
            aircraft += outcome.record.aircraft
            kept += outcome.record.kept
            # A recording runs on its own clock: sorties start and end at the recorded times.
            stored += tracker.save_poll(store, outcome, outcome.record.started_at)
            tracker.check(store, outcome.record.started_at)
    except IngestError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {responses} responses, {aircraft} aircraft, {kept} watched in area, {stored} new, {bad} unreadable")
    return 1 if bad else 0


def cmd_sightings(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    store = Store(app.settings.database.path)
    try:
        aircraft = store.find_aircraft(args.tail)
        hexes: tuple[str, ...]
        if aircraft is not None:
            hexes, label = aircraft.hexes, aircraft.registration or aircraft.key
        else:
            entry = app.watchlist.by_registration(args.tail) or app.watchlist.by_hex(args.tail.strip())
            if entry is None:
                print(
                    f"ingest: unknown tail {args.tail!r}: not in the watchlist and never seen",
                    file=sys.stderr,
                )
                return 1
            hexes, label = entry.hexes, entry.key
        rows = store.sightings(hexes, args.since, args.until, args.limit or None)
    finally:
        store.close()
    _print_sightings(rows, args.format, label)
    return 0


def _print_sightings(rows: list[dict[str, Any]], fmt: str, label: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=1))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SIGHTING_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif not rows:
        print(f"no sightings of {label} in that period", file=sys.stderr)
    else:
        print(sightings_table(rows))


def _deliver_alerts(settings: Settings, store: Store) -> None:
    """One-shot commands publish what the outbox holds before they exit, for at most a few seconds."""
    if not settings.mqtt.enabled:
        return
    unsent, _ = store.outbox_counts()
    if not unsent:
        return
    sent = deliver_pending(settings, store, utc_now, timeout_s=_DELIVER_TIMEOUT_S)
    waiting = store.outbox_counts()[0]
    print(f"alerts: {sent} published" + (f", {waiting} wait in the outbox for the broker" if waiting else ""))


def cmd_sorties(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    store = Store(app.settings.database.path)
    try:
        keys: list[str] | None = None
        if args.tail:
            key = _aircraft_key(app, store, args.tail)
            if key is None:
                print(f"ingest: unknown tail {args.tail!r}: not in the watchlist and never seen", file=sys.stderr)
                return 1
            keys = [key]
        found = store.sorties(keys, args.since, args.open, args.limit or None)
        happenings = store.happenings([s.sortie_id for s in found])
        rows = [sortie_dict(s, happenings) for s in found]
    finally:
        store.close()
    _print_sorties(rows, args.format)
    return 0


def _aircraft_key(app: App, store: Store, tail: str) -> str | None:
    """The key sorties are stored under, from the store (learnt hexes included) or the watchlist."""
    aircraft = store.find_aircraft(tail)
    if aircraft is not None:
        return aircraft.key
    entry = app.watchlist.by_registration(tail) or app.watchlist.by_hex(tail.strip())
    return normalise_registration(entry.key) if entry is not None else None


def _flat_sortie(row: dict[str, Any]) -> dict[str, Any]:
    """A sortie for CSV: callsigns space-separated, airports by code, events as `kind/n` ids."""
    return {
        **row,
        "callsigns": " ".join(row["callsigns"]),
        "took_off_from": (row["took_off_from"] or {}).get("code"),
        "landed_at": (row["landed_at"] or {}).get("code"),
        "events": " ".join(e["kind"] + "/" + str(e["n"]) for e in row["events"]),
    }


def _print_sorties(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=1))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SORTIE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_flat_sortie(r) for r in rows)
    elif not rows:
        print("no sorties in that period", file=sys.stderr)
    else:
        print(sorties_table(rows))


Tracks = list[tuple[Sortie, list[dict[str, Any]]]]


def _tracks(args: argparse.Namespace) -> tuple[App, Tracks, str, list[Happening]] | int:
    """The sorties that `export` and `map` were asked for (a sortie id, or a TAIL with --since), each with its
    track, and a subject line; or the exit code after a message (2 misuse, 1 unknown sortie or tail)."""
    wanted = sortie_id(args.target)
    if (wanted is None) == (args.since is None):
        reason = "--since goes with a TAIL, not with a sortie id" if wanted else "a TAIL needs --since WHEN"
        print(f"ingest: error: {args.target!r}: {reason}", file=sys.stderr)
        return 2
    app = build_app(_settings(args))
    store = Store(app.settings.database.path)
    try:
        if wanted is not None:
            found = store.sortie(wanted)
            if found is None:
                print(f"ingest: unknown sortie {wanted!r}", file=sys.stderr)
                return 1
            sorties, subject = [found], wanted
        else:
            key = _aircraft_key(app, store, args.target)
            if key is None:
                print(f"ingest: unknown tail {args.target!r}: not in the watchlist and never seen", file=sys.stderr)
                return 1
            sorties, subject = store.sorties([key], args.since), f"{key} since {iso_z(args.since)}"
            if not sorties:
                print(f"no sorties of {args.target} since {iso_z(args.since)}", file=sys.stderr)
        tracks = [(s, store.track(s)) for s in progress(sorties, "tracks", "sortie")]
        return app, tracks, subject, store.happenings([s.sortie_id for s in sorties])
    finally:
        store.close()


def _write_output(path: Path, data: bytes, fmt: str, tracks: Tracks) -> int:
    try:
        _write_atomic(path, data)
    except OSError as exc:
        print(f"ingest: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    points = sum(len(rows) for _, rows in tracks)
    print(f"{path}: {fmt}, {len(tracks)} sorties, {points} sightings")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    selected = _tracks(args)
    if isinstance(selected, int):
        return selected
    _, tracks, _, _ = selected
    text = render(args.format, tracks, SIGHTING_FIELDS)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    return _write_output(args.output, text.encode(), args.format, tracks)


def cmd_map(args: argparse.Namespace) -> int:
    from ingest.mapping import MAP_FORMATS, map_format, render_map  # matplotlib loads only for this command

    fmt = map_format(args.output)
    if fmt is None:
        known = " or ".join(f".{f}" for f in MAP_FORMATS)
        print(f"ingest: error: {args.output}: the picture's name must end in {known}", file=sys.stderr)
        return 2
    selected = _tracks(args)
    if isinstance(selected, int):
        return selected
    app, tracks, subject, happenings = selected
    picture = render_map(tracks, app.area, app.projector, fmt, subject=subject, happenings=happenings)
    return _write_output(args.output, picture, fmt, tracks)


def _write_atomic(path: Path, data: bytes) -> None:
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


def cmd_record(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    feed = next((f for f in app.feeds if f.name == args.feed), None)
    if feed is None or isinstance(feed, StreamFeed):
        known = ", ".join(f.name for f in app.feeds if not isinstance(f, StreamFeed)) or "none"
        print(f"ingest: error: no enabled polled feed {args.feed!r} (known: {known})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(feed.settings, app.settings.daemon.user_agent)
    saved = failed = 0
    try:
        for tick in range(args.count):
            if tick:
                time.sleep(feed.settings.interval_s)
            for i, req in enumerate(feed.requests()):
                if i and feed.min_request_spacing_s:
                    time.sleep(feed.min_request_spacing_s)
                path = (
                    args.out / f"{_safe_name(feed.name)}-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{tick:04d}-{i:02d}.json"
                )
                try:
                    path.write_bytes(fetcher(req).body)  # the body as it arrived (gzip already undone)
                    saved += 1
                except FeedError as exc:
                    failed += 1
                    print(f"{feed.name}: {req.safe_url}: {exc.reason}", file=sys.stderr)
    finally:
        fetcher.close()
    print(f"{feed.name}: {saved} responses saved in {args.out}, {failed} failed; replay them with: "
          f"ingest replay --feed {feed.name} {args.out}/*.json")  # fmt: skip
    return 1 if failed else 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


FEED_HEALTH_WINDOW = timedelta(hours=1)


def cmd_feeds(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    store = Store(app.settings.database.path)
    now = datetime.now(UTC)
    try:
        health = store.feed_health(now - FEED_HEALTH_WINDOW)
        daemon = daemon_status(store, now)
    finally:
        store.close()
    rows = [feed_row(fs, health.get(fs.name, {})) for fs in app.settings.feeds]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(daemon.describe())
        print(feeds_table(rows))
    return 0


def cmd_now(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = Store(settings.database.path)
    now = datetime.now(UTC)
    try:
        rows = latest_positions(store, now)
        daemon = daemon_status(store, now)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"no watched aircraft seen in the last hour ({daemon.describe()})", file=sys.stderr)
    else:
        print(now_table(rows))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    app = build_app(_settings(args))
    print(describe(app.settings), end="")
    print(f"\n# watchlist: {len(app.watchlist)} aircraft, {len(app.watchlist.hexes())} hexes")
    for feed in app.feeds:
        if isinstance(feed, StreamFeed):
            fs = feed.settings
            print(f"# feed {feed.name}: a stream from {fs.host}:{fs.port}, stored every {fs.interval_s:g} s")
            continue
        n = len(feed.requests())
        spacing = f", {feed.min_request_spacing_s:g} s apart" if feed.min_request_spacing_s else ""
        print(f"# feed {feed.name}: {n} requests every {feed.settings.interval_s:g} s{spacing}")
    print("# configuration ok")
    return 0
