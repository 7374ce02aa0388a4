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
import threading
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
from ingest.store.base import DatabaseMissing, DatabaseStats
from ingest.store.sql import SqlStore

POOL_MAX = 8  # the writer, the sortie clock's checks, the relay, the API's threads
CONNECT_TIMEOUT_S = 10
_PARTITION_LOCK = 0x1A6E58

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
                conninfo, min_size=1, max_size=size, kwargs={"autocommit": True}, open=False, name=label
            )
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
    _db_errors = (psycopg.Error,)

    def __init__(self, url: str, *, create: bool = True, password: str = "", pool_size: int = POOL_MAX) -> None:
        self.url = url
        self.commits = 0
        self._local = threading.local()  # the connection of this thread's open transaction
        self._partitions: set[str] = set()
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
            apply_migrations(conn)

    def describe(self) -> str:
        return safe_url(self.url)

    def close(self) -> None:
        """A handle has nothing of its own to close: the pool serves the process until it exits."""

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
        for ts in {int(r[1]) // 86_400 * 86_400 for r in rows}:
            name, ddl = postgres_schema.partition_ddl(ts)
            if name not in self._partitions:
                self._exec(f"SELECT pg_advisory_xact_lock({_PARTITION_LOCK})")
                self._exec(ddl)
                self._partitions.add(name)
        return super()._insert_sightings(rows)

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
