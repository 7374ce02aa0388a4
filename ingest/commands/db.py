"""`ingest db`: the database's upkeep, one action each, each in a function of ACTIONS:

- `ingest db stats`: rows per table, the oldest and newest sighting, sizes (the SQLite file, its
  write-ahead log and free pages; the PostgreSQL database and each month of sightings);
- `ingest db vacuum`: SQLite VACUUM (gives free pages back to the file system), PostgreSQL VACUUM (ANALYZE);
- `ingest db migrate`: bring the schema up to date (either backend; every command that writes does it too);
- `ingest db copy --to URL`: copy the database into PostgreSQL, resumable, verified by row counts
  (store/transfer.py).

A new action is a function here, an entry in ACTIONS, and its arguments in cli.py's `db` group.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ingest.commands import open_store, progress_bar, settings
from ingest.store import DatabaseStats
from ingest.timeutil import iso_z
from ingest.views import grid


@runtime_checkable
class PostgresLike(Protocol):
    """A store whose sightings are partitioned by month (PostgreSQL)."""

    def prepare_months(self, now: datetime) -> list[str]: ...


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


def migrate(args: argparse.Namespace) -> int:
    """Apply the migrations the database lacks (creating it when it does not exist)."""
    store = open_store(settings(args, log=False), create=True)
    try:
        months = store.prepare_months(datetime.now(UTC)) if isinstance(store, PostgresLike) else []
        where, applied = store.describe(), store.migrated
    finally:
        store.close()
    if applied:
        print(f"{where}: applied {', '.join(applied)}")
    else:
        print(f"{where}: the schema is up to date")
    if months:
        print(f"{where}: partitions ready for {', '.join(months)}")
    return 0


def copy(args: argparse.Namespace) -> int:
    """Copy the configured database into the PostgreSQL database `--to` names."""
    from ingest.store import open_store as open_location
    from ingest.store.sql import SqlStore
    from ingest.store.transfer import copy_database, source_rows

    if not args.to.startswith(("postgresql://", "postgres://")):
        print("ingest: error: --to must be a postgresql://user@host/db URL (without its password)", file=sys.stderr)
        return 2
    s = settings(args)
    source = open_store(s, create=False)
    try:
        target = open_location(args.to, create=True, password=s.database.password)
        assert isinstance(source, SqlStore) and isinstance(target, SqlStore)
        total = source_rows(source)
        bar = progress_bar(total, "copy", "row")
        try:
            counted = copy_database(source, target, on_rows=bar.update)
        finally:
            bar.close()
        print(f"copied {source.describe()} into {target.describe()}")
        short = [c for c in counted if not c.ok]
        for c in counted:
            extra = f" ({c.target - c.source} more in the target: rows it held before)" if c.target > c.source else ""
            print(f"  {c.table:<15} {c.source:>12,} -> {c.target:>12,}{'' if c.ok else '  MISSING'}{extra}")
        target.close()
    finally:
        source.close()
    if short:
        print(f"ingest: error: {', '.join(c.table for c in short)} short in the target", file=sys.stderr)
        return 1
    print("verified: every table's rows are in the target")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": stats, "vacuum": vacuum, "migrate": migrate, "copy": copy,
}  # fmt: skip


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
