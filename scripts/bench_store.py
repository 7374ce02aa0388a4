"""Benchmark the store on both backends, each figure beside a floor measured in the same run.

1. insert: one poll that stores 10,000 sightings (a 10,000-aircraft box, every aircraft kept), through
   `Store.save_poll` (its feed_polls row and, on PostgreSQL, a poll-stream entry included, as a daemon on a
   shared database writes it) against the bare driver inserting the same prepared rows into the same table
   in one transaction: `executemany` of the store's INSERT on both, and PostgreSQL's `COPY` as well. The
   aircraft are known (a steady state: the first poll, which learns them, is not timed).
2. tail query: one day of one aircraft (`ingest sightings HEX --since 24h`) on a table of `--rows` sightings
   (5,000 aircraft over 7 days, bench_query.py's data), `Store.sightings` against the very SQL it ran,
   fetched as tuples (the floor), warm, p50/p95 over `--queries` random aircraft.
3. writers (PostgreSQL): sightings/s of one writer process saving polls of 1,000 sightings (its own
   aircraft, stream entries included) for `--seconds`, then of two such processes at once.

Run from the repository root:

    .venv/bin/python scripts/bench_store.py [--rows 10000000] [--queries 300] [--seconds 10] [--skip-query]

The PostgreSQL server is INGEST_TEST_POSTGRES or postgresql://postgres@127.0.0.1:5432 (tests/pg.py). The
SQLite table is bench_query.py's file (built on first use, minutes at 1e7 rows, kept); the PostgreSQL one is
the database ingest_bench_<rows> (loaded with COPY on first use, kept; drop it with the line printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

from ingest.models import PollRecord, Sighting
from ingest.store import open_store
from ingest.store.base import StreamRow, sighting_row
from ingest.store.postgres import PostgresStore
from ingest.store.sql import INSERT_SIGHTING, SIGHTING_COLUMNS, SqlStore

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.conftest import observation
from tests.pg import server_url

POLL_ROWS = 10_000
TRIALS = 9
WRITER_POLL_ROWS = 1_000
WRITER_POLLS = 400  # made ahead; more than a writer stores in --seconds
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def bench_query_module() -> Any:
    """scripts/bench_query.py: its data, its SQLite file."""
    spec = importlib.util.spec_from_file_location("bench_query", Path(__file__).with_name("bench_query.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_query"] = module
    spec.loader.exec_module(module)
    return module


def poll(offset_s: int, hexes: Sequence[str]) -> list[Sighting]:
    """One poll's sightings: every hex once, `offset_s` after T0."""
    at = T0 + timedelta(seconds=offset_s)
    return [
        Sighting(observation(h, position_at=at, lat_deg=37.0 + i * 1e-4, feed="bench", registration=None), None,
                 "R135", 1.0, 2.0, key=h.upper())
        for i, h in enumerate(hexes)
    ]  # fmt: skip


def stream_row(store: SqlStore, sightings: Sequence[Sighting]) -> StreamRow | None:
    if store.backend != "postgresql":
        return None
    from ingest.stream import encode

    record = PollRecord("bench", T0, 5, 1, 200, len(sightings), len(sightings), len(sightings), 0, 0, None)
    body = encode(record, sightings, [], now=T0, ok=True)
    return StreamRow("bench", "bench", "all", 20.0, body)


def ratio_line(label: str, store_s: Sequence[float], floor_s: Sequence[float], rows: int) -> str:
    best, floor = min(store_s), min(floor_s)
    return (
        f"  {label:<44} store {rows / best:>9,.0f} rows/s (best of {len(store_s)}; median "
        f"{rows / statistics.median(store_s):,.0f}), floor {rows / floor:>9,.0f} rows/s: {floor / best:.2f}x"
    )


def insert(where: str) -> list[str]:
    """Part 1 on one backend: a fresh database at `where`."""
    store = open_store(where)
    assert isinstance(store, SqlStore)
    hexes = [f"{0xA00000 + i:06x}" for i in range(POLL_ROWS)]
    record = PollRecord("bench", T0, 5, 1, 200, POLL_ROWS, POLL_ROWS, POLL_ROWS, 0, 0, None)
    store.save_poll(record, poll(0, hexes), stream=stream_row(store, poll(0, hexes)))  # learns the aircraft
    timed: list[float] = []
    for trial in range(1, TRIALS + 1):
        sightings = poll(trial, hexes)
        row = stream_row(store, sightings)
        t0 = perf_counter()
        stored = store.save_poll(record, sightings, stream=row)
        timed.append(perf_counter() - t0)
        assert stored == POLL_ROWS, stored
    lines = [ratio_line(f"{store.backend}: save_poll vs executemany", timed, _floor(store, hexes, "many"), POLL_ROWS)]
    if store.backend == "postgresql":
        lines.append(ratio_line("postgresql: save_poll vs COPY", timed, _floor(store, hexes, "copy"), POLL_ROWS))
    store.close()
    return lines


def _floor(store: SqlStore, hexes: Sequence[str], how: str) -> list[float]:
    """The bare driver inserting prepared rows of new seconds, in one transaction per poll."""
    timed = []
    base = 1_000 if how == "many" else 2_000
    for trial in range(TRIALS):
        rows = [sighting_row(s) for s in poll(base + trial, hexes)]
        if store.backend == "sqlite":
            conn = store.conn  # type: ignore[attr-defined]
            t0 = perf_counter()
            conn.execute("BEGIN")
            conn.executemany(INSERT_SIGHTING, rows)
            conn.execute("COMMIT")
            timed.append(perf_counter() - t0)
            continue
        url = store.url  # type: ignore[attr-defined]
        with psycopg.connect(url) as conn:
            t0 = perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                if how == "many":
                    cur.executemany(INSERT_SIGHTING.replace("?", "%s"), rows)
                else:
                    with cur.copy(f"COPY sightings ({SIGHTING_COLUMNS}) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row(r)
            timed.append(perf_counter() - t0)
    return timed


# -- 2. the tail query ------------------------------------------------------------------------------------


def pg_table(bq: Any, rows: int, tails: Sequence[Any]) -> str:
    """The PostgreSQL database holding bench_query's data (loaded with COPY once, kept)."""
    name = f"ingest_bench_{rows}"
    url = f"{server_url()}/{name}"
    with psycopg.connect(f"{server_url()}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    store = PostgresStore(url)  # creates it, migrates
    done = store._rows("SELECT value FROM meta WHERE key = 'bench_loaded'")
    if exists and done:
        return url
    print(f"loading {rows:,} sightings into {name} with COPY ...", flush=True)
    store.sync_watchlist(bq.parse_watchlist(bq.watchlist_csv(tails), "<bench watchlist>"))
    rnd = random.Random(bq.DATA_SEED)
    start_s = bq.END_EPOCH_S - bq.SPAN_S
    per = 1_000_000
    t0 = perf_counter()
    for i in range(0, rows, per):
        n = min(per, rows - i)
        lo = start_s + bq.SPAN_S * i / rows
        chunk = bq.sighting_rows(tails, rnd, n, lo, start_s + bq.SPAN_S * (i + n) / rows)
        with store.atomic():
            store.copy_in("sightings", [c.strip() for c in SIGHTING_COLUMNS.split(",")], chunk)
        print(f"  {i + n:,} rows, {perf_counter() - t0:.0f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE sightings")
    with store.atomic():
        store._exec("INSERT INTO meta (key, value) VALUES ('bench_loaded', 'yes')")
    return url


def query(label: str, store: SqlStore, raw: Callable[[str, Sequence[Any]], list[Any]], tails: Sequence[Any],
          bq: Any, queries: int) -> list[str]:  # fmt: skip
    """Store.sightings against the very SQL it ran, fetched raw."""
    ran: list[tuple[str, list[Any]]] = []
    real = store._rows

    def spy(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        ran.append((sql, list(params)))
        return real(sql, params)

    since = bq.query_since()
    picks = random.Random(7).sample(list(tails), queries)
    for t in picks[:50]:  # warm up
        store.sightings((t.hex,), since=since, limit=bq.CLI_LIMIT_ROWS)
    store_ms, floor_ms, rows = [], [], []
    for t in picks:
        store._rows = spy  # type: ignore[method-assign]
        t0 = perf_counter()
        got = store.sightings((t.hex,), since=since, limit=bq.CLI_LIMIT_ROWS)
        store_ms.append((perf_counter() - t0) * 1e3)
        store._rows = real  # type: ignore[method-assign]
        sql, params = ran.pop()
        t0 = perf_counter()
        bare = raw(sql, params)
        floor_ms.append((perf_counter() - t0) * 1e3)
        assert len(bare) == len(got)
        rows.append(len(got))
    p50, floor50 = statistics.median(store_ms), statistics.median(floor_ms)
    p95 = sorted(store_ms)[int(0.95 * len(store_ms))]
    return [
        f"  {label:<12} Store.sightings p50 {p50:.3f} ms (p95 {p95:.3f}), the same SQL fetched raw p50 "
        f"{floor50:.3f} ms: {p50 / floor50:.2f}x; {statistics.mean(rows):.0f} rows a query, {queries} queries"
    ]


def tail_queries(rows: int, queries: int) -> list[str]:
    bq = bench_query_module()
    tails = bq.make_tails(bq.TAIL_COUNT, bq.TAIL_SEED)
    directory, _ = bq.data_dir()
    paths = bq.paths_for(directory, rows)
    bq.open_or_build(paths, tails, rows, False)
    bq.read_into_os_cache(paths.db)
    lines = []
    sqlite_store = open_store(paths.db, create=False)
    assert isinstance(sqlite_store, SqlStore)
    conn = sqlite_store.conn  # type: ignore[attr-defined]
    lines += query("sqlite", sqlite_store, lambda sql, p: conn.execute(sql, p).fetchall(), tails, bq, queries)
    url = pg_table(bq, rows, tails)
    pg_store = PostgresStore(url)
    with psycopg.connect(url, autocommit=True) as raw_conn:
        raw_conn.execute("SELECT 1")

        def raw(sql: str, params: Sequence[Any]) -> list[Any]:
            return raw_conn.execute(sql.replace("%", "%%").replace("?", "%s"), params).fetchall()

        lines += query("postgresql", pg_store, raw, tails, bq, queries)
    lines.append(f"  (PostgreSQL table kept: drop it with  psql {server_url()}/postgres -c 'DROP DATABASE "
                 f"ingest_bench_{rows}')")  # fmt: skip
    return lines


# -- 3. writers -----------------------------------------------------------------------------------------------


def writer(url: str, index: int, seconds: float, ready: Any, go: Any, out: Any) -> None:
    """One daemon's writes: polls of its own WRITER_POLL_ROWS aircraft for `seconds`. The polls (and their
    stream entries) are made before the clock starts: daemons sharing a database run on machines of their
    own, so what is measured is what the database server takes, not this machine's two cores making polls."""
    store = open_store(url)
    assert isinstance(store, SqlStore)
    hexes = [f"{0x100000 * (index + 1) + i:06x}" for i in range(WRITER_POLL_ROWS)]
    record = PollRecord(f"w{index}", T0, 5, 1, 200, WRITER_POLL_ROWS, WRITER_POLL_ROWS, WRITER_POLL_ROWS, 0, 0, None)
    store.save_poll(record, poll(0, hexes), record_poll=False)
    made = []
    for n in range(1, WRITER_POLLS + 1):
        sightings = poll(n, hexes)
        made.append((sightings, stream_row(store, sightings)))
    ready.put(index)
    go.wait()
    stored = 0
    end = time.monotonic() + seconds
    for sightings, row in made:
        if time.monotonic() >= end:
            break
        stored += store.save_poll(record, sightings, stream=row)
    out.put(stored)


def writers(seconds: float) -> list[str]:
    from tests.pg import fresh_database

    ctx = multiprocessing.get_context("spawn")
    rates = []
    for count in (1, 2):
        with fresh_database("ingest_bench_writers") as url:
            PostgresStore(url).close()  # migrated before the writers start
            out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
            procs = [ctx.Process(target=writer, args=(url, i, seconds, ready, go, out)) for i in range(count)]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=300)
            t0 = perf_counter()
            go.set()
            total = sum(out.get(timeout=seconds + 120) for _ in procs)
            for p in procs:
                p.join()
            rates.append(total / (perf_counter() - t0))
    return [
        f"  postgresql: 1 writer {rates[0]:,.0f} sightings/s, 2 writers {rates[1]:,.0f} sightings/s together: "
        f"{rates[1] / rates[0]:.2f}x ({WRITER_POLL_ROWS:,} a poll, {seconds:g} s each, stream entries included, "
        "polls made ahead)"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="sightings in the tail-query table")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=10.0, help="each writers run")
    ap.add_argument("--skip-query", action="store_true", help="no tail-query part (it needs a big table)")
    ap.add_argument("--only", choices=["insert", "query", "writers"], help="one part alone")
    args = ap.parse_args(argv)
    import tempfile

    print(f"bench_store: {' '.join(sys.argv)}")
    if args.only in (None, "insert"):
        print(
            f"1. insert of one poll storing {POLL_ROWS:,} sightings ({TRIALS} trials; ratio = floor time / store time)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for line in insert(str(Path(tmp) / "insert.db")):
                print(line, flush=True)
        from tests.pg import fresh_database

        with fresh_database("ingest_bench_insert") as url:
            for line in insert(url):
                print(line, flush=True)
    if args.only == "query" or (args.only is None and not args.skip_query):
        print(f"2. tail query, one day of one aircraft, on {args.rows:,} sightings (ratio = store / floor)")
        for line in tail_queries(args.rows, args.queries):
            print(line, flush=True)
    if args.only in (None, "writers"):
        print("3. writers on one PostgreSQL database")
        for line in writers(args.seconds):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
