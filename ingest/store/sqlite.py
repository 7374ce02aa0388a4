"""The SQLite backend: one file, the standard library's sqlite3 (sqlite_schema.py holds the migrations, with
sqlite-utils, and loads only when one is due), and the queries of sql.py.

- WAL is set once (it persists in the file); `synchronous=NORMAL` and a busy timeout on every
  connection: no committed transaction is lost on a process crash.
- `sightings` is WITHOUT ROWID with PRIMARY KEY (hex, ts): a tail's time range is one primary-key range
  scan (1.0 ms p50 for the bare SELECT of a day of one tail at 1e7 rows: scripts/bench_query.py).
- A SqliteStore belongs to the thread that opened it (sqlite3's check_same_thread); the daemon writes from
  one writer thread, readers open their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import StoreError
from ingest.store.base import DatabaseMissing, DatabaseStats
from ingest.store.sql import SqlStore, reading

if TYPE_CHECKING:
    from ingest.models import QueuedEvent

BUSY_TIMEOUT_MS = 5_000
# The WAL is truncated back to this size whenever SQLite restarts it, and a checkpoint that finds it
# larger truncates it (with readers busy it would only grow: tests/unit/test_store.py).
WAL_LIMIT_BYTES = 16 * 1024 * 1024
# Every migration the schema has (sqlite_schema.py applies them; a test keeps the two lists equal).
MIGRATIONS = (
    "0001_initial", "0002_sorties_and_outbox", "0003_feed_state", "0004_coverage_happenings_airports",
    "0005_daemons_synthetic", "0006_alert_channels",
)  # fmt: skip
_SQLITE_HEADER = b"SQLite format 3\x00"
# A channel's next events as ONE value: sqlite3 lets go of the GIL for every row it steps to, and under an MQTT
# drain paho's thread takes it each time, so a batch read row by row took 20x longer than alone
# (scripts/bench_alerts.py). Fields are split by \x1f and events by \x1e, which compact JSON never holds raw.
_US, _RS = "\x1f", "\x1e"
_PENDING_PACKED = (
    "SELECT group_concat(o.id || char(31) || o.event_id || char(31) || o.topic || char(31) || o.payload || char(31) "
    "|| coalesce(o.facts, '') || char(31) || coalesce(d.progress, ''), char(30)) FROM (SELECT outbox_id, progress "
    "FROM deliveries WHERE channel = ? AND delivered_at IS NULL AND outbox_id > ? ORDER BY outbox_id LIMIT ?) d "
    "JOIN outbox o ON o.id = d.outbox_id"
)


class SqliteStore(SqlStore):
    """One connection to the SQLite file, migrated on open. `create=False` (the read commands) refuses a
    file that does not exist instead of creating an empty database (and its folders) there."""

    backend = "sqlite"
    GREATEST = "max"
    _db_errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, create: bool = True, shared: bool = False) -> None:
        self.path = path
        self._savepoints: list[str] = []
        self.migrated: list[str] = []  # the migrations this open applied (`ingest db migrate` says which)
        self.commits = 0
        memory = str(path) == ":memory:"
        if not create and not memory and not path.is_file():
            raise DatabaseMissing(path)
        if not memory:
            _check_is_sqlite(path)
        try:
            if not memory:
                path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: transactions are atomic()'s, explicit, as sqlite-utils' are.
            # `shared`: used from several threads, one at a time under the caller's lock (one-shot alert delivery).
            self.conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=not shared
            )
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            if not memory and self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode=WAL")
            before = applied_migrations(self.conn)
            if before != list(MIGRATIONS):
                from ingest.store import sqlite_schema  # sqlite_utils loads only for a new or older file

                sqlite_schema.apply(self.conn)
                self.migrated = [m for m in applied_migrations(self.conn) if m not in before]
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self.conn.close()

    # -- the primitives sql.py runs on -------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def _described(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return row

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        before = self.conn.total_changes
        self.conn.executemany(sql, rows)
        return self.conn.total_changes - before

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction (a savepoint when nested), committed on success, rolled back on any error."""
        conn = self.conn
        if conn.in_transaction:
            name = f"ingest_{len(self._savepoints)}"
            self._savepoints.append(name)
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                conn.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._savepoints.pop()
            return
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.commits += 1

    @reading("read the outbox")
    def pending_events(
        self, channel: str, limit: int, after: int = 0, exclude: Iterable[int] = ()
    ) -> list[QueuedEvent]:
        """As SqlStore.pending_events, read as one packed value (see _PENDING_PACKED)."""
        from ingest.models import QueuedEvent

        skip = set(exclude)
        row = self.conn.execute(_PENDING_PACKED, (channel, after, limit + len(skip))).fetchone()
        if not row or not row[0]:
            return []
        events = []
        for record in row[0].split(_RS):
            f = record.split(_US)
            if len(f) != 6 or not f[0].isdigit():  # a separator inside a value (a hand-edited row): read rows
                return SqlStore.pending_events(self, channel, limit, after, exclude)
            outbox_id = int(f[0])
            if outbox_id not in skip:
                events.append(QueuedEvent(outbox_id, f[1], f[2], f[3], f[4], f[5]))
        events.sort(key=lambda e: e.outbox_id)
        return events[:limit]

    # -- the WAL ---------------------------------------------------------------------------------------

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0 when there is none)."""
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except OSError:
            return 0

    def size_bytes(self) -> int:
        """The database file's size (without its WAL; 0 in memory)."""
        try:
            return Path(self.path).stat().st_size
        except OSError:
            return 0

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database without waiting for readers (PASSIVE); when the WAL has grown past
        WAL_LIMIT_BYTES, wait briefly for readers and truncate it. Returns (WAL bytes before, after)."""
        before = self.wal_bytes()
        mode = "TRUNCATE" if before > WAL_LIMIT_BYTES else "PASSIVE"
        with self._writing("checkpoint the WAL"):
            self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        return before, self.wal_bytes()

    # -- upkeep (`ingest db`) ------------------------------------------------------------------------------

    def stats(self) -> DatabaseStats:
        """Rows per table, the sightings' span, the file's, the WAL's and the free pages' sizes."""
        with self._writing("read the database's statistics"):
            names = [n for (n,) in self._rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
            )]  # fmt: skip
            oldest, newest = self._sightings_span()
            page = self.conn.execute("PRAGMA page_size").fetchone()[0]
            free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
            return DatabaseStats(
                self.backend, self.describe(), self._row_counts(names), oldest, newest, self.size_bytes(),
                self.wal_bytes(), int(page) * int(free),
            )  # fmt: skip

    def vacuum(self) -> None:
        """Rebuild the file without its free pages (VACUUM), then empty the WAL that VACUUM filled. Needs
        the database to itself for a moment: a running daemon's writes wait for it (or it for them)."""
        with self._writing("vacuum the database"):
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _check_is_sqlite(path: Path) -> None:
    """Refuse a file that exists and is not an SQLite database: opening it would make it one."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open the database {path}: {exc.strerror or exc}") from exc
    if head and head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not an SQLite database (left untouched)")


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations this database has, in the order they were applied."""
    try:
        rows = conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'ingest' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # no such table: a new database
        return []
    return [name for (name,) in rows]
