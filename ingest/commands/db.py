"""`ingest db`: the database's upkeep, one action each, each in a function of ACTIONS:

- `ingest db stats`: rows per table, the oldest and newest sighting, sizes (the SQLite file, its
  write-ahead log and free pages; the PostgreSQL database and each month of sightings);
- `ingest db vacuum`: SQLite VACUUM (gives free pages back to the file system), PostgreSQL VACUUM (ANALYZE).

A new action is a function here, an entry in ACTIONS, and its arguments in cli.py's `db` group.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ingest.commands import open_store, settings
from ingest.store import DatabaseStats
from ingest.timeutil import iso_z
from ingest.views import grid


def cmd_db(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args)


def stats(args: argparse.Namespace) -> int:
    store = open_store(settings(args, log=False), create=False)
    try:
        found = store.stats()
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(stats_dict(found), indent=1))
    else:
        print(stats_text(found))
    return 0


def vacuum(args: argparse.Namespace) -> int:
    store = open_store(settings(args, log=False), create=False)
    try:
        before = store.size_bytes() + store.wal_bytes()
        store.vacuum()
        after = store.size_bytes() + store.wal_bytes()
    finally:
        store.close()
    what = "VACUUM" if store.backend == "sqlite" else "VACUUM (ANALYZE)"
    print(f"{store.describe()}: {what} done; {megabytes(before)} before, {megabytes(after)} after")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {"stats": stats, "vacuum": vacuum}


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def stats_dict(s: DatabaseStats) -> dict[str, Any]:
    """`ingest db stats --format json`."""
    return {
        "backend": s.backend, "database": s.where, "size_bytes": s.size_bytes, "wal_bytes": s.wal_bytes,
        "free_bytes": s.free_bytes, "tables": dict(s.tables),
        "sightings": {
            "rows": s.tables.get("sightings", 0),
            "oldest": iso_z(s.oldest_sighting) if s.oldest_sighting else None,
            "newest": iso_z(s.newest_sighting) if s.newest_sighting else None,
        },
        "partitions": [{"name": n, "rows": rows, "size_bytes": size} for n, rows, size in s.partitions],
    }  # fmt: skip


def stats_text(s: DatabaseStats) -> str:
    """`ingest db stats`: a few lines, then rows per table (and, on PostgreSQL, per month of sightings)."""
    size = f"size: {megabytes(s.size_bytes)}"
    if s.wal_bytes is not None:
        size += f", write-ahead log {megabytes(s.wal_bytes)}"
    if s.free_bytes:
        size += f", free pages {megabytes(s.free_bytes)} (ingest db vacuum gives them back)"
    rows = s.tables.get("sightings", 0)
    span = (
        f"sightings: {rows:,} from {iso_z(s.oldest_sighting)} to {iso_z(s.newest_sighting)}"
        if s.oldest_sighting and s.newest_sighting
        else "sightings: none"
    )
    lines = [f"database: {s.where} ({s.backend})", size, span, ""]
    table = [{"table": name, "rows": f"{n:,}"} for name, n in s.tables.items()]
    lines.append(grid(table, (("table", "table", 5), ("rows", "rows", 4)), _cell))
    if s.partitions:
        months = [{"partition": n, "rows": f"{r:,}", "size": megabytes(b)} for n, r, b in s.partitions]
        lines += ["", grid(months, (("partition", "partition", 9), ("rows", "rows", 4), ("size", "size", 4)), _cell)]
    return "\n".join(lines)


def _cell(row: dict[str, Any], key: str) -> str:
    return str(row[key])
