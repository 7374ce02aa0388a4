"""Benchmark the tail query (`ingest sightings TAIL --since 24h`) on a large `sightings` table.

What it measures (reliability-and-performance.md §2.5, method of the reference bench_sqlite_query.py,
but on the daemon's own schema: `sightings` WITHOUT ROWID, PRIMARY KEY (hex, ts)):

- Build (first run only): `SqliteStore(path)` creates and migrates the database, `Store.sync_watchlist` stores
  the 5,000 synthetic tails (plane-alert-db CSV text generated in memory, read by `parse_watchlist`), then
  `--rows` synthetic sightings are loaded with raw `executemany` of store.py's `_INSERT_SIGHTING`
  (INSERT OR IGNORE, 21 columns) on the Store's connection, in transactions of 1,000,000 rows.
  Hex uniform over the 5,000 tails, ts uniform over the 7 days before 2026-01-01T00:00Z and appended in
  time order (like a live logger), positions inside 33-43.5 N / 124-132 E. Reported: rows/s (row
  generation and executemany timed apart), rows stored (two rows of one tail in one second are one row),
  the final checkpoint and the file size.
- Query, warm (file read once into the OS page cache, 50 warm-up queries, SQLite's default 2 MB cache),
  over `--queries` random tails (seeded): (a) `Store.sightings((hex,), since=end-24h, limit=1000)`, the
  query `ingest sightings` runs; (b) the whole CLI path `Store.find_aircraft(registration)` +
  `Store.sightings(aircraft.hexes, ...)`; (floor) the same SELECT through `conn.execute().fetchall()`
  without Store's row-to-dict conversion. p50/p95/max in ms and the mean rows returned.
  `EXPLAIN QUERY PLAN` of the exact SQL Store.sightings ran (captured with a trace callback) shows
  whether it is one PRIMARY KEY range search.
- `--cold`: as root, `sync` + `echo 1 > /proc/sys/vm/drop_caches`, then a new `SqliteStore(path)` and one CLI-path
  query, each timed. Without root (or if /proc/sys is read-only, as in most containers) it says so.
  Not timed at all: opening a Store per warm query (the CLI opens one per invocation).

How to run (from the repository root; stdlib + ingest only):

    .venv/bin/python scripts/bench_query.py [--rows 10000000] [--queries 500] [--cold] [--fresh]

The database is built in $BENCH_DATA_DIR, or <system temp dir>/ingest-bench-query, as
sightings-<rows>.db and kept between runs (loading 1e7 rows takes minutes); `--fresh` rebuilds it.
Disk space: expect about 1-1.5 GB at 1e7 rows (plus a few hundred MB of WAL while loading); the script
refuses to start a build when the disk has less free space than ROW_DISK_BUDGET_BYTES per row.
The output ends with the path and the command that deletes it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from ingest.store import SqliteStore, Store
from ingest.store.sql import INSERT_SIGHTING as _INSERT_SIGHTING
from ingest.timeutil import from_epoch, iso_z
from ingest.watchlist import parse_watchlist

DEFAULT_ROWS = 10_000_000
DEFAULT_QUERIES = 500
TAIL_COUNT = 5_000
ROWS_PER_TRANSACTION = 1_000_000
ROWS_PER_BATCH = 100_000  # rows generated then inserted at a time, inside one transaction
WARMUP_QUERIES = 50

END_EPOCH_S = 1_767_225_600  # 2026-01-01T00:00:00Z, the end of the synthetic week
SPAN_S = 7 * 86_400
QUERY_WINDOW_S = 24 * 3_600
CLI_LIMIT_ROWS = 1_000  # `ingest sightings --limit` default

LAT_MIN_DEG, LAT_MAX_DEG = 33.0, 43.5
LON_MIN_DEG, LON_MAX_DEG = 124.0, 132.0
ORIGIN_LAT_DEG, ORIGIN_LON_DEG = 38.0, 127.5  # EPSG:5179's false origin, for plausible x_m/y_m
FALSE_EASTING_M, FALSE_NORTHING_M = 1_000_000.0, 2_000_000.0
M_PER_DEG_LAT = 111_000.0
M_PER_DEG_LON = 88_000.0  # at about 38 N
ALT_MAX_FT = 45_000
GEOM_MINUS_BARO_MAX_FT = 400
GS_MAX_KT = 560.0
ON_GROUND_FRACTION = 0.03
MLAT_FRACTION = 0.05

TAIL_SEED = 20_260_101
DATA_SEED = 7
QUERY_SEED = 1

DATA_DIR_NAME = "ingest-bench-query"
ROW_DISK_BUDGET_BYTES = 250  # free space needed per row to start a build: file + WAL, with headroom
OS_READ_CHUNK_BYTES = 16 * 1024 * 1024
BYTES_PER_MB = 1_000_000
MS_PER_S = 1_000.0
DROP_CACHES_PATH = Path("/proc/sys/vm/drop_caches")

WATCH_CSV_HEADER = [
    "$ICAO", "$Registration", "$Operator", "$Type", "$ICAO Type", "#CMPG", "$Tag 1", "$#Tag 2", "$#Tag 3",
    "Category", "$#Link",
]  # fmt: skip
# (ICAO type, type name, operator, callsign prefix, military)
FLEET_TYPES = (
    ("B738", "Boeing 737-800", "Korean Air", "KAL", 0),
    ("A321", "Airbus A321-200", "Asiana Airlines", "AAR", 0),
    ("B77W", "Boeing 777-300ER", "Korean Air", "KAL", 0),
    ("C130", "Lockheed C-130H Hercules", "Republic of Korea Air Force", "RKAF", 1),
    ("R135", "Boeing RC-135W", "United States Air Force", "TORA", 1),
    ("P8", "Boeing P-8A Poseidon", "United States Navy", "PEGA", 1),
)
FEEDS = ("adsb.lol", "adsb.fi", "airplanes.live")

SQL_FLOOR = (
    "SELECT hex, registration, type, callsign, ts, lat, lon, x_m, y_m, alt_baro_ft, on_ground, "
    "alt_geom_ft, gs_kt, track_deg, squawk, source_type, feed, emergency, synthetic FROM sightings "
    "WHERE hex IN (?) AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT ?"
)  # what Store.sightings builds for one hex; the plan is taken from the SQL it really ran


@dataclass(frozen=True, slots=True)
class Tail:
    """One synthetic aircraft: what its sightings and its watchlist row share."""

    hex: str
    registration: str
    icao_type: str
    type_name: str
    operator: str
    callsign: str
    squawk: str
    military: int
    feed: str


@dataclass(frozen=True, slots=True)
class Timing:
    """Latencies (ms) and rows returned of one series of queries."""

    label: str
    latencies_ms: list[float]
    rows: list[int]

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]  # nearest rank


@dataclass(frozen=True, slots=True)
class Paths:
    db: Path
    marker: Path  # written when a build completes; holds the load figures

    @property
    def all_files(self) -> tuple[Path, ...]:
        return (self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm"), self.marker)


# -- scratch files ------------------------------------------------------------------------------------


def data_dir() -> tuple[Path, bool]:
    """The scratch directory, and whether it is the default one (which the script owns entirely)."""
    env = os.environ.get("BENCH_DATA_DIR")
    path = Path(env) if env else Path(tempfile.gettempdir()) / DATA_DIR_NAME
    path.mkdir(parents=True, exist_ok=True)
    return path, not env


def paths_for(directory: Path, rows: int) -> Paths:
    db = directory / f"sightings-{rows}.db"
    return Paths(db=db, marker=directory / f"sightings-{rows}.db.done.json")


def remove_files(paths: Paths) -> None:
    for path in paths.all_files:
        path.unlink(missing_ok=True)


def size_mb(path: Path) -> float:
    return path.stat().st_size / BYTES_PER_MB if path.exists() else 0.0


# -- synthetic data -----------------------------------------------------------------------------------


def make_tails(count: int, seed: int) -> list[Tail]:
    """`count` aircraft with unique random 6-hex-digit ICAO addresses and unique registrations."""
    rnd = random.Random(seed)
    tails = []
    for i, code in enumerate(rnd.sample(range(1, 0x1000000), count)):
        icao_type, type_name, operator, prefix, military = FLEET_TYPES[i % len(FLEET_TYPES)]
        tails.append(
            Tail(
                hex=f"{code:06x}", registration=f"HL{5000 + i:04d}", icao_type=icao_type, type_name=type_name,
                operator=operator, callsign=f"{prefix}{rnd.randrange(1, 9999)}", squawk=f"{rnd.randrange(0o10000):04o}",
                military=military, feed=FEEDS[i % len(FEEDS)],
            )
        )  # fmt: skip
    return tails


def watchlist_csv(tails: Sequence[Tail]) -> str:
    """plane-alert-db CSV text listing every tail."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(WATCH_CSV_HEADER)
    for t in tails:
        category = "Military" if t.military else "Airline"
        writer.writerow(
            [t.hex.upper(), t.registration, t.operator, t.type_name, t.icao_type, "Mil" if t.military else "Civ",
             "Bench", "Synthetic", "", category, "https://example.invalid/"]
        )  # fmt: skip
    return out.getvalue()


def sighting_rows(tails: Sequence[Tail], rnd: random.Random, n: int, lo_s: float, hi_s: float) -> list[tuple[Any, ...]]:
    """`n` rows of `_INSERT_SIGHTING`, ts uniform in [lo_s, hi_s) and sorted (append order)."""
    width_s = hi_s - lo_s
    stamps = sorted(int(lo_s + rnd.random() * width_s) for _ in range(n))
    rows = []
    for ts in stamps:
        t = tails[int(rnd.random() * len(tails))]
        lat = round(LAT_MIN_DEG + rnd.random() * (LAT_MAX_DEG - LAT_MIN_DEG), 6)
        lon = round(LON_MIN_DEG + rnd.random() * (LON_MAX_DEG - LON_MIN_DEG), 6)
        x_m = (lon - ORIGIN_LON_DEG) * M_PER_DEG_LON + FALSE_EASTING_M
        y_m = (lat - ORIGIN_LAT_DEG) * M_PER_DEG_LAT + FALSE_NORTHING_M
        on_ground = rnd.random() < ON_GROUND_FRACTION
        alt_baro = None if on_ground else int(rnd.random() * ALT_MAX_FT)
        alt_geom = None if alt_baro is None else alt_baro + int(rnd.random() * GEOM_MINUS_BARO_MAX_FT)
        gs = round(rnd.random() * GS_MAX_KT, 1)
        track = round(rnd.random() * 360.0, 2)
        source = "mlat" if rnd.random() < MLAT_FRACTION else "adsb_icao"
        rows.append(
            (t.hex, ts, t.registration, t.icao_type, t.callsign, lat, lon, x_m, y_m, alt_baro, int(on_ground),
             alt_geom, gs, track, t.squawk, source, 0, t.military, t.feed, None, 0)
        )  # fmt: skip
    return rows


# -- build --------------------------------------------------------------------------------------------


def check_disk(directory: Path, rows: int) -> None:
    free = os.statvfs(directory)
    free_bytes = free.f_bavail * free.f_frsize
    need_bytes = rows * ROW_DISK_BUDGET_BYTES
    if free_bytes < need_bytes:
        sys.exit(
            f"bench_query: {directory} has {free_bytes / BYTES_PER_MB:,.0f} MB free, a {rows:,}-row build needs "
            f"about {need_bytes / BYTES_PER_MB:,.0f} MB: use --rows or BENCH_DATA_DIR"
        )


def load_sightings(store: Store, tails: Sequence[Tail], rows: int) -> dict[str, Any]:
    """Insert `rows` sightings in time order, ROWS_PER_TRANSACTION per transaction; the load figures."""
    conn = store.conn
    rnd = random.Random(DATA_SEED)
    start_s = END_EPOCH_S - SPAN_S
    generate_s = insert_s = 0.0
    wal_peak_mb = 0.0
    changes_before = conn.total_changes
    wall_start = perf_counter()
    transactions = math.ceil(rows / ROWS_PER_TRANSACTION)
    done = 0
    for number in range(1, transactions + 1):
        in_txn = min(ROWS_PER_TRANSACTION, rows - done)
        txn_start = perf_counter()
        with store.atomic():
            batch_done = 0
            while batch_done < in_txn:
                n = min(ROWS_PER_BATCH, in_txn - batch_done)
                lo_s = start_s + SPAN_S * (done + batch_done) / rows
                hi_s = start_s + SPAN_S * (done + batch_done + n) / rows
                t0 = perf_counter()
                batch = sighting_rows(tails, rnd, n, lo_s, hi_s)
                t1 = perf_counter()
                conn.executemany(_INSERT_SIGHTING, batch)
                t2 = perf_counter()
                generate_s += t1 - t0
                insert_s += t2 - t1
                batch_done += n
            wal_peak_mb = max(wal_peak_mb, size_mb(Path(f"{store.path}-wal")))
        done += in_txn
        txn_s = perf_counter() - txn_start
        print(
            f"  transaction {number}/{transactions}: {in_txn:,} rows in {txn_s:.1f} s "
            f"({in_txn / txn_s:,.0f} rows/s incl. generation); {done:,} rows so far, "
            f"{perf_counter() - wall_start:.0f} s elapsed",
            flush=True,
        )
    load_s = perf_counter() - wall_start
    stored = conn.total_changes - changes_before
    t0 = perf_counter()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint_s = perf_counter() - t0
    return {
        "rows_generated": rows, "rows_stored": stored, "load_s": load_s, "generate_s": generate_s,
        "executemany_s": insert_s, "checkpoint_s": checkpoint_s, "wal_peak_mb": wal_peak_mb,
        "file_mb": size_mb(store.path), "sqlite": sqlite3.sqlite_version, "python": platform.python_version(),
        "built_at": iso_z(datetime.now(UTC).replace(microsecond=0)),
    }  # fmt: skip


def build(paths: Paths, tails: Sequence[Tail], rows: int) -> dict[str, Any]:
    """Create the database with the daemon's schema, list the tails, load the sightings, mark it done."""
    remove_files(paths)
    check_disk(paths.db.parent, rows)
    print(f"building {paths.db} with {rows:,} sightings ...", flush=True)
    store = SqliteStore(paths.db)
    try:
        t0 = perf_counter()
        store.sync_watchlist(parse_watchlist(watchlist_csv(tails), "<bench watchlist>"))
        watchlist_s = perf_counter() - t0
        figures = load_sightings(store, tails, rows)
    finally:
        store.close()
    figures["watchlist_s"] = watchlist_s
    paths.marker.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return figures


def open_or_build(paths: Paths, tails: Sequence[Tail], rows: int, fresh: bool) -> tuple[dict[str, Any], bool]:
    """The load figures, and whether they come from this run (False: an earlier build was reused)."""
    if not fresh and paths.marker.exists() and paths.db.exists():
        return json.loads(paths.marker.read_text(encoding="utf-8")), False
    if paths.db.exists() and not fresh:
        print(f"{paths.db} exists but its build never finished: rebuilding", flush=True)
    return build(paths, tails, rows), True


# -- queries ------------------------------------------------------------------------------------------


def read_into_os_cache(db: Path) -> None:
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            with path.open("rb") as fh:
                while fh.read(OS_READ_CHUNK_BYTES):
                    pass


def query_since() -> datetime:
    return from_epoch(END_EPOCH_S - QUERY_WINDOW_S)


def tail_query(store: Store) -> Callable[[Tail], int]:
    """(a) the query `ingest sightings HEX --since 24h` runs."""
    since = query_since()
    return lambda t: len(store.sightings((t.hex,), since=since, limit=CLI_LIMIT_ROWS))


def cli_path(store: Store) -> Callable[[Tail], int]:
    """(b) `ingest sightings REGISTRATION --since 24h`: find the aircraft, then its sightings."""
    since = query_since()

    def run(t: Tail) -> int:
        aircraft = store.find_aircraft(t.registration)
        if aircraft is None:
            raise RuntimeError(f"{t.registration} is not in the aircraft table")
        return len(store.sightings(aircraft.hexes, since=since, limit=CLI_LIMIT_ROWS))

    return run


def bare_sql(store: Store) -> Callable[[Tail], int]:
    """(floor) the same SELECT, rows fetched as tuples, no conversion."""
    conn = store.conn
    params = (int(query_since().timestamp()), 2**62, CLI_LIMIT_ROWS)
    return lambda t: len(conn.execute(SQL_FLOOR, (t.hex, *params)).fetchall())


def time_series(label: str, run: Callable[[Tail], int], tails: Sequence[Tail]) -> Timing:
    latencies, counts = [], []
    for t in tails:
        t0 = perf_counter()
        n = run(t)
        latencies.append((perf_counter() - t0) * MS_PER_S)
        counts.append(n)
    return Timing(label, latencies, counts)


def query_plan(store: Store, tail: Tail) -> tuple[str, list[str]]:
    """The SQL Store.sightings ran (values inlined by sqlite3's trace) and its EXPLAIN QUERY PLAN."""
    seen: list[str] = []
    conn = store.conn
    conn.set_trace_callback(seen.append)
    try:
        store.sightings((tail.hex,), since=query_since(), limit=CLI_LIMIT_ROWS)
    finally:
        conn.set_trace_callback(None)
    sql = next(s for s in seen if "FROM sightings" in s)
    plan = [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    return sql, plan


def meminfo_cached_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("Cached:"):
                return int(line.split()[1]) * 1024 / BYTES_PER_MB
    except (OSError, ValueError):
        pass
    return None


def drop_os_cache() -> str | None:
    """`sync; echo 1 > /proc/sys/vm/drop_caches`; None on success, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root"
    os.sync()
    try:
        DROP_CACHES_PATH.write_text("1\n", encoding="ascii")
    except OSError as exc:
        return f"cannot write {DROP_CACHES_PATH}: {exc.strerror or exc}"
    return None


def cold_query(db: Path, tail: Tail) -> list[str]:
    """Drop the OS page cache, open a new Store and run one CLI-path query; report lines."""
    before_mb = meminfo_cached_mb()
    why_not = drop_os_cache()
    if why_not is not None:
        return [f"cold: skipped ({why_not}); a 'cold' figure would really be warm"]
    after_mb = meminfo_cached_mb()
    t0 = perf_counter()
    store = SqliteStore(db)
    t1 = perf_counter()
    try:
        rows = cli_path(store)(tail)
    finally:
        t2 = perf_counter()
        store.close()
    cached = "" if before_mb is None or after_mb is None else f" (page cache {before_mb:,.0f} -> {after_mb:,.0f} MB)"
    return [
        f"cold: OS page cache dropped{cached}",
        f"  SqliteStore(path) open + migration check: {(t1 - t0) * MS_PER_S:.1f} ms",
        f"  first CLI-path query on it ({tail.registration}): {(t2 - t1) * MS_PER_S:.1f} ms, {rows} rows",
    ]


# -- report -------------------------------------------------------------------------------------------


def load_lines(figures: dict[str, Any], this_run: bool) -> list[str]:
    when = "this run" if this_run else f"an earlier run, {figures['built_at']}, SQLite {figures['sqlite']}"
    generated, stored = figures["rows_generated"], figures["rows_stored"]
    return [
        f"load ({when}):",
        f"  {generated:,} rows generated, {stored:,} stored ({generated - stored:,} ignored: same hex and second)",
        f"  total {figures['load_s']:.1f} s = {generated / figures['load_s']:,.0f} rows/s "
        f"(generation {figures['generate_s']:.1f} s, executemany {figures['executemany_s']:.1f} s = "
        f"{generated / figures['executemany_s']:,.0f} rows/s)",
        f"  transactions of {ROWS_PER_TRANSACTION:,} rows; WAL peak {figures['wal_peak_mb']:,.0f} MB; "
        f"final wal_checkpoint(TRUNCATE) {figures['checkpoint_s']:.1f} s",
        f"  watchlist sync ({TAIL_COUNT:,} aircraft): {figures['watchlist_s'] * MS_PER_S:.0f} ms",
        f"  file size after load: {figures['file_mb']:,.0f} MB "
        f"({figures['file_mb'] * BYTES_PER_MB / stored:.0f} B/row)",
    ]


def timing_lines(series: Sequence[Timing], queries: int) -> list[str]:
    lines = [
        f"warm latency over {queries:,} random tails (ms):",
        f"  {'query':<58} {'p50':>7} {'p95':>7} {'max':>7} {'mean rows':>10}",
    ]
    for s in series:
        lines.append(
            f"  {s.label:<58} {s.percentile_ms(0.50):7.3f} {s.percentile_ms(0.95):7.3f} "
            f"{max(s.latencies_ms):7.3f} {statistics.fmean(s.rows):10.1f}"
        )
    return lines


def header_lines(argv: Sequence[str]) -> list[str]:
    return [
        "bench_query: ingest tail query on the daemon's sightings table",
        f"command: {shlex.join([sys.executable, *argv])}",
        f"cwd: {Path.cwd()}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs",
    ]


def scratch_lines(directory: Path, default_dir: bool, paths: Paths) -> list[str]:
    total_mb = sum(size_mb(p) for p in paths.all_files)
    lines = [f"scratch data: {paths.db} ({total_mb:,.0f} MB with its side files), kept for the next run"]
    if default_dir:
        lines.append(f"  delete with: rm -rf {shlex.quote(str(directory))}")
    else:
        lines.append(f"  delete with: rm -f {' '.join(shlex.quote(str(p)) for p in paths.all_files)}")
    return lines


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"sightings to load (default {DEFAULT_ROWS:,})")
    p.add_argument("--queries", type=int, default=DEFAULT_QUERIES, help=f"timed tails (default {DEFAULT_QUERIES})")
    p.add_argument("--cold", action="store_true", help="also one query after dropping the OS page cache (root)")
    p.add_argument("--fresh", action="store_true", help="rebuild the database even if a finished one exists")
    args = p.parse_args(argv)
    if args.rows < 1 or args.queries < 1:
        p.error("--rows and --queries must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else [sys.argv[0], *argv])
    args = parse_args(argv[1:])
    directory, default_dir = data_dir()
    paths = paths_for(directory, args.rows)
    print(f"scratch directory: {directory}", flush=True)
    tails = make_tails(TAIL_COUNT, TAIL_SEED)
    figures, this_run = open_or_build(paths, tails, args.rows, args.fresh)

    report = header_lines(argv)
    report.append(
        f"data: {args.rows:,} sightings of {TAIL_COUNT:,} tails (uniform), ts uniform over "
        f"{iso_z(from_epoch(END_EPOCH_S - SPAN_S))} .. {iso_z(from_epoch(END_EPOCH_S))}, appended in time order"
    )
    report.extend(load_lines(figures, this_run))

    rnd = random.Random(QUERY_SEED)
    picked = [rnd.choice(tails) for _ in range(args.queries)]
    if args.cold:
        report.extend(cold_query(paths.db, picked[0]))

    read_into_os_cache(paths.db)
    store = SqliteStore(paths.db)
    try:
        sql, plan = query_plan(store, picked[0])
        for t in tails[:WARMUP_QUERIES]:
            cli_path(store)(t)
        series = [
            time_series("(a) Store.sightings((hex,), since=end-24h, limit=1000)", tail_query(store), picked),
            time_series("(b) CLI path: find_aircraft(reg) + sightings(hexes, ...)", cli_path(store), picked),
            time_series("(floor) same SELECT, conn.execute().fetchall()", bare_sql(store), picked),
        ]
    finally:
        store.close()

    report.append(f"query (as Store.sightings ran it): {sql}")
    report.append("EXPLAIN QUERY PLAN: " + " | ".join(plan))
    if any("TEMP B-TREE" in step or step.startswith("SCAN") for step in plan):
        report.append("  WARNING: not a plain PRIMARY KEY range search")
    report.extend(timing_lines(series, args.queries))
    report.extend(scratch_lines(directory, default_dir, paths))
    print()
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
