"""The PostgreSQL backend: psycopg 3 with a connection pool, and the queries of sql.py. The only importer of
psycopg and psycopg_pool.

- One pool per process and database, shared by every thread (the daemon's writer, the API's requests); a
  PostgresStore is a cheap handle on it. A transaction (`atomic()`) holds one pooled connection; a read
  outside one takes a connection for that statement only.
- The password never sits in the URL we keep or print: it comes from INGEST_DATABASE_PASSWORD or a file
  (config.py), or from libpq's own PGPASSWORD and ~/.pgpass, and is handed to libpq apart.
- `sightings` is partitioned by month (postgres_schema.py); before rows of a month go in, its partition is
  made (once per process and month), under an advisory lock so that two daemons never race to make it.
- Migrations run at open (create=True) under an advisory lock; a read command (create=False) refuses a
  database without the schema instead of making one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.sql
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool

from ingest.errors import StoreError
from ingest.store import postgres_schema
from ingest.store.base import DatabaseMissing, DatabaseStats, StreamRow
from ingest.store.sql import SIGHTING_COLUMNS, SqlStore, reading
from ingest.timeutil import iso_z

# The leader's own connection: TCP keepalives on both ends, so that a leader whose machine vanished loses the
# lock within about 11 s (5 s idle, then 3 probes 2 s apart) and another daemon takes over.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
_SERVER_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
POOL_MAX = 8  # the writer, the sortie clock's checks, the relay, the API's threads
CONNECT_TIMEOUT_S = 10
GETCONN_TIMEOUT_S = 3.0
RECONNECT_FOREVER_S = 10 * 365 * 86_400.0
_PARTITION_LOCK = 0x1A6E58
# A poll storing this many sightings or more goes in by COPY through a staging table (then one INSERT ...
# SELECT ... ON CONFLICT DO NOTHING): several times executemany's rate for an area poll (scripts/bench_store.py).
_COPY_FROM_ROWS = 200
SIGHTING_COLUMN_NAMES = tuple(c.strip() for c in SIGHTING_COLUMNS.split(","))

# The pool logs every failed reconnection (twice a second while a server is away, over several lines); the
# daemon says once per episode that writes fail (scheduler.py).
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)

_POOLS: dict[str, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


@lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """sql.py's `?` placeholders as psycopg's `%s` (and a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def safe_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _missing_database(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError) and "does not exist" in _reason(exc) and "database" in str(exc)


def _pool(conninfo: str, label: str, size: int) -> ConnectionPool:
    with _POOLS_LOCK:
        pool = _POOLS.get(conninfo)
        if pool is None:
            # One plain connection first: a server away or a database missing is said in a second, with
            # the server's reason, where the pool would retry in the background until its timeout.
            psycopg.connect(conninfo, autocommit=True).close()
            pool = ConnectionPool(
                conninfo, min_size=1, max_size=size, kwargs={"autocommit": True}, open=False, name=label,
                # A connection the server dropped (a restart) is noticed when it is taken, not on first use.
                check=ConnectionPool.check_connection,
                # A server away: a write fails after this long (the writer keeps the poll in memory,
                # scheduler.py) rather than holding the writer for the pool's default 30 s ...
                timeout=GETCONN_TIMEOUT_S,
                # ... and the pool keeps trying to reconnect for as long as the daemon runs.
                reconnect_timeout=RECONNECT_FOREVER_S,
            )  # fmt: skip
            try:
                pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            except Exception:
                pool.close()
                raise
            _POOLS[conninfo] = pool
        return pool


def close_pools() -> None:
    """Close every pool (tests; a process that exits does not need to)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


def close_pool(url: str) -> None:
    """Close the pools on the database `url` names (before it is dropped, say)."""
    wanted = _target(url)
    with _POOLS_LOCK:
        for conninfo in [c for c in _POOLS if _target(c) == wanted]:
            _POOLS.pop(conninfo).close()


def _target(conninfo: str) -> tuple[str, str, str]:
    params = pg_conninfo.conninfo_to_dict(conninfo)
    return str(params.get("host")), str(params.get("port") or 5432), str(params.get("dbname"))


class PostgresStore(SqlStore):
    """A handle on the process's pool for one database."""

    backend = "postgresql"
    GREATEST = "greatest"
    ISO_TIME = "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    _db_errors = (psycopg.Error,)

    def __init__(self, url: str, *, create: bool = True, password: str = "", pool_size: int = POOL_MAX) -> None:
        self.url = url
        self.commits = 0
        self._local = threading.local()  # the connection of this thread's open transaction
        self._lead_conn: psycopg.Connection[Any] | None = None  # holds the leader's session lock
        self._partitions: set[str] = set()
        self.migrated: list[str] = []  # the migrations this open applied (`ingest db migrate` says which)
        extra = {"password": password} if password else {}
        try:
            self._conninfo = pg_conninfo.make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_S, **extra)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"cannot use the database URL {safe_url(url)}: {_reason(exc)}") from exc
        try:
            self.pool = self._open_pool(create, pool_size)
        except Exception as exc:  # psycopg_pool's PoolTimeout, or the driver's error, for a server away
            cause = exc if isinstance(exc, psycopg.Error) else (exc.__cause__ or exc.__context__ or exc)
            if _missing_database(cause) and not create:
                raise DatabaseMissing(safe_url(url)) from exc
            raise StoreError(f"cannot open the database {safe_url(url)}: {_reason(cause)}") from exc
        try:
            self._migrate(create)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the database {safe_url(url)}: {_reason(exc)}") from exc

    def _open_pool(self, create: bool, size: int) -> ConnectionPool:
        """The pool; for a command that creates (run, poll, replay), a database missing on the server is
        made first, as SQLite makes its file, when the role may (CREATEDB); otherwise the server's refusal
        is the error."""
        try:
            return _pool(self._conninfo, safe_url(self.url), size)
        except psycopg.OperationalError as exc:
            if not (create and _missing_database(exc)):
                raise
        name = pg_conninfo.conninfo_to_dict(self._conninfo).get("dbname")
        if not name:
            raise StoreError(f"cannot open the database {safe_url(self.url)}: it names no database")
        admin = psycopg.connect(self._conninfo, dbname="postgres", autocommit=True)
        with admin as conn, contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another daemon made it
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(str(name))))
        return _pool(self._conninfo, safe_url(self.url), size)

    def _migrate(self, create: bool) -> None:
        with self.pool.connection() as conn:
            applied = _applied(conn)
            wanted = postgres_schema.names()
            if applied[: len(wanted)] == wanted:
                return
            if not create and not applied:
                raise DatabaseMissing(f"{safe_url(self.url)} (it has no ingest schema; run `ingest db migrate`)")
            self.migrated = apply_migrations(conn)

    def describe(self) -> str:
        return safe_url(self.url)

    def close(self) -> None:
        """Give up the leadership if we hold it; the pool serves the process until it exits."""
        self.resign()

    def _reason(self, exc: BaseException) -> str:
        return _reason(exc)

    # -- the primitives sql.py runs on -------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self.pool.connection() as conn:
            yield conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(_pg(sql), params).fetchall()

    def _described(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._connection() as conn:
            cur = conn.execute(_pg(sql), params)
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._connection() as conn:
            return conn.execute(_pg(sql), params).fetchone()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._connection() as conn:
            return conn.execute(_pg(sql), params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._connection() as conn, conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)
            return max(cur.rowcount, 0)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction on one pooled connection (a savepoint when nested)."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            with held.transaction():
                yield
            return
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield
            except BaseException:
                self._partitions.clear()  # a partition made in the rolled-back transaction is gone too
                raise
            finally:
                self._local.conn = None
        self.commits += 1

    def _insert_sightings(self, rows: Sequence[Sequence[Any]]) -> int:
        """Make the months' partitions the rows need, then insert them (those already stored are ignored)."""
        if not rows:
            return 0
        self._partitions_for({int(r[1]) for r in rows})
        if len(rows) >= _COPY_FROM_ROWS:
            return self.copy_in("sightings", SIGHTING_COLUMN_NAMES, rows)
        return super()._insert_sightings(rows)

    def _partitions_for(self, seconds: set[int]) -> None:
        """Make the monthly partitions of `sightings` that rows at these Unix seconds go into."""
        for ts in {t // 86_400 * 86_400 for t in seconds}:
            name, ddl = postgres_schema.partition_ddl(ts)
            if name not in self._partitions:
                self._exec(f"SELECT pg_advisory_xact_lock({_PARTITION_LOCK})")
                self._exec(ddl)
                self._partitions.add(name)

    def prepare_months(self, now: datetime) -> list[str]:
        """Make this month's and next month's partitions ahead of their rows; returns their names."""
        seconds = {int(now.timestamp()), int(now.timestamp()) + 32 * 86_400}
        with self._writing("make the months' partitions"), self.atomic():
            self._partitions_for(seconds)
        return sorted(postgres_schema.partition_ddl(t)[0] for t in seconds)

    def copy_in(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Rows in bulk (a big poll's sightings, a chunk of `ingest db copy`, transfer.py): COPY into a staging
        table, then one INSERT ... SELECT that keeps the rows already here; returns how many were new. Runs
        inside the caller's transaction."""
        if table == "sightings":
            self._partitions_for({int(r[columns.index("ts")]) for r in rows})
        cols = ", ".join(columns)
        staging = f"copy_{table}"
        with self._connection() as conn:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS"  # fixed names
            )
            with conn.cursor().copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            done = conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT DO NOTHING")
            conn.execute(f"DELETE FROM {staging}")  # a second batch in this transaction starts empty
            return max(done.rowcount, 0)

    # -- the poll stream and the leadership (several daemons on one database) -------------------------

    def _append_stream(self, row: StreamRow) -> None:
        # Held to commit: an entry with a higher id never commits before one with a lower id, so the leader,
        # reading past its place, never skips an entry that committed late.
        self._exec("SELECT pg_advisory_xact_lock(?)", (postgres_schema.STREAM_LOCK,))
        self._exec(
            "INSERT INTO reports (daemon, feed, stored_at, scopes, bound_s, body) VALUES (?, ?, ?, ?, ?, ?)",
            (row.daemon, row.feed, time.time(), row.scopes, row.bound_s, row.body),
        )

    def try_lead(self, daemon: str, now: datetime) -> int | None:
        """Take the leadership if nobody holds it: the session lock on a connection of our own, then the
        `leader` row (which fences off a former leader's writes). Returns our place in the stream: where
        the former leader stopped (0 on a new database)."""
        if self._lead_conn is None:
            try:
                conninfo = pg_conninfo.make_conninfo(self._conninfo, **_KEEPALIVES)
                self._lead_conn = psycopg.connect(conninfo, autocommit=True)
                # The server, too, gives up on a leader whose machine vanished (not only on a closed socket).
                for name, value in _SERVER_KEEPALIVES.items():
                    self._lead_conn.execute(f"SET {name} = {value}")
            except psycopg.Error as exc:
                self._drop_lead_conn()
                raise StoreError(f"cannot reach the database for the leadership: {_reason(exc)}") from exc
        try:
            won = self._lead_conn.execute("SELECT pg_try_advisory_lock(%s)", (postgres_schema.LEADER_LOCK,)).fetchone()
            if not (won and won[0]):
                return None
            with self._writing("take the leadership"), self.atomic():
                row = self._one(
                    "INSERT INTO leader (id, daemon, since, last_report_id) VALUES (1, ?, ?, 0) "
                    "ON CONFLICT (id) DO UPDATE SET daemon = excluded.daemon, since = excluded.since "
                    "RETURNING last_report_id",
                    (daemon, iso_z(now)),
                )
        except (psycopg.Error, StoreError) as exc:
            self._drop_lead_conn()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot take the leadership: {_reason(exc)}") from exc
        assert row is not None
        return int(row[0])

    def leading(self) -> bool:
        """Whether we still hold the leadership: the session that holds the lock is alive."""
        if self._lead_conn is None:
            return False
        try:
            self._lead_conn.execute("SELECT 1")
        except psycopg.Error:
            self._drop_lead_conn()
            return False
        return True

    def resign(self) -> None:
        """Give the leadership up (a clean stop): another daemon takes it at its next try."""
        if self._lead_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._lead_conn.execute("SELECT pg_advisory_unlock(%s)", (postgres_schema.LEADER_LOCK,))
            self._drop_lead_conn()

    def _drop_lead_conn(self) -> None:
        if self._lead_conn is not None:
            with contextlib.suppress(Exception):
                self._lead_conn.close()
        self._lead_conn = None

    @reading("read the leader")
    def leader(self) -> tuple[str, str] | None:
        row = self._one("SELECT daemon, since FROM leader WHERE id = 1")
        return None if row is None else (str(row[0]), str(row[1]))

    @reading("read the poll stream")
    def stream_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, float, str]]:
        """Entries after `after_id`, in order: (id, daemon, scopes, bound_s, body)."""
        return [
            (int(i), d, sc, float(b), body)
            for i, d, sc, b, body in self._rows(
                "SELECT id, daemon, scopes, bound_s, body FROM reports WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    @reading("read the feeds' coverage")
    def stream_covers(self) -> dict[str, tuple[str, float]]:
        """Each feed's scopes and bound, as its latest entry gives them (feeds of other daemons included)."""
        rows = self._rows("SELECT DISTINCT ON (feed) feed, scopes, bound_s FROM reports ORDER BY feed, id DESC")
        return {feed: (scopes, float(bound_s)) for feed, scopes, bound_s in rows}

    def prune_stream(self, upto_id: int, before: datetime) -> int:
        """Delete entries the leader has read (id <= `upto_id`) that were stored before `before`."""
        with self._writing("prune the poll stream"), self.atomic():
            return self._exec("DELETE FROM reports WHERE id <= ? AND stored_at < ?", (upto_id, before.timestamp()))

    def drop_partitions_before(self, before: datetime) -> list[str]:
        """Drop the months of sightings that end at or before `before`, in one transaction (under the lock
        that partition making takes); returns their names, oldest first. A month that straddles `before` is
        left for prune_sightings' batches."""
        cut = before.timestamp()
        dropped: list[str] = []
        with self._writing("drop old months of sightings"), self.atomic():
            self._exec(f"SELECT pg_advisory_xact_lock({_PARTITION_LOCK})")
            names = sorted(
                name for (name,) in self._rows(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'sightings'::regclass"
                )
            )  # fmt: skip
            for name in names:
                month = postgres_schema.partition_month(name)
                if month is None or month[1] > cut:
                    continue  # not one of ours, or not wholly before the cut
                self._exec(f"DROP TABLE {name}")  # a name partition_month() read: letters and digits only
                dropped.append(name)
        self._partitions.difference_update(dropped)  # made again, empty, if rows for that month ever come
        return dropped

    # -- upkeep (`ingest db`) ------------------------------------------------------------------------------

    def stats(self) -> DatabaseStats:
        """Rows per table (the sightings' months apart, with their sizes), the sightings' span, the
        database's size on the server."""
        with self._writing("read the database's statistics"):
            tables = [n for (n,) in self._rows(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                "ORDER BY c.relname"
            )]  # fmt: skip
            months = self._rows(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sightings'::regclass ORDER BY c.relname"
            )
            counts = self._row_counts([t for t in tables if t != "sightings"])
            month_rows = self._row_counts([name for name, _ in months])
            counts["sightings"] = sum(month_rows.values())
            oldest, newest = self._sightings_span()
            partitions = [(name, month_rows[name], int(size)) for name, size in months]
            return DatabaseStats(
                self.backend, self.describe(), dict(sorted(counts.items())), oldest, newest, self.size_bytes(),
                partitions=partitions,
            )  # fmt: skip

    def vacuum(self) -> None:
        """VACUUM (ANALYZE) the database: dead rows' space made reusable, the planner's statistics fresh.
        Runs outside a transaction (PostgreSQL refuses VACUUM inside one), beside running daemons."""
        with self._writing("vacuum the database"):
            self._exec("VACUUM (ANALYZE)")

    # -- no WAL of ours to mind: the server owns its own ---------------------------------------------

    def wal_bytes(self) -> int:
        return 0

    def checkpoint(self) -> tuple[int, int]:
        return 0, 0

    def size_bytes(self) -> int:
        """The database's size on the server (every table, index and partition)."""
        with self._writing("read the database's size"):
            row = self._one("SELECT pg_database_size(current_database())")
        return int(row[0]) if row else 0


def _applied(conn: psycopg.Connection[Any]) -> list[str]:
    try:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    return [name for (name,) in rows]


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction under the migration lock;
    returns the names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done: list[str] = []
    for name, statements in postgres_schema.MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (postgres_schema.MIGRATION_LOCK,))
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (name,)).fetchone():
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (%s, now()::text)", (name,))
            done.append(name)
    return done
