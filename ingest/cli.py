"""The `ingest` command line: the argument parser and the dispatch to `ingest/commands/`.

Start-up is a feature: this module imports only the standard library and two small modules of ours, and
each command's module (with its stack: pyproj, APScheduler, Starlette, matplotlib...) is imported when that
command runs. `ingest --help` costs about what `python -c pass` does, and `ingest sightings TAIL` about what
a bare sqlite3 query does (scripts/bench_cli.py; tests/unit/test_cli_imports.py keeps it so).

Exit codes: 0 ok; 1 runtime error (a feed failed in `poll`, an unknown tail, an unreadable replay);
2 usage or configuration error. An IngestError becomes one line on stderr; --debug adds the traceback.
The shared options (--config, --set, --database, --log-level, --log-format, --debug) go before or after the
command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from typing import Any, cast

from ingest.errors import ConfigError, IngestError
from ingest.timeutil import parse_when

MAX_COUNT = 1_000_000_000  # --limit and --count above this are refused: no query needs more, SQLite holds less

EPILOG = """\
configuration: --config PATH, else $INGEST_CONFIG, else config/ingest.toml (relative paths in it are
relative to the config file's folder). Any key can be overridden by INGEST_<SECTION>_<KEY> variables
(INGEST_FEEDS_<NAME>_<KEY> for a feed) and by --set section.key=value.

TAIL: a registration in any case or spacing (62-4125, 62 4125, 624125), an ICAO hex (ae01d2), or a
callsign (TORA23; TORA* for a prefix), resolved to the aircraft that flew it in the period asked for.

exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.
"""

COMMON_DEFAULTS: dict[str, Any] = {
    "config": None, "overrides": [], "database": None, "log_level": None, "log_format": None, "debug": False,
}  # fmt: skip


def when(text: str) -> datetime:
    """--since/--until: ISO 8601, or a duration before now."""
    try:
        return parse_when(text, datetime.now(UTC))
    except (ValueError, OverflowError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count(text: str) -> int:
    """--limit, --count: a whole number from 0 to MAX_COUNT."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    if len(text) > 10 or int(text) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is more than {MAX_COUNT:,} (0 means all)")
    return int(text)


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _common() -> argparse.ArgumentParser:
    """The shared options, for the top level (before the command) and for each command (after it). Neither
    sets a default, so a value given in either place is kept; main() fills in the defaults."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help="TOML file (default: $INGEST_CONFIG or config/ingest.toml)")
    p.add_argument(
        "--set", dest="overrides", action="append", metavar="KEY=VALUE",
        help="override a setting, e.g. --set database.path=/tmp/x.db or --set feeds.adsb.lol.interval_s=30",
    )  # fmt: skip
    p.add_argument(
        "--database",
        metavar="PATH|URL",
        help="SQLite file, or postgresql://user@host/db (same as --set database.path=... or database.url=...)",
    )
    p.add_argument(
        "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override daemon.log_level"
    )
    p.add_argument(
        "--log-format", choices=["text", "json"], help="override daemon.log_format (json: one object a line)"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _sortie_choice(p: argparse.ArgumentParser) -> None:
    """`export` and `map` take a sortie id, or a TAIL with --since."""
    p.add_argument(
        "target", metavar="SORTIE_ID|TAIL", help="a sortie id (ae01d2-20261120T225558Z), or a TAIL with --since"
    )
    p.add_argument("--since", type=when, metavar="WHEN",
                   help="with TAIL: its sorties that started since: ISO 8601 or a duration (24h, 7d)")  # fmt: skip


class _Version(argparse.Action):
    """--version, read from the package metadata only when asked (it costs every other command time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit", default=argparse.SUPPRESS)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import ingest

        print(f"ingest {ingest.__version__}")
        parser.exit()


class _NotAsked:
    """Stands in for the parser of a command that was not asked for: every call (add_argument, add_subparsers,
    add_parser, choices[name]) is taken and ignored, for less than a real throwaway parser costs."""

    def __getattr__(self, name: str) -> Callable[..., _NotAsked]:
        return self._take

    def _take(self, *args: object, **kwargs: object) -> _NotAsked:
        return self

    @property
    def choices(self) -> _NotAsked:
        return self

    def __getitem__(self, key: object) -> _NotAsked:
        return self


_VALUED = frozenset(
    {"--config", "--set", "--database", "--log-level", "--log-format"}
)  # shared options that take a value


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named in `argv` (skipping the shared options before it), or None."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, just that command's (building all sixteen costs every command ~15 ms)."""
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Poll ADS-B feeds for a watchlist of aircraft, keep what flies over the area, query it by tail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common()],
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _common()

    def command(name: str, module: str, help_text: str, description: str = "") -> argparse.ArgumentParser:
        if only is not None and name != only:
            return cast(argparse.ArgumentParser, _NotAsked())  # what is added to it goes nowhere
        p = sub.add_parser(name, help=help_text, description=description or help_text, epilog=EPILOG, parents=[shared],
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.set_defaults(handler=(f"ingest.commands.{module}", "cmd_" + name.replace("-", "_")))
        return p

    command("run", "daemon", "Run the daemon in the foreground until SIGTERM or SIGINT.")
    p = command("serve", "daemon", "Serve the read-only HTTP API ([http] host and port) until SIGTERM or SIGINT.")
    p.add_argument("--host", help="address to bind (overrides http.host; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=port, help="TCP port (overrides http.port)")
    command("poll", "daemon", "Poll every enabled feed once, store the result, print a line per feed and exit.")
    p = command("replay", "data", "Push recorded feed responses through the pipeline, in file order.")
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE",
        help="readsb-v2 / aircraft.json responses: .json, or .ndjson/.jsonl with one per line; .gz ok",
    )  # fmt: skip
    p.add_argument(
        "--feed", help="feed name stored with the sightings (default: replay.feed); a configured feed's name "
        "also selects its parser, e.g. for an OpenSky recording",
    )  # fmt: skip
    p.add_argument(
        "--alerts", action="store_true",
        help="alert the sorties found through the configured channels (default: a replay alerts nobody)",
    )  # fmt: skip
    p = command("sightings", "query", "Print the stored sightings of one aircraft, oldest first.")
    p.add_argument("tail", metavar="TAIL", help="registration (62-4125), ICAO hex (ae01d2) or callsign (TORA23)")
    p.add_argument("--since", type=when, metavar="WHEN", help="ISO 8601 time or a duration before now: 90m, 24h, 7d")
    p.add_argument("--until", type=when, metavar="WHEN", help="ISO 8601 time or a duration before now")
    p.add_argument("--limit", type=count, default=1000, metavar="N",
                   help="at most the N latest sightings (default 1000; 0 for all)")  # fmt: skip
    p.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output format")
    p = command("sorties", "query", "Print sorties, one row each, oldest first.")
    p.add_argument(
        "tail", metavar="TAIL", nargs="?", help="registration, ICAO hex or callsign (default: every aircraft)"
    )
    p.add_argument(
        "--since", type=when, metavar="WHEN", help="sorties that started since: ISO 8601 or a duration (24h)"
    )
    p.add_argument("--until", type=when, metavar="WHEN", help="sorties that started before this")
    p.add_argument("--open", action="store_true", help="only sorties still in progress")
    p.add_argument(
        "--limit", type=count, default=100, metavar="N", help="at most the N latest (default 100; 0 for all)"
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output format")
    p = command("now", "query", "Print the latest position of every watched aircraft seen in the last hour.")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    p = command("export", "output", "Write sorties with their sightings as GeoJSON, KML, CSV or GPX.")
    _sortie_choice(p)
    p.add_argument("--format", choices=["geojson", "kml", "csv", "gpx"],
                   help="geojson, kml, csv or gpx (default: -o's suffix, else geojson); altitudes in m")  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="write FILE atomically instead of stdout (- for stdout)")
    p = command("map", "output", "Draw sorties over the coastline, coloured by altitude, as a PNG or SVG picture.")
    _sortie_choice(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="the picture, written atomically: FILE.png (1600x1200) or FILE.svg")  # fmt: skip
    p = command("record", "data", "Save a feed's raw responses as received, for fixtures and replays.")
    p.add_argument("--feed", required=True, metavar="NAME", help="a configured feed (not an SBS stream)")
    p.add_argument("--count", type=count, default=1, metavar="N", help="ticks to record, interval_s apart (default 1)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the files (created)")
    p = command("demo", "data", "The bundled synthetic demo: `remove` deletes its data for good, `status` counts it.")
    p.add_argument("action", choices=["remove", "status"], help="remove, or status")
    p = command("feeds", "query", "Show whether a daemon runs and each feed's health: state, last success and error.")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    command("check-config", "daemon", "Validate the configuration and print the effective settings (secrets masked).")
    p = command(
        "db", "db", "Look after the database: `stats` (rows, sizes, oldest and newest sighting), `vacuum`, "
        "`migrate` (bring the schema up to date), `copy --to URL` (into PostgreSQL)."
    )  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, formats in DB_ACTIONS:
        a = actions.add_parser(name, help=help_text, description=help_text, epilog=EPILOG, parents=[shared],
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        if formats:
            a.add_argument("--format", choices=["table", "json"], default="table", help="output format")
        if name == "copy":
            a.add_argument(
                "--to", required=True, metavar="URL",
                help="the PostgreSQL database to copy into, postgresql://user@host:5432/db (made when missing; "
                "its password from INGEST_DATABASE_PASSWORD, database.password_file, PGPASSWORD or ~/.pgpass)",
            )  # fmt: skip
    p = command(
        "watchlist", "watchlist", "List, show, add, remove, import or update the watched aircraft.", WATCHLIST_HELP
    )
    _watchlist_actions(p, shared)
    command("health", "health", "Exit 0 when the daemon is healthy (the rule of GET /healthz), else 1 with the "
            "reason: a daemon runs and a feed succeeded within http.stale_after_s (a Docker HEALTHCHECK).")  # fmt: skip
    p = command(
        "alerts", "alerts", "Alert channels: `status` of each, or `test NAME` to send a test event through one."
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser(
        "status", parents=[shared], help="each channel: queued, delivered, last delivery, last error, parked until",
        description="Each alert channel: events queued and delivered, the last delivery, the last error, and "
        "whether it is backing off or parked.",
    )  # fmt: skip
    a.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    a = actions.add_parser(
        "test", parents=[shared], help="send a clearly marked test event through channel NAME now",
        description="Send a clearly marked test event through the real channel NAME (not through the outbox); "
        "exit 1 with the reason when it fails. A success un-parks the channel.",
    )  # fmt: skip
    a.add_argument("channel", metavar="NAME", help="an [[alerts]] name, or mqtt for the [mqtt] section's channel")
    return parser


WATCHLIST_HELP = """List, show and change the watched aircraft (plane-alert-db CSV).

The list is the bundled config/watchlist.csv ([watchlist] path) until you import your own with `import FILE`
or `update URL`; your list is kept in the data directory (the SQLite file's folder, or [watchlist] user_dir,
which must be set with a PostgreSQL database) as watchlist.csv, and a new release never overwrites it (delete
it to go back to the bundled list). `add` and `remove` are kept apart, in watchlist-edits.csv, and apply on
top of whichever list is used: they survive imports, updates and upgrades. A running `ingest run` notices a
changed list within 2 x [watchlist] check_interval_s (10 s) and polls with it from its next tick.
"""


def _watchlist_actions(p: argparse.ArgumentParser, shared: argparse.ArgumentParser) -> None:
    """`ingest watchlist ACTION`: each action takes the shared options too (after it)."""
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help_text, description=help_text, epilog=EPILOG, parents=[shared],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip

    a = action("list", "Print the watched aircraft (yours included), filtered by substrings of their fields.")
    a.add_argument("--operator", metavar="TEXT", help="operator contains TEXT (any case), e.g. USAF")
    a.add_argument("--type", metavar="TEXT", help="ICAO type or type name contains TEXT, e.g. R135 or Poseidon")
    a.add_argument("--category", metavar="TEXT", help="category contains TEXT, e.g. Oxcart")
    a.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="table, json, or csv (plane-alert-db's format, which import reads back)")  # fmt: skip
    a = action("show", "Print one watched aircraft: its row, every hex (learnt ones too), last sighting and sortie.")
    a.add_argument("tail", metavar="TAIL", help="registration (62-4125, any case or spacing) or ICAO hex (ae01d2)")
    a.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    a = action("add", "Watch an aircraft, or add hexes and values to one already watched (same registration).")
    a.add_argument("--hex", action="append", required=True, metavar="HEX",
                   help="ICAO hex, 6 hex digits (repeat for an aircraft with several)")  # fmt: skip
    a.add_argument("--registration", metavar="REG", help="registration or serial, e.g. 62-4125")
    a.add_argument("--operator", help="e.g. USAF")
    a.add_argument("--type", metavar="NAME", help="type name, e.g. 'Boeing RC-135W'")
    a.add_argument("--icao-type", metavar="CODE", help="ICAO type designator, e.g. R135")
    a.add_argument("--category", help="plane-alert-db category, e.g. Oxcart")
    a.add_argument("--tag", action="append", metavar="TAG", help="a tag (up to 3)")
    a.add_argument("--link", metavar="URL", help="an http(s) link about the aircraft")
    a = action("remove", "Stop watching an aircraft (recorded in your edits, so an update does not bring it back).")
    a.add_argument("tail", metavar="TAIL", help="registration or ICAO hex")
    a = action(
        "import", "Use a plane-alert-db CSV file as your list (every row checked first; a bad file changes nothing)."
    )
    a.add_argument("file", type=Path, metavar="FILE", help="the CSV file (- for standard input)")
    a = action("update", "Use a plane-alert-db CSV fetched from a URL as your list (checked as import checks a file).")
    a.add_argument("url", metavar="URL", help="http(s) URL, e.g. plane-alert-db's plane-alert-mil.csv on GitHub")
    for name in ("add", "remove", "import", "update"):
        sub = actions.choices[name]
        sub.add_argument("--dry-run", action="store_true", help="check and print what would change, write nothing")
        sub.add_argument("--all", action="store_true", help=f"list every change (default: the first {20} of each kind)")


# `ingest db ACTION`: name, help, whether it takes --format (each runs ingest.commands.db.ACTIONS[name]).
DB_ACTIONS = (
    ("stats", "Rows per table, the oldest and newest sighting, the database's (and SQLite WAL's) size.", True),
    ("vacuum", "Give free space back: SQLite VACUUM (needs a moment alone with the file), PostgreSQL VACUUM (ANALYZE).",
     False),
    ("migrate", "Bring the schema up to date on either backend, creating the database when it does not exist (every "
     "command that writes does it too); on PostgreSQL, also make this and next month's partitions.", False),
    ("copy", "Copy the configured database (the SQLite file) into the PostgreSQL database --to names, table by table "
     "in chunks; a copy that was stopped resumes where it was, rows the target holds are kept, and every table's "
     "rows are counted on both sides at the end (exit 1 if any is short).", False),
)  # fmt: skip


COMMAND_NAMES = frozenset({
    "run", "serve", "poll", "replay", "sightings", "sorties", "now", "export", "map", "record", "demo", "feeds",
    "check-config", "db", "health", "watchlist", "alerts",
})  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    word = _command_word(words)
    parser = build_parser(word if word in COMMAND_NAMES else None)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return int(exc.code or 0)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, list(default) if isinstance(default, list) else default)
    module, function = args.handler
    try:
        run: Callable[[argparse.Namespace], int] = getattr(import_module(module), function)
        return int(run(args))
    except IngestError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        logs = sys.modules.get("ingest.logs")  # loaded only when this command set up logging
        if logs is not None and logs.json_enabled():
            logs.error_line(f"ingest: error: {exc}")  # a JSON log stays all JSON
        else:
            print(f"ingest: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ingest watchlist list | head`: the reader left; exit as a tool killed by SIGPIPE
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
