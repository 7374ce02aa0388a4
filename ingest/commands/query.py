"""Reading the database: `ingest sightings`, `sorties`, `now` and `feeds`. None of them creates a database:
a path that does not exist is an error that says so."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.commands import open_store, settings, watchlist_loader
from ingest.store import SIGHTING_FIELDS
from ingest.views import SORTIE_FIELDS, feed_row, feeds_table, now_table, sightings_table, sortie_dict, sorties_table

FEED_HEALTH_WINDOW = timedelta(hours=1)


def cmd_sightings(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    store = open_store(s, create=False)
    try:
        from ingest.services import resolve_tail

        aircraft = resolve_tail(store, args.tail, args.since, args.until, watchlist_loader(s))
        rows = store.sightings(aircraft.hexes, args.since, args.until, args.limit or None)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SIGHTING_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif not rows:
        print(f"no sightings of {aircraft.label} in that period", file=sys.stderr)
    else:
        if aircraft.via.startswith("callsign"):
            print(f"{args.tail.upper()}: {aircraft.label} (by its {aircraft.via})", file=sys.stderr)
        print(sightings_table(rows))
    return 0


def cmd_sorties(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    store = open_store(s, create=False)
    try:
        keys = None
        if args.tail:  # services (and the watchlist) load only to name an aircraft: `ingest sorties` needs neither
            from ingest.services import resolve_tail

            keys = [resolve_tail(store, args.tail, args.since, args.until, watchlist_loader(s)).key]
        found = store.sorties(keys, args.since, args.open, args.limit or None, until=args.until)
        happenings = store.happenings([x.sortie_id for x in found])
    finally:
        store.close()
    rows = [sortie_dict(x, happenings) for x in found]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SORTIE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_flat_sortie(r) for r in rows)
    elif not rows:
        print("no sorties in that period", file=sys.stderr)
    else:
        print(sorties_table(rows))
    return 0


def _flat_sortie(row: dict[str, Any]) -> dict[str, Any]:
    """A sortie for CSV: callsigns space-separated, airports by code, events as `kind/n` ids."""
    return {
        **row,
        "callsigns": " ".join(row["callsigns"]),
        "took_off_from": (row["took_off_from"] or {}).get("code"),
        "landed_at": (row["landed_at"] or {}).get("code"),
        "events": " ".join(e["kind"] + "/" + str(e["n"]) for e in row["events"]),
    }


def cmd_now(args: argparse.Namespace) -> int:
    store = open_store(settings(args, log=False), create=False)
    now = datetime.now(UTC)
    try:
        from ingest.services import daemon_status, latest_positions

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


def cmd_feeds(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    store = open_store(s, create=False)
    now = datetime.now(UTC)
    try:
        health = store.feed_health(now - FEED_HEALTH_WINDOW)
        from ingest.services import daemon_status

        daemon = daemon_status(store, now)
    finally:
        store.close()
    rows = [feed_row(fs, health.get(fs.name, {}), now, daemon.running) for fs in s.feeds]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(daemon.describe())
        print(feeds_table(rows, now, daemon.running))
    return 0
